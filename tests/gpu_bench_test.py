"""benchmarks/gpu_bench.py: the FLOP counts are exact (hand counts), the --quick smoke run
on the CPU writes JSON with every row and positive finite numbers that agree with
each other (no timing thresholds: the machine is shared), the PyTorch parts run when
torch is installed and are skipped cleanly when it is not, and the grouped-conv
PyTorch ensemble computes what per-seed networks compute."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import core_bench  # noqa: E402
import gpu_bench  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _positive_finite(x, what):
  assert isinstance(x, (int, float)) and not isinstance(x, bool), (what, x)
  assert math.isfinite(x) and x > 0, (what, x)


def test_flop_counts_by_hand():
  # MLP-2-3 on 4 inputs, 5 classes, batch 7: dots 7x4x3, 7x3x3, 7x3x5 (MACs 84, 63,
  # 105); forward + weight gradients (all) + input gradients (all but the first).
  assert gpu_bench.matmul_flops_per_step(2, 3, 4, 5, 7) == 2 * (252 + 252 + 168)
  for args in [(2, 3, 4, 5, 7), (10, 1024, 784, 10, 128), (8, 256, 40, 10, 128)]:
    assert gpu_bench.matmul_flops_per_step(*args) == core_bench.matmul_flops_per_step(*args)
  # CONV-2-3 on 4x4x2 inputs, 5 classes, batch 1: the 3x3/2 stem (padding 1) gives 2x2
  # maps: stem 4 pixels x 9 x 2 x 3 = 216 MACs, one hidden conv 4 x 9 x 3 x 3 = 324,
  # head 3 x 5 = 15.
  assert gpu_bench.conv_flops_per_step(2, 3, (4, 4), 2, 5, 1) == 2 * (555 + 555 + 339)
  # 28x28 -> 14x14; batch and depth enter linearly as expected.
  f = gpu_bench.conv_flops_per_step(4, 32, (28, 28), 1, 10, 128)
  stem, hid, head = 128 * 196 * 9 * 32, 128 * 196 * 9 * 32 * 32, 128 * 32 * 10
  assert f == 2 * (2 * (stem + 3 * hid + head) + 3 * hid + head)


def test_gpu_bench_quick(tmp_path):
  out = tmp_path / "gpu.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_bench.py"), "--quick",
       "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
  res = json.loads(out.read_text())
  args, rows = res["args"], res["rows"]
  assert res["machine"]["backend"] == "cpu" and res["machine"]["jax"]
  assert set(rows) == {"gemm", "1_big_mlp", "2_small_mlps", "3_conv", "4_seeds_curve",
                       "5_analysis"}, rows.keys()
  for r in ("gemm", "1_big_mlp", "4_seeds_curve", "5_analysis"):
    assert "error" not in rows[r], (r, rows[r])
  g = rows["gemm"]
  _positive_finite(g["jax_default_tflops"], "gemm default")
  _positive_finite(g["jax_highest_tflops"], "gemm highest")
  assert res["peak_tflops"]["default"] == g["jax_default_tflops"]

  def check_row(row, flops, jax_names, torch_names):
    assert "error" not in row, row
    assert row["flop_per_seed_step"] == flops
    assert row["steps_per_repeat"] == row["epochs_per_repeat"] * row["steps_per_epoch"]
    expect = set(jax_names) | (set(torch_names) if HAVE_TORCH else set())
    assert expect <= set(row["variants"]), (row["variants"].keys(), row["errors"])
    for n, v in row["variants"].items():
      assert len(v["repeat_s"]) == args["repeats"], n
      for k in ("median_s", "seed_steps_per_s", "samples_per_s", "tflops", "mfu"):
        _positive_finite(v[k], f"{row['title']}.{n}.{k}")
      assert math.isfinite(v["final_loss"]), n
      steps = row["steps_per_repeat"] * row["seeds"]
      np.testing.assert_allclose(v["seed_steps_per_s"], steps / v["median_s"])
      np.testing.assert_allclose(v["tflops"], v["seed_steps_per_s"] * flops / 1e12)
      if v["framework"] == "jax":
        assert v["program"] == "train.build_program", v["program"]
    if HAVE_TORCH:
      _positive_finite(row["ratio_fast"]["jax_over_best_torch"], "ratio")
    else:
      assert not any(v["framework"] == "torch" for v in row["variants"].values())

  r1 = rows["1_big_mlp"]
  check_row(r1, gpu_bench.matmul_flops_per_step(r1["depth"], r1["width"], r1["in_dim"], 10,
                                                r1["batch"]),
            ["jax", "jax-highest"], ["torch-eager-tf32", "torch-eager-fp32"])
  assert r1["variants"]["jax-highest"]["precision"] == "highest"
  if HAVE_TORCH:
    assert r1["ratio_full"]["jax"] == "jax-highest"
  assert len(rows["2_small_mlps"]) == len(args["small_widths"])
  for r in rows["2_small_mlps"].values():
    check_row(r, gpu_bench.matmul_flops_per_step(r["depth"], r["width"], r["in_dim"], 10,
                                                 r["batch"]), ["jax"], ["torch-eager"])
  assert len(rows["3_conv"]) == len(args["convs"]) * len(args["conv_seeds"])
  for r in rows["3_conv"].values():
    h, w, c = r["in_shape"]
    check_row(r, gpu_bench.conv_flops_per_step(r["depth"], r["width"], (h, w), c, 10,
                                               r["batch"]),
              ["jax"], ["torch-grouped"] + (["torch-loop"] if r["seeds"] > 1 else []))
  curve = rows["4_seeds_curve"]
  assert [int(s) for s in curve["points"]] == args["curve_seeds"]
  for s, p in curve["points"].items():
    _positive_finite(p["samples_x_seeds_per_s"], f"curve {s}")
    np.testing.assert_allclose(p["samples_x_seeds_per_s"],
                               p["seed_steps_per_s"] * curve["batch"])
  a5 = rows["5_analysis"]
  for k in ("analysis_s", "epoch_s", "analysis_over_epoch", "first_analysis_s"):
    _positive_finite(a5[k], k)
  assert len(a5["analysis_repeat_s"]) == args["repeats"]
  if HAVE_TORCH:
    assert res["torch_skipped"] is None and res["machine"]["torch"]["torch"]
  else:
    assert "not installed" in res["torch_skipped"] and "skipped" in proc.stdout
  assert "| row | model | seeds | variant |" in proc.stdout


def test_grouped_conv_ensemble_equals_per_seed_networks():
  """The grouped-conv ensemble (groups = seeds, BatchNorm2d over seeds x channels,
  per-seed head) gives each seed the logits and gradients of a plain one-seed network
  with that seed's weights."""
  torch = pytest.importorskip("torch")
  S, L, H, C, B = 3, 3, 4, 5, 6
  g = torch.Generator().manual_seed(0)
  dev = torch.device("cpu")
  ens = gpu_bench.GroupedConv(torch, S, L, H, 1, C, g, dev)
  singles = [gpu_bench.GroupedConv(torch, 1, L, H, 1, C, g, dev) for _ in range(S)]
  with torch.no_grad():
    for s, net in enumerate(singles):
      for (name, p_e), p_1 in zip(ens.body.named_parameters(), net.body.parameters()):
        p_1.copy_(p_e[s * H:(s + 1) * H] if p_e.shape[0] == S * H else p_e)
        assert p_1.shape[0] == H, name
      net.head_w.copy_(ens.head_w[s:s + 1])
      net.head_b.copy_(ens.head_b[s:s + 1])
  x = torch.randn(S, B, 1, 8, 8, generator=g)
  y = torch.randint(0, C, (S, B), generator=g)
  loss = gpu_bench.stacked_loss(torch, ens(x), y)
  loss.backward()
  logits = ens(x).detach()
  for s, net in enumerate(singles):
    out = net(x[s:s + 1])
    torch.testing.assert_close(out.detach(), logits[s:s + 1], rtol=1e-5, atol=1e-5)
    gpu_bench.stacked_loss(torch, out, y[s:s + 1]).backward()
    w_e = next(ens.body.parameters()).grad[s * H:(s + 1) * H]
    torch.testing.assert_close(next(net.body.parameters()).grad, w_e, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net.head_w.grad, ens.head_w.grad[s:s + 1], rtol=1e-4,
                               atol=1e-5)
