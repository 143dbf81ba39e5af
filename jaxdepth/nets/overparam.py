"""Linear over-parameterization: expand a Dense/Conv layer into d linear sub-layers
and collapse the product back into one exact single layer (Huh et al. 2021, Sec. 6).

Row-vector convention (y = x @ W + b; kernels HWIO, images NHWC, as in flax). A layer
``in -> out`` becomes ``in -> h -> ... -> h -> out`` with d sub-layers, h =
int(width * out), no nonlinearity inside, optional BatchNorm after every sub-layer and
optional identity skips every ``skip`` sub-layers (-1: input to output). A k x k conv
becomes a k x k conv followed by (d - 1) 1 x 1 convs (or an explicit kernel list whose
length must equal d); padding and dilation go on the first sub-conv, stride on the last.

Collapse (spec low_rank_bias.md Sec. 6.8), starting from (W, b) = (W_1, b_1) and for
i = 2..d:  W <- W * W_i,  b <- push(b, W_i) + b_i,  then BN fold
W <- W diag(s), b <- s (b - mu) + beta with s = gamma / sqrt(var + eps), and at skip
nodes (W, b) += (W_src, b_src). For convs ``*`` is a full 2-D convolution of the
spatial kernels summed over the hidden channel (composite size sum k_i - d + 1) and
``push`` multiplies by the spatially summed kernel (exact since only the first
sub-conv is padded). Grouped and depthwise convs are expanded group-wise (every
sub-conv has the same ``groups``), so collapse gives a kernel of the original grouped
shape; nothing is densified.

Init (authors' reference, Sec. 6.4): Kaiming normal, std 1/sqrt(fan) for every
sub-layer but the last, gain/sqrt(fan) for the last (fan_in for Dense, fan_out for
Conv), so the collapsed map has the variance of one Kaiming layer. Biases uniform in
+-1/sqrt(fan_in); BN scale 1, shift 0.

Everything is pure and jittable: ``init(key, spec) -> (params, batch_stats)``,
``apply(spec, params, x, batch_stats, train) -> (y, new_batch_stats)``,
``collapse(spec, params, batch_stats) -> {"kernel", ["bias"]}`` and
``apply_plain(spec, plain, x)``. ``probe_collapse`` recovers the same plain layer by
evaluating the (affine, eval-mode) block on one-hot inputs: the test oracle.

Why this module is long (~750 lines): spec, init, apply and collapse of one expanded
layer are one algorithm whose four parts must agree exactly (the collapse is checked
against apply to float32 rounding for every spec option: groups, dilation, skips,
BatchNorm); kept together, a change to one part is next to the others it must match.
The whole-network drop-in (Site, expand_params, collapse_params) is the last 100 lines.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

HIGHEST = lax.Precision.HIGHEST
BN_EPS = 1e-5
BN_MOMENTUM = 0.9
_GROUPS = ("first", "mid", "last")


def _pair(v, name) -> tuple[int, int]:
  if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
    return (int(v), int(v))
  if isinstance(v, (tuple, list)) and len(v) == 2 and all(
      isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
    return (int(v[0]), int(v[1]))
  raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")


def _check_common(spec) -> None:
  if isinstance(spec.depth, bool) or not isinstance(spec.depth, int) or spec.depth < 1:
    raise ValueError(f"depth: expansion depth must be an integer >= 1, got {spec.depth!r}")
  if not (isinstance(spec.width, (int, float)) and math.isfinite(spec.width)
          and spec.width > 0):
    raise ValueError(f"width: must be a positive number, got {spec.width!r}")
  if spec.depth > 1 and spec.hidden < 1:
    raise ValueError(f"width: int(width * out) = {spec.hidden} hidden units; must be >= 1")
  if spec.skip is not None and (isinstance(spec.skip, bool) or not isinstance(
      spec.skip, int) or not (spec.skip >= 1 or spec.skip == -1)):
    raise ValueError(f"skip: interval must be None, -1 or an integer >= 1, got {spec.skip!r}")
  for node in spec.skip_nodes():
    a, b = spec.node_channels(node - spec.skip_interval), spec.node_channels(node)
    if a != b:
      raise ValueError(
          f"skip: span from node {node - spec.skip_interval} to node {node} changes the "
          f"width ({a} -> {b}); identity skips need equal widths (width multiplier, "
          "in/out sizes)")


class _SpecBase:
  depth: int
  width: float
  skip: int | None

  @property
  def hidden(self) -> int:
    return int(self.width * self.out_features)

  @property
  def skip_interval(self) -> int:
    return self.depth if self.skip == -1 else (self.skip or 0)

  def skip_nodes(self) -> tuple[int, ...]:
    n = self.skip_interval
    return tuple(range(n, self.depth + 1, n)) if n else ()

  def node_channels(self, node: int) -> int:
    if node == 0:
      return self.in_features
    return self.out_features if node == self.depth else self.hidden

  def sub_channels(self) -> list[tuple[int, int]]:
    return [(self.node_channels(i), self.node_channels(i + 1)) for i in range(self.depth)]


@dataclasses.dataclass(frozen=True)
class DenseSpec(_SpecBase):
  """A Dense ``d_in -> d_out`` layer expanded into ``depth`` linear sub-layers."""
  d_in: int
  d_out: int
  depth: int = 2
  width: float = 1.0             # hidden size h = int(width * d_out)
  bias: bool = True              # a bias in every sub-layer
  batchnorm: bool = False        # BN after every sub-layer (folded at eval)
  skip: int | None = None        # identity skip every `skip` sub-layers; -1 in->out
  gain: float = math.sqrt(2.0)   # gain of the activation after the layer (ReLU)

  in_features = property(lambda self: self.d_in)
  out_features = property(lambda self: self.d_out)
  kind = "dense"

  def __post_init__(self):
    for f in ("d_in", "d_out"):
      v = getattr(self, f)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{f}: must be an integer >= 1, got {v!r}")
    _check_common(self)


@dataclasses.dataclass(frozen=True)
class ConvSpec(_SpecBase):
  """A 2-D conv (NHWC, HWIO, zero padding) expanded into ``depth`` sub-convs."""
  in_ch: int
  out_ch: int
  kernel: Any = 3                # int or (kh, kw) of the original conv
  depth: int = 2
  width: float = 1.0             # hidden channels h = int(width * out_ch)
  stride: Any = 1                # on the last sub-conv
  padding: Any = "SAME"          # 'SAME' | 'VALID' | int | ((lo, hi), (lo, hi)); first
  dilation: Any = 1              # on the first sub-conv
  groups: int = 1                # every sub-conv grouped alike (depthwise: groups=in_ch)
  bias: bool = True
  batchnorm: bool = False
  skip: int | None = None
  gain: float = math.sqrt(2.0)
  fan: str = "fan_out"           # Kaiming fan of the sub-convs (reference: fan_out)
  kernel_sizes: Any = None       # explicit per-sub-conv sizes, len == depth

  in_features = property(lambda self: self.in_ch)
  out_features = property(lambda self: self.out_ch)
  kind = "conv"

  def __post_init__(self):
    for f in ("in_ch", "out_ch", "groups"):
      v = getattr(self, f)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{f}: must be an integer >= 1, got {v!r}")
    set_ = lambda k, v: object.__setattr__(self, k, v)
    set_("kernel", _pair(self.kernel, "kernel"))
    set_("stride", _pair(self.stride, "stride"))
    set_("dilation", _pair(self.dilation, "dilation"))
    if min(self.kernel + self.stride + self.dilation) < 1:
      raise ValueError("kernel, stride and dilation must be >= 1")
    if self.fan not in ("fan_in", "fan_out"):
      raise ValueError(f"fan: allowed 'fan_in', 'fan_out', got {self.fan!r}")
    _check_common(self)
    if self.kernel_sizes is None:
      sizes = (self.kernel,) + ((1, 1),) * (self.depth - 1)
    else:
      if not isinstance(self.kernel_sizes, (tuple, list)):
        raise ValueError(f"kernel_sizes: expected a tuple, got {self.kernel_sizes!r}")
      sizes = tuple(_pair(k, "kernel_sizes") for k in self.kernel_sizes)
      if len(sizes) != self.depth:
        raise ValueError(f"kernel_sizes: {len(sizes)} sizes given for depth {self.depth}; "
                         "a kernel list never overrides the depth")
    set_("kernel_sizes", sizes)
    if self.depth >= 3 and len(set(sizes[1:-1])) > 1:
      raise ValueError(f"kernel_sizes: middle sub-convs must share one size, got {sizes}")
    g = self.groups
    for name, c in (("in_ch", self.in_ch), ("out_ch", self.out_ch),
                    ("width", self.hidden if self.depth > 1 else g)):
      if c % g:
        raise ValueError(f"groups: {name} channels ({c}) must be divisible by groups={g}; "
                         "grouped convs are expanded group-wise, never densified")
    later_big = any(k != (1, 1) for k in sizes[1:])
    if self.dilation != (1, 1) and later_big:
      raise ValueError("dilation: only supported when every sub-conv after the first "
                       "is 1x1")
    if isinstance(self.padding, str):
      if self.padding.upper() not in ("SAME", "VALID"):
        raise ValueError(f"padding: only zero padding 'SAME'/'VALID'/ints, got "
                         f"{self.padding!r} (padding modes are not expanded)")
    if self.skip is not None:
      if later_big:
        raise ValueError("skip: identity skips need every sub-conv after the first to "
                         "be 1x1 (a Dirac kernel is only exact on same-aligned spans)")
      if self.stride != (1, 1) and self.depth in self.skip_nodes():
        raise ValueError("skip: a skip ending at the strided last sub-conv is not "
                         "shape-preserving")
      if any(n - self.skip_interval == 0 for n in self.skip_nodes()):
        pads = self.first_padding()
        eff = [self.dilation[i] * (self.kernel_sizes[0][i] - 1) for i in range(2)]
        if any(lo + hi != e for (lo, hi), e in zip(pads, eff)) or (
            self.dilation != (1, 1)):
          raise ValueError("skip: a skip from the input needs size-preserving padding "
                           "of the first sub-conv and no dilation")
    self.first_padding()  # validates int/pair padding

  def first_padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
    """Explicit (lo, hi) padding pairs of the first sub-conv (stride 1 there)."""
    p = self.padding
    k = self.kernel_sizes[0]
    if isinstance(p, str):
      if p.upper() == "VALID":
        return ((0, 0), (0, 0))
      first_stride = self.stride if self.depth == 1 else (1, 1)
      if first_stride != (1, 1):
        return "SAME"  # input-size dependent; only for an unexpanded strided conv
      out = []
      for i in range(2):
        total = self.dilation[i] * (k[i] - 1)
        out.append((total // 2, total - total // 2))
      return tuple(out)
    if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
      return ((int(p), int(p)),) * 2
    try:
      pairs = tuple(_pair(q, "padding") for q in p)
    except TypeError:
      raise ValueError(f"padding: unsupported value {p!r}") from None
    if len(pairs) != 2:
      raise ValueError(f"padding: expected two (lo, hi) pairs, got {p!r}")
    return pairs

  @property
  def composite_kernel(self) -> tuple[int, int]:
    """Collapsed kernel size: sum k_i - d + 1 per spatial axis."""
    return tuple(sum(k[i] for k in self.kernel_sizes) - self.depth + 1 for i in range(2))


Spec = DenseSpec | ConvSpec


def _sub(spec, j: int) -> dict:
  """Static attributes of sub-layer j (0-based)."""
  d = spec.depth
  cin, cout = spec.sub_channels()[j]
  out = dict(cin=cin, cout=cout, last=(j == d - 1))
  if spec.kind == "conv":
    out.update(kernel=spec.kernel_sizes[j],
               stride=spec.stride if j == d - 1 else (1, 1),
               padding=spec.first_padding() if j == 0 else ((0, 0), (0, 0)),
               dilation=spec.dilation if j == 0 else (1, 1))
  return out


def _group_of(spec, j: int) -> str:
  return "first" if j == 0 else ("last" if j == spec.depth - 1 else "mid")


def _kernel_shape(spec, j: int) -> tuple[int, ...]:
  s = _sub(spec, j)
  if spec.kind == "dense":
    return (s["cin"], s["cout"])
  return (*s["kernel"], s["cin"] // spec.groups, s["cout"])


# --------------------------------------------------------------------------- init


def init(key: jax.Array, spec: Spec, dtype=jnp.float32) -> tuple[dict, dict]:
  """Expanded parameters and BN running statistics ({} without BN).

  Layout: ``{"first": {...}, "mid": {...} (depth >= 3, stacked on a leading axis of
  depth - 2), "last": {...} (depth >= 2)}``, each with "kernel", optional "bias" and,
  with BN, "bn_scale"/"bn_bias"; batch_stats mirrors it with "mean"/"var".
  """
  d = spec.depth
  # One random call per group (first, stacked mid, last): few threefry ops to compile.
  reps = {"first": 1, "mid": d - 2, "last": 1}
  groups = [g for g in _GROUPS if (g == "first" or (g == "mid" and d >= 3)
                                   or (g == "last" and d >= 2))]
  keys = jax.random.split(key, 2 * len(groups))
  params, stats = {}, {}
  for i, g in enumerate(groups):
    j = {"first": 0, "mid": 1, "last": d - 1}[g]
    shape = _kernel_shape(spec, j)
    receptive = int(np.prod(shape[:-2]))
    if spec.kind == "dense" or spec.fan == "fan_in":
      fan = receptive * shape[-2]
    else:
      fan = receptive * shape[-1] // spec.groups
    gain = spec.gain if j == d - 1 else 1.0
    lead = (reps[g],) if g == "mid" else ()
    p = {"kernel": gain / math.sqrt(fan) * jax.random.normal(keys[2 * i], lead + shape,
                                                             dtype)}
    cout = (shape[-1],)
    if spec.bias:
      bound = 1.0 / math.sqrt(receptive * shape[-2])
      p["bias"] = jax.random.uniform(keys[2 * i + 1], lead + cout, dtype, -bound, bound)
    if spec.batchnorm:
      p["bn_scale"] = jnp.ones(lead + cout, dtype)
      p["bn_bias"] = jnp.zeros(lead + cout, dtype)
      stats[g] = {"mean": jnp.zeros(lead + cout, dtype), "var": jnp.ones(lead + cout, dtype)}
    params[g] = p
  return params, stats


def _pack(spec, subs: list) -> dict:
  d = spec.depth
  out = {"first": subs[0]}
  if d >= 3:
    out["mid"] = jax.tree.map(lambda *a: jnp.stack(a), *subs[1:-1])
  if d >= 2:
    out["last"] = subs[-1]
  return out


def num_params(spec: Spec) -> int:
  """Trainable parameter count of the expansion (spec Sec. 6.9 for d >= 2)."""
  shapes = jax.eval_shape(lambda k: init(k, spec)[0], jax.random.key(0))
  return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))


def check_params(spec: Spec, params, batch_stats=None) -> None:
  """Raise a ValueError unless ``params`` (and stats) have exactly the layout that
  :func:`init` produces for ``spec`` (same keys, shapes)."""
  want_p, want_s = jax.eval_shape(lambda k: init(k, spec), jax.random.key(0))

  def describe(tree):
    return jax.tree.map(lambda a: tuple(np.shape(a)), tree)

  try:
    ok = jax.tree.structure(params) == jax.tree.structure(want_p) and all(
        np.shape(a) == b.shape for a, b in zip(jax.tree.leaves(params),
                                               jax.tree.leaves(want_p)))
  except Exception:
    ok = False
  if not ok:
    got = describe(params) if isinstance(params, dict) else type(params).__name__
    raise ValueError(
        f"collapse: params were not produced by overparam.init for {spec}: expected "
        f"{describe(want_p)}, got {got}")
  if spec.batchnorm:
    if batch_stats is None or not batch_stats:
      raise ValueError("collapse: spec has batchnorm=True; pass the BN batch_stats "
                       "(running mean/var) to fold them")
    if jax.tree.structure(batch_stats) != jax.tree.structure(want_s) or any(
        np.shape(a) != b.shape for a, b in zip(jax.tree.leaves(batch_stats),
                                               jax.tree.leaves(want_s))):
      raise ValueError(f"collapse: batch_stats do not match {spec}: expected "
                       f"{describe(want_s)}, got {describe(batch_stats)}")


# -------------------------------------------------------------------------- apply


def _linear(spec, j: int, kernel, x, padding=None):
  if spec.kind == "dense":
    return jnp.matmul(x, kernel, precision=HIGHEST)
  s = _sub(spec, j)
  return lax.conv_general_dilated(
      x, kernel, window_strides=s["stride"],
      padding=s["padding"] if padding is None else padding,
      rhs_dilation=s["dilation"], dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=spec.groups, precision=HIGHEST)


def _bcast(v, ndim):
  return v.reshape((1,) * (ndim - 1) + v.shape)


def _sublayer(spec, j, p, st, x, train, padding=None):
  """One sub-layer: linear map, bias, BN. Returns (y, new_stats)."""
  y = _linear(spec, j, p["kernel"], x, padding)
  if "bias" in p:
    y = y + _bcast(p["bias"], y.ndim)
  if not spec.batchnorm:
    return y, st
  axes = tuple(range(y.ndim - 1))
  if train:
    mean, var = jnp.mean(y, axes), jnp.var(y, axes)
    st = {"mean": BN_MOMENTUM * st["mean"] + (1 - BN_MOMENTUM) * mean,
          "var": BN_MOMENTUM * st["var"] + (1 - BN_MOMENTUM) * var}
  else:
    mean, var = st["mean"], st["var"]
  y = (y - _bcast(mean, y.ndim)) * _bcast(lax.rsqrt(var + BN_EPS) * p["bn_scale"],
                                          y.ndim)
  return y + _bcast(p["bn_bias"], y.ndim), st


def apply(spec: Spec, params: dict, x, batch_stats: dict | None = None,
          train: bool = False, *, _padding=None):
  """The expanded layer applied sub-layer by sub-layer.

  Args:
    spec: DenseSpec (x: (..., d_in)) or ConvSpec (x: (B, H, W, in_ch)).
    params, batch_stats: from :func:`init` (batch_stats ignored without BN).
    train: BN uses batch statistics and updates running averages (momentum 0.9).

  Returns:
    (y, new_batch_stats).
  """
  d, n = spec.depth, spec.skip_interval
  nodes = set(spec.skip_nodes())
  stats = batch_stats if spec.batchnorm else None
  new_stats = {}

  def get_st(g):
    return stats[g] if stats is not None else None

  def skip_src_for_node0(h):
    src = x
    if _padding is not None and spec.kind == "conv" and x.shape != h.shape:
      (lo_h, _), (lo_w, _) = spec.first_padding()
      src = x[:, lo_h:lo_h + h.shape[1], lo_w:lo_w + h.shape[2], :]
    return src

  pad0 = _padding
  h, st = _sublayer(spec, 0, params["first"], get_st("first"), x, train, pad0)
  new_stats["first"] = st
  src = x
  if 1 in nodes:
    h = h + skip_src_for_node0(h)
  if n and 1 % n == 0:
    src = h
  if d >= 3:
    mid_has_skip = any(2 <= m <= d - 1 for m in nodes)
    if mid_has_skip and src is x:
      src = skip_src_for_node0(h)
    m_idx = jnp.arange(2, d)

    def body(carry, inp):
      h, src = carry
      p, st, m = inp
      h, st = _sublayer(spec, 1, p, st, h, train)
      if mid_has_skip:
        at = (m % n) == 0
        h = jnp.where(at, h + src, h)
        src = jnp.where(at, h, src)
      return (h, src), st

    carry_src = src if mid_has_skip else jnp.zeros((), h.dtype)
    if spec.kind == "dense" or spec.kernel_sizes[1] == (1, 1):
      (h, carry_src), st = lax.scan(body, (h, carry_src),
                                    (params["mid"], get_st("mid"), m_idx))
    else:  # shrinking unpadded k x k sub-convs change the carry shape (no skips here)
      sts = []
      for i in range(d - 2):
        take = lambda t: jax.tree.map(lambda a: a[i], t)  # noqa: B023
        (h, carry_src), st_i = body((h, carry_src),
                                    (take(params["mid"]), take(get_st("mid")), i + 2))
        sts.append(st_i)
      st = jax.tree.map(lambda *a: jnp.stack(a), *sts) if spec.batchnorm else None
    new_stats["mid"] = st
    if mid_has_skip:
      src = carry_src
  if d >= 2:
    h, st = _sublayer(spec, d - 1, params["last"], get_st("last"), h, train)
    new_stats["last"] = st
    if d in nodes:
      h = h + (skip_src_for_node0(h) if src is x else src)
  return h, (new_stats if spec.batchnorm else batch_stats)


# ----------------------------------------------------------------------- collapse


def _compose(spec, j, w_acc, w_j):
  """Kernel of (sub-layers < j) followed by sub-layer j."""
  if spec.kind == "dense":
    return jnp.matmul(w_acc, w_j, precision=HIGHEST)
  kh, kw = w_j.shape[:2]
  if (kh, kw) == (1, 1):  # channel mixing only (group-wise)
    return _group_matmul(spec, w_acc, w_j[0, 0])
  # Full convolution: batch = input channels per group, features = hidden channels.
  lhs = jnp.transpose(w_acc, (2, 0, 1, 3))
  out = lax.conv_general_dilated(
      lhs, w_j[::-1, ::-1], window_strides=(1, 1),
      padding=((kh - 1, kh - 1), (kw - 1, kw - 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=spec.groups, precision=HIGHEST)
  return jnp.transpose(out, (1, 2, 0, 3))


def _group_matmul(spec, a_xIxH, m_HgxO):
  """a (..., I, H) times a group-block-diagonal (H/g, O) matrix -> (..., I, O)."""
  g = spec.groups
  if g == 1:
    return jnp.matmul(a_xIxH, m_HgxO, precision=HIGHEST)
  lead, (i, hh) = a_xIxH.shape[:-2], a_xIxH.shape[-2:]
  o = m_HgxO.shape[-1]
  a = a_xIxH.reshape(lead + (i, g, hh // g))
  m = m_HgxO.reshape(hh // g, g, o // g)
  out = jnp.einsum("...igh,hgo->...igo", a, m, precision=HIGHEST)
  return out.reshape(lead + (i, o))


def _push_bias(spec, b_acc, w_j):
  """Bias b_acc pushed through sub-layer j's linear map (no padding after the first)."""
  if spec.kind == "dense":
    return jnp.matmul(b_acc, w_j, precision=HIGHEST)
  s = jnp.sum(w_j, axis=(0, 1))  # (H/g, O)
  return _group_matmul(spec, b_acc[None], s)[0]


