"""CONV-L-H training throughput and peak memory: jaxdepth vs a PyTorch per-seed loop.

  /work/venv/bin/python benchmarks/conv_bench.py --json /tmp/conv_bench.json
  /work/venv/bin/python benchmarks/conv_bench.py --quick          # smoke run, ~1 minute
  /work/venv/bin/python benchmarks/conv_bench.py --dataset fashion_mnist --num-train 10000 \
      --depth 4 --widths 32 --seed-counts 1 4 --torch-threads 1 2 --rounds 3   # issue 25

Data: ``--dataset digits`` (default) or ``fashion_mnist`` (Debian's IDX files, read
offline by jaxdepth.data, zero-padded 28 -> 32 and normalized as the trainer does; the
first ``--num-train`` images, batch 128). Both frameworks train on the same arrays.

Same data (scikit-learn digits, 1,347 training images 8x8x1, offline), same model
(CONV-L-H: 3x3/2 stem conv, L-1 3x3 convs, BN, ReLU, global average pool, linear head),
same SGD (momentum 0.9, coupled weight decay 5e-4, constant lr, fixed batch, epoch
remainder dropped):

  jaxdepth      all S seeds in one vmapped, jitted epoch program (the trainer's
                ``train.build_program(...).epoch``), convs as patch matmuls (the CPU
                default, ``model.conv_impl='auto'``);
  jaxdepth-xla  the same with native XLA convolutions (``conv_impl='xla'``), to show
                why 'patches' is the CPU default;
  torch         torch.nn + torch.optim.SGD, one seed after another (the usual loop);
  torch-stacked the S seeds as ONE network: every conv a grouped conv (groups=S, the
                seeds' channels side by side), BatchNorm2d over the S*H channels
                (per-seed batch statistics), a bmm head, one SGD; eager and under
                torch.compile (``--torch-stacked``; each seed its own data order);
  gemm          the measured fp32 GEMM peak (core_bench.Gemm: numpy BLAS and XLA,
                all cores), for the achieved GFLOP/s column.

Rounds (``--rounds``): every variant runs once per round, A, B, C, ..., one at a time;
the row is the median over rounds, and ratios are taken round by round.

Every measurement runs in its own subprocess, so the peak resident memory
(``ru_maxrss``) belongs to that framework alone; the RSS after imports is reported
too, and "peak - baseline" is the training's own footprint. Throughput = optimizer
steps over all seeds per second, median over repeats, compile/warm-up excluded (the
first epoch is reported separately). No thresholds are asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mib() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def conv_flops_per_step(depth: int, width: int, spatial: tuple, c_in: int,
                        batch: int) -> int:
  """Conv FLOPs of one SGD step of one seed (3x3 kernels): forward, weight gradients,
  input gradients of every layer but the stem (nothing needs d loss / d x)."""
  out = [-(-n // 2) for n in spatial]  # stride-2 stem: ceil(n / 2)
  hw = out[0] * (out[1] if len(out) > 1 else 1)
  k = 3 ** len(spatial)
  stem = batch * hw * k * c_in * width
  hid = batch * hw * k * width * width
  return 2 * (2 * stem + 3 * (depth - 1) * hid)


def config_for(a):
  from jaxdepth.configs import digits_conv, fashion_mnist_conv
  if a.dataset == "fashion_mnist":
    c = fashion_mnist_conv.get_config()
    c.data.download, c.data.num_train, c.data.num_test = False, a.num_train, 1000
    return c
  return digits_conv.get_config()


def load_data(a):
  """(config, Dataset) with the trainer's preprocessing and subset."""
  from jaxdepth import data
  c = config_for(a)
  ds = data.load(c)
  if a.dataset == "fashion_mnist":
    ds = data.subsample(ds, a.num_train, c.data.num_test)
  return c, ds


