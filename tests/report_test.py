"""What a run prints: diverged runs when they appear, the final table, the paths."""

import json
import os
import warnings

import numpy as np

from jaxdepth import cli
from jaxdepth.engine import report
from jaxdepth.papers.minimal_depth import train


def test_divergence_monitor_reports_each_run_once_grouped(capsys):
  grid = [{"run": i * 2 + g, "seed": g, "label_noise": p}
          for i, p in enumerate((0.0, 0.6)) for g in range(2)]
  m = report.DivergenceMonitor(grid, where="d=4 w=8", point_fields=("label_noise",),
                               short={"label_noise": "p"})
  assert m.update([False] * 4, "epoch 10") is None
  line = m.update([False, False, True, True], "epoch 20")
  assert line == ("jaxdepth: warning: d=4 w=8: 2 of 4 runs diverged at epoch 20: "
                  "p=0.6 seeds 0, 1; non-finite parameters")
  # Already reported runs are not repeated; a new one is.
  assert m.update([False, False, True, True], "epoch 30") is None
  assert "1 of 4 runs diverged at epoch 40: p=0 seed 1;" in m.update(
      [False, True, True, True], "epoch 40")
  assert capsys.readouterr().err.count("diverged at") == 2


def test_spread_and_table():
  assert report.spread([1.0, 2.0, 4.0]) == f"{7 / 3:.3f} ± {np.std([1, 2, 4], ddof=1):.3f}"
  assert report.spread([0.5]) == "0.500"
  assert report.spread([]) == "-"
  assert report.spread([float("nan"), None, 1.0]) == "1.000"
  t = report.table(["a", "bb"], [["1", "x"], ["22", "yyy"]]).splitlines()
  assert t == ["a   bb", "--  ---", "1   x", "22  yyy"]


def _runs():
  mk = lambda p, s, acc, ed, reached, div=False: {
      "depth": 4, "width": 8, "label_noise": p, "seed": s, "test_acc": acc,
      "train_acc": 1.0,
      "ncc_test_acc": [0.1, acc], "effective_depth": {"0.1": ed},
      "reached": {"0.1": reached}, "diverged": div}
  return [mk(0.0, 0, 0.9, 2, True), mk(0.0, 1, 0.7, 4, True),
          mk(0.4, 0, 0.5, 3, True), mk(0.4, 1, 0.3, 5, False),  # 5 = L+1: never reached
          mk(0.4, 2, float("nan"), 5, False, div=True)]


def test_collapse_report_never_averages_the_placeholder():
  text = train.report({"eps": [0.1], "runs": _runs()}).splitlines()
  assert text[0].split()[:2] == ["p", "runs"]
  row0, row1 = text[2], text[3]
  assert row0.split()[:2] == ["0", "2"]
  assert f"{0.8:.3f} ± {np.std([0.9, 0.7], ddof=1):.3f}" in row0
  assert f"{3.0:.2f} ± {np.std([2, 4], ddof=1):.2f}" in row0  # both reached
  assert "3 (1 diverged)" in row1
  assert "3.00 (1/2)" in row1  # one of the two finite runs reached, at depth 3
  assert f"{0.4:.3f} ± {np.std([0.5, 0.3], ddof=1):.3f}" in row1  # diverged run left out


def test_diverged_run_is_reported_and_plots_stay_quiet(tmp_path, capfd):
  wd = str(tmp_path / "div")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd,
                     "--config.lr=1e6", "--config.batchnorm=False",
                     "--config.epochs=2"]) == 0
  out, err = capfd.readouterr()
  assert "jaxdepth: warning: d=3 w=16: 4 of 4 runs diverged at epoch 2: p=0 seeds 0, 1; " \
         "p=0.25 seeds 0, 1; non-finite parameters" in err
  assert "4 of 4 runs diverged (flagged 'diverged' in summary.json" in out
  assert not [w for w in caught if "artists" in str(w.message)], [str(w.message)
                                                                 for w in caught]
  s = json.load(open(os.path.join(wd, "summary.json")))
  assert all(r["diverged"] for r in s["runs"])
  assert os.path.exists(os.path.join(wd, "figures", "layers_d3_w16.png"))


def test_final_report_table_and_paths(tmp_path, capfd):
  wd = str(tmp_path / "ok")
  assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd,
                   "--config.epochs=2"]) == 0
  out, err = capfd.readouterr()  # the table on stdout; logs and paths on stderr
  s = json.load(open(os.path.join(wd, "summary.json")))
  assert train.report(s) in out and train.report(s) not in err
  assert "train acc" in out and "test acc" in out
  assert f"wrote {os.path.join(wd, 'summary.json')}, {os.path.join(wd, 'layers.csv')}" in err
  assert os.path.join(wd, "figures", "layers_d3_w16.png") in err and "wrote" not in out
  for key in ("test_acc", "train_acc"):
    acc = [r[key] for r in s["runs"] if r["label_noise"] == 0.0]
    assert f"{np.mean(acc):.3f} ± {np.std(acc, ddof=1):.3f}" in out


def test_generic_report_for_other_experiments():
  runs = [{"depth": d, "init_scale": 1e-3, "seed": s, "rel_error": 0.1 * (d + s),
           "t50": [1, 2], "diverged": False} for d in (2, 3) for s in (0, 1)]
  from jaxdepth import papers
  text = report.summary_report({"runs": runs}, coordinates=papers.COORDINATES,
                               short=papers.SHORT_NAMES,
                               skip=papers.SKIP_FIELDS).splitlines()
  assert text[0].split() == ["depth", "sigma0", "runs", "rel_error"]
  assert f"{0.25:.3f} ± {np.std([0.2, 0.3], ddof=1):.3f}" in text[2]
  assert report.summary_report({"checks": {"monotone": True}}).splitlines()[2].split() == \
      ["monotone", "True"]


def test_effective_depth_band_never_averages_the_placeholder():
  from jaxdepth.engine import plotting
  from jaxdepth.papers.minimal_depth import figures

  def run(d, reached):
    return {"depth": 8, "effective_depth": {"0.1": d}, "reached": {"0.1": reached}}

  groups = [[run(4, True), run(6, True), run(5, True)],
            [run(7, True), run(9, False), run(5, True)],   # 9 = L + 1: never reached
            [run(9, False), run(9, False), run(9, False)]]
  fig, (ax,) = plotting.subplots(1)
  line = figures.depth_band(ax, [2, 4, 8], groups, "0.1")
  y = np.asarray(line.get_ydata(), float)
  np.testing.assert_allclose(y[:2], [5.0, 6.0])        # (4+6+5)/3 and (7+5)/2, not 7
  assert np.isnan(y[2])                                  # none reached: not drawn
  assert [t.get_text() for t in ax.texts] == ["2/3"]
  band = ax.collections[0].get_paths()[0].vertices[:, 1]
  assert np.isclose(np.nanmax(band), 6.0 + np.std([7, 5], ddof=1))
  assert figures.depth_band(ax, [1], [[run(9, False)]], "0.1") is None
