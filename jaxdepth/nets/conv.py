"""CONV-L-H: L conv layers of H channels, as pure init/apply (Galanti et al. 2022, §10.2).

Architecture (jaxdepth's documented choices for what the paper leaves open):

- Layer 1 (stem): a downsampling conv from the input channels to H,
  3x3 stride 2 padding 1 for 2-D inputs (B, H_in, W_in, C), kernel 3 stride 2
  padding 1 for 1-D inputs (B, T, C) (or (B, T), read as one channel), then
  BatchNorm, then ReLU. Padding 1 matches PyTorch's ``Conv2d(..., 3, 2, 1)``:
  spatial size ceil(n / 2).
- Layers 2..L: 3x3 (or k=3) conv, H -> H, stride 1, padding 1, then BN, then ReLU.
  Their weights are stacked on a leading axis (L-1, 3, 3, H, H) and applied with
  ``lax.scan``; BN scales, biases and running statistics are stacked the same way,
  so compile time stays flat in L.
- Head: global average pooling (default) or flatten, then Linear(-> C).
- Conv biases exist only without BatchNorm (with BN they are redundant).
- Convs run as XLA convolutions on accelerators and as summed shifted matmuls on
  CPU, where native conv gradients inside loops are 20-30x slower (``conv_patches``).
- Embedding of layer i: the post-ReLU output of layer i, flattened in NHWC order.
  The stem output and the scanned layers have the same shape, so all L embeddings
  come back as ONE feats group of shape (L, B, h*w*H).

BatchNorm and initializations ('kaiming' | 'pytorch'; BN scale 1, bias 0) are those
of jaxdepth/nets/layers.py, shared by every family.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxdepth.engine.validate import ConfigError
from jaxdepth.nets.base import Network
from jaxdepth.nets.layers import (
  INITS,
  bias_spec,
  bn_layer,
  bn_specs,
  materialize,
  weight_spec,
)

HEADS = ("gap", "flatten")


# ----------------------------------------------------------------------------- shared
# Building blocks shared with jaxdepth/nets/trunks.py (ResNet-18).


# Config field names in errors: the collapse schema (jaxdepth/configs/common.py) keeps family,
# depth, width, batchnorm and init at the top level and family extras under model.
TOP_LEVEL = ("family", "depth", "width", "batchnorm", "init")


def field_name(name: str) -> str:
  return name if name in TOP_LEVEL else f"model.{name}"


def _get(cfg, name: str, default: Any) -> Any:
  """Field of a ConfigDict or dict, with a default for family-specific fields."""
  return cfg.get(name, default)


def _channel(v_C: jax.Array, ndim: int) -> jax.Array:
  """(C,) -> (1, ..., 1, C), explicit broadcasting (rank promotion is 'raise')."""
  return v_C.reshape((1,) * (ndim - 1) + v_C.shape)


def conv(x, w, stride: int, padding: int, impl: str = "xla") -> jax.Array:
  """N-d conv, channels last: x (B, *S, Cin), w (*K, Cin, Cout) -> (B, *S', Cout).

  impl 'xla': ``lax.conv_general_dilated``; 'patches': :func:`conv_patches` (same
  result; fast to differentiate inside loops on CPU).
  """
  if impl == "patches":
    return conv_patches(x, w, stride, padding)
  nd = x.ndim - 2
  spatial = "HW" if nd == 2 else "W"
  dn = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
  return lax.conv_general_dilated(
      x, w, window_strides=(stride,) * nd, padding=((padding, padding),) * nd,
      dimension_numbers=dn)


def conv_patches(x, w, stride: int, padding: int) -> jax.Array:
  """The same conv as matmuls over strided shifted copies of x (im2col, unmaterialized).

  y[b, i, j, o] = sum_{p, q} sum_c xpad[b, s i + p, s j + q, c] w[p, q, c, o]:
  one 2-D dot per kernel offset (p, q), summed.
  Why: on CPU, XLA runs the backward pass of a native conv inside a loop body (the
  trainer's scan over steps, or the scan over layers) about 20-30x slower than
  outside one (measured, 5 layers 64x4x4x32, weight gradient: 248 ms vs 12 ms with
  patches); pads, strided slices and dots differentiate into pads, slices and dots.
  Why a sum and not one matmul over a (B, *S', prod(K) * Cin) patch matrix: building
  that matrix (pad, 9 strided slices, concatenate) cost several times its dot on
  XLA:CPU; per training step of CONV-4-32 (batch 128, 32x32 inputs) the sum measured
  about 1.3x faster than the concatenated patch matrix, which was itself about 1.8x
  faster than a stack on a new axis with a two-axis einsum (interleaved, shared CPU).
  The CPU default only.
  """
  nd = x.ndim - 2
  kernel = w.shape[:nd]
  out = tuple(out_size(n, k, stride, padding) for n, k in zip(x.shape[1:-1], kernel))
  xp = jnp.pad(x, ((0, 0),) + ((padding, padding),) * nd + ((0, 0),))
  y = None
  for off in itertools.product(*(range(k) for k in kernel)):
    idx = (slice(None),) + tuple(slice(o, o + stride * (n - 1) + 1, stride)
                                 for o, n in zip(off, out))
    term = lax.dot_general(xp[idx], w[off], (((nd + 1,), (0,)), ((), ())))
    y = term if y is None else y + term
  return y


CONV_IMPLS = ("auto", "xla", "patches")


def resolve_conv_impl(impl: str) -> str:
  """'auto': 'patches' on CPU (see conv_patches), native 'xla' conv elsewhere."""
  if impl not in CONV_IMPLS:
    raise ConfigError("model.conv_impl",
                      f"unknown value {impl!r}; allowed: {', '.join(CONV_IMPLS)}")
  if impl == "auto":
    return "patches" if jax.default_backend() == "cpu" else "xla"
  return impl


def out_size(n: int, k: int, stride: int, pad: int) -> int:
  """Output length of a conv along one axis (PyTorch formula)."""
  return (n + 2 * pad - k) // stride + 1


# ----------------------------------------------------------------------------- CONV-L-H


def _conv_dims(input_shape: Sequence[int]) -> tuple[tuple[int, ...], int]:
  """(spatial shape, input channels) from a per-example shape; rank 1 = (T,) -> C=1."""
  shape = tuple(int(d) for d in input_shape)
  if len(shape) == 1:
    return shape, 1
  if len(shape) in (2, 3):
    return shape[:-1], shape[-1]
  raise ConfigError(
      "family",
      f"conv needs per-example inputs (T,), (T, C) or (H, W, C); got shape {shape}")


def validate_model(model_cfg) -> None:
  """Check the CONV-L-H fields (no compute): depth, width, init, head, conv_impl."""
  resolve_conv_impl(_get(model_cfg, "conv_impl", "auto"))
  depth, width = _get(model_cfg, "depth", None), _get(model_cfg, "width", None)
  for field, v in (("depth", depth), ("width", width)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ConfigError(field, f"must be an integer >= 1, got {v!r}")
  init = _get(model_cfg, "init", "kaiming")
  if init not in INITS:
    raise ConfigError("init", f"unknown value {init!r}; allowed: {', '.join(INITS)}")
  head = _get(model_cfg, "head", "gap")
  if head not in HEADS:
    raise ConfigError("model.head", f"unknown value {head!r}; allowed: {', '.join(HEADS)}")


def build_conv(model_cfg, input_shape: Sequence[int], num_classes: int) -> Network:
  """CONV-L-H as a Network (pure init/apply). See the module docstring.

  Args:
    model_cfg: ConfigDict/dict with depth (L), width (H), batchnorm (bool),
      init ('kaiming' | 'pytorch'), optional head ('gap' | 'flatten') and
      conv_impl ('auto' | 'xla' | 'patches'; 'auto' = patches on CPU, see
      conv_patches).
    input_shape: per-example shape: (H, W, C) -> 2-D convs; (T, C) or (T,) -> 1-D.
    num_classes: C.

  Returns:
    Network with apply(variables, x, train) -> (logits_BxC, (f_LxBxD,), stats),
    D = h*w*H (2-D) or t*H (1-D) where (h, w) = ceil of half the input size.
  """
  validate_model(model_cfg)
  depth, width = int(model_cfg["depth"]), int(model_cfg["width"])
  use_bn = bool(_get(model_cfg, "batchnorm", True))
  init = _get(model_cfg, "init", "kaiming")
  head = _get(model_cfg, "head", "gap")
  impl = resolve_conv_impl(_get(model_cfg, "conv_impl", "auto"))
  spatial, c_in = _conv_dims(input_shape)
  nd = len(spatial)
  if min(spatial) < 1:
    raise ConfigError("dataset", f"input shape {tuple(input_shape)} has an empty axis")
  feat_spatial = tuple(out_size(n, 3, 2, 1) for n in spatial)
  feat_dim = math.prod(feat_spatial) * width
  head_in = width if head == "gap" else feat_dim
  k = (3,) * nd
  fan_stem, fan_hid = 3**nd * c_in, 3**nd * width

  specs: dict = {
      "stem": {"w": weight_spec(k + (c_in, width), fan_stem, init)},
      "hidden": {"w": weight_spec((depth - 1,) + k + (width, width), fan_hid, init)},
      "head": {"w": weight_spec((head_in, num_classes), head_in, init, relu=False),
               "b": bias_spec((num_classes,), head_in, init)},
  }
  stat_specs: dict = {}
  if use_bn:
    specs["stem"]["bn"], stem_stats = bn_specs((width,))
    specs["hidden"]["bn"], hid_stats = bn_specs((depth - 1, width))
    stat_specs = {"stem": stem_stats, "hidden": hid_stats}
  else:
    specs["stem"]["b"] = bias_spec((width,), fan_stem, init)
    specs["hidden"]["b"] = bias_spec((depth - 1, width), fan_hid, init)

  def init_fn(key) -> dict:
    return {"params": materialize(key, specs),
            "batch_stats": materialize(key, stat_specs)}

  def block(x, p, s, stride, train):
    """conv -> (BN | bias) -> ReLU for one layer; returns (h, new_stats)."""
    h = conv(x, p["w"], stride, 1, impl)
    if use_bn:
      return bn_layer(h, p["bn"], s, train, relu=True)
    return jax.nn.relu(h + _channel(p["b"], h.ndim)), s

  def apply_fn(variables: dict, x, train: bool = False):
    p, st = variables["params"], variables["batch_stats"]
    x = x.astype(p["stem"]["w"].dtype)  # compute in the parameters' dtype (float32)
    expected = tuple(spatial) + (c_in,)
    x = x.reshape(x.shape[:1] + expected) if x.ndim == 2 and len(input_shape) == 1 else x
    if tuple(x.shape[1:]) != expected:
      raise ValueError(f"CONV-L-H built for inputs {expected}, got batch {x.shape}")
    batch = x.shape[0]
    h0, stem_stats = block(x, p["stem"], st.get("stem"), 2, train)

    def layer(h, ps):
      p_l, s_l = ps
      h, s_l = block(h, p_l, s_l, 1, train)
      return h, (h, s_l)

    hid_stats = st.get("hidden")
    h, (hs, new_hid) = lax.scan(layer, h0, (p["hidden"], hid_stats))
    feats_LxBxD = jnp.concatenate(
        [h0.reshape(1, batch, feat_dim), hs.reshape(depth - 1, batch, feat_dim)])
    z = jnp.mean(h, axis=tuple(range(1, h.ndim - 1))) if head == "gap" else h.reshape(batch, -1)
    logits_BxC = z @ p["head"]["w"] + p["head"]["b"][None, :]
    new_stats = {"stem": stem_stats, "hidden": new_hid} if use_bn and train else st
    return logits_BxC, (feats_LxBxD,), new_stats

  names = tuple(f"conv{i}" for i in range(1, depth + 1))
  # init is jitted: eagerly, every slice and fill would be dispatched (and compiled) alone.
  # NC3's classifier: the head acts on the flattened top layer (a pooled head does not).
  classifier = None if head == "gap" else (lambda v: v["params"]["head"]["w"].T)
  return Network(init=jax.jit(init_fn), apply=apply_fn, num_layers=depth, layer_names=names,
                 classifier=classifier)
