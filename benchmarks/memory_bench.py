"""Peak memory of ``jaxdepth train`` against the number of runs (issue 25 item 5): "the
run axis never holds more than one copy of the dataset".

  .venv/bin/python benchmarks/memory_bench.py --json /tmp/mem.json            # grids
  .venv/bin/python benchmarks/memory_bench.py --main --probe --json /tmp/mem.json
  .venv/bin/python benchmarks/memory_bench.py --quick                         # smoke test

grids  ``jaxdepth train --config quickstart`` (MLP-12-128, MNIST-1D 4000 / 1000) with
       1 run (1 seed, noise 0), 16 runs (4 seeds x 4 noise levels: the main job's grid)
       and 64 runs (16 seeds x 4 noise levels), ``--epochs`` epochs each (default 2:
       what is held barely depends on the epoch count -- the same state, the same
       epoch and analysis programs; ``--main`` measures the full 80-epoch job, whose 4
       analyses and longer logs gave 10% more than its grid at 2 epochs, 2026-12-04).
       Each a fresh process; peak RSS = its ru_maxrss (os.wait4), wall seconds too.
       Next to the measurement, an estimate of what each run adds (its parameters,
       batch statistics and optimizer state, its labels, the analysis embedding cache
       and outputs, from the shapes the program is built with) and what one extra copy
       of the dataset per run would add.
main   (``--main``) the main job as the README runs it: quickstart, 80 epochs.
probe  (``--probe``) the same programs (train.build_program: init, one epoch, one
       analysis) on a synthetic dataset big enough to see (default 50000 x 1000 float32
       = 200 MB) with 2 and 64 runs of a small MLP, in fresh processes: if the run axis
       held the data, 64 runs would need 62 x 200 MB more.

The process's RSS includes what does not depend on the runs (Python, jax, XLA's
compiled programs, matplotlib); the per-run increment is (peak at R runs - peak at 1
run) / (padded runs - padded runs at 1): `jaxdepth train` pads the run axis to a
multiple of the CPU device count (one device per core).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import core_bench  # noqa: E402  (machine, loadavg, cpu_count, worker line protocol)

MiB = 2 ** 20
NOISE = (0.0, 0.2, 0.4, 0.6)
POINTS = {1: (1, (0.0,)), 16: (4, NOISE), 64: (16, NOISE)}  # runs: (seeds, noise levels)


def run_peak(cmd, env, log_path) -> dict:
  """Run ``cmd``; its peak RSS (bytes, from ru_maxrss of this very child), wall seconds
  and exit status."""
  t0 = time.perf_counter()
  with open(log_path, "w") as log:
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    _, status, ru = os.wait4(p.pid, 0)
  p.returncode = os.waitstatus_to_exitcode(status)
  return {"peak_rss_mib": ru.ru_maxrss * 1024 / MiB, "wall_s": time.perf_counter() - t0,
          "rc": p.returncode, "user_s": ru.ru_utime, "sys_s": ru.ru_stime}


def cli_cmd(workdir, overrides):
  return [sys.executable, "-m", "jaxdepth", "train", "--config", "quickstart", "--workdir",
          workdir, "--config.progress=False", *overrides]


def grid_overrides(runs: int, epochs: int | None) -> list[str]:
  seeds, noise = POINTS[runs]
  out = [f"--config.num_seeds={seeds}", f"--config.label_noise=({','.join(map(str, noise))},)"]
  if epochs is not None:
    out += [f"--config.epochs={epochs}", f"--config.eval_every={epochs}",
            f"--config.checkpoint_every={epochs}"]
  return out


# -------------------------------------------------------------------------- estimates
def _nbytes(tree) -> int:
  import jax
  return sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(tree))


def per_run_estimate(c, ds, devices: int, padded_runs: int) -> dict:
  """Bytes one run adds, from the shapes train.build_program uses (no compilation)."""
  import jax
  import jax.numpy as jnp

  from jaxdepth import nets
  from jaxdepth.measure import analysis
  from jaxdepth.papers import sgd
  from jaxdepth.papers.minimal_depth import train
  network = nets.build(train.model_cfg(c, c.depth, c.width), ds.x_train.shape[1:],
                       ds.num_classes)
  spe = ds.x_train.shape[0] // c.batch_size
  tx = sgd.make_optimizer(c, spe, per_run=train.per_run_hparams(c))
  state = jax.eval_shape(lambda k: sgd.init_state(network, tx, k), jax.random.key(0))
  n_tr, n_te = len(ds.x_train), len(ds.x_test)
  out = jax.eval_shape(lambda v, x: network.apply(v, x), jax.eval_shape(
      network.init, jax.random.key(0)), jnp.zeros((1, *ds.x_train.shape[1:])))
  per_example = sum(g.size for g in out[1]) * 4
  cache = train.analysis_cache(per_example, n_tr + n_te, padded_runs, devices)
  tr_b = analysis.batch_pad(ds.x_train, ds.y_train, c.analysis_batch)
  te_b = analysis.batch_pad(ds.x_test, ds.y_test, c.analysis_batch)
  analyzer = analysis.make_analyzer(network, ds.num_classes, tuple(c.eps), c.rank_samples,
                                    cache=cache)
  res = jax.eval_shape(
      lambda s, y, t, e: analyzer({"params": s.params, "batch_stats": s.batch_stats}, t,
                                  analysis.relabel(t, y), analysis.relabel(t, y) > 0, e),
      state, jnp.zeros((n_tr,), jnp.int32), tr_b, te_b)
  grams = sum(math.prod(res[k].shape) for k in ("gram_train", "gram_test"))
  est = {"params": _nbytes(state.params), "batch_stats": _nbytes(state.batch_stats),
         "opt_state": _nbytes(state.opt_state),
         "labels_and_corrupted": n_tr * (4 + 1),
         "analysis_cache": per_example * (n_tr + n_te) if cache else 0,
         "analysis_outputs": _nbytes(res),
         "host_gram_float64": grams * 8}  # finalize: eigenvalues from float64 copies
  # The epoch donates its state, but the new state is written before the old one is
  # freed: count the training state twice; checkpoints copy it to the host once more.
  train_state = est["params"] + est["batch_stats"] + est["opt_state"]
  est["state_second_copy_and_checkpoint"] = 2 * train_state
  est["total"] = sum(est.values())
  est["cache_on"] = cache
  return est


def dataset_bytes(ds) -> dict:
  x = ds.x_train.nbytes + ds.x_test.nbytes
  return {"x_bytes": x, "xy_bytes": x + ds.y_train.nbytes + ds.y_test.nbytes}


# ------------------------------------------------------------------------------ probe
def probe_worker(spec):
  """Init + one epoch + one analysis of ``spec['runs']`` runs on a synthetic dataset,
  reporting ru_maxrss after each stage (MiB)."""
  rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MiB
  stages = {}
  from jaxdepth.engine import devices
  devices.use_cpu_cores()
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jaxdepth import cli, data
  from jaxdepth.papers.minimal_depth import train
  stages["imports"] = rss()
  n, d = spec["n"], spec["d"]
  rng = np.random.default_rng(0)
  ds = data.Dataset(rng.standard_normal((n, d), dtype=np.float32),
                    rng.integers(0, 10, n).astype(np.int32),
                    rng.standard_normal((n // 10, d), dtype=np.float32),
                    rng.integers(0, 10, n // 10).astype(np.int32), 10, "synthetic")
  stages["data_host"] = rss()
  c = cli.load_config("quickstart", [])
  c.depth, c.width, c.batch_size, c.epochs = 2, 4, 1024, 1
  c.num_seeds, c.label_noise = spec["runs"], (0.0,)
  c.analysis_batch, c.rank_samples, c.progress, c.plots = 5000, 64, False, False
  grid = train.run_grid(c)
  place = train.placement(c, len(grid))
  prog = train.build_program(c, ds, c.depth, c.width, place)
  stages["built"] = rss()
  keys = place.pad(train.make_keys(c.seed, grid))
  state, labels, chosen = place.runs(prog.init(keys))
  keys, x = place.runs(keys), place.shared(jnp.asarray(ds.x_train))
  jax.block_until_ready((state, x))
  stages["init"] = rss()
  state, loss = prog.epoch(state, labels, keys, 0, x)
  jax.block_until_ready(loss)
  stages["epoch"] = rss()
  prog.analyze(state, labels, chosen)
  stages["analysis"] = rss()
  core_bench._emit({"stages_mib": stages, "runs": len(grid), "padded_runs": place.padded_runs,
                    "devices": jax.device_count(), "x_train_mib": ds.x_train.nbytes / MiB,
                    "x_test_mib": ds.x_test.nbytes / MiB,
                    "labels_per_run_mib": n * 5 / MiB})


def run_probe(runs, a, env, tmp) -> dict:
  spec = {"runs": runs, "n": a.probe_n, "d": a.probe_d}
  log = os.path.join(tmp, f"probe{runs}.log")
  r = run_peak([sys.executable, os.path.abspath(__file__), "--probe-worker", json.dumps(spec)],
               env, log)
  with open(log) as f:
    lines = [ln for ln in f if ln.startswith(core_bench.PREFIX)]
  if r["rc"] != 0 or not lines:
    raise RuntimeError(f"probe with {runs} runs failed (rc {r['rc']}): see {log}")
  return {**r, **json.loads(lines[-1][len(core_bench.PREFIX):])}


# ----------------------------------------------------------------------------- parent
def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--runs", type=int, nargs="+", default=[1, 16, 64], choices=sorted(POINTS))
  ap.add_argument("--epochs", type=int, default=2, help="epochs of the grid points")
  ap.add_argument("--main", action="store_true", help="also the main job (80 epochs)")
  ap.add_argument("--probe", action="store_true", help="also the big synthetic dataset")
  ap.add_argument("--probe-n", type=int, default=50000)
  ap.add_argument("--probe-d", type=int, default=1000)
  ap.add_argument("--quick", action="store_true", help="1 and 16 runs, 1 epoch, tiny probe")
  ap.add_argument("--workdir", default=None, help="default: a temporary directory")
  ap.add_argument("--json", default=None)
  ap.add_argument("--probe-worker", default=None, help=argparse.SUPPRESS)
  a = ap.parse_args(argv)
  if a.probe_worker:
    probe_worker(json.loads(a.probe_worker))
    return {}
  if a.quick:
    a.runs, a.epochs, a.probe_n, a.probe_d = [1, 16], 1, 2000, 100
  base_env = dict(os.environ)
  env = core_bench.child_env(base_env)
  res = {"args": vars(a), "machine": core_bench.machine(base_env),
         "load_start": core_bench.loadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
  from jaxdepth import cli, data
  from jaxdepth.engine import devices
  ndev = devices.cpu_count()  # `jaxdepth train`: one CPU device per core
  c = cli.load_config("quickstart", [])
  ds = data.load(c)
  res["dataset"] = {"shape_train": list(ds.x_train.shape), "shape_test": list(ds.x_test.shape),
                    **dataset_bytes(ds)}
  res["devices"] = ndev
  tmp_ctx = tempfile.TemporaryDirectory()
  tmp = a.workdir or tmp_ctx.name
  os.makedirs(tmp, exist_ok=True)
  try:
    res["grids"] = {}
    for runs in a.runs:
      cfg = cli.load_config("quickstart", [])
      seeds, noise = POINTS[runs]
      cfg.num_seeds, cfg.label_noise = seeds, noise
      padded = devices.padded(runs, ndev)
      wd = os.path.join(tmp, f"grid{runs}")
      r = run_peak(cli_cmd(wd, grid_overrides(runs, a.epochs)), env, wd + ".log")
      if r["rc"] != 0:
        raise RuntimeError(f"{runs}-run grid failed: see {wd}.log")
      r.update(runs=runs, padded_runs=padded,
               estimate_per_run=per_run_estimate(cfg, ds, ndev, padded))
      res["grids"][str(runs)] = r
      print(f"  {runs:3d} runs ({padded} padded), {a.epochs} epochs: peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB, {r['wall_s']:.0f} s", flush=True)
    if a.main:
      wd = os.path.join(tmp, "main")
      r = run_peak(cli_cmd(wd, []), env, wd + ".log")
      if r["rc"] != 0:
        raise RuntimeError(f"main job failed: see {wd}.log")
      res["main"] = {**r, "runs": 16, "epochs": c.epochs}
      print(f"  main job (16 runs, {c.epochs} epochs): peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"{r['wall_s']:.0f} s", flush=True)
    if a.probe:
      res["probe"] = {str(r): run_probe(r, a, env, tmp) for r in (2, 64)}
  finally:
    tmp_ctx.cleanup()
  res["load_end"] = core_bench.loadavg()
  summarize(res)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1, default=float)
  return res


def summarize(res):
  d = res["dataset"]
  print(f"\nMNIST-1D train {d['shape_train']} + test {d['shape_test']}: inputs "
        f"{d['x_bytes'] / MiB:.2f} MiB; {res['devices']} CPU devices; "
        f"load {res['load_start']} -> {res['load_end']}")
  g = res["grids"]
  if "1" in g:
    base = g["1"]
    for k, r in g.items():
      if k == "1":
        continue
      extra = r["padded_runs"] - base["padded_runs"]
      growth = r["peak_rss_mib"] - base["peak_rss_mib"]
      est = r["estimate_per_run"]
      parts = ", ".join(f"{n} {v / MiB:.2f}" for n, v in est.items()
                        if n not in ("total", "cache_on"))
      print(f"  1 -> {k} runs: +{growth:.0f} MiB over {extra} more (padded) runs = "
            f"{growth / extra:.2f} MiB per run; estimate {est['total'] / MiB:.2f} MiB per "
            f"run ({parts}); one dataset copy per run would add "
            f"{d['x_bytes'] / MiB:.2f} MiB per run ({extra * d['x_bytes'] / MiB:.0f} MiB)")
  if "main" in res and "16" in g:
    print(f"  main job {res['main']['peak_rss_mib']:.0f} MiB vs the 16-run grid at "
          f"{res['args']['epochs']} epochs {g['16']['peak_rss_mib']:.0f} MiB")
  if "probe" in res:
    p2, p64 = res["probe"]["2"], res["probe"]["64"]
    x = p2["x_train_mib"] + p2["x_test_mib"]
    print(f"  probe, inputs {x:.0f} MiB: peak {p2['peak_rss_mib']:.0f} MiB with 2 runs, "
          f"{p64['peak_rss_mib']:.0f} MiB with 64 (+{p64['peak_rss_mib'] - p2['peak_rss_mib']:.0f}"
          f" MiB; labels {62 * p2['labels_per_run_mib']:.0f} MiB; a copy per run would be "
          f"+{62 * x:.0f} MiB)")
    for k in ("2", "64"):
      print(f"    {k} runs, ru_maxrss after each stage (MiB): "
            + ", ".join(f"{s} {v:.0f}" for s, v in res["probe"][k]["stages_mib"].items()))


if __name__ == "__main__":
  main()
