"""benchmarks/analysis_bench.py at a tiny size: the PyTorch codebases' accumulators
(stacked over seeds and per-seed loop) give jaxdepth.analyze_model's metrics, to the
float32 tolerances of the benchmark's own check. Skips without torch."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import analysis_bench as ab  # noqa: E402

C, DEPTH, WIDTH, SEEDS, N, NT = 4, 3, 16, 2, 300, 100


@pytest.fixture(scope="module")
def results():
  pytest.importorskip("torch")
  x, y, xt, yt = ab.make_data(N, NT, 6, C, seed=1)
  model = ab.flax_mlp(DEPTH, WIDTH, C)
  variables = ab.init_params(model, SEEDS, x)
  jx = ab.jax_analyze(model, variables, x, y, xt, yt, C, batch_size=64, rank_samples=50)
  inputs = ab.torch_inputs(variables, DEPTH, x, y, xt, yt, batch_size=64, rank_samples=50)
  return jx, {"stacked": ab.torch_stacked(inputs, C, jx["nc3_layer"]),
              "loop": ab.torch_loop(inputs, C, jx["nc3_layer"])}


@pytest.mark.parametrize("variant", ["stacked", "loop"])
def test_torch_matches_jaxdepth(results, variant):
  jx, th = results
  th = th[variant]
  assert jx["nc3_layer"] == DEPTH - 1
  for k in ab.METRICS:
    assert np.shape(th[k]) == np.shape(jx[k]), k
  assert np.isnan(th["nc3_duality_train"][:, :-1]).all()
  dev = ab.deviations(jx, th, N, NT)
  assert not ab.check(dev), dev


def test_check_flags_a_wrong_metric(results):
  jx, th = results
  bad = dict(th["stacked"], cdnv_train=th["stacked"]["cdnv_train"] * 1.01,
             ncc_acc_test=th["stacked"]["ncc_acc_test"] + 2 / NT)
  flagged = ab.check(ab.deviations(jx, bad, N, NT))
  assert any(f.startswith("cdnv_train") for f in flagged)
  assert any(f.startswith("ncc_acc_test") for f in flagged)
