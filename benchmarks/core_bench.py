"""Core benchmark: vmapped jaxdepth trainer vs a plain PyTorch loop, compile time vs
depth, and the cost of the full per-layer analysis (issue 2, "Performance").

  /work/venv/bin/python benchmarks/core_bench.py --json bench_core.json
  /work/venv/bin/python benchmarks/core_bench.py --quick --json /tmp/q.json   # CI smoke

Measured in ONE process on the same machine, same data (MNIST-1D, generated locally by
jaxdepth.data.mnist1d), same MLP-L-H (Linear -> BN -> ReLU blocks, linear read-out),
same SGD (momentum 0.9, coupled weight decay 5e-4, constant lr, batch 128, epoch
remainder dropped):

  (a) jaxdepth: all S seeds in one vmapped program (train.build_program(...).epoch);
  (b) PyTorch: torch.nn MLP + torch.optim.SGD, one seed after another;
  (c) compile time (lower + compile) of one jitted epoch program at several depths;
  (d) one full per-layer analysis (program.analyze: every layer, train and test) vs one
      training epoch of the same S seeds.

Throughput = total optimizer steps over all seeds / second, excluding compile and
warm-up (reported separately); median over repeats. jaxdepth and PyTorch repeats are
interleaved so that background load affects both alike. No timing thresholds are
asserted anywhere; the targets of the issue are only printed next to the numbers.

Runtime: about 2-4 minutes on a 2-core CPU (full); a few seconds with --quick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import common  # noqa: E402
from jaxdepth import data  # noqa: E402
from jaxdepth.papers.minimal_depth import train

TARGETS = {"speedup_vs_torch": 2.0, "compile_ratio_max": 1.5, "analysis_over_epoch_max": 0.5}


# ----------------------------------------------------------------------------- setup
def bench_config(depth: int, width: int, seeds: int, lr: float, batch: int, n_train: int,
                 n_test: int, analysis_batch: int = 1000):
  """The shared 'collapse' config: constant lr (no warm-up/decay), so the PyTorch loop
  needs no scheduler and both sides do exactly the same optimizer work."""
  c = common.base()
  c.dataset = "mnist1d"
  c.data.num_train = n_train
  c.data.num_test = n_test
  c.depth, c.width = depth, width
  c.num_seeds = seeds
  c.label_noise = (0.0,)
  c.batch_size = batch
  c.lr = lr
  c.momentum = 0.9
  c.weight_decay = 5e-4
  c.warmup_epochs = 0.0
  c.schedule = "constant"
  c.analysis_batch = analysis_batch
  c.progress = False
  c.plots = False
  train.validate(c)
  return c


def load_data(n_train: int, n_test: int) -> data.Dataset:
  ds = data.mnist1d(n_train, n_test)
  return data.subsample(ds, n_train, n_test)


def loadavg() -> list[float]:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return [float("nan")] * 3


def block(tree):
  jax.block_until_ready(tree)
  return tree


# --------------------------------------------------------------------------- jaxdepth
class JaxRunner:
  """All seeds of one (depth, width) as the trainer's compiled epoch program."""

  def __init__(self, config, ds: data.Dataset, depth: int, width: int):
    self.prog = train.build_program(config, ds, depth, width)
    self.keys = train.make_keys(config.seed, train.run_grid(config))
    self.state, self.labels, self.chosen = block(self.prog.init(self.keys))
    self.x = jnp.asarray(ds.x_train)
    self.seeds = config.num_seeds
    self.epoch_idx = 0

  def epochs(self, n: int) -> float:
    """Run ``n`` epochs (dispatched back to back, one sync at the end); seconds."""
    t0 = time.perf_counter()
    for _ in range(n):
      self.state, loss = self.prog.epoch(self.state, self.labels, self.keys,
                                         self.epoch_idx, self.x)
      self.epoch_idx += 1
    block((self.state, loss))
    self.last_loss = float(np.mean(np.asarray(loss)))
    return time.perf_counter() - t0

  def analyze(self) -> float:
    t0 = time.perf_counter()
    block(self.prog.analyze(self.state, self.labels, self.chosen))
    return time.perf_counter() - t0


