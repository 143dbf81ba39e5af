"""On-device training augmentation: random crop with padding, horizontal flip.

Used for training batches only. Every analysis (NCC, CDNV, train accuracy) runs on the
un-augmented data (Galanti et al. 2022, spec §12 and §15.5): the returned function is
the identity when called with ``train=False``, and it never modifies its input.

Reference pipeline for CIFAR (authors' code): RandomCrop(32, padding=4),
RandomHorizontalFlip, RandomRotation(15). jaxdepth implements crop and flip; rotation
is left out (documented decision: it needs an interpolating resampler and the spec
marks augmentation itself as a jaxdepth choice).

Padding value: the reference pads black pixels before normalization. Our images are
already normalized, so black is ``-mean / std`` per channel; pass it as ``fill`` (see
``jaxdepth.tfds_data.pad_value``). The default ``fill=0.0`` pads with the mean color.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxdepth.validate import ConfigError

KINDS = ("crop", "flip")


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


def make_augment(kinds: Sequence[str], pad: int = 4,
                 fill: float | Sequence[float] = 0.0) -> Callable[..., jax.Array]:
  """Augmentation ``fn(key, x_BxHxWxC, train=True) -> x`` (jittable, vmappable).

  Args:
    kinds: subset of ('crop', 'flip'), applied in that order (as torchvision's
      RandomCrop then RandomHorizontalFlip). Empty: identity.
    pad: crop padding per side (reference: 4).
    fill: padding value, a scalar or one value per channel (normalized units).

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
    k_crop, k_flip = jax.random.split(key)
    if "crop" in kinds:
      x_BxHxWxC = random_crop(k_crop, x_BxHxWxC, pad, jnp.broadcast_to(fill_c, (c,)))
    if "flip" in kinds:
      x_BxHxWxC = random_flip(k_flip, x_BxHxWxC)
    return x_BxHxWxC

  return augment