# ----------------------------------------------------------------------------- workers
def jax_worker(a) -> dict:
  import jax
  import numpy as np

  from jaxdepth.papers.minimal_depth import train

  c, ds = load_data(a)
  c.depth, c.width, c.num_seeds, c.batch_size = a.depth, a.width, a.seeds, a.batch
  c.schedule, c.warmup_epochs, c.lr, c.progress, c.plots = "constant", 0.0, a.lr, False, False
  c.model.conv_impl = a.impl
  train.validate(c)
  base = rss_mib()
  prog = train.build_program(c, ds, a.depth, a.width)
  keys = train.make_keys(c.seed, train.run_grid(c))
  state, labels, _ = prog.init(keys)
  x = jax.numpy.asarray(ds.x_train)
  epoch = 0

  def run(n):
    nonlocal state, epoch
    t0 = time.perf_counter()
    for _ in range(n):
      state, loss = prog.epoch(state, labels, keys, epoch, x)
      epoch += 1
    jax.block_until_ready((state, loss))
    return time.perf_counter() - t0, float(np.mean(np.asarray(loss["loss"])))

  first, _ = run(1)  # compile + one epoch
  reps = [run(a.epochs) for _ in range(a.repeats)]
  med = statistics.median(r[0] for r in reps)
  steps = a.seeds * prog.steps_per_epoch * a.epochs
  return {"steps_per_s": steps / med, "median_s": med, "repeat_s": [r[0] for r in reps],
          "first_epoch_s": first, "compile_s": first - med / a.epochs,
          "final_loss": reps[-1][1], "steps_per_epoch": prog.steps_per_epoch,
          "rss_baseline_mib": base, "peak_rss_mib": peak_mib()}


