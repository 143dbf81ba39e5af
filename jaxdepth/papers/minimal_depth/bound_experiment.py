"""Training side of the bound estimate (Galanti et al. 2022, Prop. 1;
docs/definitions.md, "Bound protocol").

For K draws of disjoint class-balanced samples S1^k, S2^k (m each):
  clean runs  (K x n_clean):       h_{k,g}   trained on S1^k;
  noisy runs  (K x |p| x n_noisy): h_{k,p,g} trained on S1^k u S2^{k,p}~, S2's labels
                                   corrupted on exactly round(p m) points.
Each group is ONE compiled program: train.py's epoch function vmapped over runs
with a per-run training set. Keys: one stream per purpose. Three checkpoint trees:
  checkpoints/data   sample indices, inputs, clean and corrupted labels, test set;
  checkpoints/clean  network variables and optimizer state of every clean run;
  checkpoints/noisy  the same for the noisy runs;
with metadata naming each run's draw, p and seed, so ``jaxdepth bound`` (bound_main)
recomputes everything from checkpoints alone. An interrupted run resumes. After
training, summary.json gets the bound table, its curve summary and the clean networks'
assumption diagnostics (bound_main's program, run on the final checkpoints).

  jaxdepth train --config configs/bound.py --workdir runs/bound
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth import data, nets
from jaxdepth.engine import ckpt, devices, driver, writers
from jaxdepth.engine import progress as progress_lib
from jaxdepth.engine import validate as V
from jaxdepth.measure import analysis
from jaxdepth.papers import sgd
from jaxdepth.papers.minimal_depth import bounds, fields, train

EXPERIMENT = "bound"

FORMAT = 1  # checkpoint layout version read by bound_main
# The fields, their defaults and rules: fields.BOUND (docs/config_fields.md).
SCHEMA = fields.BOUND
FIELDS = tuple(f.name for f in SCHEMA.fields if "." not in f.name)


def validate(config) -> None:
  """Check every field of a 'bound' config; raises ConfigError before any compute."""
  SCHEMA.validate(config)
  train.validate_common(config, [(config.depth, config.width)])


def model_cfg(config) -> dict:
  return train.model_cfg(config, config.depth, config.width)


def grids(config) -> tuple[list[dict], list[dict]]:
  """Clean runs (draw major, seed minor) and noisy runs (draw, p, seed)."""
  n, nn = config.num_clean_seeds, config.num_noisy_seeds
  clean = [{"run": k * n + g, "draw": k, "seed": g}
           for k in range(config.num_draws) for g in range(n)]
  ps = bounds.trained_ps(config)
  noisy = [{"run": (k * len(ps) + j) * nn + g, "draw": k, "p_index": j,
            "p": float(p), "seed": g}
           for k in range(config.num_draws) for j, p in enumerate(ps)
           for g in range(nn)]
  return clean, noisy


def protocol_keys(seed: int):
  """root -> (subset, noise, init, order, init_noisy, order_noisy): one stream per purpose."""
  return jax.random.split(jax.random.key(seed), 6)


def _fold(key, *ints):
  for i in ints:
    key = jax.random.fold_in(key, i)
  return key


def run_keys(init_key, order_key, grid: list[dict], noisy: bool) -> sgd.RunKeys:
  """Per-run RunKeys: fold_in(k_init, draw[, p_index], seed), the same with k_order."""
  idx = [(r["draw"], r["p_index"], r["seed"]) if noisy else (r["draw"], r["seed"])
         for r in grid]
  init = jnp.stack([_fold(init_key, *i) for i in idx])
  order = jnp.stack([_fold(order_key, *i) for i in idx])
  # The epoch function folds the augment key even without augmentation; noise is
  # drawn per (draw, p), not per run, so neither key carries randomness here.
  return sgd.RunKeys(init, order, order, order)


def draw_samples(config, ds: data.Dataset) -> dict:
  """Sample indices, inputs and (clean, corrupted) labels of every draw, on the host."""
  k_subset, k_noise = protocol_keys(config.seed)[:2]
  C, m = ds.num_classes, config.m
  V.require(m % C == 0, "m", f"m={m} must be a multiple of the number of classes {C}")
  s1, s2, y2n, chosen = [], [], [], []
  for k in range(config.num_draws):
    seed = np.asarray(jax.random.key_data(_fold(k_subset, k))).tolist()
    try:
      i1, i2 = data.balanced_disjoint_pair(np.random.default_rng(seed), ds.y_train, m, C)
    except ValueError as e:
      raise V.ConfigError("m", str(e)) from None
    s1.append(i1)
    s2.append(i2)
    per_p = [data.corrupt_labels(_fold(k_noise, k, j), jnp.asarray(ds.y_train[i2]), p, C,
                                 config.noise_mode)
             for j, p in enumerate(bounds.trained_ps(config))]
    y2n.append(np.stack([np.asarray(y) for y, _ in per_p]))
    chosen.append(np.stack([np.asarray(c) for _, c in per_p]))
  s1, s2 = np.stack(s1), np.stack(s2)
  return {"s1": s1, "s2": s2, "x_s1": ds.x_train[s1], "y_s1": ds.y_train[s1],
          "x_s2": ds.x_train[s2], "y_s2": ds.y_train[s2],
          "y_s2_noisy": np.stack(y2n).astype(np.int32),  # (K, P, m)
          "corrupted": np.stack(chosen),  # (K, P, m) bool
          "x_test": ds.x_test, "y_test": ds.y_test}


def training_sets(samples: dict, clean: list[dict], noisy: list[dict]):
  """Per-run inputs (R, N, ...), labels (R, N) and corrupted masks (R, N)."""
  d = np.array([r["draw"] for r in clean])
  xc, yc = samples["x_s1"][d], samples["y_s1"][d]
  d = np.array([r["draw"] for r in noisy])
  j = np.array([r["p_index"] for r in noisy])
  xn = np.concatenate([samples["x_s1"][d], samples["x_s2"][d]], axis=1)
  yn = np.concatenate([samples["y_s1"][d], samples["y_s2_noisy"][d, j]], axis=1)
  cn = np.concatenate([np.zeros_like(samples["corrupted"][d, j]),
                       samples["corrupted"][d, j]], axis=1)
  return (xc, yc, np.zeros(yc.shape, bool)), (xn, yn, cn)


def cut(a_RxN, batch: int) -> np.ndarray:
  """(R, N, ...) -> (R, NB, B, ...), zero-padded to a multiple of ``batch``."""
  r, n = a_RxN.shape[:2]
  nb = -(-n // batch)
  pad = np.zeros((r, nb * batch - n, *a_RxN.shape[2:]), a_RxN.dtype)
  return np.concatenate([a_RxN, pad], 1).reshape(r, nb, batch, *a_RxN.shape[2:])


def _batched_runs(x_RxN, y_RxN, c_RxN, batch: int):
  """Per-run analysis batches (leading run axis), labels and corrupted masks cut alike."""
  y = cut(y_RxN, batch)
  b = analysis.Batched(cut(x_RxN, batch), y, cut(np.ones(y_RxN.shape, bool), batch))
  return b, y, cut(c_RxN, batch)


def train_group(config, kind: str, network, grid, keys: sgd.RunKeys, sets, test_b,
                workdir: str, meta: dict, bar) -> dict:
  """Train (or resume) one group of runs as one vmapped program; returns final analysis."""
  x_RxN, y_RxN, c_RxN = sets
  n = x_RxN.shape[1]
  spe = n // config.batch_size
  tx = sgd.make_optimizer(config, spe)
  epoch_fn = sgd.make_epoch(network, tx, config.batch_size, spe)
  epoch_all = jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, 0, None, 0)), donate_argnums=0)
  init_all = jax.jit(jax.vmap(lambda k: sgd.init_state(network, tx, k)))
  analyzer = analysis.make_analyzer(network, meta["num_classes"], tuple(config.eps),
                                    config.rank_samples)

  def analyze_run(state, train_b, labels, corrupted, test_b):
    v = {"params": state.params, "batch_stats": state.batch_stats}
    return analyzer(v, train_b, labels, corrupted, test_b)

  analyze_all = jax.jit(jax.vmap(analyze_run, in_axes=(0, 0, 0, 0, None)))
  place = devices.Placement(len(grid), enabled=config.shard_runs)
  keys = place.pad(keys)
  state = place.runs(init_all(keys.init))
  labels, x, keys = place.runs((np.asarray(y_RxN), np.asarray(x_RxN), keys))
  # Checkpoints hold the real runs only, as host arrays: they do not depend on the
  # device count, and the offline calculator reads them without model code.
  ints = lambda k: np.asarray([r.get(k, -1) for r in grid], np.int32)
  fixed = {"labels": np.asarray(y_RxN), "corrupted": np.asarray(c_RxN),
           "draw": ints("draw"), "p_index": ints("p_index"), "seed": ints("seed")}
  tree = lambda s: {"variables": {"params": s.params, "batch_stats": s.batch_stats},
                    "opt_state": s.opt_state, "step": s.step}
  meta = {**meta, "kind": kind, "runs": grid, "num_train": n, "steps_per_epoch": spe}
  checkpointing = driver.Checkpointing(
      os.path.join("checkpoints", kind), every=config.checkpoint_every,
      keep=config.keep_checkpoints, steps_per_segment=spe,
      to_host=lambda s: {**place.gather(tree(s)), **fixed},
      from_host=lambda t: place.runs(sgd.TrainState(
          t["variables"]["params"], t["variables"]["batch_stats"], t["opt_state"],
          t["step"])),
      meta=lambda done: {**meta, "epoch": done, "step": done * spe,
                         "complete": done == config.epochs})
  state, _ = driver.run(state, lambda st, e: epoch_all(st, labels, keys, e, x),
                        total=config.epochs, workdir=workdir, checkpoint=checkpointing,
                        bar=bar, steps_per_segment=spe)
  train_b, lab_b, cor_b = _batched_runs(x_RxN, y_RxN, c_RxN, config.analysis_batch)
  # The final analysis runs on one device, every process on all runs: partitioning
  # it over the run axis made XLA CPU insert collectives that deadlocked on an
  # oversubscribed host (session 1).
  state = jax.device_put(place.gather(state), jax.local_devices()[0])
  out = analysis.finalize(analyze_all(state, train_b, lab_b, cor_b, test_b))
  out["diverged"] = ~np.asarray(sgd.tree_finite(state.params))
  return out


def _records(config, grid, out, layer_names) -> list[dict]:
  recs = []
  for r in grid:
    i = r["run"]
    rec = {**r, "diverged": bool(out["diverged"][i]),
           "train_acc": float(out["train_acc"][i]),
           "test_error": float(1.0 - out["test_acc"][i]), "layers": list(layer_names)}
    for k in ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "ncc_train_acc_clean",
              "ncc_train_acc_corrupted"):
      rec[k] = np.asarray(out[k][i]).tolist()
    rec["effective_depth"] = {str(e): int(v) for e, v in
                              zip(config.eps, out["effective_depth"][i])}
    recs.append(rec)
  return recs


def clean_assumption_records(config, workdir: str, clean_recs: list[dict]) -> dict:
  """Assumption diagnostics of the trained clean networks, read back from the final
  checkpoints with the calculator's own program (bound_main.clean_assumptions), so
  summary.json and ``jaxdepth bound`` agree by construction. Adds to each clean
  record the per-layer ncc_err_own_labels (NCC error on S1 u S2_h, S2 labelled by
  the network's argmax), ncc_agree_s2 / ncc_agree_test (per-layer NCC with S1 means
  vs the network's argmax) and s2_mistakes (indices into S2 the network gets wrong);
  returns them as (K, G, ...) arrays for bounds.bound_rows."""
  from jaxdepth.papers.minimal_depth import bound_main
  diag = bound_main.clean_assumptions(bound_main.load(workdir))
  at = {(r["draw"], r["seed"]): i for i, r in enumerate(diag["runs"])}
  for rec in clean_recs:
    i = at[(rec["draw"], rec["seed"])]
    rec["ncc_err_own_labels"] = np.asarray(diag["own_err"][i]).tolist()
    rec["ncc_agree_s2"] = np.asarray(diag["agree_s2"][i]).tolist()
    rec["ncc_agree_test"] = np.asarray(diag["agree_test"][i]).tolist()
    rec["s2_mistakes"] = np.nonzero(diag["s2_mistakes"][i])[0].tolist()
  return bound_main.assumptions_by_draw(diag, config.num_draws, config.num_clean_seeds)


def errors_by_draw(config, clean_recs, noisy_recs):
  """(K, G, L) clean and (K, P, G, L) noisy NCC train errors, test errors (K, G)."""
  K, P = config.num_draws, len(bounds.trained_ps(config))
  err = lambda r: 1.0 - np.asarray(r["ncc_train_acc"], np.float64)
  clean = np.stack([err(r) for r in clean_recs]).reshape(K, config.num_clean_seeds, -1)
  noisy = np.stack([err(r) for r in noisy_recs]).reshape(K, P, config.num_noisy_seeds, -1)
  test = np.array([r["test_error"] for r in clean_recs]).reshape(K, -1)
  return clean, noisy, test


def run(config, workdir: str) -> dict:
  """Train the clean and noisy groups (resuming), write summary.json and layers.csv."""
  validate(config)
  ds = data.load(config)
  if config.data.get("num_train") or config.data.get("num_test"):
    ds = data.subsample(ds, config.data.get("num_train"), config.data.get("num_test"))
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  network = nets.build(model_cfg(config), ds.x_train.shape[1:], ds.num_classes)
  meta = {"experiment": "bound", "format": FORMAT, "config": writers.config_to_dict(config),
          "model": model_cfg(config), "input_shape": list(ds.x_train.shape[1:]),
          "num_classes": ds.num_classes, "dataset": ds.name, "m": config.m,
          "num_draws": config.num_draws, "p": bounds.trained_ps(config),
          "epochs": config.epochs,
          "layer_names": list(network.layer_names)}
  samples = draw_samples(config, ds)
  dck = ckpt.Checkpointer(workdir, max_to_keep=1, subdir=os.path.join("checkpoints", "data"))
  prev = dck.restore()
  if prev is None:
    dck.save(0, samples, {**meta, "kind": "data"})
  elif not (np.array_equal(prev[1]["s1"], samples["s1"])
            and np.array_equal(prev[1]["y_s2_noisy"], samples["y_s2_noisy"])):
    raise V.ConfigError("seed", f"{workdir} holds samples from another draw; use a new "
                        "--workdir")
  dck.close()
  clean_grid, noisy_grid = grids(config)
  keys = protocol_keys(config.seed)
  clean_set, noisy_set = training_sets(samples, clean_grid, noisy_grid)
  test_b = analysis.batch_pad(ds.x_test, ds.y_test, config.analysis_batch)
  total = config.epochs * (config.m // config.batch_size + 2 * config.m // config.batch_size)
  bar = progress_lib.progress(total, "bound: clean runs", enabled=config.progress)
  out_c = train_group(config, "clean", network, clean_grid,
                      run_keys(keys[2], keys[3], clean_grid, False), clean_set, test_b,
                      workdir, meta, bar)
  bar.set_description("bound: noisy runs")
  out_n = train_group(config, "noisy", network, noisy_grid,
                      run_keys(keys[4], keys[5], noisy_grid, True), noisy_set, test_b,
                      workdir, meta, bar)
  bar.close()
  clean_recs = _records(config, clean_grid, out_c, network.layer_names)
  noisy_recs = _records(config, noisy_grid, out_n, network.layer_names)
  for r, k in zip(noisy_recs, noisy_grid):
    r["num_corrupted"] = int(samples["corrupted"][k["draw"], k["p_index"]].sum())
  assumptions = clean_assumption_records(config, workdir, clean_recs)
  ce, ne, te = errors_by_draw(config, clean_recs, noisy_recs)
  table = bounds.bound_rows(ce, ne, te, bounds.trained_ps(config), config.alpha, config.eps,
                            n_clean=config.m, n_noisy=2 * config.m,
                            extra={"dataset": ds.name,
                                   "architecture": f"{config.family}-{config.depth}-"
                                                   f"{config.width}"},
                            assumptions=assumptions)
  summary = {"experiment": "bound", "dataset": ds.name, "m": config.m,
             "num_draws": config.num_draws, "p": bounds.trained_ps(config),
             "eps": list(config.eps), "alpha": list(config.alpha),
             "clean_runs": clean_recs, "noisy_runs": noisy_recs, "table": table,
             "curve": bounds.curve_summary(table),
             "warnings": bounds.grid_warnings(bounds.trained_ps(config), config.eps,
                                              table[0]["mean_test_error"], config.alpha),
             "wall_time_s": time.time() - t0}
  writers.write_json(os.path.join(workdir, "summary.json"), summary)
  writers.write_csv(os.path.join(workdir, "layers.csv"), layer_rows(summary))
  from jaxdepth.papers.minimal_depth import figures
  figures.bound_figure(summary, os.path.join(workdir, "figures", "bound.png"))
  for e in config.eps:
    figures.bound_curve_figure(table, float(e), os.path.join(
        workdir, "figures", f"bound_curve_eps{float(e):g}.png"), ds.name)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics_path):  # rewritten whole: the records are final analyses
    os.remove(metrics_path)
  mw = writers.JsonlWriter(metrics_path)
  for kind, out in (("clean", out_c), ("noisy", out_n)):
    mw.write({"step": config.epochs, "epoch": config.epochs, "kind": kind, **out})
  return summary


def layer_rows(summary: dict) -> list[dict]:
  """Tidy rows, one per run and layer."""
  rows = []
  for kind in ("clean", "noisy"):
    for r in summary[f"{kind}_runs"]:
      for li, name in enumerate(r["layers"]):
        rows.append({"kind": kind, "draw": r["draw"], "p": r.get("p", 0.0),
                     "seed": r["seed"], "layer": li + 1, "layer_name": name,
                     "ncc_train_acc": r["ncc_train_acc"][li],
                     "ncc_test_acc": r["ncc_test_acc"][li],
                     "cdnv_train": r["cdnv_train"][li], "test_error": r["test_error"],
                     **{f"effective_depth@{e}": v
                        for e, v in r["effective_depth"].items()}})
  return rows
