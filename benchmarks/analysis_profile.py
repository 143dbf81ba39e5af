"""Where the per-layer analysis spends its time (issue 25, item 1), against one epoch.

  .venv/bin/python benchmarks/analysis_profile.py --widths 64 256 --json /tmp/ap.json

The trainer's program (``train.build_program``: MLP-D-H, S seeds vmapped, the core
benchmark's setting: 40 inputs, 4000 train / 1000 test Gaussian examples, 10 classes,
batch 128, analysis batch 1000) is built once per width. Timed, interleaved (repeat r
of every part before repeat r+1), median of --repeats:

  epoch      one training epoch of all seeds (``program.epoch``);
  analysis   ``program.analyze`` as the trainer calls it (device program + host finalize);
  device     the jitted analysis program alone, with the copy of its outputs to the host;
  forward    an eval-mode forward pass of every seed over the analysed examples (train +
             test, in the analysis batches): the floor of any analysis that looks at
             every example once;
  eig        the host float64 eigenvalues of the Gram matrices (the effective ranks);
  nc         the host NC1/NC2 finalisation from the C x C class statistics.

Then a floor (``floor``): what any analysis with these metrics must do at least, each
part timed alone on this machine: the forward pass's dots at the analysis shapes
(batched over the seeds, jitted alone; the forward's matmul FLOPs over that rate), one
write and one read of every layer's embeddings of every example (at the rate of a
jitted element-wise pass over an array of that size), and the host eigenvalues of the
Gram matrices (the ``eig`` part above). No element-wise layer work, no statistics.

Then one profiler trace each of the device program and of the epoch groups XLA's
operations into matmuls (dot / ynn fusions), the embedding cache (dynamic-update-slice,
the broadcast that initialises it) and other copies / transposes / element-wise
fusions, as shares of the traced operation time. No thresholds are asserted; the
output is a markdown table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpu_bench  # its config record and synthetic data (no jax at import)
import step_profile  # its trace reader and timer (no jax at import)


def trace_shares(call, calls=3) -> dict:
  """Shares of the traced XLA operation time of ``call()`` (which waits for its
  result) by kind."""
  call()
  by_op, _ = step_profile.op_times(call, calls)
  kinds = collections.Counter()
  for op, sec in by_op.items():
    if re.match(r"(ynn_fusion|dot|convolution|custom-call)", op):
      kind = "matmuls"
    elif "dynamic-update-slice" in op or op.startswith("wrapped_broadcast"):
      kind = "embedding cache (write, initialise)"
    elif re.search(r"copy|transpose|concatenate|slice", op):
      kind = "copies, transposes, concatenations"
    elif op.startswith("while"):
      kind = "loop control"
    else:
      kind = "element-wise and reductions"
    kinds[kind] += sec
  total = sum(kinds.values())
  return {k: v / total for k, v in kinds.most_common()} | {"traced_ms_per_call":
                                                           total * 1e3}


def profile_width(a, width) -> dict:
  import jax
  import jax.numpy as jnp

  from jaxdepth.measure import analysis
  from jaxdepth.papers.minimal_depth import train
  cfg = gpu_bench.jax_config("mlp", a.depth, width, a.seeds, batch=128, lr=0.05,
                             analysis_batch=1000)
  ds = gpu_bench.synthetic((40,), a.num_train, a.num_test)
  place = train.placement(cfg, a.seeds)
  prog = train.build_program(cfg, ds, a.depth, width, place)
  keys = place.pad(train.make_keys(0, train.run_grid(cfg)))
  state, labels, chosen = prog.init(keys)
  x = jnp.asarray(ds.x_train)
  net = prog.network
  tr = analysis.batch_pad(ds.x_train, ds.y_train, cfg.analysis_batch)
  te = analysis.batch_pad(ds.x_test, ds.y_test, cfg.analysis_batch)
  an = analysis.make_analyzer(net, 10, tuple(cfg.eps), cfg.rank_samples, cache=True,
                              classifier=(net.num_layers - 1, net.classifier))

  def run(st, y, c):
    v = {"params": st.params, "batch_stats": st.batch_stats}
    return an(v, tr, analysis.relabel(tr, y), analysis.relabel(tr, c), te)
  device = jax.jit(jax.vmap(run))
  fwd = analysis._forward(net)

  def forward(st):
    v = {"params": st.params, "batch_stats": st.batch_stats}
    out = [jax.lax.map(lambda xb: fwd(v, xb), d.x) for d in (tr, te)]
    return jax.tree.map(lambda t: t.sum(), out)
  forward = jax.jit(jax.vmap(forward))
  epoch_i = [0]

  def epoch():
    nonlocal state
    state, out = prog.epoch(state, labels, keys, epoch_i[0], x)
    epoch_i[0] += 1
    jax.block_until_ready((state, out))
  raw = jax.device_get(device(state, labels, chosen))
  grams = {k: raw[k] for k in ("gram_train", "gram_test")}
  ncst = {k: v for k, v in raw.items() if k.startswith("nc_")}
  parts = {
      "epoch": epoch,
      "analysis": lambda: prog.analyze(state, labels, chosen),
      "device": lambda: jax.device_get(device(state, labels, chosen)),
      "forward": lambda: jax.block_until_ready(forward(state)),
      "eig": lambda: [analysis.host_eigvalsh(g) for g in grams.values()],
      "nc": lambda: analysis._nc_host(dict(ncst)),
  }
  for f in parts.values():  # compile and warm up
    f()
  times = {k: [] for k in parts}
  for _ in range(a.repeats):
    for k, f in parts.items():
      t0 = time.perf_counter()
      f()
      times[k].append(time.perf_counter() - t0)
  med = {k: statistics.median(v) for k, v in times.items()}
  out = {"width": width, "seconds": med, "repeats": times,
         "over_epoch": {k: v / med["epoch"] for k, v in med.items()},
         "floor": floor(a, width, a.num_train + a.num_test, med["eig"])}
  if a.trace:
    out["trace"] = trace_shares(parts["device"])
    out["trace_epoch"] = trace_shares(epoch)
  return out


def _best(f, *args, n=10) -> float:
  """Median seconds of one call of ``f(*args)`` (waited for), over ``n``."""
  import jax
  return step_profile.median_call_s(lambda: f(*args), n, inner=1,
                                    sync=jax.block_until_ready)


def floor(a, width, n_examples, eig_s, batch=1000) -> dict:
  """The floor above (seconds): forward dots + embedding traffic + host eigenvalues."""
  import jax
  import jax.numpy as jnp
  k1, k2 = jax.random.split(jax.random.key(0))
  h = jax.random.normal(k1, (a.seeds, batch, width))
  w = jax.random.normal(k2, (a.seeds, width, width))
  dot_s = _best(jax.jit(lambda h, w: jnp.einsum("sbi,sio->sbo", h, w)), h, w)
  dot_gflops = 2 * a.seeds * batch * width * width / dot_s / 1e9
  dims = [40] + [width] * a.depth + [10]
  flops = 2 * a.seeds * n_examples * sum(x * y for x, y in zip(dims[:-1], dims[1:]))
  emb = jnp.ones((a.seeds, a.depth, n_examples, width), jnp.float32)
  rw_s = _best(jax.jit(lambda x: x * 1.0001 + 0.5), emb)  # one read + one write
  return {"dot_gflops": dot_gflops, "forward_dots_s": flops / dot_gflops / 1e9,
          "embedding_mb": emb.nbytes / 1e6, "write_read_s": rw_s,
          "rw_gbps": 2 * emb.nbytes / rw_s / 1e9, "eig_s": eig_s,
          "total_s": flops / dot_gflops / 1e9 + rw_s + eig_s}


def markdown(res) -> str:
  m = res["machine"]
  lines = [f"\n## analysis_profile ({m['cpu']}; jax {m['jax']}, {m['backend']}; "
           f"load {m['load']})\n",
           "| width | epoch | analysis | = device program | + host eig | + host nc | "
           "forward only | analysis / epoch | forward / epoch |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in res["rows"]:
    s, o = r["seconds"], r["over_epoch"]
    lines.append(f"| {r['width']} | {1e3 * s['epoch']:.0f} ms | {1e3 * s['analysis']:.0f} ms "
                 f"| {1e3 * s['device']:.0f} ms | {1e3 * s['eig']:.0f} ms | "
                 f"{1e3 * s['nc']:.0f} ms | {1e3 * s['forward']:.0f} ms | "
                 f"**{o['analysis']:.2f}** | {o['forward']:.2f} |")
  lines += ["", "| width | forward dots (rate alone) | embeddings: one write + one read "
            "(rate) | host eig | floor | floor / epoch |", "|---|---|---|---|---|---|"]
  for r in res["rows"]:
    f = r["floor"]
    lines.append(f"| {r['width']} | {1e3 * f['forward_dots_s']:.0f} ms "
                 f"({f['dot_gflops']:.0f} GFLOP/s) | {1e3 * f['write_read_s']:.0f} ms "
                 f"({f['embedding_mb']:.0f} MB, {f['rw_gbps']:.1f} GB/s) | "
                 f"{1e3 * f['eig_s']:.0f} ms | {1e3 * f['total_s']:.0f} ms | "
                 f"**{f['total_s'] / r['seconds']['epoch']:.2f}** |")
  for r in res["rows"]:
    for key, what in (("trace", "analysis device program"), ("trace_epoch", "epoch")):
      if key in r:
        t = dict(r[key])
        ms = t.pop("traced_ms_per_call")
        lines.append(f"\nWidth {r['width']}, {what} by kind of XLA operation "
                     f"(traced {ms:.0f} ms per call): " + "; ".join(
                         f"{k} {100 * v:.0f}%" for k, v in t.items()))
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--widths", type=int, nargs="+", default=[64, 256])
  p.add_argument("--depth", type=int, default=8)
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--num-train", type=int, default=4000)
  p.add_argument("--num-test", type=int, default=1000)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--trace", action=argparse.BooleanOptionalAction, default=True)
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  import jax
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  res = {"args": vars(a), "machine": {"cpu": cpu, "jax": jax.__version__,
                                      "backend": jax.default_backend(),
                                      "load": " ".join(f"{x:.1f}" for x in os.getloadavg())},
         "rows": [profile_width(a, w) for w in a.widths]}
  res["machine"]["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
  text = markdown(res)
  print(text)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1, default=float)
  return res


if __name__ == "__main__":
  main()
