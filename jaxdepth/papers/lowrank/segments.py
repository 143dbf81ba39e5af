"""The low-rank experiments' segments through the engine's driver (issue 21).

Each experiment is a sequence of segments (one depth, one (optimizer, depth)), whose
results are rows of host arrays: the driver's state is a dict of numpy buffers with
a leading segment axis, ``compute(state, i)`` fills row ``i``, and
:func:`jaxdepth.engine.driver.run` checkpoints the buffers after every segment
(``checkpoints/<name>``). So an interrupted experiment (Ctrl-C, a kill) resumes at the
segment it reached, and a re-run of a finished one restores every result instead of
computing it again; the summary, CSVs and figures are then derived from the buffers.

The metric records of segment ``i`` are derived from its rows too (``records(state,
i)``: (key fields, record) pairs) and written through the resumable
:class:`jaxdepth.engine.metrics.MetricsLog` from the driver's ``on_output``; on a
resume, those of the segments already done are written again first, which the log
skips where it holds them (and writes where a kill came between the checkpoint and
the record). The checkpoint's metadata holds the config (less the resume-safe fields):
resuming under another config is refused with a ConfigError naming the first field
that differs, as ``writers.prepare_workdir`` does with config.json.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from jaxdepth import papers
from jaxdepth.engine import ckpt, driver, metrics, writers
from jaxdepth.engine import progress as progress_lib

Records = Callable[[dict, int], Iterable[tuple[dict, dict]]]


def check_checkpoint_config(workdir: str, subdir: str, expected: dict) -> None:
  """Refuse checkpoints in ``workdir/subdir`` saved under another config (their
  metadata's ``config`` differs from ``expected`` outside the resume-safe fields)."""
  found = ckpt.newest_meta(os.path.join(workdir, subdir))
  if found is None or not isinstance(found[1], dict) or "config" not in found[1]:
    return
  writers.check_same_config(found[1]["config"], writers.to_jsonable(expected),
                            papers.RESUME_SAFE_FIELDS,
                            f"the checkpoints in {os.path.join(workdir, subdir)} hold")


def run(config, workdir: str, name: str, state: dict, total: int,
        compute: Callable[[dict, int], None], records: Records,
        key_fields: tuple[str, ...], unit: str = "segment") -> dict:
  """Segments ``0 .. total-1`` of one experiment through :func:`driver.run`.

  Args:
    name: the checkpoint directory ``checkpoints/<name>`` and the progress bar's label.
    state: the result buffers (a dict, nested dicts allowed, of numpy arrays), zeros;
      ``compute(state, i)`` fills segment ``i``'s entries in place.
    records: ``(state, i) -> [(key, record)]``, segment ``i``'s metric records
      (``record`` has a ``step``), each written to ``log.stream(**key)``.
    key_fields: the MetricsLog's key fields.
    unit: what a segment is called in messages ("depth": resuming from depth 2 of 5).
  Returns:
    the filled buffers (restored from the checkpoint when the run had finished).
  Raises:
    ConfigError: the checkpoints were saved under another config.
    jaxdepth.errors.Interrupted: a stop request (Ctrl-C), after checkpointing.
  """
  subdir = os.path.join("checkpoints", name)
  expected = papers.fingerprint(config)
  check_checkpoint_config(workdir, subdir, expected)
  log = metrics.MetricsLog(workdir, key_fields)
  current = {"state": state}

  def from_host(tree):  # writable copies of the restored rows, keys in state's order
    current["state"] = _like(state, tree)
    return current["state"]

  def segment(s, i):
    compute(s, i)
    return s, i

  def write(i):  # one segment's records, from its rows
    for key, record in records(current["state"], int(i)):
      log.stream(**key).write(record)

  def resumed(start):  # the records of the segments done (skipped where logged)
    for i in range(start):
      write(i)

  checkpoint = driver.Checkpointing(
      subdir, every=1, keep=1, to_host=lambda s: s, from_host=from_host,
      meta=lambda done: {"config": expected, "segments": total})
  bar = progress_lib.progress(total, name, enabled=config.progress)
  try:
    state, _ = driver.run(state, segment, total=total, workdir=workdir,
                          checkpoint=checkpoint, bar=bar, on_output=write,
                          fetch=lambda i: i, on_resume=resumed, unit=unit)
  finally:  # also on Ctrl-C (errors.Interrupted): the bar ends its line first
    bar.close()
    log.close()
  return state


def _like(template, tree):
  """``tree``'s arrays (copied) in ``template``'s dict order (a restore sorts keys)."""
  if isinstance(template, dict):
    return {k: _like(v, tree[k]) for k, v in template.items()}
  return np.array(tree)
