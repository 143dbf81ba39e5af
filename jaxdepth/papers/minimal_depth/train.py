"""Vmapped multi-run training with in-graph per-layer analysis (the 'collapse' experiment).

All runs of one (depth, width) -- seeds x label-noise levels x the values of lr,
weight_decay, momentum, warmup_epochs and decay (each a number or a tuple) -- are one
leading axis R of a single compiled program: init, label corruption, SGD and the per-layer
analysis are vmapped over R, and R is sharded over devices when there are several.
Depth/width sweeps loop over compiled programs.

  jaxdepth train --config configs/quickstart.py --workdir runs/quickstart

Why this module is long: it is the collapse experiment whole (config, run grid with its
value-hyperparameter axes, program, driver, summary, CSV rows and report), which the
over-parameterization experiment and the benchmarks reuse piece by piece.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth import data, nets
from jaxdepth.data import augment
from jaxdepth.engine import devices, distributed, driver, loop, metrics, writers
from jaxdepth.engine import progress as progress_lib
from jaxdepth.engine import report as report_lib
from jaxdepth.engine import validate as V
from jaxdepth.measure import analysis
from jaxdepth.papers import sgd
from jaxdepth.papers.minimal_depth import fields
from jaxdepth.papers.sgd import RunKeys, TrainState

EXPERIMENT = "collapse"
MULTI_PROCESS = True  # its run grid may span several JAX processes

# The analysis keeps every layer's embeddings of both splits (one forward pass per
# evaluation) when they fit: on an accelerator in ANALYSIS_CACHE_BYTES per device, on
# the CPU in 1/ANALYSIS_CACHE_HOST_FRACTION of the host's memory (all its devices
# together); otherwise it streams twice (two forward passes, one batch live).
ANALYSIS_CACHE_BYTES = 1 << 30
ANALYSIS_CACHE_HOST_FRACTION = 8
# Neural-collapse metrics per layer on the training set (measure/nc.py definitions).
NC_KEYS = ("nc1_train", "nc1_ratio_train", "nc2_equinorm_train", "nc2_equiangular_train",
           "nc2_maxangle_train", "nc2_etf_error_train", "nc3_duality_train", "nc4_train")


# ----------------------------------------------------------------------------- config
# The fields, their defaults and rules: fields.COLLAPSE (docs/config_fields.md).
SCHEMA = fields.COLLAPSE
FIELDS = tuple(f.name for f in SCHEMA.fields if "." not in f.name)


def validate_common(config, shapes_: list[tuple[int, int]]) -> None:
  """What the declared rules cannot see, for every trainer-based experiment: the
  family's model fields and whether each network fits the dataset.

  Raises ConfigError before any compute; ``shapes_`` are the (depth, width) pairs the
  experiment will build (each is checked against the dataset's input shape).
  """
  # Family-specific model fields (conv head, ResNet top layers, ...).
  module = nets.family_module(config.family)
  if hasattr(module, "validate_model"):
    module.validate_model(model_cfg(config, config.depth, config.width))
  if config.dataset == "npz":  # a user's arrays: read and checked, then the model's fit
    from jaxdepth.data import npz
    shape, num_classes = npz.check(config.data)
    for d, w in shapes_:
      nets.build(model_cfg(config, d, w), shape, num_classes)
  from jaxdepth.data import tfds as tfds_data
  if config.dataset in tfds_data.KNOWN_TFDS:
    # Offline and not prepared: one line naming the dataset, dir and command.
    if not config.data.get("download", False):
      tfds_data.check_available(config.dataset, config.data.get("data_dir") or None,
                                idx_dir=config.data.get("idx_dir") or None)
    shape = tfds_data.image_shape(config.dataset, config.data.get("pad_to_32", True))
    for d, w in shapes_:  # building is cheap (no init); a misfit raises
      nets.build(model_cfg(config, d, w), shape, tfds_data.num_classes(config.dataset))


def validate(config) -> None:
  """Check every field of a 'collapse' config; raises ConfigError before any compute."""
  SCHEMA.validate(config)
  validate_common(config, shapes(config))


def model_cfg(config, depth: int, width: int) -> dict:
  return dict(family=config.family, depth=depth, width=width,
              batchnorm=config.batchnorm, init=config.init, **dict(config.model))


def shapes(config) -> list[tuple[int, int]]:
  depths = config.sweep_depths or (config.depth,)
  widths = config.sweep_widths or (config.width,)
  return [(d, w) for d in depths for w in widths]


# Run coordinates besides the seed, in grid order (major first), and their short names.
AXES = ("label_noise", *sgd.HPARAMS)
SHORT = {"label_noise": "p", "weight_decay": "wd", "momentum": "mom",
         "warmup_epochs": "warmup"}


def hparam_axes(config) -> dict[str, tuple[float, ...]]:
  """Every value hyperparameter's values (a number is one value)."""
  return {f: sgd.values(config, f) for f in sgd.HPARAMS}


def varying(config) -> list[str]:
  """The run coordinates (besides the seed) with more than one value."""
  vals = {"label_noise": tuple(config.label_noise), **hparam_axes(config)}
  return [f for f in AXES if len(vals[f]) > 1]


def per_run_hparams(config) -> bool:
  """Does any value hyperparameter have several values (then they are per run)?"""
  return any(len(v) > 1 for v in hparam_axes(config).values())


def run_grid(config) -> list[dict]:
  """The R runs of one program: noise x lr x weight_decay x momentum x warmup_epochs x
  decay x seed, noise level major, seed minor; every run names all its coordinates."""
  hp = hparam_axes(config)
  grid = []
  for i, p in enumerate(config.label_noise):
    for point in itertools.product(*hp.values()):
      for g in range(config.num_seeds):
        grid.append({"run": len(grid), "seed": g, "label_noise": float(p),
                     "noise_index": i, **dict(zip(hp, point))})
  return grid


def hparam_coords(config) -> tuple[str, ...]:
  """The hyperparameter axes with several values: each per-run metric record (and
  TensorBoard run) is labelled by them besides seed and noise level."""
  return tuple(f for f in varying(config) if f in sgd.HPARAMS)


def make_keys(seed: int, grid: list[dict]) -> RunKeys:
  """Per-run keys; init and data order depend on the seed only, so runs with the same
  seed and different noise levels or hyperparameters start from the same network and
  see the same order (and the same corrupted labels at the same noise level)."""
  k_init, k_order, k_noise, k_aug = jax.random.split(jax.random.key(seed), 4)
  seeds = jnp.array([r["seed"] for r in grid])
  noise_idx = jnp.array([r["noise_index"] for r in grid])
  per_seed = lambda k: jax.vmap(lambda g: jax.random.fold_in(k, g))(seeds)
  noise = jax.vmap(lambda i, g: jax.random.fold_in(jax.random.fold_in(k_noise, i), g))(
      noise_idx, seeds)
  return RunKeys(per_seed(k_init), per_seed(k_order), noise, per_seed(k_aug))


# ---------------------------------------------------------------------------- program
class Program(NamedTuple):
  """Everything compiled for one (depth, width): R runs as one program."""
  network: nets.Network
  init: Any  # (keys) -> (state_R, labels_RxN, corrupted_RxN)
  epoch: Any  # (state_R, labels_RxN, keys_R, epoch, x_N) -> (state_R, {loss, acc}_R)
  analyze: Any  # (state_R, labels, corrupted) -> metrics dict with leading R
  steps_per_epoch: int


def build_program(config, ds: data.Dataset, depth: int, width: int,
                  place: devices.Placement | None = None) -> Program:
  """Jitted functions for all runs of one (depth, width), on ``place``'s padded run
  axis. Inputs sharded on that axis make jit split the independent runs over devices."""
  place = place or devices.Placement(len(run_grid(config)), enabled=False)
  network = nets.build(model_cfg(config, depth, width), ds.x_train.shape[1:],
                       ds.num_classes)
  spe = ds.x_train.shape[0] // config.batch_size
  grid = run_grid(config)
  # Several values of a hyperparameter: each run's values live in its optimizer state,
  # so one compiled epoch serves the whole grid; one value: a constant, as before.
  per_run = per_run_hparams(config)
  tx = sgd.make_optimizer(config, spe, per_run=per_run)
  hp_R = place.pad(sgd.hparams_of(grid, spe)) if per_run else None
  augment_fn = None
  if config.augment:
    augment_fn = augment.make_augment(tuple(config.augment), fill=data.augment_fill(config))
  y_clean = jnp.asarray(ds.y_train)
  noise_R = place.pad(np.asarray([r["label_noise"] for r in grid], np.float32))

  def init_run(keys: RunKeys, p, hp):
    labels, chosen = data.corrupt_labels(keys.noise, y_clean, p, ds.num_classes,
                                         config.noise_mode)
    state = sgd.init_state(network, tx, keys.init)
    if hp is not None:
      state = sgd.set_hparams(state, hp)
    return state, labels, chosen

  init_runs = jax.jit(jax.vmap(init_run))
  init_all = lambda keys: init_runs(keys, noise_R, hp_R)
  epoch_fn = sgd.make_epoch(network, tx, config.batch_size, spe, augment_fn)
  epoch_all = jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, 0, None, None)),
                      donate_argnums=0)
  train_b = place.shared(analysis.batch_pad(ds.x_train, ds.y_train, config.analysis_batch))
  test_b = place.shared(analysis.batch_pad(ds.x_test, ds.y_test, config.analysis_batch))
  # Keep every layer's embeddings when they fit (analysis_cache); else stream twice.
  out = jax.eval_shape(lambda v, x: network.apply(v, x), jax.eval_shape(
      network.init, jax.random.key(0)), jnp.zeros((1, *ds.x_train.shape[1:])))
  cache = analysis_cache(sum(g.size for g in out[1]) * 4,
                         len(ds.x_train) + len(ds.x_test), place.padded_runs,
                         place.num_devices)
  classifier = (None if network.classifier is None
                else (network.num_layers - 1, network.classifier))
  analyzer = analysis.make_analyzer(network, ds.num_classes, tuple(config.eps),
                                    config.rank_samples, cache=cache, classifier=classifier)

  def analyze_run(state: TrainState, labels_N, chosen_N, train_b, test_b):
    v = {"params": state.params, "batch_stats": state.batch_stats}
    return analyzer(v, train_b, analysis.relabel(train_b, labels_N),
                    analysis.relabel(train_b, chosen_N), test_b)

  analyze_jit = jax.jit(jax.vmap(analyze_run, in_axes=(0, 0, 0, None, None)))
  analyze_all = lambda s, y, c: analysis.finalize(
      place.gather(analyze_jit(s, y, c, train_b, test_b)))
  return Program(network, init_all, epoch_all, analyze_all, spe)


