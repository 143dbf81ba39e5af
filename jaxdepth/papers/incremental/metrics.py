"""Incremental-learning statistics (docs/definitions.md, "Crossing times"):
t10/t50/t90, next_frac_at_t90, active count.

Plain NumPy on host arrays.  Never-reached times are +inf (null in JSON) and the
next-value fraction after a never-reached t90 is NaN.
"""

from __future__ import annotations

import numpy as np

ALPHAS = (0.1, 0.5, 0.9)  # t10, t50, t90


def thresholds(targets_K, alphas=ALPHAS, k: int | None = None) -> np.ndarray:
  """(A, k) thresholds alpha * sigma*_i; columns beyond len(targets) are +inf (unused)."""
  targets_K = np.asarray(targets_K, float)
  k = len(targets_K) if k is None else k
  thr = np.full((len(alphas), k), np.inf)
  thr[:, : len(targets_K)] = np.outer(alphas, targets_K)
  return thr


def crossing_times(values_TxK, steps_T, thr_AxK) -> np.ndarray:
  """t_alpha(i) = first recorded step with values_i >= thr[alpha, i] (inf if never).

  Reference implementation on a stored trajectory (the trainer computes the same
  thing on the fly).  Returns (A, K).
  """
  v = np.asarray(values_TxK, float)
  hit_AxTxK = v[None, :, :] >= np.asarray(thr_AxK, float)[:, None, :]
  first = np.argmax(hit_AxTxK, axis=1)
  any_ = hit_AxTxK.any(axis=1)
  return np.where(any_, np.asarray(steps_T, float)[first], np.inf)


def next_frac_at_t90(snap_KxK, t90_K, targets_K) -> np.ndarray:
  """sigma_{i+1}(t90(i)) / sigma*_{i+1} for i = 1..k-1 (NaN if t90(i) is never reached).

  ``snap_KxK[i]`` is the tracked vector at the step where value i first reached
  0.9 sigma*_i.
  """
  targets_K = np.asarray(targets_K, float)
  k = len(targets_K)
  out = np.full(k - 1, np.nan)
  for i in range(k - 1):
    if np.isfinite(t90_K[i]):
      out[i] = snap_KxK[i, i + 1] / targets_K[i + 1]
  return out


def next_frac_from_trajectory(values_TxK, steps_T, targets_K, alpha: float = 0.9) -> np.ndarray:
  """next_frac_at_t90 from a stored trajectory (reference for tests and notebooks)."""
  v = np.asarray(values_TxK, float)
  targets_K = np.asarray(targets_K, float)
  t = crossing_times(v, steps_T, thresholds(targets_K, (alpha,)))[0]
  snap = np.zeros((len(targets_K), v.shape[1]))
  for i in range(len(targets_K)):
    if np.isfinite(t[i]):
      snap[i] = v[int(np.searchsorted(steps_T, t[i]))]
  return next_frac_at_t90(snap, t, targets_K)


def active_count(values_TxK, targets_K, alpha: float = 0.5) -> np.ndarray:
  """Number of values with sigma_i >= alpha sigma*_i at each record, (T,)."""
  targets_K = np.asarray(targets_K, float)
  k = len(targets_K)
  return (np.asarray(values_TxK, float)[:, :k] >= alpha * targets_K[None, :]).sum(axis=1)


def active_changes(values_TxK, steps_T, targets_K, alpha: float = 0.5) -> list:
  """The active count as a staircase: [[step, count], ...] at each change (and at 0)."""
  c = active_count(values_TxK, targets_K, alpha)
  idx = np.flatnonzero(np.diff(c, prepend=-1) != 0)
  return [[int(steps_T[j]), int(c[j])] for j in idx]


def crossed_count(cross_t_K) -> list:
  """How many components have crossed their threshold, as [[step, count], ...]."""
  t = np.sort(np.asarray(cross_t_K, float))
  t = t[np.isfinite(t)]
  return [[0, 0]] + [[int(s), int(np.sum(t <= s))] for s in np.unique(t)]


def widths_and_gaps(t_AxK) -> tuple[np.ndarray, np.ndarray]:
  """Transition widths t90 - t10 and gaps t50(i+1) - t50(i)."""
  t = np.asarray(t_AxK, float)
  with np.errstate(invalid="ignore"):
    return t[2] - t[0], np.diff(t[1])


def strictly_increasing(x) -> bool:
  x = np.asarray(x, float)
  return bool(np.all(np.isfinite(x)) and np.all(np.diff(x) > 0))


def regression_metrics(t_AxK, snap_AxKxK, targets_K, time_per_step: float | None = None) -> dict:
  """Per-run t10/t50/t90, next_frac_at_t90, widths, gaps
  (docs/definitions.md, "Crossing times")."""
  k = len(targets_K)
  t = np.asarray(t_AxK, float)[:, :k]
  width, gap = widths_and_gaps(t)
  out = {"t10": t[0], "t50": t[1], "t90": t[2],
         "next_frac_at_t90": next_frac_at_t90(np.asarray(snap_AxKxK)[2], t[2], targets_K),
         "width": width, "gap": gap, "t50_increasing": strictly_increasing(t[1])}
  if time_per_step is not None:
    out["t50_time"] = t[1] * time_per_step
  return out
