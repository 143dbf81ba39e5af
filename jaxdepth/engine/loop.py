"""The loop every experiment runs: compiled segments, hooks at a cadence, early stop.

An experiment supplies one jitted, donated *segment* over all its runs (an SGD epoch,
a block of full-batch GD steps) and hooks (evaluate, checkpoint) that run every
``period`` segments and after the last one. The segment's own outputs (a loss per
run, logged records, a "finished" flag per run) are fetched one segment late, after
the next segment has been dispatched, so the host never stalls the device (nanodo's
pattern); ``stop`` is decided on those fetched outputs, never on the device state.

  state, done = loop.run(state, segment, start=0, total=epochs, bar=bar,
                         steps_per_segment=spe, hooks=[Hook(every, evaluate),
                                                       Hook(every, save)])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxdepth.engine import interrupt
from jaxdepth.errors import Interrupted


class Hook(NamedTuple):
  """``fn(state, done)`` after every ``period``-th segment and after the last;
  ``on_interrupt``: also after the segment a stop request (Ctrl-C) ends the loop at
  (a checkpoint save does; an evaluation need not)."""
  period: int
  fn: Callable[[Any, int], Any]
  on_interrupt: bool = True


def run(state, segment: Callable[[Any, int], tuple[Any, Any]], *, start: int, total: int,
        hooks: tuple[Hook, ...] | list[Hook] = (), bar=None, steps_per_segment: int = 1,
        on_output: Callable[[Any], None] | None = None,
        stop: Callable[[Any], bool] | None = None,
        fetch: Callable[[Any], Any] | None = None) -> tuple[Any, int]:
  """Run segments ``start .. total-1``; returns (state, segments completed).

  Args:
    segment: ``(state, index) -> (state, output)``; ``output`` may be None.
    hooks: called in order after a segment whose count is a multiple of the period,
      and after the last segment (also when ``stop`` ends the loop early).
    on_output: receives each segment's output as host numpy, one segment late, and
      the last one at the end.
    stop: ``host output -> bool``, evaluated on each segment's fetched output, one
      segment late like ``on_output`` (e.g. "every run finished"): the host never
      waits on the device between segments. When it says stop for segment i's
      output, segment i+1 has already been dispatched; its state is kept (an
      experiment makes a segment after its runs finished a no-op, e.g. frozen runs)
      and its output is dropped, so results are those of segments start..i, and the
      count returned is i+1.
    A stop request (:mod:`jaxdepth.engine.interrupt`, Ctrl-C) ends the loop after the
    running segment: the hooks marked ``on_interrupt`` run for it as for a last
    segment, the outputs are delivered, then :class:`jaxdepth.errors.Interrupted`
    (done, total) is raised (not when that segment was the last anyway).
    fetch: brings an output to the host (default ``jax.device_get``; a sharded
      experiment passes ``Placement.gather``, which also drops padded runs).
  """
  fetch = fetch or (lambda t: jax.tree.map(np.asarray, jax.device_get(t)))
  pending, done, stopped, interrupted = None, start, False, False
  with interrupt.loop_running():
    for i in range(start, total):
      state, out = segment(state, i)
      if pending is not None:  # segment i-1's output, while segment i runs
        host = fetch(pending)
        if on_output is not None:
          on_output(host)
        stopped = stop is not None and bool(stop(host))
      pending = None if stopped else out
      if bar is not None:
        bar.update(steps_per_segment)
      done = i if stopped else i + 1
      last = stopped or done == total
      interrupted = not last and interrupt.requested()
      for h in hooks:
        if last or done % h.period == 0 or (interrupted and h.on_interrupt):
          h.fn(state, done)
      if last or interrupted:
        break
    if pending is not None:
      host = fetch(pending)
      if on_output is not None:
        on_output(host)
  if interrupted:
    raise Interrupted(done, total)
  return state, done


def loss_postfix(bar) -> Callable[[Any], None]:
  """An ``on_output`` that shows the mean finite loss of the runs on a progress bar."""

  def show(loss_R):
    if bar is None:
      return
    finite = np.asarray(loss_R)[np.isfinite(loss_R)]
    bar.set_postfix(loss=f"{finite.mean():.4f}" if finite.size else "diverged")

  return show
