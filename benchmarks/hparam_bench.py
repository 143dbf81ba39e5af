"""Value hyperparameters as run axes (issue 25 item 2): a 3 lr x 3 weight-decay x 4 seed
grid (36 runs) trained four ways, each in its own worker process:

  jax-one        the whole grid as ONE jaxdepth program (lr and wd per run, in the
                 optimizer state: train.build_program(...).epoch over 36 runs);
  jax-9          9 sequential jaxdepth programs, one scalar config per (lr, wd), 4 seeds
                 vmapped each (9 compilations);
  torch-eager    the PyTorch ensemble recipe of benchmarks/core_bench.py (StackedMLP:
                 every parameter stacked on a leading member axis, torch.baddbmm,
                 per-member batch-statistics BatchNorm) for all 36 members at once, with
                 a hand-written SGD step over the stacked tensors whose lr and weight
                 decay are (M, 1, 1) tensors (torch.optim.SGD takes one lr per parameter
                 tensor, i.e. per stacked group, not per member);
  torch-compile  the same, forward and the SGD step under torch.compile (cold: a fresh
                 inductor cache directory per worker process);
  jax-scalar     (only with --variants) one program of 36 runs with one (lr, wd) (9x the
                 seeds): what per-run hyperparameters cost per epoch, at the same run count.
Each torch variant runs once per ``--torch-threads`` setting (default 1 and one per
core), with OMP_WAIT_POLICY=PASSIVE: with libgomp's default spin-waiting, 2 threads
collapsed (5-50x slower, erratic) while another job kept the 2 cores busy. The jax
workers are set up as ``jaxdepth train`` (one CPU device per core, the run axis sharded).

  .venv/bin/pip install torch==2.13.0      # the 'bench' extra (CPU build); else jax only
  .venv/bin/python benchmarks/hparam_bench.py --json /tmp/hparam.json
  .venv/bin/python benchmarks/hparam_bench.py --quick               # smoke test

Same network, data and optimizer everywhere: MLP-4-64 (Linear -> BatchNorm (batch
statistics) -> ReLU blocks, linear read-out, He-normal init; runs with the same seed
start from the same network), MNIST-1D (4000 train / 1000 test, generated locally),
batch 128 (31 steps per epoch, remainder dropped), SGD momentum 0.9, coupled weight
decay, linear warm-up over 1 epoch then lr x 0.2 at 50% and 75% of training
(jaxdepth's 'step' schedule, :func:`lr_factor`), 4 epochs. Each member sees its own
data order (jax: one per seed; torch: one per member -- the cost is the same).

Two measurements:
  grid   wall seconds of the whole grid in a fresh worker: build + init + compile + all
         epochs (imports and data loading excluded, reported apart), ``--grid-repeats``
         times; the parent runs repeat r of every variant, one at a time, then r + 1.
  epoch  steady-state seconds per epoch of the whole grid (all 36 runs; jax-9: one epoch
         of each of its 9 programs), compile excluded: the last grid repeat's workers
         stay alive and run ``--epochs-per-repeat`` more epochs per repeat, interleaved
         the same way, ``--repeats`` times; medians.
Ratios are taken against jax-one within this one run. No timing thresholds are asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import core_bench  # noqa: E402  (StackedMLP, stacked_loss, the worker plumbing)

LRS, WDS = (0.01, 0.03, 0.1), (0.0, 5e-4, 2e-3)
MOMENTUM, WARMUP_EPOCHS, MILESTONES, DECAY = 0.9, 1.0, (0.5, 0.75), 0.2
VARIANTS = ("jax-one", "jax-9", "torch-eager", "torch-compile")
EXTRA = ("jax-scalar",)  # not run by default


def config(lr, wd, seeds: int, epochs: int, n_train: int, depth: int = 4,
           width: int = 64):
  from jaxdepth.configs import tiny
  c = tiny.get_config()
  with c.ignore_type():
    c.lr, c.weight_decay = lr, wd
  c.dataset = "mnist1d"
  c.data.num_train, c.data.num_test = n_train, n_train // 4
  c.depth, c.width, c.num_seeds, c.label_noise = depth, width, seeds, (0.0,)
  c.epochs, c.batch_size, c.analysis_batch = epochs, 128, 500
  c.momentum, c.warmup_epochs, c.schedule = MOMENTUM, WARMUP_EPOCHS, "step"
  c.milestones, c.decay = MILESTONES, DECAY
  return c


def grid_points(seeds: int) -> list[tuple[float, float, int]]:
  """(lr, wd, seed) of every member, in jaxdepth's run order (lr, wd, seed minor)."""
  return [(lr, wd, g) for lr in LRS for wd in WDS for g in range(seeds)]


