"""The loop with everything experiments share: resume, checkpoints, evaluations, the
metric stream and the progress bar, around :func:`jaxdepth.engine.loop.run`.

An experiment supplies its science (initial state, one compiled segment, an evaluation,
what a checkpoint holds); :func:`run` does the rest the same way for every experiment:

  state, final = driver.run(
      state, segment, total=epochs, workdir=workdir, steps_per_segment=spe,
      checkpoint=driver.Checkpointing("checkpoints/d8_w64", every=10, keep=2,
                                      to_host=..., from_host=..., meta=...),
      evaluate=evaluate, evaluate_every=5, stream=log.stream(depth=8, width=64), bar=bar)

Checkpoints hold host arrays (the real runs only) plus JSON metadata with the segment
count and the workdir layout version; a resumed run continues at the saved segment and
logs no (key, step) twice; a finished run is evaluated once more from its last
checkpoint, so re-running a finished experiment rewrites nothing. A run that ``stop``
ended before ``total`` is finished too: its last checkpoint says so (``finished``) and a
re-run runs no segment. ``Checkpointing.accept`` refuses another run's checkpoint (e.g.
one written under another config): its steps are removed and the run starts over.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from jaxdepth.engine import ckpt, distributed, loop, writers
from jaxdepth.engine import progress as progress_lib
from jaxdepth.errors import Interrupted


class Checkpointing(NamedTuple):
  """What and where to checkpoint.

  to_host: state -> tree of host arrays (what is saved; also the restore target).
  from_host: tree -> state (placed on the devices again).
  meta: segments done -> JSON metadata saved beside the arrays (the driver adds
    ``segment``, the layout version ``_schema`` and ``finished`` when ``stop`` ended
    the run before ``total``).
  accept: metadata -> may the run resume from this checkpoint? (None: any). A refused
    checkpoint's steps are removed, the stream's records restarted (``restart()``),
    and the run starts from segment 0.
  aside_dir: where unreadable steps are moved (ckpt.Checkpointer; default beside them).
  required: False: when no step is readable, start over instead of raising
    ckpt.CheckpointUnreadable.
  """
  subdir: str
  every: int
  keep: int | None
  to_host: Callable[[Any], Any]
  from_host: Callable[[Any], Any]
  meta: Callable[[int], dict] = lambda done: {}
  steps_per_segment: int = 1  # checkpoint step numbers count optimizer steps
  accept: Callable[[dict], bool] | None = None
  aside_dir: str | None = None
  required: bool = True


def _start(meta: dict) -> int:
  """Segments done in a restored checkpoint (layout 1 stored them as 'epoch')."""
  writers.check_schema(meta.get(writers.SCHEMA_KEY), "a checkpoint of this workdir")
  return int(meta["segment"] if "segment" in meta else meta["epoch"])


def run(state, segment: Callable[[Any, int], tuple[Any, Any]], *, total: int,
        workdir: str, checkpoint: Checkpointing | None = None,
        evaluate: Callable[[Any, int], dict | None] | None = None, evaluate_every: int = 1,
        stream=None, steps_per_segment: int = 1, bar=None,
        on_output: Callable[[Any], None] | None = None,
        stop: Callable[[Any], bool] | None = None,
        fetch: Callable[[Any], Any] | None = None,
        on_resume: Callable[[int], None] | None = None,
        unit: str = "epoch") -> tuple[Any, dict | None]:
  """Resume, run segments ``start .. total-1`` (loop.run), evaluate and checkpoint.

  Args:
    evaluate: ``(state, segments_done) -> record`` (host), called every ``evaluate_every``
      segments, after the last one, and once for a run restored already finished;
      the record goes to ``stream`` (a metrics.MetricsLog stream: keyed, resumable)
      when it has a ``step``.
    on_output, stop, fetch: as in :func:`loop.run` (outputs one segment late).
    on_resume: called with the number of segments already done (0 for a new run)
      before the first segment.
    unit: what a segment is called in messages ("epoch").
  A resumed run says so on stderr (process 0): ``jaxdepth: resuming from epoch N of M
  (checkpoints/TAG)``. A stop request (Ctrl-C, :mod:`jaxdepth.engine.interrupt`) saves a
  checkpoint of the segments done (no evaluation) and raises
  :class:`jaxdepth.errors.Interrupted` naming it.
  Returns:
    (final state, the last evaluation's record or None).
  """
  start, ck, end = 0, None, total
  if checkpoint is not None:
    ck, restored = _restore(checkpoint, workdir, state, stream)
    if restored is not None:
      _, tree, meta = restored
      start = _start(meta)
      end = start if meta.get("finished") else total  # stopped early: nothing to run
      state = checkpoint.from_host(tree)
      if 0 < start < end and distributed.is_primary():
        _say(f"jaxdepth: resuming from {unit} {start} of {total} ({checkpoint.subdir})")
  if on_resume is not None:
    on_resume(start)
  if bar is not None:  # a PhaseLines (stderr not a terminal) counts them silently
    getattr(bar, "resumed", bar.update)(start * steps_per_segment)
  last: dict = {}
  phase = getattr(bar, "phase", None)  # PhaseLines: one line per analysis / checkpoint

  def do_evaluate(state, done):
    if phase is not None:
      phase("analysing")
    record = evaluate(state, done)
    if stream is not None and record is not None and "step" in record:
      stream.write(record)
    last["record"] = record

  def save(state, done):
    if phase is not None:
      phase("writing checkpoint")
    meta = {**checkpoint.meta(done), "segment": done, writers.SCHEMA_KEY: writers.SCHEMA}
    if stopped:
      meta["finished"] = True
    ck.save(done * checkpoint.steps_per_segment, checkpoint.to_host(state), meta)

  stopped: list = []  # set when ``stop`` ended the loop (before the last hooks run)

  def stop_early(host) -> bool:
    if stop(host):
      stopped.append(True)
      return True
    return False

  hooks = []
  if evaluate is not None:
    hooks.append(loop.Hook(evaluate_every, do_evaluate, on_interrupt=False))
  if ck is not None:
    hooks.append(loop.Hook(checkpoint.every, save))
  try:
    state, _ = loop.run(state, segment, start=start, total=end, hooks=hooks, bar=bar,
                        steps_per_segment=steps_per_segment, on_output=on_output,
                        stop=stop_early if stop is not None else None, fetch=fetch)
  except Interrupted as e:
    raise Interrupted(e.done, e.total, unit,
                      checkpoint.subdir if checkpoint is not None else None) from None
  else:
    if evaluate is not None and "record" not in last:  # restored finished: evaluate it
      do_evaluate(state, end)
  finally:
    if ck is not None:
      ck.close()
  return state, last.get("record")


def _restore(checkpoint: Checkpointing, workdir: str, state, stream):
  """(Checkpointer, (step, host tree, meta) of the newest readable step or None); a
  step ``accept`` refuses (checked on its metadata before its arrays, whose shapes may
  differ) is removed with its directory, and the run starts over."""
  make = lambda: ckpt.Checkpointer(workdir, max_to_keep=checkpoint.keep,
                                   subdir=checkpoint.subdir, aside_dir=checkpoint.aside_dir)
  if checkpoint.accept is not None:
    newest = ckpt.newest_meta(os.path.join(workdir, checkpoint.subdir))
    if newest is not None and newest[1] is not None and not checkpoint.accept(newest[1]):
      _start_over(checkpoint, workdir, stream)
  ck = make()
  restored = ck.restore_latest_readable(target=checkpoint.to_host(state),
                                        required=checkpoint.required)
  if restored is not None and checkpoint.accept is not None and not checkpoint.accept(
      restored[2]):  # an older readable step (the newest was unreadable) of another run
    ck.close()
    _start_over(checkpoint, workdir, stream)
    ck, restored = make(), None
  return ck, restored


def _start_over(checkpoint: Checkpointing, workdir: str, stream) -> None:
  if distributed.is_primary():
    _say(f"jaxdepth: {checkpoint.subdir} holds another run's checkpoint; starting over")
    shutil.rmtree(os.path.join(workdir, checkpoint.subdir), ignore_errors=True)
  distributed.barrier(f"jaxdepth-start-over-{checkpoint.subdir}")
  if stream is not None and hasattr(stream, "restart"):
    stream.restart()


def _say(line: str) -> None:
  """One line on stderr, above a progress bar if one is showing."""
  progress_lib.tqdm_class().write(line, file=sys.stderr)
