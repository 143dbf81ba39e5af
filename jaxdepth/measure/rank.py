"""Effective rank: rho (entropy of normalized singular values) and erank = exp(rho).

Huh et al. 2021 ("The Low-Rank Simplicity Bias in Deep Networks", Eq. 1) define the
effective rank of a matrix A with singular values s_1 >= ... >= s_q >= 0 as

    p_i = s_i / sum_j s_j,        rho(A) = - sum_i p_i log p_i

and erank(A) = exp(rho(A)) is Roy & Vetterli's (2007) effective rank.

Everything here is jittable and vmappable and works on leading batch axes
(``a_...xMxN``). jitted code cannot raise, so input checks are split off:
:func:`check_matrix` validates on the host (NaN/Inf, empty, rank < 2) and the public
functions call it automatically whenever they get concrete (non-traced) input. The
all-zero matrix has no defined rho and gives NaN. Computation runs in the input's
dtype; :func:`entropy_rank64` is the float64 path (products of many matrices have
tiny singular values that float32 loses).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_matrix(a, name: str = "matrix") -> None:
  """Host-side validation; raises ValueError with a one-line reason.

  Checks that ``a`` has at least two axes, no empty axis and only finite entries.
  Traced values (inside jit/vmap) are only shape-checked: the finiteness check needs
  concrete values, so NaN in gives NaN out there.
  """
  shape = np.shape(a)
  if len(shape) < 2:
    raise ValueError(f"{name}: expected a matrix (at least 2 axes), got shape {shape}")
  if any(s == 0 for s in shape):
    raise ValueError(f"{name}: empty matrix of shape {shape}; rho is undefined")
  if isinstance(a, jax.core.Tracer):
    return
  arr = np.asarray(a)
  if not np.issubdtype(arr.dtype, np.number):
    raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
  finite = np.isfinite(arr)
  if not finite.all():
    bad = int(arr.size - finite.sum())
    raise ValueError(f"{name}: contains {bad} NaN/Inf entries of {arr.size}; "
                     "rho is undefined")


def entropy_from_singular_values(s_xK: jax.Array, tol: float | None = None
                                 ) -> jax.Array:
  """rho = -sum_i p_i log p_i with p_i = s_i / sum_j s_j over the last axis.

  Zero entries contribute 0 (0 log 0 = 0) through the double-``where`` pattern, so
  the value and its gradient stay finite for rank-deficient inputs. An all-zero
  vector gives NaN. (Huh et al. 2021, Eq. 1.)

  Args:
    s_xK: non-negative singular values, shape (..., K).
    tol: optional relative cutoff; entries below ``tol * max(s)`` are dropped before
      normalizing (the paper uses none; default None).

  Returns:
    rho, shape (...).
  """
  s_xK = jnp.asarray(s_xK)
  if not jnp.issubdtype(s_xK.dtype, jnp.floating):
    s_xK = s_xK.astype(jnp.result_type(float))
  if tol is not None:
    top_x1 = jnp.max(s_xK, axis=-1, keepdims=True)
    s_xK = jnp.where(s_xK >= tol * top_x1, s_xK, 0.0)
  total_x1 = jnp.sum(s_xK, axis=-1, keepdims=True)
  zero_total_x1 = total_x1 <= 0
  p_xK = s_xK / jnp.where(zero_total_x1, 1.0, total_x1)
  pos_xK = p_xK > 0
  plogp_xK = jnp.where(pos_xK, p_xK * jnp.log(jnp.where(pos_xK, p_xK, 1.0)), 0.0)
  rho_x = -jnp.sum(plogp_xK, axis=-1)
  return jnp.where(zero_total_x1[..., 0], jnp.nan, rho_x)


def singular_values(a_xMxN: jax.Array) -> jax.Array:
  """Singular values over the last two axes, (..., min(M, N)), in the input dtype."""
  return jnp.linalg.svd(a_xMxN, compute_uv=False)


def entropy_rank(a_xMxN: jax.Array, tol: float | None = None) -> jax.Array:
  """rho(A): entropy of A's normalized singular values (Huh et al. 2021, Eq. 1).

  0 <= rho <= log rank(A); rho = 0 iff rank(A) = 1; rho = log k for k equal
  non-zero singular values; invariant to scaling and to orthogonal transforms.

  Args:
    a_xMxN: matrix or batch of matrices (leading axes are batch axes).
    tol: optional relative singular-value cutoff (see entropy_from_singular_values).

  Returns:
    rho, shape (...).  NaN for the all-zero matrix.
  """
  check_matrix(a_xMxN)
  return entropy_from_singular_values(singular_values(a_xMxN), tol)


effective_rank = entropy_rank


def erank(a_xMxN: jax.Array, tol: float | None = None) -> jax.Array:
  """Roy & Vetterli (2007) effective rank exp(rho(A)), in [1, rank A]."""
  return jnp.exp(entropy_rank(a_xMxN, tol))


def gram_entropy_rank(phi_xNxK: jax.Array, center: bool = False,
                      tol: float | None = None) -> jax.Array:
  """rho(K) of the Gram matrix K = Phi Phi^T (N x N) of embeddings Phi (N x K).

  The singular values of K are the squared singular values of Phi, so
  rho(K) = entropy of s_i(Phi)^2 / sum_j s_j(Phi)^2 (Huh et al. 2021, Sec. 3 and
  Fig. 3: "effective rank of the embeddings"). Cheaper and more accurate than an
  SVD of K. rho(K) <= rho(Phi); never compare the two.

  Args:
    phi_xNxK: embeddings of N points in K features (leading axes are batch axes,
      e.g. layers).
    center: subtract the mean over the N points first (default False, uncentered,
      as in the low-rank paper's checks).
    tol: optional relative cutoff applied to the eigenvalues s_i^2.

  Returns:
    rho(K), shape (...).
  """
  check_matrix(phi_xNxK, "embeddings")
  if center:
    phi_xNxK = phi_xNxK - jnp.mean(phi_xNxK, axis=-2, keepdims=True)
  s_xK = singular_values(phi_xNxK)
  return entropy_from_singular_values(s_xK * s_xK, tol)


def entropy_rank64(a_xMxN, tol: float | None = None) -> np.ndarray:
  """Float64 rho computed eagerly on the host side of JAX (numpy result).

  Enables 64-bit mode only for the duration of the call (``jax.enable_x64``), so it
  is safe in a float32 program. Use for deep products and tiny singular values.
  """
  check_matrix(a_xMxN)
  with jax.enable_x64(True):
    a = jnp.asarray(np.asarray(a_xMxN, dtype=np.float64))
    return np.asarray(_entropy_rank_jit(a, tol))


def gram_entropy_rank64(phi_xNxK, center: bool = False) -> np.ndarray:
  """Float64 :func:`gram_entropy_rank` (numpy result), see :func:`entropy_rank64`."""
  check_matrix(phi_xNxK, "embeddings")
  with jax.enable_x64(True):
    phi = jnp.asarray(np.asarray(phi_xNxK, dtype=np.float64))
    return np.asarray(_gram_entropy_rank_jit(phi, center))


_entropy_rank_jit = jax.jit(entropy_rank, static_argnums=1)
_gram_entropy_rank_jit = jax.jit(gram_entropy_rank, static_argnums=(1, 2))
