"""MLP-L-H: dense layers with BatchNorm and ReLU; the hidden stack is scanned.

Also the building blocks the other families share: weight init and BatchNorm.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdepth.nets.base import Network

BN_MOMENTUM = 0.9  # flax convention; PyTorch momentum 0.1
BN_EPS = 1e-5


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


def batch_norm(x_BxF, scale_F, bias_F, mean_F, var_F, train: bool):
  """BatchNorm over all axes but the last; returns (y, new_mean, new_var).

  Train mode normalizes with batch statistics and updates the running averages;
  eval mode uses the running averages.
  """
  axes = tuple(range(x_BxF.ndim - 1))
  if train:
    mu = jnp.mean(x_BxF, axes)
    var = jnp.mean(jnp.square(x_BxF - jnp.expand_dims(mu, axes)), axes)
    new_mean = BN_MOMENTUM * mean_F + (1 - BN_MOMENTUM) * mu
    new_var = BN_MOMENTUM * var_F + (1 - BN_MOMENTUM) * var
  else:
    mu, var, new_mean, new_var = mean_F, var_F, mean_F, var_F
  bc = lambda a: jnp.expand_dims(a, axes)  # noqa: E731  (explicit rank promotion)
  y = (x_BxF - bc(mu)) * jax.lax.rsqrt(bc(var) + BN_EPS) * bc(scale_F) + bc(bias_F)
  return y, new_mean, new_var


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

  def apply_fn(variables, x, train: bool = False):
    p, s = variables["params"], variables["batch_stats"]
    x_BxI = x.reshape(x.shape[0], -1)
    bn_p = p.get("bn", {})

    def block(z_BxH, bn_p, bn_s):
      if batchnorm:
        z_BxH, m, v = batch_norm(z_BxH, bn_p["scale"], bn_p["bias"], bn_s["mean"],
                                 bn_s["var"], train)
        bn_s = {"mean": m, "var": v}
      return jax.nn.relu(z_BxH), bn_s

    h1_BxH, s1 = block(x_BxI @ p["w_in"] + p["b_in"][None], _index(bn_p, 0), _index(s, 0))

    def layer(h_BxH, xs):
      w_HxH, b_H, bp, bs = xs
      h_BxH, bs = block(h_BxH @ w_HxH + b_H[None], bp, bs)
      return h_BxH, (h_BxH, bs)

    h_BxH, (hs_DxBxH, s_rest) = jax.lax.scan(
        layer, h1_BxH, (p["w_hid"], p["b_hid"], _tail(bn_p), _tail(s)))
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
