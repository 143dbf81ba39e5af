"""Diagonal (AC7) and circular-convolutional (AC8) linear networks for classification."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxdepth.configs.incremental import circular_conv as cc_config
from jaxdepth.configs.incremental import diagonal as diag_config
from jaxdepth.papers.incremental import circular_conv as cc
from jaxdepth.papers.incremental import diagonal as diag
from jaxdepth.papers.incremental import models, runner


def test_ac7_diagonal_networks(tmp_path):
  c = diag_config.get_config()
  c.progress, c.svm = False, False
  diag.validate(c)
  s = diag.run(c, str(tmp_path))
  ac7 = {n: [r for r in s["runs"] if r["depth"] == n] for n in c.depths}
  assert all(len(ac7[n]) == 5 and not any(r["diverged"] for r in ac7[n]) for n in ac7)
  # (a) cosine between beta/||beta|| and w*.
  assert all(r["cosine"] <= 0.9 for r in ac7[1])
  assert all(r["cosine"] >= 0.97 for r in ac7[2])
  assert all(r["cosine"] >= 0.985 for n in (3, 5) for r in ac7[n])
  # (b) N >= 2: support coordinates cross 0.2 in teacher order, every seed.
  for n in (2, 3, 5):
    assert all(r["support_order_increasing"] for r in ac7[n]), n
  # (c) off-support coordinates that ever cross 0.2.
  assert all(r["off_support_crossed"] >= 40 for r in ac7[1])
  assert all(r["off_support_crossed"] <= 12 for r in ac7[3])


# AC8 (docs/definitions.md, "Acceptance checks") is stated for 3 seeds, but each of its
# outcomes is a per-seed random event.  An independent plain-NumPy float64 GD of the AC8
# setup (``_numpy_conv_gd``) on ``np.random.default_rng(seed)`` streams (x first, then the
# N weight vectors) gives AC8's recorded values exactly for seeds 0-2 (depth-1 mass 0.658;
# cos 0.789 / 0.960 / 0.988 for N = 1 / 2 / 3 at sigma0 = 1e-3; k = 3 first in 3/3 seeds),
# and jaxdepth's model and trainer reproduce that GD step for step on the same draws (the
# two ``reference_stream`` tests below): there is no implementation discrepancy.  Over
# more seeds the same reference gives, per seed: depth-1 mass <= 0.8 in 33/40 seeds
# (0.65-0.89); depth-3 mass >= 0.95 in 168/199; k = 3 first at sigma0 = 0.01 in 151/200
# seeds for N = 2 and 136/199 for N = 3 (35/40 and 32/40 at sigma0 = 1e-3).  jaxdepth's
# shipped stream (float32, config seed 0, seeds 0-31) is in line: depth-1 mass <= 0.8 in
# 22/32 (median 0.77), depth-3 mass >= 0.95 in 26/32 (median 0.975), k = 3 first in 19/32
# (N = 2) and 17/32 (N = 3) at sigma0 = 0.01 (25/32 and 22/32 at 1e-3).  So the spec's
# "3/3" was partly luck of seeds 0-2, and for N = 3 at sigma0 = 0.01 the per-seed rate
# sits at the spec's 2-of-3 ratio (0.66 over 389 seeds: 136/199 on the NumPy stream, 65/96
# and 57/94 on jaxdepth's float64 and float32 streams for config seeds 0-2, 0.53-0.72 per
# 32-seed block; 0.75 for N = 2): no seed count makes "k = 3 first in >= 2/3 of seeds" a
# reliable assertion.
# lr = 0.01 is also at the edge of stability for N = 3: about 1-3% of depth-3 runs blow up
# in a growing period-2 oscillation (NumPy float64 1/240, jaxdepth float32 5/192, float64
# 2/192; 4 of the 5 float32 cases diverge in float64 too, about 100 steps later).
# The test therefore runs AC8_SEEDS seeds of the AC8 setup (sigma0 = 0.01) and asserts
# the spec's thresholds on aggregates that do not hinge on the seeds drawn:
#   (a) the median seed has depth-1 mass <= 0.8 and depth-3 mass >= 0.95;
#   (b) for N = 2 and 3 the count of seeds in which k = 3 crosses first is consistent
#       with the spec's rate of 2 in 3: an exact one-sided binomial test of "rate >= 2/3"
#       does not reject at the 1% level (with 24 seeds: at least 10 of 24; at the measured
#       rate 0.66 a correct model fails it with probability 0.004, a model with no
#       preference among the four frequencies, rate 1/4, with probability 0.95), and k = 3
#       is the frequency that crosses first most often;
#   diverged runs are excluded and must be at most 10% per depth.
AC8_SEEDS = 24
AC8_FREQS, AC8_D, AC8_N = (3.0, 4.0, 6.0, 12.0), 50, 100


def _numpy_teacher(d: int = AC8_D) -> np.ndarray:
  """rfft coefficients 0-3 = (3, 4, 6, 12), irfft to length d, unit norm (AC8's teacher)."""
  c = np.zeros(d // 2 + 1, complex)
  c[:4] = AC8_FREQS
  w = np.fft.irfft(c, n=d)
  return w / np.linalg.norm(w)


def _first_crosser(cross_t) -> int:
  """The target frequency that crossed strictly first (-1: none, or a tie)."""
  t = np.asarray(cross_t, float)
  k = int(np.argmin(t))
  return k if np.isfinite(t[k]) and np.sum(t == t[k]) == 1 else -1


@pytest.mark.slow
def test_ac8_circular_conv_networks(tmp_path):
  """AC8 (sigma0 = 0.01) on jaxdepth's stream, AC8_SEEDS seeds, aggregates (see above)."""
  c = cc_config.get_config()
  c.num_seeds, c.init_scales, c.progress, c.svm = AC8_SEEDS, (0.01,), False, False
  cc.validate(c)
  runs = cc.run(c, str(tmp_path))["runs"]
  assert c.depths == (1, 2, 3)
  ac8 = {}
  for n in c.depths:  # lr = 0.01 is at the edge of stability for depth 3 (see above)
    rn = [r for r in runs if r["depth"] == n]
    assert len(rn) == AC8_SEEDS and sum(r["diverged"] for r in rn) <= 0.1 * AC8_SEEDS, n
    ac8[n] = [r for r in rn if not r["diverged"]]
    assert all(r["converged"] for r in ac8[n]), n
  mass = {n: np.array([r["freq_mass"] for r in ac8[n]]) for n in ac8}
  # (a) Fraction of |rfft(beta)|^2 on k <= 3 (rfft bins as they are), median seed.
  # Measured (seeds 0-23, none diverged): depth 1 median 0.767 (0.678-0.859, <= 0.8 in
  # 16/24); depth 2 median 0.977 (0.949-0.994); depth 3 median 0.973 (0.860-1.000,
  # >= 0.95 in 19/24).
  assert np.median(mass[1]) <= 0.8, mass[1]
  assert np.median(mass[3]) >= 0.95, mass[3]
  # (b) k = 3 crosses 0.1 (the others 0.1 F_k / F_3) first.  Measured (seeds 0-23):
  # N = 2 in 15/24 seeds (binomial p = 0.41; k = 2 / 1 / 0 first in 4 / 3 / 1, one tie),
  # N = 3 in 13/24 (p = 0.14; k = 2 / 1 / 0 first in 5 / 3 / 2, one tie).
  for n in (2, 3):
    first = [_first_crosser(r["cross_t_freqs"]) for r in ac8[n]]
    hits = sum(r["largest_first"] for r in ac8[n])
    assert hits == first.count(3)
    assert stats.binom.cdf(hits, len(first), 2 / 3) > 0.01, (n, first)
    assert all(first.count(3) > first.count(k) for k in (0, 1, 2)), (n, first)


def _numpy_conv_gd(x, y, z_NxD, sigma0, record_every=1, stop_loss=0.01, lr=0.01,
                   max_steps=100_000):
  """Independent float64 NumPy GD of spec AC8 (exponential loss, mean; stop below 0.01).

  The model is written in the Fourier domain: N - 1 cross-correlation filters w_l and a
  dense vector v give f(x) = <beta, x> with rfft(beta) = rfft(v) prod_l rfft(w_l) (the
  conjugate of each cross-correlation cancels against the one of the inner product), and
  d loss / d q = irfft(conj(prod of the other factors' rfft) rfft(g)), g = d loss / d beta.
  Returns (stop step, first crossing step of |rfft(beta)_k| >= 0.1 F_k / F_3 for k <= 3,
  checked every ``record_every`` steps, beta at the stop).
  """
  n, d = x.shape
  depth = len(z_NxD)
  s = (1.5 * sigma0) ** (1 / depth) * d ** ((depth - 1) / (2 * depth)) / d
  params = [s * z for z in z_NxD]  # filters first, the dense vector last
  f_k = np.abs(np.fft.rfft(_numpy_teacher(d)))[:4]
  thr, cross = 0.1 * f_k / f_k[3], np.full(4, np.inf)
  for t in range(max_steps + 1):
    q = [np.fft.rfft(p) for p in params]
    beta = np.fft.irfft(np.prod(q, axis=0), n=d)
    if t % record_every == 0:
      amp = np.abs(np.fft.rfft(beta))[:4]
      cross = np.where(np.isinf(cross) & (amp >= thr), t, cross)
    e = np.exp(-y * (x @ beta))
    if e.mean() < stop_loss:
      return t, cross, beta
    g = np.fft.rfft(x.T @ (-y * e / n))
    params = [p - lr * np.fft.irfft(np.conj(np.prod(q[:i] + q[i + 1:], axis=0)) * g, n=d)
              for i, p in enumerate(params)]
  return None, cross, beta


def _reference_stream(seed: int, depth: int):
  """x, labels and the N unit-normal weight vectors from np.random.default_rng(seed)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((AC8_N, AC8_D))
  z = rng.standard_normal((depth, AC8_D))
  return x, np.where(x @ _numpy_teacher() >= 0, 1.0, -1.0), z


def _jaxdepth_on_reference_stream(seeds, depth: int, scales, record_every: int):
  """jaxdepth's conv model and trainer (float64) on the reference draws.

  Returns (Result with axes (seed, scale), betas [seed][scale], streams [seed]).
  """
  streams = [_reference_stream(s, depth) for s in seeds]
  d = AC8_D
  with jax.enable_x64(True):
    # (x, y) also stand in for the unused held-out set.
    data = diag.ClsData(*(jnp.asarray(np.stack([st[i] for st in streams])) for i in (0, 1, 0, 1)))
    z_SxNxD = jnp.asarray(np.stack([st[2] for st in streams]))

    def init(z, s0, data):  # the seed's unit normals (passed as the "key"), scaled as AC8
      s = (1.5 * s0) ** (1.0 / depth) * d ** ((depth - 1) / (2 * depth)) / d
      return models.CircConv(z[:-1] * s, z[-1] * s)

    prob = cc.conv_problem(d, depth, "exponential", 5)._replace(init=init)
    res = runner.train(prob, data, z_SxNxD, scales, cc.freq_thresholds(d, AC8_FREQS, 0.1),
                       lr=0.01, steps=100_000, record_every=record_every, log_every=1000,
                       stop_loss=0.01)
  betas = [[cc.beta_np(res.params.f_LxD[i, j], res.params.v_D[i, j])
            for j in range(len(scales))] for i in range(len(seeds))]
  return res, betas, streams


def test_conv_trainer_matches_numpy_gd_on_reference_stream():
  """Same draws: jaxdepth's stop step and every-step crossing times = the NumPy GD's."""
  seeds = (0, 1)
  for depth in (2, 3):
    res, betas, streams = _jaxdepth_on_reference_stream(seeds, depth, (0.01,), record_every=1)
    for i, (x, y, z) in enumerate(streams):
      stop, cross, beta = _numpy_conv_gd(x, y, z, 0.01)
      assert res.done_SxI[i, 0] and res.stop_step_SxI[i, 0] == stop, (depth, i)
      np.testing.assert_array_equal(res.cross_t_SxIxAxK[i, 0, 0, :4], cross)
      np.testing.assert_allclose(betas[i][0], beta, rtol=1e-7, atol=1e-9)


def test_ac8_spec_values_on_reference_stream():
  """The spec's observed AC8 values (§5.4, §7) are the reference stream's seeds 0-2."""
  w_star = _numpy_teacher()
  scales = (0.01, 0.001)
  got = {}  # (depth, sigma0) -> per-seed records
  for depth in (1, 2, 3):
    res, betas, streams = _jaxdepth_on_reference_stream((0, 1, 2), depth, scales, 10)
    assert np.all(res.done_SxI), depth
    for j, s0 in enumerate(scales):
      got[depth, s0] = [cc.freq_record(betas[i][j], w_star, 4, res.cross_t_SxIxAxK[i, j, 0],
                                       st[0], st[1]) for i, st in enumerate(streams)]
  # AC8's recorded numbers are those of sigma0 = 1e-3 (depth 1 does not depend on sigma0): seed 0
  # cos 0.789 / 0.960 / 0.988 and depth-1 mass 0.658 ("0.79 / 0.96 / 0.99", "0.66");
  # masses 0.949-0.994 for depth 2 ("0.95 to 0.99") and 0.985-1.000 for depth 3 ("0.98
  # to 1.00").  (At sigma0 = 0.01 seed 0 has depth-2 mass 0.942 and cos 0.955.)
  lo = got[1, 0.001], got[2, 0.001], got[3, 0.001]
  np.testing.assert_array_equal(np.round([g[0]["cosine"] for g in lo], 2), [0.79, 0.96, 0.99])
  assert round(lo[0][0]["freq_mass"], 2) == 0.66
  assert all(0.945 <= r["freq_mass"] < 0.995 for r in lo[1]), lo[1]
  assert all(0.975 <= r["freq_mass"] for r in lo[2]), lo[2]
  # AC8 itself (sigma0 = 0.01), all three seeds: depth-1 mass <= 0.8 (0.658, 0.788,
  # 0.710), depth-3 mass >= 0.95 (0.983, 0.990, 1.000); k = 3 crosses first for N = 2, 3
  # in 3/3 seeds at both init scales.
  assert all(r["freq_mass"] <= 0.8 for r in got[1, 0.01])
  assert all(r["freq_mass"] >= 0.95 for r in got[3, 0.01])
  assert all(r["largest_first"] for n in (2, 3) for s0 in scales for r in got[n, s0])


def test_circular_correlation_equals_circulant_matmul():
  with jax.enable_x64(True):
    k1, k2 = jax.random.split(jax.random.key(0))
    d = 7
    w = jax.random.normal(k1, (d,))
    z = jax.random.normal(k2, (3, d))
    got = np.asarray(models.circ_correlate(w, z))
  w, z = np.asarray(w), np.asarray(z)
  ref = np.array([[sum(w[k] * z[b, (j + k) % d] for k in range(d)) for j in range(d)]
                  for b in range(3)])
  np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_beta_by_probing_is_the_end_to_end_map():
  with jax.enable_x64(True):
    d = 8
    p = models.circ_conv_init(jax.random.key(2), d, 3, 0.5)
    x = jax.random.normal(jax.random.key(3), (5, d))
    f = models.circ_conv_apply(p, x)
    beta = models.circ_conv_beta(p)
    np.testing.assert_allclose(f, x @ beta, rtol=1e-10)
    np.testing.assert_allclose(cc.beta_np(p.f_LxD, p.v_D), beta, rtol=1e-10)
    # Fourier side: |B_k| = |W1_k| |W2_k| |V_k| (cross-correlation conjugates the filters).
    amp = np.abs(np.fft.rfft(np.asarray(beta)))
    prod = np.prod([np.abs(np.fft.rfft(np.asarray(w))) for w in (*p.f_LxD, p.v_D)], axis=0)
    np.testing.assert_allclose(amp, prod, rtol=1e-9)


def test_teacher_spectrum():
  w = cc.teacher(50, (3.0, 4.0, 6.0, 12.0))
  amp = np.abs(np.fft.rfft(w))
  np.testing.assert_allclose(amp[:4] / amp[3], np.array([3, 4, 6, 12]) / 12, rtol=1e-12)
  assert np.allclose(amp[4:], 0, atol=1e-12) and np.isclose(np.linalg.norm(w), 1)


def test_signed_beta_starts_at_zero_and_margin_losses():
  with jax.enable_x64(True):
    p = models.signed_init(5, 3, 1e-2)
    assert np.all(models.signed_beta(p, 3) == 0)
    m = jnp.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(models.margin_loss(m, "exponential"), np.mean(np.exp(-m)))
    np.testing.assert_allclose(models.margin_loss(m, "logistic"), np.mean(np.log1p(np.exp(-m))))
