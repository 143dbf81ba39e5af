"""Linear over-parameterization of an MLP and a CONV-L-H on embedded datasets
(Huh et al. 2021, Sec. 6 and Fig. 7;
docs/definitions.md, "Linear over-parameterization").

Every Linear/Conv layer of the core networks (nets.mlp, convnets.build_conv) is
expanded into ``expansion`` linear sub-layers (k x k then 1 x 1 for convs, the
Kaiming init of the paper's reference code) with ``overparam.expand_params``; the
network's apply collapses the
factors (``overparam.collapse_params``, differentiable, so training follows the
factorized dynamics) and runs the original network on the collapsed weights. The
expanded network is registered as the model family ``overparam`` (model fields
``base``, ``expansion``, ``expansion_width``), so the core trainer
(``jaxdepth.papers.minimal_depth.train.train_shape``: vmapped seeds, SGD schedule,
per-layer analysis with the Gram rank of every layer, checkpoints) runs it unchanged. Expansion 1 is
the network as-is.

Recorded per (model, expansion), over seeds: train/test accuracy, per-layer Gram
rank of the embeddings (train/test), and rho of every collapsed layer's weights
(kernels reshaped to (fan_in, out)).
"""

from __future__ import annotations

import contextlib
import itertools
import os

import jax
import ml_collections
import numpy as np

from jaxdepth import data, nets, papers
from jaxdepth.engine import ckpt, metrics, plotting, writers
from jaxdepth.engine import progress as progress_lib
from jaxdepth.errors import ConfigError
from jaxdepth.measure import rank
from jaxdepth.nets import overparam
from jaxdepth.nets.expanded import MODELS, sites
from jaxdepth.papers import sgd
from jaxdepth.papers.lowrank import common, fields, segments
from jaxdepth.papers.minimal_depth import train

EXPERIMENT = "lowrank.overparam"

FAMILY = "overparam"

# The fields, their defaults and rules: fields.OVERPARAM (docs/config_fields.md).
SCHEMA = fields.OVERPARAM
FIELDS = tuple(f.name for f in SCHEMA.fields if "." not in f.name)
TRAIN_FIELDS = fields.OVERPARAM_TRAIN


# ------------------------------------------------------------------------ config


def train_config(config, model: str, expansion: int) -> ml_collections.ConfigDict:
  """The core trainer's config for one (model, expansion)."""
  t = config.train
  opt = {k: t[k] for k in TRAIN_FIELDS}
  if config.lr_scaling == "inverse_expansion":
    # A depth-e product moves about e times faster per step (Arora et al. 2018
    # preconditioner); lr / e keeps the end-to-end step size comparable.
    lr = t.lr
    opt["lr"] = (tuple(v / expansion for v in lr) if isinstance(lr, (tuple, list))
                 else lr / expansion)
  c = ml_collections.ConfigDict(dict(
      experiment="collapse", dataset=config.dataset, data=config.data.to_dict(),
      family=FAMILY if expansion > 1 else MODELS[model], depth=config.depth,
      width=config.width, batchnorm=config.batchnorm, init="kaiming",
      model=dict(base=model, expansion=expansion, expansion_width=config.expansion_width)
      if expansion > 1 else {},
      num_seeds=config.num_seeds, seed=config.seed, label_noise=(0.0,),
      noise_mode="flip", eps=(0.01,), checkpoint_every=t.epochs, keep_checkpoints=1,
      augment=(), sweep_depths=(), sweep_widths=(), shard_runs=True,
      progress=config.progress, plots=False,
      **opt))
  return c


def _axes(config) -> dict:
  return {f: sgd.values(config.train, f) for f in sgd.HPARAMS if f in config.train}


def points(config) -> list[str]:
  """Names of the grid's hyperparameter points (train.lr, ... with several values, by
  their configured, unscaled values), in run order; [""] when every field has one."""
  axes = _axes(config)
  names = [f for f in axes if len(axes[f]) > 1]
  if not names:
    return [""]
  return [",".join(f"{train.SHORT.get(f, f)}={v:g}" for f, v in zip(axes, pt)
                   if f in names) for pt in itertools.product(*axes.values())]


def validate(config) -> None:
  """fields.OVERPARAM's rules, then each (model, expansion)'s trainer config against the
  collapse trainer's (rules across fields, the network's fit to the dataset); raises
  ConfigError before any compute, ``train.*`` fields named as such."""
  SCHEMA.validate(config)
  for m in config.models:
    for e in config.expansions:
      with _train_fields():
        train.validate(train_config(config, m, e))


