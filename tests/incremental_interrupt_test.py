"""An incremental sweep stopped mid-depth (Ctrl-C: engine/interrupt) resumes at the
segment its checkpoint holds, through engine/driver: the same summary and metrics.jsonl
as an uninterrupted run, and a re-run of the finished sweep changes no file."""

import json
import os

import pytest

from jaxdepth import cli
from jaxdepth.engine import ckpt, interrupt

CONFIG = "configs/incremental/toy.py:tiny"  # depth 2: 1 of 4 segments, depth 4: all 4


def _train(wd):
  return cli.main(["train", "--config", CONFIG, "--workdir", wd])


def _strip(summary):
  """Timings differ between runs; everything else must not."""
  if isinstance(summary, dict):
    return {k: _strip(v) for k, v in summary.items() if k not in ("wall_s_per_depth",)}
  if isinstance(summary, list):
    return [_strip(v) for v in summary]
  return summary


def _files(wd):
  return {f: open(os.path.join(wd, f), "rb").read()
          for f in ("metrics.jsonl", "summary.json")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("whole") / "w")
  assert _train(wd) == 0
  return _files(wd)


# interrupt.requested() is asked after each segment that does not end a depth: the
# 1st time after depth 2's segment 0 (whose runs all froze: the loop learns it only
# from that segment's output, one late), the 3rd after depth 4's segment 1.
@pytest.mark.parametrize("ask,sub,segments", [(1, "depth_2", 1), (3, "depth_4", 2)])
def test_interrupted_sweep_resumes_mid_depth(tmp_path, monkeypatch, capsys, uninterrupted,
                                             ask, sub, segments):
  wd = str(tmp_path / "w")
  asked = []
  monkeypatch.setattr(interrupt, "requested", lambda: asked.append(1) or len(asked) >= ask)
  assert _train(wd) == 130
  monkeypatch.undo()
  err = capsys.readouterr().err
  assert f"interrupted at segment {segments} of 4; checkpoint written" in err
  step, meta = ckpt.newest_meta(os.path.join(wd, "checkpoints", sub))
  assert meta["segment"] == segments and "finished" not in meta
  assert not os.path.exists(os.path.join(wd, "summary.json"))

  assert _train(wd) == 0
  err = capsys.readouterr().err
  assert f"resuming from segment {segments} of 4 (checkpoints/{sub})" in err
  resumed = _files(wd)
  assert resumed["metrics.jsonl"] == uninterrupted["metrics.jsonl"]
  assert _strip(json.loads(resumed["summary.json"])) == _strip(
      json.loads(uninterrupted["summary.json"]))

  assert _train(wd) == 0  # finished: restored (no segment runs), nothing rewritten
  assert "resuming" not in capsys.readouterr().err
  again = _files(wd)
  assert again["metrics.jsonl"] == resumed["metrics.jsonl"]
  assert _strip(json.loads(again["summary.json"])) == _strip(
      json.loads(resumed["summary.json"]))


def test_stopped_early_depth_is_finished(tmp_path, monkeypatch):
  """A depth whose runs all froze before its last segment is marked finished: a re-run
  runs no segment of it (nor of any depth)."""
  from jaxdepth.engine import loop
  wd = str(tmp_path / "w")
  assert _train(wd) == 0
  _, meta = ckpt.newest_meta(os.path.join(wd, "checkpoints", "depth_2"))
  assert meta["segment"] == 1 and meta["finished"] is True
  ran, real = [], loop.run
  monkeypatch.setattr(loop, "run", lambda *a, start, total, **k: ran.append(
      (start, total)) or real(*a, start=start, total=total, **k))
  assert _train(wd) == 0
  assert ran == [(1, 1), (4, 4)]
