"""Re-running a finished experiment in the same workdir changes nothing: no metrics line
is written twice and the summary is the same (one experiment per paper, and every
low-rank and incremental experiment, whose metrics once appended on each re-run)."""

import json
import os

import pytest

from jaxdepth import cli

CASES = [
    ("configs/tiny.py", ["--config.epochs=2"]),                      # minimal depth
    ("configs/incremental/toy.py:tiny", []),                          # incremental
    ("configs/incremental/diagonal.py:tiny", []),
    ("configs/incremental/matrix_sensing.py:tiny", []),
    ("configs/incremental/omp.py:tiny", []),
    ("configs/incremental/quadratic.py:tiny", []),
    ("configs/incremental/circular_conv.py:tiny", []),
    ("configs/lowrank/volume.py:tiny", []),                           # low rank
    ("configs/lowrank/init_rank.py:tiny", []),
    ("configs/lowrank/regression.py:tiny", []),
    ("configs/lowrank/optimizers.py:tiny", []),
    # the collapse trainer under lowrank.overparam (one model: about a minute CPU)
    ("configs/lowrank/overparam.py:tiny", ['--config.models=("mlp",)']),
]
PARAMS = [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if "overparam" in c[0] else [])
          for c in CASES]


def _strip(summary):
  """Timings differ between runs; everything else must not."""
  if isinstance(summary, dict):
    return {k: _strip(v) for k, v in summary.items()
            if k not in ("wall_time_s", "wall_s", "wall_s_per_depth")}
  if isinstance(summary, list):
    return [_strip(v) for v in summary]
  return summary


@pytest.mark.parametrize("config,extra", PARAMS)
def test_rerun_leaves_metrics_and_summary_unchanged(tmp_path, config, extra):
  wd = str(tmp_path / "w")
  args = ["train", "--config", config, "--workdir", wd, *extra]  # the session's devices
  assert cli.main(args) == 0
  metrics = open(os.path.join(wd, "metrics.jsonl")).read()
  summary = json.load(open(os.path.join(wd, "summary.json")))
  assert metrics.strip(), "the experiment wrote no metrics"
  assert cli.main(args) == 0
  lines = open(os.path.join(wd, "metrics.jsonl")).read().splitlines()
  assert len(lines) == len(set(lines)) == len(metrics.splitlines())
  assert "\n".join(lines) + "\n" == metrics
  assert _strip(json.load(open(os.path.join(wd, "summary.json")))) == _strip(summary)


def test_workdir_layouts(tmp_path, capsys):
  """config.json carries the layout version; an unversioned (older) workdir is read,
  a newer one is refused with one line and left byte for byte as it was."""
  from jaxdepth.engine import writers
  wd = str(tmp_path / "w")
  args = ["train", "--config", "configs/lowrank/volume.py:tiny", "--workdir", wd]
  assert cli.main(args) == 0
  cfg_path = os.path.join(wd, "config.json")
  cfg = json.load(open(cfg_path))
  assert cfg["_schema"] == writers.SCHEMA
  del cfg["_schema"]                       # as written before versioning: layout 1
  json.dump(cfg, open(cfg_path, "w"))
  assert cli.main(args) == 0
  json.dump({**cfg, "_schema": writers.SCHEMA + 1}, open(cfg_path, "w"))
  before = {f: open(os.path.join(wd, f), "rb").read() for f in sorted(os.listdir(wd))
            if os.path.isfile(os.path.join(wd, f))}
  capsys.readouterr()
  assert cli.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("jaxdepth: error: config.workdir: ") and "newer jaxdepth" in err[-1]
  assert "upgrade jaxdepth or use a new --workdir" in err[-1]
  after = {f: open(os.path.join(wd, f), "rb").read() for f in sorted(os.listdir(wd))
           if os.path.isfile(os.path.join(wd, f))}
  assert after == before