def compile_time(config, ds: data.Dataset, depth: int, width: int) -> dict:
  """lower + compile of one jitted (vmapped) epoch program, from a fresh build so no
  in-process cache is hit."""
  prog = train.build_program(config, ds, depth, width)
  keys = train.make_keys(config.seed, train.run_grid(config))
  state, labels, _ = prog.init(keys)
  x = jnp.asarray(ds.x_train)
  t0 = time.perf_counter()
  lowered = prog.epoch.lower(state, labels, keys, 0, x)
  t1 = time.perf_counter()
  lowered.compile()
  t2 = time.perf_counter()
  return {"lower_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0}


# ---------------------------------------------------------------------------- PyTorch
def torch_available() -> tuple[bool, str]:
  try:
    import torch  # noqa: F401
  except Exception as e:  # ImportError or a broken install
    return False, f"torch not importable ({type(e).__name__}: {e})"
  return True, ""


class TorchRunner:
  """The usual research loop: one seed after another, torch.nn + torch.optim.SGD."""

  def __init__(self, ds: data.Dataset, depth: int, width: int, seeds: int, lr: float,
               batch: int, threads: int, device: str = "cpu"):
    import torch
    self.torch = torch
    self.threads = threads
    self.device = torch.device(device)
    self.x = torch.from_numpy(np.ascontiguousarray(ds.x_train.reshape(len(ds.x_train), -1)))
    self.x = self.x.to(self.device)
    self.y = torch.from_numpy(ds.y_train.astype(np.int64)).to(self.device)
    self.depth, self.width, self.seeds, self.lr, self.batch = depth, width, seeds, lr, batch
    self.steps_per_epoch = len(ds.x_train) // batch
    self.num_classes = ds.num_classes

  def model(self):
    nn = self.torch.nn
    layers, d_in = [], self.x.shape[1]
    for _ in range(self.depth):
      layers += [nn.Linear(d_in, self.width), nn.BatchNorm1d(self.width), nn.ReLU()]
      d_in = self.width
    layers.append(nn.Linear(d_in, self.num_classes))
    return nn.Sequential(*layers)

  def run_seed(self, seed: int, epochs: int) -> float:
    """Build, then train one seed for ``epochs`` epochs; returns the last loss."""
    torch = self.torch
    torch.set_num_threads(self.threads)  # global in torch: set before every run
    torch.manual_seed(seed)
    net = self.model().to(self.device)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, b = len(self.x), self.batch
    loss = None
    for _ in range(epochs):
      perm = torch.randperm(n, device=self.device)
      for i in range(self.steps_per_epoch):
        idx = perm[i * b:(i + 1) * b]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(self.x[idx]), self.y[idx])
        loss.backward()
        opt.step()
    return float(loss.detach())

  def sweep(self, epochs: int) -> float:
    """All seeds one after another, ``epochs`` each; seconds."""
    t0 = time.perf_counter()
    for s in range(self.seeds):
      self.last_loss = self.run_seed(s, epochs)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------ parts
