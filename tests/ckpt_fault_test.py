"""Damaged and failed checkpoints (issue 14): fall back to the newest readable step,
set the unreadable one aside, fail writes cleanly; the resumed run ends as an
untouched one."""

import errno
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxdepth import cli
from jaxdepth.engine import ckpt, writers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ damage helpers
def _overwrite_array_data(step_dir):
  d = os.path.join(step_dir, "state", "d")
  for name in os.listdir(d):
    p = os.path.join(d, name)
    with open(p, "r+b") as f:
      f.seek(os.path.getsize(p) // 2)
      f.write(b"\x5a" * 64)


def _truncate_metadata(step_dir):
  p = os.path.join(step_dir, "meta", "metadata")
  text = open(p).read()
  with open(p, "w") as f:
    f.write(text[:len(text) // 2])


def _remove_commit_marker(step_dir):
  os.remove(os.path.join(step_dir, ckpt.COMMIT_MARKER))


def _remove_array_index(step_dir):
  os.remove(os.path.join(step_dir, "state", "manifest.ocdbt"))


def _remove_state_dir(step_dir):
  shutil.rmtree(os.path.join(step_dir, "state"))


DAMAGE = {  # how the step is damaged -> the reason named in the warning / new name
    "array-data": (_overwrite_array_data, "array-data"),
    "metadata": (_truncate_metadata, "metadata"),
    "commit-marker": (_remove_commit_marker, "no-commit-marker"),
    "missing-index": (_remove_array_index, "missing-files"),
    "missing-item": (_remove_state_dir, "missing-files"),
}


def _tree(k):
  rng = np.random.default_rng(k)
  return {"w": rng.standard_normal((3, 5)).astype(np.float32),
          "labels": rng.integers(0, 10, size=(7,)).astype(np.int32)}


def _saved(tmp_path, steps=(1, 2)):
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=None)
  for s in steps:
    ck.save(s, _tree(s), {"epoch": s, "note": f"step {s}"})
  ck.close()
  return os.path.join(str(tmp_path), "checkpoints")


def _files(d):
  return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


# --------------------------------------------------------------- Checkpointer level
@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_unreadable_latest_step_falls_back_and_is_set_aside(kind, tmp_path, caplog):
  d = _saved(tmp_path)
  damage, slug = DAMAGE[kind]
  damage(os.path.join(d, "2"))
  kept = _files(os.path.join(d, "2"))
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=None)
  assert ck.all_steps() == [1, 2]
  with caplog.at_level(logging.WARNING, logger="jaxdepth.ckpt"):
    step, tree, meta = ck.restore()
  assert step == 1 and meta == {"epoch": 1, "note": "step 1"}
  for k, v in _tree(1).items():
    np.testing.assert_array_equal(np.asarray(tree[k]), v)
  warn = [r.getMessage() for r in caplog.records if r.name == "jaxdepth.ckpt"]
  assert len(warn) == 1 and "\n" not in warn[0]
  assert "checkpoint step 2 " in warn[0] and slug.replace("-", " ").split()[0] in warn[0]
  assert "using step 1" in warn[0]
  aside = [n for n in os.listdir(d) if n.startswith("2.unreadable-")]
  assert len(aside) == 1 and aside[0].startswith(f"2.unreadable-{slug}-")
  assert _files(os.path.join(d, aside[0])) == kept  # nothing of it is lost
  assert ck.all_steps() == [1]  # the manager was reloaded
  assert ckpt.Checkpointer(str(tmp_path), max_to_keep=None).all_steps() == [1]
  ck.save(2, _tree(2), {"epoch": 2})  # the run goes on: step 2 again, beside the old one
  assert ck.restore()[0] == 2 and len(os.listdir(d)) == 3
  ck.close()


# Orbax's failed read leaves tensorstore reads behind, whose callbacks find its event
# loop closed (noise only, which the file list check avoids for steps that have one).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind,slug", [("array-data", "array-data"), ("metadata", "metadata"),
                                       ("missing-index", "array-data")])