def _fold_bn(p, st, w, b):
  s = p["bn_scale"] * lax.rsqrt(st["var"] + BN_EPS)
  return w * _bcast(s, w.ndim), s * (b - st["mean"]) + p["bn_bias"]


def _identity(spec, like_w):
  """Node-0 identity map in the layout of the composite kernel ``like_w``."""
  c = spec.in_features
  if spec.kind == "dense":
    return jnp.eye(c, dtype=like_w.dtype)
  (lo_h, _), (lo_w, _) = spec.first_padding()
  cg = c // spec.groups
  eye = (jnp.arange(cg)[:, None] == (jnp.arange(c) % cg)[None, :]).astype(like_w.dtype)
  return jnp.zeros(like_w.shape, like_w.dtype).at[lo_h, lo_w].set(eye)


def collapse(spec: Spec, params: dict, batch_stats: dict | None = None) -> dict:
  """Plain single-layer parameters {"kernel", "bias"} equal to the expanded layer.

  Exact (to rounding) in evaluation mode: BN is folded with its running statistics.
  The plain layer is applied by :func:`apply_plain` (for a conv: stride of the last
  sub-conv, padding and dilation of the first, same groups). "bias" is present when
  the spec has biases or BN. Raises ValueError for parameters not produced by
  :func:`init` for this spec. Pure and jittable (the check uses shapes only).
  """
  check_params(spec, params, batch_stats)
  d, n = spec.depth, spec.skip_interval
  nodes = set(spec.skip_nodes())
  has_b = spec.bias or spec.batchnorm
  stats = batch_stats if spec.batchnorm else None

  def bias_of(p, like):
    return p["bias"] if "bias" in p else jnp.zeros((like.shape[-1],), like.dtype)

  def step(j, p, st, w, b):
    if j == 0:
      w, b = p["kernel"], bias_of(p, p["kernel"])
    else:
      w, b = _compose(spec, j, w, p["kernel"]), _push_bias(spec, b, p["kernel"])
      b = b + bias_of(p, p["kernel"])
    if spec.batchnorm:
      w, b = _fold_bn(p, st, w, b)
    return w, b

  w, b = step(0, params["first"], stats and stats["first"], None, None)
  src = None  # None: the input (node 0)

  def add_src(w, b, src):
    if src is None:
      return w + _identity(spec, w), b
    return w + src[0], b + src[1]

  if 1 in nodes:
    w, b = add_src(w, b, src)
  if n and 1 % n == 0:
    src = (w, b)
  if d >= 3:
    mid_sizes_one = spec.kind == "dense" or spec.kernel_sizes[1] == (1, 1)
    mid_has_skip = any(2 <= m <= d - 1 for m in nodes)
    if mid_sizes_one:
      if mid_has_skip and src is None:
        src = (_identity(spec, w), jnp.zeros_like(b))

      def body(carry, inp):
        w, b, sw, sb = carry
        p, st, m = inp
        w, b = step(1, p, st, w, b)
        if mid_has_skip:
          at = (m % n) == 0
          w, b = jnp.where(at, w + sw, w), jnp.where(at, b + sb, b)
          sw, sb = jnp.where(at, w, sw), jnp.where(at, b, sb)
        return (w, b, sw, sb), None

      sw, sb = src if mid_has_skip else (jnp.zeros(()), jnp.zeros(()))
      (w, b, sw, sb), _ = lax.scan(
          body, (w, b, sw, sb),
          (params["mid"], stats and stats["mid"], jnp.arange(2, d)))
      if mid_has_skip:
        src = (sw, sb)
    else:  # growing kernels cannot share a scan carry; d is small here
      for i in range(d - 2):
        take = lambda t: jax.tree.map(lambda a: a[i], t)  # noqa: B023
        w, b = step(1, take(params["mid"]), stats and take(stats["mid"]), w, b)
  if d >= 2:
    w, b = step(d - 1, params["last"], stats and stats["last"], w, b)
    if d in nodes:
      w, b = add_src(w, b, src)
  return {"kernel": w, "bias": b} if has_b else {"kernel": w}


