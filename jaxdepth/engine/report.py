"""What a run tells the user on the terminal: diverged runs as they appear, and a final
table of headline numbers per grid point (mean and spread over seeds).

Every experiment builds its report from its summary records with :func:`grouped`
and :func:`table`; the CLI prints it with the paths of the files written.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


class DivergenceMonitor:
  """Reports each run once, at the evaluation where it is first seen diverged.

  ``describe(run)`` names a run's grid point, e.g. ``"p=0.6 seed 1"``; runs with the
  same grid point (all but the seed) are listed together.
  """

  def __init__(self, grid: Sequence[dict], where: str = "", point_fields=(),
               stream=None, enabled: bool = True, short: dict[str, str] | None = None):
    self.grid, self.where, self.point_fields = list(grid), where, tuple(point_fields)
    self.short = short or {}
    self.enabled = enabled
    self.seen = np.zeros(len(self.grid), bool)
    self.stream = stream

  def update(self, diverged_R, at: str, reason: str = "non-finite parameters") -> str | None:
    d = np.asarray(diverged_R, bool)[: len(self.grid)]
    new = d & ~self.seen
    self.seen |= d
    if not new.any():
      return None
    groups: dict[tuple, list] = {}
    for i in np.flatnonzero(new):
      r = self.grid[i]
      groups.setdefault(tuple(r.get(f) for f in self.point_fields), []).append(r["seed"])
    parts = []
    for point, seeds in groups.items():
      name = " ".join(f"{self.short.get(f, f)}={_fmt(v)}"
                      for f, v in zip(self.point_fields, point))
      word = "seed" if len(seeds) == 1 else "seeds"
      parts.append(f"{name} {word} {', '.join(str(s) for s in seeds)}".strip())
    where = f"{self.where}: " if self.where else ""
    line = (f"jaxdepth: warning: {where}{int(new.sum())} of {len(self.grid)} runs diverged "
            f"at {at}: {'; '.join(parts)}; {reason}")
    if self.enabled:
      print(line, file=self.stream or sys.stderr, flush=True)
    return line


def _fmt(v: Any) -> str:
  if isinstance(v, float):
    return f"{v:g}"
  return str(v)


def spread(values: Iterable[float], digits: int = 3) -> str:
  """``mean ± std`` of the finite values ('-' when there are none)."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
  if v.size == 0:
    return "-"
  if v.size == 1:
    return f"{v[0]:.{digits}f}"
  return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def grouped(records: Sequence[dict], keys: Sequence[str],
            columns: dict[str, Callable[[list[dict]], str]],
            short: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
  """One row per distinct value of ``keys`` (in first-seen order); ``columns`` map a
  header to a function of that group's records (diverged runs included: the column
  functions decide; :func:`ok` drops them). ``short`` renames key headers."""
  short = short or {}
  groups: dict[tuple, list[dict]] = {}
  for r in records:
    groups.setdefault(tuple(_hashable(r[k]) for k in keys), []).append(r)
  headers = [short.get(k, k) for k in keys] + ["runs"] + list(columns)
  rows = []
  for point, recs in groups.items():
    n_div = sum(bool(r.get("diverged")) for r in recs)
    runs = f"{len(recs)}" + (f" ({n_div} diverged)" if n_div else "")
    rows.append([_fmt(v) for v in point] + [runs] + [f(recs) for f in columns.values()])
  return headers, rows


def _hashable(v):
  if hasattr(v, "tolist"):
    v = v.tolist()
  return tuple(v) if isinstance(v, list) else v


def ok(recs: list[dict]) -> list[dict]:
  return [r for r in recs if not r.get("diverged")]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A plain-text table with aligned columns."""
  cols = [list(map(str, c)) for c in zip(headers, *rows)] if rows else [[h] for h in headers]
  widths = [max(len(x) for x in c) for c in cols]
  line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))
  out = [line(headers), line(["-" * w for w in widths])]
  out += [line(r) for r in rows]
  return "\n".join(x.rstrip() for x in out)


def scalar_runs_table(runs: Sequence[dict], coordinates: Sequence[str] = (),
                      headline: Sequence[str] | None = None, max_columns: int = 5,
                      short: dict[str, str] | None = None,
                      skip: Sequence[str] = ("seed", "run")) -> str | None:
  """Generic final table: one row per grid point (the experiment's ``coordinates``
  present in the records, scalars only), mean ± std over the non-diverged seeds of
  ``headline`` fields (default: the first scalar numbers not in ``skip``)."""
  if not runs:
    return None
  keys = [k for k in coordinates if k in runs[0]
          and not isinstance(runs[0][k], (list, tuple)) and not hasattr(runs[0][k], "shape")]
  if headline is None:
    headline = [k for k, v in runs[0].items()
                if k not in skip and k not in keys and isinstance(v, (int, float))
                and not isinstance(v, bool)][:max_columns]
  cols = {h: (lambda recs, h=h: spread([r.get(h) for r in ok(recs)])) for h in headline}
  return table(*grouped(runs, keys, cols, short))


def summary_report(summary: dict, headline: Sequence[str] | None = None,
                   coordinates: Sequence[str] = (), short: dict[str, str] | None = None,
                   skip: Sequence[str] = ("seed", "run")) -> str | None:
  """The table a finished run prints: runs grouped by the experiment's coordinates
  (short header names from ``short``), or the checks."""
  if isinstance(summary.get("runs"), list) and summary["runs"] and \
     isinstance(summary["runs"][0], dict):
    return scalar_runs_table(summary["runs"], coordinates, headline, short=short, skip=skip)
  checks = summary.get("checks")
  if isinstance(checks, dict) and checks:
    return table(["check", "value"], [[k, _fmt(v)] for k, v in checks.items()])
  return None
