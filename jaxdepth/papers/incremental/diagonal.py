"""Diagonal linear networks for binary classification: features picked up one at a time.

Gissin et al. (2020), Figure 1c; docs/definitions.md, "Models".
beta = w_+^N - w_-^N with
w_+ = w_- = sigma0^(1/N) at init; x ~ N(0, I_d); labels sign(<w*, x>) with w* proportional to
``teacher`` on the first coordinates; exponential (default) or logistic loss,
averaged; full-batch GD stopped at ``stop_loss``.  Tracked: first step with
|beta_j| >= ``threshold`` for every coordinate, the top-5 |beta_j| over time.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import common, fields, metrics, models, runner

EXPERIMENT = "incremental.diagonal"

# The fields, their defaults and rules: fields.DIAGONAL (docs/config_fields.md).
SCHEMA = fields.DIAGONAL


class ClsData(NamedTuple):
  x_BxD: jax.Array
  y_B: jax.Array  # labels in {-1, +1}
  x_test_BxD: jax.Array
  y_test_B: jax.Array


def validate(config) -> None:
  """Check the config against fields.DIAGONAL; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def unit_teacher(d: int, weights) -> np.ndarray:
  w = np.zeros(d)
  w[: len(weights)] = weights
  return w / np.linalg.norm(w)


def make_data(key, w_star_D, n: int, n_test: int) -> ClsData:
  """x ~ N(0, I_d), y = sign(<w*, x>) in {-1, +1} (separable by construction)."""
  k1, k2 = jax.random.split(key)
  d = w_star_D.shape[0]
  x = jax.random.normal(k1, (n, d), w_star_D.dtype)
  xt = jax.random.normal(k2, (n_test, d), w_star_D.dtype)
  sign = lambda z: jnp.where(z >= 0, 1.0, -1.0).astype(z.dtype)
  return ClsData(x, sign(x @ w_star_D), xt, sign(xt @ w_star_D))


def diagonal_problem(d: int, depth: int, loss: str, top_k: int) -> runner.Problem:
  def track(p, data):
    a = jnp.abs(models.signed_beta(p, depth))
    return a, jax.lax.top_k(a, top_k)[0]

  def loss_fn(p, data):
    return models.margin_loss(data.y_B * (data.x_BxD @ models.signed_beta(p, depth)), loss)

  return runner.Problem(init=lambda key, s0, data: models.signed_init(d, depth, s0),
                        loss=loss_fn, track=track)


def cosine(a, b) -> float:
  return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def svm_direction(x_BxD, y_B) -> np.ndarray:
  """l2 max-margin direction (linear SVM, large C, no intercept); liblinear's coordinate
  order seeded, so that a re-run reports the same direction."""
  from sklearn.svm import LinearSVC
  clf = LinearSVC(C=1e4, fit_intercept=False, loss="hinge", max_iter=200_000, tol=1e-8,
                  random_state=0)
  clf.fit(np.asarray(x_BxD), np.asarray(y_B))
  return clf.coef_[0]


def classification_record(beta_D, w_star_D, support: int, cross_t_D, x_test, y_test) -> dict:
  """cos(beta, w*), l2 mass on the support, crossing times, held-out accuracy."""
  beta = np.asarray(beta_D, float)
  t = np.asarray(cross_t_D, float)
  t_sup = t[:support]
  return {"cosine": cosine(beta, w_star_D),
          "support_mass": float(np.sum(beta[:support] ** 2) / (np.sum(beta**2) + 1e-300)),
          "cross_t_support": t_sup,
          "support_order_increasing": bool(np.all(np.isfinite(t_sup))
                                            and np.all(np.diff(t_sup) > 0)),
          "off_support_crossed": int(np.sum(np.isfinite(t[support:]))),
          "active_count": metrics.crossed_count(t),
          "test_accuracy": float(np.mean(np.sign(np.asarray(x_test) @ beta) == np.asarray(y_test))),
          "beta_top": np.sort(np.abs(beta))[::-1][:5] / (np.linalg.norm(beta) + 1e-300)}


def run(config, workdir: str) -> dict:
  w_star = unit_teacher(config.d, config.teacher)
  k = len(config.teacher)
  with common.precision(config):
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    data = jax.vmap(lambda key: make_data(key, jnp.asarray(w_star, dtype), config.n,
                                          config.n_test))(common.seed_keys(config, 1))
    thr = np.full((1, config.d), config.threshold)

    def setup(depth):
      return (diagonal_problem(config.d, depth, config.loss, config.top_k), data,
              common.seed_keys(config, 0), thr, config.lr)

    results = common.sweep(config, workdir, "diagonal", setup)
    host = jax.device_get(data)
  runs = []
  for depth, res in results.items():
    p = res.params
    for s in range(config.num_seeds):
      for i in range(len(config.init_scales)):
        r = common.base_run(config, depth, res, s, i, config.lr)
        beta = np.asarray(p.wp_D[s, i], float) ** depth - np.asarray(p.wm_D[s, i], float) ** depth
        r.update(classification_record(beta, w_star, k, res.cross_t_SxIxAxK[s, i, 0],
                                       host.x_test_BxD[s], host.y_test_B[s]))
        runs.append(r)
  extra = {"teacher": w_star[:k]}
  if config.svm:
    svm = []
    for s in range(config.num_seeds):
      w = svm_direction(host.x_BxD[s], host.y_B[s])
      svm.append({"seed": config.seed + s, "cosine": cosine(w, w_star),
                  "support_mass": float(np.sum(w[:k] ** 2) / np.sum(w**2)),
                  "test_accuracy": float(np.mean(np.sign(host.x_test_BxD[s] @ w)
                                                 == host.y_test_B[s]))})
    extra["svm"] = svm
  for i, s0 in enumerate(config.init_scales):
    common.plot_values(os.path.join(workdir, f"weights_sigma0_{s0:g}.png"), config, results, i,
                       ylabel=r"top $|\beta_j|$", title="diagonal network: feature weights")
  common.plot_losses(os.path.join(workdir, "loss.png"), config, results)
  return common.finish(workdir, runs, extra)