def analysis_cache(per_example_bytes: int, num_examples: int, padded_runs: int,
                   num_devices: int) -> bool:
  """Whether the analysis may keep every layer's embeddings of ``num_examples`` for
  every run (``per_example_bytes`` each): see ANALYSIS_CACHE_BYTES. On the CPU the
  devices share the host's memory, so their caches count together (CONV-4-32 on
  10,000 + 10,000 Fashion-MNIST images, 1 seed: 2.6 GB; cached, the end-of-run
  analysis took one forward pass instead of two, 5.7 s less)."""
  per_device = padded_runs // num_devices * per_example_bytes * num_examples
  if jax.default_backend() != "cpu":
    return per_device <= ANALYSIS_CACHE_BYTES
  local = per_device * min(num_devices, jax.local_device_count())
  return local <= max(ANALYSIS_CACHE_BYTES,
                      devices.host_memory_bytes() // ANALYSIS_CACHE_HOST_FRACTION)


# ------------------------------------------------------------------------------ driver
def num_runs(config) -> int:
  """The run axis of each program (the CLI starts jax with fewer CPU devices for a
  shorter one than the core count: devices.use_cpu_cores)."""
  return len(run_grid(config))


def placement(config, num_runs: int) -> devices.Placement:
  return devices.Placement(num_runs, enabled=config.shard_runs)


def train_shape(config, ds: data.Dataset, depth: int, width: int, workdir: str,
                stream=None, tag: str = "", bar=None, fields: dict | None = None):
  """Train (or resume) all runs of one (depth, width); returns final metrics (host).

  ``stream``: the ``metrics.MetricsLog`` that per-run records go to (one per run and
  epoch with the epoch's mean batch loss and accuracy, one per run and evaluation,
  through ``metrics.RunStreams``), or None; ``fields`` are added to every record (an
  experiment's own coordinates, e.g. model and expansion); the log's key fields must
  name them.
  """
  grid = run_grid(config)
  coords = ("seed", "label_noise", *hparam_coords(config))
  records = metrics.RunStreams(stream, [{k: r[k] for k in coords} for r in grid],
                               **(fields or {}), depth=depth, width=width)
  place = placement(config, len(grid))
  prog = build_program(config, ds, depth, width, place)
  keys = place.pad(make_keys(config.seed, grid))
  # Initialised on one device, then placed: every process computes the same full
  # initial state and keeps its own shards.
  state, labels, chosen = place.runs(prog.init(keys))
  keys = place.runs(keys)
  x_train = place.shared(jnp.asarray(ds.x_train))
  spe = prog.steps_per_epoch
  meta_base = {"config": writers.config_to_dict(config), "depth": depth, "width": width,
               "runs": grid, "steps_per_epoch": spe,
               "num_corrupted": place.gather(chosen.sum(1)).tolist()}
  monitor = report_lib.DivergenceMonitor(
      grid, where=f"d={depth} w={width}",
      point_fields=[f for f in AXES if f == "label_noise" or f in varying(config)],
      short=SHORT, enabled=distributed.is_primary())
  # The state with the labels it trains on: corruption is drawn once, then saved.
  full = {"state": state, "labels": labels, "corrupted": chosen}

  def from_host(tree):  # checkpoints hold the real runs as host arrays: any device count
    full.update(zip(("state", "labels", "corrupted"),
                    place.runs((tree["state"], tree["labels"], tree["corrupted"]))))
    return full["state"]

  def evaluate(state, epoch):
    out = prog.analyze(state, full["labels"], full["corrupted"])
    out["diverged"] = place.gather(~sgd.tree_finite(state.params))
    monitor.update(out["diverged"], f"epoch {epoch}")
    records.write("eval", epoch * spe, eval_metrics(config, out), epoch=epoch)
    return {"out": out}  # the per-run records above are the metric stream

  def segment(state, epoch):
    return prog.epoch(state, full["labels"], keys, epoch, x_train)

  show_loss = loop.loss_postfix(bar)
  epochs_seen = [0]

  def on_output(out):  # one epoch's {loss, acc} per run, one epoch late, in order
    epochs_seen[0] += 1
    e = epochs_seen[0]
    show_loss(out["loss"])
    records.write("train", e * spe, {"batch_loss": out["loss"], "batch_acc": out["acc"]},
                  epoch=e)

  checkpointing = driver.Checkpointing(
      os.path.join("checkpoints", tag), every=config.checkpoint_every,
      keep=config.keep_checkpoints, steps_per_segment=spe,
      to_host=lambda s: place.gather({**full, "state": s}), from_host=from_host,
      meta=lambda epoch: {**meta_base, "epoch": epoch, "step": epoch * spe})
  _, record = driver.run(state, segment, total=config.epochs, workdir=workdir,
                         checkpoint=checkpointing, evaluate=evaluate,
                         evaluate_every=config.eval_every, bar=bar, steps_per_segment=spe,
                         on_output=on_output, fetch=place.gather,
                         on_resume=lambda start: epochs_seen.__setitem__(0, start))
  return grid, record["out"], prog.network


def eval_metrics(config, out: dict) -> dict:
  """An evaluation's per-run arrays as record fields: scalars, per-layer lists, and the
  effective depths per eps as ``effective_depth@<eps>`` (as in layers.csv)."""
  vals = {}
  for k, v in out.items():
    if k in ("effective_depth", "effective_depth_suffix"):
      for j, e in enumerate(config.eps):
        vals[f"{k}@{e}"] = np.asarray(v)[:, j]
    else:
      vals[k] = v
  return vals


def summarize(config, results) -> dict:
  """summary.json: one record per run with per-layer lists and effective depths."""
  runs = []
  for depth, width, grid, out, network in results:
    for r in grid:
      i = r["run"]
      rec = {"seed": r["seed"], "label_noise": r["label_noise"],
             **{f: r[f] for f in sgd.HPARAMS}, "depth": depth,
             "width": width, "layers": list(network.layer_names),
             "diverged": bool(out["diverged"][i])}
      for k in ("train_acc", "test_acc", "train_loss", "test_loss",
                "empty_classes_train", "empty_classes_test"):
        rec[k] = float(out[k][i])
      for k in ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "cdnv_test",
                "ncc_train_acc_clean", "ncc_train_acc_corrupted", "rank_train",
                "rank_test", "degenerate_pairs_train", "degenerate_pairs_test",
                *NC_KEYS):
        if k in out:  # nc3: only networks with a linear head on the top layer
          rec[k] = np.asarray(out[k][i]).tolist()
      for k in ("effective_depth", "effective_depth_suffix"):
        rec[k] = {str(e): int(v) for e, v in zip(config.eps, out[k][i])}
      rec["reached"] = {str(e): int(v) <= depth for e, v in
                        zip(config.eps, out["effective_depth"][i])}
      runs.append(rec)
  last_layers = results[-1][4].layer_names
  return {"experiment": "collapse", "dataset": config.dataset, "eps": list(config.eps),
          "layers": list(last_layers), "runs": runs}


