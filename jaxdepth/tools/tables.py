"""Regenerate the results tables of README.md and docs/*.md from a finished run.

  python -m jaxdepth.tools.tables --table quickstart --workdir runs/quickstart
  jaxdepth table --table quickstart --workdir runs/quickstart            (the same)
  jaxdepth table --table quickstart --workdir runs/quickstart --check README.md
  jaxdepth table --table bound_readme --workdir runs/bound --workdir runs/bound_L16

Prints the markdown table exactly as the documentation holds it (same columns, same
rounding: mean ± sample std over the seeds that did not diverge, from ``summary.json``;
the bound tables from ``bound.json``, written by ``jaxdepth bound``). ``--check FILE``
compares it with the table of the same header in FILE: exit status 0 when one of them
is equal cell for cell, 1 otherwise (the cells that differ are printed). Reads JSON
only: no jax, no training code.

Tables (the run each one reads; its command is in the documentation beside the table):

Why this module is long: it is one idea, a regenerator per documented table, each a
few lines that must match its table's format cell for cell; splitting them apart
would scatter the formats that the tests compare with the documents.
""" # the list of tables is appended below, from TABLES

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence

from jaxdepth.errors import ConfigError


class TableError(ConfigError):
  """A one-line, user-facing error (the CLI prints it and exits with status 2)."""

  def __init__(self, message: str):
    self.field = "table"
    ValueError.__init__(self, message)


# ------------------------------------------------------------------ cell formats
def _finite(values) -> list[float]:
  return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values, digits: int = 3) -> str:
  """``mean ± std`` (sample std, ddof=1) of the finite values; the value alone for one,
  '-' for none. The rounding of the run's own final table (engine.report.spread)."""
  import numpy as np
  v = np.asarray(_finite(values), np.float64)
  if v.size == 0:
    return "-"
  if v.size == 1:
    return f"{v[0]:.{digits}f}"
  return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def mean_only(values, digits: int = 3) -> str:
  import numpy as np
  v = np.asarray(_finite(values), np.float64)
  return "-" if v.size == 0 else f"{v.mean():.{digits}f}"


def ok(recs: Sequence[dict]) -> list[dict]:
  """The runs that did not diverge (diverged runs enter no mean)."""
  return [r for r in recs if not r.get("diverged")]


def eff_depth(eps: str) -> Callable[[list[dict]], str]:
  """Mean ± std of the eps-effective depth over the runs that reached eps; 'never (0/n)'
  when none did, '... (k/n)' when only k did (no L + 1 placeholder enters a mean)."""
  def cell(recs):
    good = ok(recs)
    reached = [r["effective_depth"][eps] for r in good if r.get("reached", {}).get(eps, True)]
    if not reached:
      return f"never (0/{len(good)})"
    text = mean_std(reached, 2)
    return text if len(reached) == len(good) else f"{text} ({len(reached)}/{len(good)})"
  return cell


def scalar(field: str, agg=mean_std, digits: int = 3):
  return lambda recs: agg([r[field] for r in ok(recs)], digits)


def layer(field: str, index: int = -1, agg=mean_std, digits: int = 3):
  """A per-layer field at 1-based layer ``index`` (-1: the top layer)."""
  i = index if index < 0 else index - 1
  return lambda recs: agg([r[field][i] for r in ok(recs)], digits)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  head = "| " + " | ".join(headers) + " |"
  sep = "|" + "|".join("---" for _ in headers) + "|"
  return "\n".join([head, sep, *("| " + " | ".join(r) + " |" for r in rows)])


