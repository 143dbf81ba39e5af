"""The engine's segment loop with a minimal fake experiment: outputs fetched one segment
late, `stop` decided on those outputs (no other device->host transfer), and metrics
written through the resumable stream, so a re-run in the same workdir adds nothing; and
engine/driver around it: a run that ``stop`` ended is finished, a refused checkpoint
(``accept``) is started over."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.engine import ckpt, loop, metrics

R = 3                       # runs
TARGET = np.array([2, 5, 7])  # run r finishes after TARGET[r] segments


def _segment(state, i):
  """Counts segments per run until the run's target; frozen afterwards."""
  count = state["count"]
  finished = count >= TARGET
  new = jnp.where(finished, count, count + 1)
  return {"count": new}, {"count": new, "finished": new >= TARGET}


SEGMENT = jax.jit(_segment, static_argnums=())


def _run(workdir, events, total=10):
  log = metrics.MetricsLog(str(workdir), ("part",)).stream(part="fake")
  ck = ckpt.Checkpointer(str(workdir), max_to_keep=1)
  state, start = {"count": jnp.zeros(R, jnp.int32)}, 0
  got = ck.restore(target={"count": np.zeros(R, np.int32)})
  if got is not None:
    state, start = {"count": jnp.asarray(got[1]["count"])}, got[2]["segment"]

  def segment(state, i):
    events.append(("dispatch", i))
    return SEGMENT(state, i)

  def fetch(out):
    events.append(("fetch",))
    with jax.transfer_guard_device_to_host("allow"):
      return jax.tree.map(np.asarray, jax.device_get(out))

  def on_output(out):
    log.write({"step": int(out["count"].max()), "count": out["count"].tolist()})

  save = lambda st, n: ck.save(n, jax.device_get(st), {"segment": n})
  with jax.transfer_guard_device_to_host("disallow"):
    state, done = loop.run(state, segment, start=start, total=total, fetch=fetch,
                           on_output=on_output, stop=lambda out: bool(out["finished"].all()),
                           hooks=[loop.Hook(3, lambda st, n: events.append(("hook", n)))])
  with jax.transfer_guard_device_to_host("allow"):
    save(state, done)
  ck.close()
  return np.asarray(state["count"]), done


def test_stop_on_one_late_output_without_syncing(tmp_path):
  events = []
  count, done = _run(tmp_path, events)
  np.testing.assert_array_equal(count, TARGET)
  # Run 2 finishes in segment 6 (its 7th); the loop sees that output while segment 7
  # runs, keeps segment 7's (frozen, unchanged) state, drops its output: 7 segments.
  assert done == 7
  dispatches = [e[1] for e in events if e[0] == "dispatch"]
  assert dispatches == list(range(8))
  # Every fetch of segment i-1's output comes after segment i was dispatched.
  order = [e[0] for e in events if e[0] in ("dispatch", "fetch")]
  assert order == ["dispatch"] + ["dispatch", "fetch"] * 7
  assert [e[1] for e in events if e[0] == "hook"] == [3, 6, 7]
  lines = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in lines] == list(range(1, 8))
  assert lines[-1]["count"] == TARGET.tolist() and lines[0]["part"] == "fake"


def test_rerun_in_the_same_workdir_logs_nothing_twice(tmp_path):
  _run(tmp_path, [])
  before = open(tmp_path / "metrics.jsonl").read()
  count, done = _run(tmp_path, [])   # resumes at segment 7, all runs finished
  np.testing.assert_array_equal(count, TARGET)
  assert open(tmp_path / "metrics.jsonl").read() == before


def _driver_run(workdir, ran, tag="run", accept=None, total=10, every=3):
  """The fake experiment through engine/driver, checkpointing every ``every`` segments."""
  from jaxdepth.engine import driver
  log = metrics.MetricsLog(str(workdir), ("part",)).stream(part="fake")

  def segment(state, i):
    ran.append(i)
    return SEGMENT(state, i)

  def on_output(out):
    log.write({"step": int(out["count"].max()), "count": out["count"].tolist()})

  checkpoint = driver.Checkpointing(
      "checkpoints/fake", every=every, keep=1, to_host=jax.device_get,
      from_host=lambda t: {"count": jnp.asarray(t["count"])},
      meta=lambda done: {"tag": tag}, accept=accept)
  state, _ = driver.run({"count": jnp.zeros(R, jnp.int32)}, segment, total=total,
                        workdir=str(workdir), checkpoint=checkpoint, stream=log,
                        on_output=on_output, stop=lambda out: bool(out["finished"].all()))
  return np.asarray(state["count"])


@pytest.mark.parametrize("every", [3, 1])  # 1: segment 7 saved, then saved again finished
def test_driver_marks_a_run_stopped_early_finished(tmp_path, every):
  ran = []
  np.testing.assert_array_equal(_driver_run(tmp_path, ran, every=every), TARGET)
  assert ran == list(range(8))  # stopped on segment 6's output, segment 7 dispatched
  step, meta = ckpt.newest_meta(str(tmp_path / "checkpoints" / "fake"))
  assert meta["segment"] == 7 and meta["finished"] is True
  before = open(tmp_path / "metrics.jsonl").read()
  ran.clear()
  np.testing.assert_array_equal(_driver_run(tmp_path, ran, every=every), TARGET)
  assert ran == []  # finished: restored, no segment runs
  assert open(tmp_path / "metrics.jsonl").read() == before


def test_driver_starts_over_from_a_refused_checkpoint(tmp_path, capsys):
  _driver_run(tmp_path, [], tag="a", accept=lambda m: m["tag"] == "a")
  ran = []
  np.testing.assert_array_equal(
      _driver_run(tmp_path, ran, tag="b", accept=lambda m: m["tag"] == "b"), TARGET)
  assert ran == list(range(8))  # trained from segment 0
  assert "holds another run's checkpoint; starting over" in capsys.readouterr().err
  _, meta = ckpt.newest_meta(str(tmp_path / "checkpoints" / "fake"))
  assert meta["tag"] == "b"
  lines = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in lines] == list(range(1, 8))  # the refused run's lines dropped
