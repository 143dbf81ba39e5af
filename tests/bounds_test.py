"""Bound arithmetic (jaxdepth.papers.minimal_depth.bounds) on hand-computable effective
and minimal depths."""

import os

import numpy as np
import pytest

from jaxdepth.measure.collapse import effective_depth
from jaxdepth.papers.minimal_depth import bounds


def errors_for(depths, L):
  """Per-layer error curves whose eps-effective depth is ``depths`` (L+1 = never)."""
  d = np.asarray(depths)[..., None]
  layer = np.arange(1, L + 1)
  return np.where(layer >= d, 0.0, 0.5)


def test_effective_depth_first_hit_and_sentinel():
  err = np.array([[0.5, 0.2, 0.0, 0.0],      # reaches 0.01 at layer 3
                  [0.5, 0.5, 0.5, 0.5],      # never: L + 1
                  [0.0, 0.3, 0.0, 0.0],      # non-monotone: first hit is layer 1
                  [0.3, 0.05, 0.2, 0.005]])  # eps=0.1 -> 2, eps=0.01 -> 4
  np.testing.assert_array_equal(effective_depth(err, 0.01), [3, 5, 1, 4])
  np.testing.assert_array_equal(effective_depth(err, 0.1), [3, 5, 1, 2])
  assert effective_depth(np.array([0.01]), 0.01) == 1  # <= eps counts


def test_first_term_and_bound_by_hand():
  # K=3 draws, 2 clean seeds: D_k = 2.5, 4, 1.
  clean = np.array([[2, 3], [4, 4], [1, 1]])
  # P=2 noise levels, 2 noisy seeds: dmin(p0) = 2, 5, 1 ; dmin(p1) = 4, 6, 3.
  noisy = np.array([[[3, 2], [4, 4]], [[5, 5], [6, 7]], [[1, 2], [3, 3]]])
  np.testing.assert_allclose(bounds.clean_depth(clean), [2.5, 4.0, 1.0])
  np.testing.assert_array_equal(bounds.minimal_depth(noisy), [[2, 4], [5, 6], [1, 3]])
  # I(p0) = [2.5>=2, 4>=5, 1>=1] = [1, 0, 1]; I(p1) = [0, 0, 0].
  t = bounds.first_term(clean, noisy)
  np.testing.assert_allclose(t, [2 / 3, 0.0])
  np.testing.assert_allclose(bounds.bound(t, [0.1, 0.3], 0.1), [2 / 3 + 0.11, 0.33])


def test_indicator_is_inclusive():
  """D_k == dmin counts (the clean network is 'at least as deep')."""
  assert bounds.first_term(np.array([[3, 3]]), np.array([[[3, 4]]]))[0] == 1.0
  assert bounds.first_term(np.array([[2, 3]]), np.array([[[3, 4]]]))[0] == 0.0  # 2.5 < 3


def test_bound_rows_from_error_curves():
  L = 6
  clean = errors_for([[2, 3], [4, 4], [1, 1]], L)                   # (K, G, L)
  noisy = errors_for([[[3, 2], [4, 4]], [[5, 5], [6, 7]], [[1, 2], [3, 3]]], L)
  test = np.array([[0.1, 0.2], [0.3, 0.4], [0.2, 0.2]])
  rows = bounds.bound_rows(clean, noisy, test, (0.1, 0.3), (0.1, 0.5), (0.01,),
                           extra={"dataset": "hand"})
  assert [(r["p"], r["alpha"]) for r in rows] == [(0.1, 0.1), (0.1, 0.5), (0.3, 0.1),
                                                  (0.3, 0.5)]
  by = {(r["p"], r["alpha"]): r for r in rows}
  assert by[(0.1, 0.5)]["first_term"] == pytest.approx(2 / 3)
  assert by[(0.1, 0.5)]["bound"] == pytest.approx(2 / 3 + 1.5 * 0.1)
  assert by[(0.3, 0.1)]["first_term"] == 0.0
  assert by[(0.3, 0.1)]["bound"] == pytest.approx(1.1 * 0.3)
  r = rows[0]
  assert r["dataset"] == "hand"
  assert r["mean_test_error"] == pytest.approx(np.mean(test))
  assert r["test_error_std"] == pytest.approx(np.std(test))
  assert r["mean_clean_depth"] == pytest.approx(np.mean([2.5, 4, 1]))
  assert by[(0.1, 0.1)]["mean_min_depth"] == pytest.approx(8 / 3)
  assert by[(0.3, 0.1)]["mean_min_depth"] == pytest.approx(13 / 3)
  assert r["min_depth_monotone"] is True
  assert all(r["clean_unreached"] == 0 and r["min_depth_unreached"] == 0 for r in rows)