# ------------------------------------------------------------- collapse tables
@dataclasses.dataclass(frozen=True)
class CollapseTable:
  """One row per value of ``key`` (the run grid's only axis besides the seed)."""
  doc: str
  key: str
  key_header: str
  key_format: Callable[[object], str]
  columns: tuple[tuple[str, Callable], ...]
  eff_depth: bool = True
  source = "summary.json"

  def build(self, workdirs: Sequence[str], args) -> str:
    if len(workdirs) != 1:
      raise TableError(f"this table reads one run; got {len(workdirs)} --workdir")
    summary = load_json(workdirs[0], "summary.json")
    runs = summary.get("runs")
    if summary.get("experiment", "collapse") != "collapse" or not isinstance(runs, list) \
       or not runs or not isinstance(runs[0], dict) or self.key not in runs[0]:
      raise TableError(f"{workdirs[0]}/summary.json is not a collapse run with "
                       f"'{self.key}' per run")
    others = [k for k in ("depth", "width", "label_noise", "lr", "weight_decay",
                          "momentum", "warmup_epochs", "decay")
              if k != self.key and k in runs[0] and len({_hashable(r[k]) for r in runs}) > 1]
    if others:
      raise TableError(f"{workdirs[0]}: this table has one row per {self.key}, but the runs "
                       f"also vary in {', '.join(others)}")
    groups: dict = {}
    for r in runs:
      groups.setdefault(r[self.key], []).append(r)
    cols = list(self.columns)
    if self.eff_depth:
      eps = [str(e) for e in summary["eps"]]
      cols += [(("eff. depth " if i == 0 else "") + f"ε={e}", eff_depth(e))
               for i, e in enumerate(eps)]
    headers = [self.key_header] + [h for h, _ in cols]
    rows = [[self.key_format(k)] + [f(recs) for _, f in cols] for k, recs in groups.items()]
    return markdown(headers, rows)


def _hashable(v):
  return tuple(v) if isinstance(v, list) else v


def _g(v) -> str:
  return f"{v:g}"


_ACC = (("train acc", scalar("train_acc")), ("test acc", scalar("test_acc")))


# ---------------------------------------------------------------- bound tables
# The docs' bound table: jaxdepth bound's columns (papers.minimal_depth.bounds.COLUMNS)
# without the two columns against the test error's 95% interval, added after the
# documented runs.
BOUND_DOC_HEADERS = ("test err", "(std)", "p", "alpha", "eps", "mean D_k", "mean dmin",
                     "first term", "I=1 draws", "95% CI", "bound", "bound (CI top)",
                     "bound >= err")


def _bound_rows(workdir: str) -> list[dict]:
  rows = load_json(workdir, "bound.json").get("rows")
  if not isinstance(rows, list) or not rows:
    raise TableError(f"{workdir}/bound.json holds no rows; rerun `jaxdepth bound "
                     f"--workdir {workdir}`")
  return rows


def _num_layers(row: dict) -> int:
  return int(str(row["architecture"]).split("-")[1])


def _eps_filter(rows, eps):
  if eps is None:
    return rows
  out = [r for r in rows if any(abs(r["eps"] - e) < 1e-12 for e in eps)]
  if not out:
    have = ", ".join(f"{e:g}" for e in dict.fromkeys(r["eps"] for r in rows))
    raise TableError(f"--eps {' '.join(f'{e:g}' for e in eps)}: not in bound.json "
                     f"(eps there: {have})")
  return out


