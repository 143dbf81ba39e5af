"""Observation 1: the Gram rank of MLP embeddings at initialization falls with depth
(Huh et al. 2021, Fig. 3; docs/definitions.md, "Init rank").

A fixed batch X (n_points x d_in, N(0, I)) goes through a random MLP of depth d
(first layer d_in -> width, then d - 1 layers width -> width, Kaiming weights with
std sqrt(2 / fan_in), Normal or Uniform, no biases, the activation after every
layer except the last). rho(K) of K = Phi Phi^T of the output Phi is recorded
(uncentered by default) over ``draws`` random networks. One jitted program computes
every depth (unused layers past d) and activation, vmapped over draws, in float64.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.engine import writers
from jaxdepth.measure import rank
from jaxdepth.papers.lowrank import common, fields, segments

EXPERIMENT = "lowrank.init_rank"

ACTIVATIONS = {
    "linear": lambda h: h, "relu": jax.nn.relu, "tanh": jnp.tanh,
    "leaky_relu": jax.nn.leaky_relu, "gelu": jax.nn.gelu, "selu": jax.nn.selu,
    "sine": jnp.sin,
}
# The fields, their defaults and rules: fields.INIT_RANK (docs/config_fields.md).
SCHEMA = fields.INIT_RANK


def validate(config) -> None:
  """Check the config against fields.INIT_RANK; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def mlp_output(w_in, w_hid_LxWxW, x_NxI, act, depth=None):
  """Phi = W_d^T act(... act(x W_1) ...): activation between layers, none at the end.

  ``depth`` (traced, optional) uses only the first depth - 1 hidden layers of the
  stack, so one compiled program serves every depth.
  """
  n_hid = w_hid_LxWxW.shape[0]
  depth = n_hid + 1 if depth is None else depth

  def layer(h, xs):
    w, l = xs
    return jnp.where(l < depth - 1, act(h) @ w, h), None
  h, _ = jax.lax.scan(layer, x_NxI @ w_in, (w_hid_LxWxW, jnp.arange(n_hid)))
  return h


def gram_rhos(key, depth: int, x_NxI, width: int, activations, distribution: str,
              draws: int, center: bool, max_depth: int | None = None
              ) -> dict[str, np.ndarray]:
  """{activation: (draws,) rho(K)} for random depth-``depth`` MLPs (weights drawn for
  ``max_depth`` layers, those past ``depth`` unused: one program for all depths)."""
  with jax.enable_x64(True):
    out = _gram_jit(key, jnp.asarray(depth), jnp.asarray(x_NxI, jnp.float64), width,
                    tuple(activations), distribution, draws, center, max_depth or depth)
    return {a: np.asarray(v) for a, v in out.items()}


def _gram_impl(key, depth, x, width, activations, distribution, draws, center, total):
  d_in = x.shape[1]

  def one(k):
    k1, k2 = jax.random.split(k)
    gain = np.sqrt(2.0)
    w_in = gain * common.sample_matrices(k1, (d_in, width), distribution, jnp.float64)
    w_hid = gain * common.sample_matrices(k2, (total - 1, width, width), distribution,
                                          jnp.float64)
    return {a: rank.gram_entropy_rank(mlp_output(w_in, w_hid, x, ACTIVATIONS[a], depth),
                                      center=center) for a in activations}

  return jax.vmap(one)(jax.random.split(key, draws))


_gram_jit = jax.jit(_gram_impl, static_argnums=(3, 4, 5, 6, 7, 8))


def run(config, workdir: str) -> dict:
  depths, acts = tuple(config.depths), tuple(config.activations)
  x = np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(config.seed), 1),
                                   (config.n_points, config.d_in)), np.float64)
  k_init = jax.random.fold_in(jax.random.key(config.seed), 0)

  def compute(state, i):  # one depth per segment: column i of every activation's rho
    d = depths[i]
    r = gram_rhos(jax.random.fold_in(k_init, d), d, x, config.width, acts,
                  config.distribution, config.draws, config.center, max(depths))
    for a in acts:
      state[a][:, i] = r[a]

  def records(state, i):
    return [({"depth": depths[i]},
             {"step": i, **{f"rho_{a}": float(state[a][:, i].mean()) for a in acts}})]

  # Checkpointed after every depth; metrics.jsonl through the resumable stream.
  rho = segments.run(config, workdir, "init_rank",
                     {a: np.zeros((config.draws, len(depths))) for a in acts},  # (draws, D)
                     len(depths), compute, records, ("depth",), unit="depth")
  per_act = {a: {str(d): {"mean_rho": float(rho[a][:, i].mean()),
                          "std_rho": float(rho[a][:, i].std())}
                 for i, d in enumerate(depths)} for a in acts}
  summary = {
      "experiment": config.experiment, "depths": list(depths),
      "distribution": config.distribution, "draws": config.draws,
      "center": config.center, "layer": "network output (no final activation)",
      "per_activation": per_act,
      "checks": {f"mean_rho_strictly_decreasing_{a}":
                 common.strictly_decreasing(rho[a].mean(0)) for a in acts},
  }
  common.plot_vs_depth(os.path.join(workdir, "init_rank.png"), depths,
                       {r"$\rho(\Phi\Phi^T)$ at init": {a: rho[a] for a in acts}})
  summary["figures"] = ["init_rank.png"]
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary
