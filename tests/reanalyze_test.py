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
