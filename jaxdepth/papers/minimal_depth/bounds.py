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

Why this module is long: it is one idea, the bound's arithmetic from plain arrays (the
rows, the curve over p with its invalid ranges, and the diagnostics of the assumptions
behind Prop. 1), kept together so that every number of ``jaxdepth bound`` is computed in
one place and tested against hand counts.
"""

from __future__ import annotations

import numpy as np

from jaxdepth.measure.collapse import effective_depth as _effective_depth

CI_LEVEL = 0.95  # Clopper-Pearson level of the first-term interval


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


def test_error_stats(test_KxG, level: float = CI_LEVEL) -> dict:
  """Mean, std (population) and the Student-t 95% interval of the mean test error over
  all K x G clean networks (n = K G values; the interval collapses to the mean when
  n = 1). Networks of one draw share S1, so the interval treats them as independent
  and is if anything too narrow."""
  from scipy.stats import t as student_t

  v = np.asarray(test_KxG, np.float64).ravel()
  n, mean = v.size, float(v.mean())
  half = 0.0
  if n > 1:
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
  return {"mean": mean, "std": float(v.std()), "lo": mean - half, "hi": mean + half, "n": n}


def jump_p(eps: float) -> float:
  """p* = 2 eps: corrupting round(p m) of S2's m labels corrupts p/2 of S1 u S2, so for
  p > p* the NCC of any network that fits S1 u S2~ within eps must separate corrupted
  points: d_min jumps towards L and the estimate is just (1 + alpha) p. For p <= p*
  the NCC may misclassify every corrupted point and still be within eps."""
  return 2.0 * float(eps)


def grid_warnings(ps, eps_list, mean_test_error=None, alphas=()) -> list[str]:
  """Warnings about a p grid that cannot show where the estimate breaks.

  Per eps: (1) no p > 0 at or below p* = 2 eps: every row is in the regime where
  d_min has jumped and the estimate is (1 + alpha) p, so the grid cannot reveal where
  an invalid region starts; (2) with the measured test error, the window
  p* < p < err / (1 + alpha), where (1 + alpha) p < err, is non-empty but holds no grid
  point: an invalid region there would be missed.
  """
  pos = sorted(float(p) for p in ps if float(p) > 0)
  out = []
  for eps in eps_list:
    star = jump_p(eps)
    if pos and not any(p <= star * (1 + 1e-9) for p in pos):
      out.append(f"eps={eps:g}: no p <= 2*eps = {star:g} in the grid (smallest p "
                 f"{pos[0]:g}): every row has p/2 > eps, where d_min jumps above the clean "
                 "depths and the estimate is just (1+alpha)p; the grid cannot reveal an "
                 "invalid region's start (add p below 2*eps)")
    if mean_test_error is None:
      continue
    for alpha in alphas:
      top = float(mean_test_error) / (1.0 + alpha)
      if top > star and not any(star < p < top for p in pos):
        out.append(f"eps={eps:g} alpha={alpha:g}: no grid p in ({star:g}, {top:.4g}), "
                   "where (1+alpha)p is below the mean test error: an invalid region "
                   "there would not show")
  return out


def monotonicity_pairs(dmin_KxP, ps, j: int, alpha: float) -> tuple[int, int]:
  """delta_2 estimate for row p = ps[j]: (violations, pairs) over draws k and trained
  q >= (1 + alpha) p (q != p, q > 0): a violation is dmin_{k,q} < dmin_{k,p}."""
  ps = np.asarray(ps, np.float64)
  d = np.asarray(dmin_KxP)
  p = ps[j]
  if p <= 0:
    return 0, 0
  qs = [i for i, q in enumerate(ps) if i != j and q > 0 and q >= (1.0 + alpha) * p - 1e-12]
  if not qs:
    return 0, 0
  viol = int((d[:, qs] < d[:, [j]]).sum())
  return viol, d.shape[0] * len(qs)


def mistake_overlap(mistakes_KxGxM) -> dict:
  """delta_1 (uniformity) diagnostic: overlap of the clean networks' mistakes on S2.

  For every draw and every pair of clean seeds with mistake sets A, B on S2 (|S2| = M),
  observed |A n B| against |A||B|/M, its expectation for independent uniformly random
  subsets of the same sizes. Returns the sums over all pairs and their ratio
  (observed/expected; 1 = like random label noise, > 1 = the same points are missed);
  ratio None when no pair or no expected overlap (G < 2 or no mistakes)."""
  a = np.asarray(mistakes_KxGxM, bool)
  K, G, M = a.shape
  obs = exp = 0.0
  pairs = 0
  for k in range(K):
    for g in range(G):
      for h in range(g + 1, G):
        obs += float(np.sum(a[k, g] & a[k, h]))
        exp += float(a[k, g].sum()) * float(a[k, h].sum()) / M
        pairs += 1
  return {"observed": obs, "expected": exp, "pairs": pairs,
          "ratio": (obs / exp) if exp > 0 else None}


def own_label_stats(d_KxG, own_err_KxGxL, agree_s2_KxGxL, agree_test_KxGxL, eps,
                    n_union=None) -> dict:
  """Assumption (a) for every clean network h with effective depth d = d^eps_{S1}(h):
  the NCC error at layer d on S1 u S2_h (S2 relabelled by h's own predictions, class
  means of that union), the effective depth d_own on it, and the agreement of the
  layer-d NCC (S1 means) with h's output on S2 and on the test set. (a) holds for h
  when d_own <= d. Networks that never reached eps on S1 (d = L + 1) are left out."""
  d = np.asarray(d_KxG).ravel()
  own = np.asarray(own_err_KxGxL, np.float64).reshape(d.size, -1)
  L = own.shape[-1]
  ok = d <= L
  if not ok.any():
    return {"own_label_nets": 0}
  i, li = np.nonzero(ok)[0], d[ok] - 1
  d_own = np.asarray(_effective_depth(own, eps, n_union), np.int64)[ok]
  s2 = np.asarray(agree_s2_KxGxL, np.float64).reshape(d.size, -1)
  te = np.asarray(agree_test_KxGxL, np.float64).reshape(d.size, -1)
  return {"own_label_nets": int(ok.sum()),
          "own_label_err_at_depth": float(own[i, li].mean()),
          "own_label_depth": float(d_own.mean()),
          "own_label_holds_frac": float(np.mean(d_own <= d[ok])),
          "ncc_agree_s2_at_depth": float(s2[i, li].mean()),
          "ncc_agree_test_at_depth": float(te[i, li].mean())}


def bound_rows(clean_err_KxGxL, noisy_err_KxPxGxL, test_err_KxG, ps, alphas, eps_list,
               num_layers: int | None = None, extra: dict | None = None,
               n_clean: int | None = None, n_noisy: int | None = None,
               assumptions: dict | None = None) -> list[dict]:
  """The report table: one row per (eps, p, alpha).

  Args:
    clean_err_KxGxL: per-layer NCC train errors of the clean runs on S1^k.
    noisy_err_KxPxGxL: per-layer NCC train errors of the noisy runs on S1^k u S2^{k,p}~.
    test_err_KxG: network test errors of the clean runs.
    ps, alphas, eps_list: the grid to report.
    extra: columns copied into every row (dataset, architecture, m, ...).
    n_clean, n_noisy: sizes of S1 and of S1 u S2 (m and 2m): the errors are counts
      out of these (see measure.collapse.effective_depth); None for exact fractions.
    assumptions: optional per-clean-network arrays for the assumption diagnostics:
      own_err (K, G, L) NCC error on S1 u S2_h, agree_s2 / agree_test (K, G, L)
      agreement of the per-layer NCC (S1 means) with h's output, s2_mistakes
      (K, G, m) bool, h's mistakes on S2.
  Returns:
    list of dicts with mean_test_error, test_error_std, test_error_lo/hi (95% interval
    of the mean, ``test_error_stats``), eps, p, alpha, control (p == 0),
    mean_clean_depth, mean_min_depth, first_term, first_term_count (of K),
    first_term_lo/hi (Clopper-Pearson 95%), bound and bound_hi (None for the control),
    holds (the row is valid: bound >= mean test error; None for the control),
    holds_vs_test_hi (bound >= the top of the test error's interval), p_over_2eps
    (p > 2 eps: d_min has jumped, ``jump_p``), delta2_violations / delta2_pairs /
    delta2_frac (``monotonicity_pairs``; frac None without pairs), and flags:
    clean_unreached (clean runs that never reached eps), min_depth_unreached (draws
    where no noisy run fitted the set), min_depth_monotone (mean dmin_hat
    non-decreasing in p over the p > 0 grid). With ``assumptions`` also the
    ``own_label_stats`` columns and mistake_overlap_ratio / _observed / _expected.
  """
  clean = np.asarray(clean_err_KxGxL, np.float64)
  noisy = np.asarray(noisy_err_KxPxGxL, np.float64)
  test = np.asarray(test_err_KxG, np.float64)
  L = clean.shape[-1] if num_layers is None else num_layers
  ts = test_error_stats(test)
  overlap = {}
  if assumptions is not None and "s2_mistakes" in assumptions:
    ov = mistake_overlap(assumptions["s2_mistakes"])
    overlap = {"mistake_overlap_ratio": ov["ratio"], "mistake_overlap_observed": ov["observed"],
               "mistake_overlap_expected": ov["expected"]}
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
    own = {}
    if assumptions is not None and "own_err" in assumptions:
      own = own_label_stats(d_KxG, assumptions["own_err"], assumptions["agree_s2"],
                            assumptions["agree_test"], eps,
                            None if n_clean is None else 2 * n_clean)
    for j, p in enumerate(ps):
      count = int(round(t_P[j] * K))
      lo, hi = clopper_pearson(count, K)
      control = float(p) == 0.0
      for alpha in alphas:
        b = None if control else float(bound(t_P[j], p, alpha))
        viol, pairs = monotonicity_pairs(dmin_KxP, ps, j, alpha)
        rows.append({
            **(extra or {}),
            "mean_test_error": ts["mean"], "test_error_std": ts["std"],
            "test_error_lo": ts["lo"], "test_error_hi": ts["hi"],
            "eps": float(eps), "p": float(p), "alpha": float(alpha), "control": control,
            "mean_clean_depth": float(clean_depth(d_KxG).mean()),
            "mean_min_depth": float(mean_dmin_P[j]),
            "first_term": float(t_P[j]), "first_term_count": count, "num_draws": K,
            "first_term_lo": lo, "first_term_hi": hi,
            "bound": b,
            "bound_hi": None if control else float(bound(hi, p, alpha)),
            "holds": None if control else bool(b >= ts["mean"]),
            "holds_vs_test_hi": None if control else bool(b >= ts["hi"]),
            "p_over_2eps": bool(float(p) > jump_p(eps) * (1 + 1e-9)),
            "delta2_violations": viol, "delta2_pairs": pairs,
            "delta2_frac": (viol / pairs) if pairs else None,
            "clean_unreached": int((d_KxG > L).sum()),
            "min_depth_unreached": int((dmin_KxP[:, j] > L).sum()),
            "min_depth_monotone": monotone,
            **own, **overlap,
        })
  return rows


def _ranges(ps_sorted, flags) -> list[list[float]]:
  """Maximal runs of consecutive grid points whose flag is True, as [first p, last p]."""
  out, start, prev = [], None, None
  for p, f in zip(ps_sorted, flags):
    if f and start is None:
      start = p
    if not f and start is not None:
      out.append([start, prev])
      start = None
    prev = p
  if start is not None:
    out.append([start, prev])
  return out


ASSUMPTION_KEYS = ("own_label_holds_frac", "own_label_err_at_depth", "own_label_depth",
                   "ncc_agree_s2_at_depth", "ncc_agree_test_at_depth", "delta2_frac",
                   "delta2_violations", "delta2_pairs", "mistake_overlap_ratio")


def curve_summary(rows: list[dict]) -> list[dict]:
  """Per (eps, alpha) over the p > 0 rows, sorted by p: the smallest valid p (bound >=
  mean test error; and against the top of its 95% interval), the range(s) of grid p
  where the estimate is below the mean test error (each [first, last] grid point), p* =
  2 eps, and the assumption diagnostics at the p where the estimate breaks (the first
  invalid p; None when every row is valid)."""
  out = []
  keys = dict.fromkeys((r["eps"], r["alpha"]) for r in rows)
  for eps, alpha in keys:
    rs = sorted((r for r in rows if r["eps"] == eps and r["alpha"] == alpha
                 and not r["control"]), key=lambda r: r["p"])
    if not rs:
      continue
    ps = [r["p"] for r in rs]
    valid = [bool(r["holds"]) for r in rs]
    valid_hi = [bool(r["holds_vs_test_hi"]) for r in rs]
    first_bad = next((r for r in rs if not r["holds"]), None)
    out.append({
        "eps": eps, "alpha": alpha, "p_grid": ps, "jump_p": jump_p(eps),
        "mean_test_error": rs[0]["mean_test_error"],
        "test_error_lo": rs[0]["test_error_lo"], "test_error_hi": rs[0]["test_error_hi"],
        "smallest_valid_p": next((p for p, v in zip(ps, valid) if v), None),
        "invalid_ranges": _ranges(ps, [not v for v in valid]),
        "smallest_valid_p_vs_test_hi": next((p for p, v in zip(ps, valid_hi) if v), None),
        "invalid_ranges_vs_test_hi": _ranges(ps, [not v for v in valid_hi]),
        "breaks_at": None if first_bad is None else {
            "p": first_bad["p"], "bound": first_bad["bound"],
            "first_term": first_bad["first_term"],
            **{k: first_bad[k] for k in ASSUMPTION_KEYS if k in first_bad}},
    })
  return out


def curve_lines(summary: list[dict]) -> list[str]:
  """One line per (eps, alpha) of ``curve_summary``."""
  fmt = lambda rs: ", ".join(f"[{a:g}, {b:g}]" if a != b else f"{{{a:g}}}" for a, b in rs)
  out = []
  for s in summary:
    sv = s["smallest_valid_p"]
    line = (f"eps={s['eps']:g} alpha={s['alpha']:g}: smallest valid p "
            f"{'none' if sv is None else f'{sv:g}'}; estimate below the mean test error "
            f"{s['mean_test_error']:.4f} at p in {fmt(s['invalid_ranges']) or 'none'} "
            f"(below its 95% top {s['test_error_hi']:.4f}: "
            f"{fmt(s['invalid_ranges_vs_test_hi']) or 'none'}); 2*eps = {s['jump_p']:g}")
    b = s["breaks_at"]
    if b is not None:
      parts = []
      if "own_label_holds_frac" in b:
        parts.append(f"(a) d_own <= d(h) for {b['own_label_holds_frac']:.2f} of clean nets, "
                     f"NCC error at d(h) on S1+S2_h {b['own_label_err_at_depth']:.4f}, "
                     f"NCC-vs-h agreement at d(h) S2 {b['ncc_agree_s2_at_depth']:.3f} / "
                     f"test {b['ncc_agree_test_at_depth']:.3f}")
      parts.append("(b) delta_2 pairs: " + ("none" if b["delta2_frac"] is None else
                   f"{b['delta2_violations']}/{b['delta2_pairs']} = {b['delta2_frac']:.2f}"))
      if b.get("mistake_overlap_ratio") is not None:
        parts.append(f"(c) mistake overlap / random {b['mistake_overlap_ratio']:.2f}")
      line += f"; at p={b['p']:g}: " + "; ".join(parts)
    out.append(line)
  return out


def _count(r):
  return f"{r['first_term_count']}/{r['num_draws']}"


def _ci(r):
  return f"[{r['first_term_lo']:.2f}, {r['first_term_hi']:.2f}]"


def _holds(r):
  return "control" if r["holds"] is None else ("yes" if r["holds"] else "NO")


def _holds_hi(r):
  v = r.get("holds_vs_test_hi")
  return "-" if v is None else ("yes" if v else "NO")


def _test_ci(r):
  if "test_error_lo" not in r:
    return "-"
  return f"[{r['test_error_lo']:.4f}, {r['test_error_hi']:.4f}]"


COLUMNS = (("mean_test_error", "test err", "{:.4f}"), ("test_error_std", "(std)", "{:.4f}"),
           (_test_ci, "test err 95%", None),
           ("p", "p", "{:g}"), ("alpha", "alpha", "{:g}"), ("eps", "eps", "{:g}"),
           ("mean_clean_depth", "mean D_k", "{:.2f}"),
           ("mean_min_depth", "mean dmin", "{:.2f}"),
           ("first_term", "first term", "{:.3f}"), (_count, "I=1 draws", None),
           (_ci, "95% CI", None), ("bound", "bound", "{:.3f}"),
           ("bound_hi", "bound (CI top)", "{:.3f}"), (_holds, "bound >= err", None),
           (_holds_hi, "bound >= err 95% top", None))


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
