"""benchmarks/core_bench.py: the --quick smoke run writes JSON with the expected keys and
positive finite numbers (no timing thresholds: the machine is shared) and the FLOP count
is exact. That the jax and PyTorch variants train the same thing is checked against one
float64 numpy reference in tests/sgd_reference_test.py."""

import json
import math
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import conv_bench  # noqa: E402
import core_bench  # noqa: E402


def _positive_finite(x, what):
  assert isinstance(x, (int, float)) and not isinstance(x, bool), (what, x)
  assert math.isfinite(x) and x > 0, (what, x)


def test_matmul_flops_per_step_counts_every_dot():
  # MLP-2-3 on 4 inputs, 5 classes, batch 7: dots 7x4x3, 7x3x3, 7x3x5 (MACs 84, 63, 105);
  # forward + weight gradients (all) + input gradients (all but the first).
  assert core_bench.matmul_flops_per_step(2, 3, 4, 5, 7) == 2 * (252 + 252 + 168)


def test_conv_flops_per_step_counts_every_conv():
  # CONV-2-4 on 8x8x1, batch 2: stem 3x3/2 -> 4x4 (MACs 2*16*9*1*4 = 1152), one 3x3 conv
  # 4 -> 4 (2*16*9*4*4 = 4608); forward + weight gradients, input gradient of the second.
  assert conv_bench.conv_flops_per_step(2, 4, (8, 8), 1, 2) == 2 * (2 * 1152 + 3 * 4608)


def test_core_bench_quick(tmp_path):
  out = tmp_path / "core.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "core_bench.py"), "--quick",
       "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  res = json.loads(out.read_text())
  for k in ("args", "machine", "targets", "data", "throughput", "compile", "load_start",
            "load_end", "torch_skipped"):
    assert k in res, k
  assert res["data"]["num_train"] > 0 and res["data"]["num_test"] > 0
  (p,) = res["throughput"]
  assert p["steps_per_repeat"] == p["seeds"] * p["steps_per_epoch"] * p["epochs_per_repeat"]
  assert len(p["load_per_repeat"]) == p["repeats"]
  _positive_finite(p["gemm"]["median_gflops"], "gemm")
  names = set(p["variants"])
  assert {"jax-1", "jax-2"} <= names
  assert p["variants"]["jax-2"]["devices"] == 2 and p["variants"]["jax-2"]["sharded"]
  assert p["variants"]["jax-1"]["devices"] == 1
  for n, v in p["variants"].items():
    for k in ("median_s", "steps_per_s", "epoch_s", "matmul_gflops", "gemm_fraction"):
      _positive_finite(v[k], f"{n}.{k}")
    assert len(v["repeat_s"]) == p["repeats"]
    assert math.isfinite(v["final_loss"]), n
    if n.startswith("jax-"):
      _positive_finite(v["analysis"]["analysis_over_epoch"], f"{n}.analysis")
  # Same program, same seeds: 1 and 2 devices give the same losses.
  np.testing.assert_allclose(p["variants"]["jax-1"]["losses"],
                             p["variants"]["jax-2"]["losses"], rtol=1e-4)
  if res["torch_skipped"] is None:
    assert {"torch-stacked/1t", "torch-loop/1t"} <= names
    _positive_finite(p["speedup_best_jax_over_best_torch"], "speedup")
  else:
    assert p["best_torch"] is None and "skipped" in proc.stdout
  c = res["compile"]
  assert set(c["by_depth"]) == {str(d) for d in res["args"]["compile_depths"]}
  _positive_finite(c["ratio_deepest_over_shallowest"], "compile ratio")


def test_analysis_profile_quick(tmp_path):
  """The analysis profile runs at a tiny size and accounts for every part it times;
  the traced operation kinds are shares of one whole."""
  import analysis_profile
  out = tmp_path / "ap.json"
  res = analysis_profile.main(["--widths", "8", "--depth", "3", "--seeds", "2",
                               "--num-train", "200", "--num-test", "64", "--repeats", "2",
                               "--json", str(out)])
  (row,) = res["rows"]
  assert set(row["seconds"]) == {"epoch", "analysis", "device", "forward", "eig", "nc"}
  assert all(len(v) == 2 and min(v) > 0 for v in row["repeats"].values())
  shares = {k: v for k, v in row["trace"].items() if k != "traced_ms_per_call"}
  assert "matmuls" in shares and math.isclose(sum(shares.values()), 1.0, rel_tol=1e-9)
  assert json.loads(out.read_text())["rows"][0]["width"] == 8
  f = row["floor"]  # the floor's parts: every embedding of every example, the eig timed
  assert f["embedding_mb"] == 2 * 3 * (200 + 64) * 8 * 4 / 1e6
  assert f["eig_s"] == row["seconds"]["eig"]
  assert math.isclose(f["total_s"], f["forward_dots_s"] + f["write_read_s"] + f["eig_s"])


def test_step_profile_quick(tmp_path):
  """The step profile runs at a tiny width in its own worker: the matmul FLOPs are the
  core benchmark's count for every step of the epoch, the kinds are shares of one."""
  import step_profile
  res = step_profile.main(["--widths", "8", "--depth", "2", "--seeds", "2", "--devices",
                           "1", "--repeats", "1", "--trace-epochs", "1", "--json",
                           str(tmp_path / "sp.json")])
  (row,) = res["rows"]
  assert row["devices"] == 1 and row["steps_per_epoch"] == 4000 // 128
  assert row["matmul_gflop_per_epoch"] == 31 * 2 * core_bench.matmul_flops_per_step(
      2, 8, 40, 10, 128) / 1e9
  assert math.isclose(sum(row["shares"].values()), 1.0, rel_tol=1e-9)
  assert row["epoch_s"] > 0 and row["dots_alone_gflops"] > 0
