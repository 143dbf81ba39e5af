"""Building blocks of every family: the one BatchNorm and the one weight initialization.

BatchNorm (Flax convention): normalizes over all axes but the last (channels) with the
biased batch variance; running averages r <- 0.9 r + 0.1 batch (Flax momentum 0.9 =
PyTorch momentum 0.1), eps 1e-5.

Initializations ('kaiming' | 'pytorch'): one table of what every array is drawn from
(:func:`weight_spec`, :func:`bias_spec`, :func:`bn_specs`) and two ways to draw it:
:func:`draw` (one random call per array, as the MLP and the expansions do) and
:func:`materialize` (one flat draw for a whole tree, as CONV-L-H and ResNet-18 do).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxdepth.engine.validate import ConfigError

BN_MOMENTUM = 0.9  # flax convention; PyTorch momentum 0.1
BN_EPS = 1e-5
INITS = ("kaiming", "pytorch")

# ----------------------------------------------------------------------------- BatchNorm


def batch_norm(x_BxF, scale_F, bias_F, mean_F, var_F, train: bool, relu: bool = False):
  """BatchNorm over all axes but the last; returns (y, new_mean, new_var).

  Train mode normalizes with batch statistics (mean, biased variance; two passes) and
  updates the running averages; eval mode uses the running averages and returns them
  unchanged. ``relu=True`` applies a ReLU to y (fused into the train-mode gradient).
  """
  axes = tuple(range(x_BxF.ndim - 1))
  bc = lambda a: jnp.expand_dims(a, axes)
  if train:
    y, mu, var = _bn_train(x_BxF, scale_F, bias_F, relu)
    new_mean = BN_MOMENTUM * mean_F + (1 - BN_MOMENTUM) * mu
    new_var = BN_MOMENTUM * var_F + (1 - BN_MOMENTUM) * var
    return y, new_mean, new_var
  y = (x_BxF - bc(mean_F)) * jax.lax.rsqrt(bc(var_F) + BN_EPS) * bc(scale_F) + bc(bias_F)
  return (jax.nn.relu(y) if relu else y), mean_F, var_F


# Train-mode BatchNorm (+ ReLU) with a hand-written gradient: two reductions and one
# fused elementwise pass backward, where autodiff of the two-pass statistics emits
# several more full-size passes; on XLA:CPU those passes, not the matmuls, were a
# large part of a small MLP's step (MLP-8-64: ~1.25x steps per CPU-second). Same math,
# so the same numbers to float32 rounding (checked against autodiff of the plain
# formula in tests/nets_test.py).
@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _bn_train(x, scale, bias, relu):
  return _bn_train_fwd(x, scale, bias, relu)[0]


def _bn_train_fwd_sz(x, scale, bias, relu):  # symbolic_zeros: primals come wrapped
  return _bn_train_fwd(x.value, scale.value, bias.value, relu)


def _bn_train_fwd(x, scale, bias, relu):
  axes = tuple(range(x.ndim - 1))
  bc = lambda a: jnp.expand_dims(a, axes)
  mu = jnp.mean(x, axes)
  xc = x - bc(mu)
  var = jnp.mean(jnp.square(xc), axes)
  inv = jax.lax.rsqrt(var + BN_EPS)
  xh = xc * bc(inv)
  y = xh * bc(scale) + bc(bias)
  if relu:
    y = jax.nn.relu(y)
  return (y, mu, var), (xh, inv, scale, y if relu else None)


def _bn_train_bwd(relu, res, cts):
  xh, inv, scale, y = res
  g, g_mu, g_var = cts
  axes = tuple(range(xh.ndim - 1))
  bc = lambda a: jnp.expand_dims(a, axes)
  n = math.prod(xh.shape[:-1])
  if isinstance(g, SymbolicZero):  # only the statistics are differentiated
    g = jnp.zeros(xh.shape, xh.dtype)
  if relu:  # jax.nn.relu's derivative: 1 where the output is positive, else 0
    g = jnp.where(y > 0, g, 0.0)
  g_bias = jnp.sum(g, axes)
  g_scale = jnp.sum(g * xh, axes)
  g_x = bc(scale * inv) * (g - bc(g_bias / n) - xh * bc(g_scale / n))
  # The batch statistics themselves (they feed the running averages): d mu / dx = 1/n,
  # d var / dx = 2 (x - mu) / n. Symbolic zeros in training (the averages are not
  # differentiated), and then skipped.
  if not isinstance(g_mu, SymbolicZero):
    g_x = g_x + bc(g_mu / n)
  if not isinstance(g_var, SymbolicZero):
    g_x = g_x + xh * bc(2.0 * g_var / (inv * n))
  return g_x, g_scale, g_bias


_bn_train.defvjp(_bn_train_fwd_sz, _bn_train_bwd, symbolic_zeros=True)


def bn_layer(x, p: dict, s: dict, train: bool, relu: bool = False):
  """:func:`batch_norm` on dicts: p {scale, bias}, s {mean, var}; returns (y, new_s)."""
  y, mean, var = batch_norm(x, p["scale"], p["bias"], s["mean"], s["var"], train, relu)
  return y, {"mean": mean, "var": var}


# ----------------------------------------------------------------------- initialization


class Init(NamedTuple):
  """One initial array: kind 'normal' (std scale), 'uniform' (+-scale), 'const'."""
  kind: str
  shape: tuple[int, ...]
  scale: float


def weight_spec(shape: Sequence[int], fan_in: int, init: str, relu: bool = True) -> Init:
  """Dense or conv weight.

  'kaiming': He normal, std sqrt(2 / fan_in) before a ReLU (sqrt(1 / fan_in) for a
  linear read-out). 'pytorch': PyTorch's default, U(+-1/sqrt(fan_in)) (Kaiming-uniform
  with a = sqrt(5)).
  """
  if init == "kaiming":
    return Init("normal", tuple(shape), math.sqrt((2.0 if relu else 1.0) / fan_in))
  if init == "pytorch":
    return Init("uniform", tuple(shape), 1.0 / math.sqrt(fan_in))
  raise ConfigError("init", f"unknown value {init!r}; allowed: {', '.join(INITS)}")


def bias_spec(shape: Sequence[int], fan_in: int, init: str) -> Init:
  """Bias: zeros ('kaiming') or U(+-1/sqrt(fan_in)) ('pytorch', PyTorch's default)."""
  if init == "pytorch":
    return Init("uniform", tuple(shape), 1.0 / math.sqrt(fan_in))
  return Init("const", tuple(shape), 0.0)


def bn_specs(shape: Sequence[int]) -> tuple[dict, dict]:
  """BN params {scale: 1, bias: 0} and running stats {mean: 0, var: 1}."""
  shape = tuple(shape)
  return ({"scale": Init("const", shape, 1.0), "bias": Init("const", shape, 0.0)},
          {"mean": Init("const", shape, 0.0), "var": Init("const", shape, 1.0)})


def draw(key, spec: Init, dtype=None) -> jax.Array:
  """One array for ``spec`` from its own ``key`` (unused for 'const'); dtype None:
  JAX's default float (float32, float64 under x64)."""
  if dtype is None:
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  if spec.kind == "normal":
    return spec.scale * jax.random.normal(key, spec.shape, dtype)
  if spec.kind == "uniform":
    return jax.random.uniform(key, spec.shape, dtype, -spec.scale, spec.scale)
  return jnp.full(spec.shape, spec.scale, dtype)


def materialize(key, specs):
  """Arrays for a tree of Init specs from ONE normal and ONE uniform draw (float32).

  Every weight is a disjoint slice of a single flat draw: statistically the same as
  independent draws, but XLA compiles one RNG op instead of one per weight shape
  (on a loaded 2-core CPU each extra RNG op cost about 3 s of compile time).
  """
  leaves, treedef = jax.tree.flatten(specs, is_leaf=lambda x: isinstance(x, Init))
  sizes = {k: sum(math.prod(s.shape) for s in leaves if s.kind == k)
           for k in ("normal", "uniform")}
  k_n, k_u = jax.random.split(key)
  flat = {"normal": jax.random.normal(k_n, (sizes["normal"],), jnp.float32),
          "uniform": jax.random.uniform(k_u, (sizes["uniform"],), jnp.float32, -1.0, 1.0)}
  offset = {"normal": 0, "uniform": 0}
  out = []
  for s in leaves:
    n = math.prod(s.shape)
    if s.kind == "const":
      out.append(jnp.full(s.shape, s.scale, jnp.float32))
      continue
    out.append(s.scale * flat[s.kind][offset[s.kind]:offset[s.kind] + n].reshape(s.shape))
    offset[s.kind] += n
  return jax.tree.unflatten(treedef, out)


def dense_init(key, fan_in: int, fan_out: int, scheme: str, relu: bool = True):
  """Weights (fan_in, fan_out) and bias (fan_out,) of a dense layer, each drawn with
  :func:`draw` from its own half of ``key`` (see :func:`weight_spec`, :func:`bias_spec`)."""
  kw, kb = jax.random.split(key)
  return (draw(kw, weight_spec((fan_in, fan_out), fan_in, scheme, relu)),
          draw(kb, bias_spec((fan_out,), fan_in, scheme)))


def bn_init(*shape: int, dtype=None) -> tuple[dict, dict]:
  """BN params and running stats of ``shape`` (e.g. (n_layers, width)); see bn_specs."""
  params, stats = bn_specs(shape)
  to_array = lambda s: draw(None, s, dtype)
  return ({k: to_array(v) for k, v in params.items()},
          {k: to_array(v) for k, v in stats.items()})
