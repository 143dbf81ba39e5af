"""What bounds jaxdepth's training step at H = 256 on the CPU (issue 25, item 4).

  .venv/bin/python benchmarks/step_profile.py --widths 256 --devices 2 1 --json /tmp/sp.json

The core benchmark's setting (MLP-8-H, 8 seeds vmapped, MNIST-1D 4000 train generated
locally, batch 128, SGD momentum 0.9, weight decay 5e-4; `core_bench.JaxWorker`, set up
as ``jaxdepth train`` sets it up: ``devices.use_cpu_cores`` before jax starts). One
process per device count. For each it reports:

  epoch          median seconds of one training epoch of all seeds (--repeats);
  trace          one profiler trace of --trace-epochs epochs, XLA operation time by kind
                 (matmuls = dot / ynn fusions; element-wise and reductions; copies,
                 transposes, slices; loop control), summed over the device threads,
                 and the top operations;
  matmul rate    the step's matmul FLOPs (core_bench.matmul_flops_per_step) over the
                 traced matmul time per device: how fast the dots run inside the step;
  alone          the same dots (forward, weight and input gradients of one hidden layer,
                 all seeds, sharded over the devices like the runs) jitted alone;
  torch dots     the same dots in PyTorch (``bmm``) where torch is installed;
  gemm           a 2048^3 float32 matmul on all cores (the peak the other rows are a
                 fraction of).

No thresholds are asserted; the output is a markdown summary and --json.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import core_bench  # no jax at import

KINDS = (("matmuls", r"(ynn_fusion|dot|convolution|custom-call)"),
         ("loop control", r"^while"),
         ("copies, transposes, slices", r"copy|transpose|concatenate|slice"),
         ("element-wise and reductions", r""))


def kind_of(op: str) -> str:
  return next(k for k, pat in KINDS if re.search(pat, op))


def op_times(call, calls: int):
  """One profiler trace of ``calls`` calls of ``call()``: (seconds per call by XLA
  operation, events per operation), from the trace's ``hlo_op`` events."""
  import jax
  tmp = tempfile.mkdtemp(prefix="jaxdepth_trace_")
  jax.profiler.start_trace(tmp)
  for _ in range(calls):
    call()
  jax.profiler.stop_trace()
  (path,) = glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)[-1:]
  by_op, count = collections.Counter(), collections.Counter()
  for e in json.load(gzip.open(path))["traceEvents"]:
    op = (e.get("args") or {}).get("hlo_op")
    if e.get("ph") == "X" and op:
      by_op[op] += e.get("dur", 0) / 1e6 / calls
      count[op] += 1
  return by_op, count


