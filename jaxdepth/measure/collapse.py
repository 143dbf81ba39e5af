"""Class statistics, CDNV, NCC classification and effective depth.

Galanti, Galanti & Ben-Shaul 2022, "On the Implicit Bias Towards Minimal Depth of
Deep Neural Networks", see docs/definitions.md,
"Minimal depth". All functions are pure, jittable
and vmappable (over layers and runs); ``feats`` is (N, D) for one layer. Variances
use two passes over centred features (never E|f|^2 - |mu|^2, which cancels
catastrophically in collapsed layers).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

DEGENERATE_TOL = 1e-12  # relative tolerance for coincident class means


class ClassStats(NamedTuple):
  """Per-class statistics of one layer. ``means`` are relative to ``ref``."""
  counts_C: jax.Array  # (C,) number of samples per class
  means_CxD: jax.Array  # (C, D) class means minus ref (0 for empty classes)
  m2_C: jax.Array  # (C,) sum over the class of |f - mu_c|^2
  ref_D: jax.Array  # (D,) centring point


class Cdnv(NamedTuple):
  value: jax.Array  # mean V(i, j) over valid unordered pairs; NaN if none
  num_empty_classes: jax.Array
  num_degenerate_pairs: jax.Array


def _mm(a, b):
  """Full-precision matmul: GPUs/TPUs default to TF32/bf16 passes for float32, which
  moves class statistics by ~1e-3 relative and flips NCC decisions."""
  return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def one_hot_masked(labels_N, num_classes: int, mask_N=None, dtype=jnp.float32):
  oh_NxC = jax.nn.one_hot(labels_N, num_classes, dtype=dtype)
  if mask_N is not None:
    oh_NxC = oh_NxC * mask_N.astype(dtype)[:, None]
  return oh_NxC


def class_sums(feats_NxD, labels_N, num_classes: int, ref_D, mask_N=None):
  """Counts (C,) and sums (C, D) of ``feats - ref`` per class (one-hot matmul)."""
  dtype = jnp.result_type(feats_NxD.dtype, jnp.float32)
  oh_NxC = one_hot_masked(labels_N, num_classes, mask_N, dtype)
  x_NxD = (feats_NxD - ref_D[None]).astype(dtype)
  return oh_NxC.sum(0), _mm(oh_NxC.T, x_NxD)


def class_m2(feats_NxD, labels_N, means_CxD, ref_D, mask_N=None):
  """Sum over each class of |f - mu_c|^2, with ``means`` relative to ``ref``."""
  dtype = means_CxD.dtype
  oh_NxC = one_hot_masked(labels_N, means_CxD.shape[0], mask_N, dtype)
  d_NxD = (feats_NxD - ref_D[None]).astype(dtype) - _mm(oh_NxC, means_CxD)
  sq_N = jnp.sum(jnp.square(d_NxD), axis=1)
  return _mm(oh_NxC.T, sq_N)


def means_from_sums(counts_C, sums_CxD):
  return sums_CxD / jnp.maximum(counts_C, 1)[:, None]


def ncc_scores(feats_NxD, means_CxD, counts_C, ref_D):
  """NCC scores 2<z, mu_c> - |mu_c|^2 on centred features; empty classes get -inf.

  argmax of the score is argmin_c |f - mu_c| (the |z|^2 term does not depend on c).
  """
  z_NxD = (feats_NxD - ref_D[None]).astype(means_CxD.dtype)
  s_NxC = 2.0 * _mm(z_NxD, means_CxD.T) - jnp.sum(jnp.square(means_CxD), axis=1)[None]
  return jnp.where((counts_C > 0)[None], s_NxC, -jnp.inf)


def cdnv_from_stats(counts_C, means_CxD, m2_C, tol: float = DEGENERATE_TOL) -> Cdnv:
  """CDNV = mean over unordered pairs i<j of (Var_i + Var_j) / (2 |mu_i - mu_j|^2).

  Var_c = M2_c / N_c (population form). Empty classes are excluded; pairs whose mean
  distance is <= tol * s^2 (s^2 = mean over non-empty classes of |mu_c - mu_bar|^2 +
  Var_c) are excluded and counted as degenerate. Returns NaN when no pair is valid.
  """
  present_C = counts_C > 0
  var_C = m2_C / jnp.maximum(counts_C, 1)
  n_present = present_C.sum()
  mu_bar_D = (counts_C[:, None] * means_CxD).sum(0) / jnp.maximum(counts_C.sum(), 1)
  spread_C = jnp.sum(jnp.square(means_CxD - mu_bar_D[None]), axis=1) + var_C
  s2 = jnp.sum(jnp.where(present_C, spread_C, 0.0)) / jnp.maximum(n_present, 1)
  # Explicit differences, one row at a time: memory stays O(C * D).
  dist_CxC = jax.lax.map(lambda mu_D: jnp.sum(jnp.square(means_CxD - mu_D[None]), axis=1),
                         means_CxD)
  C = counts_C.shape[0]
  upper_CxC = jnp.triu(jnp.ones((C, C), bool), k=1)
  pair_CxC = upper_CxC & present_C[:, None] & present_C[None, :]
  degenerate_CxC = pair_CxC & (dist_CxC <= tol * s2)
  valid_CxC = pair_CxC & ~degenerate_CxC
  v_CxC = (var_C[:, None] + var_C[None, :]) / (2.0 * jnp.where(valid_CxC, dist_CxC, 1.0))
  n_valid = valid_CxC.sum()
  value = jnp.where(n_valid > 0, jnp.sum(jnp.where(valid_CxC, v_CxC, 0.0)) /
                    jnp.maximum(n_valid, 1), jnp.nan)
  return Cdnv(value, C - n_present, degenerate_CxC.sum())


def class_stats(feats_NxD, labels_N, num_classes: int, mask_N=None) -> ClassStats:
  """Two-pass class statistics of one in-memory layer, centred at the data mean."""
  w_N = jnp.ones(labels_N.shape) if mask_N is None else mask_N.astype(jnp.float32)
  ref_D = jax.lax.stop_gradient(
      (feats_NxD * w_N[:, None]).sum(0) / jnp.maximum(w_N.sum(), 1))
  counts_C, sums_CxD = class_sums(feats_NxD, labels_N, num_classes, ref_D, mask_N)
  means_CxD = means_from_sums(counts_C, sums_CxD)
  m2_C = class_m2(feats_NxD, labels_N, means_CxD, ref_D, mask_N)
  return ClassStats(counts_C, means_CxD, m2_C, ref_D)


def class_means(feats_NxD, labels_N, num_classes: int):
  """(C, D) class means mu_c = (1/N_c) sum_{y_i = c} f(x_i); NaN rows for empty classes.

  The all-NaN row marks a class absent from the sample (its mean is undefined), so that
  ``ncc_predict(f, class_means(f, y, C))`` leaves it out of the vote without counts. A
  zero row would be a centre at the origin that wins for samples near it (issue 22).
  """
  st = class_stats(feats_NxD, labels_N, num_classes)
  return jnp.where((st.counts_C > 0)[:, None], st.means_CxD + st.ref_D[None], jnp.nan)


def present_classes(means_CxD, counts_C=None):
  """(C,) bool: count > 0, or without counts, a mean row that is not all NaN."""
  if counts_C is None:
    return ~jnp.all(jnp.isnan(means_CxD), axis=1)
  return counts_C > 0


def ncc_predict(feats_NxD, means_CxD, counts_C=None):
  """argmin_c |f(x) - mu_c| over the present classes (ties to the lowest index).

  Absent classes never win: count 0 when ``counts_C`` is given, else an all-NaN row
  (as ``class_means`` returns for empty classes). Without counts, a user's zero row is
  a centre at the origin: pass counts to exclude it.
  """
  present_C = present_classes(means_CxD, counts_C)
  means_CxD = jnp.where(present_C[:, None], means_CxD, 0.0)
  ref_D = means_CxD.sum(0) / jnp.maximum(present_C.sum(), 1)
  return jnp.argmax(ncc_scores(feats_NxD, means_CxD - ref_D[None], present_C, ref_D), axis=1)


def ncc_accuracy(feats_NxD, labels_N, means_CxD, counts_C=None):
  """Fraction of samples whose nearest class mean is their label (absent classes as in
  ``ncc_predict``: never the nearest)."""
  return jnp.mean(ncc_predict(feats_NxD, means_CxD, counts_C) == labels_N)


def cdnv(feats_NxD, labels_N, num_classes: int) -> jax.Array:
  """CDNV of one layer (Galanti et al. 2022, eq. for V(i, j)), mean over valid pairs."""
  st = class_stats(feats_NxD, labels_N, num_classes)
  return cdnv_from_stats(st.counts_C, st.means_CxD, st.m2_C).value


# The one rule for "NCC train error <= eps" (every entry point uses effective_depth):
# a layer qualifies when its error count k out of N satisfies k <= eps * N * (1 + 1e-6),
# i.e. k / N <= eps in exact arithmetic. The relative slack absorbs the rounding of
# eps * N (0.01 * 400 is 4 +- an ulp, and 3.9999999 in float32); it is below one count
# for any N * eps < 1e6, so an error one sample above eps never qualifies.
EPS_SLACK = 1e-6


def effective_depth(ncc_train_error_L, eps, num_samples=None, *, suffix: bool = False
                    ) -> jax.Array:
  """The eps-effective depth: first layer (1-based) whose NCC train error is <= eps;
  L + 1 when none qualifies (Galanti et al. 2022: d^eps(h) = min{i : err(h_i) <= eps}).

  Args:
    ncc_train_error_L: (..., L) per-layer NCC train errors as fractions.
    eps: the threshold (a scalar; may be traced).
    num_samples: N, the number of samples behind each error. When given, errors are
      first rounded to integer counts rint(err * N), so float32 rounding of k / N or
      of 1 - accuracy cannot move an error exactly at eps across it; without it the
      fractions are compared as given (pass exact fractions then).
    suffix: instead, the first layer i such that every layer j >= i qualifies.
  Returns:
    (...,) int array in 1..L+1. The rule is EPS_SLACK's comment above.
  """
  err = jnp.asarray(ncc_train_error_L)
  if num_samples is None:
    ok_L = err <= eps * (1 + EPS_SLACK)
  else:
    ok_L = jnp.rint(err * num_samples) <= eps * num_samples * (1 + EPS_SLACK)
  if suffix:
    ok_L = jnp.flip(jnp.cumprod(jnp.flip(ok_L, -1), axis=-1), -1).astype(bool)
  L = ok_L.shape[-1]
  return jnp.where(ok_L.any(-1), jnp.argmax(ok_L, axis=-1) + 1, L + 1)