def lr_factor(count: int, steps_per_epoch: int, epochs: int,
              warmup_epochs: float = WARMUP_EPOCHS, milestones=MILESTONES,
              decay: float = DECAY) -> float:
  """lr(count) / lr of jaxdepth's 'step' schedule (sgd.make_schedule): linear warm-up
  from 0, then x ``decay`` at every milestone (fractions of all steps) reached."""
  total = epochs * steps_per_epoch
  warm = int(round(warmup_epochs * steps_per_epoch))
  if count < warm:
    return count / warm
  f = 1.0
  for t in sorted({int(round(m * total)) for m in milestones}):
    if count >= t:
      f *= decay
  return f


# ============================================================================ workers
def _dataset(path):
  from jaxdepth import data
  d = core_bench._load_npz(path)
  return data.Dataset(d["x_train"], d["y_train"], d["x_test"], d["y_test"], 10, "mnist1d")


class JaxGrid:
  """jax-one (one program, 36 runs) or jax-9 (9 programs of 4 runs, one after another)."""

  def __init__(self, spec):
    t0 = time.perf_counter()
    from jaxdepth.engine import devices
    devices.use_cpu_cores(spec.get("devices"))  # default as `jaxdepth train`: 1 per core
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdepth.papers.minimal_depth import train
    self.jax, self.np = jax, np
    ds = _dataset(spec["data"])
    self.import_s = time.perf_counter() - t0
    a = spec["args"]
    seeds = a["seeds"]
    if spec["kind"] == "jax-one":
      points = [(LRS, WDS)]
    elif spec["kind"] == "jax-scalar":  # as many runs, one (lr, wd): 9x the seeds
      points, seeds = [(LRS[1], WDS[1])], seeds * len(LRS) * len(WDS)
    else:
      points = [(l, w) for l in LRS for w in WDS]
    self.progs, first, losses = [], 0.0, []
    t0 = time.perf_counter()
    for lr, wd in points:
      t1 = time.perf_counter()
      c = config(lr, wd, seeds, a["epochs"], a["num_train"], a["depth"], a["width"])
      grid = train.run_grid(c)
      place = train.placement(c, len(grid))
      prog = train.build_program(c, ds, c.depth, c.width, place)
      keys = place.pad(train.make_keys(c.seed, grid))
      state, labels, _ = place.runs(prog.init(keys))
      p = {"prog": prog, "state": state, "labels": labels, "keys": place.runs(keys),
           "x": place.shared(jnp.asarray(ds.x_train)), "epoch": 0, "runs": len(grid)}
      loss = self._epoch(p)
      jax.block_until_ready(loss)
      first += time.perf_counter() - t1
      for _ in range(1, c.epochs):
        loss = self._epoch(p)
      losses.append(loss)
      self.progs.append(p)
    jax.block_until_ready(losses)
    self.total_s = time.perf_counter() - t0
    self.first_s = first
    self.loss = self._mean_loss(losses)
    self.runs = sum(p["runs"] for p in self.progs)
    self.compiles = sum(p["prog"].epoch._cache_size() for p in self.progs)

  def _epoch(self, p):
    p["state"], loss = p["prog"].epoch(p["state"], p["labels"], p["keys"], p["epoch"], p["x"])
    p["epoch"] += 1
    return loss

  def _mean_loss(self, losses):
    vals = [self.np.asarray(l["loss"])[:p["runs"]] for l, p in zip(losses, self.progs)]
    return float(self.np.mean(self.np.concatenate(vals)))

  def ready(self):
    return {"import_s": self.import_s, "total_s": self.total_s, "first_epoch_s": self.first_s,
            "steady_s": self.total_s - self.first_s, "loss": self.loss, "runs": self.runs,
            "programs": len(self.progs), "compiles": self.compiles,
            "devices": self.jax.device_count(), "jax": self.jax.__version__}

  def run(self, epochs):
    t0 = time.perf_counter()
    for _ in range(epochs):
      losses = [self._epoch(p) for p in self.progs]
    self.jax.block_until_ready(losses)
    return {"seconds": time.perf_counter() - t0, "loss": self._mean_loss(losses)}