def layer_rows(summary: dict) -> list[dict]:
  """Tidy rows, one per run and layer, for CSV / pandas."""
  rows = []
  for r in summary["runs"]:
    for li, name in enumerate(r["layers"]):
      row = {k: r[k] for k in ("depth", "width", "seed", "label_noise", *sgd.HPARAMS,
                               "diverged") if k in r}  # older summaries: no hparams
      row.update(layer=li + 1, layer_name=name)
      for k in ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "cdnv_test", "rank_train",
                "rank_test", *NC_KEYS):
        if k in r:  # summaries written before the NC metrics have none
          row[k] = r[k][li]
      for e, v in r["effective_depth"].items():
        row[f"effective_depth@{e}"] = v
      rows.append(row)
  return rows


def run(config, workdir: str) -> dict:
  """Train every (depth, width) of the config, then write summary, CSV and figures."""
  validate(config)
  ds = data.load(config)
  if config.data.get("num_train") or config.data.get("num_test"):
    ds = data.subsample(ds, config.data.get("num_train"), config.data.get("num_test"))
  V.require(config.batch_size <= ds.x_train.shape[0], "batch_size",
            f"batch_size {config.batch_size} is larger than the training set "
            f"({ds.x_train.shape[0]} examples)")
  primary = distributed.is_primary()  # in a multi-process job, process 0 writes
  os.makedirs(workdir, exist_ok=True)
  # One record per (kind, run, step), and a TensorBoard run per (depth, width, seed,
  # label_noise) under workdir/tb; a resumed run logs no step twice in either.
  coords = ("depth", "width", "seed", "label_noise", *hparam_coords(config))
  log = metrics.MetricsLog(workdir, ("kind", *coords), enabled=primary, tensorboard=coords)
  shapes_ = shapes(config)
  if config.family == "flax":  # a user's module: depth = its measured layers, no width
    shapes_ = [(nets.build(model_cfg(config, 0, 0), ds.x_train.shape[1:],
                           ds.num_classes).num_layers, 0)]
  spe = ds.x_train.shape[0] // config.batch_size
  bar = progress_lib.progress(len(shapes_) * config.epochs * spe, "train",
                         enabled=config.progress and primary)
  results = []
  t0 = time.time()
  try:
    for depth, width in shapes_:
      bar.set_description(f"train d={depth} w={width}")
      tag = f"d{depth}_w{width}"
      grid, out, network = train_shape(config, ds, depth, width, workdir, log, tag, bar)
      results.append((depth, width, grid, out, network))
  finally:  # also on Ctrl-C (errors.Interrupted): the bar ends its line first
    bar.close()
    log.close()
  summary = summarize(config, results)
  summary["wall_time_s"] = time.time() - t0
  if not primary:
    return summary
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  writers.write_csv(os.path.join(workdir, "layers.csv"), layer_rows(summary))
  if config.plots:
    from jaxdepth.papers.minimal_depth import figures
    figures.collapse_figures(summary, os.path.join(workdir, "figures"))
  return summary


