"""Critical initialization by quadrature and bisection: AC4 and its table
(docs/definitions.md, "Critical initialization" and "Acceptance checks")."""

import math

import numpy as np

from jaxdepth.papers.incremental import critical

SPEC = np.array([  # AC4's table: rows r = 0.5, 0.8, 0.9, 0.95; columns N = 2, 3, 4, 6, 10
    [3.4e-4, 7.2e-3, 1.2e-2, 1.7e-2, 2.0e-2],
    [8.5e-10, 7.8e-4, 2.8e-3, 5.9e-3, 8.9e-3],
    [2.6e-19, 1.1e-4, 7.4e-4, 2.2e-3, 4.0e-3],
    [2.2e-38, 1.5e-5, 1.9e-4, 7.9e-4, 1.7e-3],
])


def test_ac4_table_within_factor_1p5():
  table = critical.critical_table(critical.RATIOS, critical.DEPTHS, 0.1)
  ratio = table / SPEC
  assert np.all(ratio <= 1.5) and np.all(ratio >= 1 / 1.5), ratio


def test_ac4_key_separations():
  assert critical.critical_sigma0(0.9, 2) < 1e-18
  assert critical.critical_sigma0(0.9, 4) > 5e-4
  assert critical.critical_sigma0(0.95, 2) < 1e-37


def test_quadrature_equals_depth2_closed_form():
  for s0 in (1e-3, 1e-12, 1e-40):
    for level, target in ((0.9, 1.0), (0.09, 0.9)):
      np.testing.assert_allclose(critical.flow_time(s0, level, target, 2),
                                 critical.flow_time_depth2(s0, level, target), rtol=1e-9)


def test_quadrature_matches_blowup_time_for_deep_models():
  """N >= 3, sigma0 << sigma*: T(sigma0 -> sigma*/2) ~ t_inf = sigma0^-(N-2)/N / (N(N-2) sigma*)."""
  for n in (3, 4, 6):
    s0 = 1e-12
    t_inf = s0 ** (-(n - 2) / n) / (n * (n - 2) * 1.0)
    np.testing.assert_allclose(critical.flow_time(s0, 0.5, 1.0, n), t_inf, rtol=0.02)


def test_boundary_is_sharp():
  s = critical.critical_sigma0(0.8, 3)
  assert critical.is_incremental(s * 0.99, 0.8, 3)
  assert not critical.is_incremental(s * 1.01, 0.8, 3)


def test_approximations_within_25_percent_for_deep_models():
  for r in (0.5, 0.8, 0.9):
    for n in (4, 6, 10):
      exact = critical.critical_sigma0(r, n)
      assert abs(math.log(critical.approx_sigma0(r, n) / exact)) < math.log(1.35), (r, n)
