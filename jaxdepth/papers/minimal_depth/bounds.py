"""Generalization-bound arithmetic from effective depths and test errors (numpy).

Galanti, Galanti & Ben-Shaul 2022, Proposition 1 (Eq. 3), estimated with the
jaxdepth protocol of spec §9:

  D_k          = mean_g d^eps_{S1^k}(h_{k,g})                 clean effective depth
  dmin_{k,p}   = min_g  d^eps_{S1^k u S2^{k,p}~}(h_{k,p,g})     minimal-depth estimate
  I_{k,p}      = 1[D_k >= dmin_{k,p}]
  T_p          = (1/K) sum_k I_{k,p}                           first term of Eq. 3
  B_{p,alpha}  = T_p + (1 + alpha) p                           delta_1 = delta_2 = 0

Pure functions of plain arrays: no JAX, no configs, no checkpoints.
"""

from __future__ import annotations

import numpy as np

ERR_TOL = 1e-6  # float32 rounding of k/N: an error within this of eps counts as <= eps


def effective_depth(err_RxL, eps: float) -> np.ndarray:
  """First layer (1-based) whose NCC train error is <= eps; L + 1 if none (spec §5.1).

  d^eps_S(h) = min { i in 1..L : err_S(h_i) <= eps }.

  Errors are fractions k/N computed in float32 (as 1 - acc or as k/N), so an error
  exactly at eps (e.g. 4/400 at eps=0.01) can land on either side of eps in float64;
  a tolerance of 1e-6 (far below 1/N for any N <= 1e5) makes both count as <= eps.

  Args:
    err_RxL: (..., L) per-layer NCC train errors.
    eps: threshold.
  Returns:
    (...,) int array in 1..L+1.
  """
  ok = np.asarray(err_RxL, np.float64) <= eps + ERR_TOL
  L = ok.shape[-1]
  return np.where(ok.any(-1), ok.argmax(-1) + 1, L + 1).astype(np.int64)


def clean_depth(depth_KxG) -> np.ndarray:
  """D_k = mean over clean seeds g of d_{k,g}; (K, G) -> (K,)."""
  return np.asarray(depth_KxG, dtype=np.float64).mean(-1)


def minimal_depth(depth_KxPxG) -> np.ndarray:
  """dmin_hat_{k,p} = min over noisy seeds of d on S1 u S2~ (spec §6); -> (K, P)."""
  return np.asarray(depth_KxPxG).min(-1)


def first_term(clean_depth_KxG, noisy_depth_KxPxG) -> np.ndarray:
  """T_p = (1/K) sum_k 1[D_k >= dmin_hat_{k,p}] (first term of Eq. 3); -> (P,)."""
  d_K = clean_depth(clean_depth_KxG)
  dmin_KxP = minimal_depth(noisy_depth_KxPxG)
  return (d_K[:, None] >= dmin_KxP).mean(0)


def bound(first_term_P, p_P, alpha: float) -> np.ndarray:
  """B_{p,alpha} = T_p + (1 + alpha) p, with delta_1 = delta_2 = 0 (spec §9.4)."""
  return np.asarray(first_term_P, np.float64) + (1.0 + alpha) * np.asarray(p_P, np.float64)


def bound_rows(clean_err_KxGxL, noisy_err_KxPxGxL, test_err_KxG, ps, alphas, eps_list,
               num_layers: int | None = None, extra: dict | None = None) -> list[dict]:
  """The report table of spec §9.6: one row per (eps, p, alpha).

  Args:
    clean_err_KxGxL: per-layer NCC train errors of the clean runs on S1^k.
    noisy_err_KxPxGxL: per-layer NCC train errors of the noisy runs on S1^k u S2^{k,p}~.
    test_err_KxG: network test errors of the clean runs.
    ps, alphas, eps_list: the grid to report.
    extra: columns copied into every row (dataset, architecture, m, ...).
  Returns:
    list of dicts with mean_test_error, test_error_std, eps, p, alpha, mean_clean_depth,
    mean_min_depth, first_term, bound, and flags: clean_unreached (clean runs that
    never reached eps), min_depth_unreached (draws where no noisy run fitted the set),
    min_depth_monotone (mean dmin_hat non-decreasing in p over the grid).
  """
  clean = np.asarray(clean_err_KxGxL, np.float64)
  noisy = np.asarray(noisy_err_KxPxGxL, np.float64)
  test = np.asarray(test_err_KxG, np.float64)
  L = clean.shape[-1] if num_layers is None else num_layers
  rows = []
  for eps in eps_list:
    d_KxG = effective_depth(clean, eps)
    dn_KxPxG = effective_depth(noisy, eps)
    dmin_KxP = minimal_depth(dn_KxPxG)
    t_P = first_term(d_KxG, dn_KxPxG)
    mean_dmin_P = dmin_KxP.mean(0)
    monotone = bool(np.all(np.diff(mean_dmin_P) >= 0))
    for j, p in enumerate(ps):
      for alpha in alphas:
        rows.append({
            **(extra or {}),
            "mean_test_error": float(test.mean()), "test_error_std": float(test.std()),
            "eps": float(eps), "p": float(p), "alpha": float(alpha),
            "mean_clean_depth": float(clean_depth(d_KxG).mean()),
            "mean_min_depth": float(mean_dmin_P[j]),
            "first_term": float(t_P[j]),
            "bound": float(bound(t_P[j], p, alpha)),
            "clean_unreached": int((d_KxG > L).sum()),
            "min_depth_unreached": int((dmin_KxP[:, j] > L).sum()),
            "min_depth_monotone": monotone,
        })
  return rows


COLUMNS = (("mean_test_error", "test err", "{:.4f}"), ("test_error_std", "(std)", "{:.4f}"),
           ("p", "p", "{:g}"), ("alpha", "alpha", "{:g}"), ("eps", "eps", "{:g}"),
           ("mean_clean_depth", "mean D_k", "{:.2f}"),
           ("mean_min_depth", "mean dmin", "{:.2f}"),
           ("first_term", "first term", "{:.3f}"), ("bound", "bound", "{:.3f}"))


def format_table(rows: list[dict]) -> str:
  """Markdown table of the report columns."""
  head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
  sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
  body = ["| " + " | ".join(f.format(r[k]) for k, _, f in COLUMNS) + " |" for r in rows]
  return "\n".join([head, sep, *body])