@dataclasses.dataclass(frozen=True)
class BoundTable:
  doc: str
  kind: str  # "doc", "readme" or "curve"
  source = "bound.json"

  def build(self, workdirs: Sequence[str], args) -> str:
    eps = getattr(args, "eps", None)
    if self.kind == "readme":
      return self._readme(workdirs, eps if eps is not None else [0.01])
    if len(workdirs) != 1:
      raise TableError(f"this table reads one run; got {len(workdirs)} --workdir")
    rows = _eps_filter(_bound_rows(workdirs[0]), eps)
    return self._doc(rows) if self.kind == "doc" else self._curve(rows)

  @staticmethod
  def _doc(rows) -> str:
    from jaxdepth.papers.minimal_depth import bounds
    cols = {h: (k, f) for k, h, f in bounds.COLUMNS}
    return markdown(BOUND_DOC_HEADERS,
                    [[bounds._cell(r, *cols[h]) for h in BOUND_DOC_HEADERS] for r in rows])

  @staticmethod
  def _readme(workdirs, eps) -> str:
    headers = ("L", "test err (std)", "p", "mean D_k", "mean d_min", "I=1 draws (95% CI)",
               "bound", "bound >= test err")
    out = []
    for w in workdirs:
      for r in _eps_filter(_bound_rows(w), eps):
        control = r["control"]
        out.append([str(_num_layers(r)),
                    f"{r['mean_test_error']:.4f} ({r['test_error_std']:.4f})",
                    _g(r["p"]), f"{r['mean_clean_depth']:.2f}", f"{r['mean_min_depth']:.2f}",
                    f"{r['first_term_count']}/{r['num_draws']} "
                    f"[{r['first_term_lo']:.2f}, {r['first_term_hi']:.2f}]",
                    "control" if control else f"{r['bound']:.3f}",
                    "-" if control else ("yes" if r["holds"] else "NO")])
    return markdown(headers, out)

  @staticmethod
  def _curve(rows) -> str:
    rows = [r for r in rows if not r["control"]]
    ps = list(dict.fromkeys(r["p"] for r in rows))
    out = []
    for e in dict.fromkeys(r["eps"] for r in rows):
      by_p = {r["p"]: r for r in rows if r["eps"] == e}
      first = next(iter(by_p.values()))
      top = _num_layers(first) + 1

      def dmin(r, top=top):  # used within this iteration; bound for the linter
        if r["min_depth_unreached"] == r["num_draws"]:
          return f"{top}*"
        return f"{r['mean_min_depth']:.2f}"

      def estimate(r):
        text = f"{r['bound']:.3f}"
        return f"**{text}**" if r["holds"] is False else text

      for label, f in ((f"mean dmin_hat (D_k {first['mean_clean_depth']:.2f})", dmin),
                       ("I=1 draws", lambda r: f"{r['first_term_count']}/{r['num_draws']}"),
                       ("estimate", estimate)):
        out.append([_g(e), label] + [f(by_p[p]) if p in by_p else "-" for p in ps])
    return markdown(["eps", "p"] + [_g(p) for p in ps], out)


# ----------------------------------------------------- over-parameterization
OVERPARAM_HEADERS = ("data", "model", "d", "lr", "diverged", "train acc", "test acc",
                     "embedding ρ (mean of layers)", "penultimate ρ", "collapsed weight ρ")
_DATA_NAMES = {"digits": "digits", "fashion_mnist": "Fashion-MNIST"}


def _op_cell(d) -> str:
  """``mean ± std`` of an over-parameterization summary entry; '—' where undefined
  (every seed diverged)."""
  if not d or d.get("mean") is None or not math.isfinite(float(d["mean"])):
    return "—"
  return f"{d['mean']:.3f} ± {d['std']:.3f}"


@dataclasses.dataclass(frozen=True)
class OverparamTable:
  doc: str
  source = "summary.json, metrics.jsonl"

  def build(self, workdirs: Sequence[str], args) -> str:
    """One row per (model, expansion d) of each run, in --workdir order; a run with
    ``lr_scaling = none`` skips d = 1 (the same networks as the scaled run's d = 1).
    The penultimate rho is the last hidden layer's embedding rank at the last
    evaluation, mean ± population std over the seeds that did not diverge."""
    rows = []
    for w in workdirs:
      s, cfg = load_json(w, "summary.json"), load_json(w, "config.json")
      if s.get("experiment") != "lowrank.overparam":
        raise TableError(f"{w}: not an over-parameterization run "
                         f"(experiment {s.get('experiment')!r})")
      none = cfg.get("lr_scaling") == "none"
      evals = [r for r in _jsonl(os.path.join(w, "metrics.jsonl")) if r.get("kind") == "eval"]
      n = s["num_seeds"]
      for key, r in s["results"].items():
        model, e = key.split("/")[:2]
        e = int(e[1:])
        if none and e == 1:
          continue
        mine = [x for x in evals if x.get("model") == model and x.get("expansion") == e]
        last = max((x["epoch"] for x in mine), default=None)
        pen = _finite(x["rank_train"][-1] for x in mine
                      if x["epoch"] == last and not x.get("diverged"))
        pd = None
        if pen:
          mean = sum(pen) / len(pen)
          pd = {"mean": mean, "std": math.sqrt(sum((v - mean) ** 2 for v in pen) / len(pen))}
        lr = f"{r['lr']:g}" + ("" if e == 1 else (" (none)" if none else " (lr / d)"))
        rows.append([_DATA_NAMES.get(s["dataset"], s["dataset"]), model.upper(), str(e), lr,
                     f"{r['diverged_runs']}/{n}", _op_cell(r["train_acc"]),
                     _op_cell(r["test_acc"]), _op_cell(r["rank_train_mean"]), _op_cell(pd),
                     _op_cell(r["weight_rho_mean"])])
    return markdown(OVERPARAM_HEADERS, rows)


