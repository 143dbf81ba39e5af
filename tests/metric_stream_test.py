"""The metric stream a researcher watches while a sweep runs (issue 23 item 3):
per-run records in metrics.jsonl as each epoch's output arrives, TensorBoard event
files (tensorboardX, no TensorFlow), no duplicate after a resume or re-run,
``jaxdepth.load_metrics`` as a tidy DataFrame, and config.json's provenance."""

import json
import os
import shutil
import subprocess

import jax
import numpy as np
import pytest

import jaxdepth
from jaxdepth import cli
from jaxdepth.engine import metrics, writers

COORDS = ["kind", "depth", "width", "seed", "label_noise"]
RUNS = {(0, 0.0), (1, 0.0), (0, 0.25), (1, 0.25)}  # configs/tiny.py: 2 seeds x 2 noise
SPE = 256 // 32  # steps per epoch


def _records(wd):
  return writers.read_jsonl(os.path.join(wd, "metrics.jsonl"))


def _tb(wd):
  """{run directory name: [scalar events]} of workdir/tb."""
  tb = os.path.join(wd, "tb")
  return {d: writers.read_tensorboard(os.path.join(tb, d)) for d in sorted(os.listdir(tb))}


def _run_name(r):
  return f"depth={r['depth']},width={r['width']},seed={r['seed']},label_noise={r['label_noise']}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """configs/tiny.py for 4 epochs through the CLI, watching metrics.jsonl grow."""
  wd = str(tmp_path_factory.mktemp("stream") / "w")
  seen = []  # (kind, step, lines in metrics.jsonl) after each write
  orig = metrics.RunStreams.write

  def spy(self, kind, step, values, **time):
    orig(self, kind, step, values, **time)
    seen.append((kind, step, len(_records(wd))))

  mp = pytest.MonkeyPatch()
  mp.setattr(metrics.RunStreams, "write", spy)
  try:
    # No --cpu_devices in-process: it would fix the device count of the whole pytest
    # worker when jax has not started yet (the session runs on 4 simulated devices).
    assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd]) == 0
  finally:
    mp.undo()
  return wd, seen


def test_records_per_epoch_and_evaluation_labelled(finished):
  wd, seen = finished
  recs = _records(wd)
  train = [r for r in recs if r["kind"] == "train"]
  evals = [r for r in recs if r["kind"] == "eval"]
  # Every epoch's training loss and accuracy for every run, with the run's coordinates.
  assert sorted((r["epoch"], r["seed"], r["label_noise"]) for r in train) == sorted(
      (e, s, p) for e in (1, 2, 3, 4) for s, p in RUNS)
  for r in train:
    assert list(r)[:7] == ["kind", "step", "epoch", "depth", "width", "seed", "label_noise"]
    assert (r["depth"], r["width"], r["step"]) == (3, 16, r["epoch"] * SPE)
    assert 0 < r["batch_loss"] < 5 and 0 <= r["batch_acc"] <= 1
  # The loss falls on the clean runs.
  for s in (0, 1):
    loss = [r["batch_loss"] for r in train if (r["seed"], r["label_noise"]) == (s, 0.0)]
    assert loss[-1] < loss[0]
  # Evaluations (eval_every=2): one record per run, per-layer lists of length depth.
  assert sorted((r["step"], r["seed"], r["label_noise"]) for r in evals) == sorted(
      (st, s, p) for st in (16, 32) for s, p in RUNS)
  for r in evals:
    assert len(r["ncc_train_acc"]) == len(r["cdnv_test"]) == len(r["rank_train"]) == 3
    assert isinstance(r["test_acc"], float) and isinstance(r["diverged"], bool)
    assert {"effective_depth@0.01", "effective_depth_suffix@0.1"} <= set(r)
  # The file grew as each epoch's output arrived (one segment late), not at the end.
  assert [(k, s) for k, s, _ in seen] == [("train", 8), ("eval", 16), ("train", 16),
                                          ("train", 24), ("eval", 32), ("train", 32)]
  assert [n for *_, n in seen] == [4, 8, 12, 16, 20, 24] == [4 * (i + 1) for i in
                                                             range(len(seen))]
  # Final evaluation record == summary.json
  summary = json.load(open(os.path.join(wd, "summary.json")))
  for run in summary["runs"]:
    rec = next(r for r in evals if r["step"] == 32 and r["seed"] == run["seed"]
               and r["label_noise"] == run["label_noise"])
    assert rec["test_acc"] == run["test_acc"]
    assert rec["ncc_train_acc"] == run["ncc_train_acc"]
    assert rec["effective_depth@0.01"] == run["effective_depth"]["0.01"]


def test_tensorboard_scalars_per_run(finished):
  wd, _ = finished
  tb = _tb(wd)
  recs = _records(wd)
  assert set(tb) == {_run_name(r) for r in recs}
  for name, events in tb.items():
    mine = [r for r in recs if _run_name(r) == name]
    for kind, metric, tag in (("train", "batch_loss", "train/batch_loss"),
                              ("train", "batch_acc", "train/batch_acc"),
                              ("eval", "test_acc", "eval/test_acc")):
      got = [(e["step"], e["value"]) for e in events if e["tag"] == tag]
      want = [(r["step"], r[metric]) for r in mine if r["kind"] == kind]
      assert [s for s, _ in got] == [s for s, _ in want]
      np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)
    layer3 = [e["value"] for e in events if e["tag"] == "eval/ncc_test_acc/layer_03"]
    np.testing.assert_allclose(layer3, [r["ncc_test_acc"][2] for r in mine
                                        if r["kind"] == "eval"], rtol=1e-6)


def test_tensorboard_files_read_by_tensorboard(finished):
  """An independent reader, where tensorboard is installed (it is not a dependency)."""
  ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  wd, _ = finished
  run = os.path.join(wd, "tb", sorted(os.listdir(os.path.join(wd, "tb")))[0])
  acc = ea.EventAccumulator(run)
  acc.Reload()
  assert [e.step for e in acc.Scalars("train/batch_loss")] == [8, 16, 24, 32]


def test_load_metrics_is_tidy_and_equals_the_json(finished):
  wd, _ = finished
  df = jaxdepth.load_metrics(wd)
  assert list(df.columns) == [*COORDS, "step", "epoch", "metric", "layer", "value"]
  recs = _records(wd)
  n_rows = sum(len(v) if isinstance(v, list) else 1 for r in recs for k, v in r.items()
               if k not in COORDS + ["step", "epoch"])
  assert len(df) == n_rows
  assert not df.duplicated(COORDS + ["step", "metric", "layer"]).any()
  for r in recs:
    sel = df[(df.kind == r["kind"]) & (df.step == r["step"]) & (df.seed == r["seed"])
             & (df.label_noise == r["label_noise"])]
    for k, v in r.items():
      if k in COORDS or k in ("step", "epoch"):
        continue
      rows = sel[sel.metric == k].sort_values("layer")
      assert (rows.epoch == r["epoch"]).all()
      if isinstance(v, list):
        assert rows.layer.tolist() == list(range(1, len(v) + 1))
        want = [np.nan if x is None else float(x) for x in v]
      else:
        assert rows.layer.isna().all() and len(rows) == 1
        want = [float(v)]
      np.testing.assert_array_equal(rows.value.to_numpy(), want)
  # The README's example.
  top = df[(df.metric == "ncc_test_acc") & (df.layer == 3)]
  assert len(top.groupby(["label_noise", "step"]).value.mean()) == 4


def test_provenance(finished):
  wd, _ = finished
  prov = json.load(open(os.path.join(wd, "config.json")))["_provenance"]
  assert prov["jaxdepth"] == jaxdepth.__version__
  root = os.path.dirname(os.path.dirname(os.path.abspath(jaxdepth.__file__)))
  try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    head = None
  assert prov["git_commit"] == head
  assert set(prov["packages"]) == {"jax", "jaxlib", "flax", "optax", "orbax-checkpoint"}
  assert all(isinstance(v, str) for v in prov["packages"].values())
  assert prov["backend"] == "cpu" and prov["device_kind"]
  assert prov["device_count"] == jax.device_count() and prov["process_count"] == 1
  assert prov["xla_flags"] == os.environ.get("XLA_FLAGS")
  assert "cpu" in prov and "python" in prov


def test_resume_and_rerun_add_no_duplicate(finished, tmp_path):
  src, _ = finished
  wd = str(tmp_path / "w")
  shutil.copytree(src, wd)
  full = open(os.path.join(wd, "metrics.jsonl")).read()
  tb_full = _tb(wd)
  # A kill after epoch 2: the last checkpoint and the records after step 16 are lost
  # (the TensorBoard files keep theirs), and the resume runs under other versions.
  shutil.rmtree(os.path.join(wd, "checkpoints", "d3_w16", "32"))
  keep = [line for line in full.splitlines(True) if json.loads(line)["step"] <= 16]
  open(os.path.join(wd, "metrics.jsonl"), "w").write("".join(keep))
  cfg_path = os.path.join(wd, "config.json")
  cfg = json.load(open(cfg_path))
  cfg["_provenance"] = {**cfg["_provenance"], "git_commit": "0" * 40,
                        "packages": {"jax": "0.0.1"}, "backend": "tpu"}
  json.dump(cfg, open(cfg_path, "w"))
  args = ["train", "--config", "configs/tiny.py", "--workdir", wd]
  assert cli.main(args) == 0  # resumes: provenance is not a config field
  assert json.load(open(cfg_path)) == cfg  # the first record is kept
  # The lost records come back once, bitwise equal; TensorBoard gets nothing twice.
  assert open(os.path.join(wd, "metrics.jsonl")).read() == full
  assert _tb(wd) == tb_full
  # A re-run of the finished run adds nothing (and no new event file).
  files = sorted(os.path.relpath(os.path.join(d, f), wd)
                 for d, _, fs in os.walk(os.path.join(wd, "tb")) for f in fs)
  assert cli.main(args) == 0
  assert open(os.path.join(wd, "metrics.jsonl")).read() == full
  assert sorted(os.path.relpath(os.path.join(d, f), wd)
                for d, _, fs in os.walk(os.path.join(wd, "tb")) for f in fs) == files
  assert _tb(wd) == tb_full


def test_tensorboard_writer_skips_logged_steps_and_reads_cut_files(tmp_path):
  d = str(tmp_path / "run")
  w = writers.TensorBoardWriter(d)
  w.write(1, {"a": 1.0, "b": 10.0})
  w.write(2, {"a": 2.0})
  w.close()
  w = writers.TensorBoardWriter(d)  # resumed: a at step 2, b at step 1 already logged
  assert w.last == {"a": 2, "b": 1}
  w.write(2, {"a": 99.0, "b": 20.0})
  w.write(3, {"a": 3.0})
  w.write(1, {"a": 99.0, "b": 99.0})  # nothing: an event with no value is not written
  w.close()
  got = sorted((e["tag"], e["step"], e["value"]) for e in writers.read_tensorboard(d))
  assert got == [("a", 1, 1.0), ("a", 2, 2.0), ("a", 3, 3.0), ("b", 1, 10.0),
                 ("b", 2, 20.0)]
  assert len(os.listdir(d)) == 2  # one event file per writer that wrote
  # A write cut short by a kill: the complete events before it are read.
  last = os.path.join(d, sorted(os.listdir(d))[-1])
  data = open(last, "rb").read()
  open(last, "wb").write(data[:-7])
  got = sorted((e["tag"], e["step"]) for e in writers.read_tensorboard(d))
  assert got == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
  assert writers.TensorBoardWriter(d).last == {"a": 2, "b": 2}
