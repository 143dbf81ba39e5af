"""Incremental sweeps resume from their checkpoints: a finished depth is restored, a
lost one trained again."""

import json
import os
import shutil

import numpy as np
import pytest

from jaxdepth.configs.incremental import circular_conv as cc_config
from jaxdepth.configs.incremental import quadratic as q_config
from jaxdepth.engine import loop, writers
from jaxdepth.papers.incremental import circular_conv as cc
from jaxdepth.papers.incremental import quadratic as quad
from jaxdepth.papers.incremental import runner


def _counting_train(monkeypatch):
  """The depths (their progress descriptions) that run at least one segment: a
  restored finished depth goes through the driver too, but runs none."""
  calls, current = [], []
  real_train, real_loop = runner.train, loop.run

  def train(*args, **kwargs):
    current[:] = [kwargs.get("desc")]
    return real_train(*args, **kwargs)

  def run(state, segment, *, start, total, **kwargs):
    if start < total:
      calls.append(current[0])
    return real_loop(state, segment, start=start, total=total, **kwargs)

  monkeypatch.setattr(runner, "train", train)
  monkeypatch.setattr(loop, "run", run)
  return calls


def _runs(summary):
  return writers.to_jsonable([{k: v for k, v in r.items() if k != "wall_s_per_depth"}
                              for r in summary["runs"]])


@pytest.mark.parametrize("module,config,lost", [
    (quad, q_config.get_config("tiny"), "checkpoints/bias_mean_y_depth_2"),
    (cc, cc_config.get_config("tiny"), "checkpoints/depth_2"),  # depth 1: 0-size filters
])
def test_resume_retrains_only_the_missing_depth(module, config, lost, tmp_path, monkeypatch):
  wd = str(tmp_path / "run")
  first = module.run(config, wd)
  shutil.rmtree(os.path.join(wd, lost))  # as if the run was cut off before this depth
  with open(os.path.join(wd, "metrics.jsonl")) as f:
    n_lines = len(f.readlines())
  calls = _counting_train(monkeypatch)
  again = module.run(config, wd)
  assert len(calls) == 1, calls  # only the lost (variant, depth) trained again
  assert json.dumps(_runs(again), sort_keys=True) == json.dumps(_runs(first), sort_keys=True)
  with open(os.path.join(wd, "metrics.jsonl")) as f:
    assert len(f.readlines()) == n_lines  # rewritten, not appended twice


def test_checkpoint_of_another_config_is_not_restored(tmp_path, monkeypatch):
  c = q_config.get_config("tiny")
  c.bias_modes = ("none",)
  wd = str(tmp_path / "run")
  first = quad.run(c, wd)
  c.lr = c.lr / 2
  calls = _counting_train(monkeypatch)
  second = quad.run(c, wd)
  assert len(calls) == 1  # trained again under the new learning rate
  assert not np.allclose(first["runs"][0]["final_loss"], second["runs"][0]["final_loss"])