def apply_plain(spec: Spec, plain: dict, x):
  """Apply collapsed parameters as one ordinary Dense/Conv layer."""
  if spec.kind == "dense":
    y = jnp.matmul(x, plain["kernel"], precision=HIGHEST)
  else:
    y = lax.conv_general_dilated(
        x, plain["kernel"], window_strides=spec.stride, padding=spec.first_padding(),
        rhs_dilation=spec.dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=spec.groups, precision=HIGHEST)
  if "bias" in plain:
    y = y + _bcast(plain["bias"], y.ndim)
  return y


def plain_layer(spec: Spec) -> dict:
  """Hyperparameters of the collapsed single layer (for building e.g. a flax Conv)."""
  if spec.kind == "dense":
    return dict(features=spec.d_out, use_bias=spec.bias or spec.batchnorm)
  return dict(features=spec.out_ch, kernel_size=spec.composite_kernel,
              strides=spec.stride, padding=spec.first_padding(),
              kernel_dilation=spec.dilation, feature_group_count=spec.groups,
              use_bias=spec.bias or spec.batchnorm)


def probe_collapse(spec: Spec, params: dict, batch_stats: dict | None = None) -> dict:
  """The same plain layer recovered by evaluating the eval-mode block (test oracle).

  Dense: b = f(0), W[i] = f(e_i) - f(0). Conv: the block runs without padding on
  K x K one-hot inputs (input channel, position), K = composite kernel size; each
  1 x 1 output minus the zero-input response is one kernel entry per output channel.
  """
  check_params(spec, params, batch_stats)
  has_b = spec.bias or spec.batchnorm
  dtype = params["first"]["kernel"].dtype
  if spec.kind == "dense":
    c = spec.d_in
    probes = jnp.concatenate([jnp.zeros((1, c), dtype), jnp.eye(c, dtype=dtype)])
    y, _ = apply(spec, params, probes, batch_stats, train=False)
    w, b = y[1:] - y[:1], y[0]
  else:
    kh, kw = spec.composite_kernel
    (dh, dw), c = spec.dilation, spec.in_ch
    probes = jnp.eye(kh * kw * c, dtype=dtype).reshape(-1, kh, kw, c)
    # Dilated kernels: place the one-hot taps on the dilated grid.
    spread = jnp.zeros((kh * kw * c, dh * (kh - 1) + 1, dw * (kw - 1) + 1, c), dtype)
    probes = spread.at[:, ::dh, ::dw, :].set(probes)
    probes = jnp.concatenate([jnp.zeros_like(probes[:1]), probes])
    y, _ = apply(spec, params, probes, batch_stats, train=False,
                 _padding=((0, 0), (0, 0)))
    y = y[:, 0, 0, :]
    dense = (y[1:] - y[:1]).reshape(kh, kw, c, spec.out_ch)
    b = y[0]
    g, cg, og = spec.groups, c // spec.groups, spec.out_ch // spec.groups
    # Keep only each output's own input group: (kh, kw, c/g, out).
    dense = dense.reshape(kh, kw, g, cg, g, og)
    w = jnp.einsum("hwgcgo->hwcgo", dense).reshape(kh, kw, cg, spec.out_ch)
  return {"kernel": w, "bias": b} if has_b else {"kernel": w}


# ------------------------------------------------------- drop-in for whole networks


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
    if site.stacked:
      p = jax.vmap(lambda kk: init(kk, site.spec)[0])(jax.random.split(k, site.stacked))  # noqa: B023
    else:
      p = init(k, site.spec)[0]
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