def test_unreached_flags_and_monotonicity():
  L = 3
  clean = errors_for([[4, 2]], L)         # one clean run never separates (sentinel 4)
  noisy = errors_for([[[4, 4], [2, 3]]], L)  # p0: nobody fits (dmin = 4); p1: dmin = 2
  rows = bounds.bound_rows(clean, noisy, np.zeros((1, 2)), (0.2, 0.4), (0.1,), (0.01,))
  assert rows[0]["clean_unreached"] == 1
  assert rows[0]["min_depth_unreached"] == 1 and rows[1]["min_depth_unreached"] == 0
  assert rows[0]["first_term"] == 0.0      # D = 3 < 4
  assert rows[1]["first_term"] == 1.0      # D = 3 >= 2
  assert rows[0]["min_depth_monotone"] is False  # mean dmin falls from 4 to 2


def test_eps_changes_depths_without_new_errors():
  """Changing eps only re-thresholds the same per-layer errors."""
  clean = np.array([[[0.3, 0.05, 0.0]]])
  noisy = np.array([[[[0.4, 0.08, 0.0]]]])
  lo = bounds.bound_rows(clean, noisy, np.zeros((1, 1)), (0.2,), (0.1,), (0.01, 0.1))
  assert [r["mean_clean_depth"] for r in lo] == [3.0, 2.0]
  assert [r["mean_min_depth"] for r in lo] == [3.0, 2.0]
  assert [r["first_term"] for r in lo] == [1.0, 1.0]


def test_format_table():
  rows = bounds.bound_rows(np.zeros((1, 1, 2)), np.ones((1, 1, 1, 2)), np.full((1, 1), 0.25),
                           (0.3,), (0.1,), (0.01,))
  text = bounds.format_table(rows)
  assert text.splitlines()[0].startswith("| test err")
  assert "| 0.2500 |" in text and "| 0.330 |" in text
  assert "| 0/1 |" in text and "| [0.00, 0.97] |" in text and "| yes |" in text


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (7, 12),
                                 (1, 30), (29, 30)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
  from scipy.stats import binomtest
  ref = binomtest(k, n).proportion_ci(0.95, method="exact")
  lo, hi = bounds.clopper_pearson(k, n)
  assert lo == pytest.approx(ref.low, abs=1e-12)
  assert hi == pytest.approx(ref.high, abs=1e-12)


def test_clopper_pearson_closed_forms():
  """k = 0: hi = 1 - (a/2)^(1/n); k = n: lo = (a/2)^(1/n); textbook 3/10 case."""
  assert bounds.clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1))
  assert bounds.clopper_pearson(10, 10) == pytest.approx((0.025 ** 0.1, 1.0))
  assert bounds.clopper_pearson(0, 10)[1] == pytest.approx(0.30850, abs=1e-5)
  lo, hi = bounds.clopper_pearson(3, 10)
  assert (lo, hi) == pytest.approx((0.06674, 0.65245), abs=1e-5)
  with pytest.raises(ValueError):
    bounds.clopper_pearson(3, 2)


def test_trained_ps_puts_the_control_first():
  assert bounds.trained_ps({"p": (0.1, 0.2)}) == [0.1, 0.2]
  assert bounds.trained_ps({"p": (0.1, 0.2), "control": True}) == [0.0, 0.1, 0.2]