def torch_worker(a) -> dict:
  import numpy as np
  import torch

  torch.set_num_threads(a.threads)
  _, ds = load_data(a)
  x = torch.from_numpy(np.ascontiguousarray(ds.x_train.transpose(0, 3, 1, 2)))  # NCHW
  y = torch.from_numpy(ds.y_train.astype(np.int64))
  base = rss_mib()
  nn = torch.nn

  def model():
    layers, c_in = [], x.shape[1]
    for i in range(a.depth):
      layers += [nn.Conv2d(c_in, a.width, 3, 2 if i == 0 else 1, 1, bias=False),
                 nn.BatchNorm2d(a.width), nn.ReLU()]
      c_in = a.width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(a.width, ds.num_classes))

  spe = len(x) // a.batch

  def run_seed(seed, epochs):
    torch.manual_seed(seed)
    net = model().train()
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    loss = None
    for _ in range(epochs):
      perm = torch.randperm(len(x))
      for i in range(spe):
        idx = perm[i * a.batch:(i + 1) * a.batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return float(loss.detach())

  t0 = time.perf_counter()
  run_seed(0, 1)  # warm-up
  first = time.perf_counter() - t0
  reps = []
  for _ in range(a.repeats):
    t0 = time.perf_counter()
    losses = [run_seed(s, a.epochs) for s in range(a.seeds)]
    reps.append((time.perf_counter() - t0, float(np.mean(losses))))
  med = statistics.median(r[0] for r in reps)
  steps = a.seeds * spe * a.epochs
  return {"steps_per_s": steps / med, "median_s": med, "repeat_s": [r[0] for r in reps],
          "first_epoch_s": first, "final_loss": reps[-1][1], "steps_per_epoch": spe,
          "threads": a.threads, "rss_baseline_mib": base, "peak_rss_mib": peak_mib()}


def torch_stacked_worker(a) -> dict:
  """S seeds as one network of grouped convs (see the module docstring)."""
  import numpy as np
  import torch

  torch.set_num_threads(a.threads)
  _, ds = load_data(a)
  S, H = a.seeds, a.width
  x = torch.from_numpy(np.ascontiguousarray(ds.x_train.transpose(0, 3, 1, 2)))  # NCHW
  y = torch.from_numpy(ds.y_train.astype(np.int64))
  base = rss_mib()
  nn = torch.nn
  c_in, classes = x.shape[1], ds.num_classes

  class Stacked(nn.Module):
    def __init__(self):
      super().__init__()
      layers, cin = [], c_in
      for i in range(a.depth):
        layers += [nn.Conv2d(S * cin, S * H, 3, 2 if i == 0 else 1, 1, groups=S, bias=False),
                   nn.BatchNorm2d(S * H), nn.ReLU()]
        cin = H
      self.body = nn.Sequential(*layers)
      self.w = nn.Parameter(torch.randn(S, H, classes) / H ** 0.5)
      self.b = nn.Parameter(torch.zeros(S, 1, classes))

    def forward(self, x_SxBxCxHxW):
      s_, b_ = x_SxBxCxHxW.shape[:2]
      h = x_SxBxCxHxW.transpose(0, 1).reshape(b_, s_ * c_in, *x_SxBxCxHxW.shape[3:])
      z = self.body(h).mean((2, 3)).reshape(b_, s_, H).transpose(0, 1)  # (S, B, H)
      return torch.baddbmm(self.b, z, self.w)  # (S, B, classes)

  torch.manual_seed(0)
  net = Stacked().train()
  opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
  ce = nn.CrossEntropyLoss(reduction="sum")

  def step(xb, yb):
    opt.zero_grad(set_to_none=True)
    logits = net(xb)
    loss = ce(logits.reshape(-1, classes), yb.reshape(-1)) / yb.shape[1]  # sum of means
    loss.backward()
    opt.step()
    return loss

  if a.compile:
    step = torch.compile(step)
  spe = len(x) // a.batch

  def run(epochs):
    loss = None
    for _ in range(epochs):
      perm = torch.stack([torch.randperm(len(x)) for _ in range(S)])  # (S, N)
      for i in range(spe):
        idx = perm[:, i * a.batch:(i + 1) * a.batch]
        loss = step(x[idx], y[idx])
    return float(loss.detach()) / S

  t0 = time.perf_counter()
  run(1)  # warm-up (and compile)
  first = time.perf_counter() - t0
  reps = []
  for _ in range(a.repeats):
    t0 = time.perf_counter()
    loss = run(a.epochs)
    reps.append((time.perf_counter() - t0, loss))
  med = statistics.median(r[0] for r in reps)
  steps = S * spe * a.epochs
  return {"steps_per_s": steps / med, "median_s": med, "repeat_s": [r[0] for r in reps],
          "first_epoch_s": first, "steps_per_epoch": spe, "threads": a.threads,
          "compiled": bool(a.compile), "final_loss": reps[-1][1], "rss_baseline_mib": base,
          "peak_rss_mib": peak_mib()}


def gemm_worker(a) -> dict:
  import core_bench
  g = core_bench.Gemm({"gemm_n": a.gemm_n, "gemm_jax": True})
  reps = [g.run(3)["gflops"] for _ in range(a.repeats)]
  return {"gflops": statistics.median(reps), "repeat_gflops": reps, **g.ready()}


# ------------------------------------------------------------------------------ driver
def spawn(kind: str, a, **over) -> dict:
  args = dict(depth=a.depth, width=a.width, seeds=a.seeds, batch=a.batch, lr=a.lr,
              epochs=a.epochs, repeats=a.repeats, threads=a.threads, impl="auto",
              dataset=a.dataset, num_train=a.num_train, compile=0, gemm_n=a.gemm_n)
  args.update(over)
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind]
  for k, v in args.items():
    cmd += [f"--{k.replace('_', '-')}", str(v)]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user's run
  env["PYTHONPATH"] = os.path.join(ROOT, "benchmarks") + os.pathsep + ROOT
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
  if out.returncode != 0:
    return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
  return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg():
  return [round(v, 2) for v in os.getloadavg()]


WORKERS = {"jax": lambda a: jax_worker(a), "torch": lambda a: torch_worker(a),
           "torch_stacked": lambda a: torch_stacked_worker(a), "gemm": lambda a: gemm_worker(a)}


