"""`jaxdepth analyze`: new metrics reach a run trained before, without training."""

import json
import os
import shutil

from jaxdepth import cli


def _strip_nc(path):
  s = json.load(open(path))
  for r in s["runs"]:
    for k in [k for k in r if k.startswith("nc")]:
      del r[k]
  json.dump(s, open(path, "w"))
  return s


def test_analyze_adds_metrics_to_an_old_run_without_training(tmp_path, capsys):
  wd = str(tmp_path / "w")
  assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd,
                   "--config.epochs=2"]) == 0
  ref = json.load(open(os.path.join(wd, "summary.json")))
  old = _strip_nc(os.path.join(wd, "summary.json"))   # as a run from before the NC set
  assert "nc1_train" not in old["runs"][0]
  metrics = open(os.path.join(wd, "metrics.jsonl")).read()
  ck = os.path.join(wd, "checkpoints")
  steps = {t: sorted(os.listdir(os.path.join(ck, t))) for t in os.listdir(ck)}
  capsys.readouterr()
  assert cli.main(["analyze", "--workdir", wd]) == 0
  new = json.load(open(os.path.join(wd, "summary.json")))
  for a, b in zip(ref["runs"], new["runs"]):
    assert b["nc1_train"] == a["nc1_train"] and len(b["nc1_train"]) == 3
    assert b["ncc_train_acc"] == a["ncc_train_acc"] and b["test_acc"] == a["test_acc"]
  assert "nc1_train" in open(os.path.join(wd, "layers.csv")).readline()
  assert open(os.path.join(wd, "metrics.jsonl")).read() == metrics  # nothing trained
  assert {t: sorted(os.listdir(os.path.join(ck, t))) for t in os.listdir(ck)} == steps
  assert "wrote" in capsys.readouterr().err


def test_analyze_refuses_an_unfinished_run(tmp_path, capsys):
  wd = str(tmp_path / "w")
  assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd,
                   "--config.epochs=2"]) == 0
  cfg = json.load(open(os.path.join(wd, "config.json")))
  cfg["epochs"] = 4                                    # checkpoints stop at epoch 2
  json.dump(cfg, open(os.path.join(wd, "config.json"), "w"))
  before = open(os.path.join(wd, "summary.json")).read()
  capsys.readouterr()
  assert cli.main(["analyze", "--workdir", wd]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "stops at epoch 2 of 4" in err[0] and "analyze never trains" in err[0]
  assert open(os.path.join(wd, "summary.json")).read() == before
  shutil.rmtree(wd)
  assert cli.main(["analyze", "--workdir", wd]) == 2
  assert "holds no run" in capsys.readouterr().err


def test_analyze_of_damaged_or_missing_checkpoints_refuses_in_one_line(tmp_path, capsys):
  """A damaged newest step (metadata garbled, arrays missing) ends in the restore's one
  line (exit 2, step set aside, nothing trained); so does a program that never saved."""
  wd = str(tmp_path / "w")
  assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd,
                   "--config.epochs=2"]) == 0
  (tag,) = os.listdir(os.path.join(wd, "checkpoints"))
  (step,) = os.listdir(os.path.join(wd, "checkpoints", tag))
  for kind in ("metadata", "missing-files", "never-saved"):
    w = str(tmp_path / kind)
    shutil.copytree(wd, w)
    ck = os.path.join(w, "checkpoints", tag)
    if kind == "metadata":
      open(os.path.join(ck, step, "meta", "metadata"), "w").write("{not json")
    elif kind == "missing-files":
      shutil.rmtree(os.path.join(ck, step, "state"))
    else:
      shutil.rmtree(os.path.join(ck, step))
    metrics = open(os.path.join(w, "metrics.jsonl")).read()
    capsys.readouterr()
    assert cli.main(["analyze", "--workdir", w]) == 2, kind
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1, (kind, err)
    if kind == "never-saved":
      assert f"checkpoints/{tag} stops at epoch 0 of 2" in err[0]
      assert "analyze never trains" in err[0] and os.listdir(ck) == []
    else:
      assert err[0].startswith(f"jaxdepth: error: no readable checkpoint in {ck} "), err
      assert f"{step}.unreadable-{kind}-" in err[0]
      assert not [n for n in os.listdir(ck) if n.isdigit()]  # set aside, none written
    assert open(os.path.join(w, "metrics.jsonl")).read() == metrics, kind
