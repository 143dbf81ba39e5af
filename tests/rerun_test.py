"""Re-running a finished experiment in the same workdir changes nothing: no metrics line
is written twice and the summary is the same (one experiment per paper, and every
low-rank experiment, whose metrics once appended on each re-run)."""

import json
import os

import pytest

from jaxdepth import cli

CASES = [
    ("configs/tiny.py", ["--config.epochs=2"]),                      # minimal depth
    ("configs/incremental/toy.py:tiny", []),                          # incremental
    ("configs/lowrank/volume.py:tiny", []),                           # low rank
    ("configs/lowrank/init_rank.py:tiny", []),
    ("configs/lowrank/regression.py:tiny", []),
    ("configs/lowrank/optimizers.py:tiny", []),
]


def _strip(summary):
  """Timings differ between runs; everything else must not."""
  if isinstance(summary, dict):
    return {k: _strip(v) for k, v in summary.items()
            if k not in ("wall_time_s", "wall_s", "wall_s_per_depth")}
  if isinstance(summary, list):
    return [_strip(v) for v in summary]
  return summary


@pytest.mark.parametrize("config,extra", CASES, ids=[c[0] for c in CASES])
def test_rerun_leaves_metrics_and_summary_unchanged(tmp_path, config, extra):
  wd = str(tmp_path / "w")
  args = ["train", "--config", config, "--workdir", wd, "--cpu_devices", "1", *extra]
  assert cli.main(args) == 0
  metrics = open(os.path.join(wd, "metrics.jsonl")).read()
  summary = json.load(open(os.path.join(wd, "summary.json")))
  assert metrics.strip(), "the experiment wrote no metrics"
  assert cli.main(args) == 0
  lines = open(os.path.join(wd, "metrics.jsonl")).read().splitlines()
  assert len(lines) == len(set(lines)) == len(metrics.splitlines())
  assert "\n".join(lines) + "\n" == metrics
  assert _strip(json.load(open(os.path.join(wd, "summary.json")))) == _strip(summary)
