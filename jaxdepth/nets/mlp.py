"""MLP-L-H: dense layers with BatchNorm and ReLU; the hidden stack is scanned."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdepth.nets.base import Network
from jaxdepth.nets.layers import bn_init, bn_layer, dense_init

# Hidden stacks of at most this many layers are unrolled (one straight-line program:
# no loop carries or stacked residuals, and XLA fuses across layers); deeper ones are
# scanned so that compile time stays flat in depth.
UNROLL_MAX_LAYERS = 16


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
      return bn_layer(z_BxH, bn_p, bn_s, train, relu=True)

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
  return Network(init_fn, apply_fn, depth, names,
                 classifier=lambda v: v["params"]["w_out"].T)


def _index(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


def _tail(tree):
  return jax.tree.map(lambda a: a[1:], tree)


def build_mlp(model_cfg, input_shape, num_classes) -> Network:
  return mlp(int(model_cfg["depth"]), int(model_cfg["width"]), math.prod(input_shape),
             num_classes, batchnorm=bool(model_cfg.get("batchnorm", True)),
             init=model_cfg.get("init", "kaiming"))
