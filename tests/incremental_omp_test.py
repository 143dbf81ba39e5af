"""Deep toy model vs OMP (docs/definitions.md, "Models"), and the OMP implementation itself."""

import numpy as np

from jaxdepth.papers.incremental import omp


def test_omp_recovers_sparse_support_in_value_order():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 300))
  x /= np.linalg.norm(x, axis=0, keepdims=True)
  w = np.zeros(300)
  support = [17, 4, 250]
  w[support] = [9.0, 5.0, 2.0]
  sel = omp.omp(x, x @ w)
  assert sel == support


def test_concurrence_and_selection_order():
  assert omp.concurrence([1, 2, 3], [3, 2, 1, 9]) == 1.0
  assert omp.concurrence([1, 2], [2, 5]) == 0.5
  t = np.array([np.inf, 30.0, 10.0, 30.0])
  beta = np.array([0.0, 0.5, 2.0, 0.9])
  assert omp.gd_selection(t, beta) == [2, 3, 1]


def test_deep_toy_model_selects_like_omp(tmp_path):
  from jaxdepth.configs.incremental import omp as omp_config
  c = omp_config.get_config()
  c.depths, c.progress = (5,), False
  omp.validate(c)
  s = omp.run(c, str(tmp_path))
  for r in s["runs"]:
    assert not r["diverged"] and r["converged"]
    assert r["concurrence"] == 1.0
    assert set(r["gd_order"]) == set(r["omp_order"]) == set(r["support_by_value"])
    assert r["gd_order"][0] == r["omp_order"][0]
    assert r["rel_error"] < 1e-2
  assert sum(r["orders_agree"] for r in s["runs"]) >= 2  # observed 3/3
