"""benchmarks/hparam_bench.py: its PyTorch grid (stacked ensemble, per-member lr and
weight decay in a hand-written SGD step) trains what a per-member torch.nn +
torch.optim.SGD loop trains (skipped without torch), and its lr schedule is jaxdepth's
(runs in CI). That jaxdepth's grid program equals the 9 scalar programs is checked in
tests/hparam_axes_test.py (test_grid_runs_equal_separate_scalar_runs)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import hparam_bench  # noqa: E402

from jaxdepth.papers import sgd  # noqa: E402


def test_lr_factor_is_jaxdepths_step_schedule():
  spe, epochs = 31, 4
  c = hparam_bench.config(0.1, 0.0, 1, epochs, 4000)
  sched = sgd.make_schedule(c, spe)
  per_run = sgd.per_run_schedule(c, spe)
  for count in range(epochs * spe + 3):
    want = float(sched(count))
    assert hparam_bench.lr_factor(count, spe, epochs) * 0.1 == pytest.approx(want, 1e-6)
    assert float(per_run(count, 0.1, float(spe), 0.2)) == pytest.approx(want, 1e-6)


def test_torch_per_member_sgd_matches_a_member_loop(tmp_path):
  torch = pytest.importorskip("torch")
  import core_bench
  n, dim, depth, width, epochs, batch = 512, 40, 2, 8, 2, 128  # 4 steps per epoch
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, dim)).astype(np.float32)
  y = rng.integers(0, 10, n)
  np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
  old = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  try:
    w = hparam_bench.TorchGrid({
        "kind": "torch-eager", "data": str(tmp_path / "d.npz"), "threads": 1,
        "grid": False, "args": {"seeds": 1, "epochs": epochs, "num_train": n,
                                "depth": depth, "width": width}})
    pts = hparam_bench.grid_points(1)
    M = len(pts)
    assert w.S == M == 9 and w.spe == 4
    net = w.net
    # The reference: member m alone, torch.nn + torch.optim.SGD + LambdaLR(lr_factor),
    # from member m's initial parameters.
    loop = []
    for m, (lr, wd, _) in enumerate(pts):
      mlp = core_bench.torch_mlp(torch, depth, width, dim, 10)
      lins = [mlp[3 * i] for i in range(depth)] + [mlp[-1]]
      bns = [mlp[3 * i + 1] for i in range(depth)]
      with torch.no_grad():
        for lin, W, b in zip(lins, net.weights, net.biases):
          lin.weight.copy_(W[m].T)
          lin.bias.copy_(b[m, 0])
        for bn, g, s in zip(bns, net.scales, net.shifts):
          bn.weight.copy_(g[m, 0])
          bn.bias.copy_(s[m, 0])
      opt = torch.optim.SGD(mlp.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
      sch = torch.optim.lr_scheduler.LambdaLR(
          opt, lambda c: hparam_bench.lr_factor(c, w.spe, epochs))
      loop.append((mlp, lins, bns, opt, sch))
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y)
    for _ in range(epochs * w.spe + 1):  # warm-up, both decays, one step past the end
      idx = torch.from_numpy(rng.integers(0, n, (M, batch)))
      w.step(xt[idx], yt[idx])
      for m, (mlp, _, _, opt, sch) in enumerate(loop):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(mlp(xt[idx[m]]), yt[idx[m]]).backward()
        opt.step()
        sch.step()
    for m, (_, lins, bns, _, _) in enumerate(loop):
      for lin, W, b in zip(lins, net.weights, net.biases):
        np.testing.assert_allclose(W[m].detach().T, lin.weight.detach(), rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(b[m, 0].detach(), lin.bias.detach(), rtol=1e-9,
                                   atol=1e-12)
      for bn, g, s, (rm, rv) in zip(bns, net.scales, net.shifts, net.running):
        np.testing.assert_allclose(g[m, 0].detach(), bn.weight.detach(), rtol=1e-9)
        np.testing.assert_allclose(s[m, 0].detach(), bn.bias.detach(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(rm[m, 0], bn.running_mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(rv[m, 0], bn.running_var, rtol=1e-9)
    # The members differ (lr and wd act per member): not all equal to member 0.
    assert not torch.allclose(net.weights[0][0], net.weights[0][-1])
  finally:
    torch.set_default_dtype(old)


def test_jax_grid_worker_is_one_program(tmp_path):
  """The jax-one worker trains all 9 (lr, wd) points in one compiled epoch program."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((256, 40)).astype(np.float32)
  y = rng.integers(0, 10, 256).astype(np.int32)
  np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:64], y_test=y[:64])
  w = hparam_bench.JaxGrid({"kind": "jax-one", "data": str(tmp_path / "d.npz"),
                            "args": {"seeds": 1, "epochs": 2, "num_train": 256,
                                     "depth": 2, "width": 8}})
  info = w.ready()
  assert info["runs"] == 9 and info["programs"] == 1 and info["compiles"] == 1
  assert np.isfinite(info["loss"]) and info["total_s"] >= info["first_epoch_s"] > 0
  out = w.run(1)
  assert out["seconds"] > 0 and np.isfinite(out["loss"])
  assert w.progs[0]["prog"].epoch._cache_size() == 1  # no recompilation at epoch 3
