"""nc.collapse_metrics (NC1-NC4) and the NCC empty-class fix, against an independent
numpy float64 implementation written here from the definitions (issue 22)."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdepth
from jaxdepth import measure
from jaxdepth.measure import collapse, nc

FLOAT_KEYS = [k for k in nc.KEYS if k != "counts"]
BETWEEN_KEYS = ["cdnv", "nc1", "nc1_ratio", "nc2_equinorm", "nc2_equiangular",
                "nc2_maxangle", "nc2_etf_error", "nc3_duality"]


def np_metrics(f, y, C, W=None, pred=None):
  """The definitions, in float64 numpy, over the present classes, pairs looped."""
  f = np.asarray(f, np.float64)
  y = np.asarray(y)
  N, D = f.shape
  counts = np.bincount(y, minlength=C)
  P = [c for c in range(C) if counts[c] > 0]  # present classes
  Ce = len(P)
  mu = {c: f[y == c].mean(0) for c in P}
  mu_G = f.mean(0)
  M = np.stack([mu[c] - mu_G for c in P])  # (C_eff, D)
  R = f - np.stack([mu[c] for c in y])
  Sw = R.T @ R / N
  Sb = M.T @ M / Ce
  # Any cutoff between the rounding eigenvalues of Sigma_B (~1e-32 relative here, its
  # null direction) and the real ones (>= 1e-3 relative on these well-conditioned
  # cases) gives the same pseudo-inverse; 1e-9 is far from both.
  Sb_pinv = np.linalg.pinv(Sb, rcond=1e-9, hermitian=True)
  dist = np.stack([((f - mu[c]) ** 2).sum(1) for c in P], axis=1)
  ncc = np.array(P)[dist.argmin(1)]  # argmin: the first (lowest present class) on ties
  out = {"ncc_acc": np.mean(ncc == y), "counts": counts}
  var = {c: ((f[y == c] - mu[c]) ** 2).sum(1).mean() for c in P}
  norms = np.linalg.norm(M, axis=1)
  pairs = [(a, b) for a in range(Ce) for b in range(Ce) if a != b]  # ordered, c != c'
  cos = np.array([M[a] @ M[b] / (norms[a] * norms[b]) for a, b in pairs])
  G = M @ M.T
  if Ce >= 2:
    out.update(
        cdnv=np.mean([(var[i] + var[j]) / (2 * ((mu[i] - mu[j]) ** 2).sum())
                      for i, j in itertools.combinations(P, 2)]),
        nc1=np.trace(Sw @ Sb_pinv) / Ce,
        nc1_ratio=np.trace(Sw) / np.trace(Sb),
        nc2_equinorm=norms.std() / norms.mean(),
        nc2_equiangular=cos.std(),
        nc2_maxangle=np.mean(np.abs(cos + 1 / (Ce - 1))),
        nc2_etf_error=np.linalg.norm(
            G / np.linalg.norm(G) - (np.eye(Ce) - 1 / Ce) / np.sqrt(Ce - 1)),
    )
    if W is not None:
      Wp = np.asarray(W, np.float64)[P]
      out["nc3_duality"] = np.linalg.norm(Wp / np.linalg.norm(Wp) - M / np.linalg.norm(M))
  if pred is not None:
    out["nc4_agreement"] = np.mean(np.asarray(pred) == ncc)
  return {k: out.get(k, np.nan) for k in nc.KEYS}


def blobs(seed=0, C=5, D=12, N=300, absent=()):
  """Well-conditioned clusters: means of scale 2, unit noise; classes in ``absent``
  have no sample. Returns float64 features, labels, a classifier and predictions."""
  rng = np.random.default_rng(seed)
  mu = rng.normal(size=(C, D)) * 2
  classes = np.array([c for c in range(C) if c not in absent])
  y = classes[rng.integers(0, len(classes), N)]
  f = mu[y] + rng.normal(size=(N, D)) + 3.0  # an offset: mu_G != 0
  W = mu + 0.5 * rng.normal(size=(C, D))
  pred = np.where(rng.random(N) < 0.8, y, rng.integers(0, C, N))
  return f, y.astype(np.int32), C, W, pred.astype(np.int32)


def check(got, want, rtol, atol=0.0):
  assert set(got) == set(want)
  np.testing.assert_array_equal(got["counts"], want["counts"])
  for k in FLOAT_KEYS:
    np.testing.assert_allclose(np.asarray(got[k], np.float64), want[k], rtol=rtol, atol=atol,
                               err_msg=k)


CASES = [dict(seed=0), dict(seed=1, C=6, D=3),  # D < C - 1: Sigma_B of rank D
         dict(seed=2, C=5, absent=(2,))]


@pytest.mark.parametrize("case", CASES)
def test_random_features_float64_to_1e10(case):
  # float64 end to end: the only error is rounding (~1e-16) times the conditioning of
  # these small problems (Sigma_B's eigenvalue spread ~1e2), so 1e-10 has a wide margin
  # (measured: <= 3e-15).
  f, y, C, W, pred = blobs(**case)
  want = np_metrics(f, y, C, W, pred)
  with jax.enable_x64(True):
    got = nc.collapse_metrics(jnp.asarray(f), jnp.asarray(y), C, W, pred)
    assert all(got[k].dtype == jnp.float64 for k in FLOAT_KEYS)
    check(got, want, rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_random_features_float32_to_1e5(case):
  # float32 (eps 6e-8): sums over N = 300 and the inverse of Sigma_B (eigenvalue spread
  # ~1e2) give up to ~1e-6 relative (measured: <= 6e-7); 1e-5 bounds it. The reference
  # gets the same float32 inputs in float64, so only the computation's rounding is
  # measured. NCC decisions have margins far above rounding here, so ncc_acc and nc4
  # count the same samples (their float32 means differ by rounding only).
  f, y, C, W, pred = blobs(**case)
  f32, W32 = f.astype(np.float32), W.astype(np.float32)
  want = np_metrics(f32, y, C, W32, pred)
  got = nc.collapse_metrics(f32, y, C, W32, pred)
  assert all(got[k].dtype == jnp.float32 for k in FLOAT_KEYS)
  check(got, want, rtol=1e-5)


def simplex_etf(C, D, scale, rotate, seed=0):
  """(C, D) rows of a simplex ETF (|row| = scale, cos = -1/(C-1)), optionally rotated."""
  e = np.sqrt(C / (C - 1)) * (np.eye(C) - 1 / C)
  e = np.concatenate([e, np.zeros((C, D - C))], axis=1) * scale
  if rotate:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(D, D)))
    e = e @ q
  return e


@pytest.mark.parametrize("x64", [True, False])
@pytest.mark.parametrize("scale,rotate", [(1.0, False), (7.5, True)])
def test_exactly_collapsed_simplex_etf(x64, scale, rotate):
  C, D, per = 4, 7, 5
  etf = simplex_etf(C, D, scale, rotate)
  offset = np.linspace(-1, 1, D) * scale  # mu_G; M is its rows again (balanced classes)
  y = np.repeat(np.arange(C), per).astype(np.int32)
  f = etf[y] + offset
  dt = np.float64 if x64 else np.float32
  # First-order quantities (cosines, norms, the ETF error, nc3) carry the rounding of
  # the class means, ~eps * |offset| / scale: 1e-12 in float64, 1e-5 in float32. NC1
  # and its ratio are quadratic in that rounding (Sigma_W ~ (eps * scale)^2).
  first, second = (1e-12, 1e-20) if x64 else (1e-5, 1e-10)
  with jax.enable_x64(x64):
    m = nc.collapse_metrics(f.astype(dt), y, C, classifier=(2.5 * etf).astype(dt),
                            predictions=y)
    assert m["nc1"].dtype == dt
  for k in ("nc1", "nc1_ratio"):
    assert abs(float(m[k])) <= second, (k, m[k])
  for k in ("nc2_etf_error", "nc2_equinorm", "nc2_equiangular", "nc2_maxangle",
            "nc3_duality"):
    assert abs(float(m[k])) <= first, (k, m[k])
  assert float(m["ncc_acc"]) == 1.0 and float(m["nc4_agreement"]) == 1.0
  assert float(m["cdnv"]) <= second
  np.testing.assert_array_equal(m["counts"], [per] * C)


def test_ncc_empty_class_never_wins():
  # Train on classes 0..2 of C = 4 (class 3 absent, centres 5 e_c); test samples of
  # classes 0..2 at 2 e_c are nearer the origin (2) than their centre (3), and the test
  # set also holds class-3 samples at the origin. A zero row for class 3 (the old
  # class_means) wins all of them: wrong for the first, "right" for the second.
  rng = np.random.default_rng(5)
  C, D = 4, 4
  ytr = np.repeat(np.arange(3), 40)
  ftr = (5 * np.eye(C)[ytr] + 0.3 * rng.normal(size=(120, D))).astype(np.float32)
  yte = np.concatenate([np.repeat(np.arange(3), 10), np.full(6, 3)])
  fte = np.concatenate([2 * np.eye(C)[np.repeat(np.arange(3), 10)],
                        np.zeros((6, D))]) + 0.05 * rng.normal(size=(36, D))
  fte = fte.astype(np.float32)
  means = collapse.class_means(ftr, ytr, C)
  assert np.isnan(np.asarray(means[3])).all()  # the empty class is marked, not zero
  mu = np.stack([ftr[ytr == c].astype(np.float64).mean(0) for c in range(3)])
  want = np.mean(np_ncc_present(fte, mu) == yte)  # numpy: only classes 0..2 vote
  assert want == pytest.approx(30 / 36)
  assert float(collapse.ncc_accuracy(fte, yte, means)) == pytest.approx(want, abs=1e-7)
  assert float(jaxdepth.ncc_accuracy(fte, yte, means)) == pytest.approx(want, abs=1e-7)
  # The current signature with counts (per_layer's call, zero rows) gives the same.
  st = collapse.class_stats(ftr, ytr, C)
  zero_rows = jnp.nan_to_num(means)
  assert float(collapse.ncc_accuracy(fte, yte, zero_rows, st.counts_C)) == pytest.approx(
      want, abs=1e-7)
  assert float(collapse.ncc_accuracy(fte, yte, means, st.counts_C)) == pytest.approx(
      want, abs=1e-7)
  # The old behaviour (zero row, no counts) would be caught: class 3 wins everywhere.
  old = float(collapse.ncc_accuracy(fte, yte, zero_rows))
  assert old == pytest.approx(6 / 36, abs=1e-7) and old != pytest.approx(want)
  # With every class present nothing changes (predictions as numpy's argmin).
  full = collapse.class_means(fte, yte, C)
  np.testing.assert_array_equal(
      collapse.ncc_predict(fte, full),
      np_ncc_present(fte, np.stack([fte[yte == c].astype(np.float64).mean(0)
                                    for c in range(C)])))


def np_ncc_present(f, mu_present):
  return ((np.asarray(f, np.float64)[:, None] - mu_present[None]) ** 2).sum(-1).argmin(1)


def test_absent_class_in_collapse_metrics_is_left_out():
  f, y, C, W, pred = blobs(seed=3, C=5, absent=(0, 3))
  m = nc.collapse_metrics(f.astype(np.float32), y, C, W.astype(np.float32), pred)
  assert m["counts"][0] == 0 and m["counts"][3] == 0
  want = np_metrics(f.astype(np.float32), y, C, W.astype(np.float32), pred)
  check(m, want, rtol=1e-5)


def test_fewer_than_two_classes_and_non_finite():
  f, y, C, W, pred = blobs(seed=4, C=4, absent=(0, 2, 3))  # one present class
  m = nc.collapse_metrics(f.astype(np.float32), y, C, W.astype(np.float32), pred)
  for k in BETWEEN_KEYS:
    assert np.isnan(float(m[k])), k
  assert float(m["ncc_acc"]) == 1.0
  assert float(m["nc4_agreement"]) == pytest.approx(np.mean(pred == 1))
  f, y, C, W, pred = blobs(seed=4)
  for bad in (np.nan, np.inf):
    g = f.astype(np.float32)
    g[7, 3] = bad
    m = nc.collapse_metrics(g, y, C, W.astype(np.float32), pred)
    assert all(np.isnan(float(m[k])) for k in FLOAT_KEYS)
    np.testing.assert_array_equal(m["counts"], np.bincount(y, minlength=C))
  # Without classifier / predictions: NaN, the rest unchanged.
  m = nc.collapse_metrics(f.astype(np.float32), y, C)
  assert np.isnan(float(m["nc3_duality"])) and np.isnan(float(m["nc4_agreement"]))
  assert np.isfinite(float(m["nc1"]))


def test_dtype_follows_the_input():
  f, y, C, _, _ = blobs(seed=6)
  with jax.enable_x64(True):
    assert nc.collapse_metrics(f, y, C)["nc1"].dtype == jnp.float64
    assert nc.collapse_metrics(f.astype(np.float32), y, C)["nc1"].dtype == jnp.float32
  assert nc.collapse_metrics(jnp.asarray(f, jnp.bfloat16), y, C)["nc1"].dtype == jnp.float32
  assert nc.collapse_metrics(f, y, C)["counts"].dtype == jnp.int32


def test_shapes_are_checked_with_chex():
  f, y, C, W, pred = blobs(seed=7)
  with pytest.raises(AssertionError):
    nc.collapse_metrics(f[None], y, C)
  with pytest.raises(AssertionError):
    nc.collapse_metrics(f, y[:-1], C)
  with pytest.raises(AssertionError):
    nc.collapse_metrics(f, y.astype(np.float32), C)
  with pytest.raises(AssertionError):
    nc.collapse_metrics(f, y, C, classifier=W[:, :-1])
  with pytest.raises(AssertionError):
    nc.collapse_metrics(f, y, C, predictions=pred[:-1])


def test_public_names():
  assert jaxdepth.collapse_metrics is nc.collapse_metrics
  assert measure.collapse_metrics is nc.collapse_metrics
  assert "collapse_metrics" in jaxdepth.__all__


def test_vmap_over_runs_equals_a_loop_and_jit_equals_eager():
  runs = [blobs(seed=10 + r, absent=((1,) if r == 2 else ())) for r in range(3)]
  stack = lambda i, dt: jnp.asarray(np.stack([r[i] for r in runs]), dt)
  f_R, y_R, W_R, p_R = (stack(0, jnp.float32), stack(1, jnp.int32), stack(3, jnp.float32),
                        stack(4, jnp.int32))
  C = runs[0][2]
  fn = functools.partial(nc.collapse_metrics, num_classes=C)
  batched = jax.jit(jax.vmap(fn))(f_R, y_R, classifier=W_R, predictions=p_R)
  jitted = jax.jit(fn)
  for r in range(3):
    eager = fn(f_R[r], y_R[r], classifier=W_R[r], predictions=p_R[r])
    # Batching and fusion may reorder float32 reductions: equal up to rounding, which
    # on these well-conditioned problems is ~1e-6 relative (see the float32 test).
    chex.assert_trees_all_close({k: batched[k][r] for k in nc.KEYS}, eager, rtol=1e-5)
    chex.assert_trees_all_close(
        jitted(f_R[r], y_R[r], classifier=W_R[r], predictions=p_R[r]), eager, rtol=1e-5)
    check(eager, np_metrics(f_R[r], y_R[r], C, W_R[r], p_R[r]), rtol=1e-5)
