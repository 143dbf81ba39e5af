"""Observation 3: the low-rank bias holds across optimizers, gradient-free included
(Huh et al. 2021, Fig. 6; docs/definitions.md, "Optimizers").

Deep linear networks y = x W_1 ... W_d fit an under-determined low-rank regression
(the regression experiment's problem at a smaller default size) with SGD (full-batch
GD), Nesterov momentum, Adam, L-BFGS (optax, zoom line search), random search and an
antithetic evolution strategy (see lowrank.common.fit). CMA-ES is not implemented
(no optax/JAX-native version); the ES stands in for it. Converged rho(W_e) vs depth
is recorded per optimizer; seeds are vmapped, one program per (optimizer, depth).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxdepth.engine import devices, writers
from jaxdepth.papers.lowrank import common, fields, segments
from jaxdepth.papers.lowrank import regression as reg

EXPERIMENT = "lowrank.optimizers"

OPTIMIZERS = fields.OPTIMIZER_NAMES
GRADIENT_FREE = fields.GRADIENT_FREE
# The fields, their defaults and rules: fields.OPTIMIZERS (docs/config_fields.md).
SCHEMA = fields.OPTIMIZERS


def validate(config) -> None:
  """Check the config against fields.OPTIMIZERS; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def fit_depth(config, method: str, depth: int, problems: common.Regression, keys):
  """Seeds vmapped: returns host arrays w (S, n, n), train loss (S,), test loss (S,)."""
  steps = {"random_search": config.gf_steps, "es": config.gf_steps,
           "lbfgs": config.lbfgs_steps}.get(method, config.steps)
  lr = {"sgd": config.lr.sgd / depth, "nesterov": config.lr.nesterov / depth,
        "adam": config.lr.adam, "es": config.lr.es}.get(method, 0.0)
  hp = common.FitHParams(lr=lr, sigma=config.sigma.get(method, 0.0),
                         momentum=config.momentum)

  def one(key, prob):
    k_init, k_opt = jax.random.split(key)
    f0 = reg.init_factors(k_init, depth, config.dim, False, 1)
    loss = lambda f: common.mse(common.end_to_end(f), prob.x_train, prob.y_train)
    f, loss_T = common.fit(loss, f0, method, steps, hp, k_opt, steps,
                           population=config.population)
    w = common.end_to_end(f)
    return w, loss_T[-1], common.mse(w, prob.x_test, prob.y_test)

  place = devices.Placement(len(keys), enabled=devices.lapack_safe())  # QR in init
  return list(place.gather(jax.jit(jax.vmap(one))(*place.runs((keys, problems)))))


def run(config, workdir: str) -> dict:
  depths, opts = tuple(config.depths), tuple(config.optimizers)
  root = jax.random.key(config.seed)
  probs = [common.make_regression(jax.random.fold_in(root, s), config.dim, "low_rank",
                                  config.target_rank, config.n_train, config.n_test)
           for s in range(config.num_seeds)]
  problems = jax.tree.map(lambda *a: jax.numpy.stack(a), *probs)
  keys = jax.random.split(jax.random.fold_in(root, 99), config.num_seeds)
  rho_star = common.rho64(problems.w_star)
  names = ("rho_final", "train_loss", "test_loss")
  grid = [(o, i) for o in opts for i in range(len(depths))]

  def compute(state, j):  # one (optimizer, depth) per segment: column i of o's results
    o, i = grid[j]
    w, train, test = fit_depth(config, o, depths[i], problems, keys)
    state[o]["rho_final"][:, i] = common.rho64(w)
    state[o]["train_loss"][:, i], state[o]["test_loss"][:, i] = train, test

  def records(state, j):
    o, i = grid[j]
    return [({"optimizer": o, "depth": depths[i]},
             {"step": i, **{k: v[:, i] for k, v in state[o].items()}})]

  # Checkpointed after every (optimizer, depth); metrics.jsonl through the resumable
  # stream.
  res = segments.run(config, workdir, "optimizers",
                     {o: {k: np.zeros((config.num_seeds, len(depths))) for k in names}
                      for o in opts}, len(grid), compute, records,
                     ("optimizer", "depth"))
  summary = {
      "experiment": config.experiment, "depths": list(depths), "dim": config.dim,
      "target_rank": config.target_rank, "n_train": config.n_train,
      "rho_target": common.stats(rho_star),
      "per_optimizer": {o: {str(d): {k: common.stats(v[:, i]) for k, v in res[o].items()}
                            for i, d in enumerate(depths)} for o in opts},
      "checks": {f"{o}: rho_final strictly decreasing in depth":
                 common.strictly_decreasing(res[o]["rho_final"].mean(0)) for o in opts},
  }
  summary["checks"].update({
      f"{o}: rho_final(deepest) < rho_final(shallowest)":
      bool(res[o]["rho_final"].mean(0)[-1] < res[o]["rho_final"].mean(0)[0])
      for o in opts})
  common.plot_vs_depth(
      os.path.join(workdir, "optimizers.png"), depths,
      {r"converged $\rho(W_e)$": {o: res[o]["rho_final"] for o in opts},
       "train loss": {o: res[o]["train_loss"] for o in opts}},
      {r"converged $\rho(W_e)$": {r"$\rho(W^*)$": (float(rho_star.mean()), "k")}})
  summary["figures"] = ["optimizers.png"]
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary
