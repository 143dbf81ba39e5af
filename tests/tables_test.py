"""Numbers that reproduce (issue 23 item 6): ``jaxdepth table`` regenerates the results
tables of README.md and docs/*.md from a run, in their exact format.

The tiny quickstart is trained in-process and its table is checked against means and
standard deviations recomputed here with numpy from summary.json's per-run values; the
README's main table is regenerated from the stored summary of the run that produced it
(tests/data/quickstart_readme_summary.json) and must match cell for cell; its shape
(columns, p grid) must be what the quickstart config produces.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest

from jaxdepth import cli
from jaxdepth.tools import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs", "minimal_depth.md")
FIXTURE = os.path.join(ROOT, "tests", "data", "quickstart_readme_summary.json")


def _quickstart_header(eps):
  return (["p", "train acc", "test acc", "NCC test acc (top layer)"]
          + [("eff. depth " if i == 0 else "") + f"ε={e:g}" for i, e in enumerate(eps)])


def _expected_rows(summary):
  """The quickstart table's rows, recomputed here from the per-run values."""
  eps = [str(e) for e in summary["eps"]]
  by_p = {}
  for r in summary["runs"]:
    by_p.setdefault(r["label_noise"], []).append(r)
  rows = []
  for p, recs in by_p.items():
    good = [r for r in recs if not r["diverged"]]

    def ms(values, digits=3):
      v = np.asarray(values, np.float64)
      return f"{v.mean():.{digits}f} ± {np.std(v, ddof=1):.{digits}f}"

    row = [f"{p:g}", ms([r["train_acc"] for r in good]), ms([r["test_acc"] for r in good]),
           ms([r["ncc_test_acc"][-1] for r in good])]
    for e in eps:
      reached = [r["effective_depth"][e] for r in good if r["reached"][e]]
      if not reached:
        row.append(f"never (0/{len(good)})")
      elif len(reached) == len(good):
        row.append(ms(reached, 2))
      else:
        row.append(f"{ms(reached, 2)} ({len(reached)}/{len(good)})")
    rows.append(row)
  return rows


def _numbers(cell):
  return [float(x) for x in re.findall(r"\d+\.\d+", cell)]


def test_tiny_quickstart_table_is_its_summary(tmp_path, capsys):
  w = str(tmp_path / "qs_tiny")
  assert cli.main(["train", "--config", "quickstart:tiny", "--workdir", w]) == 0
  capsys.readouterr()
  with open(os.path.join(w, "summary.json")) as f:
    summary = json.load(f)
  text = tables.build("quickstart", [w])
  lines = text.splitlines()
  assert lines[0] == "| " + " | ".join(_quickstart_header(summary["eps"])) + " |"
  assert lines[1] == "|" + "|".join(["---"] * 7) + "|"
  expected = _expected_rows(summary)
  assert lines[2:] == ["| " + " | ".join(r) + " |" for r in expected]  # exact format
  # Every number within rounding of the mean and std recomputed from the runs.
  parsed = tables.parse_tables(text)[0]
  assert [r[0] for r in parsed.rows] == ["0", "0.4"]  # the tiny variant's noise levels
  for row, p in zip(parsed.rows, (0.0, 0.4)):
    recs = [r for r in summary["runs"] if r["label_noise"] == p]
    for cell, vals in zip(row[1:4], ([r["train_acc"] for r in recs],
                                     [r["test_acc"] for r in recs],
                                     [r["ncc_test_acc"][-1] for r in recs])):
      mean, std = _numbers(cell)
      assert abs(mean - np.mean(vals)) <= 5e-4 + 1e-12
      assert abs(std - np.std(vals, ddof=1)) <= 5e-4 + 1e-12

  # The command: the same table on stdout; --check against a file holding it, and one
  # with a changed cell (named in the report, exit status 1).
  assert cli.main(["table", "--table", "quickstart", "--workdir", w]) == 0
  assert capsys.readouterr().out == text + "\n"
  doc = tmp_path / "doc.md"
  doc.write_text("Some text.\n\n" + text + "\n\nMore text.\n")
  assert cli.main(["table", "--table", "quickstart", "--workdir", w,
                   "--check", str(doc)]) == 0
  assert "the table matches" in capsys.readouterr().out
  doc.write_text(text.replace(expected[1][2], "0.999 ± 0.000") + "\n")
  assert cli.main(["table", "--table", "quickstart", "--workdir", w,
                   "--check", str(doc)]) == 1
  out = capsys.readouterr().out
  assert f"row 2 (0.4), test acc: file '0.999 ± 0.000', run '{expected[1][2]}'" in out