def sgd_step(torch, params, bufs, lr_M, wd_M, momentum: float):
  """One SGD step over stacked tensors, member m with its own lr_M[m] and wd_M[m]
  ((M, 1, 1) tensors): PyTorch's SGD (coupled weight decay, buffer b <- m b + g from
  b = 0, p <- p - lr b), as jaxdepth's per-run optimizer."""
  with torch.no_grad():
    for p, b in zip(params, bufs):
      b.mul_(momentum).add_(p.grad + wd_M * p)
      p.sub_(lr_M * b)


class TorchGrid(core_bench._TorchEnsemble):
  """All 36 members as one stacked ensemble (core_bench.StackedMLP), per-member lr and
  weight decay; eager or torch.compile'd (forward + backward via AOTAutograd, and the
  SGD step)."""

  def __init__(self, spec):
    t0 = time.perf_counter()
    a = spec["args"]
    pts = grid_points(a["seeds"])
    torch = self._setup({**spec, "seeds": len(pts), "batch": 128})
    torch.manual_seed(0)
    self.import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    shape = (len(pts), 1, 1)
    self.lr_M = torch.tensor([p[0] for p in pts]).reshape(shape)  # default dtype
    self.wd_M = torch.tensor([p[1] for p in pts]).reshape(shape)
    seed_M = torch.tensor([p[2] for p in pts])
    net = core_bench.StackedMLP(torch, len(pts), a["depth"], a["width"], self.x.shape[1],
                                10, torch.Generator().manual_seed(0))
    with torch.no_grad():  # members with the same seed start from the same network
      for p in net.parameters():
        p.copy_(p[seed_M])
    self.net, self.params = net, net.parameters()
    self.bufs = [torch.zeros_like(p) for p in self.params]
    self.count, self.epochs = 0, a["epochs"]

    def loss_fn(x, y):
      return core_bench.stacked_loss(torch, net(x), y)

    def step_opt(lr_M):
      sgd_step(torch, self.params, self.bufs, lr_M, self.wd_M, MOMENTUM)

    if spec["kind"] == "torch-compile":
      loss_fn, step_opt = torch.compile(loss_fn), torch.compile(step_opt)
    self.loss_fn, self.step_opt = loss_fn, step_opt
    if spec.get("grid", True):  # False: built only (tests call step themselves)
      out = self.run(1)
      self.first_s = time.perf_counter() - t0  # build + compile (its imports) + epoch 1
      if self.epochs > 1:
        out = self.run(self.epochs - 1)
      self.total_s = time.perf_counter() - t0
      self.loss = out["loss"]

  def step(self, x, y):
    for p in self.params:
      p.grad = None
    loss = self.loss_fn(x, y)
    loss.backward()
    self.step_opt(self.lr_M * lr_factor(self.count, self.spe, self.epochs))
    self.count += 1
    return loss

  def ready(self):
    return {"import_s": self.import_s, "total_s": self.total_s, "first_epoch_s": self.first_s,
            "steady_s": self.total_s - self.first_s, "loss": self.loss, "runs": self.S,
            "threads": self.torch.get_num_threads(), "torch": self.torch.__version__}