def test_control_row_counts_and_holds():
  L = 6
  # K = 4 draws, 1 clean seed: D = 3, 3, 4, 2.
  clean = errors_for([[3], [3], [4], [2]], L)
  # control (p=0): dmin = 3, 3, 3, 3 -> I = 1, 1, 1, 0 ; p=0.1: dmin = 5, 5, 4, 6 -> 0,0,1,0
  # p=0.2: dmin = 4, 4, 5, 6 -> 0, 0, 0, 0 (mean dmin 4.75 < 5: not monotone in p > 0)
  noisy = errors_for([[[3], [5], [4]], [[3], [5], [4]], [[3], [4], [5]], [[3], [6], [6]]], L)
  test = np.full((4, 1), 0.12)
  rows = bounds.bound_rows(clean, noisy, test, (0.0, 0.1, 0.2), (0.1,), (0.01,))
  ctrl, r1, r2 = rows
  assert ctrl["control"] and ctrl["bound"] is None and ctrl["holds"] is None
  assert ctrl["first_term"] == 0.75 and ctrl["first_term_count"] == 3
  assert (ctrl["first_term_lo"], ctrl["first_term_hi"]) == pytest.approx(
      bounds.clopper_pearson(3, 4))
  assert not r1["control"] and r1["first_term_count"] == 1 and r1["num_draws"] == 4
  assert r1["bound"] == pytest.approx(0.25 + 0.11)
  assert r1["bound_hi"] == pytest.approx(bounds.clopper_pearson(1, 4)[1] + 0.11)
  assert r1["holds"] is True                       # 0.36 >= 0.12
  assert r2["bound"] == pytest.approx(0.22) and r2["holds"] is True
  assert r2["mean_min_depth"] == pytest.approx(4.75)
  assert r1["min_depth_monotone"] is False         # 5.0 -> 4.75 over p > 0
  # the control's dmin (3) below every p > 0 value does not count for monotonicity
  rows_hi = bounds.bound_rows(clean, noisy[:, :2], np.full((4, 1), 0.4), (0.0, 0.1), (0.1,),
                              (0.01,))
  assert rows_hi[0]["min_depth_monotone"] is True
  assert rows_hi[1]["holds"] is False              # 0.36 < 0.4
  text = bounds.format_table(rows)
  assert "| control |" in text and "| - |" in text
  lines = bounds.monotone_lines(rows)
  assert lines == ["eps=0.01: mean dmin_hat p=0: 3.00, p=0.1: 5.00, p=0.2: 4.75; "
                   "non-decreasing in p>0: NO (delta_2 assumption violated)"]


def test_error_exactly_at_eps_counts_whatever_the_rounding():
  """4/400 at eps=0.01, whether computed as k/N or 1 - (N-k)/N in float32."""
  k_over_n = np.float64(np.float32(4) / np.float32(400))  # 0.0099999998
  one_minus = 1.0 - np.float64(np.float32(0.99) - np.float32(4e-8))  # 0.0100000381
  assert k_over_n < 0.01 < one_minus
  err = np.array([[0.5, k_over_n, 0.0], [0.5, one_minus, 0.0]])
  np.testing.assert_array_equal(effective_depth(err, 0.01, 400), [2, 2])
  assert effective_depth(np.array([0.5, 5 / 400, 0.0]), 0.01, 400) == 3  # 5/400 > eps


# ----------------------------------------------------------------- the bound as a curve
GRID = (0.01, 0.02, 0.03, 0.04, 0.05, 0.1)
# K = 2 draws, one clean seed each: D = 3, 3. dmin per p (draws 0, 1):
DMIN = [[3, 2], [3, 4], [5, 5], [4, 3], [6, 5], [4, 6]]
# -> I: (1,1) (1,0) (0,0) (0,1) (0,0) (0,0); T = 1, .5, 0, .5, 0, 0
# -> bound (alpha 0.1) = 1.011, 0.522, 0.033, 0.544, 0.055, 0.110


def curve_rows(test=((0.05,), (0.07,)), grid=GRID, dmin=DMIN, **kw):
  L = 6
  clean = errors_for([[3], [3]], L)
  noisy = errors_for([[[dmin[j][k]] for j in range(len(grid))] for k in range(2)], L)
  return bounds.bound_rows(clean, noisy, np.array(test), grid, (0.1,), (0.01,), **kw)


