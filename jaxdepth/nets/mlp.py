"""MLP-L-H: dense layers with BatchNorm and ReLU; the hidden stack is scanned.

Also the building blocks the other families share: weight init and BatchNorm.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxdepth.nets.base import Network

BN_MOMENTUM = 0.9  # flax convention; PyTorch momentum 0.1
BN_EPS = 1e-5
# Hidden stacks of at most this many layers are unrolled (one straight-line program:
# no loop carries or stacked residuals, and XLA fuses across layers); deeper ones are
# scanned so that compile time stays flat in depth.
UNROLL_MAX_LAYERS = 16


def dense_init(key, fan_in: int, fan_out: int, scheme: str, relu: bool = True,
               shape: tuple[int, ...] | None = None):
  """Weights and bias of a dense or conv layer.

  'kaiming': He normal, std sqrt(2 / fan_in) before a ReLU (sqrt(1 / fan_in) for a
  linear read-out), zero bias. 'pytorch': PyTorch's default, weights and bias uniform
  in +-1/sqrt(fan_in) (kaiming-uniform with a = sqrt(5)).
  """
  shape = (fan_in, fan_out) if shape is None else shape
  kw, kb = jax.random.split(key)
  if scheme == "kaiming":
    std = math.sqrt((2.0 if relu else 1.0) / fan_in)
    return std * jax.random.normal(kw, shape), jnp.zeros((fan_out,))
  if scheme == "pytorch":
    bound = 1.0 / math.sqrt(fan_in)
    return (jax.random.uniform(kw, shape, minval=-bound, maxval=bound),
            jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound))
  raise ValueError(f"unknown init {scheme!r}; allowed: kaiming, pytorch")


def batch_norm(x_BxF, scale_F, bias_F, mean_F, var_F, train: bool, relu: bool = False):
  """BatchNorm over all axes but the last; returns (y, new_mean, new_var).

  Train mode normalizes with batch statistics (mean, biased variance; two passes) and
  updates the running averages; eval mode uses the running averages. ``relu=True``
  applies a ReLU to y (fused into the train-mode gradient below).
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


def bn_init(n_layers: int, width: int):
  params = {"scale": jnp.ones((n_layers, width)), "bias": jnp.zeros((n_layers, width))}
  stats = {"mean": jnp.zeros((n_layers, width)), "var": jnp.ones((n_layers, width))}
  return params, stats


def mlp(depth: int, width: int, in_dim: int, num_classes: int, batchnorm: bool = True,
        init: str = "kaiming") -> Network:
  """MLP-L-H (Galanti et al. 2022, §10.1).

  Layer 1: Linear(in -> H) [-> BN] -> ReLU; layers 2..L: Linear(H -> H) [-> BN] -> ReLU,
  stacked (L-1, H, H) and scanned; classifier Linear(H -> C). Embedding i is the
  output of layer i; feats is one group (L, B, H).
  """

  def init_fn(key):
    k_in, k_hid, k_out = jax.random.split(key, 3)
    w_in, b_in = dense_init(k_in, in_dim, width, init)
    hid = jax.vmap(lambda k: dense_init(k, width, width, init))(
        jax.random.split(k_hid, depth - 1))
    w_out, b_out = dense_init(k_out, width, num_classes, init, relu=False)
    params = {"w_in": w_in, "b_in": b_in, "w_hid": hid[0], "b_hid": hid[1],
              "w_out": w_out, "b_out": b_out}
    stats = {}
    if batchnorm:
      params["bn"], stats = bn_init(depth, width)
    return {"params": params, "batch_stats": stats}

  unroll = depth - 1 <= UNROLL_MAX_LAYERS

  def apply_fn(variables, x, train: bool = False):
    p, s = variables["params"], variables["batch_stats"]
    x_BxI = x.reshape(x.shape[0], -1)
    bn_p = p.get("bn", {})

    def block(z_BxH, bn_p, bn_s):
      if not batchnorm:
        return jax.nn.relu(z_BxH), bn_s
      h_BxH, m, v = batch_norm(z_BxH, bn_p["scale"], bn_p["bias"], bn_s["mean"],
                               bn_s["var"], train, relu=True)
      return h_BxH, {"mean": m, "var": v}

    h1_BxH, s1 = block(x_BxI @ p["w_in"] + p["b_in"][None], _index(bn_p, 0), _index(s, 0))

    def layer(h_BxH, xs):
      w_HxH, b_H, bp, bs = xs
      h_BxH, bs = block(h_BxH @ w_HxH + b_H[None], bp, bs)
      return h_BxH, (h_BxH, bs)

    h_BxH, (hs_DxBxH, s_rest) = jax.lax.scan(
        layer, h1_BxH, (p["w_hid"], p["b_hid"], _tail(bn_p), _tail(s)),
        unroll=unroll)
    logits_BxC = h_BxH @ p["w_out"] + p["b_out"][None]
    feats_LxBxH = jnp.concatenate([h1_BxH[None], hs_DxBxH])
    new_stats = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), s1, s_rest)
    return logits_BxC, (feats_LxBxH,), new_stats

  names = tuple(f"layer{i}" for i in range(1, depth + 1))
  return Network(init_fn, apply_fn, depth, names)


def _index(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


def _tail(tree):
  return jax.tree.map(lambda a: a[1:], tree)


def build_mlp(model_cfg, input_shape, num_classes) -> Network:
  return mlp(int(model_cfg["depth"]), int(model_cfg["width"]), math.prod(input_shape),
             num_classes, batchnorm=bool(model_cfg.get("batchnorm", True)),
             init=model_cfg.get("init", "kaiming"))
