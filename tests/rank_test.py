"""Effective rank rho and erank (spec low_rank_bias.md, sec. 1 and AC1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.measure import rank


def _np_rho(a):
  """Independent numpy float64 reference."""
  s = np.linalg.svd(np.asarray(a, np.float64), compute_uv=False)
  p = s / s.sum()
  p = p[p > 0]
  return float(-(p * np.log(p)).sum())


def _orth(rng, n):
  q, _ = np.linalg.qr(rng.standard_normal((n, n)))
  return q


def test_identity_is_log_n():
  np.testing.assert_allclose(rank.entropy_rank(jnp.eye(16)), np.log(16), atol=1e-6)


def test_rank_one_is_zero():
  rng = np.random.default_rng(0)
  u, v = rng.standard_normal((12, 1)), rng.standard_normal((1, 9))
  a = u @ v
  assert abs(float(rank.entropy_rank64(a))) < 1e-6
  with jax.enable_x64(True):
    np.testing.assert_allclose(rank.erank(jnp.asarray(a)), 1.0, atol=1e-6)
  # float32 SVD leaves ~1e-7 relative noise in the zero singular values.
  assert abs(float(rank.entropy_rank(a.astype(np.float32)))) < 1e-4
  assert float(rank.entropy_rank(jnp.outer(jnp.arange(1.0, 4.0), jnp.ones(5)))) < 1e-4


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_k_equal_singular_values_is_log_k(k):
  rng = np.random.default_rng(k)
  n, m = 10, 7
  s = np.zeros(min(n, m))
  s[:k] = 3.0
  a = _orth(rng, n)[:, :m] @ np.diag(s) @ _orth(rng, m)
  rho = rank.entropy_rank(a.astype(np.float32))
  np.testing.assert_allclose(rho, np.log(k), atol=1e-5)
  assert np.isfinite(rho)


def test_scale_and_orthogonal_invariance_and_reference():
  rng = np.random.default_rng(1)
  a = rng.standard_normal((9, 6))
  u, v = _orth(rng, 9), _orth(rng, 6)
  ref = _np_rho(a)
  with jax.enable_x64(True):
    for b in (a, -3.5 * a, 1e-3 * a, u @ a @ v):
      np.testing.assert_allclose(rank.entropy_rank(jnp.asarray(b)), ref, rtol=1e-10)
  np.testing.assert_allclose(rank.entropy_rank64(a), ref, rtol=1e-12)


def test_bounds_and_erank_is_roy_vetterli():
  rng = np.random.default_rng(2)
  a = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 8))  # rank 3
  rho = float(rank.entropy_rank64(a))
  assert 0 <= rho <= np.log(3) + 1e-9
  s = np.linalg.svd(a, compute_uv=False)
  p = s / s.sum()
  p = p[p > 1e-15]
  np.testing.assert_allclose(np.exp(rho), np.exp(-(p * np.log(p)).sum()), rtol=1e-9)
  np.testing.assert_allclose(rank.erank(a.astype(np.float32)), np.exp(rho), rtol=1e-4)


def test_zero_singular_values_value_and_gradient_finite():
  a = jnp.diag(jnp.array([2.0, 1.0, 0.0, 0.0]))
  rho, g = jax.value_and_grad(rank.entropy_rank)(a)
  assert np.isfinite(rho) and np.isfinite(np.asarray(g)).all()
  p = np.array([2.0, 1.0]) / 3.0
  np.testing.assert_allclose(rho, -(p * np.log(p)).sum(), atol=1e-6)
  # Same from singular values directly, including a gradient at exact zeros.
  g_s = jax.grad(rank.entropy_from_singular_values)(jnp.array([1.0, 0.0, 0.0]))
  assert np.isfinite(np.asarray(g_s)).all()


def test_all_zero_matrix_is_nan():
  assert np.isnan(rank.entropy_rank(jnp.zeros((3, 3))))


def test_tol_cutoff():
  s = jnp.array([1.0, 1.0, 1e-9])
  np.testing.assert_allclose(rank.entropy_from_singular_values(s, tol=1e-6),
                             np.log(2), atol=1e-7)


def test_jit_and_vmap_match_loop():
  rng = np.random.default_rng(3)
  a_BxMxN = rng.standard_normal((5, 7, 4)).astype(np.float32)
  looped = np.array([_np_rho(a) for a in a_BxMxN])
  np.testing.assert_allclose(jax.jit(rank.entropy_rank)(a_BxMxN), looped, rtol=1e-5)
  np.testing.assert_allclose(jax.vmap(rank.entropy_rank)(a_BxMxN), looped, rtol=1e-5)
  np.testing.assert_allclose(rank.entropy_rank(a_BxMxN), looped, rtol=1e-5)


def test_gram_rank_from_squared_singular_values():
  rng = np.random.default_rng(4)
  phi = rng.standard_normal((20, 6))
  gram = phi @ phi.T
  ref = _np_rho(gram)
  np.testing.assert_allclose(rank.gram_entropy_rank64(phi), ref, rtol=1e-8)
  np.testing.assert_allclose(rank.gram_entropy_rank(phi.astype(np.float32)), ref,
                             rtol=1e-4)
  assert float(rank.gram_entropy_rank64(phi)) < _np_rho(phi)  # squaring peaks it
  # Centering subtracts the batch mean before forming the Gram matrix.
  phi_c = phi + 5.0
  ref_c = _np_rho((phi_c - phi_c.mean(0)) @ (phi_c - phi_c.mean(0)).T)
  np.testing.assert_allclose(rank.gram_entropy_rank64(phi_c, center=True), ref_c,
                             rtol=1e-8)
  # vmappable over a layer axis, as the core per-layer analysis calls it.
  phi_LxNxK = rng.standard_normal((3, 10, 4)).astype(np.float32)
  got = jax.jit(jax.vmap(lambda f: rank.gram_entropy_rank(f, center=False)))(phi_LxNxK)
  np.testing.assert_allclose(got, [_np_rho(f @ f.T) for f in phi_LxNxK], rtol=1e-4)


def test_float64_path_on_deep_product():
  rng = np.random.default_rng(5)
  w = rng.standard_normal((24, 16, 16)) / 4.0
  prod = np.linalg.multi_dot(list(w))
  rho64 = rank.entropy_rank64(prod)
  assert rho64.dtype == np.float64
  np.testing.assert_allclose(rho64, _np_rho(prod), rtol=1e-9)


@pytest.mark.parametrize("bad,msg", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN/Inf"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN/Inf"),
    (np.zeros((0, 3)), "empty"),
    (np.ones(3), "at least 2 axes"),
])
def test_bad_input_errors(bad, msg):
  for fn in (rank.entropy_rank, rank.erank, rank.gram_entropy_rank,
             rank.entropy_rank64):
    with pytest.raises(ValueError, match=msg):
      fn(bad)
