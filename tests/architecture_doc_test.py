"""docs/architecture.md's worked example is real code: extract it, run it, resume it."""

import json
import os
import re
import types

import numpy as np

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "architecture.md")


def _example_module():
  text = open(DOC).read()
  code = re.search(r"## Adding an experiment.*?```python\n(.*?)```", text, re.S).group(1)
  mod = types.ModuleType("example_experiment")
  exec(compile(code, "docs/architecture.md", "exec"), mod.__dict__)
  return mod, code


def test_worked_example_runs_resumes_and_is_about_50_lines(tmp_path, capsys):
  mod, code = _example_module()
  assert 40 <= len(code.strip().splitlines()) <= 75
  cfg = {"depth": 3, "num_seeds": 3, "lr": 0.05, "segments": 4}
  wd = str(tmp_path / "ex")
  s = mod.run(cfg, wd)
  assert [r["seed"] for r in s["runs"]] == [0, 1, 2]
  assert all(len(r["ncc_train_acc"]) == 3 for r in s["runs"])
  # The mixture is separable: the top layer of a trained linear net is too.
  assert min(r["top_ncc"] for r in s["runs"]) > 0.9
  assert "top_ncc" in capsys.readouterr().out
  losses = [json.loads(line)["loss"] for line in open(os.path.join(wd, "metrics.jsonl"))]
  assert len(losses) == 2 and np.all(np.asarray(losses[1]) < np.asarray(losses[0]))
  # A second call restores the last checkpoint (segment 4) through engine/driver, trains
  # nothing, and leaves metrics and summary as they were (no line written twice).
  metrics_before = open(os.path.join(wd, "metrics.jsonl")).read()
  summary_before = open(os.path.join(wd, "summary.json")).read()
  again = mod.run(cfg, wd)
  assert again["runs"] == s["runs"]
  assert open(os.path.join(wd, "metrics.jsonl")).read() == metrics_before
  assert open(os.path.join(wd, "summary.json")).read() == summary_before
  assert os.listdir(os.path.join(wd, "checkpoints", "linear")) == ["4"]