def test_step_without_file_list_is_judged_by_restoring_it(kind, slug, tmp_path, caplog):
  """Steps of an older jaxdepth (no file list): any error restoring them is damage."""
  d = _saved(tmp_path)
  assert ckpt.FILE_LIST in os.listdir(os.path.join(d, "2"))
  os.remove(os.path.join(d, "2", ckpt.FILE_LIST))
  DAMAGE[kind][0](os.path.join(d, "2"))
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=None)
  with caplog.at_level(logging.WARNING, logger="jaxdepth.ckpt"):
    step, _, meta = ck.restore()
  assert step == 1 and meta["epoch"] == 1
  (warn,) = [r.getMessage() for r in caplog.records if r.name == "jaxdepth.ckpt"]
  assert "checkpoint step 2 " in warn and "\n" not in warn
  (aside,) = [n for n in os.listdir(d) if n.startswith("2.")]
  assert aside.startswith(f"2.unreadable-{slug}-")
  ck.close()


def test_no_readable_step_is_one_line_error_and_stays_one(tmp_path, caplog):
  d = _saved(tmp_path)
  _overwrite_array_data(os.path.join(d, "2"))
  _truncate_metadata(os.path.join(d, "1"))
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=None)
  with caplog.at_level(logging.WARNING, logger="jaxdepth.ckpt"):
    with pytest.raises(ckpt.CheckpointUnreadable) as e:
      ck.restore()
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith("no readable checkpoint in ")
  assert "1.unreadable-metadata-" in msg and "2.unreadable-array-data-" in msg
  assert isinstance(e.value, writers.ConfigError)  # exit 2 from the CLI
  assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 2
  # A second attempt (a re-run) does not silently start over.
  with pytest.raises(ckpt.CheckpointUnreadable):
    ckpt.Checkpointer(str(tmp_path), max_to_keep=None).restore()
  # ... unless asked to (the incremental sweeps recompute a lost depth).
  assert ckpt.Checkpointer(str(tmp_path)).restore_latest_readable(required=False) is None
  assert len(os.listdir(d)) == 2


def test_explicit_step_is_not_moved(tmp_path):
  d = _saved(tmp_path)
  _truncate_metadata(os.path.join(d, "2"))
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=None)
  with pytest.raises(ckpt.CheckpointUnreadable, match="step 2 .*metadata unreadable"):
    ck.restore(2)
  assert sorted(os.listdir(d)) == ["1", "2"]


def test_structure_mismatch_is_not_called_damage(tmp_path):
  """A target that does not fit is a caller's bug: the error propagates, nothing moves."""
  d = _saved(tmp_path)
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=None)
  with pytest.raises(Exception) as e:
    ck.restore(target={"other": np.zeros(3, np.float32)})
  assert not isinstance(e.value, ckpt.CheckpointUnreadable)
  assert sorted(os.listdir(d)) == ["1", "2"]


def _fail_meta_write(monkeypatch, code=errno.ENOSPC, when=lambda directory: True,
                     error=None):
  """The metadata write of a save fails partway (while the arrays are being written):
  an OSError with ``code``, or ``error`` (an error that carries no errno)."""
  real = ocp.JsonCheckpointHandler.async_save

  async def async_save(self, directory, item=None, args=None):
    if when(str(directory)):
      p = os.path.join(str(directory), "metadata")
      with open(p, "w") as f:
        f.write(json.dumps(args.item if args is not None else item)[:10])
      raise error if error is not None else OSError(code, os.strerror(code), p)
    return await real(self, directory, item, args)

  monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", async_save)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_failed_save_keeps_previous_step(code, tmp_path, monkeypatch):
  d = _saved(tmp_path, steps=(1,))
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=1)
  _fail_meta_write(monkeypatch, code)
  with pytest.raises(ckpt.CheckpointWriteError) as e:
    ck.save(2, _tree(2), {"epoch": 2})
  assert isinstance(e.value, OSError) and e.value.errno == code
  assert e.value.filename == os.path.join(d, "2")
  msg = str(e.value)
  assert "\n" not in msg and f"errno {code} {errno.errorcode[code]}" in msg
  assert "previous checkpoint (step 1) is kept" in msg
  assert os.listdir(d) == ["1"]  # no partial step or tmp dir left
  monkeypatch.undo()
  assert ck.restore()[0] == 1
  ck.save(2, _tree(2), {"epoch": 2})
  assert ck.all_steps() == [2]  # max_to_keep=1 applies after a good save
  ck.close()


