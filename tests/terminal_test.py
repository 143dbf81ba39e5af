"""The terminal: Ctrl-C stops at an epoch boundary with a checkpoint and one line (exit
130), the same command resumes and says so, the results table goes to stdout."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxdepth.engine import interrupt, loop
from jaxdepth.errors import Interrupted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 60  # long enough to be interrupted mid-run (~0.1 s an epoch), short to finish


def _command(workdir):
  return ["train", "--config", "tiny", "--workdir", workdir, f"--config.epochs={EPOCHS}",
          "--config.checkpoint_every=1000", "--config.eval_every=1000",
          "--config.plots=False"]


def _popen(workdir):
  return subprocess.Popen([sys.executable, "-m", "jaxdepth", *_command(workdir)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def _train_lines(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return sum('"train"' in line for line in f)
  except FileNotFoundError:
    return 0


def _runs(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)["runs"]


def _assert_close(a, b, path="runs"):
  if isinstance(a, dict):
    assert set(a) == set(b), path
    for k in a:
      _assert_close(a[k], b[k], f"{path}.{k}")
  elif isinstance(a, list):
    assert len(a) == len(b), path
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_close(x, y, f"{path}[{i}]")
  elif isinstance(a, float) or isinstance(b, float):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=path)
  else:
    assert a == b, path


def test_ctrl_c_checkpoints_and_the_same_command_resumes(tmp_path):
  ref_wd, wd = str(tmp_path / "ref"), str(tmp_path / "run")
  ref = _popen(ref_wd)  # the uninterrupted reference, alongside
  ref_out, ref_err = ref.communicate(timeout=120)
  assert ref.returncode == 0, ref_err
  # The table on stdout; the paths written (and any logs) on stderr.
  assert "test acc" in ref_out and "train acc" in ref_out and "test acc" not in ref_err
  assert "wrote " in ref_err and "wrote " not in ref_out

  p = _popen(wd)
  deadline = time.time() + 60
  while _train_lines(wd) < 8 and p.poll() is None and time.time() < deadline:
    time.sleep(0.02)  # 4 runs: two epochs of train records
  assert p.poll() is None, "the run ended before it could be interrupted"
  p.send_signal(signal.SIGINT)
  out, err = p.communicate(timeout=60)
  assert p.returncode == 130, err
  assert "Traceback" not in err
  lines = [ln for ln in err.splitlines() if "interrupted" in ln]
  assert len(lines) == 1 and "resume with" in lines[0], err
  assert lines[0].startswith("jaxdepth: interrupted at epoch ")
  assert f"of {EPOCHS}; checkpoint written (checkpoints/d3_w16)" in lines[0]
  assert lines[0].endswith("resume with: jaxdepth " + " ".join(_command(wd)))
  assert "test acc" not in out  # no table for an unfinished run
  done = int(lines[0].split("at epoch ")[1].split()[0])
  assert 0 < done < EPOCHS
  assert not os.path.exists(os.path.join(wd, "summary.json"))
  assert sorted(os.listdir(os.path.join(wd, "checkpoints", "d3_w16")))  # saved

  p = _popen(wd)  # the same command, unchanged
  out, err = p.communicate(timeout=120)
  assert p.returncode == 0, err
  assert f"jaxdepth: resuming from epoch {done} of {EPOCHS} (checkpoints/d3_w16)" in err
  assert "test acc" in out and "Traceback" not in err
  _assert_close(_runs(wd), _runs(ref_wd))


def test_loop_stops_at_the_boundary_and_saves():
  calls = []

  def segment(state, i):
    if i == 2:
      interrupt.request()  # as the SIGINT handler does, during segment 2
    return state + 1, i

  hooks = [loop.Hook(100, lambda s, d: calls.append(("save", s, d))),
           loop.Hook(100, lambda s, d: calls.append(("eval", s, d)), on_interrupt=False)]
  outputs = []
  try:
    with pytest.raises(Interrupted) as e:
      loop.run(0, segment, start=0, total=10, hooks=hooks, on_output=outputs.append)
  finally:
    interrupt.clear()
  assert (e.value.done, e.value.total) == (3, 10)
  assert calls == [("save", 3, 3)]  # the checkpoint hook ran, the evaluation did not
  assert [int(o) for o in outputs] == [0, 1, 2]  # every segment's output delivered
  # Without a request the loop runs to the end.
  assert loop.run(0, lambda s, i: (s + 1, None), start=0, total=4)[1] == 4


def test_sigint_handler_first_sets_flag_second_raises():
  with interrupt.handling_sigint():
    with interrupt.loop_running():
      os.kill(os.getpid(), signal.SIGINT)
      assert interrupt.requested()
      with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    interrupt.clear()
    with pytest.raises(KeyboardInterrupt):  # no loop running: stop at once
      os.kill(os.getpid(), signal.SIGINT)
  assert not interrupt.requested()


def test_piped_stderr_gets_one_line_per_phase_and_no_bar(tmp_path):
  """stderr not a terminal (a log file, CI): no tqdm bar, one line per phase."""
  p = subprocess.run([sys.executable, "-m", "jaxdepth", "train", "--config", "tiny",
                      "--workdir", str(tmp_path / "w"), "--config.progress=True",
                      "--config.plots=False"],
                     cwd=ROOT, capture_output=True, text=True, timeout=300,
                     env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert p.returncode == 0, p.stderr[-3000:]
  assert "\r" not in p.stderr and "it/s" not in p.stderr and "step/s" not in p.stderr
  lines = [ln for ln in p.stderr.splitlines() if ln.startswith("jaxdepth: train d=3 w=16: ")]
  phases = [ln.split(": ", 2)[2] for ln in lines]
  assert phases[0] == "compiling"
  assert phases[1].startswith("training (first segment, compilation included: ")
  assert phases.count("analysing at step 16 of 32") == 1  # eval_every 2 of 4 epochs
  assert "writing checkpoint at step 32 of 32" in phases
  assert phases[-1].startswith("done, 32 of 32 steps in ")
  assert len(phases) == 7, phases  # compiling, training, 2 x (analysing, writing), done
  assert "test acc" in p.stdout  # the table still goes to stdout