def test_readme_main_table_is_what_quickstart_produces():
  with open(README) as f:
    found = [t for t in tables.parse_tables(f.read())
             if t.header and t.header[0] == "p" and "NCC test acc (top layer)" in t.header]
  assert len(found) == 1
  t = found[0]
  config = cli.load_config("quickstart", [])
  assert t.header == _quickstart_header(config.eps)
  assert [r[0] for r in t.rows] == [f"{p:g}" for p in config.label_noise]
  for row in t.rows:
    assert len(row) == len(t.header)
    for cell in row[1:4]:
      assert re.fullmatch(r"[01]\.\d{3} ± [01]\.\d{3}", cell), cell
    for cell in row[4:]:
      assert re.fullmatch(rf"\d+\.\d\d ± \d+\.\d\d|never \(0/{config.num_seeds}\)", cell), cell
      assert all(1 <= x <= config.depth + 1 for x in _numbers(cell)[:1]), cell


def test_readme_main_table_regenerates_from_its_run(tmp_path, capsys):
  """The stored summary of the README's run gives the README's table, cell for cell."""
  shutil.copy(FIXTURE, tmp_path / "summary.json")
  with open(FIXTURE) as f:
    summary = json.load(f)
  assert len(summary["runs"]) == 16
  text = tables.build("quickstart", [str(tmp_path)])
  assert text.splitlines()[2:] == ["| " + " | ".join(r) + " |"
                                   for r in _expected_rows(summary)]
  same, msg = tables.check(text, README)
  assert same, msg
  assert tables.main(["--table", "quickstart", "--workdir", str(tmp_path),
                      "--check", README]) == 0
  capsys.readouterr()


def _collapse_summary(key, values, seeds=3, depth=4):
  runs = []
  for v in values:
    for s in range(seeds):
      runs.append({"seed": s, "label_noise": 0.0, "depth": depth, "width": 16, key: v,
                   "diverged": False, "train_acc": 0.9 + 0.02 * s, "test_acc": 0.5 + 0.02 * s,
                   "ncc_train_acc": [0.5] * (depth - 1) + [0.99 - 0.001 * s],
                   "ncc_test_acc": [0.4] * (depth - 1) + [0.45 + 0.01 * s],
                   "cdnv_train": [1.0] * (depth - 1) + [0.1 * (s + 1)],
                   "cdnv_test": [2.0] * depth,
                   "effective_depth": {"0.01": depth + 1, "0.05": 3, "0.1": 2 + (s == 0)},
                   "reached": {"0.01": False, "0.05": s > 0, "0.1": True}})
  return {"experiment": "collapse", "eps": [0.01, 0.05, 0.1], "runs": runs}


def test_docs_tables_format_and_refusals(tmp_path):
  """depth_sweep: the docs' columns and 'never (0/n)' / partial counts; a diverged run
  enters no mean; a grid that varies in a second axis is refused with one line."""
  s = _collapse_summary("depth", [2, 4])
  s["runs"][0]["diverged"] = True
  s["runs"][0]["test_acc"] = float("nan")
  (tmp_path / "summary.json").write_text(json.dumps(s))
  t = tables.parse_tables(tables.build("depth_sweep", [str(tmp_path)]))[0]
  with open(DOCS) as f:
    docs = tables.parse_tables(f.read())
  assert any(d.header == t.header for d in docs)  # docs/minimal_depth.md §1's columns
  assert t.rows[0][:3] == ["2", "0.930 ± 0.014", "0.530 ± 0.014"]  # seeds 1, 2 only
  assert t.rows[0][-3:] == ["never (0/2)", "3.00 ± 0.00", "2.00 ± 0.00"]
  assert t.rows[1][-3:] == ["never (0/3)", "3.00 ± 0.00 (2/3)", "2.33 ± 0.58"]
  s["runs"][1]["width"] = 32
  (tmp_path / "summary.json").write_text(json.dumps(s))
  with pytest.raises(tables.TableError, match="also vary in width"):
    tables.build("depth_sweep", [str(tmp_path)])
  with pytest.raises(tables.TableError, match="bound.json not found"):
    tables.build("bound", [str(tmp_path)])
  with pytest.raises(tables.TableError, match="unknown table 'nope'"):
    tables.build("nope", [str(tmp_path)])


@pytest.mark.parametrize("name", ["depth_sweep", "noise_flip", "noise_uniform", "width_sweep",
                                  "fashion_mnist"])