def row_variants(a, s: int) -> list[tuple[str, str, dict]]:
  """(row name, worker, overrides) of one (width, seeds) point."""
  out = [("jax", "jax", {})]
  if not a.no_xla and s == 1:
    out.append(("jax_xla", "jax", {"impl": "xla", "epochs": 1, "repeats": 1}))
  if a.has_torch:
    out += [(f"torch{th}", "torch", {"threads": th}) for th in a.torch_threads]
    if a.torch_stacked and s > 1:
      for comp in a.stacked_compile:
        out += [(f"torch_stacked{'_compile' if comp else ''}{th}", "torch_stacked",
                 {"threads": th, "compile": comp}) for th in a.torch_threads]
  return out


def summarize(pt: dict, names: list[str], gemm_gflops: float | None) -> None:
  """Medians over rounds, ratios to the fastest torch route round by round, GFLOP/s."""
  for n in names:
    rs = [r for r in pt["rounds"][n] if "error" not in r]
    if not rs:
      pt[n] = pt["rounds"][n][-1]
      continue
    med = statistics.median(r["steps_per_s"] for r in rs)
    pt[n] = {**rs[-1], "steps_per_s": med, "round_steps_per_s": [r["steps_per_s"] for r in rs],
             "gflops": med * pt["flop_per_seed_step"] / 1e9,
             "epoch_s": pt["seeds"] * rs[-1]["steps_per_epoch"] / med}
    if gemm_gflops:
      pt[n]["gemm_fraction"] = pt[n]["gflops"] / gemm_gflops
  ts = [n for n in names if n.startswith("torch") and "error" not in pt[n]]
  if ts:
    best = max(ts, key=lambda n: pt[n]["steps_per_s"])
    pt["best_torch"] = best
    for n in names:
      if "error" in pt[n]:
        continue
      per = [j["steps_per_s"] / t["steps_per_s"] for j, t in
             zip(pt["rounds"][n], pt["rounds"][best]) if "error" not in j and "error" not in t]
      pt[n]["ratio_to_best_torch"] = statistics.median(per) if per else None
    if "jax" in pt and "error" not in pt["jax"]:
      pt["speedup_jax_over_best_torch"] = pt["jax"]["ratio_to_best_torch"]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--worker", choices=tuple(WORKERS), default=None)
  p.add_argument("--dataset", choices=("digits", "fashion_mnist"), default="digits")
  p.add_argument("--num-train", type=int, default=10000, help="fashion_mnist: first N images")
  p.add_argument("--depth", type=int, default=6)
  p.add_argument("--width", type=int, default=32)
  p.add_argument("--widths", type=int, nargs="*", default=[32, 64])
  p.add_argument("--seeds", type=int, default=4)
  p.add_argument("--seed-counts", type=int, nargs="*", default=[1, 4])
  p.add_argument("--batch", type=int, default=0, help="0: 64 (digits), 128 (fashion_mnist)")
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--epochs", type=int, default=2, help="epochs per timed repeat")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all rows")
  p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
  p.add_argument("--torch-threads", type=int, nargs="*",
                 default=sorted({os.cpu_count() or 1, 1}, reverse=True),
                 help="torch.set_num_threads settings, one torch row each")
  p.add_argument("--no-torch-stacked", dest="torch_stacked", action="store_false")
  p.add_argument("--stacked-compile", type=int, nargs="*", default=[0, 1],
                 help="torch-stacked rows: 0 eager, 1 torch.compile")
  p.add_argument("--compile", type=int, default=0)
  p.add_argument("--gemm-n", type=int, default=2048, help="0: no GEMM peak row")
  p.add_argument("--impl", default="auto")
  p.add_argument("--no-xla", action="store_true", help="skip the native-conv jax row")
  p.add_argument("--quick", action="store_true")
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  a.batch = a.batch or (128 if a.dataset == "fashion_mnist" else 64)
  if a.worker:
    res = WORKERS[a.worker](a)
    print(json.dumps(res))
    return res
  if a.quick:
    a.widths, a.seed_counts, a.epochs, a.repeats, a.no_xla = [16], [2], 1, 1, True
    a.torch_threads, a.stacked_compile, a.gemm_n = a.torch_threads[:1], [0], 256
    a.num_train = min(a.num_train, 512)
  import jax
  res = {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                     "python": platform.python_version(), "jax": jax.__version__},
         "args": vars(a), "load_start": loadavg(), "points": []}
  try:
    import torch
    res["machine"]["torch"] = torch.__version__
  except ImportError:
    res["machine"]["torch"] = None
  a.has_torch = bool(res["machine"]["torch"])
  try:
    import subprocess as sp
    for line in sp.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
      if line.startswith("Model name:"):
        res["machine"]["cpu_model"] = line.split(":", 1)[1].strip()
  except OSError:
    pass
  spatial, c_in = ((32, 32), 1) if a.dataset == "fashion_mnist" else ((8, 8), 1)
  gemm = []
  for w in a.widths:
    for s in a.seed_counts:
      pt = {"depth": a.depth, "width": w, "seeds": s, "load_before": loadavg(),
            "flop_per_seed_step": conv_flops_per_step(a.depth, w, spatial, c_in, a.batch),
            "rounds": {}, "load_per_round": []}
      rows = row_variants(a, s)
      for r in range(a.rounds):
        pt["load_per_round"].append(loadavg())
        print(f"[conv_bench] CONV-{a.depth}-{w}, {s} seeds, round {r + 1}/{a.rounds} "
              f"load {pt['load_per_round'][-1]}", flush=True)
        for name, kind, over in rows:
          pt["rounds"].setdefault(name, []).append(
              spawn(kind, a, **{"width": w, "seeds": s, **over}))
        if a.gemm_n:
          g = spawn("gemm", a)
          gemm.append(g.get("gflops"))
          pt.setdefault("gemm_rounds", []).append(g)
      peak = statistics.median([g for g in gemm if g]) if any(gemm) else None
      pt["gemm_gflops"] = peak
      summarize(pt, [r[0] for r in rows], peak)
      res["points"].append(pt)
      print(json.dumps({k: v for k, v in pt.items() if k != "rounds"}), flush=True)
  res["load_end"] = loadavg()
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)
  print_table(res)
  return res


