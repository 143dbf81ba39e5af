"""On-device training augmentation: random crop with padding, horizontal flip, rotation.

Used for training batches only. Every analysis (NCC, CDNV, train accuracy) runs on the
un-augmented data (Galanti et al. 2022; docs/definitions.md, "Training and data"):
the returned function is
the identity when called with ``train=False``, and it never modifies its input.

Reference pipeline for CIFAR (authors' code): RandomCrop(32, padding=4),
RandomHorizontalFlip, RandomRotation(15) (nearest neighbour, fill 0 before
normalization). jaxdepth implements all three, in that order; the rotation angle is
uniform in [-15, 15] degrees per example, about the image centre.

Padding value: the reference pads black pixels before normalization. Our images are
already normalized, so black is ``-mean / std`` per channel; pass it as ``fill`` (see
``jaxdepth.data.tfds.pad_value``). The default ``fill=0.0`` pads with the mean color.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxdepth.errors import ConfigError

KINDS = ("crop", "flip", "rotate")


def random_crop(key, x_BxHxWxC: jax.Array, pad: int, fill_C: jax.Array) -> jax.Array:
  """Pad each side by ``pad`` with ``fill`` and cut a random HxW window per example.

  out[b] = padded[b, i_b : i_b + H, j_b : j_b + W], (i_b, j_b) uniform in [0, 2 pad]^2.
  """
  b, h, w, c = x_BxHxWxC.shape
  canvas = jnp.broadcast_to(fill_C.reshape(1, 1, 1, c).astype(x_BxHxWxC.dtype),
                            (b, h + 2 * pad, w + 2 * pad, c))
  padded = lax.dynamic_update_slice(canvas, x_BxHxWxC, (0, pad, pad, 0))
  off_Bx2 = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)
  return jax.vmap(lambda img, o: lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))(
      padded, off_Bx2)


def random_flip(key, x_BxHxWxC: jax.Array) -> jax.Array:
  """Mirror each example left-right with probability 1/2."""
  flip_B = jax.random.bernoulli(key, 0.5, (x_BxHxWxC.shape[0],))
  return jnp.where(flip_B[:, None, None, None], x_BxHxWxC[:, :, ::-1, :], x_BxHxWxC)


def rotate_nearest(x_BxHxWxC: jax.Array, angles_B: jax.Array, fill_C: jax.Array) -> jax.Array:
  """Rotate each image by its angle (radians, counter-clockwise as displayed, y down)
  about its centre ((H-1)/2, (W-1)/2); nearest-neighbour; outside pixels get ``fill``.

  Inverse mapping: output pixel (y, x) reads the source at R(-angle) (y, x).
  """
  b, h, w, c = x_BxHxWxC.shape
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  dy, dx = yy - (h - 1) / 2, xx - (w - 1) / 2
  fill = fill_C.reshape(1, 1, c).astype(x_BxHxWxC.dtype)

  def one(img_HxWxC, a):
    cos, sin = jnp.cos(a), jnp.sin(a)
    sx = jnp.floor(cos * dx - sin * dy + (w - 1) / 2 + 0.5).astype(jnp.int32)
    sy = jnp.floor(sin * dx + cos * dy + (h - 1) / 2 + 0.5).astype(jnp.int32)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    vals = img_HxWxC[jnp.clip(sy, 0, h - 1), jnp.clip(sx, 0, w - 1)]
    return jnp.where(inside[..., None], vals, fill)

  return jax.vmap(one)(x_BxHxWxC, angles_B.astype(jnp.float32))


def random_rotation(key, x_BxHxWxC: jax.Array, max_degrees: float,
                    fill_C: jax.Array) -> jax.Array:
  """Each example rotated by an angle uniform in [-max_degrees, max_degrees]."""
  deg_B = jax.random.uniform(key, (x_BxHxWxC.shape[0],), minval=-max_degrees,
                             maxval=max_degrees)
  return rotate_nearest(x_BxHxWxC, jnp.deg2rad(deg_B), fill_C)


def make_augment(kinds: Sequence[str], pad: int = 4,
                 fill: float | Sequence[float] = 0.0,
                 max_degrees: float = 15.0) -> Callable[..., jax.Array]:
  """Augmentation ``fn(key, x_BxHxWxC, train=True) -> x`` (jittable, vmappable).

  Args:
    kinds: subset of ('crop', 'flip', 'rotate'), applied in that order (as torchvision's
      RandomCrop, RandomHorizontalFlip, RandomRotation). Empty: identity.
    pad: crop padding per side (reference: 4).
    fill: value of padded and rotated-in pixels, a scalar or one value per channel
      (normalized units; black is ``tfds_data.pad_value``).
    max_degrees: rotation range (reference: 15).

  Returns:
    fn(key, x, train=True): a typed key per call (derive per-run, per-step keys with
    split/fold_in); with ``train=False`` returns ``x`` itself.
  """
  kinds = tuple(kinds)
  bad = [k for k in kinds if k not in KINDS]
  if bad:
    raise ConfigError("augment", f"unknown kind {bad[0]!r}; allowed: {', '.join(KINDS)}")
  if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
    raise ConfigError("augment", f"crop padding must be an integer >= 0, got {pad!r}")
  fill_c = jnp.atleast_1d(jnp.asarray(fill, jnp.float32))

  def augment(key, x_BxHxWxC, train: bool = True):
    if not train or not kinds:
      return x_BxHxWxC
    if x_BxHxWxC.ndim != 4:
      raise ValueError(f"augmentation needs images (B, H, W, C), got {x_BxHxWxC.shape}")
    c = x_BxHxWxC.shape[-1]
    if fill_c.shape[0] not in (1, c):
      raise ValueError(f"fill has {fill_c.shape[0]} values for {c} channels")
    k_crop, k_flip, k_rot = jax.random.split(key, 3)
    fill_C = jnp.broadcast_to(fill_c, (c,))
    if "crop" in kinds:
      x_BxHxWxC = random_crop(k_crop, x_BxHxWxC, pad, fill_C)
    if "flip" in kinds:
      x_BxHxWxC = random_flip(k_flip, x_BxHxWxC)
    if "rotate" in kinds:
      x_BxHxWxC = random_rotation(k_rot, x_BxHxWxC, max_degrees, fill_C)
    return x_BxHxWxC

  return augment