@contextlib.contextmanager
def _train_fields():
  """A trainer config's ConfigError, its field named as overparam's (``train.lr``)."""
  try:
    yield
  except ConfigError as err:
    f = err.field
    field = f"train.{f}" if f in TRAIN_FIELDS else f
    raise ConfigError(field, str(err).split(": ", 1)[1]) from None


# ---------------------------------------------------------------------- running


def layer_weight_rhos(params_R, site_list, expanded: bool) -> np.ndarray:
  """(R, layers) rho of every (collapsed) layer's weights; kernels as (fan_in, out)."""
  if expanded:
    params_R = jax.jit(jax.vmap(lambda p: overparam.collapse_params(p, site_list)))(
        params_R)
  cols = []
  for s in site_list:
    w = np.asarray(overparam._get_path(params_R, s.kernel), np.float64)
    r = w.shape[0]
    mats = w.reshape((r, s.stacked or 1, -1, w.shape[-1]))
    ok = np.isfinite(mats).all(axis=(1, 2, 3))  # diverged runs give NaN, not an error
    col = np.full((r, s.stacked or 1), np.nan)
    if ok.any():
      col[ok] = rank.entropy_rank64(mats[ok])
    cols.append(col)
  return np.concatenate(cols, axis=1)


def _final_params(workdir: str, tag: str):
  """Final params (leading run axis) from the trainer's last checkpoint."""
  ck = ckpt.Checkpointer(workdir, max_to_keep=1, subdir=os.path.join("checkpoints", tag))
  try:
    last = ck.latest_step()
    restored = ck.restore_latest_readable()
  finally:
    ck.close()
  if restored is None or restored[0] != last:  # the final step became unreadable
    raise ckpt.CheckpointUnreadable(
        ck.directory, f"the final checkpoint (step {last}) in {ck.directory} cannot be "
        "read; it is kept aside: re-run the same command to train from the step before")
  state = restored[1]["state"]
  return state["params"] if isinstance(state, dict) else state[0]


