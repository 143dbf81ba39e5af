"""Quadratic network and its bias: spec AC6 (soft, seed-sensitive).

AC6 is a 4-seed check whose no-bias half depends strongly on the random stream:
t50(2)/t50(1) without a bias is heavy-tailed over data sets (a plain NumPy float64
GD over ``np.random.default_rng(seed)`` seeds 0-19 gives ratios 0.38 to 3.0, mean 1.51,
median 1.32), so "mean over 4 seeds <= 1.3" holds for some blocks of 4 seeds and not
for others.  The spec's observed table (§5.2) is reproduced to the recording interval
by drawing each seed's data from ``np.random.default_rng(seed)`` (x first, then the
orthogonal init, then test inputs), which is what ``test_ac6_on_the_reference_stream``
does: it runs jaxdepth's own trainer and quadratic model on those data, so it checks
jaxdepth's dynamics against the spec's numbers at the spec's thresholds.  The second
test runs the shipped config on jaxdepth's own (jax.random) stream and asserts what
holds on any stream: the with-bias thresholds, the test MSE and that the bias
separates the first two values more than no bias does.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.configs.incremental import quadratic as q_config
from jaxdepth.papers.incremental import metrics, models, runner
from jaxdepth.papers.incremental import quadratic as quad

TARGETS = (1.0, 1 / 2, 1 / 3, 1 / 4)
D, N, N_TEST, SIGMA0, LR, STEPS = 20, 100, 2000, 1e-4, 1e-3, 30_000


def _reference_stream(seed: int):
  """x, the orthogonal init and fresh test inputs from np.random.default_rng(seed)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((N, D))
  q, _ = np.linalg.qr(rng.standard_normal((D, D)))
  xt = rng.standard_normal((N_TEST, D))
  lam = np.zeros(D)
  lam[:4] = TARGETS
  return x, (x**2) @ lam, q, xt, (xt**2) @ lam


def _numpy_t50(seed: int, use_bias: bool, steps: int) -> np.ndarray:
  """Independent float64 NumPy GD: t50 of the sorted eigenvalues, checked every step."""
  x, y, q, _, _ = _reference_stream(seed)
  w, b = np.sqrt(SIGMA0) * q, (y.mean() if use_bias else 0.0)
  t50 = np.full(4, np.inf)
  for t in range(steps + 1):
    ev = np.sort(np.linalg.eigvalsh(w.T @ w))[::-1][:4]
    t50 = np.where(np.isinf(t50) & (ev >= 0.5 * np.asarray(TARGETS)), t, t50)
    z = x @ w.T
    r = (z**2).sum(1) + b - y
    w = w - LR * (4.0 / N) * (z * r[:, None]).T @ x  # d/dW mean r^2
    b = b - LR * 2.0 * r.mean() if use_bias else b
  return t50


def _run_reference(use_bias: bool, seeds=(0, 1, 2, 3), steps: int = STEPS):
  """jaxdepth's trainer on the reference stream: (t50 (S, 4), test rel. MSE (S,))."""
  streams = [_reference_stream(s) for s in seeds]
  with jax.enable_x64(True):
    data = quad.QuadData(*(jnp.asarray(np.stack([s[i] for s in streams])) for i in (0, 1, 3, 4)))
    q_SxDxD = jnp.asarray(np.stack([s[2] for s in streams]))
    prob = quad.quadratic_problem(D, use_bias, top_k=5)
    # The init reads the seed's orthogonal matrix (passed as the "key") instead of drawing one.
    prob = prob._replace(init=lambda q, s0, d: models.Quadratic(
        jnp.sqrt(s0) * q, jnp.mean(d.y_B) if use_bias else jnp.zeros(())))
    res = runner.train(prob, data, q_SxDxD, (SIGMA0,), metrics.thresholds(TARGETS, k=5),
                       lr=LR, steps=steps, record_every=50, log_every=50, snapshots=True)
  t50 = res.cross_t_SxIxAxK[:, 0, 1, :4]
  mse = np.array([quad.test_rel_mse(np.asarray(res.params.w_HxD[s, 0]),
                                    float(res.params.b[s, 0]), streams[s][3], streams[s][4],
                                    use_bias) for s in range(len(seeds))])
  return t50, mse


def test_trainer_matches_numpy_gd_on_reference_stream():
  """Same data and init: jaxdepth's t50 = the NumPy GD's every-step t50, rounded up to 50."""
  for use_bias in (False, True):
    t50, _ = _run_reference(use_bias, seeds=(0, 2), steps=2500)
    for row, seed in zip(t50, (0, 2)):
      ref = _numpy_t50(seed, use_bias, 2500)
      want = np.where(np.isfinite(ref), np.ceil(ref / 50) * 50, np.inf)
      np.testing.assert_array_equal(row, want)


def test_ac6_on_the_reference_stream():
  """AC6 at its thresholds on seeds 0-3 (its recorded table, to 50 steps)."""
  t50_b, mse_b = _run_reference(True)
  t50_n, mse_n = _run_reference(False)
  # With a bias started at mean(y): t50 strictly increasing in >= 3 of 4 seeds (all 4 here:
  # 900/1850/4100/8950, 350/1000/2900/5950, 1100/2050/2800/5600, 650/2800/5900/6700),
  # mean t50(2)/t50(1) >= 1.8 (2.77).  The spec's table is the same, 50 steps earlier:
  # it labels a crossing by the record before it, jaxdepth by the first record at or after.
  assert sum(metrics.strictly_increasing(r) for r in t50_b) >= 3, t50_b
  assert np.mean(t50_b[:, 1] / t50_b[:, 0]) >= 1.8, t50_b
  # Without a bias the top values are learned together: mean ratio <= 1.3 (0.93; t50
  # 300/300, 200/200, 550/300, 300/350).  Test rel. MSE: 0.000-0.011 with, 0.011-0.027 without.
  assert np.mean(t50_n[:, 1] / t50_n[:, 0]) <= 1.3, t50_n
  # Final test relative MSE <= 0.1 in both cases.
  assert np.all(mse_b <= 0.1) and np.all(mse_n <= 0.1), (mse_b, mse_n)


def test_ac6_bias_on_jaxdepth_stream(tmp_path):
  """The shipped config (jax.random stream, seeds 0-3): what holds on any stream."""
  c = q_config.get_config()
  c.progress = False
  quad.validate(c)
  s = quad.run(c, str(tmp_path))
  ac6 = {b: [r for r in s["runs"] if r["bias"] == b] for b in ("none", "mean_y")}
  ratio = {b: np.mean([r["t50"][1] / r["t50"][0] for r in ac6[b]]) for b in ac6}
  assert len(ac6["mean_y"]) == 4
  assert sum(metrics.strictly_increasing(r["t50"]) for r in ac6["mean_y"]) >= 3
  assert ratio["mean_y"] >= 1.8
  for b in ("none", "mean_y"):
    assert all(r["test_rel_mse"] <= 0.1 for r in ac6[b]), [r["test_rel_mse"] for r in ac6[b]]
  # The bias separates the first two values more than no bias does.
  assert ratio["mean_y"] > ratio["none"]


def test_orthogonal_init_gives_sigma0_identity():
  with jax.enable_x64(True):
    p = models.quadratic_init(jax.random.key(0), 6, 1e-4, 0.0)
    np.testing.assert_allclose(p.w_HxD.T @ p.w_HxD, 1e-4 * np.eye(6), atol=1e-15)
