"""Depth x init-scale x seed grid of deep matrix-sensing runs: jaxdepth vs a NumPy loop.

  python benchmarks/incremental_bench.py [--depths 1 2 3 4] [--scales ...] [--seeds 8]
      [--d 50] [--m 1000] [--steps 1000] [--baseline_runs 8]

jaxdepth trains every (seed, init scale) run of a depth in one compiled, vmapped
program (one compile per depth; the time includes compilation).  The baseline
trains the same runs one at a time in a plain NumPy loop (float64, hand-written
gradients, the same SVD tracking every 50 steps).  The baseline's time per run does
not depend on which run it is, so it is timed on ``--baseline_runs`` runs and
reported per run; both sides report runs per second for ``--steps`` steps each.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import matrix_sensing as ms
from jaxdepth.papers.incremental import metrics, models, runner


def numpy_run(a_MxDD, y_M, w0_NxDxD, lr, steps, record_every=50, k=5):
  """One run of full-batch GD on mean (<A_i, W> - y_i)^2, W = W_1 ... W_N."""
  w = [np.array(x) for x in w0_NxDxD]
  n, d, m = len(w), w[0].shape[0], len(y_M)
  svals = []
  for t in range(steps):
    pre = [np.eye(d)]  # W_1 ... W_{j-1}
    for j in range(n):
      pre.append(pre[-1] @ w[j])
    post = [np.eye(d)]  # W_{j+1} ... W_N, built from the right
    for j in range(n - 1, -1, -1):
      post.append(w[j] @ post[-1])
    post = post[::-1]
    r = a_MxDD @ pre[-1].reshape(-1) - y_M
    g = (2.0 / m) * (a_MxDD.T @ r).reshape(d, d)
    w = [w[j] - lr * (pre[j].T @ g @ post[j + 1].T) for j in range(n)]
    if (t + 1) % record_every == 0:
      prod = np.linalg.multi_dot(w) if n > 1 else w[0]
      svals.append(np.linalg.svd(prod, compute_uv=False)[:k])
  prod = np.linalg.multi_dot(w) if n > 1 else w[0]
  return w, float(np.mean((a_MxDD @ prod.reshape(-1) - y_M) ** 2))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
  p.add_argument("--scales", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--d", type=int, default=50)
  p.add_argument("--m", type=int, default=1000)
  p.add_argument("--steps", type=int, default=1000)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--baseline_runs", type=int, default=8)
  args = p.parse_args()
  targets = (12.0, 6.0, 4.0, 3.0)
  n_runs = len(args.depths) * len(args.scales) * args.seeds
  print(f"machine: {platform.processor() or platform.machine()}, {jax.devices()[0].platform}, "
        f"jax {jax.__version__}; grid {len(args.depths)} depths x {len(args.scales)} scales x "
        f"{args.seeds} seeds = {n_runs} runs, d={args.d}, m={args.m}, {args.steps} steps, float64")
  with jax.enable_x64(True):
    w_star = jnp.asarray(ms.teacher(args.d, targets))
    keys_d = jax.random.split(jax.random.key(1), args.seeds)
    keys_i = jax.random.split(jax.random.key(0), args.seeds)
    data = jax.vmap(lambda k: ms.make_data(k, args.d, args.m, w_star))(keys_d)
    jax.block_until_ready(data)
    thr = metrics.thresholds(targets, k=5)
    t0 = time.perf_counter()
    final = {}
    for n in args.depths:
      res = runner.train(ms.sensing_problem(args.d, n, "gaussian", 5), data, keys_i,
                         args.scales, thr, lr=args.lr, steps=args.steps, record_every=50,
                         log_every=50, snapshots=True)
      final[n] = res
    t_jax = time.perf_counter() - t0
    # Baseline: the same runs (same data and initial factors), one at a time in NumPy.
    a_np, y_np = np.asarray(data.a_MxDD), np.asarray(data.y_M)
    todo = [(n, s, i) for n in args.depths for s in range(args.seeds)
            for i in range(len(args.scales))]
    step = max(1, len(todo) // args.baseline_runs)
    todo = todo[::step][: args.baseline_runs]
    t0 = time.perf_counter()
    for n, s, i in todo:
      w0 = np.asarray(models.deep_matrix_init(keys_i[s], args.d, n, args.scales[i]).w_NxDxD)
      _, loss = numpy_run(a_np[s], y_np[s], w0, args.lr, args.steps)
      ref = final[n].loss_SxIxT[s, i, -1]
      assert abs(loss - ref) <= 1e-6 * (1 + abs(ref)), (n, s, i, loss, ref)
    t_np = (time.perf_counter() - t0) / len(todo)
  rps_jax = n_runs / t_jax
  rps_np = 1.0 / t_np
  print(f"jaxdepth vmapped: {t_jax:.1f} s for {n_runs} runs (incl. {len(args.depths)} compiles)"
        f" -> {rps_jax:.3f} runs/s")
  print(f"NumPy loop: {t_np:.2f} s per run (timed on {len(todo)} runs; final losses match)"
        f" -> {rps_np:.3f} runs/s")
  print(f"speed-up: {rps_jax / rps_np:.2f}x")


if __name__ == "__main__":
  main()
