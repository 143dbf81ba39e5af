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


# What the device count may change, and what it may not (README, "Scaling out"). The
# per-device batch of runs (6, 3 or 2 here) compiles to different kernels, so float
# results agree to float32 rounding, not bitwise: 1, 2 and 4 devices differed by up to
# 2.5e-7 relative after the tiny config's 32 SGD steps on a Xeon (AVX-512 and AVX2
# code alike), while a learning rate changed by 1e-5 relative moved losses by 2.9e-5
# and CDNV by 1.4e-5. RTOL sits between the two.
RTOL = 1e-5
FLOAT_KEYS = ("train_loss", "test_loss", "cdnv_train", "cdnv_test", "rank_train",
              "rank_test")
ACC_KEYS = {"train_acc": 256, "test_acc": 128, "ncc_train_acc": 256, "ncc_test_acc": 128,
            "ncc_train_acc_clean": None, "ncc_train_acc_corrupted": None}


def _flips(a, b, n):
  """Samples whose prediction differs, from two accuracies over n samples."""
  return int(round(np.nansum(np.abs(np.asarray(a, float) - np.asarray(b, float))) * n))


def assert_same_to_rounding(ref, other, n_train=256):
  """Summary records of one run on two device counts: identity fields and integer
  counts equal, floats equal to RTOL.

  Accuracies are counts over samples: a sample whose two nearest classes are within
  float32 rounding may flip, so at most one flip per record is allowed (the margins
  of the flipped samples are not in the summary; with 32 steps of training none
  flipped here). An effective depth must be equal unless the NCC train error of some
  layer, in either run, is within one sample (1/n) of its eps: only then can rounding
  move it across the threshold (the margin is checked, not assumed).
  """
  assert len(ref) == len(other)
  for x, y in zip(ref, other):
    for k in ("seed", "label_noise", "depth", "width", "layers", "diverged",
              "degenerate_pairs_train", "degenerate_pairs_test", "empty_classes_train",
              "empty_classes_test"):
      assert x[k] == y[k], k
    for k in FLOAT_KEYS:
      np.testing.assert_allclose(np.asarray(y[k], float), np.asarray(x[k], float),
                                 rtol=RTOL, atol=0, err_msg=k)
    flips = 0
    for k, n in ACC_KEYS.items():
      xa = np.asarray(x[k], dtype=float)
      ya = np.asarray(y[k], dtype=float)
      np.testing.assert_array_equal(np.isnan(xa), np.isnan(ya), err_msg=k)
      if n is not None:
        flips = max(flips, _flips(xa, ya, n))
    assert flips <= 1, (x["seed"], x["label_noise"], flips)
    err_x = 1 - np.asarray(x["ncc_train_acc"], float)
    err_y = 1 - np.asarray(y["ncc_train_acc"], float)
    for eps, depth in x["effective_depth"].items():
      near = np.any(np.abs(np.concatenate([err_x, err_y]) - float(eps)) <= 1 / n_train)
      if not near:
        assert y["effective_depth"][eps] == depth, (eps, x["seed"], x["label_noise"])
        assert y["effective_depth_suffix"][eps] == x["effective_depth_suffix"][eps]
        assert y["reached"][eps] == x["reached"][eps]


def test_results_do_not_depend_on_the_device_count(tmp_path):
  # 3 seeds x 2 noise levels = 6 runs: padded to 8 on 4 devices, 6 on 2, 6 on 1.
  out = {}
  for n in (1, 2, 4):
    wd = tmp_path / f"d{n}"
    _run(wd, "--cpu_devices", str(n), "--config.num_seeds=3")
    out[n] = (_runs(wd), open(wd / "layers.csv").read().splitlines())
  assert len(out[1][0]) == 6
  for n in (2, 4):
    assert_same_to_rounding(out[1][0], out[n][0])
    # layers.csv: the same rows and columns; its numbers are the summary's.
    assert len(out[n][1]) == len(out[1][1]) == 1 + 6 * 3
    assert out[n][1][0] == out[1][1][0]
    for a, b in zip(out[1][1][1:], out[n][1][1:]):
      assert a.split(",")[:7] == b.split(",")[:7]  # run coordinates and layer


def test_device_count_comparison_catches_a_real_change():
  """The comparison fails for a change just beyond float32 rounding: a record whose
  losses and CDNV moved by 3e-5 relative (what lr * (1 + 1e-5) does to the tiny
  config), or whose effective depth changed with a margin of several samples."""
  rec = {"seed": 0, "label_noise": 0.0, "depth": 2, "width": 4, "layers": ["a", "b"],
         "diverged": False, "degenerate_pairs_train": [0, 0],
         "degenerate_pairs_test": [0, 0], "empty_classes_train": 0.0,
         "empty_classes_test": 0.0, "train_loss": 0.5, "test_loss": 0.6,
         "cdnv_train": [0.3, 0.2], "cdnv_test": [0.3, 0.2], "rank_train": [2.0, 1.5],
         "rank_test": [2.0, 1.5], "train_acc": 1.0, "test_acc": 0.9,
         "ncc_train_acc": [0.9, 1.0], "ncc_test_acc": [0.8, 0.9],
         "ncc_train_acc_clean": [0.9, 1.0], "ncc_train_acc_corrupted": [None, None],
         "effective_depth": {"0.01": 2}, "effective_depth_suffix": {"0.01": 2},
         "reached": {"0.01": True}}
  assert_same_to_rounding([rec], [json.loads(json.dumps(rec))])
  near = json.loads(json.dumps(rec))
  near["cdnv_train"] = [0.3 * (1 + 2e-7), 0.2]  # rounding: accepted
  assert_same_to_rounding([rec], [near])
  for key, value in (("train_loss", 0.5 * (1 + 3e-5)), ("cdnv_test", [0.3, 0.2 * (1 + 3e-5)]),
                     ("effective_depth", {"0.01": 1}), ("diverged", True),
                     ("ncc_test_acc", [0.8, 0.9 + 2 / 128])):
    bad = json.loads(json.dumps(rec))
    bad[key] = value
    with pytest.raises(AssertionError):
      assert_same_to_rounding([rec], [bad])


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
  # Process 0 alone wrote the results: one summary, one metrics line per run and
  # evaluation (and epoch), one TensorBoard event file per run.
  recs = [json.loads(line) for line in open(wd / "metrics.jsonl")]
  keys = [(r["kind"], r["step"], r["seed"], r["label_noise"]) for r in recs]
  assert len(keys) == len(set(keys)) == 4 * (2 + 4)
  assert sorted({r["step"] for r in recs if r["kind"] == "eval"}) == [16, 32]
  assert [len(os.listdir(wd / "tb" / d)) for d in os.listdir(wd / "tb")] == [1] * 4
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