def worker_main(spec_json: str) -> None:
  spec = json.loads(spec_json)
  if spec["kind"].startswith("torch"):
    if spec.get("inductor_cache"):
      os.environ["TORCHINDUCTOR_CACHE_DIR"] = spec["inductor_cache"]  # cold compile
    w = TorchGrid(spec)
  else:
    w = JaxGrid(spec)
  core_bench._emit({"ready": w.ready()})
  for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
      break
    if cmd[0] == "run":
      core_bench._emit(w.run(int(cmd[1])))


# ============================================================================= parent
def parse_args(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--epochs", type=int, default=4, help="epochs of the grid's training")
  ap.add_argument("--seeds", type=int, default=4)
  ap.add_argument("--num_train", type=int, default=4000)
  ap.add_argument("--depth", type=int, default=4)
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--grid-repeats", type=int, default=3, help="fresh-worker grid runs")
  ap.add_argument("--repeats", type=int, default=5, help="steady-state repeats")
  ap.add_argument("--epochs-per-repeat", type=int, default=2)
  ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS + EXTRA)
  ap.add_argument("--jax-devices", type=int, default=None,
                  help="CPU devices of the jax workers (default: one per core, as the CLI)")
  ap.add_argument("--torch-threads", type=int, nargs="+", default=None,
                  help="torch.set_num_threads settings, each a variant (default: 1 and cores)")
  ap.add_argument("--omp-wait-policy", default="PASSIVE",
                  help="OMP_WAIT_POLICY of the torch workers ('' = inherit): with ACTIVE "
                       "(libgomp's default spinning) 2 threads collapse on a loaded machine")
  ap.add_argument("--no-torch", action="store_true")
  ap.add_argument("--quick", action="store_true",
                  help="smoke test: 2 epochs, 512 examples, 1 seed, MLP-2-16, 1 + 2 repeats")
  ap.add_argument("--json", default=None)
  ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  a = ap.parse_args(argv)
  if a.quick:
    a.epochs, a.num_train, a.seeds, a.depth, a.width = 2, 512, 1, 2, 16
    a.grid_repeats, a.repeats, a.epochs_per_repeat = 1, 2, 1
  if a.torch_threads is None:
    a.torch_threads = sorted({1, core_bench.cpu_count()})
  if a.quick:
    a.torch_threads = a.torch_threads[:1]
  return a


