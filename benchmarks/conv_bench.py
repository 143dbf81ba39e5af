"""CONV-L-H training throughput and peak memory: jaxdepth vs a PyTorch per-seed loop.

  /work/venv/bin/python benchmarks/conv_bench.py --json /tmp/conv_bench.json
  /work/venv/bin/python benchmarks/conv_bench.py --quick          # smoke run, ~1 minute

Same data (scikit-learn digits, 1,347 training images 8x8x1, offline), same model
(CONV-L-H: 3x3/2 stem conv, L-1 3x3 convs, BN, ReLU, global average pool, linear head),
same SGD (momentum 0.9, coupled weight decay 5e-4, constant lr, fixed batch, epoch
remainder dropped):

  jaxdepth      all S seeds in one vmapped, jitted epoch program (the trainer's
                ``train.build_program(...).epoch``), convs as patch matmuls (the CPU
                default, ``model.conv_impl='auto'``);
  jaxdepth-xla  the same with native XLA convolutions (``conv_impl='xla'``), to show
                why 'patches' is the CPU default;
  torch         torch.nn + torch.optim.SGD, one seed after another (the usual loop).

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


# ----------------------------------------------------------------------------- workers
def jax_worker(a) -> dict:
  import jax
  import numpy as np

  from jaxdepth import data
  from jaxdepth.configs import digits_conv
  from jaxdepth.papers.minimal_depth import train

  c = digits_conv.get_config()
  c.depth, c.width, c.num_seeds, c.batch_size = a.depth, a.width, a.seeds, a.batch
  c.schedule, c.warmup_epochs, c.lr, c.progress, c.plots = "constant", 0.0, a.lr, False, False
  c.model.conv_impl = a.impl
  train.validate(c)
  ds = data.load(c)
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

  from jaxdepth.data import tfds as tfds_data

  torch.set_num_threads(a.threads)
  ds = tfds_data.load_digits(seed=0, test_fraction=0.25)
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


# ------------------------------------------------------------------------------ driver
def spawn(kind: str, a, **over) -> dict:
  args = dict(depth=a.depth, width=a.width, seeds=a.seeds, batch=a.batch, lr=a.lr,
              epochs=a.epochs, repeats=a.repeats, threads=a.threads, impl="auto")
  args.update(over)
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind]
  for k, v in args.items():
    cmd += [f"--{k}", str(v)]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user's run
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
  if out.returncode != 0:
    return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
  return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg():
  return [round(v, 2) for v in os.getloadavg()]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--worker", choices=("jax", "torch"), default=None)
  p.add_argument("--depth", type=int, default=6)
  p.add_argument("--width", type=int, default=32)
  p.add_argument("--widths", type=int, nargs="*", default=[32, 64])
  p.add_argument("--seeds", type=int, default=4)
  p.add_argument("--seed-counts", type=int, nargs="*", default=[1, 4])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--epochs", type=int, default=2, help="epochs per timed repeat")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
  p.add_argument("--torch-threads", type=int, nargs="*",
                 default=sorted({os.cpu_count() or 1, 1}, reverse=True),
                 help="torch.set_num_threads settings, one torch row each")
  p.add_argument("--impl", default="auto")
  p.add_argument("--no-xla", action="store_true", help="skip the native-conv jax row")
  p.add_argument("--quick", action="store_true")
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  if a.worker:
    res = jax_worker(a) if a.worker == "jax" else torch_worker(a)
    print(json.dumps(res))
    return res
  if a.quick:
    a.widths, a.seed_counts, a.epochs, a.repeats, a.no_xla = [16], [2], 1, 1, True
    a.torch_threads = a.torch_threads[:1]
  import jax
  res = {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                     "python": platform.python_version(), "jax": jax.__version__},
         "args": vars(a), "load_start": loadavg(), "points": []}
  try:
    import torch
    res["machine"]["torch"] = torch.__version__
  except ImportError:
    res["machine"]["torch"] = None
  for w in a.widths:
    for s in a.seed_counts:
      pt = {"depth": a.depth, "width": w, "seeds": s, "load_before": loadavg()}
      print(f"[conv_bench] CONV-{a.depth}-{w}, {s} seeds ...", flush=True)
      pt["jax"] = spawn("jax", a, width=w, seeds=s)
      if res["machine"]["torch"]:
        for th in a.torch_threads:
          pt[f"torch{th}"] = spawn("torch", a, width=w, seeds=s, threads=th)
      if not a.no_xla and s == 1:
        pt["jax_xla"] = spawn("jax", a, width=w, seeds=s, impl="xla", epochs=1, repeats=1)
      j = pt["jax"]
      ts = [pt[f"torch{th}"] for th in a.torch_threads if f"torch{th}" in pt]
      ts = [t for t in ts if "error" not in t]
      if ts and "error" not in j:
        pt["speedup_jax_over_best_torch"] = j["steps_per_s"] / max(
            t["steps_per_s"] for t in ts)
      res["points"].append(pt)
      print(json.dumps(pt), flush=True)
  res["load_end"] = loadavg()
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)
  print_table(res)
  return res


def print_table(res):
  print("\n| model | seeds | framework | steps/s | first epoch (s) | peak RSS (MiB) | "
        "peak - baseline (MiB) |")
  print("|---|---|---|---|---|---|---|")
  for pt in res["points"]:
    for name in ["jax", "jax_xla"] + sorted(k for k in pt if k.startswith("torch")):
      r = pt.get(name)
      if not r:
        continue
      if "error" in r:
        print(f"| CONV-{pt['depth']}-{pt['width']} | {pt['seeds']} | {name} | error: "
              f"{r['error']} | | | |")
        continue
      label = {"jax": "jaxdepth (patches)", "jax_xla": "jaxdepth (native XLA conv)"}.get(
          name, f"PyTorch loop ({r.get('threads')} threads)")
      print(f"| CONV-{pt['depth']}-{pt['width']} | {pt['seeds']} | {label} | "
            f"{r['steps_per_s']:.1f} | {r['first_epoch_s']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['peak_rss_mib'] - r['rss_baseline_mib']:.0f} |")
  print(f"load average start/end: {res['load_start']} / {res['load_end']}")


if __name__ == "__main__":
  main()
