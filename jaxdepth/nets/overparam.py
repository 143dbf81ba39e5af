"""Linear over-parameterization (Huh et al. 2021): expand a Dense/Conv layer into d linear
sub-layers and collapse the product back into one exact single layer.

Row-vector convention (y = x @ W + b; kernels HWIO, images NHWC, as in flax). A layer
``in -> out`` becomes ``in -> h -> ... -> h -> out``, h = int(width * out), with no
nonlinearity inside and optional BatchNorm after every sub-layer. A k x k conv becomes a
k x k conv (with the padding) and d - 1 1 x 1 convs (the last with the stride).

Collapse: (W, b) = (W_1, b_1), then for i = 2..d: W <- W M_i, b <- b M_i + b_i, M_i the
(in, out) matrix of sub-layer i (a 1 x 1 conv mixes channels only); with BN, every
sub-layer's eval-mode BN is folded in: W <- W diag(s), b <- s (b - mu) + beta, s = gamma
/ sqrt(var + eps). A conv collapses to a k x k kernel, exactly, since only the first
sub-conv is padded.

Init (Huh et al.'s reference code): Kaiming normal, std 1/sqrt(fan) for every sub-layer
but the last, gain/sqrt(fan) for the last (fan_in for Dense; fan_out by default, or
fan_in, for Conv), so the collapsed map has the variance of one Kaiming layer. Biases
U(+-1/sqrt(fan_in)); BN scale 1, shift 0 (drawn with nets/layers.py).

Pure and jittable: ``init(key, spec) -> (params, batch_stats)``, ``apply(spec, params,
x, batch_stats, train) -> (y, new_batch_stats)``, ``collapse(spec, params, batch_stats)
-> {"kernel", ["bias"]}``, ``apply_plain(spec, plain, x)``; for whole networks (the
``overparam`` family, expanded.py): ``Site``, ``expand_params``, ``collapse_params``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdepth.nets.layers import BN_EPS, Init, batch_norm, bn_init, draw

HIGHEST = lax.Precision.HIGHEST
_CONV_DIMS = ("NHWC", "HWIO", "NHWC")


def _pair(v, name) -> tuple[int, int]:
  if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
    return (int(v), int(v))
  if isinstance(v, (tuple, list)) and len(v) == 2 and all(
      isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
    return (int(v[0]), int(v[1]))
  raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")


class _SpecBase:
  depth: int
  width: float

  @property
  def hidden(self) -> int:
    return int(self.width * self.out_features)

  def sub_channels(self) -> list[tuple[int, int]]:
    """(in, out) channels of every sub-layer."""
    nodes = [self.in_features] + [self.hidden] * (self.depth - 1) + [self.out_features]
    return list(zip(nodes[:-1], nodes[1:]))

  def _check_common(self, *int_fields: str) -> None:
    for f in (*int_fields, "depth"):
      v = getattr(self, f)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{f}: must be an integer >= 1, got {v!r}")
    if not (isinstance(self.width, (int, float)) and math.isfinite(self.width)
            and self.width > 0):
      raise ValueError(f"width: must be a positive number, got {self.width!r}")
    if self.depth > 1 and self.hidden < 1:
      raise ValueError(f"width: int(width * out) = {self.hidden} hidden units; must be >= 1")


@dataclasses.dataclass(frozen=True)
class DenseSpec(_SpecBase):
  """A Dense ``d_in -> d_out`` layer expanded into ``depth`` linear sub-layers."""
  d_in: int
  d_out: int
  depth: int = 2
  width: float = 1.0             # hidden size h = int(width * d_out)
  bias: bool = True              # a bias in every sub-layer
  batchnorm: bool = False        # BN after every sub-layer (folded at eval)
  gain: float = math.sqrt(2.0)   # gain of the activation after the layer (ReLU)

  in_features = property(lambda self: self.d_in)
  out_features = property(lambda self: self.d_out)
  kind = "dense"

  def __post_init__(self):
    self._check_common("d_in", "d_out")


@dataclasses.dataclass(frozen=True)
class ConvSpec(_SpecBase):
  """A 2-D conv (NHWC, HWIO, zero padding) expanded into ``depth`` sub-convs."""
  in_ch: int
  out_ch: int
  kernel: Any = 3                # int or (kh, kw) of the original (and first) conv
  depth: int = 2
  width: float = 1.0             # hidden channels h = int(width * out_ch)
  stride: Any = 1                # on the last sub-conv
  padding: Any = "SAME"          # 'SAME' | 'VALID' | int | ((lo, hi), (lo, hi)); first
  bias: bool = True
  batchnorm: bool = False
  gain: float = math.sqrt(2.0)
  fan: str = "fan_out"           # Kaiming fan of the sub-convs (reference: fan_out)

  in_features = property(lambda self: self.in_ch)
  out_features = property(lambda self: self.out_ch)
  kind = "conv"

  def __post_init__(self):
    object.__setattr__(self, "kernel", _pair(self.kernel, "kernel"))
    object.__setattr__(self, "stride", _pair(self.stride, "stride"))
    if min(self.kernel + self.stride) < 1:
      raise ValueError("kernel and stride must be >= 1")
    if self.fan not in ("fan_in", "fan_out"):
      raise ValueError(f"fan: allowed 'fan_in', 'fan_out', got {self.fan!r}")
    self._check_common("in_ch", "out_ch")
    self.first_padding()  # validates the padding

  def first_padding(self):
    """Explicit (lo, hi) padding pairs of the first sub-conv (stride 1 there)."""
    p = self.padding
    if isinstance(p, str) and p.upper() == "VALID":
      return ((0, 0), (0, 0))
    if isinstance(p, str) and p.upper() == "SAME":
      if self.depth == 1 and self.stride != (1, 1):
        return "SAME"  # input-size dependent; only for an unexpanded strided conv
      return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in self.kernel)
    if isinstance(p, str):
      raise ValueError(f"padding: only zero padding 'SAME'/'VALID'/ints, got {p!r} "
                       "(padding modes are not expanded)")
    if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
      return ((int(p), int(p)),) * 2
    try:
      pairs = tuple(_pair(q, "padding") for q in p)
    except TypeError:
      raise ValueError(f"padding: unsupported value {p!r}") from None
    if len(pairs) != 2:
      raise ValueError(f"padding: expected two (lo, hi) pairs, got {p!r}")
    return pairs


Spec = DenseSpec | ConvSpec


def init(key: jax.Array, spec: Spec, dtype=jnp.float32) -> tuple[dict, dict]:
  """Expanded parameters and BN running statistics ({} without BN). Layout: {"first",
  "mid" (depth >= 3; depth - 2 sub-layers stacked), "last" (depth >= 2)}, each with
  "kernel", optional "bias", with BN "bn_scale"/"bn_bias"; stats: "mean"/"var"."""
  d = spec.depth
  # One random call per group (first, stacked mid, last): few threefry ops to compile.
  groups = [("first", 0, ())] + ([("mid", 1, (d - 2,))] if d >= 3 else []) + (
      [("last", d - 1, ())] if d >= 2 else [])
  keys = jax.random.split(key, 2 * len(groups))
  params, stats = {}, {}
  for i, (g, j, lead) in enumerate(groups):
    spatial = () if spec.kind == "dense" else (spec.kernel if j == 0 else (1, 1))
    shape = spatial + spec.sub_channels()[j]  # (kh, kw,) in, out
    receptive = math.prod(shape[:-2])
    fan = receptive * (shape[-2] if spec.kind == "dense" or spec.fan == "fan_in"
                       else shape[-1])
    gain = spec.gain if j == d - 1 else 1.0
    p = {"kernel": draw(keys[2 * i], Init("normal", lead + shape, gain / math.sqrt(fan)),
                        dtype)}
    if spec.bias:
      bound = 1.0 / math.sqrt(receptive * shape[-2])
      p["bias"] = draw(keys[2 * i + 1], Init("uniform", lead + shape[-1:], bound), dtype)
    if spec.batchnorm:
      bn, stats[g] = bn_init(*lead, shape[-1], dtype=dtype)
      p["bn_scale"], p["bn_bias"] = bn["scale"], bn["bias"]
    params[g] = p
  return params, stats


def num_params(spec: Spec) -> int:
  """Trainable parameter count of the expansion."""
  shapes = jax.eval_shape(lambda k: init(k, spec)[0], jax.random.key(0))
  return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))


def check_params(spec: Spec, params, batch_stats=None) -> None:
  """Raise a ValueError unless ``params`` (and stats) have exactly the layout that
  :func:`init` produces for ``spec`` (same keys, shapes)."""
  want_p, want_s = jax.eval_shape(lambda k: init(k, spec), jax.random.key(0))
  describe = lambda t: jax.tree.map(lambda a: tuple(np.shape(a)), t)
  same = lambda t, want: isinstance(t, dict) and describe(t) == describe(want)
  if not same(params, want_p):
    got = describe(params) if isinstance(params, dict) else type(params).__name__
    raise ValueError(f"collapse: params were not produced by overparam.init for {spec}: "
                     f"expected {describe(want_p)}, got {got}")
  if spec.batchnorm and not batch_stats:
    raise ValueError("collapse: spec has batchnorm=True; pass the BN batch_stats "
                     "(running mean/var) to fold them")
  if spec.batchnorm and not same(batch_stats, want_s):
    raise ValueError(f"collapse: batch_stats do not match {spec}: expected "
                     f"{describe(want_s)}, got {describe(batch_stats)}")


def _bcast(v, ndim):
  return v.reshape((1,) * (ndim - 1) + v.shape)


def _sublayer(spec, j, p, st, x, train):
  """Sub-layer j: linear map, bias, BN. Returns (y, new_stats)."""
  if spec.kind == "dense":
    y = jnp.matmul(x, p["kernel"], precision=HIGHEST)
  else:
    last, first = j == spec.depth - 1, j == 0
    y = lax.conv_general_dilated(
        x, p["kernel"], window_strides=spec.stride if last else (1, 1),
        padding=spec.first_padding() if first else ((0, 0), (0, 0)),
        dimension_numbers=_CONV_DIMS, precision=HIGHEST)
  if "bias" in p:
    y = y + _bcast(p["bias"], y.ndim)
  if not spec.batchnorm:
    return y, st
  y, mean, var = batch_norm(y, p["bn_scale"], p["bn_bias"], st["mean"], st["var"], train)
  return y, {"mean": mean, "var": var}


def apply(spec: Spec, params: dict, x, batch_stats: dict | None = None,
          train: bool = False):
  """The expanded layer applied sub-layer by sub-layer: (y, new_batch_stats).

  x: (..., d_in) for a DenseSpec, (B, H, W, in_ch) for a ConvSpec; params and
  batch_stats (ignored without BN) from :func:`init`; train: BN uses the batch
  statistics and returns updated running averages (nets/layers.py batch_norm).
  """
  d = spec.depth
  stats = batch_stats if spec.batchnorm else None
  get_st = lambda g: stats[g] if stats is not None else None
  new_stats = {}
  h, new_stats["first"] = _sublayer(spec, 0, params["first"], get_st("first"), x, train)
  if d >= 3:
    body = lambda h, ps: _sublayer(spec, 1, ps[0], ps[1], h, train)
    h, new_stats["mid"] = lax.scan(body, h, (params["mid"], get_st("mid")))
  if d >= 2:
    h, new_stats["last"] = _sublayer(spec, d - 1, params["last"], get_st("last"), h, train)
  return h, (new_stats if spec.batchnorm else batch_stats)


def collapse(spec: Spec, params: dict, batch_stats: dict | None = None) -> dict:
  """Plain single-layer parameters {"kernel", ["bias" with biases or BN]} equal (to
  rounding) to the eval-mode expanded layer, for :func:`apply_plain`. Raises ValueError
  for parameters that :func:`init` does not produce for this spec (shapes only)."""
  check_params(spec, params, batch_stats)
  d = spec.depth
  stats = batch_stats if spec.batchnorm else None

  def step(p, st, w=None, b=None):
    bias = p["bias"] if "bias" in p else jnp.zeros(p["kernel"].shape[-1:], p["kernel"].dtype)
    if w is None:  # the first sub-layer
      w, b = p["kernel"], bias
    else:  # a 1 x 1 conv is the matrix kernel[0, 0] over channels
      m = p["kernel"] if spec.kind == "dense" else p["kernel"][0, 0]
      w = jnp.matmul(w, m, precision=HIGHEST)
      b = jnp.matmul(b[None], m, precision=HIGHEST)[0] + bias
    if spec.batchnorm:
      s = p["bn_scale"] * lax.rsqrt(st["var"] + BN_EPS)
      w, b = w * _bcast(s, w.ndim), s * (b - st["mean"]) + p["bn_bias"]
    return w, b

  w, b = step(params["first"], stats and stats["first"])
  if d >= 3:
    body = lambda wb, ps: (step(ps[0], ps[1], *wb), None)
    (w, b), _ = lax.scan(body, (w, b), (params["mid"], stats and stats["mid"]))
  if d >= 2:
    w, b = step(params["last"], stats and stats["last"], w, b)
  return {"kernel": w, "bias": b} if spec.bias or spec.batchnorm else {"kernel": w}


def apply_plain(spec: Spec, plain: dict, x):
  """Apply collapsed parameters as one ordinary Dense/Conv layer."""
  if spec.kind == "dense":
    y = jnp.matmul(x, plain["kernel"], precision=HIGHEST)
  else:
    y = lax.conv_general_dilated(
        x, plain["kernel"], window_strides=spec.stride, padding=spec.first_padding(),
        dimension_numbers=_CONV_DIMS, precision=HIGHEST)
  if "bias" in plain:
    y = y + _bcast(plain["bias"], y.ndim)
  return y


def plain_layer(spec: Spec) -> dict:
  """Hyperparameters of the collapsed single layer (for building e.g. a flax Conv)."""
  if spec.kind == "dense":
    return dict(features=spec.d_out, use_bias=spec.bias or spec.batchnorm)
  return dict(features=spec.out_ch, kernel_size=spec.kernel, strides=spec.stride,
              padding=spec.first_padding(), use_bias=spec.bias or spec.batchnorm)


class Site(NamedTuple):
  """One layer of a user's params tree to expand.

  kernel: path (tuple of dict keys) of the plain kernel leaf ((in, out) or HWIO).
  bias: path of its bias leaf, folded into the expansion (then ``spec.bias`` must be
    True), or None (``spec.bias`` False; any separate bias stays as it is).
  spec: the expansion (BN inside expansions is not supported here: no batch_stats).
  stacked: > 0 when the leaf is a stack of that many layers on a leading axis
    (scanned networks); each layer is expanded on its own (vmapped).
  one_d: the leaf is a 1-D conv kernel (k, in, out), expanded as a (1, k) 2-D conv.
  """
  kernel: tuple
  bias: tuple | None
  spec: Any
  stacked: int = 0
  one_d: bool = False


def _get_path(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def _set_path(tree, path, value):
  """Copy of nested dict ``tree`` with ``path`` set (value None deletes)."""
  out = dict(tree)
  if len(path) == 1:
    if value is None:
      out.pop(path[0], None)
    else:
      out[path[0]] = value
    return out
  out[path[0]] = _set_path(tree[path[0]], path[1:], value)
  return out


def _check_site(site: Site, params) -> None:
  spec = site.spec
  if spec.batchnorm:
    raise ValueError(f"site {site.kernel}: BN inside expansions needs batch_stats; use "
                     "init/apply/collapse on that layer instead of expand_params")
  if (site.bias is None) == bool(spec.bias):
    raise ValueError(f"site {site.kernel}: spec.bias={spec.bias} but bias path "
                     f"{site.bias}; give the bias leaf exactly when spec.bias is True")
  want = jax.eval_shape(lambda k: collapse(spec, init(k, spec)[0]), jax.random.key(0))
  shape = tuple(np.shape(_get_path(params, site.kernel)))
  lead = (site.stacked,) if site.stacked else ()
  plain = want["kernel"].shape[1:] if site.one_d else want["kernel"].shape
  if site.one_d and want["kernel"].shape[0] != 1:
    raise ValueError(f"site {site.kernel}: one_d needs a (1, k) ConvSpec kernel")
  if shape != lead + plain:
    raise ValueError(f"site {site.kernel}: leaf shape {shape} does not match the spec's "
                     f"collapsed kernel {lead + plain}")


def expand_params(key, params: dict, sites) -> dict:
  """Replace every site's kernel leaf by ``{"expanded": factors}`` (bias leaf removed;
  the expansion carries it). Factors use :func:`init` (the old values are not kept:
  the collapsed map only matches them in distribution)."""
  out = params
  for i, site in enumerate(sites):
    _check_site(site, params)
    k = jax.random.fold_in(key, i)
    init_one = lambda kk, spec=site.spec: init(kk, spec)[0]
    p = jax.vmap(init_one)(jax.random.split(k, site.stacked)) if site.stacked else init_one(k)
    out = _set_path(out, site.kernel, {"expanded": p})
    if site.bias is not None:
      out = _set_path(out, site.bias, None)
  return out


def collapse_params(expanded: dict, sites) -> dict:
  """Inverse layout of :func:`expand_params`: plain kernels (and biases) from the
  factors, ready for the original network's apply. Differentiable: training through
  ``apply(collapse_params(p))`` gives the expanded network's gradients."""
  out = expanded
  for site in sites:
    node = _get_path(expanded, site.kernel)
    if not isinstance(node, dict) or set(node) != {"expanded"}:
      raise ValueError(f"collapse_params: {site.kernel} holds no expanded factors "
                       "(params were not produced by expand_params with these sites)")
    fn = lambda p: collapse(site.spec, p)  # noqa: B023
    plain = jax.vmap(fn)(node["expanded"]) if site.stacked else fn(node["expanded"])
    w = plain["kernel"]
    if site.one_d:
      w = w.reshape(w.shape[:-4] + w.shape[-3:])
    out = _set_path(out, site.kernel, w)
    if site.bias is not None:
      out = _set_path(out, site.bias, plain["bias"])
  return out