def run(config, workdir: str) -> dict:
  # The trainer resumes each (model, expansion) from checkpoints/TAG: refuse, before
  # any compute, checkpoints that another config saved there.
  for model, e in itertools.product(config.models, config.expansions):
    with _train_fields():
      segments.check_checkpoint_config(
          workdir, os.path.join("checkpoints", f"{model}_e{e}"),
          writers.config_to_dict(train_config(config, model, e)))
  ds = data.load(config)
  if config.data.get("num_train") or config.data.get("num_test"):
    ds = data.subsample(ds, config.data.get("num_train"), config.data.get("num_test"))
  # Per-run records, keyed by every coordinate: a resumed run logs no step twice.
  log = metrics.MetricsLog(workdir, ("kind", "model", "expansion", "depth", "width", "seed",
                                     "label_noise", *papers.HPARAM_COORDINATES))
  results = {}
  for model in config.models:
    for e in config.expansions:
      tcfg = train_config(config, model, e)
      tag = f"{model}_e{e}"
      spe = ds.x_train.shape[0] // tcfg.batch_size
      bar = progress_lib.progress(tcfg.epochs * spe, tag, enabled=config.progress)
      grid, out, _ = train.train_shape(tcfg, ds, config.depth, config.width, workdir,
                                       log, tag, bar, fields={"model": model, "expansion": e})
      bar.close()
      base = nets.build({**train.model_cfg(tcfg, config.depth, config.width),
                         "family": MODELS[model]}, ds.x_train.shape[1:], ds.num_classes)
      base_params = jax.eval_shape(base.init, jax.random.key(0))["params"]
      site_list = sites(model, base_params, e, config.expansion_width,
                        ds.x_train.shape[1:])
      rhos = layer_weight_rhos(_final_params(workdir, tag), site_list, e > 1)
      results[(model, e)] = (out, rhos, grid)
  summary = _summarize(config, results)
  summary["figures"] = _figures(workdir, config, results)
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _summarize(config, results) -> dict:
  out = {"experiment": config.experiment, "dataset": config.dataset,
         "depth": config.depth, "width": config.width,
         "expansions": list(config.expansions), "num_seeds": config.num_seeds,
         "results": {}, "checks": {}}
  pts = points(config)
  if pts != [""]:
    out["points"] = pts
  for (model, e), (m_all, rhos_all, *grid) in results.items():
    # (out, rhos, grid) from run(); without the grid, the one point's trained lr.
    grid = grid[0] if grid else [{"lr": config.train.lr / (
        e if config.lr_scaling == "inverse_expansion" else 1)}] * len(m_all["diverged"])
    for j, name in enumerate(pts):
      # The runs of hyperparameter point j (noise x point x seed, seed minor).
      sel = [i for i in range(len(grid)) if (i // config.num_seeds) % len(pts) == j]
      m = {k: np.asarray(v)[sel] for k, v in m_all.items()}
      key = f"{model}/e{e}" + (f"/{name}" if name else "")
      out["results"][key] = _point(config, e, m, np.asarray(rhos_all)[sel], grid[sel[0]])
  for model in config.models:
    e0, e1 = min(config.expansions), max(config.expansions)
    if e0 == e1:
      continue
    for name in pts:
      sfx, at = (f"/{name}", f" ({name})") if name else ("", "")
      a, b = out["results"][f"{model}/e{e0}{sfx}"], out["results"][f"{model}/e{e1}{sfx}"]
      out["checks"][f"{model}: weight rho lower at e{e1} than e{e0}{at}"] = bool(
          b["weight_rho_mean"]["mean"] < a["weight_rho_mean"]["mean"])
      out["checks"][f"{model}: embedding rank (train) lower at e{e1} than e{e0}{at}"] = \
          bool(b["rank_train_mean"]["mean"] < a["rank_train_mean"]["mean"])
  return out


def _point(config, e: int, m: dict, rhos, run: dict) -> dict:
  """One (model, expansion, hyperparameter point)'s record, over its seeds."""
  # Diverged runs are counted (diverged_runs), never averaged in.
  div = np.asarray(m["diverged"], bool)
  ok = lambda a, div=div: np.where(div.reshape(-1, *[1] * (np.ndim(a) - 1)), np.nan,
                                   np.asarray(a, np.float64))
  rec = {k: common.stats(ok(m[k])) for k in ("train_acc", "test_acc", "train_loss",
                                               "test_loss")}
  for k in ("rank_train", "rank_test"):
    r = ok(m[k])
    rec[k] = common.nanmean(r, 0).tolist()       # per layer, mean over seeds
    rec[k + "_mean"] = common.stats(r.mean(1))
  rhos = ok(rhos)
  rec["weight_rho"] = common.nanmean(rhos, 0).tolist()  # per layer (incl. classifier)
  rec["weight_rho_mean"] = common.stats(rhos.mean(1))
  rec["lr"] = run["lr"]  # the trained lr (scaled by 1/e under inverse_expansion)
  axes = _axes(config)
  rec.update({f: run[f] for f in axes if f != "lr" and len(axes[f]) > 1})
  rec["diverged_runs"] = int(np.sum(np.asarray(m["diverged"])))
  return rec


def _figures(workdir: str, config, results) -> list[str]:
  """Figures of the first hyperparameter point (all runs when there is one)."""
  n = config.num_seeds
  results = {k: ({f: np.asarray(v)[:n] for f, v in m.items()}, np.asarray(r)[:n])
             for k, (m, r, *_) in results.items()}
  fig, axes = plotting.subplots(4)
  exps = list(config.expansions)
  for i, model in enumerate(config.models):
    c = f"C{i}"
    for ax, key in zip(axes[:2], ("train_acc", "test_acc")):
      plotting.mean_band(ax, exps, np.stack([results[(model, e)][0][key] for e in exps],
                                            axis=1), label=model, color=c)
      ax.set(xlabel="expansion depth", title=key.replace("_", " "))
    plotting.mean_band(axes[2], exps, np.stack([results[(model, e)][1].mean(1)
                                                for e in exps], axis=1),
                       label=model, color=c)
    axes[2].set(xlabel="expansion depth", title=r"mean $\rho$ of collapsed weights")
    for j, e in enumerate(exps):
      r = np.asarray(results[(model, e)][0]["rank_train"])
      plotting.mean_band(axes[3], list(range(1, r.shape[1] + 1)), r, color=c,
                         label=f"{model} e{e}", ls=["-", "--", ":", "-."][j % 4])
    axes[3].set(xlabel="layer", title=r"embedding Gram rank $\rho(K)$ (train)")
  for ax in axes:
    ax.legend(fontsize=7)
  return [os.path.basename(plotting.save(fig, os.path.join(workdir, "overparam.png")))]