def main(argv=None) -> dict:
  a = parse_args(argv)
  if a.worker is not None:
    worker_main(a.worker)
    return {}
  base_env = dict(os.environ)  # before anything imports jaxdepth (it sets XLA_FLAGS)
  use_torch, why = (False, "--no-torch") if a.no_torch else core_bench.torch_available()
  names = [v for v in a.variants if not v.startswith("torch")]
  if use_torch:
    names += [f"{v}/{t}t" for v in a.variants if v.startswith("torch")
              for t in a.torch_threads]
  if not use_torch:
    print(f"PyTorch variants skipped: {why}", flush=True)
  res = {"args": vars(a), "machine": core_bench.machine(base_env),
         "grid": f"{len(LRS)} lr x {len(WDS)} wd x {a.seeds} seeds",
         "torch_skipped": None if use_torch else why, "load_start": core_bench.loadavg()}
  import numpy as np

  from jaxdepth import data
  c = config(LRS, WDS, a.seeds, a.epochs, a.num_train, a.depth, a.width)
  ds = data.subsample(data.load(c), a.num_train, a.num_train // 4)
  res["data"] = {"name": ds.name, "x_train": list(ds.x_train.shape)}
  env = core_bench.child_env(base_env)
  torch_env = dict(env)
  if a.omp_wait_policy:
    torch_env["OMP_WAIT_POLICY"] = a.omp_wait_policy
  grid = {n: [] for n in names}
  steady = {n: [] for n in names}
  loads = []
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "mnist1d.npz")
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
             y_test=ds.y_test)
    procs = {}
    try:
      for r in range(a.grid_repeats):
        loads.append(core_bench.loadavg())
        for n in names:
          kind, _, th = n.partition("/")
          spec = {"kind": kind, "data": path, "threads": int(th[:-1] or 0),
                  "devices": a.jax_devices,
                  "args": {k: getattr(a, k) for k in ("seeds", "epochs", "num_train",
                                                      "depth", "width")},
                  "inductor_cache": tempfile.mkdtemp(dir=tmp, prefix="inductor")}
          p = core_bench.Proc(n, spec, torch_env if th else env, script=__file__)
          info = p.recv()["ready"]
          grid[n].append(info)
          print(f"  grid {r + 1}/{a.grid_repeats} {n:14s} {info['total_s']:6.1f} s "
                f"(first epoch {info['first_epoch_s']:.1f} s) loss {info['loss']:.3f}",
                flush=True)
          if r < a.grid_repeats - 1:
            p.close()
          else:
            procs[n] = p
      for r in range(a.repeats):
        loads.append(core_bench.loadavg())
        for n in names:
          steady[n].append(procs[n].send(f"run {a.epochs_per_repeat}"))
        print(f"  epoch repeat {r + 1}/{a.repeats} load {loads[-1]}", flush=True)
    finally:
      for p in procs.values():
        p.close()
  res["load_per_repeat"] = loads
  res["variants"] = {}
  for n in names:
    per_epoch = [x["seconds"] / a.epochs_per_repeat for x in steady[n]]
    res["variants"][n] = {
        "grid_total_s": [g["total_s"] for g in grid[n]],
        "grid_first_epoch_s": [g["first_epoch_s"] for g in grid[n]],
        "import_s": [g["import_s"] for g in grid[n]],
        "grid_total_median_s": statistics.median(g["total_s"] for g in grid[n]),
        "epoch_s": per_epoch, "epoch_median_s": statistics.median(per_epoch),
        "grid_loss": grid[n][-1]["loss"], "last_loss": steady[n][-1]["loss"],
        "info": grid[n][-1]}
  ref = res["variants"].get("jax-one")
  if ref:
    for v in res["variants"].values():
      v["grid_total_over_jax_one"] = v["grid_total_median_s"] / ref["grid_total_median_s"]
      v["epoch_over_jax_one"] = v["epoch_median_s"] / ref["epoch_median_s"]
      v["epoch_over_jax_one_per_repeat"] = [
          t / j for t, j in zip(v["epoch_s"], ref["epoch_s"])]
  res["load_end"] = core_bench.loadavg()
  print_summary(res)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1, default=float)
  return res


def print_summary(res):
  a = res["args"]
  print(f"\n{res['grid']} = {len(LRS) * len(WDS) * a['seeds']} runs, MLP-{a['depth']}-"
        f"{a['width']}, MNIST-1D {a['num_train']}, {a['epochs']} epochs; "
        f"{res['machine'].get('cpu_model', '?')}, load {res['load_start']} -> "
        f"{res['load_end']}")
  print(f"  {'variant':14s} {'grid total (s)':>15s} {'/ jax-one':>9s} "
        f"{'epoch (s)':>10s} {'/ jax-one':>9s}  loss")
  for n, v in res["variants"].items():
    print(f"  {n:14s} {v['grid_total_median_s']:15.2f} "
          f"{v.get('grid_total_over_jax_one', float('nan')):9.2f} "
          f"{v['epoch_median_s']:10.3f} {v.get('epoch_over_jax_one', float('nan')):9.2f}"
          f"  {v['last_loss']:.3f}")
  if res["torch_skipped"]:
    print(f"  PyTorch variants skipped: {res['torch_skipped']}")


if __name__ == "__main__":
  main()