def throughput_point(ds, depth, width, seeds, args, use_torch: bool) -> dict:
  """(a) and (b) at one (depth, width), repeats interleaved; (d) on the same program."""
  config = bench_config(depth, width, seeds, args.lr, args.batch, args.num_train,
                        args.num_test, args.analysis_batch)
  spe = len(ds.x_train) // args.batch
  steps = seeds * spe * args.epochs  # optimizer steps per timed repeat (all seeds)
  out = {"depth": depth, "width": width, "seeds": seeds, "steps_per_epoch": spe,
         "epochs_per_repeat": args.epochs, "steps_per_repeat": steps,
         "repeats": args.repeats, "load_before": loadavg()}

  t0 = time.perf_counter()
  jr = JaxRunner(config, ds, depth, width)
  t_build = time.perf_counter() - t0
  t_first = jr.epochs(1)  # compile + one epoch
  jr.epochs(1)  # warm-up
  trs, t_torch_warm = {}, {}
  if use_torch:
    for th in args.torch_threads:
      trs[th] = TorchRunner(ds, depth, width, seeds, args.lr, args.batch, th,
                            args.torch_device)
      t0 = time.perf_counter()
      trs[th].run_seed(0, 1)  # warm-up: one epoch of one seed (allocator, kernels)
      t_torch_warm[th] = time.perf_counter() - t0

  jax_s, torch_s = [], {th: [] for th in trs}
  for _ in range(args.repeats):
    jax_s.append(jr.epochs(args.epochs))
    for th, tr in trs.items():
      torch_s[th].append(tr.sweep(args.epochs))
  epoch_s = statistics.median(jax_s) / args.epochs
  out["jax"] = {"repeat_s": jax_s, "median_s": statistics.median(jax_s),
                "steps_per_s": steps / statistics.median(jax_s),
                "epoch_s": epoch_s, "build_init_s": t_build,
                "first_epoch_s": t_first, "compile_s": t_first - epoch_s,
                "final_loss": jr.last_loss}
  out["torch"] = None
  out["speedup_jax_over_torch"] = None
  if trs:
    by = {}
    for th, tr in trs.items():
      med = statistics.median(torch_s[th])
      by[str(th)] = {"threads": th, "repeat_s": torch_s[th], "median_s": med,
                     "steps_per_s": steps / med,
                     "warmup_one_seed_epoch_s": t_torch_warm[th],
                     "final_loss": tr.last_loss,
                     "speedup_jax_over_torch": out["jax"]["steps_per_s"] * med / steps,
                     "speedup_per_repeat": [t / j for j, t in zip(jax_s, torch_s[th])]}
    out["torch_by_threads"] = by
    # Primary baseline: torch.set_num_threads(first of --torch-threads, default all
    # cores); the ratio against the fastest thread setting is reported as well.
    out["torch"] = by[str(args.torch_threads[0])]
    out["speedup_jax_over_torch"] = out["torch"]["speedup_jax_over_torch"]
    best = max(by.values(), key=lambda r: r["steps_per_s"])
    out["torch_best_threads"] = best["threads"]
    out["speedup_jax_over_best_torch"] = best["speedup_jax_over_torch"]

  # (d) full per-layer analysis on the trained state vs one training epoch
  t_first_an = jr.analyze()
  an_s = [jr.analyze() for _ in range(args.repeats)]
  an_med = statistics.median(an_s)
  out["analysis"] = {"repeat_s": an_s, "median_s": an_med, "first_call_s": t_first_an,
                     "compile_s": t_first_an - an_med, "epoch_s": epoch_s,
                     "analysis_over_epoch": an_med / epoch_s,
                     "layers": depth, "num_train": len(ds.x_train),
                     "num_test": len(ds.x_test)}
  out["load_after"] = loadavg()
  return out


def compile_sweep(ds, args) -> dict:
  """(c) lower+compile time of the epoch program vs depth (median of repeats)."""
  rows = {}
  for depth in args.compile_depths:
    config = bench_config(depth, args.width, args.seeds, args.lr, args.batch,
                          args.num_train, args.num_test)
    reps = [compile_time(config, ds, depth, args.width) for _ in range(args.compile_repeats)]
    rows[str(depth)] = {k: statistics.median([r[k] for r in reps]) for k in reps[0]}
    rows[str(depth)]["repeat_total_s"] = [r["total_s"] for r in reps]
  d0, d1 = str(min(args.compile_depths)), str(max(args.compile_depths))
  return {"width": args.width, "seeds": args.seeds, "by_depth": rows,
          "ratio_deepest_over_shallowest": rows[d1]["total_s"] / rows[d0]["total_s"],
          "ratio_depths": [int(d1), int(d0)], "load_after": loadavg()}


# --------------------------------------------------------------------------- reporting
def machine() -> dict:
  info = {"platform": platform.platform(), "python": platform.python_version(),
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "jax_devices": [str(d) for d in jax.devices()]}
  try:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    for line in lscpu.splitlines():
      if line.startswith("Model name:"):
        info["cpu_model"] = line.split(":", 1)[1].strip()
  except (OSError, subprocess.SubprocessError):
    pass
  try:
    with open("/proc/meminfo") as f:
      kb = int(f.readline().split()[1])
    info["ram_gib"] = round(kb / 2**20, 1)
  except (OSError, ValueError, IndexError):
    pass
  try:
    import torch
    info["torch"] = torch.__version__
  except Exception:  # noqa: BLE001
    info["torch"] = None
  return info