def _jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    raise TableError(f"{path} not found (a finished `jaxdepth train` writes it)")
  from jaxdepth.engine import writers  # numpy only; kept off `jaxdepth --help`'s path
  return writers.read_jsonl(path)


# ---------------------------------------------------------------------- registry
TABLES = {
    "quickstart": CollapseTable(
        "README 'The main job': jaxdepth train --config quickstart",
        "label_noise", "p", _g,
        (*_ACC, ("NCC test acc (top layer)", layer("ncc_test_acc")))),
    "depth_sweep": CollapseTable(
        "docs/minimal_depth.md §1: jaxdepth train --config depth_sweep",
        "depth", "L", str,
        (*_ACC, ("NCC train (top)", layer("ncc_train_acc")),
         ("CDNV train (top)", layer("cdnv_train")))),
    "noise_flip": CollapseTable(
        "docs/minimal_depth.md §2: jaxdepth train --config noise_sweep",
        "label_noise", "p (flip)", str,
        (*_ACC, ("NCC train (top)", layer("ncc_train_acc")),
         ("CDNV train (top)", layer("cdnv_train")))),
    "noise_uniform": CollapseTable(
        "docs/minimal_depth.md §2: jaxdepth train --config noise_sweep:uniform",
        "label_noise", "p (uniform)", str,
        (*_ACC, ("CDNV train (top)", layer("cdnv_train")))),
    "width_sweep": CollapseTable(
        "docs/minimal_depth.md §3: jaxdepth train --config width_sweep (means over seeds)",
        "width", "H", str,
        (("NCC train acc, layer 5", layer("ncc_train_acc", 5, mean_only)),
         ("NCC test acc, layer 5", layer("ncc_test_acc", 5, mean_only)),
         ("CDNV train, layer 8", layer("cdnv_train", 8, mean_only, 2)),
         ("CDNV test, layer 8", layer("cdnv_test", 8, mean_only, 2)),
         ("NCC train acc, layer 10", layer("ncc_train_acc", 10, mean_only)),
         ("train acc", scalar("train_acc", mean_only)),
         ("test acc", scalar("test_acc", mean_only)))),
    "fashion_mnist": CollapseTable(
        "docs/minimal_depth.md §5: jaxdepth train --config fashion_mnist_conv:cpu",
        "depth", "L", str,
        (*_ACC, ("NCC train (top)", layer("ncc_train_acc")),
         ("NCC test (top)", layer("ncc_test_acc")),
         ("CDNV train (top)", layer("cdnv_train")))),
    "bound": BoundTable(
        "docs/minimal_depth.md §4: jaxdepth bound --workdir W (each L's table)", "doc"),
    "bound_readme": BoundTable(
        "README bound table: one or more --workdir (L = 8, then 16), eps 0.01 unless --eps",
        "readme"),
    "bound_curve": BoundTable(
        "docs/minimal_depth.md §4.1: jaxdepth bound on the default p grid", "curve"),
    "overparam": OverparamTable(
        "README over-parameterization table: --workdir of each run (digits, digits "
        "unscaled, Fashion-MNIST, Fashion-MNIST unscaled)"),
}
NAMES = tuple(TABLES)
__doc__ += "\n".join(f"  {n:<15}{t.doc} ({t.source})" for n, t in TABLES.items())