# What tensorstore raises when the disk fills: a ValueError whose text is not parsed.
_TS_FULL = ValueError('RESOURCE_EXHAUSTED: Error writing "state.w/0.0.0" in OCDBT database: '
                      "Failed to write 1614 bytes to file 14: No space left on device")


def test_failed_save_without_errno_asks_the_directory(tmp_path, monkeypatch):
  d = _saved(tmp_path, steps=(1,))
  ck = ckpt.Checkpointer(str(tmp_path), max_to_keep=1)
  _fail_meta_write(monkeypatch, error=_TS_FULL)
  monkeypatch.setattr(ckpt, "_free_bytes", lambda directory: 1000)  # less than the step
  with pytest.raises(ckpt.CheckpointWriteError) as e:
    ck.save(2, _tree(2), {"epoch": 2})
  assert e.value.errno == errno.ENOSPC and e.value.filename == os.path.join(d, "2")
  assert "previous checkpoint (step 1) is kept" in str(e.value)
  assert os.listdir(d) == ["1"]
  # Room on the disk and a writable directory: not a write failure, raised as is.
  monkeypatch.setattr(ckpt, "_free_bytes", lambda directory: 1 << 40)
  with pytest.raises(ValueError) as e:
    ck.save(2, _tree(2), {"epoch": 2})
  assert e.value is _TS_FULL and not isinstance(e.value, OSError)
  assert os.listdir(d) == ["1"]
  # A directory that refuses the probe write gives that errno.
  monkeypatch.setattr(ckpt, "_write_probe", lambda directory: errno.EROFS)
  with pytest.raises(ckpt.CheckpointWriteError) as e:
    ck.save(2, _tree(2), {"epoch": 2})
  assert e.value.errno == errno.EROFS and os.listdir(d) == ["1"]
  monkeypatch.undo()
  assert ck.restore()[0] == 1
  ck.close()


def test_errno_from_a_real_oserror():
  assert ckpt._write_probe(os.path.join(ROOT, "no", "such", "dir")) == errno.ENOENT
  assert ckpt._write_probe(ROOT) is None and not [
      n for n in os.listdir(ROOT) if n.startswith(".jaxdepth-write-probe")]
  try:
    try:
      raise OSError(errno.EDQUOT, "Disk quota exceeded")
    except OSError as inner:
      raise ValueError("wrapped") from inner
  except ValueError as e:
    assert ckpt._errno_in(e) == errno.EDQUOT
  group = Exception("an ExceptionGroup (python >= 3.11) or alike")
  group.exceptions = (ValueError(), PermissionError(errno.EACCES, "no"))
  assert ckpt._errno_in(group) == errno.EACCES
  assert ckpt._errno_in(_TS_FULL) is None


# ------------------------------------------------------------------------ writers
class _DiskFull:
  """A file whose every write stores its first ``keep`` bytes, then fails with ENOSPC."""

  def __init__(self, f, keep: int):
    self.f, self.keep = f, keep

  def __getattr__(self, k):
    return getattr(self.f, k)

  def write(self, data):
    self.f.write(data[:self.keep])
    self.f.flush()
    raise OSError(errno.ENOSPC, "No space left on device")

  def __enter__(self):
    return self

  def __exit__(self, *a):
    self.f.close()


def test_failed_json_write_keeps_previous_file(tmp_path, monkeypatch):
  p = str(tmp_path / "summary.json")
  writers.write_json(p, {"a": 1})
  monkeypatch.setattr(writers, "open", lambda *a, **k: _DiskFull(open(*a, **k), keep=3),
                      raising=False)
  with pytest.raises(writers.WriteError) as e:
    writers.write_json(p, {"a": 2})
  assert e.value.errno == errno.ENOSPC and e.value.filename == p
  assert str(e.value).startswith(f"cannot write {p}: No space left on device (errno 28")
  monkeypatch.undo()
  assert writers.read_json(p) == {"a": 1} and os.listdir(tmp_path) == ["summary.json"]


