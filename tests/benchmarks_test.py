"""Smoke test of benchmarks/core_bench.py --quick: runs, writes JSON with the expected
keys and positive finite numbers. No timing thresholds (the machine is shared)."""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _positive_finite(x, what):
  assert isinstance(x, (int, float)) and not isinstance(x, bool), (what, x)
  assert math.isfinite(x) and x > 0, (what, x)


def test_core_bench_quick(tmp_path):
  out = tmp_path / "core.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "core_bench.py"), "--quick",
       "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  res = json.loads(out.read_text())
  for k in ("args", "machine", "targets", "data", "throughput", "compile", "load_start",
            "load_end", "torch_skipped"):
    assert k in res, k
  assert res["machine"]["cpu_count"] >= 1
  assert res["data"]["num_train"] > 0 and res["data"]["num_test"] > 0

  assert len(res["throughput"]) >= 1
  for p in res["throughput"]:
    assert p["steps_per_repeat"] == p["seeds"] * p["steps_per_epoch"] * p["epochs_per_repeat"]
    j = p["jax"]
    for k in ("median_s", "steps_per_s", "epoch_s", "first_epoch_s", "build_init_s"):
      _positive_finite(j[k], f"jax.{k}")
    assert len(j["repeat_s"]) == p["repeats"]
    assert math.isfinite(j["final_loss"])
    a = p["analysis"]
    for k in ("median_s", "first_call_s", "epoch_s", "analysis_over_epoch"):
      _positive_finite(a[k], f"analysis.{k}")
    assert a["layers"] == p["depth"]
    if res["torch_skipped"] is None:  # torch importable: baseline must be there
      t = p["torch"]
      for k in ("median_s", "steps_per_s", "warmup_one_seed_epoch_s"):
        _positive_finite(t[k], f"torch.{k}")
      _positive_finite(p["speedup_jax_over_torch"], "speedup")
      _positive_finite(p["speedup_jax_over_best_torch"], "speedup_best")
      assert math.isfinite(t["final_loss"])
    else:
      assert p["torch"] is None and p["speedup_jax_over_torch"] is None
      assert "skipped" in proc.stdout

  c = res["compile"]
  assert set(c["by_depth"]) == {str(d) for d in res["args"]["compile_depths"]}
  for d, r in c["by_depth"].items():
    for k in ("lower_s", "compile_s", "total_s"):
      _positive_finite(r[k], f"compile[{d}].{k}")
  _positive_finite(c["ratio_deepest_over_shallowest"], "compile ratio")
