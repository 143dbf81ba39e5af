"""Value hyperparameters as run axes (issue 25 item 2): a 3 lr x 3 weight-decay x 4 seed
grid trained as ONE program (lr and wd per run, in the optimizer state) vs the same grid
as 9 sequential programs (one per (lr, wd), 4 seeds vmapped each, as 9 scalar configs).

  .venv/bin/python benchmarks/hparam_bench.py --json /tmp/hparam.json
  .venv/bin/python benchmarks/hparam_bench.py --quick                 # smoke test

MLP-4-64 (BatchNorm, ReLU) on MNIST-1D (4000 train / 1000 test, generated locally),
batch 128, SGD momentum 0.9, step schedule with 1 warm-up epoch; set up as ``jaxdepth
train`` does (one CPU device per core, the run axis sharded). Both variants run the
jaxdepth epoch program (train.build_program(...).epoch); times are wall seconds of
build + init + compile + all epochs ("total") and of the epochs after the first
("steady", compile excluded), each variant once, one after the other (no PyTorch
comparison here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

LRS, WDS = (0.01, 0.03, 0.1), (0.0, 5e-4, 2e-3)


def config(lr, wd, seeds: int, epochs: int, n_train: int):
  from jaxdepth.configs import tiny
  c = tiny.get_config()
  with c.ignore_type():
    c.lr, c.weight_decay = lr, wd
  c.dataset = "mnist1d"
  c.data.num_train, c.data.num_test = n_train, n_train // 4
  c.depth, c.width, c.num_seeds, c.label_noise = 4, 64, seeds, (0.0,)
  c.epochs, c.batch_size, c.analysis_batch = epochs, 128, 500
  return c


def train_program(c, ds) -> dict:
  """Build, init and train one program; wall times (s) and its run count."""
  import jax
  import jax.numpy as jnp

  from jaxdepth.papers.minimal_depth import train
  t0 = time.perf_counter()
  grid = train.run_grid(c)
  place = train.placement(c, len(grid))
  prog = train.build_program(c, ds, c.depth, c.width, place)
  keys = place.pad(train.make_keys(c.seed, grid))
  state, labels, _ = place.runs(prog.init(keys))
  keys, x = place.runs(keys), place.shared(jnp.asarray(ds.x_train))
  state, loss = prog.epoch(state, labels, keys, 0, x)
  jax.block_until_ready(loss)
  t1 = time.perf_counter()
  for e in range(1, c.epochs):
    state, loss = prog.epoch(state, labels, keys, e, x)
  jax.block_until_ready(loss)
  t2 = time.perf_counter()
  return {"runs": len(grid), "total_s": t2 - t0, "first_epoch_s": t1 - t0,
          "steady_s": t2 - t1, "compiles": prog.epoch._cache_size()}


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser()
  ap.add_argument("--epochs", type=int, default=4)
  ap.add_argument("--seeds", type=int, default=4)
  ap.add_argument("--num_train", type=int, default=4000)
  ap.add_argument("--quick", action="store_true", help="2 epochs, 512 examples")
  ap.add_argument("--json", default=None)
  a = ap.parse_args(argv)
  if a.quick:
    a.epochs, a.num_train = 2, 512
  from jaxdepth.engine import devices
  devices.use_cpu_cores()  # as `jaxdepth train`: one CPU device per core
  import jax

  from jaxdepth import data
  c_grid = config(LRS, WDS, a.seeds, a.epochs, a.num_train)
  ds = data.subsample(data.load(c_grid), a.num_train, a.num_train // 4)
  one = train_program(c_grid, ds)
  seq = [train_program(config(lr, wd, a.seeds, a.epochs, a.num_train), ds)
         for lr in LRS for wd in WDS]
  sum_ = lambda k: sum(s[k] for s in seq)
  res = {"args": vars(a), "machine": {"platform": platform.platform(),
                                      "cpus": os.cpu_count(),
                                      "devices": len(jax.devices()),
                                      "jax": jax.__version__},
         "grid": f"{len(LRS)} lr x {len(WDS)} wd x {a.seeds} seeds",
         "one_program": one,
         "sequential": {"programs": len(seq), "runs": sum(s["runs"] for s in seq),
                        "total_s": sum_("total_s"), "steady_s": sum_("steady_s"),
                        "first_epoch_s": sum_("first_epoch_s"),
                        "compiles": sum_("compiles")}}
  res["speedup_total"] = res["sequential"]["total_s"] / one["total_s"]
  res["speedup_steady"] = res["sequential"]["steady_s"] / max(one["steady_s"], 1e-9)
  print(f"{res['grid']}, MLP-4-64, MNIST-1D {a.num_train}, {a.epochs} epochs, "
        f"{len(jax.devices())} CPU devices")
  print(f"  one program:    {one['total_s']:.1f} s total, {one['steady_s']:.1f} s for "
        f"epochs 2..{a.epochs}, {one['compiles']} epoch compilation")
  s = res["sequential"]
  print(f"  9 programs:     {s['total_s']:.1f} s total, {s['steady_s']:.1f} s for "
        f"epochs 2..{a.epochs}, {s['compiles']} epoch compilations")
  print(f"  ratio (9 programs / one): {res['speedup_total']:.2f}x total, "
        f"{res['speedup_steady']:.2f}x steady")
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)
  return res


if __name__ == "__main__":
  main()
