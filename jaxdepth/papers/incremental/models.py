"""Pure-function models of Gissin, Shalev-Shwartz & Daniely (ICLR 2020).

Every model is a pair of pure functions on a NamedTuple of arrays: an ``init``
taking a typed key and the init scale sigma0 (a traced value, so it can be
vmapped) and a prediction / end-to-end map.  Depth is a *shape*: stacks of equal
layers live on a leading axis and are applied with ``lax.scan``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def _dtype():
  return jax.dtypes.canonicalize_dtype(jnp.float64)


# ---------------------------------------------------------------- toy model


class Toy(NamedTuple):
  u_K: jax.Array  # (k,) one scalar per value; sigma = u ** N


def toy_init(k: int, depth: int, sigma0) -> Toy:
  """u_i(0) = sigma0^(1/N), so sigma_i(0) = sigma0 (Gissin et al. 2020, toy model)."""
  return Toy(jnp.full((k,), sigma0, _dtype()) ** (1.0 / depth))


def toy_values(p: Toy, depth: int) -> jax.Array:
  """sigma = u^N, the depth-N parameterization with weights tied across layers."""
  return p.u_K**depth


def toy_loss(p: Toy, targets_K, depth: int) -> jax.Array:
  """loss = 1/2 sum_i (u_i^N - sigma*_i)^2 (whitened linear regression, decoupled)."""
  return 0.5 * jnp.sum((toy_values(p, depth) - targets_K) ** 2)


class Signed(NamedTuple):
  """Signed toy / diagonal linear network: beta = w_plus^N - w_minus^N."""

  wp_D: jax.Array
  wm_D: jax.Array


def signed_init(d: int, depth: int, sigma0) -> Signed:
  """w_plus = w_minus = sigma0^(1/N) (so beta(0) = 0 exactly)."""
  w = jnp.full((d,), sigma0, _dtype()) ** (1.0 / depth)
  return Signed(w, w)


def signed_beta(p: Signed, depth: int) -> jax.Array:
  """beta = w_+^N - w_-^N elementwise (depth-N diagonal linear network)."""
  return p.wp_D**depth - p.wm_D**depth


# ------------------------------------------------------ deep matrix sensing


class DeepMatrix(NamedTuple):
  w_NxDxD: jax.Array  # N stacked d x d factors; W = W_1 W_2 ... W_N


def deep_matrix_init(key, d: int, depth: int, sigma0, init: str = "gaussian") -> DeepMatrix:
  """Factors i.i.d. N(0, sigma0^(2/N)/d) ("gaussian") or sigma0^(1/N) I ("identity").

  Either way the end-to-end product has singular values of order sigma0.
  """
  scale = jnp.asarray(sigma0, _dtype()) ** (1.0 / depth)
  if init == "identity":
    w = jnp.broadcast_to(jnp.eye(d, dtype=_dtype()), (depth, d, d)) * scale
  else:
    w = jax.random.normal(key, (depth, d, d), _dtype()) * (scale / jnp.sqrt(d))
  return DeepMatrix(w)


def deep_matrix_product(p: DeepMatrix) -> jax.Array:
  """W = W_1 W_2 ... W_N, accumulated with lax.scan over the factor stack."""
  d = p.w_NxDxD.shape[-1]
  eye_DxD = jnp.eye(d, dtype=p.w_NxDxD.dtype)
  w_DxD, _ = jax.lax.scan(lambda acc, w: (acc @ w, None), eye_DxD, p.w_NxDxD)
  return w_DxD


def sensing_loss(p: DeepMatrix, a_MxDD, y_M) -> jax.Array:
  """mean_i (<A_i, W> - y_i)^2 (no 1/2, as in the authors' code).  A is flattened."""
  w_DD = deep_matrix_product(p).reshape(-1)
  return jnp.mean((a_MxDD @ w_DD - y_M) ** 2)


def top_singular_values(w_DxD, k: int) -> jax.Array:
  """The k largest singular values, descending."""
  return jnp.linalg.svd(w_DxD, compute_uv=False)[:k]


# --------------------------------------------------------- quadratic network


class Quadratic(NamedTuple):
  w_HxD: jax.Array  # hidden weights; f(x) = sum_j (w_j . x)^2 + b = x^T W^T W x + b
  b: jax.Array  # scalar bias


def quadratic_init(key, d: int, sigma0, bias0) -> Quadratic:
  """W = sqrt(sigma0) Q with Q Haar-orthogonal, so W^T W = sigma0 I exactly."""
  g_DxD = jax.random.normal(key, (d, d), _dtype())
  q_DxD, r_DxD = jnp.linalg.qr(g_DxD)
  q_DxD = q_DxD * jnp.sign(jnp.diagonal(r_DxD))[None, :]  # Haar measure
  return Quadratic(jnp.sqrt(jnp.asarray(sigma0, _dtype())) * q_DxD,
                   jnp.asarray(bias0, _dtype()))


def quadratic_apply(p: Quadratic, x_BxD, use_bias: bool) -> jax.Array:
  """f(x) = ||W x||^2 (+ b)."""
  f_B = jnp.sum((x_BxD @ p.w_HxD.T) ** 2, axis=-1)
  return f_B + p.b if use_bias else f_B


def quadratic_loss(p: Quadratic, x_BxD, y_B, use_bias: bool) -> jax.Array:
  """mean (f(x) - y)^2 (no 1/2)."""
  return jnp.mean((quadratic_apply(p, x_BxD, use_bias) - y_B) ** 2)


def top_eigenvalues(w_HxD, k: int) -> jax.Array:
  """The k largest eigenvalues of W^T W, descending (= squared singular values)."""
  return jnp.linalg.svd(w_HxD, compute_uv=False)[:k] ** 2


# ------------------------------------------------ classification losses


def margin_loss(margins_B, loss: str) -> jax.Array:
  """Mean exponential loss exp(-m) or logistic loss log(1 + exp(-m)) of margins m."""
  if loss == "exponential":
    return jnp.mean(jnp.exp(-margins_B))
  return jnp.mean(jax.nn.softplus(-margins_B))


# ---------------------------------------- circular-convolutional network


class CircConv(NamedTuple):
  f_LxD: jax.Array  # N - 1 full-length single-channel circular filters
  v_D: jax.Array  # dense d -> 1 last layer


def circ_conv_init(key, d: int, depth: int, sigma0) -> CircConv:
  """Weights i.i.d. N(0, s^2), s = (1.5 sigma0)^(1/N) d^((N-1)/(2N)) / d (authors' code)."""
  s = (1.5 * jnp.asarray(sigma0, _dtype())) ** (1.0 / depth) * d ** ((depth - 1) / (2 * depth)) / d
  kf, kv = jax.random.split(key)
  return CircConv(jax.random.normal(kf, (depth - 1, d), _dtype()) * s,
                  jax.random.normal(kv, (d,), _dtype()) * s)


def circ_correlate(w_D, z_BxD) -> jax.Array:
  """(w * z)[j] = sum_k w[k] z[(j + k) mod d], via rfft(w * z) = conj(rfft(w)) rfft(z)."""
  d = z_BxD.shape[-1]
  zf = jnp.fft.rfft(z_BxD, axis=-1) * jnp.conj(jnp.fft.rfft(w_D))[None, :]
  return jnp.fft.irfft(zf, n=d, axis=-1)


def circ_conv_apply(p: CircConv, x_BxD) -> jax.Array:
  """f(x) = <v, w_{N-1} * (... (w_1 * x))>, the layers applied with lax.scan."""
  z_BxD, _ = jax.lax.scan(lambda z, w: (circ_correlate(w, z), None), x_BxD, p.f_LxD)
  return z_BxD @ p.v_D


def circ_conv_beta(p: CircConv) -> jax.Array:
  """End-to-end linear predictor, exactly: beta_j = f(e_j) (probe the identity basis)."""
  d = p.v_D.shape[0]
  return circ_conv_apply(p, jnp.eye(d, dtype=p.v_D.dtype))