def trace(call, calls: int) -> dict:
  """XLA operation time of ``calls`` calls of ``call()`` by kind and by operation."""
  by_op, count = op_times(call, calls)
  kinds = collections.Counter()
  for op, s in by_op.items():
    kinds[kind_of(op)] += s
  return {"seconds_by_kind": dict(kinds), "top": [
      {"op": op, "seconds": s, "per_call": count[op] // calls, "kind": kind_of(op)}
      for op, s in by_op.most_common(12)]}


def median_call_s(f, repeats: int, inner: int = 20, sync=lambda out: out) -> float:
  """Median over ``repeats`` of the mean seconds of ``inner`` back-to-back calls of
  ``f()`` (``sync`` waits for the last result), after one warm-up call."""
  sync(f())
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(inner):
      out = f()
    sync(out)
    ts.append((time.perf_counter() - t0) / inner)
  return statistics.median(ts)


def dots_alone(seeds: int, width: int, batch: int, repeats: int) -> float:
  """GFLOP/s of one hidden layer's three dots (forward, weight and input gradient) for
  all ``seeds``, jitted alone, the seed axis sharded over every device as the trainer
  shards its runs: what XLA's matmul kernels give at these shapes on this setup."""
  import jax
  import jax.numpy as jnp
  from jax.sharding import AxisType, NamedSharding, PartitionSpec
  mesh = jax.make_mesh((jax.device_count(),), ("s",), axis_types=(AxisType.Auto,))
  put = lambda a: jax.device_put(a, NamedSharding(mesh, PartitionSpec("s")))
  k = jax.random.split(jax.random.key(0), 3)
  h = put(jax.random.normal(k[0], (seeds, batch, width)))
  w = put(jax.random.normal(k[1], (seeds, width, width)))
  g = put(jax.random.normal(k[2], (seeds, batch, width)))
  f = jax.jit(lambda h, w, g: (jnp.einsum("sbi,sio->sbo", h, w),
                               jnp.einsum("sbi,sbo->sio", h, g),
                               jnp.einsum("sbo,sio->sbi", g, w)))
  sec = median_call_s(lambda: f(h, w, g), repeats, sync=jax.block_until_ready)
  return 3 * 2 * seeds * batch * width * width / sec / 1e9


def torch_dots(seeds: int, width: int, batch: int, repeats: int) -> float | None:
  """The same three dots as :func:`dots_alone` in PyTorch (``bmm``, its default
  threads): what PyTorch's matmul kernels give at these shapes (None without torch)."""
  try:
    import torch
  except ImportError:
    return None
  g0 = torch.Generator().manual_seed(0)
  h, w, g = (torch.randn(seeds, *s, generator=g0) for s in
             ((batch, width), (width, width), (batch, width)))
  f = lambda: (torch.bmm(h, w), torch.bmm(h.transpose(1, 2), g),
               torch.bmm(g, w.transpose(1, 2)))
  f()
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(20):
      f()
    ts.append((time.perf_counter() - t0) / 20)
  return 3 * 2 * seeds * batch * width * width / statistics.median(ts) / 1e9


def worker(spec: dict) -> dict:
  w = core_bench.JaxWorker(spec)
  import jax
  epochs = [w.run(1)["seconds"] for _ in range(spec["repeats"])]
  tr = trace(lambda: w.run(1), spec["trace_epochs"])
  ndev = jax.device_count()
  steps = w.prog.steps_per_epoch
  flops = steps * spec["seeds"] * core_bench.matmul_flops_per_step(
      spec["depth"], spec["width"], 40, 10, spec["batch"])
  total = sum(tr["seconds_by_kind"].values())
  return {
      "devices": ndev, "epoch_s": statistics.median(epochs), "epochs_s": epochs,
      "steps_per_epoch": steps, "matmul_gflop_per_epoch": flops / 1e9,
      "achieved_gflops": flops / statistics.median(epochs) / 1e9,
      "trace": tr, "shares": {k: v / total for k, v in tr["seconds_by_kind"].items()},
      "dots_alone_gflops": dots_alone(spec["seeds"], spec["width"], spec["batch"],
                                      spec["repeats"]),
  }


def markdown(res: dict) -> str:
  lines = ["| H | devices | epoch | achieved GFLOP/s (% peak) | matmuls | element-wise, "
           "reductions | copies | loop | the step's dots alone |", "|" + "---|" * 9]
  peak = res["gemm_gflops"]
  for r in res["rows"]:
    s = r["shares"]
    lines.append(
        f"| {r['width']} | {r['devices']} | {r['epoch_s'] * 1e3:.0f} ms | "
        f"{r['achieved_gflops']:.0f} ({100 * r['achieved_gflops'] / peak:.0f}%) | "
        f"{100 * s.get('matmuls', 0):.0f}% | "
        f"{100 * s.get('element-wise and reductions', 0):.0f}% | "
        f"{100 * s.get('copies, transposes, slices', 0):.0f}% | "
        f"{100 * s.get('loop control', 0):.0f}% | {r['dots_alone_gflops']:.0f} GFLOP/s |")
  lines.append(f"\nGEMM peak (2048^3 float32, all cores): {peak:.0f} GFLOP/s")
  for w, t in res.get("torch_dots_gflops", {}).items():
    if t:
      lines.append(f"\nThe same dots in PyTorch (bmm, all threads), H = {w}, "
                   f"{res['args_seeds']} seeds: {t:.0f} GFLOP/s")
  for r in res["rows"]:
    lines.append(f"\nTop operations, H = {r['width']}, {r['devices']} device(s) "
                 "(seconds per epoch, summed over devices):")
    for t in r["trace"]["top"]:
      lines.append(f"- {t['op']} ({t['kind']}, {t['per_call']} per epoch): "
                   f"{t['seconds'] * 1e3:.1f} ms")
  return "\n".join(lines)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--widths", type=int, nargs="+", default=[256])
  p.add_argument("--devices", type=int, nargs="+", default=[2, 1])
  p.add_argument("--depth", type=int, default=8)
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--trace-epochs", type=int, default=2)
  p.add_argument("--json", default="")
  p.add_argument("--worker", default="", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  if a.worker:
    print("RESULT " + json.dumps(worker(json.loads(a.worker))), flush=True)
    return {}
  import numpy as np

  from jaxdepth.data import embedded, subsample
  ds = subsample(embedded.mnist1d(4000, 1000), 4000, 1000)
  res = {"machine": core_bench.machine(dict(os.environ)), "rows": [],
         "args_seeds": a.seeds,
         "load_start": core_bench.loadavg()}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "mnist1d.npz")
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
             y_test=ds.y_test)
    for width in a.widths:
      for ndev in a.devices:
        spec = {"devices": ndev, "data": path, "depth": a.depth, "width": width,
                "seeds": a.seeds, "batch": 128, "lr": 0.05, "analysis_batch": 1000,
                "repeats": a.repeats, "trace_epochs": a.trace_epochs}
        out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                             capture_output=True, text=True, check=True,
                             env=core_bench.child_env(dict(os.environ)))
        row = json.loads(next(ln[7:] for ln in out.stdout.splitlines()
                              if ln.startswith("RESULT ")))
        res["rows"].append(row | {"width": width})
  res["torch_dots_gflops"] = {w: torch_dots(a.seeds, w, 128, a.repeats) for w in a.widths}
  g = core_bench.Gemm({"gemm_n": 2048}).run(5)
  res["gemm_gflops"] = max(v for k, v in g.items() if k.endswith("gflops"))
  res["load_end"] = core_bench.loadavg()
  print(markdown(res))
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)
  return res


if __name__ == "__main__":
  main()