def test_test_error_interval_by_hand():
  s = bounds.test_error_stats(np.array([[0.05], [0.07]]))
  half = 12.706204736174698 * np.std([0.05, 0.07], ddof=1) / np.sqrt(2)  # t_.975,1
  assert s["mean"] == pytest.approx(0.06) and s["std"] == pytest.approx(0.01)
  assert (s["lo"], s["hi"]) == pytest.approx((0.06 - half, 0.06 + half))
  assert half == pytest.approx(0.127062, abs=1e-6)
  one = bounds.test_error_stats(np.array([[0.1]]))
  assert one["lo"] == one["hi"] == one["mean"] == pytest.approx(0.1)


def test_curve_summary_smallest_valid_p_and_invalid_ranges():
  rows = curve_rows()
  assert [r["bound"] for r in rows] == pytest.approx([1.011, 0.522, 0.033, 0.544, 0.055,
                                                     0.11])
  assert [r["holds"] for r in rows] == [True, True, False, True, False, True]  # vs 0.06
  hi = 0.06 + 0.127062
  assert rows[0]["test_error_hi"] == pytest.approx(hi, abs=1e-6)
  assert [r["holds_vs_test_hi"] for r in rows] == [True, True, False, True, False, False]
  assert [r["p_over_2eps"] for r in rows] == [False, False, True, True, True, True]
  # first-term CI of the p = 0.02 row: 1 of 2 draws
  assert (rows[1]["first_term_lo"], rows[1]["first_term_hi"]) == pytest.approx(
      bounds.clopper_pearson(1, 2))
  assert rows[1]["bound_hi"] == pytest.approx(bounds.clopper_pearson(1, 2)[1] + 0.022)
  (s,) = bounds.curve_summary(rows)
  assert s["eps"] == 0.01 and s["alpha"] == 0.1 and s["jump_p"] == 0.02
  assert s["smallest_valid_p"] == 0.01
  assert s["invalid_ranges"] == [[0.03, 0.03], [0.05, 0.05]]
  assert s["invalid_ranges_vs_test_hi"] == [[0.03, 0.03], [0.05, 0.1]]
  assert s["breaks_at"]["p"] == 0.03 and s["breaks_at"]["bound"] == pytest.approx(0.033)
  # (b) at p = 0.03: q >= 0.033 -> 0.04, 0.05, 0.1; dmin(p) = (5, 5) against
  # (4, 3): 2 violations, (6, 5): 0, (4, 6): 1 -> 3 of 6 pairs
  assert (s["breaks_at"]["delta2_violations"], s["breaks_at"]["delta2_pairs"]) == (3, 6)
  assert s["breaks_at"]["delta2_frac"] == 0.5
  lines = bounds.curve_lines([s])
  assert lines[0].startswith("eps=0.01 alpha=0.1: smallest valid p 0.01; estimate below "
                             "the mean test error 0.0600 at p in {0.03}, {0.05}")
  assert "(b) delta_2 pairs: 3/6 = 0.50" in lines[0]


def test_curve_summary_all_valid_and_none_valid():
  (s,) = bounds.curve_summary(curve_rows(test=((0.0,), (0.0,))))
  assert s["smallest_valid_p"] == 0.01 and s["invalid_ranges"] == [] and s["breaks_at"] is None
  (s,) = bounds.curve_summary(curve_rows(test=((0.9,), (0.9,))))
  assert s["smallest_valid_p"] == 0.01  # 1.011 >= 0.9
  assert s["invalid_ranges"] == [[0.02, 0.1]]


def test_monotonicity_pairs_by_hand():
  d = np.array(DMIN).T  # (K, P)
  assert bounds.monotonicity_pairs(d, GRID, 2, 0.1) == (3, 6)
  assert bounds.monotonicity_pairs(d, GRID, 4, 0.1) == (1, 2)   # q = 0.1: 4 < 6
  assert bounds.monotonicity_pairs(d, GRID, 5, 0.1) == (0, 0)   # no q >= 0.11
  assert bounds.monotonicity_pairs(d, GRID, 0, 0.1) == (0, 10)
  assert bounds.monotonicity_pairs(d, GRID, 1, 1.0) == (1, 6)   # q >= 0.04: (4, 3) vs (3, 4)
  rows = curve_rows()
  assert [r["delta2_frac"] for r in rows] == [0.0, pytest.approx(1 / 8), 0.5, 0.0, 0.5, None]
  with_ctrl = bounds.monotonicity_pairs(np.array([[1, 3, 2]]), (0.0, 0.1, 0.2), 0, 0.1)
  assert with_ctrl == (0, 0)  # the control row has no (b)


