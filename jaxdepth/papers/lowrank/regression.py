"""Deep linear networks on low-rank and full-rank regression: the depth sweep of
Huh et al. 2021 (Fig. 5; docs/definitions.md, "Regression targets").

A target W* (dim x dim; rank ``target_rank`` with a flat spectrum, or full rank with
unit-norm rows) is fit from n_train Gaussian inputs by y = x W_1 ... W_d, full-batch
GD with lr / d (``lr_scaling='inverse_depth'``), factors initialized N(0, 1/dim) or
low rank (``inits``). Recorded per depth: train/test loss, rho(W_e) at init and at
the end, against rho(W*). Targets x inits x seeds are vmapped in one program per
depth; rho is computed in float64 on the host.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.engine import devices, writers
from jaxdepth.papers.lowrank import common, fields, segments

EXPERIMENT = "lowrank.regression"

# The fields, their defaults and rules: fields.REGRESSION (docs/config_fields.md).
SCHEMA = fields.REGRESSION


def validate(config) -> None:
  """Check the config against fields.REGRESSION; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def init_factors(key, depth: int, dim: int, low_rank, init_rank: int):
  """(depth, dim, dim) factors: N(0, 1/dim), or rank-``init_rank`` with that variance
  when ``low_rank`` (a traced bool, so both inits share one program)."""
  k1, k2 = jax.random.split(key)
  normal = common.sample_matrices(k1, (depth, dim, dim), "normal")
  low = common.low_rank_factors(k2, (depth, dim, dim), init_rank)
  return jnp.where(low_rank, low, normal)


def train_depth(depth: int, problems: common.Regression, keys, low_rank_R, lr: float,
                steps: int, log_every: int, init_rank: int):
  """Train R problems (vmapped) at one depth. Returns host arrays:
  w0 (R, n, n), w (R, n, n), train loss (R, T), test loss (R,)."""
  dim = problems.w_star.shape[-1]

  def one(key, prob, low_rank):
    f0 = init_factors(key, depth, dim, low_rank, init_rank)
    loss = lambda f: common.mse(common.end_to_end(f), prob.x_train, prob.y_train)
    f, loss_T = common.fit(loss, f0, "gd", steps, common.FitHParams(lr=lr), key,
                           log_every)
    w = common.end_to_end(f)
    return common.end_to_end(f0), w, loss_T, common.mse(w, prob.x_test, prob.y_test)

  place = devices.Placement(len(keys), enabled=devices.lapack_safe())  # QR in init
  return list(place.gather(jax.jit(jax.vmap(one))(*place.runs((keys, problems,
                                                                low_rank_R)))))


def make_problems(config):
  """Problems and settings of every run r = (target, init, seed), flattened."""
  runs, probs = [], []
  for ti, target in enumerate(config.targets):
    for ii, init in enumerate(config.inits):
      for s in range(config.num_seeds):
        k = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), ti), s)
        probs.append(common.make_regression(k, config.dim, target, config.target_rank,
                                            config.n_train, config.n_test))
        runs.append({"target": target, "init": init, "seed": s, "init_index": ii})
  problems = jax.tree.map(lambda *a: jnp.stack(a), *probs)
  return runs, problems


def run(config, workdir: str) -> dict:
  depths = tuple(config.depths)
  runs, problems = make_problems(config)
  low_rank_R = jnp.array([r["init"] == "low_rank" for r in runs])
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 99), len(runs))
  rho_star = common.rho64(problems.w_star)
  R, D, T = len(runs), len(depths), config.steps // config.log_every

  def compute(state, i):  # one depth per segment: column i of every result
    d = depths[i]
    lr = config.lr / d if config.lr_scaling == "inverse_depth" else config.lr
    w0, w, loss_RxT, test = train_depth(d, problems, keys, low_rank_R, lr, config.steps,
                                        config.log_every, config.init_rank)
    state["rho_init"][:, i], state["rho_final"][:, i] = common.rho64(w0), common.rho64(w)
    state["train_loss"][:, i], state["test_loss"][:, i] = loss_RxT[:, -1], test
    state["loss_curve"][i] = loss_RxT

  def records(state, i):  # the logged training losses of depth i, every run at once
    return [({"depth": depths[i]}, {"step": (t + 1) * config.log_every,
                                    "train_loss": state["loss_curve"][i][:, t]})
            for t in range(T)]

  # Checkpointed after every depth; metrics.jsonl through the resumable stream.
  buffers = {k: np.zeros((R, D)) for k in ("rho_init", "rho_final", "train_loss",
                                           "test_loss")}
  buffers["loss_curve"] = np.zeros((D, R, T), np.float32)  # as trained (float32)
  res = segments.run(config, workdir, "regression", buffers, D, compute, records,
                     ("depth",), unit="depth")
  res = {k: v for k, v in res.items() if k != "loss_curve"}
  summary = _summarize(config, runs, res, rho_star)
  summary["figures"] = [_figure(workdir, config, runs, res, rho_star)]
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _groups(config, runs):
  for target in config.targets:
    for init in config.inits:
      yield target, init, [i for i, r in enumerate(runs)
                           if r["target"] == target and r["init"] == init]


def _summarize(config, runs, res, rho_star) -> dict:
  depths = list(config.depths)
  out = {"experiment": config.experiment, "depths": depths, "dim": config.dim,
         "n_train": config.n_train, "steps": config.steps, "lr": config.lr,
         "lr_scaling": config.lr_scaling, "num_seeds": config.num_seeds, "results": {},
         "checks": {}}
  for target, init, idx in _groups(config, runs):
    name = f"{target}/{init}"
    per = {str(d): {k: common.stats(v[idx, i]) for k, v in res.items()}
           for i, d in enumerate(depths)}
    rho_t = common.stats(rho_star[idx])
    mean_final = res["rho_final"][idx].mean(0)
    out["results"][name] = {"rho_target": rho_t, "per_depth": per}
    out["checks"][f"{name}: rho_final strictly decreasing in depth"] = (
        common.strictly_decreasing(mean_final))
    out["checks"][f"{name}: max train loss"] = float(res["train_loss"][idx].max())
  if {"low_rank", "full_rank"} <= set(config.targets):
    init = config.inits[0]
    lo = res["train_loss"][[i for i, r in enumerate(runs) if r["target"] == "low_rank"
                            and r["init"] == init]].mean(0)
    hi = res["train_loss"][[i for i, r in enumerate(runs) if r["target"] == "full_rank"
                            and r["init"] == init]].mean(0)
    out["checks"]["deepest: full-rank / low-rank train loss"] = float(hi[-1] / lo[-1])
    out["checks"]["deepest: full-rank train loss"] = float(hi[-1])
  return out


def _figure(workdir, config, runs, res, rho_star) -> str:
  panels = {"train loss": {}, "test loss": {}, r"$\rho(W_e)$": {}}
  hlines = {r"$\rho(W_e)$": {}}
  for c, (target, init, idx) in enumerate(_groups(config, runs)):
    name = f"{target}/{init}"
    panels["train loss"][name] = res["train_loss"][idx]
    panels["test loss"][name] = res["test_loss"][idx]
    panels[r"$\rho(W_e)$"][f"{name} final"] = res["rho_final"][idx]
    panels[r"$\rho(W_e)$"][f"{name} init"] = res["rho_init"][idx]
    hlines[r"$\rho(W_e)$"][rf"$\rho(W^*)$ {target}"] = (float(rho_star[idx].mean()),
                                                        f"C{c}")
  return os.path.basename(common.plot_vs_depth(
      os.path.join(workdir, "regression.png"), config.depths, panels, hlines))
