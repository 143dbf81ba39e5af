"""benchmarks/core_bench.py: the --quick smoke run writes JSON with the expected keys and
positive finite numbers (no timing thresholds: the machine is shared), the FLOP count
is exact, and the stacked PyTorch ensemble computes what the per-seed loop computes."""

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


def _positive_finite(x, what):
  assert isinstance(x, (int, float)) and not isinstance(x, bool), (what, x)
  assert math.isfinite(x) and x > 0, (what, x)


def test_matmul_flops_per_step_counts_every_dot():
  # MLP-2-3 on 4 inputs, 5 classes, batch 7: dots 7x4x3, 7x3x3, 7x3x5 (MACs 84, 63, 105);
  # forward + weight gradients (all) + input gradients (all but the first).
  assert core_bench.matmul_flops_per_step(2, 3, 4, 5, 7) == 2 * (252 + 252 + 168)


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


def test_stacked_torch_ensemble_equals_per_seed_loop():
  """One SGD step of the stacked ensemble (baddbmm, per-seed BN, one SGD over stacked
  tensors) gives each seed the loss and parameters of a plain torch.nn model trained
  alone on the same batch from the same weights."""
  torch = pytest.importorskip("torch")
  S, L, H, I, C, B = 3, 3, 8, 5, 4, 16
  g = torch.Generator().manual_seed(0)
  ens = core_bench.StackedMLP(torch, S, L, H, I, C, g)
  x = torch.randn(S, B, I, generator=g)
  y = torch.randint(0, C, (S, B), generator=g)
  opt = torch.optim.SGD(ens.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  for _ in range(2):  # two steps: momentum buffers matter too
    opt.zero_grad()
    loss = core_bench.stacked_loss(torch, ens(x), y)
    loss.backward()
    opt.step()
  for s in range(S):
    net = core_bench.torch_mlp(torch, L, H, I, C)
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm1d)]
    with torch.no_grad():  # the ensemble's initial weights of seed s
      g0 = torch.Generator().manual_seed(0)
      ens0 = core_bench.StackedMLP(torch, S, L, H, I, C, g0)
      for lin, w, b in zip(lins, ens0.weights, ens0.biases):
        lin.weight.copy_(w[s].T)
        lin.bias.copy_(b[s, 0])
    net.train()
    o = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
      o.zero_grad()
      ls = torch.nn.functional.cross_entropy(net(x[s]), y[s])
      ls.backward()
      o.step()
    for lin, w, b in zip(lins, ens.weights, ens.biases):
      np.testing.assert_allclose(lin.weight.detach().T, w[s].detach(), rtol=1e-4, atol=1e-5)
      np.testing.assert_allclose(lin.bias.detach(), b[s, 0].detach(), rtol=1e-4, atol=1e-5)
    for bn, sc, sh, (rm, rv) in zip(bns, ens.scales, ens.shifts, ens.running):
      np.testing.assert_allclose(bn.weight.detach(), sc[s, 0].detach(), rtol=1e-4, atol=1e-5)
      np.testing.assert_allclose(bn.bias.detach(), sh[s, 0].detach(), rtol=1e-4, atol=1e-5)
      np.testing.assert_allclose(bn.running_mean, rm[s, 0], rtol=1e-4, atol=1e-5)
      np.testing.assert_allclose(bn.running_var, rv[s, 0], rtol=1e-4, atol=1e-5)
