"""Shared glue of the six incremental-learning experiments.

The depth loop (one compiled program per depth, seeds and init scales vmapped
inside), checkpoints, metrics.jsonl, the per-run records of summary.json, and
Figure-1-style plots (component values over time, one panel per depth; diverged runs
excluded). The config fields and their validation: fields.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable

import jax
import numpy as np

from jaxdepth import papers
from jaxdepth.engine import ckpt, plotting, writers
from jaxdepth.papers.incremental import runner


def precision(config):
  """float64 scoped to the run when the config asks for it (tiny initializations)."""
  return jax.enable_x64(True) if config.x64 else contextlib.nullcontext()


def seed_keys(config, purpose: int):
  """(S,) typed keys for one purpose (0 init, 1 data, 2 teacher, ...), per seed."""
  key = jax.random.fold_in(jax.random.key(config.seed), purpose)
  return jax.random.split(key, config.num_seeds)


Setup = Callable[[int], tuple]  # depth -> (problem, data, keys_S, thr_AxK, lr)


def _fingerprint(config) -> dict:
  """The config fields that determine a run's results (what a resume must match)."""
  return {k: v for k, v in writers.config_to_dict(config).items()
          if k not in papers.RESUME_SAFE_FIELDS}


def _restore(workdir: str, sub: str, fingerprint: dict, problem: runner.Problem, data, keys_s,
             scales, snapshots: bool) -> runner.Result | None:
  """A finished depth's Result from its checkpoint, if it was saved by this same config."""
  if not ckpt.has_checkpoints(workdir, sub):
    return None
  # An unreadable checkpoint is warned about and set aside next to ``sub`` (sweep
  # replaces ``sub`` when it saves the depth again); the depth is then retrained.
  cp = ckpt.Checkpointer(workdir, max_to_keep=1, subdir=sub,
                         aside_dir=os.path.join(workdir, sub + ".unreadable"))
  try:
    got = cp.restore_latest_readable(required=False)
  finally:
    cp.close()
  if got is None:
    return None
  _, state, meta = got
  if meta.get("config") != writers.to_jsonable(fingerprint) or "done" not in state:
    return None  # an older or foreign checkpoint: train this depth again
  # The params' NamedTuple type and 0-size fields (not saved) from an abstract init.
  init_v = jax.vmap(jax.vmap(problem.init, in_axes=(None, 0, None)), in_axes=(0, None, 0))
  template = jax.eval_shape(init_v, keys_s, np.asarray(scales, np.float64), data)
  saved = state["params"]
  params = type(template)(**{
      k: np.asarray(saved[k]) if k in saved else np.zeros(t.shape, t.dtype)
      for k, t in template._asdict().items()})
  arr = {k: np.asarray(v) for k, v in state.items() if k != "params"}
  return runner.Result(
      steps_T=np.asarray(meta["steps_T"]), loss_SxIxT=arr["loss"],
      logged_SxIxTxJ=arr["logged"], cross_t_SxIxAxK=arr["cross_t"],
      cross_snap_SxIxAxKxK=arr["cross_snap"] if snapshots else None,
      done_SxI=arr["done"].astype(bool), diverged_SxI=arr["diverged"].astype(bool),
      stop_step_SxI=arr["stop_step"], params=params, wall_s=float(meta["wall_s"]),
      steps_run=int(meta["steps_run"]))


def sweep(config, workdir: str, name: str, setup: Setup, snapshots: bool = False,
          variant: str = "") -> dict[int, runner.Result]:
  """Train every depth (a Python loop over compiled programs); save checkpoints + logs.

  Resuming works depth by depth: a depth whose checkpoint was written by the same
  config (all fields but the resume-safe ones, e.g. ``progress``) is restored
  instead of trained, so an interrupted sweep re-runs only the unfinished depths.
  """
  out = {}
  os.makedirs(workdir, exist_ok=True)
  fingerprint = _fingerprint(config)
  # metrics.jsonl is rewritten for this variant from the (trained or restored) results.
  path, keep = os.path.join(workdir, "metrics.jsonl"), []
  if os.path.exists(path):
    keep = [r for r in writers.read_jsonl(path) if r.get("variant") != (variant or None)]
    os.remove(path)
  log = writers.JsonlWriter(path)
  for r in keep:
    log.write(r)
  for depth in config.depths:
    problem, data, keys_s, thr, lr = setup(depth)
    tag = f"{name}{variant} depth {depth}"
    sub = f"checkpoints/{variant + '_' if variant else ''}depth_{depth}"
    res = _restore(workdir, sub, fingerprint, problem, data, keys_s, config.init_scales,
                   snapshots)
    if res is not None:
      if config.progress:
        print(f"{tag}: restored from {os.path.join(workdir, sub)}", file=sys.stderr)
    else:
      res = runner.train(problem, data, keys_s, config.init_scales, thr, lr=lr,
                         steps=config.steps, record_every=config.record_every,
                         log_every=config.log_every, stop_loss=config.stop_loss,
                         snapshots=snapshots, progress=config.progress, desc=tag)
      shutil.rmtree(os.path.join(workdir, sub), ignore_errors=True)  # a re-run overwrites
      cp = ckpt.Checkpointer(workdir, max_to_keep=1, subdir=sub)
      params = {k: v for k, v in res.params._asdict().items() if np.size(v)}  # orbax: no 0-size
      state = {"params": params, "logged": res.logged_SxIxTxJ, "loss": res.loss_SxIxT,
               "cross_t": res.cross_t_SxIxAxK, "done": res.done_SxI,
               "diverged": res.diverged_SxI, "stop_step": res.stop_step_SxI}
      if snapshots:
        state["cross_snap"] = res.cross_snap_SxIxAxKxK
      cp.save(res.steps_run, state,
              {"experiment": config.experiment, "depth": depth, "variant": variant,
               "init_scales": list(config.init_scales), "seeds": config.num_seeds,
               "lr": float(lr), "steps_T": res.steps_T, "axes": "(seed, init_scale, ...)",
               "wall_s": res.wall_s, "steps_run": res.steps_run, "config": fingerprint})
      cp.close()
    out[depth] = res
    for t, step in enumerate(res.steps_T):
      log.write({"step": int(step), "depth": depth, "variant": variant or None,
                 "loss": res.loss_SxIxT[:, :, t]})
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
