"""Augmentation: shapes, determinism per key, crop/flip semantics, identity at eval."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import augment, tfds_data
from jaxdepth.validate import ConfigError


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
    augment.make_augment(("crop", "rotate"))
  with pytest.raises(ValueError, match="images"):
    augment.make_augment(("flip",))(jax.random.key(0), jnp.ones((4, 40)))