def print_summary(res: dict) -> None:
  print(f"\nload average before/after: {res['load_start']} / {res['load_end']}")
  for p in res["throughput"]:
    j = p["jax"]
    line = (f"MLP-{p['depth']}-{p['width']}, {p['seeds']} seeds: jaxdepth "
            f"{j['steps_per_s']:.0f} steps/s (compile {j['compile_s']:.2f} s)")
    print(line)
    for th, t in (p.get("torch_by_threads") or {}).items():
      print(f"  torch ({th} threads) {t['steps_per_s']:.0f} steps/s, ratio "
            f"{t['speedup_jax_over_torch']:.2f}x (target >= {TARGETS['speedup_vs_torch']}x)")
    a = p["analysis"]
    print(f"  full analysis {a['median_s'] * 1e3:.1f} ms = {a['analysis_over_epoch']:.2f} "
          f"epochs (epoch {a['epoch_s'] * 1e3:.1f} ms; target < "
          f"{TARGETS['analysis_over_epoch_max']})")
  c = res["compile"]
  for d, r in c["by_depth"].items():
    print(f"compile depth {d}: lower {r['lower_s']:.2f} s + compile {r['compile_s']:.2f} s"
          f" = {r['total_s']:.2f} s")
  print(f"compile ratio depth {c['ratio_depths'][0]}/{c['ratio_depths'][1]}: "
        f"{c['ratio_deepest_over_shallowest']:.2f} (target <= "
        f"{TARGETS['compile_ratio_max']})")
  if res.get("torch_skipped"):
    print(f"PyTorch baseline skipped: {res['torch_skipped']}")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true",
                 help="tiny sizes for a CI smoke run (seconds); torch optional")
  p.add_argument("--json", default="", help="write all results to this JSON file")
  p.add_argument("--depth", type=int, default=8)
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--widths", type=int, nargs="*", default=None,
                 help="throughput points (default: WIDTH 256)")
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--num-train", type=int, default=4000)
  p.add_argument("--num-test", type=int, default=1000)
  p.add_argument("--epochs", type=int, default=2, help="epochs per timed repeat")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--compile-depths", type=int, nargs="+", default=[4, 16, 64])
  p.add_argument("--compile-repeats", type=int, default=3)
  p.add_argument("--torch-threads", type=int, nargs="+",
                 default=sorted({os.cpu_count() or 1, 1}, reverse=True),
                 help="torch.set_num_threads settings, each timed; the first is the "
                      "primary baseline (default: all cores, then 1)")
  p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
  p.add_argument("--analysis-batch", type=int, default=1000,
                 help="batch size of the streamed analysis (config.analysis_batch)")
  p.add_argument("--torch-device", default="cpu",
                 help="device of the PyTorch loop: cpu (default) or cuda (GPU machines)")
  args = p.parse_args(argv)
  if args.quick:
    args.depth, args.width, args.seeds = 3, 16, 2
    args.widths = [16]
    args.num_train, args.num_test, args.batch = 256, 128, 64
    args.epochs, args.repeats = 1, 2
    args.compile_depths, args.compile_repeats = [2, 3], 1
    args.torch_threads = [1]
  if args.widths is None:
    args.widths = [args.width, 256] if args.width != 256 else [256]
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  use_torch, why = (False, "--no-torch") if args.no_torch else torch_available()
  if not use_torch:
    print(f"PyTorch baseline (b) skipped: {why}", flush=True)
  res = {"args": vars(args), "machine": machine(), "targets": TARGETS,
         "torch_threads": args.torch_threads if use_torch else None,
         "torch_skipped": None if use_torch else why, "load_start": loadavg()}
  t0 = time.perf_counter()
  ds = load_data(args.num_train, args.num_test)
  res["data"] = {"name": ds.name, "num_train": len(ds.x_train), "num_test": len(ds.x_test),
                 "generate_s": time.perf_counter() - t0}
  res["throughput"] = []
  for w in args.widths:
    print(f"[throughput] MLP-{args.depth}-{w}, {args.seeds} seeds ...", flush=True)
    res["throughput"].append(throughput_point(ds, args.depth, w, args.seeds, args,
                                              use_torch))
  print(f"[compile] depths {args.compile_depths} ...", flush=True)
  res["compile"] = compile_sweep(ds, args)
  res["load_end"] = loadavg()
  print_summary(res)
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
      json.dump(res, f, indent=1, default=float)
  return res


if __name__ == "__main__":
  main()
