"""A stop request (Ctrl-C) that training loops honour at their next segment boundary.

The ``jaxdepth`` command installs :func:`handling_sigint` around a training run: the
first SIGINT only sets the flag, which :func:`jaxdepth.engine.loop.run` checks after each
segment (its hooks then run as after a last segment, the checkpoint save included, and
it raises :class:`jaxdepth.errors.Interrupted`); a second SIGINT raises
KeyboardInterrupt as usual. While no loop is running (data loading, compiling) the first
SIGINT raises KeyboardInterrupt at once. Imports nothing of jax.
"""

from __future__ import annotations

import contextlib
import signal

_state = {"requested": False, "loops": 0}


def requested() -> bool:
  """Has a stop been requested since the handler was installed?"""
  return _state["requested"]


def request() -> None:
  _state["requested"] = True


def clear() -> None:
  _state["requested"] = False


@contextlib.contextmanager
def loop_running():
  """Marks a loop that checks :func:`requested` (loop.run wraps its segments in it)."""
  _state["loops"] += 1
  try:
    yield
  finally:
    _state["loops"] -= 1


def _handler(signum, frame):
  if _state["requested"] or not _state["loops"]:
    raise KeyboardInterrupt
  request()


@contextlib.contextmanager
def handling_sigint():
  """First Ctrl-C: stop at the next segment boundary; second: KeyboardInterrupt."""
  clear()
  try:
    previous = signal.signal(signal.SIGINT, _handler)
  except ValueError:  # not the main thread: leave SIGINT alone
    yield
    return
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
    clear()