def test_jsonl_failed_append_leaves_no_partial_record(tmp_path, monkeypatch):
  p = str(tmp_path / "metrics.jsonl")
  log = writers.JsonlWriter(p)
  log.write({"step": 1})
  with open(p, "a") as f:  # a record cut short by an earlier crash
    f.write('{"step": 2, "lo')
  assert writers.read_jsonl(p) == [{"step": 1}]  # the cut record is skipped
  log.write({"step": 2})  # and replaced, not glued to the next one
  assert writers.read_jsonl(p) == [{"step": 1}, {"step": 2}]
  before = open(p).read()
  monkeypatch.setattr(writers, "open", lambda *a, **k: _DiskFull(open(*a, **k), keep=5),
                      raising=False)
  with pytest.raises(writers.WriteError, match="metrics.jsonl: No space left"):
    log.write({"step": 3})
  monkeypatch.undo()
  assert open(p).read() == before


# ------------------------------------------------------------ end to end: tiny runs
TINY = ["--config.plots=False", "--config.num_seeds=1", "--config.label_noise=(0.0,)",
        "--config.epochs=4", "--config.checkpoint_every=2"]


def _train(workdir, *extra):
  return cli.main(["train", "--config", "configs/tiny.py", "--workdir", str(workdir),
                   *TINY, *extra])


def _runs(workdir):
  with open(os.path.join(str(workdir), "summary.json")) as f:
    return json.load(f)["runs"]


