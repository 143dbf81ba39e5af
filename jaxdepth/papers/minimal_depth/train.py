"""Vmapped multi-run training with in-graph per-layer analysis (the 'collapse' experiment).

All runs of one (depth, width) -- seeds x label-noise levels -- are one leading axis
R of a single compiled program: init, label corruption, SGD and the per-layer
analysis are vmapped over R, and R is sharded over devices when there are several.
Depth/width sweeps loop over compiled programs.

  jaxdepth train --config configs/quickstart.py --workdir runs/quickstart
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdepth import data, nets
from jaxdepth.data import augment
from jaxdepth.engine import ckpt, writers
from jaxdepth.engine import validate as V
from jaxdepth.measure import analysis

ANALYSIS_CACHE_BYTES = 1 << 30


class TrainState(NamedTuple):
  params: Any
  batch_stats: Any
  opt_state: Any
  step: jax.Array


class RunKeys(NamedTuple):
  """One typed key per purpose and run (spec: init, data order, label noise, augment)."""
  init: jax.Array
  order: jax.Array
  noise: jax.Array
  augment: jax.Array


# ----------------------------------------------------------------------------- config
FIELDS = ("experiment", "dataset", "data", "family", "depth", "width", "batchnorm",
          "init", "model", "num_seeds", "seed", "label_noise", "noise_mode", "epochs",
          "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs", "schedule",
          "milestones", "decay", "eps", "eval_every", "checkpoint_every",
          "keep_checkpoints", "augment", "analysis_batch", "rank_samples",
          "sweep_depths", "sweep_widths", "shard_runs", "progress", "plots")


def validate_common(config, shapes_: list[tuple[int, int]]) -> None:
  """Fields every trainer-based experiment shares: data, model, optimizer, analysis.

  Raises ConfigError before any compute; ``shapes_`` are the (depth, width) pairs the
  experiment will build (each is checked against the dataset's input shape).
  """
  V.choice(config, "dataset", data.known_datasets())
  V.choice(config, "family", tuple(nets.FAMILIES))
  V.integer(config, "depth", 1)
  V.integer(config, "width", 1)
  V.choice(config, "init", ("kaiming", "pytorch"))
  V.integer(config, "seed", 0)
  V.choice(config, "noise_mode", ("flip", "uniform"))
  V.integer(config, "epochs", 1)
  V.integer(config, "batch_size", 1)
  V.number(config, "lr", 0.0, low_open=True)
  V.number(config, "momentum", 0.0, 1.0, high_open=True)
  V.number(config, "weight_decay", 0.0)
  V.number(config, "warmup_epochs", 0.0)
  V.choice(config, "schedule", ("step", "cosine", "constant"))
  V.numbers(config, "milestones", 0.0, 1.0, low_open=True, high_open=True, nonempty=False)
  V.number(config, "decay", 0.0, 1.0, low_open=True)
  V.numbers(config, "eps", 0.0, 1.0, high_open=True)
  V.integer(config, "checkpoint_every", 1)
  V.integer(config, "analysis_batch", 1)
  V.integer(config, "rank_samples", 1)
  if "normalization" in config.data:
    V.choice(config, "data.normalization", ("dataset", "reference", "computed"))
  # Family-specific model fields (conv head, ResNet top layers, ...).
  module = nets.family_module(config.family)
  if hasattr(module, "validate_model"):
    module.validate_model(model_cfg(config, config.depth, config.width))
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
  V.known_fields(config, FIELDS)
  V.integers(config, "sweep_depths", 1, nonempty=False)
  V.integers(config, "sweep_widths", 1, nonempty=False)
  validate_common(config, shapes(config))
  V.integer(config, "num_seeds", 1)
  V.numbers(config, "label_noise", 0.0, 1.0, high_open=True)
  V.integer(config, "eval_every", 1)
  for a in config.augment:
    V.require(a in augment.KINDS, "augment",
              f"unknown augmentation {a!r}; allowed: {', '.join(augment.KINDS)}")
  n_train = config.data.get("num_train", None)
  if n_train:
    V.require(config.batch_size <= n_train, "batch_size",
              f"batch_size {config.batch_size} is larger than data.num_train {n_train}")


def model_cfg(config, depth: int, width: int) -> dict:
  return dict(family=config.family, depth=depth, width=width,
              batchnorm=config.batchnorm, init=config.init, **dict(config.model))


def shapes(config) -> list[tuple[int, int]]:
  depths = config.sweep_depths or (config.depth,)
  widths = config.sweep_widths or (config.width,)
  return [(d, w) for d in depths for w in widths]


def run_grid(config) -> list[dict]:
  """The R runs of one program: noise level major, seed minor."""
  return [{"run": i * config.num_seeds + g, "seed": g, "label_noise": float(p),
           "noise_index": i} for i, p in enumerate(config.label_noise)
          for g in range(config.num_seeds)]


def make_keys(seed: int, grid: list[dict]) -> RunKeys:
  """Per-run keys; init and data order depend on the seed only, so runs with the same
  seed and different noise levels start from the same network and see the same order."""
  k_init, k_order, k_noise, k_aug = jax.random.split(jax.random.key(seed), 4)
  seeds = jnp.array([r["seed"] for r in grid])
  noise_idx = jnp.array([r["noise_index"] for r in grid])
  per_seed = lambda k: jax.vmap(lambda g: jax.random.fold_in(k, g))(seeds)  # noqa: E731
  noise = jax.vmap(lambda i, g: jax.random.fold_in(jax.random.fold_in(k_noise, i), g))(
      noise_idx, seeds)
  return RunKeys(per_seed(k_init), per_seed(k_order), noise, per_seed(k_aug))


# -------------------------------------------------------------------------- optimizer
def make_schedule(config, steps_per_epoch: int):
  """Linear warm-up from 0, then constant, step decay (milestones as fractions of
  training, each multiplying by ``decay``) or cosine decay to 0."""
  total = config.epochs * steps_per_epoch
  warm = int(round(config.warmup_epochs * steps_per_epoch))
  if config.schedule == "constant":
    main = optax.constant_schedule(config.lr)
  elif config.schedule == "cosine":
    main = optax.cosine_decay_schedule(config.lr, max(total - warm, 1))
  else:
    bounds = {int(round(f * total)) - warm: config.decay for f in config.milestones}
    main = optax.piecewise_constant_schedule(config.lr, bounds)
  if warm == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, config.lr, warm), main], [warm])


def make_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (added to the gradient, as PyTorch)."""
  return optax.chain(optax.add_decayed_weights(config.weight_decay),
                     optax.sgd(make_schedule(config, steps_per_epoch),
                               momentum=config.momentum or None))


# ---------------------------------------------------------------------------- training
def make_epoch(network: nets.Network, tx, batch_size: int, steps_per_epoch: int,
               augment_fn=None):
  """One epoch of SGD for one run, as a lax.scan over fixed-size batches.

  The shuffled epoch's remainder (N mod B examples) is dropped, so every batch has
  the same shape and nothing recompiles; a fresh permutation each epoch.
  """

  def epoch_fn(state: TrainState, labels_N, keys: RunKeys, epoch, x_N):
    n = labels_N.shape[0]
    perm = jax.random.permutation(jax.random.fold_in(keys.order, epoch), n)
    idx_SxB = perm[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)
    k_aug = jax.random.fold_in(keys.augment, epoch)

    def step(state: TrainState, xs):
      i, idx_B = xs
      x_B, y_B = x_N[idx_B], labels_N[idx_B]
      if augment_fn is not None:
        x_B = augment_fn(jax.random.fold_in(k_aug, i), x_B)

      def loss_fn(params):
        logits, _, new_stats = network.apply(
            {"params": params, "batch_stats": state.batch_stats}, x_B, train=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_B).mean()
        return loss, new_stats

      (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      return TrainState(params, new_stats, opt_state, state.step + 1), loss

    state, losses = jax.lax.scan(step, state, (jnp.arange(steps_per_epoch), idx_SxB))
    return state, losses.mean()

  return epoch_fn


def init_state(network, tx, key) -> TrainState:
  v = network.init(key)
  return TrainState(v["params"], v["batch_stats"], tx.init(v["params"]),
                    jnp.zeros((), jnp.int32))


def run_sharding(num_runs: int, enabled: bool = True):
  """NamedShardings (runs axis, replicated) over all devices, or None on one device."""
  n = jax.device_count()
  if not enabled or n == 1 or num_runs % n:
    return None
  from jax.sharding import AxisType, NamedSharding
  from jax.sharding import PartitionSpec as P
  mesh = jax.make_mesh((n,), ("runs",), axis_types=(AxisType.Auto,))
  return NamedSharding(mesh, P("runs")), NamedSharding(mesh, P())


class Program(NamedTuple):
  """Everything compiled for one (depth, width): R runs as one program."""
  network: nets.Network
  init: Any  # (keys) -> (state_R, labels_RxN, corrupted_RxN)
  epoch: Any  # (state_R, labels_RxN, keys_R, epoch, x_N) -> (state_R, loss_R)
  analyze: Any  # (state_R, labels, corrupted) -> metrics dict with leading R
  steps_per_epoch: int


def augment_fill(config) -> tuple[float, ...] | float:
  """Black in normalized units for tfds images with fixed statistics (the reference pads
  and rotates in black before normalizing); 0.0 (the mean) otherwise."""
  from jaxdepth.data import tfds as tfds_data
  norm = config.data.get("normalization", "dataset")
  if config.dataset not in tfds_data.KNOWN_TFDS or norm not in ("dataset", "reference"):
    return 0.0
  return tfds_data.pad_value(config.dataset, norm)


def build_program(config, ds: data.Dataset, depth: int, width: int) -> Program:
  """Jitted functions for all runs of one (depth, width). Inputs sharded on the run
  axis (see run_sharding) make jit split the independent runs over devices."""
  network = nets.build(model_cfg(config, depth, width), ds.x_train.shape[1:],
                       ds.num_classes)
  spe = ds.x_train.shape[0] // config.batch_size
  tx = make_optimizer(config, spe)
  augment_fn = None
  if config.augment:
    augment_fn = augment.make_augment(tuple(config.augment), fill=augment_fill(config))
  y_clean = jnp.asarray(ds.y_train)
  noise_R = jnp.asarray([r["label_noise"] for r in run_grid(config)], jnp.float32)

  def init_run(keys: RunKeys, p):
    labels, chosen = data.corrupt_labels(keys.noise, y_clean, p, ds.num_classes,
                                         config.noise_mode)
    return init_state(network, tx, keys.init), labels, chosen

  init_runs = jax.jit(jax.vmap(init_run))
  init_all = lambda keys: init_runs(keys, noise_R)  # noqa: E731
  epoch_fn = make_epoch(network, tx, config.batch_size, spe, augment_fn)
  epoch_all = jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, 0, None, None)),
                      donate_argnums=0)
  train_b = analysis.batch_pad(ds.x_train, ds.y_train, config.analysis_batch)
  test_b = analysis.batch_pad(ds.x_test, ds.y_test, config.analysis_batch)
  # Keep every layer's embeddings of both splits for all runs when they fit in
  # ANALYSIS_CACHE_BYTES (one forward per evaluation); otherwise stream twice.
  out = jax.eval_shape(lambda v, x: network.apply(v, x), jax.eval_shape(
      network.init, jax.random.key(0)), jnp.zeros((1, *ds.x_train.shape[1:])))
  per_example = sum(g.size for g in out[1]) * 4
  n_runs = len(config.label_noise) * config.num_seeds
  cache = n_runs * per_example * (len(ds.x_train) + len(ds.x_test)) <= ANALYSIS_CACHE_BYTES
  analyzer = analysis.make_analyzer(network, ds.num_classes, tuple(config.eps),
                                    config.rank_samples, cache=cache)

  def analyze_run(state: TrainState, labels_N, chosen_N, train_b, test_b):
    v = {"params": state.params, "batch_stats": state.batch_stats}
    return analyzer(v, train_b, analysis.relabel(train_b, labels_N),
                    analysis.relabel(train_b, chosen_N), test_b)

  analyze_jit = jax.jit(jax.vmap(analyze_run, in_axes=(0, 0, 0, None, None)))
  analyze_all = lambda s, y, c: analysis.finalize(  # noqa: E731
      analyze_jit(s, y, c, train_b, test_b))
  return Program(network, init_all, epoch_all, analyze_all, spe)


