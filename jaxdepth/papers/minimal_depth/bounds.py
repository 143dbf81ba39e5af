"""Generalization-bound arithmetic from effective depths and test errors (numpy).

Galanti, Galanti & Ben-Shaul 2022, Proposition 1 (Eq. 3), estimated with the
jaxdepth protocol (docs/definitions.md, "Bound protocol"):

  D_k          = mean_g d^eps_{S1^k}(h_{k,g})                 clean effective depth
  dmin_{k,p}   = min_g  d^eps_{S1^k u S2^{k,p}~}(h_{k,p,g})     minimal-depth estimate
  I_{k,p}      = 1[D_k >= dmin_{k,p}]
  T_p          = (1/K) sum_k I_{k,p}                           first term of Eq. 3
  B_{p,alpha}  = T_p + (1 + alpha) p                           delta_1 = delta_2 = 0

T_p is a binomial proportion over K draws (sum_k I_{k,p} ~ Bin(K, pi_p) when the
draws are independent), so each row also carries the exact (Clopper-Pearson) 95%
interval of the first term and B_hi = T_hi + (1 + alpha) p, the bound with the first
term at the top of its interval.

Prop. 1 needs 0 < p < 1/2. p = 0 is the *control* (config ``control=True``): the
"noisy" runs train on clean S1 u S2, so dmin_hat is the depth needed to fit 2m clean
points; its row reports the first term (expected near 1: clean nets are as deep as
the clean task needs) and no bound.

Functions of plain arrays: no checkpoints (``trained_ps`` reads a config mapping).
Effective depths come from the one definition, ``measure.collapse.effective_depth``.
"""

from __future__ import annotations

import numpy as np

from jaxdepth.measure.collapse import effective_depth as _effective_depth

CI_LEVEL = 0.95  # Clopper-Pearson level of the first-term interval
P_MAX = 0.5      # Prop. 1: p < 1/2


def trained_ps(cfg) -> list[float]:
  """Corruption fractions actually trained: 0 (the control) first when ``control``."""
  ps = [float(p) for p in cfg["p"]]
  return ([0.0] if cfg.get("control", False) else []) + ps


def clopper_pearson(k, n, level: float = CI_LEVEL) -> tuple[float, float]:
  """Exact two-sided binomial interval for k successes in n trials.

  lo = Beta(a/2; k, n-k+1) quantile (0 if k = 0), hi = Beta(1-a/2; k+1, n-k)
  quantile (1 if k = n), a = 1 - level. Same as scipy.stats.binomtest(k, n)
  .proportion_ci(level, method='exact').
  """
  from scipy.stats import beta

  k, n = int(k), int(n)
  if n < 1 or not 0 <= k <= n:
    raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
  a = 1.0 - level
  lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
  hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
  return lo, hi


def clean_depth(depth_KxG) -> np.ndarray:
  """D_k = mean over clean seeds g of d_{k,g}; (K, G) -> (K,)."""
  return np.asarray(depth_KxG, dtype=np.float64).mean(-1)


def minimal_depth(depth_KxPxG) -> np.ndarray:
  """dmin_hat_{k,p} = min over noisy seeds of d on S1 u S2~ (upper estimate); -> (K, P)."""
  return np.asarray(depth_KxPxG).min(-1)


def first_term(clean_depth_KxG, noisy_depth_KxPxG) -> np.ndarray:
  """T_p = (1/K) sum_k 1[D_k >= dmin_hat_{k,p}] (first term of Eq. 3); -> (P,)."""
  d_K = clean_depth(clean_depth_KxG)
  dmin_KxP = minimal_depth(noisy_depth_KxPxG)
  return (d_K[:, None] >= dmin_KxP).mean(0)


def bound(first_term_P, p_P, alpha: float) -> np.ndarray:
  """B_{p,alpha} = T_p + (1 + alpha) p, with delta_1 = delta_2 = 0 (assumed)."""
  return np.asarray(first_term_P, np.float64) + (1.0 + alpha) * np.asarray(p_P, np.float64)


