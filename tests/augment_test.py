"""Augmentation: shapes, determinism per key, crop/flip/rotation semantics, identity at eval."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.data import augment
from jaxdepth.data import tfds as tfds_data
from jaxdepth.engine.validate import ConfigError


def _images(b=16, h=6, w=5, c=3):
  return np.arange(b * h * w * c, dtype=np.float32).reshape(b, h, w, c) + 1.0


def test_shapes_dtype_and_determinism():
  fn = jax.jit(augment.make_augment(("crop", "flip"), pad=2))
  x = jnp.asarray(_images())
  a, b = fn(jax.random.key(0), x), fn(jax.random.key(0), x)
  c = fn(jax.random.key(1), x)
  assert a.shape == x.shape and a.dtype == x.dtype
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_crop_is_a_window_of_the_padded_image():
  pad, fill = 2, (-1.0, -2.0, -3.0)
  x = _images()
  out = np.asarray(jax.jit(augment.make_augment(("crop",), pad, fill))(jax.random.key(2), x))
  padded = np.broadcast_to(np.asarray(fill, np.float32), (16, 10, 9, 3)).copy()
  padded[:, pad:-pad, pad:-pad] = x
  offsets = set()
  for i in range(16):
    hits = [(r, s) for r, s in itertools.product(range(2 * pad + 1), repeat=2)
            if np.array_equal(out[i], padded[i, r:r + 6, s:s + 5])]
    assert hits, f"example {i} is not a crop of its padded image"
    offsets.add(hits[0])
  assert len(offsets) > 1  # offsets are drawn per example
  # pad=0: the only window is the image itself
  same = augment.make_augment(("crop",), pad=0)(jax.random.key(3), x)
  np.testing.assert_array_equal(same, x)


def test_flip_per_example():
  x = _images(b=32)
  out = np.asarray(augment.make_augment(("flip",))(jax.random.key(4), x))
  flipped = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)])
  kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
  assert np.all(flipped ^ kept) and 0 < flipped.sum() < 32


def test_identity_at_eval_and_input_untouched():
  x = _images()
  x_copy = x.copy()
  fn = augment.make_augment(("crop", "flip"))
  assert fn(jax.random.key(5), x, train=False) is x  # analysis data passes through as is
  assert augment.make_augment(())(jax.random.key(5), x) is x
  fn(jax.random.key(5), x)
  np.testing.assert_array_equal(x, x_copy)  # training draws never modify the source


def test_vmap_over_runs_equals_loop():
  fn = augment.make_augment(("crop", "flip"), pad=1)
  x = jnp.asarray(_images(b=4))
  keys = jax.random.split(jax.random.key(6), 3)
  out = jax.jit(jax.vmap(fn, in_axes=(0, None)))(keys, x)
  assert out.shape == (3,) + x.shape
  for r in range(3):
    np.testing.assert_array_equal(out[r], fn(keys[r], x))


def test_pad_value_is_black_and_bad_kinds():
  mean, std = tfds_data.KNOWN_TFDS["cifar10"].stats
  np.testing.assert_allclose(np.asarray(tfds_data.pad_value("cifar10")) * std + mean, 0.0,
                             atol=1e-7)
  with pytest.raises(ConfigError, match="config.augment"):
    augment.make_augment(("crop", "shear"))
  with pytest.raises(ValueError, match="images"):
    augment.make_augment(("flip",))(jax.random.key(0), jnp.ones((4, 40)))


def _np_rotate(img, angle, fill):
  """Reference: nearest-neighbour inverse mapping about ((H-1)/2, (W-1)/2), float64 loops."""
  h, w, _ = img.shape
  out = np.empty_like(img)
  for y in range(h):
    for x in range(w):
      dx, dy = x - (w - 1) / 2, y - (h - 1) / 2
      sx = int(np.floor(np.cos(angle) * dx - np.sin(angle) * dy + (w - 1) / 2 + 0.5))
      sy = int(np.floor(np.sin(angle) * dx + np.cos(angle) * dy + (h - 1) / 2 + 0.5))
      out[y, x] = img[sy, sx] if 0 <= sx < w and 0 <= sy < h else fill
  return out


def test_rotation_exact_angles_and_reference():
  rng = np.random.default_rng(0)
  sq = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
  fill = np.array([-1.0, -2.0, -3.0], np.float32)
  rot = lambda x, deg: np.asarray(augment.rotate_nearest(
      jnp.asarray(x), jnp.full((x.shape[0],), np.deg2rad(deg)), jnp.asarray(fill)))
  np.testing.assert_array_equal(rot(sq, 0.0), sq)
  np.testing.assert_array_equal(rot(sq, 90.0), np.rot90(sq, 1, axes=(1, 2)))  # counter-clockwise
  np.testing.assert_array_equal(rot(sq, -90.0), np.rot90(sq, -1, axes=(1, 2)))
  np.testing.assert_array_equal(rot(sq, 180.0), sq[:, ::-1, ::-1])
  corner = rot(sq, 45.0)[:, 0, 0]  # rotated in from outside the image
  np.testing.assert_array_equal(corner, np.broadcast_to(fill, corner.shape))
  x = rng.standard_normal((3, 9, 6, 2)).astype(np.float32)
  ang = np.deg2rad([10.0, -13.0, 4.0])
  got = np.asarray(augment.rotate_nearest(jnp.asarray(x), jnp.asarray(ang), jnp.zeros(2)))
  for b in range(3):
    np.testing.assert_array_equal(got[b], _np_rotate(x[b], ang[b], 0.0))


def test_random_rotation_in_range_and_after_crop_flip():
  x = jnp.asarray(_images(b=64, h=9, w=9, c=1))
  fn = augment.make_augment(("rotate",), fill=-5.0, max_degrees=15.0)
  y = np.asarray(fn(jax.random.key(3), x))
  np.testing.assert_array_equal(y[:, 4, 4], np.asarray(x)[:, 4, 4])  # the centre stays
  assert not np.array_equal(y, np.asarray(x))  # some images moved
  # Every output is the image rotated by some angle within +-15 degrees (nearest
  # rotation is piecewise constant in the angle: a 0.01-degree grid hits each piece).
  cand = jnp.deg2rad(jnp.linspace(-15.0, 15.0, 3001))
  for i in range(8):
    r = np.asarray(augment.rotate_nearest(jnp.broadcast_to(x[i], (3001, 9, 9, 1)), cand,
                                          jnp.asarray([-5.0])))
    assert np.any(np.all(r == y[i][None], axis=(1, 2, 3))), i
  wide = np.asarray(augment.make_augment(("rotate",), fill=-5.0, max_degrees=60.0)(
      jax.random.key(3), x))
  assert np.sum(wide == -5.0) > np.sum(y == -5.0)  # wider angles fill more corners
  assert np.array_equal(np.asarray(augment.make_augment(("rotate",), max_degrees=0.0)(
      jax.random.key(3), x)), np.asarray(x))
  both = augment.make_augment(("crop", "flip", "rotate"), pad=1)
  np.testing.assert_array_equal(both(jax.random.key(5), x), both(jax.random.key(5), x))


def test_training_fill_is_black_for_tfds_images():
  from jaxdepth import data
  from jaxdepth.configs import common
  c = common.paper_conv("cifar10", augment=("crop", "flip", "rotate"))
  assert data.augment_fill(c) == tfds_data.pad_value("cifar10")
  c.data.normalization = "computed"  # no fixed statistics: the mean colour
  assert data.augment_fill(c) == 0.0
  assert data.augment_fill(common.base()) == 0.0  # mnist1d