def test_every_collapse_table_has_a_table_in_the_docs(name, tmp_path):
  key = {"depth_sweep": "depth", "fashion_mnist": "depth", "width_sweep": "width"}.get(
      name, "label_noise")
  s = _collapse_summary(key, [0.0, 0.1] if key == "label_noise" else [16, 32], depth=10)
  (tmp_path / "summary.json").write_text(json.dumps(s))
  t = tables.parse_tables(tables.build(name, [str(tmp_path)]))[0]
  with open(DOCS) as f:
    headers = [d.header for d in tables.parse_tables(f.read())]
  assert t.header in headers


def _bound_rows_from_docs(md_table, num_layers):
  """bound.json rows rebuilt from a docs bound table (its cells are its rounding)."""
  rows = []
  for c in md_table.rows:
    cell = dict(zip(md_table.header, c))
    k, n = map(int, cell["I=1 draws"].split("/"))
    lo, hi = map(float, cell["95% CI"].strip("[]").split(","))
    control = cell["bound >= err"] == "control"
    rows.append({"architecture": f"conv-{num_layers}-16",
                 "mean_test_error": float(cell["test err"]),
                 "test_error_std": float(cell["(std)"]), "p": float(cell["p"]),
                 "alpha": float(cell["alpha"]), "eps": float(cell["eps"]), "control": control,
                 "mean_clean_depth": float(cell["mean D_k"]),
                 "mean_min_depth": float(cell["mean dmin"]),
                 "first_term": float(cell["first term"]), "first_term_count": k,
                 "num_draws": n, "first_term_lo": lo, "first_term_hi": hi,
                 "bound": None if control else float(cell["bound"]),
                 "bound_hi": None if control else float(cell["bound (CI top)"]),
                 "holds": None if control else cell["bound >= err"] == "yes",
                 "min_depth_unreached": 0})
  return rows


def test_bound_tables_docs_and_readme_agree(tmp_path):
  """The docs' two bound tables (L = 8, 16), written as bound.json rows, regenerate
  themselves and, together, the README's bound table."""
  with open(DOCS) as f:
    docs = [t for t in tables.parse_tables(f.read())
            if t.header == list(tables.BOUND_DOC_HEADERS)]
  assert len(docs) == 2
  dirs = []
  for t, L in zip(docs, (8, 16)):
    d = tmp_path / f"L{L}"
    d.mkdir()
    (d / "bound.json").write_text(json.dumps({"rows": _bound_rows_from_docs(t, L)}))
    dirs.append(str(d))
    same, msg = tables.check(tables.build("bound", [str(d)]), DOCS)
    assert same, msg
  text = tables.build("bound_readme", dirs)
  same, msg = tables.check(text, README)
  assert same, msg


OVERPARAM_RUNS = [os.path.join(ROOT, "tests", "data", "overparam_readme", n)
                  for n in ("op_digits", "op_digits_none", "op_fm", "op_fm_none")]


def test_readme_overparam_table_regenerates_from_its_runs():
  """The stored summaries (and last evaluations) of the README's four
  over-parameterization runs give its table cell for cell; the penultimate-layer rank
  column is recomputed here with numpy from the evaluation records."""
  text = tables.build("overparam", OVERPARAM_RUNS)
  same, msg = tables.check(text, README)
  assert same, msg
  rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]
  # lr / d runs have d = 1, 2, 4; the unscaled runs skip d = 1 (the same networks).
  assert [r[2] for r in rows if r[0] == "digits" and r[1] == "MLP"] == ["1", "2", "4", "2", "4"]
  for r, (wd, model, d) in zip(rows, [(w, m, d) for w in OVERPARAM_RUNS
                                      for m, d in _op_keys(w)]):
    evals = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
    pen = np.array([x["rank_train"][-1] for x in evals if x["model"] == model and
                    x["expansion"] == d and not x["diverged"]], np.float64)
    want = "—" if pen.size == 0 else f"{pen.mean():.3f} ± {pen.std():.3f}"
    assert r[8] == want, (wd, model, d)


def _op_keys(wd):
  with open(os.path.join(wd, "summary.json")) as f:
    s = json.load(f)
  with open(os.path.join(wd, "config.json")) as f:
    none = json.load(f)["lr_scaling"] == "none"
  keys = [(k.split("/")[0], int(k.split("/")[1][1:])) for k in s["results"]]
  return [(m, d) for m, d in keys if not (none and d == 1)]
