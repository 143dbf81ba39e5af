"""Critical initialization of the toy model, from exact gradient flow
(docs/definitions.md, "Critical initialization").

Gradient flow of sigma = u^N under 1/2 (sigma - sigma*)^2 gives
    dsigma/dt = N^2 sigma^(2 - 2/N) (sigma* - sigma),
so the time from sigma0 to level s is
    T(sigma0 -> s; sigma*) = int_{sigma0}^{s} ds' / (N^2 s'^(2-2/N) (sigma* - s')),
computed by quadrature in v = log s' (ds' = s' dv).  A pair (sigma*_i = 1,
sigma*_{i+1} = r) is eps-incremental iff value i reaches 1 - eps no later than
value i+1 reaches eps r.  Bisection on log sigma0 gives the largest such sigma0.
The constant N^2 cancels.  Print the table with

  python -m jaxdepth.papers.incremental.critical
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate

RATIOS = (0.5, 0.8, 0.9, 0.95)
DEPTHS = (2, 3, 4, 6, 10)
LOG_MIN = math.log(1e-300)


def flow_time(sigma0: float, level: float, target: float, depth: float) -> float:
  """T = int_{log sigma0}^{log level} dv / (N^2 e^{v(1-2/N)} (sigma* - e^v)) (exact flow time)."""
  if level <= sigma0:
    return 0.0
  n = float(depth)

  def f(v):
    return 1.0 / (n * n * math.exp(v * (1.0 - 2.0 / n)) * (target - math.exp(v)))

  a, b = math.log(sigma0), math.log(level)
  # Split the range so that quad resolves the fast-varying part near the start.
  knots = np.unique(np.clip(np.concatenate([[a], a + np.geomspace(1e-3, b - a, 12)]), a, b))
  return float(sum(integrate.quad(f, lo, hi, epsrel=1e-11, epsabs=0.0, limit=200)[0]
                   for lo, hi in zip(knots[:-1], knots[1:])))


def flow_time_depth2(sigma0: float, level: float, target: float) -> float:
  """Closed form for N = 2: T = [v - log(sigma* - e^v)] / (4 sigma*) between the ends."""
  def g(s):
    return math.log(s) - math.log(target - s)
  return (g(level) - g(sigma0)) / (4.0 * target)


def is_incremental(sigma0: float, r: float, depth: float, eps: float = 0.1) -> bool:
  """Value 1 (target 1) reaches 1 - eps before value 2 (target r) reaches eps r."""
  if sigma0 >= eps * r:
    return False
  return flow_time(sigma0, 1.0 - eps, 1.0, depth) <= flow_time(sigma0, eps * r, r, depth)


def critical_sigma0(r: float, depth: float, eps: float = 0.1, iters: int = 60) -> float:
  """Largest sigma0 for which the pair (1, r) is eps-incremental (bisection on log sigma0)."""
  lo, hi = LOG_MIN, math.log(eps * r)
  if not is_incremental(math.exp(lo), r, depth, eps):
    return 0.0
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    if is_incremental(math.exp(mid), r, depth, eps):
      lo = mid
    else:
      hi = mid
  return math.exp(lo)


def approx_sigma0(r: float, depth: int, eps: float = 0.1) -> float:
  """The closed-form approximations (N = 2: exponential in 1/(1-r); N >= 3: polynomial;
  docs/definitions.md, "Critical initialization")."""
  if depth == 2:
    return ((eps / (1 - eps)) ** (1 + r) * r) ** (1 / (1 - r))
  return eps * r * (1 - r) ** (depth / (depth - 2))


def critical_table(ratios=RATIOS, depths=DEPTHS, eps: float = 0.1) -> np.ndarray:
  """(len(ratios), len(depths)) critical sigma0 values."""
  return np.array([[critical_sigma0(r, n, eps) for n in depths] for r in ratios])


def format_table(table, ratios=RATIOS, depths=DEPTHS) -> str:
  """Markdown table: rows r = sigma*_{i+1}/sigma*_i, columns depth N."""
  head = "| r | " + " | ".join(f"N = {n}" for n in depths) + " |"
  sep = "|---" * (len(depths) + 1) + "|"
  rows = [f"| {r:g} | " + " | ".join(f"{v:.2g}" for v in row) + " |"
          for r, row in zip(ratios, np.asarray(table))]
  return "\n".join([head, sep, *rows])


def main() -> None:
  print("critical sigma0 (eps = 0.1, sigma*_i = 1): pair is incremental iff sigma0 <= entry")
  print(format_table(critical_table()))


if __name__ == "__main__":
  main()
