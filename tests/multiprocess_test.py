"""Device counts and JAX processes: results must not depend on how runs are placed.

Each case runs ``jaxdepth train`` in fresh subprocesses (a device count is fixed when
jax starts), without the 4-device XLA_FLAGS of the test session.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxdepth.engine import distributed
from jaxdepth.engine.validate import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
ENV["PYTHONPATH"] = ROOT


def _cmd(workdir, *extra):
  return [sys.executable, "-m", "jaxdepth", "train", "--config", "configs/tiny.py",
          "--workdir", str(workdir), "--config.progress=False", *extra]


def _run(workdir, *extra, timeout=300):
  p = subprocess.run(_cmd(workdir, *extra), cwd=ROOT, env=ENV, capture_output=True,
                     text=True, timeout=timeout)
  assert p.returncode == 0, p.stderr[-3000:]
  return p


def _port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _job(workdir, *extra, n=2):
  port = _port()
  return [subprocess.Popen(
      _cmd(workdir, "--cpu_devices", "1", "--coordinator_address", f"127.0.0.1:{port}",
           "--num_processes", str(n), "--process_id", str(i), "--heartbeat_timeout", "10",
           *extra), cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True) for i in range(n)]


def _runs(workdir):
  return json.load(open(os.path.join(workdir, "summary.json")))["runs"]


def test_results_do_not_depend_on_the_device_count(tmp_path):
  # 3 seeds x 2 noise levels = 6 runs: padded to 8 on 4 devices, 6 on 2, 6 on 1.
  out = {}
  for n in (1, 2, 4):
    wd = tmp_path / f"d{n}"
    _run(wd, "--cpu_devices", str(n), "--config.num_seeds=3")
    out[n] = (_runs(wd), open(wd / "layers.csv").read())
  assert len(out[1][0]) == 6
  assert out[1] == out[2] == out[4]  # bitwise: summary records and the CSV text


def _assert_close_runs(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    for k in ("seed", "label_noise", "effective_depth", "diverged"):
      assert x[k] == y[k]
    for k in ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "test_acc", "train_loss"):
      np.testing.assert_allclose(x[k], y[k], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_two_processes_equal_one_process_with_two_devices(tmp_path):
  ref = tmp_path / "ref"
  _run(ref, "--cpu_devices", "2")
  wd = tmp_path / "job"
  procs = _job(wd)
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs
  _assert_close_runs(_runs(ref), _runs(wd))
  # Process 0 alone wrote the results: one summary, one metrics line per evaluation.
  steps = [json.loads(line)["step"] for line in open(wd / "metrics.jsonl")]
  assert steps == [16, 32]
  assert "wrote" in logs[0] and "wrote" not in logs[1]

  # A damaged latest checkpoint in the shared workdir: both processes agree on it,
  # process 0 alone sets it aside (once) and warns (once), and the job resumes from
  # the older step to the same results.
  ck = wd / "checkpoints" / "d3_w16"
  meta = ck / "32" / "meta" / "metadata"
  meta.write_text(meta.read_text()[:5])
  os.remove(wd / "summary.json")
  procs = _job(wd)
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs
  assert sorted(n.split("-")[0] for n in os.listdir(ck)) == ["16", "32", "32.unreadable"]
  warned = [[ln for ln in log.splitlines() if "cannot be read" in ln] for log in logs]
  assert len(warned[0]) == 1 and "checkpoint step 32 " in warned[0][0], logs[0][-2000:]
  assert "using step 16" in warned[0][0] and warned[1] == []
  _assert_close_runs(_runs(ref), _runs(wd))


@pytest.mark.slow
def test_a_killed_process_stops_the_other_and_a_rerun_completes(tmp_path):
  args = ("--config.epochs=600", "--config.eval_every=600", "--config.checkpoint_every=20")
  ref = tmp_path / "ref"
  _run(ref, "--cpu_devices", "2", *args)
  wd = tmp_path / "job"
  procs = _job(wd, *args)
  ck = wd / "checkpoints" / "d3_w16"
  t0 = time.time()
  while not (ck.is_dir() and any(d.isdigit() for d in os.listdir(ck))):
    assert time.time() - t0 < 240 and procs[0].poll() is None, "no checkpoint written"
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGKILL)
  t_kill = time.time()
  out0 = procs[0].communicate(timeout=120)[0]  # bounded: heartbeat 10 s
  waited = time.time() - t_kill
  procs[1].wait()
  assert procs[0].returncode != 0, out0[-2000:]
  assert waited < 90, waited
  assert not (wd / "summary.json").exists()
  # Re-running every process resumes from the last complete checkpoint.
  procs = _job(wd, *args)
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs
  _assert_close_runs(_runs(ref), _runs(wd))


def test_flag_errors_are_one_line_and_start_nothing():
  with pytest.raises(ConfigError, match="--num_processes: is required"):
    distributed.check_flags("127.0.0.1:1234", None, 0, False)
  with pytest.raises(ConfigError, match=r"--process_id: must be in 0 \.\. 1"):
    distributed.check_flags("127.0.0.1:1234", 2, 2, False)
  with pytest.raises(ConfigError, match="--num_processes: needs --coordinator_address"):
    distributed.check_flags(None, 2, 0, False)
  with pytest.raises(ConfigError, match="--coordinator_address: must be HOST:PORT"):
    distributed.check_flags("localhost", 2, 0, False)
  assert distributed.check_flags(None, None, None, False) is False
  assert distributed.check_flags(None, None, None, True) is True
  assert distributed.check_flags("127.0.0.1:1234", 2, 1, False) is True


def test_cli_flag_error_exit_2(tmp_path):
  p = subprocess.run(_cmd(tmp_path / "w", "--coordinator_address", "127.0.0.1:1",
                          "--num_processes", "2", "--process_id", "5"), cwd=ROOT, env=ENV,
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 2
  assert p.stderr.strip().splitlines()[-1] == (
      "jaxdepth: error: --process_id: must be in 0 .. 1 (--num_processes 2), got 5")
  assert not (tmp_path / "w").exists()


def test_single_process_experiments_refuse_a_job(tmp_path):
  port = _port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "jaxdepth", "train", "--config",
       "configs/incremental/toy.py:tiny", "--workdir", str(tmp_path / "w"),
       "--cpu_devices", "1", "--coordinator_address", f"127.0.0.1:{port}",
       "--num_processes", "2", "--process_id", str(i)], cwd=ROOT, env=ENV,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  errs = [p.communicate(timeout=180)[1] for p in procs]
  assert [p.returncode for p in procs] == [2, 2], errs
  for e in errs:
    assert e.strip().splitlines()[-1] == (
        "jaxdepth: error: config.experiment: 'incremental.toy' runs in one process; "
        "multi-process jobs run: collapse")
  assert not (tmp_path / "w").exists()
