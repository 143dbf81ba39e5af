"""collapse.py against independent numpy float64 references and hand-made cases."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.measure import collapse


def np_cdnv(f, y, C):
  """docs/definitions.md, "CDNV", in float64 numpy, pairs looped explicitly."""
  f = np.asarray(f, np.float64)
  mus, vars_ = {}, {}
  for c in range(C):
    fc = f[y == c]
    if len(fc):
      mus[c] = fc.mean(0)
      vars_[c] = np.mean(np.sum((fc - mus[c]) ** 2, axis=1))
  vals = [(vars_[i] + vars_[j]) / (2 * np.sum((mus[i] - mus[j]) ** 2))
          for i, j in itertools.combinations(sorted(mus), 2)]
  return float(np.mean(vals))


def np_ncc_pred(f, means):
  d = ((np.asarray(f, np.float64)[:, None] - np.asarray(means, np.float64)[None]) ** 2).sum(-1)
  return d.argmin(1)


@pytest.fixture
def blobs():
  rng = np.random.default_rng(0)
  C, D, n = 5, 12, 300
  mu = rng.normal(size=(C, D)) * 2
  y = rng.integers(0, C, n)
  f = (mu[y] + rng.normal(size=(n, D))).astype(np.float32)
  return f, y.astype(np.int32), C


def test_cdnv_hand_made_two_classes():
  # class 0: points (0,+-1) -> mean (0,0), var 1; class 1: (4, +-2) -> mean (4,0), var 4
  f = jnp.array([[0., 1], [0, -1], [4, 2], [4, -2]])
  y = jnp.array([0, 0, 1, 1])
  assert float(collapse.cdnv(f, y, 2)) == pytest.approx((1 + 4) / (2 * 16))


def test_metrics_match_numpy_float64(blobs):
  f, y, C = blobs
  np.testing.assert_allclose(collapse.cdnv(f, y, C), np_cdnv(f, y, C), rtol=1e-5)
  means = collapse.class_means(f, y, C)
  ref_means = np.stack([f[y == c].astype(np.float64).mean(0) for c in range(C)])
  np.testing.assert_allclose(means, ref_means, rtol=1e-5, atol=1e-6)
  pred = collapse.ncc_predict(f, means)
  np.testing.assert_array_equal(pred, np_ncc_pred(f, ref_means))
  assert float(collapse.ncc_accuracy(f, y, means)) == pytest.approx(
      np.mean(np_ncc_pred(f, ref_means) == y))


def test_nearly_collapsed_float32_is_accurate():
  # The two-pass variance of docs/definitions.md, "CDNV": |mu| = 100, within-class
  # std 1e-3; single-pass float32 returns 0 here.
  rng = np.random.default_rng(1)
  C, D, n = 4, 128, 400
  mu = rng.normal(size=(C, D))
  mu *= 100 / np.linalg.norm(mu, axis=1, keepdims=True)
  y = np.arange(n) % C
  f64 = mu[y] + 1e-3 * rng.normal(size=(n, D))
  got = float(collapse.cdnv(jnp.asarray(f64, jnp.float32), jnp.asarray(y), C))
  want = np_cdnv(f64.astype(np.float32), y, C)
  assert abs(got - want) / want < 1e-3


def test_invariances(blobs):
  f, y, C = blobs
  rng = np.random.default_rng(2)
  q, _ = np.linalg.qr(rng.normal(size=(f.shape[1], f.shape[1])))
  g = (f @ q + 7.0).astype(np.float32)
  base = float(collapse.cdnv(f, y, C))
  assert float(collapse.cdnv(g, y, C)) == pytest.approx(base, rel=1e-4)
  assert float(collapse.cdnv(3.5 * f, y, C)) == pytest.approx(base, rel=1e-4)
  pf = collapse.ncc_predict(f, collapse.class_means(f, y, C))
  pg = collapse.ncc_predict(g, collapse.class_means(g, y, C))
  np.testing.assert_array_equal(pf, pg)


def test_ncc_perfect_on_collapsed_and_chance_on_shuffled():
  C = 6
  pts = np.eye(C, dtype=np.float32) * 3
  y = np.repeat(np.arange(C), 20)
  f = pts[y]
  assert float(collapse.ncc_accuracy(f, y, collapse.class_means(f, y, C))) == 1.0
  rng = np.random.default_rng(3)
  f = rng.normal(size=(6000, 20)).astype(np.float32)
  y = rng.integers(0, C, 6000)
  acc = float(collapse.ncc_accuracy(f, y, collapse.class_means(f, y, C)))
  assert abs(acc - 1 / C) < 0.05


def test_empty_class_never_predicted_and_excluded():
  rng = np.random.default_rng(4)
  C = 4
  y = rng.integers(0, 3, 200)  # class 3 empty
  f = (np.eye(C)[y] * 5 + rng.normal(size=(200, C))).astype(np.float32)
  st = collapse.class_stats(f, y, C)
  res = collapse.cdnv_from_stats(st.counts_C, st.means_CxD, st.m2_C)
  assert int(res.num_empty_classes) == 1
  assert int(res.num_degenerate_pairs) == 0
  np.testing.assert_allclose(res.value, np_cdnv(f, y, C), rtol=1e-5)
  scores = collapse.ncc_scores(f, st.means_CxD, st.counts_C, st.ref_D)
  assert not np.any(np.asarray(jnp.argmax(scores, 1)) == 3)


def test_coincident_means_are_degenerate_not_nan():
  f = np.array([[0., 0], [2, 0], [1, 1], [1, -1], [10, 0], [12, 0]], np.float32)
  y = np.array([0, 0, 1, 1, 2, 2])  # classes 0 and 1 share the mean (1, 0)
  st = collapse.class_stats(f, y, 3)
  res = collapse.cdnv_from_stats(st.counts_C, st.means_CxD, st.m2_C)
  assert int(res.num_degenerate_pairs) == 1
  mu = {0: np.array([1., 0]), 1: np.array([1., 0]), 2: np.array([11., 0])}
  var = {0: 1.0, 1: 1.0, 2: 1.0}
  want = np.mean([(var[i] + var[2]) / (2 * np.sum((mu[i] - mu[2]) ** 2)) for i in (0, 1)])
  assert float(res.value) == pytest.approx(want)
  only = collapse.cdnv_from_stats(st.counts_C[:2], st.means_CxD[:2], st.m2_C[:2])
  assert np.isnan(float(only.value))  # no valid pair left: NaN (definitions.md, "CDNV")


def test_effective_depth_first_and_suffix():
  err = jnp.array([0.5, 0.005, 0.2, 0.0, 0.001])
  assert int(collapse.effective_depth(err, 0.01)) == 2
  assert int(collapse.effective_depth(err, 0.01, suffix=True)) == 4
  assert int(collapse.effective_depth(err, 0.6)) == 1
  never = jnp.array([0.5, 0.4, 0.3])
  assert int(collapse.effective_depth(never, 0.01)) == 4
  assert int(collapse.effective_depth(never, 0.01, suffix=True)) == 4
  both = jax.vmap(collapse.effective_depth, in_axes=(None, 0))(err, jnp.array([0.01, 0.3]))
  np.testing.assert_array_equal(both, [2, 2])


def test_vmappable_over_layers_and_runs(blobs):
  f, y, C = blobs
  f_RxLxNxD = jnp.stack([jnp.stack([f, 2 * f])] * 3)
  v = jax.jit(jax.vmap(jax.vmap(lambda g: collapse.cdnv(g, y, C))))(f_RxLxNxD)
  assert v.shape == (3, 2)
  np.testing.assert_allclose(v, np_cdnv(f, y, C), rtol=1e-4)
