"""Quadratic network f(x) = ||W x||^2 (+ b): eigenvalues of W^T W learned one by one.

Gissin et al. (2020), Figure 1b; docs/definitions.md, "Models".
Teacher M* with eigenvalues
``targets`` (W* = diag(sqrt(targets))), x ~ N(0, I), y = x^T M* x; W(0) =
sqrt(sigma0) Q (Q orthogonal, so M(0) = sigma0 I); loss mean (f - y)^2 (no 1/2).
Two variants per run, from ``bias_modes``: no bias, and a trainable bias started at
mean(y) (authors' code; it cancels the trace coupling, docs/definitions.md "Models").  Depth is 2.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import common, fields, metrics, models, runner

EXPERIMENT = "incremental.quadratic"

# The fields, their defaults and rules: fields.QUADRATIC (docs/config_fields.md).
SCHEMA = fields.QUADRATIC


class QuadData(NamedTuple):
  x_BxD: jax.Array
  y_B: jax.Array
  x_test_BxD: jax.Array
  y_test_B: jax.Array


def validate(config) -> None:
  """Check the config against fields.QUADRATIC; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def make_data(key, d: int, n: int, n_test: int, targets) -> QuadData:
  """x ~ N(0, I_d); y = x^T M* x with M* = diag(targets, 0, ...)."""
  dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  m_D = jnp.zeros((d,), dtype).at[: len(targets)].set(jnp.asarray(targets, dtype))
  k1, k2 = jax.random.split(key)
  x = jax.random.normal(k1, (n, d), dtype)
  xt = jax.random.normal(k2, (n_test, d), dtype)
  return QuadData(x, (x**2) @ m_D, xt, (xt**2) @ m_D)


def quadratic_problem(d: int, use_bias: bool, top_k: int) -> runner.Problem:
  def init(key, s0, data):
    return models.quadratic_init(key, d, s0, jnp.mean(data.y_B) if use_bias else 0.0)

  def track(p, data):
    ev = models.top_eigenvalues(p.w_HxD, top_k)
    return ev, ev

  return runner.Problem(
      init=init, loss=lambda p, data: models.quadratic_loss(p, data.x_BxD, data.y_B, use_bias),
      track=track)


def test_rel_mse(w_HxD, b, x_BxD, y_B, use_bias: bool) -> float:
  """sum (f(x) - y)^2 / sum y^2 on held-out inputs."""
  f = np.sum((x_BxD @ w_HxD.T) ** 2, axis=-1) + (b if use_bias else 0.0)
  return float(np.sum((f - y_B) ** 2) / np.sum(y_B**2))


def run(config, workdir: str) -> dict:
  targets = tuple(sorted(config.targets, reverse=True))
  runs, figs = [], {}
  with common.precision(config):
    data = jax.vmap(lambda k: make_data(k, config.d, config.n, config.n_test, targets))(
        common.seed_keys(config, 1))
    for mode in config.bias_modes:
      use_bias = mode == "mean_y"

      def setup(depth, use_bias=use_bias):
        return (quadratic_problem(config.d, use_bias, config.top_k), data,
                common.seed_keys(config, 0), metrics.thresholds(targets, k=config.top_k),
                config.lr)

      results = common.sweep(config, workdir, "quadratic", setup, snapshots=True,
                             variant=f"bias_{mode}")
      figs[mode] = results
      host = jax.device_get(data)
      for depth, res in results.items():
        for s in range(config.num_seeds):
          for i in range(len(config.init_scales)):
            r = common.base_run(config, depth, res, s, i, config.lr)
            r["bias"] = mode
            r.update(metrics.regression_metrics(res.cross_t_SxIxAxK[s, i],
                                                res.cross_snap_SxIxAxKxK[s, i], targets))
            r["t50_ratio_2_1"] = float(r["t50"][1] / r["t50"][0])
            r["test_rel_mse"] = test_rel_mse(np.asarray(res.params.w_HxD[s, i]),
                                             float(res.params.b[s, i]),
                                             np.asarray(host.x_test_BxD[s]),
                                             np.asarray(host.y_test_B[s]), use_bias)
            r["final_eigenvalues"] = res.logged_SxIxTxJ[s, i, -1]
            r["active_count"] = metrics.active_changes(res.logged_SxIxTxJ[s, i], res.steps_T,
                                                       targets)
            runs.append(r)
  for mode, results in figs.items():
    for i, s0 in enumerate(config.init_scales):
      common.plot_values(os.path.join(workdir, f"eigenvalues_bias_{mode}_sigma0_{s0:g}.png"),
                         config, results, i, targets, ylabel="eigenvalue of $W^TW$",
                         title=f"quadratic network, bias: {mode}")
    common.plot_losses(os.path.join(workdir, f"loss_bias_{mode}.png"), config, results)
  return common.finish(workdir, runs, {"targets": targets})