def _assert_same_runs(a, b):
  assert len(a) == len(b)
  for ra, rb in zip(a, b):
    assert ra.keys() == rb.keys()
    for k in ra:
      x, y = ra[k], rb[k]
      if isinstance(x, (dict, bool, str)) or x is None or (
          isinstance(x, list) and any(isinstance(v, str) for v in x)):
        assert x == y, k
      else:
        np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float),
                                   rtol=0, atol=1e-6, err_msg=k)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny run (checkpoints at steps 16 and 32): the untouched reference."""
  w = tmp_path_factory.mktemp("ref") / "run"
  assert _train(w) == 0
  return w


def _copy(finished, tmp_path):
  w = tmp_path / "run"
  shutil.copytree(finished, w)
  return w, os.path.join(str(w), "checkpoints", "d3_w16")


def test_cli_array_data_damage_resumes_with_one_warning_line(finished, tmp_path):
  w, d = _copy(finished, tmp_path)
  _overwrite_array_data(os.path.join(d, "32"))
  out = subprocess.run([sys.executable, "-m", "jaxdepth", "train", "--config",
                        "configs/tiny.py", "--workdir", str(w), *TINY],
                       capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 0, out.stderr
  assert "Traceback" not in out.stderr
  lines = [ln for ln in out.stderr.splitlines() if "cannot be read" in ln]
  assert len(lines) == 1 and "checkpoint step 32 " in lines[0]
  assert "array data unreadable" in lines[0] and "using step 16" in lines[0]
  assert sorted(n.split("-")[0] for n in os.listdir(d)) == ["16", "32", "32.unreadable"]
  _assert_same_runs(_runs(w), _runs(finished))


@pytest.mark.parametrize("kind", ["metadata", "commit-marker", "missing-index"])
def test_cli_damaged_latest_step_resumes_to_same_results(kind, finished, tmp_path, caplog):
  w, d = _copy(finished, tmp_path)
  os.remove(os.path.join(str(w), "summary.json"))
  damage, slug = DAMAGE[kind]
  damage(os.path.join(d, "32"))
  with caplog.at_level(logging.WARNING, logger="jaxdepth.ckpt"):
    assert _train(w) == 0
  warn = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
  assert len(warn) == 1 and "checkpoint step 32 " in warn[0] and "using step 16" in warn[0]
  assert any(n.startswith(f"32.unreadable-{slug}-") for n in os.listdir(d))
  _assert_same_runs(_runs(w), _runs(finished))


def test_cli_no_readable_step_exit_2_one_line(finished, tmp_path, capsys):
  w, d = _copy(finished, tmp_path)
  _overwrite_array_data(os.path.join(d, "32"))
  _remove_commit_marker(os.path.join(d, "16"))
  capsys.readouterr()
  assert _train(w) == 2
  err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("jaxdepth:")]
  assert len(err) == 1 and err[0].startswith("jaxdepth: error: no readable checkpoint in ")
  assert sorted(n.split("-")[0] for n in os.listdir(d)) == ["16.unreadable", "32.unreadable"]
  assert os.path.exists(os.path.join(str(w), "config.json"))  # the run is kept


def test_cli_failed_checkpoint_write_then_resume(finished, tmp_path, monkeypatch, capsys):
  w = tmp_path / "run"
  _fail_meta_write(monkeypatch, when=lambda directory: "/32." in directory)
  capsys.readouterr()
  assert _train(w) == 1
  err = capsys.readouterr().err
  assert "Traceback" not in err
  lines = [ln for ln in err.splitlines() if ln.startswith("jaxdepth:")]
  d = os.path.join(str(w), "checkpoints", "d3_w16")
  assert len(lines) == 1 and lines[0].startswith(
      f"jaxdepth: error: cannot write {os.path.join(d, '32')}: No space left on device "
      "(errno 28 ENOSPC)")
  assert os.listdir(d) == ["16"] and not os.path.exists(os.path.join(str(w), "summary.json"))
  assert ckpt.Checkpointer(str(w), subdir="checkpoints/d3_w16").restore()[0] == 16
  monkeypatch.undo()
  assert _train(w) == 0
  _assert_same_runs(_runs(w), _runs(finished))


def test_cli_failed_summary_write_then_rerun(finished, tmp_path, monkeypatch, capsys):
  w, _ = _copy(finished, tmp_path)
  before = open(os.path.join(str(w), "summary.json")).read()
  real_open = open

  def full_open(path, mode="r", *a, **k):
    if str(path).endswith("summary.json.tmp"):
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_open(path, mode, *a, **k)

  monkeypatch.setattr(writers, "open", full_open, raising=False)
  capsys.readouterr()
  assert _train(w) == 1
  err = capsys.readouterr().err
  path = os.path.join(str(w), "summary.json")
  assert "Traceback" not in err
  assert f"jaxdepth: error: cannot write {path}: No space left on device (errno 28 ENOSPC)" \
      in err
  assert open(path).read() == before and not os.path.exists(path + ".tmp")
  monkeypatch.undo()
  assert _train(w) == 0
  _assert_same_runs(_runs(w), _runs(finished))


# ------------------------------------------------------------- incremental sweeps
def test_incremental_damaged_depth_is_retrained(tmp_path, monkeypatch, caplog):
  from jaxdepth.configs.incremental import quadratic as q_config
  from jaxdepth.papers.incremental import quadratic as quad
  from jaxdepth.papers.incremental import runner
  config = q_config.get_config("tiny")
  config.bias_modes = ("mean_y",)
  wd = str(tmp_path / "run")
  first = quad.run(config, wd)
  sub = os.path.join(wd, "checkpoints", "bias_mean_y_depth_2")
  (step,) = [n for n in os.listdir(sub) if n.isdigit()]
  _overwrite_array_data(os.path.join(sub, step))
  from jaxdepth.engine import loop
  calls, current = [], []  # the depths that run segments (a restored one runs none)
  real, real_loop = runner.train, loop.run
  monkeypatch.setattr(runner, "train", lambda *a, **k: current.append(k.get("desc")) or
                      real(*a, **k))
  monkeypatch.setattr(loop, "run", lambda *a, start, total, **k: (
      calls.append(current[-1]) if start < total else None) or real_loop(
          *a, start=start, total=total, **k))
  with caplog.at_level(logging.WARNING, logger="jaxdepth.ckpt"):
    again = quad.run(config, wd)
  assert len(calls) == 1 and "depth 2" in calls[0]  # only the damaged depth retrained
  warn = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
  assert len(warn) == 1 and f"checkpoint step {step} " in warn[0]
  aside = os.listdir(sub + ".unreadable")
  assert len(aside) == 1 and aside[0].startswith(f"{step}.unreadable-array-data-")
  strip = lambda s: [{k: v for k, v in r.items() if k != "wall_s_per_depth"}
                     for r in s["runs"]]
  assert json.dumps(writers.to_jsonable(strip(again)), sort_keys=True) == json.dumps(
      writers.to_jsonable(strip(first)), sort_keys=True)
