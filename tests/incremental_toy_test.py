"""Toy model sigma = u^N: spec AC1 (order, time scaling, N = 1) and AC2 (depth separation)."""

import math

import jax
import numpy as np

from jaxdepth.papers.incremental import metrics, toy

TARGETS = (12.0, 6.0, 4.0, 3.0)


def test_ac1_order_and_time_scaling():
  """AC1: GD on u with the lr of docs/definitions.md "Models", float64, every step;
  N in 1..4, sigma0 in 1e-3..1e-6."""
  ac1 = {}
  with jax.enable_x64(True):
    for n in (1, 2, 3, 4):
      res, lr = toy.train_toy(TARGETS, n, (1e-3, 1e-4, 1e-6), steps=1_600_000,
                              log_every=1000, stop_loss=1e-7)
      assert not res.diverged_SxI.any()
      for i, s0 in enumerate((1e-3, 1e-4, 1e-6)):
        m = metrics.regression_metrics(res.cross_t_SxIxAxK[0, i],
                                       res.cross_snap_SxIxAxKxK[0, i], TARGETS)
        ac1[n, s0] = dict(m, lr=lr)
  # (a) t50 strictly increasing for N >= 2.
  for n in (2, 3, 4):
    for s0 in (1e-3, 1e-4, 1e-6):
      assert metrics.strictly_increasing(ac1[n, s0]["t50"]), (n, s0, ac1[n, s0]["t50"])
  # (b) N >= 3, sigma0 <= 1e-4: t50(i)/t50(1) within 5% of sigma*_1/sigma*_i.
  for n in (3, 4):
    for s0 in (1e-4, 1e-6):
      t50 = ac1[n, s0]["t50"]
      np.testing.assert_allclose(t50 / t50[0], TARGETS[0] / np.asarray(TARGETS), rtol=0.05)
  # (c) 1e-4 -> 1e-6: t50 x 100^((N-2)/N) for N = 3, 4; N = 2 shifts by ln(100)/(4 sigma*_i).
  for n in (3, 4):
    ratio = ac1[n, 1e-6]["t50"] / ac1[n, 1e-4]["t50"]
    np.testing.assert_allclose(ratio, 100 ** ((n - 2) / n), rtol=0.10)
  shift = (ac1[2, 1e-6]["t50"] - ac1[2, 1e-4]["t50"]) * ac1[2, 1e-6]["lr"]
  np.testing.assert_allclose(shift, math.log(100) / (4 * np.asarray(TARGETS)), rtol=0.10)
  # (d) N = 1: next_frac_at_t90 = 0.90 +- 0.01 for every pair.
  for s0 in (1e-3, 1e-4, 1e-6):
    np.testing.assert_allclose(ac1[1, s0]["next_frac_at_t90"], 0.90, atol=0.01)


def test_ac2_depth_separation_on_close_values():
  with jax.enable_x64(True):
    nf = {}
    for n in (2, 3, 4):
      res, _ = toy.train_toy((1.0, 0.9), n, (1e-4, 1e-6), steps=1_200_000, log_every=1000,
                             stop_loss=1e-7)
      for i, s0 in enumerate((1e-4, 1e-6)):
        m = metrics.regression_metrics(res.cross_t_SxIxAxK[0, i],
                                       res.cross_snap_SxIxAxKxK[0, i], (1.0, 0.9))
        nf[n, s0] = m["next_frac_at_t90"][0]
  assert nf[2, 1e-4] >= 0.5 and nf[2, 1e-6] >= 0.5
  assert nf[3, 1e-4] <= 0.15
  assert nf[4, 1e-4] <= 0.03 and nf[4, 1e-6] <= 1e-3


def test_streaming_crossings_equal_trajectory_reference():
  """t_alpha and next_frac computed in the scan equal those of the stored trajectory."""
  with jax.enable_x64(True):
    res, _ = toy.train_toy(TARGETS, 3, (1e-2,), steps=20_000, log_every=1)
  vals = res.logged_SxIxTxJ[0, 0]
  ref_t = metrics.crossing_times(vals, res.steps_T, metrics.thresholds(TARGETS))
  np.testing.assert_array_equal(res.cross_t_SxIxAxK[0, 0], ref_t)
  ref_nf = metrics.next_frac_from_trajectory(vals, res.steps_T, TARGETS)
  got = metrics.next_frac_at_t90(res.cross_snap_SxIxAxKxK[0, 0, 2],
                                 res.cross_t_SxIxAxK[0, 0, 2], TARGETS)
  np.testing.assert_allclose(got, ref_nf, rtol=1e-12)


def test_gd_matches_gradient_flow_closed_form_depth2():
  """N = 2: sigma(t) = s* / (1 + (s*/s0 - 1) e^{-4 s* t}) (gradient flow,
  docs/definitions.md "Models"), small lr."""
  with jax.enable_x64(True):
    lr = toy.toy_lr(2, (2.0,), factor=0.005)
    res, lr = toy.train_toy((2.0,), 2, (1e-3,), steps=4000, lr=lr, log_every=100)
  t = res.steps_T * lr
  flow = 2.0 / (1 + (2.0 / 1e-3 - 1) * np.exp(-8.0 * t))
  np.testing.assert_allclose(res.logged_SxIxTxJ[0, 0, :, 0], flow, rtol=0.01, atol=1e-4)


def test_large_lr_flags_divergence_instead_of_nan():
  with jax.enable_x64(True):
    res, _ = toy.train_toy(TARGETS, 3, (1e-2, 1e-3), steps=2000, lr=1.0, log_every=10)
  assert res.diverged_SxI.all()
  assert np.isfinite(res.logged_SxIxTxJ).all()  # frozen at the last finite parameters