def test_mistake_overlap_by_hand():
  M = 10
  a = np.zeros((2, 3, M), bool)
  a[0, 0, [0, 1, 2, 3]] = True   # |A| = 4
  a[0, 1, [2, 3, 4]] = True      # |B| = 3, |A n B| = 2, expected 4 * 3 / 10 = 1.2
  a[1, 0, [0]] = True            # draw 1: {0} and {0}: observed 1, expected 0.1
  a[1, 1, [0]] = True
  ov = bounds.mistake_overlap(a)
  assert ov["pairs"] == 6
  assert ov["observed"] == 3 and ov["expected"] == pytest.approx(1.3)
  assert ov["ratio"] == pytest.approx(3 / 1.3)
  assert bounds.mistake_overlap(a[:, :1])["ratio"] is None  # one seed: no pair
  assert bounds.mistake_overlap(np.zeros((1, 2, 5), bool))["ratio"] is None


def test_own_label_stats_by_hand():
  L = 6
  d = np.array([[2, 3, 7]])      # the third never reached eps: left out
  own = np.zeros((1, 3, L))
  own[0, 0] = [0.5, 0.02, 0.0, 0, 0, 0]   # at d = 2: 0.02 > eps; d_own = 3 > 2
  own[0, 1] = [0.5, 0.0, 0.0, 0, 0, 0]    # at d = 3: 0; d_own = 2 <= 3
  own[0, 2] = 0.5
  s2 = np.tile(np.linspace(0.1, 0.6, L), (1, 3, 1))   # layer 2: 0.2, layer 3: 0.3
  te = 1 - s2
  st = bounds.own_label_stats(d, own, s2, te, 0.01, n_union=100)
  assert st["own_label_nets"] == 2
  assert st["own_label_err_at_depth"] == pytest.approx(0.01)
  assert st["own_label_depth"] == pytest.approx(2.5)
  assert st["own_label_holds_frac"] == 0.5
  assert st["ncc_agree_s2_at_depth"] == pytest.approx(0.25)
  assert st["ncc_agree_test_at_depth"] == pytest.approx(0.75)
  rows = curve_rows(assumptions={"own_err": np.zeros((2, 1, L)),
                                 "agree_s2": np.ones((2, 1, L)),
                                 "agree_test": np.ones((2, 1, L)),
                                 "s2_mistakes": np.ones((2, 1, 4), bool)})
  assert rows[0]["own_label_holds_frac"] == 1.0 and rows[0]["own_label_depth"] == 1.0
  assert rows[0]["mistake_overlap_ratio"] is None  # one clean seed per draw


def test_grid_warnings():
  w = bounds.grid_warnings((0.05, 0.1), (0.01, 0.05))
  assert len(w) == 1 and w[0].startswith("eps=0.01: no p <= 2*eps = 0.02 in the grid")
  w = bounds.grid_warnings((0.0, 0.05, 0.1), (0.01, 0.05), 0.047, (0.1,))
  assert len(w) == 2 and w[1].startswith("eps=0.01 alpha=0.1: no grid p in (0.02, 0.04273)")
  assert bounds.grid_warnings((0.01, 0.03, 0.05), (0.01, 0.05), 0.047, (0.1,)) == []
  assert bounds.grid_warnings((0.02,), (0.01,)) == []  # p = 2 eps: within the budget


def test_bound_curve_figure_written(tmp_path):
  from jaxdepth.papers.minimal_depth import figures
  rows = curve_rows()
  path = figures.bound_curve_figure(rows, 0.01, str(tmp_path / "c.png"), "hand")
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  zero = curve_rows(test=((0.0,), (0.0,)))   # linear axis when the test error is 0
  assert os.path.getsize(figures.bound_curve_figure(zero, 0.01, str(tmp_path / "z.png")))
  assert os.path.getsize(figures.bound_curve_figure(zero, 0.5, str(tmp_path / "e.png")))