def report(summary: dict) -> str:
  """Final table: per (depth, width, p, and every hyperparameter with several values),
  over seeds: network train and test accuracy, top-layer
  NCC test accuracy and the eps-effective depth (mean ± std over the runs that reached
  it; runs that never did are counted, never averaged in)."""
  eps = [str(e) for e in summary["eps"]]

  def depth_col(e):
    def f(recs):
      good = report_lib.ok(recs)
      reached = [r["effective_depth"][e] for r in good if r["reached"][e]]
      text = report_lib.spread(reached, 2)
      return text if len(reached) == len(good) else f"{text} ({len(reached)}/{len(good)})"
    return f

  runs = summary["runs"]
  cols = {}
  if all("train_acc" in r for r in runs):  # hand-made summaries may lack it
    cols["train acc"] = lambda recs: report_lib.spread([r["train_acc"] for r in
                                                        report_lib.ok(recs)])
  cols["test acc"] = lambda recs: report_lib.spread([r["test_acc"] for r in
                                                     report_lib.ok(recs)])
  cols["NCC test (top)"] = lambda recs: report_lib.spread(
      [r["ncc_test_acc"][-1] for r in report_lib.ok(recs)])
  if all("nc1_train" in r for r in runs):  # summaries from before the NC metrics: none
    cols["NC1 (top)"] = lambda recs: report_lib.spread(
        [r["nc1_train"][-1] for r in report_lib.ok(recs)], 2)
  cols.update({f"eff. depth ε={e}": depth_col(e) for e in eps})
  keys = [k for k in ("depth", "width", *AXES) if k in runs[0]
          and (k == "label_noise" or len({r[k] for r in runs}) > 1)]
  return report_lib.table(*report_lib.grouped(runs, keys, cols, short=SHORT))
