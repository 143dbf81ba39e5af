"""Toy model sigma_i = u_i^N: the staircase, its time scaling, and the critical-init table.

Gissin, Shalev-Shwartz & Daniely (2020), toy model; docs/definitions.md, "Models"
and "Critical initialization".
Loss 1/2 sum_i (sigma_i - sigma*_i)^2, GD on u, float64, tracked every step.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import common, critical, fields, metrics, models, runner

EXPERIMENT = "incremental.toy"

# The fields, their defaults and rules: fields.TOY (docs/config_fields.md).
SCHEMA = fields.TOY


def validate(config) -> None:
  """Check the config against fields.TOY; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def toy_lr(depth: int, targets, factor: float = 0.02) -> float:
  """lr = factor / (N^2 max_i sigma*_i^(2 - 2/N)), ~100x below stability."""
  return factor / (depth**2 * max(targets) ** (2.0 - 2.0 / depth))


def toy_problem(depth: int, k: int) -> runner.Problem:
  def track(p, targets_K):
    v = models.toy_values(p, depth)
    return v, v

  return runner.Problem(init=lambda key, s0, data: models.toy_init(k, depth, s0),
                        loss=lambda p, t: models.toy_loss(p, t, depth), track=track)


def train_toy(targets, depth: int, init_scales, steps: int, lr: float | None = None,
              log_every: int = 100, stop_loss: float = 0.0, progress: bool = False):
  """Train the toy model for every init scale (vmapped); call inside enable_x64."""
  targets = tuple(sorted(map(float, targets), reverse=True))
  lr = toy_lr(depth, targets) if lr is None else lr
  data = jnp.asarray(np.asarray(targets)[None])  # seed axis of size 1
  keys = jax.random.split(jax.random.key(0), 1)
  res = runner.train(toy_problem(depth, len(targets)), data, keys, init_scales,
                     metrics.thresholds(targets), lr=lr, steps=steps, record_every=1,
                     log_every=log_every, stop_loss=stop_loss, snapshots=True,
                     progress=progress, desc=f"toy depth {depth}")
  return res, lr


def run(config, workdir: str) -> dict:
  targets = tuple(sorted(config.targets, reverse=True))
  with common.precision(config):
    lrs = {n: (config.lr or toy_lr(n, targets, config.lr_factor)) for n in config.depths}

    def setup(depth):
      data = jnp.asarray(np.tile(np.asarray(targets), (config.num_seeds, 1)))
      thr = metrics.thresholds(targets)
      return toy_problem(depth, len(targets)), data, common.seed_keys(config, 0), thr, lrs[depth]

    results = common.sweep(config, workdir, "toy", setup, snapshots=True)
  runs = []
  for depth, res in results.items():
    for s in range(config.num_seeds):
      for i in range(len(config.init_scales)):
        r = common.base_run(config, depth, res, s, i, lrs[depth])
        r.update(metrics.regression_metrics(res.cross_t_SxIxAxK[s, i],
                                            res.cross_snap_SxIxAxKxK[s, i], targets,
                                            time_per_step=lrs[depth]))
        final = res.logged_SxIxTxJ[s, i, -1]
        r["final_values"] = final
        r["final_rel_error"] = float(np.sum((final - targets) ** 2) / np.sum(np.square(targets)))
        r["active_count"] = metrics.active_changes(res.logged_SxIxTxJ[s, i], res.steps_T,
                                                   targets)
        runs.append(r)
  table = None
  if config.critical_ratios and config.critical_depths:
    table = critical.critical_table(config.critical_ratios, config.critical_depths,
                                    config.critical_eps)
    print(critical.format_table(table, config.critical_ratios, config.critical_depths))
  tscale = {n: lrs[n] for n in results}
  for i, s0 in enumerate(config.init_scales):
    common.plot_values(os.path.join(workdir, f"values_sigma0_{s0:g}.png"), config, results, i,
                       targets, ylabel=r"$\sigma_i = u_i^N$", time_scale=tscale,
                       title="toy model: values over time")
  common.plot_losses(os.path.join(workdir, "loss.png"), config, results)
  extra = {"targets": targets}
  if table is not None:
    extra["critical_table"] = {"ratios": config.critical_ratios, "depths": config.critical_depths,
                               "eps": config.critical_eps, "sigma0": table}
  return common.finish(workdir, runs, extra)