# ------------------------------------------------------------------------------ driver
def _tree_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(a), axis=tuple(range(1, a.ndim)))
            for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves), axis=0)


def train_shape(config, ds: data.Dataset, depth: int, width: int, workdir: str,
                metrics: writers.JsonlWriter | None, tag: str, bar=None):
  """Train (or resume) all runs of one (depth, width); returns final metrics (host)."""
  grid = run_grid(config)
  shard = run_sharding(len(grid), config.shard_runs)
  prog = build_program(config, ds, depth, width)
  keys = make_keys(config.seed, grid)
  state, labels, chosen = prog.init(keys)
  x_train = jnp.asarray(ds.x_train)
  if shard is not None:  # the run axis over devices, the data replicated.
    # (Initialising from sharded keys hung the later analysis on simulated CPU
    # devices in jax 0.10.2; initialising first, then placing, does not.)
    state, labels, chosen, keys = jax.device_put((state, labels, chosen, keys), shard[0])
    x_train = jax.device_put(x_train, shard[1])
  ck = ckpt.Checkpointer(workdir, max_to_keep=config.keep_checkpoints,
                         subdir=os.path.join("checkpoints", tag))
  start = 0
  restored = ck.restore(target={"state": state, "labels": labels, "corrupted": chosen})
  if restored is not None:
    step, tree, meta = restored
    state, labels, chosen = tree["state"], tree["labels"], tree["corrupted"]
    start = int(meta["epoch"])
  if bar is not None:
    bar.update(start * prog.steps_per_epoch)
  meta_base = {"config": writers.config_to_dict(config), "depth": depth, "width": width,
               "runs": grid, "steps_per_epoch": prog.steps_per_epoch,
               "num_corrupted": np.asarray(chosen.sum(1)).tolist()}

  def evaluate(epoch):
    out = prog.analyze(state, labels, chosen)
    out["diverged"] = ~np.asarray(_tree_finite(state.params))
    if metrics is not None:
      metrics.write({"step": epoch * prog.steps_per_epoch, "epoch": epoch, "depth": depth,
                     "width": width, **out})
    return out

  pending = None
  out = None
  for epoch in range(start, config.epochs):
    state, loss = prog.epoch(state, labels, keys, epoch, x_train)
    if pending is not None and bar is not None:  # fetch the previous epoch's loss
      prev = np.asarray(jax.device_get(pending))
      finite = prev[np.isfinite(prev)]  # diverged runs are NaN; all diverged: say so
      bar.set_postfix(loss=f"{finite.mean():.4f}" if finite.size else "diverged")
    pending = loss
    if bar is not None:
      bar.update(prog.steps_per_epoch)
    done = epoch + 1
    if done % config.eval_every == 0 or done == config.epochs:
      out = evaluate(done)
    if done % config.checkpoint_every == 0 or done == config.epochs:
      ck.save(done * prog.steps_per_epoch,
              {"state": state, "labels": labels, "corrupted": chosen},
              {**meta_base, "epoch": done, "step": done * prog.steps_per_epoch})
  if out is None:  # already complete: analyse the restored final state
    out = evaluate(config.epochs)
  ck.close()
  return grid, out, prog.network


