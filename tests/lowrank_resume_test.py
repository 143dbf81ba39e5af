"""The low-rank experiments run through the engine's driver (issue 21): interrupted
after k segments and resumed, their outputs are byte for byte an uninterrupted run's;
a finished run restores every result instead of computing it; records a kill lost
after the checkpoint are written on the re-run; another config's checkpoints are
refused."""

import os

import pytest

import jaxdepth
from jaxdepth import cli
from jaxdepth.engine import ckpt, interrupt
from jaxdepth.errors import ConfigError, Interrupted
from jaxdepth.papers.lowrank import init_rank, optimizers, overparam_exp, regression, volume

# (config, module, the function computing one segment, segments in the tiny config)
CASES = [
    ("configs/lowrank/volume.py:tiny", volume, "sample_rhos", 3),
    ("configs/lowrank/init_rank.py:tiny", init_rank, "gram_rhos", 3),
    ("configs/lowrank/regression.py:tiny", regression, "train_depth", 3),
    ("configs/lowrank/optimizers.py:tiny", optimizers, "fit_depth", 12),
]
OUTPUTS = ("summary.json", "metrics.jsonl", "rho_draws.csv")


def _outputs(wd):
  return {f: open(os.path.join(wd, f), "rb").read() for f in OUTPUTS
          if os.path.exists(os.path.join(wd, f))}


def _counting(monkeypatch, module, name, on_call=None):
  """Patch ``module.name`` to count its calls (and run ``on_call(n)`` first)."""
  real, calls = getattr(module, name), []

  def wrapped(*a, **k):
    calls.append(1)
    if on_call is not None:
      on_call(len(calls))
    return real(*a, **k)

  monkeypatch.setattr(module, name, wrapped)
  return calls


@pytest.mark.parametrize("spec,module,fn,total", CASES, ids=[c[0] for c in CASES])
def test_interrupted_after_k_segments_resumes_to_the_same_outputs(
    tmp_path, monkeypatch, spec, module, fn, total):
  config = cli.load_config(spec, [])
  full, part = str(tmp_path / "full"), str(tmp_path / "part")
  jaxdepth.run(config, full)
  want = _outputs(full)
  assert set(want) >= {"summary.json", "metrics.jsonl"}

  # A stop request (as Ctrl-C) while segment 2 computes: checkpointed after it.
  def stop_at_2(n):
    if n == 2:
      interrupt.request()

  _counting(monkeypatch, module, fn, stop_at_2)
  try:
    with pytest.raises(Interrupted) as e:
      jaxdepth.run(config, part)
  finally:
    interrupt.clear()
  assert (e.value.done, e.value.total) == (2, total)
  assert e.value.checkpoint.startswith("checkpoints")
  calls = _counting(monkeypatch, module, fn)
  jaxdepth.run(config, part)
  assert len(calls) == total - 2  # resumed at the segment it reached
  assert _outputs(part) == want

  # A finished run restores its results: nothing is computed, nothing changes.
  def refuse(n):
    raise AssertionError("a finished run computed a segment again")

  _counting(monkeypatch, module, fn, refuse)
  jaxdepth.run(config, part)
  assert _outputs(part) == want


def test_records_lost_after_the_checkpoint_are_written_on_the_rerun(tmp_path):
  """A kill between a segment's checkpoint and its metric records: the re-run writes
  them from the restored results (and no record twice)."""
  config = cli.load_config("configs/lowrank/volume.py:tiny", [])
  wd = str(tmp_path / "w")
  jaxdepth.run(config, wd)
  path = os.path.join(wd, "metrics.jsonl")
  want = open(path).read()
  lines = want.splitlines(keepends=True)
  assert len(lines) == 3
  with open(path, "w") as f:
    f.write(lines[0])  # the records of depths 2 and 3 were lost
  jaxdepth.run(config, wd)
  assert open(path).read() == want


def test_checkpoints_of_another_config_are_refused(tmp_path):
  config = cli.load_config("configs/lowrank/volume.py:tiny", [])
  wd = str(tmp_path / "w")
  volume.run(config, wd)  # no config.json: the checkpoints' metadata still protect
  changed = config.copy_and_resolve_references()
  changed.draws = 32
  with pytest.raises(ConfigError, match=r"^config\.draws: the checkpoints in .*volume "
                                        r"hold a run with draws=64, this config has 32"):
    volume.run(changed, wd)
  changed = config.copy_and_resolve_references()
  changed.progress = True  # a resume-safe field
  volume.run(changed, wd)


def test_overparam_refuses_another_configs_checkpoints_before_any_compute(tmp_path,
                                                                        monkeypatch):
  config = cli.load_config("configs/lowrank/overparam.py:tiny", [])
  tcfg = overparam_exp.train_config(config, "mlp", 4)
  wd = str(tmp_path / "w")
  old = {**tcfg.to_dict(), "epochs": 7}  # as the trainer saves its config
  ck = ckpt.Checkpointer(wd, max_to_keep=1, subdir=os.path.join("checkpoints", "mlp_e4"))
  ck.save(1, {"x": __import__("numpy").zeros(2)}, {"config": old})
  ck.close()
  monkeypatch.setattr(overparam_exp.data, "load", lambda c: pytest.fail("data loaded"))
  with pytest.raises(ConfigError, match=r"^config\.train\.epochs: the checkpoints in .*mlp_e4 "
                                        r"hold a run with epochs=7, this config has 2"):
    overparam_exp.run(config, wd)
