"""ResNet-18 with a 128-wide projection and ``top_depth`` top layers.

Follows the authors' reference code for "On the Implicit Bias Towards Minimal Depth"
(Galanti et al. 2022), early versions:

1. CIFAR-style stem: 3x3 conv, w channels, stride 1, BN, ReLU, no max-pool.
2. Four stages of two BasicBlocks with w, 2w, 4w, 8w channels and strides 1, 2, 2, 2
   (w = ``model.width``, 64 in the paper). BasicBlock: conv3x3(stride) -> BN -> ReLU
   -> conv3x3 -> BN, plus the identity or a 1x1-conv(stride) -> BN shortcut, then ReLU.
   Convs have no bias.
3. Global average pooling (8w = 512).
4. ``fc``: Linear(8w -> 128) -> ReLU.
5. ``top_depth`` layers of width 128, either 'fc': Linear(128 -> 128) -> ReLU, or
   'res' (default): y = ReLU(x + W2 ReLU(W1 x + b1) + b2), hidden width 50. They share
   a shape, so they are stacked on a leading axis and applied with ``lax.scan``.
6. Classifier: Linear(128 -> C).

Design decision (documented): the trunk is written as pure functions over a dict of
arrays (convs via ``lax.conv_general_dilated``), not as an NNX module driven through
split/merge. BatchNorm running statistics then live in ``variables["batch_stats"]``
and are threaded explicitly, which is what the trainer needs to vmap init/apply over
runs; there is no mutable module state to split, merge or keep in sync. Parameters
are plain nested dicts, so checkpoints restore without model code.

Embeddings (each recorded layer's output, flattened): feats groups, in order, stem
(1, B, H*W*w), stage 1..4 (1, B, D_s each), pool (1, B, 8w), fc (1, B, 128), top
(top_depth, B, 128).
For 32x32x3 inputs and w = 64: 65536, 65536, 32768, 16384, 8192, 512, 128, then
128 per top layer. Default ``embed='post'`` records post-ReLU tensors everywhere;
``embed='reference'`` copies the reference code: ``fc`` and plain 'fc' top layers are
recorded before their ReLU (residual top blocks are recorded at their output).
BatchNorm and initializations: jaxdepth/nets/layers.py, as for every family (Flax
momentum 0.9, eps 1e-5; 'kaiming' He normal or 'pytorch' defaults).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxdepth.engine.validate import ConfigError
from jaxdepth.nets.base import Network
from jaxdepth.nets.conv import _get, conv, field_name, out_size, resolve_conv_impl
from jaxdepth.nets.layers import (
  INITS,
  bias_spec,
  bn_layer,
  bn_specs,
  materialize,
  weight_spec,
)

TOP_KINDS = ("res", "fc")
EMBEDS = ("post", "reference")
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2


def top_depth_of(model_cfg) -> int:
  """Number of top layers: ``top_depth`` if given, else ``depth`` (so that the trainer's
  depth sweeps sweep the top stack), else 2. Both given and different: an error."""
  top, depth = _get(model_cfg, "top_depth", None), _get(model_cfg, "depth", None)
  if top is not None and depth is not None and top != depth:
    raise ConfigError("model.top_depth", f"{top} conflicts with depth={depth}; for "
                      "resnet18_top, depth is the number of top layers: set only one")
  v = top if top is not None else (depth if depth is not None else 2)
  if isinstance(v, bool) or not isinstance(v, int) or v < 0:
    raise ConfigError("model.top_depth", f"must be an integer >= 0, got {v!r}")
  return v


def validate_model(model_cfg) -> None:
  """Check the resnet18_top fields (no compute)."""
  top_depth_of(model_cfg)
  for field, default, low in (("width", 64, 1), ("proj_width", 128, 1),
                              ("top_hidden", 50, 1)):
    v = _get(model_cfg, field, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
      raise ConfigError(field_name(field), f"must be an integer >= {low}, got {v!r}")
  for field, default, allowed in (("init", "kaiming", INITS), ("top_kind", "res", TOP_KINDS),
                                  ("embed", "post", EMBEDS)):
    v = _get(model_cfg, field, default)
    if v not in allowed:
      raise ConfigError(field_name(field),
                        f"unknown value {v!r}; allowed: {', '.join(allowed)}")


def feature_dims(input_shape: Sequence[int], width: int = 64, proj_width: int = 128,
                 top_depth: int = 2) -> tuple[int, ...]:
  """Flattened embedding size of every recorded layer, in feats order."""
  h, w = int(input_shape[0]), int(input_shape[1])
  dims = [h * w * width]
  for i, stride in enumerate(STAGE_STRIDES):
    h, w = out_size(h, 3, stride, 1), out_size(w, 3, stride, 1)
    dims.append(h * w * width * 2**i)
  return tuple(dims + [8 * width, proj_width] + [proj_width] * top_depth)


def build_resnet18_top(model_cfg, input_shape: Sequence[int], num_classes: int) -> Network:
  """ResNet-18 + fc + top layers as a Network (pure init/apply); see module docstring.

  Args:
    model_cfg: ConfigDict/dict; fields (defaults): width (64, base channels),
      depth or top_depth (2, number of top layers; see top_depth_of),
      top_kind ('res' | 'fc'), proj_width (128), top_hidden (50), batchnorm (True),
      init ('kaiming' | 'pytorch'), embed ('post' | 'reference'),
      conv_impl ('auto' | 'xla' | 'patches'; see jaxdepth.nets.conv.conv_patches).
    input_shape: per-example image shape (H, W, C).
    num_classes: C.
  """
  validate_model(model_cfg)
  shape = tuple(int(d) for d in input_shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ConfigError("family",
                      f"resnet18_top needs images (H, W, C); got per-example shape {shape}")
  width = int(_get(model_cfg, "width", 64))
  top_depth = top_depth_of(model_cfg)
  top_kind = _get(model_cfg, "top_kind", "res")
  proj, hidden = int(_get(model_cfg, "proj_width", 128)), int(_get(model_cfg, "top_hidden", 50))
  use_bn = bool(_get(model_cfg, "batchnorm", True))
  init = _get(model_cfg, "init", "kaiming")
  reference = _get(model_cfg, "embed", "post") == "reference"
  impl = resolve_conv_impl(_get(model_cfg, "conv_impl", "auto"))
  c_in = shape[2]
  dims = feature_dims(shape, width, proj, top_depth)

  def conv_bn(k: int, cin: int, cout: int):
    p = {"w": weight_spec((k, k, cin, cout), k * k * cin, init)}
    s = {}
    if use_bn:
      p["bn"], s = bn_specs((cout,))
    return p, s

  def dense(fan_in, fan_out, lead=(), relu=True, suffix=""):
    return {"w" + suffix: weight_spec(lead + (fan_in, fan_out), fan_in, init, relu=relu),
            "b" + suffix: bias_spec(lead + (fan_out,), fan_in, init)}

  specs, stat_specs = {}, {}
  specs["stem"], stat_specs["stem"] = conv_bn(3, c_in, width)
  cin = width
  for i, stride in enumerate(STAGE_STRIDES):
    cout = width * 2**i
    for b in range(BLOCKS_PER_STAGE):
      bp, bs = {}, {}
      bp["conv1"], bs["conv1"] = conv_bn(3, cin, cout)
      bp["conv2"], bs["conv2"] = conv_bn(3, cout, cout)
      if (stride if b == 0 else 1) != 1 or cin != cout:
        bp["proj"], bs["proj"] = conv_bn(1, cin, cout)
      specs[f"stage{i + 1}_block{b}"], stat_specs[f"stage{i + 1}_block{b}"] = bp, bs
      cin = cout
  specs["fc"] = dense(cin, proj)
  if top_kind == "res":
    specs["top"] = {**dense(proj, hidden, (top_depth,), suffix="1"),
                    **dense(hidden, proj, (top_depth,), suffix="2")}
  else:
    specs["top"] = dense(proj, proj, (top_depth,))
  specs["head"] = dense(proj, num_classes, relu=False)
  if not use_bn:
    stat_specs = {}

  def init_fn(key) -> dict:
    return {"params": materialize(key, specs), "batch_stats": materialize(key, stat_specs)}

  def apply_fn(variables: dict, x, train: bool = False):
    p, st = variables["params"], variables["batch_stats"]
    if tuple(x.shape[1:]) != shape:
      raise ValueError(f"resnet18_top built for inputs {shape}, got batch {x.shape}")
    x = x.astype(p["stem"]["w"].dtype)  # compute in the parameters' dtype (float32)
    batch = x.shape[0]
    new_st = {}

    def cbn(h, name, sub, stride, pad, relu=False):
      """conv -> BN (train/eval) [-> ReLU]; records the new running stats."""
      h = conv(h, p[name][sub]["w"], stride, pad, impl)
      if use_bn:
        h, new_st.setdefault(name, {})[sub] = bn_layer(h, p[name][sub]["bn"],
                                                       st[name][sub], train, relu)
        return h
      return jax.nn.relu(h) if relu else h

    h = conv(x, p["stem"]["w"], 1, 1, impl)
    if use_bn:
      h, new_st["stem"] = bn_layer(h, p["stem"]["bn"], st["stem"], train, relu=True)
    else:
      h = jax.nn.relu(h)
    feats = [h.reshape(1, batch, -1)]
    for i, stride in enumerate(STAGE_STRIDES):
      for b in range(BLOCKS_PER_STAGE):
        name = f"stage{i + 1}_block{b}"
        s_b = stride if b == 0 else 1
        y = cbn(h, name, "conv1", s_b, 1, relu=True)
        y = cbn(y, name, "conv2", 1, 1)
        sc = cbn(h, name, "proj", s_b, 0) if "proj" in p[name] else h
        h = jax.nn.relu(y + sc)
      feats.append(h.reshape(1, batch, -1))
    pool_BxF = jnp.mean(h, axis=(1, 2))
    feats.append(pool_BxF[None])
    z_BxP = pool_BxF @ p["fc"]["w"] + p["fc"]["b"][None, :]
    h_BxP = jax.nn.relu(z_BxP)
    feats.append((z_BxP if reference else h_BxP)[None])

    def top_layer(h_BxP, q):
      if top_kind == "res":
        u_BxH = jax.nn.relu(h_BxP @ q["w1"] + q["b1"][None, :])
        out = jax.nn.relu(h_BxP + u_BxH @ q["w2"] + q["b2"][None, :])
        return out, out
      z_BxP = h_BxP @ q["w"] + q["b"][None, :]
      out = jax.nn.relu(z_BxP)
      return out, (z_BxP if reference else out)

    h_BxP, tops_TxBxP = lax.scan(top_layer, h_BxP, p["top"])
    if top_depth:
      feats.append(tops_TxBxP)
    logits_BxC = h_BxP @ p["head"]["w"] + p["head"]["b"][None, :]
    return logits_BxC, tuple(feats), (new_st if use_bn and train else st)

  names = (("stem",) + tuple(f"stage{i}" for i in range(1, 5)) + ("pool", "fc")
           + tuple(f"top{i}" for i in range(1, top_depth + 1)))
  assert len(names) == len(dims)
  # init is jitted: eagerly, every slice and fill would be dispatched (and compiled) alone.
  return Network(init=jax.jit(init_fn), apply=apply_fn, num_layers=len(names),
                 layer_names=names)
