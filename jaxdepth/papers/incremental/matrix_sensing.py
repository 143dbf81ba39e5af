"""Deep matrix sensing: W = W_1 ... W_N recovers a rank-4 W* from m << d^2 measurements.

Gissin et al. (2020), Figure 1a; docs/definitions.md, "Models".
Loss = mean_i (<A_i, W> - y_i)^2
(no 1/2), A_i i.i.d. N(0, 1), W* = diag(targets, 0, ...), full-batch GD, the top-k
singular values of W tracked every ``record_every`` steps.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import common, fields, metrics, models, runner

EXPERIMENT = "incremental.matrix_sensing"

# The fields, their defaults and rules: fields.MATRIX_SENSING (docs/config_fields.md).
SCHEMA = fields.MATRIX_SENSING


class SensingData(NamedTuple):
  a_MxDD: jax.Array  # measurement matrices, flattened (m, d*d)
  y_M: jax.Array  # y_i = <A_i, W*>


def validate(config) -> None:
  """Check the config against fields.MATRIX_SENSING; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def teacher(d: int, targets) -> np.ndarray:
  w = np.zeros((d, d))
  k = len(targets)
  w[np.arange(k), np.arange(k)] = sorted(targets, reverse=True)
  return w


def make_data(key, d: int, m: int, w_star_DxD) -> SensingData:
  """A_i i.i.d. N(0, 1) entries; y_i = <A_i, W*> (Frobenius)."""
  a = jax.random.normal(key, (m, d * d), w_star_DxD.dtype)
  return SensingData(a, a @ w_star_DxD.reshape(-1))


def sensing_problem(d: int, depth: int, init: str, top_k: int) -> runner.Problem:
  def track(p, data):
    sv = models.top_singular_values(models.deep_matrix_product(p), top_k)
    return sv, sv

  return runner.Problem(
      init=lambda key, s0, data: models.deep_matrix_init(key, d, depth, s0, init),
      loss=lambda p, data: models.sensing_loss(p, data.a_MxDD, data.y_M), track=track)


def product_np(w_NxDxD) -> np.ndarray:
  out = np.eye(w_NxDxD.shape[-1])
  for w in np.asarray(w_NxDxD, np.float64):
    out = out @ w
  return out


def run(config, workdir: str) -> dict:
  targets = tuple(sorted(config.targets, reverse=True))
  w_star = teacher(config.d, targets)
  with common.precision(config):
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    data = jax.vmap(lambda k: make_data(k, config.d, config.m, jnp.asarray(w_star, dtype)))(
        common.seed_keys(config, 1))

    def setup(depth):
      return (sensing_problem(config.d, depth, config.init, config.top_k), data,
              common.seed_keys(config, 0), metrics.thresholds(targets, k=config.top_k),
              config.lr)

    results = common.sweep(config, workdir, "matrix_sensing", setup, snapshots=True)
  runs = []
  for depth, res in results.items():
    for s in range(config.num_seeds):
      for i in range(len(config.init_scales)):
        r = common.base_run(config, depth, res, s, i, config.lr)
        r.update(metrics.regression_metrics(res.cross_t_SxIxAxK[s, i],
                                            res.cross_snap_SxIxAxKxK[s, i], targets))
        w = product_np(res.params.w_NxDxD[s, i])
        r["rel_error"] = float(np.sum((w - w_star) ** 2) / np.sum(w_star**2))
        r["final_singular_values"] = res.logged_SxIxTxJ[s, i, -1]
        r["sigma_next_final"] = (float(res.logged_SxIxTxJ[s, i, -1, len(targets)])
                                 if config.top_k > len(targets) else None)
        r["active_count"] = metrics.active_changes(res.logged_SxIxTxJ[s, i], res.steps_T,
                                                   targets)
        runs.append(r)
  for i, s0 in enumerate(config.init_scales):
    common.plot_values(os.path.join(workdir, f"singular_values_sigma0_{s0:g}.png"), config,
                       results, i, targets, ylabel="singular value of $W$",
                       title=f"deep matrix sensing (d={config.d}, m={config.m})")
  common.plot_losses(os.path.join(workdir, "loss.png"), config, results)
  return common.finish(workdir, runs, {"targets": targets})
