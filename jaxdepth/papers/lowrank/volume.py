"""The "volume" simulation (Huh et al. 2021, Fig. 2;
docs/definitions.md, "Volume simulation").

For each depth d, ``draws`` products W_e = W_1 ... W_d of i.i.d. n x n factors
(Normal or Uniform, variance 1/n) are drawn and rho(W_e) is histogrammed. The
"percent volume" below a threshold tau is the fraction of draws with rho < tau; the
paper's claim is that it grows with depth. Products and SVDs run in float64; one
jitted program for all depths (identity factors past each depth), vmapped over draws.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxdepth.engine import plotting, writers
from jaxdepth.measure import rank
from jaxdepth.papers.lowrank import common, fields, segments

EXPERIMENT = "lowrank.volume"

# The fields, their defaults and rules: fields.VOLUME (docs/config_fields.md).
SCHEMA = fields.VOLUME


def validate(config) -> None:
  """Check the config against fields.VOLUME; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def sample_rhos(key, depth: int, n: int, draws: int, distribution: str,
                max_depth: int | None = None) -> np.ndarray:
  """(draws,) float64 rho of random depth-``depth`` products of n x n matrices.

  With ``max_depth``, factors are drawn for ``max_depth`` layers and those past
  ``depth`` are replaced by the identity: one compiled program serves every depth
  (the draws of depth d are then not the prefix of another depth's draws).
  """
  total = max_depth or depth
  return _sample(key, jax.numpy.asarray(depth), n, draws, distribution, total)


def _sample(key, depth, n, draws, distribution, total):
  with jax.enable_x64(True):
    return np.asarray(_sample_jit(key, depth, n, draws, distribution, total))


def _sample_impl(key, depth, n, draws, distribution, total):
  eye = jax.numpy.eye(n, dtype=jax.numpy.float64)

  def one(k):
    w = common.sample_matrices(k, (total, n, n), distribution, jax.numpy.float64)
    keep = (jax.numpy.arange(total) < depth)[:, None, None]
    return rank.entropy_rank(common.end_to_end(jax.numpy.where(keep, w, eye[None])))

  return jax.vmap(one)(jax.random.split(key, draws))


_sample_jit = jax.jit(_sample_impl, static_argnums=(2, 3, 4, 5))


def _depth_stats(r, taus) -> dict:
  """One depth's record: mean / std of rho, mean effective rank, fraction below each tau."""
  return {"mean_rho": float(r.mean()), "std_rho": float(r.std()),
          "erank_mean": float(np.exp(r).mean()),
          "frac_below": [float(np.mean(r < t)) for t in taus]}


def run(config, workdir: str) -> dict:
  depths, taus = tuple(config.depths), tuple(config.thresholds)
  key = jax.random.fold_in(jax.random.key(config.seed), 0)

  def compute(state, i):  # one depth per segment: its draws' rho, row i
    d = depths[i]
    state["rho"][i] = sample_rhos(jax.random.fold_in(key, d), d, config.n, config.draws,
                                  config.distribution, max(depths))

  def records(state, i):
    return [({"depth": depths[i]}, {"step": i, **_depth_stats(state["rho"][i], taus)})]

  # Checkpointed after every depth; metrics.jsonl through the resumable stream.
  state = segments.run(config, workdir, "volume",
                       {"rho": np.zeros((len(depths), config.draws))}, len(depths),
                       compute, records, ("depth",), unit="depth")
  rhos = {d: state["rho"][i] for i, d in enumerate(depths)}
  per_depth = {str(d): _depth_stats(rhos[d], taus) for d in depths}
  writers.write_csv(os.path.join(workdir, "rho_draws.csv"),
                    [{"depth": d, "draw": j, "rho": float(v)} for d in depths
                     for j, v in enumerate(rhos[d])])
  means = [per_depth[str(d)]["mean_rho"] for d in depths]
  fr = np.array([per_depth[str(d)]["frac_below"] for d in depths])  # (D, T)
  summary = {
      "experiment": config.experiment, "n": config.n, "distribution": config.distribution,
      "draws": config.draws, "depths": list(depths), "thresholds": list(taus),
      "log_n": float(np.log(config.n)), "per_depth": per_depth,
      "checks": {
          "mean_rho_strictly_decreasing": common.strictly_decreasing(means),
          "frac_below_nondecreasing": bool(np.all(np.diff(fr, axis=0) >= 0)),
      },
      "figures": _figures(workdir, config, rhos),
  }
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _figures(workdir: str, config, rhos: dict) -> list[str]:
  depths = list(rhos)
  edges = np.linspace(0.0, np.log(config.n), config.bins + 1)
  out = []
  for d in depths:
    fig, (ax,) = plotting.subplots(1)
    ax.hist(rhos[d], bins=edges, color="C0")
    ax.set(xlabel=r"effective rank $\rho(W_e)$", ylabel="draws",
           title=f"depth {d}, n={config.n}, {config.distribution}")
    out.append(plotting.save(fig, os.path.join(workdir, f"hist_depth_{d}.png")))
  fig, (ax1, ax2) = plotting.subplots(2)
  taus = np.linspace(0.0, np.log(config.n), 200)
  for i, d in enumerate(depths):
    ax1.hist(rhos[d], bins=edges, histtype="step", color=f"C{i}", label=f"d={d}")
    ax2.plot(taus, [np.mean(rhos[d] < t) for t in taus], color=f"C{i}", label=f"d={d}")
  ax1.set(xlabel=r"$\rho(W_e)$", ylabel="draws", title="distribution of rho")
  ax2.set(xlabel=r"threshold $\tau$", ylabel=r"fraction with $\rho < \tau$",
          title="percent volume")
  ax1.legend(fontsize=7)
  ax2.legend(fontsize=7)
  out.append(plotting.save(fig, os.path.join(workdir, "volume.png")))
  return [os.path.basename(p) for p in out]
