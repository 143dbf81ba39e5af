"""Shared glue of the six incremental-learning experiments.

The depth loop (one compiled program per depth, seeds and init scales vmapped
inside, each run by engine/driver: checkpoints, resume, the metrics.jsonl stream),
the per-run records of summary.json, and
Figure-1-style plots (component values over time, one panel per depth; diverged runs
excluded). The config fields and their validation: fields.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import jax
import numpy as np

from jaxdepth import papers
from jaxdepth.engine import distributed, metrics, plotting, writers
from jaxdepth.papers.incremental import runner


def precision(config):
  """float64 scoped to the run when the config asks for it (tiny initializations)."""
  return jax.enable_x64(True) if config.x64 else contextlib.nullcontext()


def seed_keys(config, purpose: int):
  """(S,) typed keys for one purpose (0 init, 1 data, 2 teacher, ...), per seed."""
  key = jax.random.fold_in(jax.random.key(config.seed), purpose)
  return jax.random.split(key, config.num_seeds)


Setup = Callable[[int], tuple]  # depth -> (problem, data, keys_S, thr_AxK, lr)


def sweep(config, workdir: str, name: str, setup: Setup, snapshots: bool = False,
          variant: str = "") -> dict[int, runner.Result]:
  """Train every depth (a Python loop over compiled programs) through engine/driver.

  Each depth checkpoints under ``checkpoints/[variant_]depth_D`` after every segment
  (its log records included) and writes its metrics.jsonl records through the resumable
  stream keyed by (depth, variant): a finished depth is restored instead of trained, an
  interrupted one resumes at its last segment, and a re-run writes no line twice. A
  checkpoint written by another config (all fields but the resume-safe ones, e.g.
  ``progress``) is not resumed: that depth is trained again.
  """
  out = {}
  os.makedirs(workdir, exist_ok=True)
  fingerprint = writers.to_jsonable(papers.fingerprint(config))
  log = metrics.MetricsLog(workdir, ("depth", "variant"), enabled=distributed.is_primary())
  for depth in config.depths:
    problem, data, keys_s, thr, lr = setup(depth)
    sub = f"checkpoints/{variant + '_' if variant else ''}depth_{depth}"
    meta = {"experiment": config.experiment, "depth": depth, "variant": variant,
            "init_scales": list(config.init_scales), "seeds": config.num_seeds,
            "lr": float(lr), "axes": "(seed, init_scale, ...)", "config": fingerprint}
    store = runner.Store(workdir, sub, log.stream(depth=depth, variant=variant or None), meta,
                         accept=lambda m: m.get("config") == fingerprint)
    out[depth] = runner.train(problem, data, keys_s, config.init_scales, thr, lr=lr,
                              steps=config.steps, record_every=config.record_every,
                              log_every=config.log_every, stop_loss=config.stop_loss,
                              snapshots=snapshots, progress=config.progress,
                              desc=f"{name}{variant} depth {depth}", store=store)
  log.close()
  return out


def base_run(config, depth: int, res: runner.Result, s: int, i: int, lr) -> dict:
  """The fields every run record of summary.json has."""
  loss = res.loss_SxIxT[s, i]
  return {"depth": depth, "init_scale": config.init_scales[i], "seed": config.seed + s,
          "lr": float(lr), "diverged": bool(res.diverged_SxI[s, i]),
          "converged": bool(res.done_SxI[s, i]),
          "stop_step": int(res.stop_step_SxI[s, i]) if res.stop_step_SxI[s, i] >= 0 else None,
          "final_loss": float(loss[-1]),
          "wall_s_per_depth": res.wall_s}


def finish(workdir: str, runs: list[dict], extra: dict | None = None) -> dict:
  """Write summary.json ({"runs": [...], ...}) and return it."""
  summary = {"runs": runs, "num_diverged": sum(r["diverged"] for r in runs)}
  summary.update(extra or {})
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def plot_values(path: str, config, results: dict[int, runner.Result], scale_idx: int,
                targets=None, ylabel: str = "value", logy: bool = False,
                title: str = "", labels=None, time_scale: dict | None = None) -> str:
  """Figure 1 style: tracked values over time, one panel per depth, mean over seeds.

  Diverged runs are dropped; a panel with no converged-or-running seed says so.
  """
  depths = list(results)
  fig, axes = plotting.subplots(len(depths))
  for ax, depth in zip(axes, depths):
    res = results[depth]
    ok = ~res.diverged_SxI[:, scale_idx]
    x = res.steps_T * (time_scale or {}).get(depth, 1.0)
    if not ok.any():
      ax.text(0.5, 0.5, "all runs diverged", ha="center", transform=ax.transAxes)
    else:
      vals_SxTxJ = res.logged_SxIxTxJ[ok, scale_idx]
      for j in range(vals_SxTxJ.shape[-1]):
        lab = labels[j] if labels is not None else f"#{j + 1}"
        plotting.mean_band(ax, x, vals_SxTxJ[:, :, j], label=lab,
                           markevery=max(1, len(x) // 8))
      for tv in targets if targets is not None else ():
        ax.axhline(tv, color="gray", ls=":", lw=0.8)
      stops = res.stop_step_SxI[ok, scale_idx]
      if np.all(stops > 0):  # every run froze: zoom on the part where something happens
        ax.set_xlim(0, 1.3 * stops.max() * (time_scale or {}).get(depth, 1.0))
    ax.set_title(f"depth {depth}, $\\sigma_0$={config.init_scales[scale_idx]:g}")
    ax.set_xlabel("time (steps x lr)" if time_scale else "step")
    ax.set_ylabel(ylabel)
    if logy:
      ax.set_yscale("log")
  if axes[0].get_legend_handles_labels()[0]:
    axes[0].legend(fontsize=7)
  if title:
    fig.suptitle(title)
  return plotting.save(fig, path)


def plot_losses(path: str, config, results: dict[int, runner.Result]) -> str:
  """Loss curves (log scale), one panel per depth, one line per init scale."""
  depths = list(results)
  fig, axes = plotting.subplots(len(depths))
  for ax, depth in zip(axes, depths):
    res = results[depth]
    for i, s0 in enumerate(config.init_scales):
      ok = ~res.diverged_SxI[:, i]
      if ok.any():
        y = np.maximum(res.loss_SxIxT[ok, i], 1e-300)
        plotting.mean_band(ax, res.steps_T, y, label=f"$\\sigma_0$={s0:g}",
                           markevery=max(1, len(res.steps_T) // 8))
    ax.set_yscale("log")
    ax.set_title(f"depth {depth}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  return plotting.save(fig, path)