def load_json(workdir: str, name: str) -> dict:
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    hint = (f"`jaxdepth bound --workdir {workdir}` writes it" if name == "bound.json"
            else "a finished `jaxdepth train` writes it")
    raise TableError(f"{path} not found ({hint})")
  with open(path) as f:
    return json.load(f)


def build(name: str, workdirs: Sequence[str], args=None) -> str:
  """The markdown table ``name`` (one of :data:`NAMES`) regenerated from ``workdirs``."""
  if name not in TABLES:
    raise TableError(f"unknown table {name!r}; tables: {', '.join(NAMES)}")
  return TABLES[name].build(list(workdirs), args or argparse.Namespace())


# ------------------------------------------------------------- reading markdown
@dataclasses.dataclass
class MarkdownTable:
  header: list[str]
  rows: list[list[str]]
  line: int  # 1-based line of the header


def _cells(line: str) -> list[str]:
  s = line.strip()
  return [c.strip() for c in s.strip("|").split("|")]


def parse_tables(text: str) -> list[MarkdownTable]:
  """Every pipe table of a markdown text (header, separator, rows), in order."""
  lines = text.splitlines()
  out, i = [], 0
  while i + 1 < len(lines):
    a, b = lines[i].strip(), lines[i + 1].strip()
    if a.startswith("|") and b.startswith("|") and set(b) <= set("|-: "):
      header, rows, j = _cells(a), [], i + 2
      while j < len(lines) and lines[j].strip().startswith("|"):
        rows.append(_cells(lines[j]))
        j += 1
      out.append(MarkdownTable(header, rows, i + 1))
      i = j
    else:
      i += 1
  return out


def check(table: str, path: str) -> tuple[bool, str]:
  """(whether ``path`` holds ``table`` cell for cell, a report of where it differs)."""
  ours = parse_tables(table)[0]
  with open(path) as f:
    theirs = [t for t in parse_tables(f.read()) if t.header == ours.header]
  if not theirs:
    return False, f"{path}: no table with the header | {' | '.join(ours.header)} |"
  for t in theirs:
    if t.rows == ours.rows:
      return True, f"{path}:{t.line}: the table matches"
  def same(t):
    return sum(a == b for ra, rb in zip(t.rows, ours.rows) for a, b in zip(ra, rb))
  best = max(theirs, key=same)
  lines = [f"{path}:{best.line}: the table differs from the regenerated one"]
  if len(best.rows) != len(ours.rows):
    lines.append(f"  rows: {len(best.rows)} in the file, {len(ours.rows)} regenerated")
  for i, (ra, rb) in enumerate(zip(best.rows, ours.rows)):
    for h, a, b in zip(ours.header, ra, rb):
      if a != b:
        lines.append(f"  row {i + 1} ({ra[0]}), {h}: file {a!r}, run {b!r}")
  return False, "\n".join(lines)


# -------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--table", required=True, metavar="NAME",
                 help=f"one of: {', '.join(NAMES)}")
  p.add_argument("--workdir", required=True, action="append",
                 help="run directory (repeat for bound_readme: L = 8, then L = 16)")
  p.add_argument("--eps", type=float, nargs="+", default=None,
                 help="bound tables: only these eps (bound_readme: 0.01 by default)")
  p.add_argument("--check", metavar="FILE", default=None,
                 help="compare with the table of the same header in FILE (exit 1 if "
                      "none is equal)")


def run(args, out=None) -> int:
  out = out or sys.stdout
  text = build(args.table, args.workdir, args)
  if args.check is None:
    print(text, file=out)
    return 0
  if not os.path.exists(args.check):
    raise TableError(f"--check {args.check}: no such file")
  same, msg = check(text, args.check)
  print(msg, file=out)
  if not same:
    print("regenerated:\n" + text, file=out)
  return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m jaxdepth.tools.tables", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  add_arguments(p)
  args = p.parse_args(argv)
  try:
    return run(args)
  except ConfigError as e:
    print(f"jaxdepth: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