def summarize(config, results) -> dict:
  """summary.json: one record per run with per-layer lists and effective depths."""
  runs = []
  for depth, width, grid, out, network in results:
    for r in grid:
      i = r["run"]
      rec = {"seed": r["seed"], "label_noise": r["label_noise"], "depth": depth,
             "width": width, "layers": list(network.layer_names),
             "diverged": bool(out["diverged"][i])}
      for k in ("train_acc", "test_acc", "train_loss", "test_loss",
                "empty_classes_train", "empty_classes_test"):
        rec[k] = float(out[k][i])
      for k in ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "cdnv_test",
                "ncc_train_acc_clean", "ncc_train_acc_corrupted", "rank_train",
                "rank_test", "degenerate_pairs_train", "degenerate_pairs_test"):
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
      row = {k: r[k] for k in ("depth", "width", "seed", "label_noise", "diverged")}
      row.update(layer=li + 1, layer_name=name)
      for k in ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "cdnv_test", "rank_train",
                "rank_test"):
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
  os.makedirs(workdir, exist_ok=True)
  last = _last_logged_step(workdir)  # a resumed run does not log a step twice
  metrics = writers.JsonlWriter(os.path.join(workdir, "metrics.jsonl"))
  shapes_ = shapes(config)
  spe = ds.x_train.shape[0] // config.batch_size
  bar = writers.progress(len(shapes_) * config.epochs * spe, "train",
                         enabled=config.progress)
  results = []
  t0 = time.time()
  for depth, width in shapes_:
    bar.set_description(f"train d={depth} w={width}")
    tag = f"d{depth}_w{width}"
    grid, out, network = train_shape(config, ds, depth, width, workdir,
                                     _Dedup(metrics, last, depth, width), tag, bar)
    results.append((depth, width, grid, out, network))
  bar.close()
  summary = summarize(config, results)
  summary["wall_time_s"] = time.time() - t0
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  writers.write_csv(os.path.join(workdir, "layers.csv"), layer_rows(summary))
  if config.plots:
    from jaxdepth.papers.minimal_depth import figures
    figures.collapse_figures(summary, os.path.join(workdir, "figures"))
  return summary


def _last_logged_step(workdir: str) -> dict | None:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  seen: dict = {}
  for r in writers.read_jsonl(path):
    key = (r.get("depth"), r.get("width"))
    seen[key] = max(seen.get(key, -1), r.get("step", -1))
  return seen


class _Dedup:
  """Skips metric records a resumed run has already logged (same shape and step)."""

  def __init__(self, writer, last: dict | None, depth: int, width: int):
    self.writer, self.limit = writer, (last or {}).get((depth, width), -1)

  def write(self, record):
    if record["step"] > self.limit:
      self.writer.write(record)