LABELS = {"jax": "jaxdepth (patches)", "jax_xla": "jaxdepth (native XLA conv)"}


def label(name: str, r: dict) -> str:
  if name in LABELS:
    return LABELS[name]
  if name.startswith("torch_stacked"):
    return (f"PyTorch stacked, grouped conv{' (torch.compile)' if r.get('compiled') else ''}"
            f" ({r.get('threads')} threads)")
  return f"PyTorch loop ({r.get('threads')} threads)"


def print_table(res):
  print("\n| model | seeds | route | steps/s | s/epoch | x fastest torch | GFLOP/s | "
        "% GEMM peak | first epoch (s) | peak RSS (MiB) |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for pt in res["points"]:
    for name in pt["rounds"]:
      r = pt.get(name)
      if not r:
        continue
      head = f"| CONV-{pt['depth']}-{pt['width']} | {pt['seeds']} |"
      if "error" in r:
        print(f"{head} {name} | error: {r['error']} | | | | | | |")
        continue
      ratio = r.get("ratio_to_best_torch")
      frac = r.get("gemm_fraction")
      print(f"{head} {label(name, r)} | {r['steps_per_s']:.1f} | {r['epoch_s']:.2f} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} | {r['gflops']:.1f} | "
            f"{'' if frac is None else f'{100 * frac:.0f}%'} | {r['first_epoch_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} |")
    if pt.get("gemm_gflops"):
      print(f"GEMM peak (median over rounds): {pt['gemm_gflops']:.1f} GFLOP/s")
  print(f"load average start/end: {res['load_start']} / {res['load_end']}")


if __name__ == "__main__":
  main()
