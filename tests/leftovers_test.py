"""An error that stops a run before training leaves no new files (issue 14); an
existing run is never touched."""

import os

import pytest

from jaxdepth import cli
from jaxdepth.engine import writers


def _tree(d):
  """Every file below ``d`` with its bytes and modification time."""
  out = {}
  for root, dirs, files in os.walk(d):
    for name in dirs + files:
      p = os.path.join(root, name)
      st = os.stat(p)
      data = None
      if os.path.isfile(p):
        with open(p, "rb") as f:
          data = f.read()
      out[os.path.relpath(p, d)] = (data, st.st_mtime_ns)
  return out


def _missing_tfds(tmp_path):
  return ["--config", "configs/cifar10_conv.py",
          f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.download=False"]


def _too_large_batch():
  # digits has 1347 training examples: only the loaded data shows the batch is too large
  return ["--config", "configs/tiny.py", "--config.dataset=digits",
          "--config.data.num_train=0", "--config.data.num_test=0", "--config.batch_size=5000"]


def _one_error_line(capsys, field):
  err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("jaxdepth:")]
  assert len(err) == 1 and err[0].startswith(f"jaxdepth: error: config.{field}: "), err
  return err[0]


@pytest.mark.parametrize("case", ["missing_tfds", "batch_size"])
def test_data_error_leaves_no_workdir(case, tmp_path, capsys):
  w = tmp_path / "run"
  args = _missing_tfds(tmp_path) if case == "missing_tfds" else _too_large_batch()
  assert cli.main(["train", "--workdir", str(w), *args]) == 2
  line = _one_error_line(capsys, "dataset" if case == "missing_tfds" else "batch_size")
  assert ("not prepared" in line) if case == "missing_tfds" else ("1347 examples" in line)
  assert not os.path.exists(w)


def test_existing_run_is_untouched_by_a_failing_rerun(tmp_path, capsys):
  w = str(tmp_path / "run")
  args = _missing_tfds(tmp_path)
  config = cli.load_config(args[1], args[2:])
  writers.prepare_workdir(w, config)  # a run of this config that started earlier
  writers.JsonlWriter(os.path.join(w, "metrics.jsonl")).write({"step": 1})
  os.makedirs(os.path.join(w, "checkpoints", "d2_w128"))
  before = _tree(w)
  assert cli.main(["train", "--workdir", w, *args]) == 2
  _one_error_line(capsys, "dataset")
  assert _tree(w) == before


def test_existing_directory_gets_nothing_new(tmp_path, capsys):
  w = tmp_path / "mine"
  w.mkdir()
  (w / "notes.txt").write_text("kept")
  before = _tree(str(w))
  assert cli.main(["train", "--workdir", str(w), *_too_large_batch()]) == 2
  _one_error_line(capsys, "batch_size")
  assert _tree(str(w)) == before  # no config.json left behind


def test_remove_unstarted_keeps_what_a_run_produced(tmp_path):
  w = str(tmp_path / "run")
  os.makedirs(os.path.join(w, "checkpoints", "d3_w16"))
  writers.write_json(os.path.join(w, "config.json"), {"a": 1})
  writers.JsonlWriter(os.path.join(w, "metrics.jsonl")).write({"step": 8})
  assert not writers.remove_unstarted(w, None)  # training had logged: keep it
  assert os.path.exists(os.path.join(w, "metrics.jsonl"))
  os.remove(os.path.join(w, "metrics.jsonl"))
  assert writers.remove_unstarted(w, None) and not os.path.exists(w)