def bound_rows(clean_err_KxGxL, noisy_err_KxPxGxL, test_err_KxG, ps, alphas, eps_list,
               num_layers: int | None = None, extra: dict | None = None,
               n_clean: int | None = None, n_noisy: int | None = None) -> list[dict]:
  """The report table: one row per (eps, p, alpha).

  Args:
    clean_err_KxGxL: per-layer NCC train errors of the clean runs on S1^k.
    noisy_err_KxPxGxL: per-layer NCC train errors of the noisy runs on S1^k u S2^{k,p}~.
    test_err_KxG: network test errors of the clean runs.
    ps, alphas, eps_list: the grid to report.
    extra: columns copied into every row (dataset, architecture, m, ...).
    n_clean, n_noisy: sizes of S1 and of S1 u S2 (m and 2m): the errors are counts
      out of these (see measure.collapse.effective_depth); None for exact fractions.
  Returns:
    list of dicts with mean_test_error, test_error_std, eps, p, alpha, control
    (p == 0), mean_clean_depth, mean_min_depth, first_term, first_term_count (of K),
    first_term_lo/hi (Clopper-Pearson 95%), bound and bound_hi (None for the control),
    holds (bound >= mean test error; None for the control), and flags:
    clean_unreached (clean runs that never reached eps), min_depth_unreached (draws
    where no noisy run fitted the set), min_depth_monotone (mean dmin_hat
    non-decreasing in p over the p > 0 grid).
  """
  clean = np.asarray(clean_err_KxGxL, np.float64)
  noisy = np.asarray(noisy_err_KxPxGxL, np.float64)
  test = np.asarray(test_err_KxG, np.float64)
  L = clean.shape[-1] if num_layers is None else num_layers
  rows = []
  for eps in eps_list:
    d_KxG = np.asarray(_effective_depth(clean, eps, n_clean), np.int64)
    dn_KxPxG = np.asarray(_effective_depth(noisy, eps, n_noisy), np.int64)
    dmin_KxP = minimal_depth(dn_KxPxG)
    t_P = first_term(d_KxG, dn_KxPxG)
    mean_dmin_P = dmin_KxP.mean(0)
    pos = np.asarray(ps, np.float64) > 0
    order = np.argsort(np.asarray(ps, np.float64)[pos], kind="stable")
    monotone = bool(np.all(np.diff(mean_dmin_P[pos][order]) >= 0))
    K = clean.shape[0]
    for j, p in enumerate(ps):
      count = int(round(t_P[j] * K))
      lo, hi = clopper_pearson(count, K)
      control = float(p) == 0.0
      for alpha in alphas:
        b = None if control else float(bound(t_P[j], p, alpha))
        rows.append({
            **(extra or {}),
            "mean_test_error": float(test.mean()), "test_error_std": float(test.std()),
            "eps": float(eps), "p": float(p), "alpha": float(alpha), "control": control,
            "mean_clean_depth": float(clean_depth(d_KxG).mean()),
            "mean_min_depth": float(mean_dmin_P[j]),
            "first_term": float(t_P[j]), "first_term_count": count, "num_draws": K,
            "first_term_lo": lo, "first_term_hi": hi,
            "bound": b,
            "bound_hi": None if control else float(bound(hi, p, alpha)),
            "holds": None if control else bool(b >= float(test.mean())),
            "clean_unreached": int((d_KxG > L).sum()),
            "min_depth_unreached": int((dmin_KxP[:, j] > L).sum()),
            "min_depth_monotone": monotone,
        })
  return rows


def _count(r):
  return f"{r['first_term_count']}/{r['num_draws']}"


def _ci(r):
  return f"[{r['first_term_lo']:.2f}, {r['first_term_hi']:.2f}]"


def _holds(r):
  return "control" if r["holds"] is None else ("yes" if r["holds"] else "NO")


COLUMNS = (("mean_test_error", "test err", "{:.4f}"), ("test_error_std", "(std)", "{:.4f}"),
           ("p", "p", "{:g}"), ("alpha", "alpha", "{:g}"), ("eps", "eps", "{:g}"),
           ("mean_clean_depth", "mean D_k", "{:.2f}"),
           ("mean_min_depth", "mean dmin", "{:.2f}"),
           ("first_term", "first term", "{:.3f}"), (_count, "I=1 draws", None),
           (_ci, "95% CI", None), ("bound", "bound", "{:.3f}"),
           ("bound_hi", "bound (CI top)", "{:.3f}"), (_holds, "bound >= err", None))


def _cell(r, key, fmt):
  if callable(key):
    return key(r)
  return "-" if r[key] is None else fmt.format(r[key])


def format_table(rows: list[dict]) -> str:
  """Markdown table of the report columns ('-' where a control row has no bound)."""
  head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
  sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
  body = ["| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |" for r in rows]
  return "\n".join([head, sep, *body])


def monotone_lines(rows: list[dict]) -> list[str]:
  """One line per eps: mean dmin_hat by p and whether it is non-decreasing (delta_2)."""
  out = []
  for eps in dict.fromkeys(r["eps"] for r in rows):
    per_p = dict((r["p"], r["mean_min_depth"]) for r in rows if r["eps"] == eps)
    mono = next(r["min_depth_monotone"] for r in rows if r["eps"] == eps)
    seq = ", ".join(f"p={p:g}: {d:.2f}" for p, d in sorted(per_p.items()))
    out.append(f"eps={eps:g}: mean dmin_hat {seq}; non-decreasing in p>0: "
               f"{'yes' if mono else 'NO (delta_2 assumption violated)'}")
  return out
