"""Deep toy model vs Orthogonal Matching Pursuit on sparse regression.

Gissin et al. (2020); docs/definitions.md, "Models".
X (n x d) with i.i.d. N(0, 1) entries and unit-norm
columns; w* with ``sparsity`` nonzeros Exponential(scale) + 1 on a uniform support;
y = X w*.  GD side: signed depth-N toy model beta = w_+^N - w_-^N, loss mean (X beta -
y)^2 (no 1/2), full batch, stopped at ``stop_loss``; coordinate j is selected at the
first step with |beta_j| > ``threshold``.  OMP side: greedy selection with
least-squares refits.  Output: concurrence |S_OMP & S_GD| / min(|S_OMP|, |S_GD|).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import common, fields, metrics, models, runner

EXPERIMENT = "incremental.omp"

# The fields, their defaults and rules: fields.OMP (docs/config_fields.md).
SCHEMA = fields.OMP


class SparseData(NamedTuple):
  x_BxD: jax.Array
  y_B: jax.Array
  w_star_D: jax.Array
  support_K: jax.Array  # support sorted by decreasing w*


def validate(config) -> None:
  """Check the config against fields.OMP; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def make_data(key, n: int, d: int, k: int, scale: float) -> SparseData:
  """Unit-norm Gaussian columns; k-sparse positive w* (Exponential(scale) + 1); y = X w*."""
  dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  kx, ks, kv = jax.random.split(key, 3)
  x = jax.random.normal(kx, (n, d), dtype)
  x = x / jnp.linalg.norm(x, axis=0, keepdims=True)
  support = jax.random.choice(ks, d, (k,), replace=False)
  vals = jnp.sort(jax.random.exponential(kv, (k,), dtype) * scale + 1.0)[::-1]
  w = jnp.zeros((d,), dtype).at[support].set(vals)
  return SparseData(x, x @ w, w, support)


def omp(x_BxD, y_B, tol: float = 1e-4, max_atoms: int | None = None) -> list[int]:
  """Orthogonal Matching Pursuit: j = argmax |X_j^T r|, refit beta_S by least squares.

  Stops when 1/2 ||r||^2 < tol, when j is already selected, or at |S| = n.
  Returns the selected coordinates in selection order.
  """
  x = np.asarray(x_BxD, float)
  y = np.asarray(y_B, float)
  r, sel = y.copy(), []
  max_atoms = x.shape[0] if max_atoms is None else max_atoms
  while 0.5 * r @ r >= tol and len(sel) < max_atoms:
    j = int(np.argmax(np.abs(x.T @ r)))
    if j in sel:
      break
    sel.append(j)
    beta_s, *_ = np.linalg.lstsq(x[:, sel], y, rcond=None)
    r = y - x[:, sel] @ beta_s
  return sel


def gd_selection(cross_t_D, beta_D) -> list[int]:
  """Coordinates that ever crossed, ordered by first crossing (ties: larger |beta| first)."""
  t = np.asarray(cross_t_D, float)
  idx = np.flatnonzero(np.isfinite(t))
  return [int(j) for j in sorted(idx, key=lambda j: (t[j], -abs(beta_D[j])))]


def concurrence(a: list[int], b: list[int]) -> float:
  if not a or not b:
    return 0.0
  return len(set(a) & set(b)) / min(len(a), len(b))


def omp_problem(d: int, depth: int, k: int) -> runner.Problem:
  def track(p, data):
    a = jnp.abs(models.signed_beta(p, depth))
    return a, a[data.support_K]

  def loss(p, data):
    return jnp.mean((data.x_BxD @ models.signed_beta(p, depth) - data.y_B) ** 2)

  return runner.Problem(init=lambda key, s0, data: models.signed_init(d, depth, s0),
                        loss=loss, track=track)


def run(config, workdir: str) -> dict:
  with common.precision(config):
    data = jax.vmap(lambda key: make_data(key, config.n, config.d, config.sparsity,
                                          config.value_scale))(common.seed_keys(config, 1))
    thr = np.full((1, config.d), config.threshold)

    def setup(depth):
      return (omp_problem(config.d, depth, config.sparsity), data, common.seed_keys(config, 0),
              thr, config.lr)

    results = common.sweep(config, workdir, "omp", setup)
    host = jax.device_get(data)
  omp_sel = [omp(host.x_BxD[s], host.y_B[s], config.omp_tol) for s in range(config.num_seeds)]
  runs = []
  for depth, res in results.items():
    for s in range(config.num_seeds):
      w_star = np.asarray(host.w_star_D[s], float)
      support = [int(j) for j in host.support_K[s]]
      for i in range(len(config.init_scales)):
        r = common.base_run(config, depth, res, s, i, config.lr)
        beta = (np.asarray(res.params.wp_D[s, i], float) ** depth
                - np.asarray(res.params.wm_D[s, i], float) ** depth)
        gd = gd_selection(res.cross_t_SxIxAxK[s, i, 0], beta)
        m = min(len(gd), len(omp_sel[s]))
        r.update({"support_by_value": support, "gd_order": gd, "omp_order": omp_sel[s],
                  "num_selected_gd": len(gd),
                  "precision_vs_omp": len(set(gd) & set(omp_sel[s])) / max(1, len(gd)),
                  "concurrence": concurrence(omp_sel[s], gd),
                  "orders_agree": gd[:m] == omp_sel[s][:m] and m > 0,
                  "gd_order_is_value_order": gd == support,
                  "rel_error": float(np.sum((beta - w_star) ** 2) / np.sum(w_star**2))})
        # t10/t50/t90 of |beta| on the support vs the sorted w* values (log resolution).
        vals, traj = w_star[support], res.logged_SxIxTxJ[s, i]
        t = metrics.crossing_times(traj, res.steps_T, metrics.thresholds(vals))
        r.update({"t10": t[0], "t50": t[1], "t90": t[2],
                  "next_frac_at_t90": metrics.next_frac_from_trajectory(traj, res.steps_T, vals),
                  "t_resolution": config.log_every})
        runs.append(r)
  for i, s0 in enumerate(config.init_scales):
    common.plot_values(os.path.join(workdir, f"support_weights_sigma0_{s0:g}.png"), config,
                       results, i, ylabel=r"$|\beta_j|$ on the true support",
                       labels=[f"{q + 1}th largest $w^*$" for q in range(config.sparsity)],
                       title="deep toy model on sparse regression", logy=True)
  common.plot_losses(os.path.join(workdir, "loss.png"), config, results)
  return common.finish(workdir, runs)
