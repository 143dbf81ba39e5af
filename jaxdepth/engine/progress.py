"""Progress on stderr: a tqdm bar on a terminal or in a notebook (tqdm.auto picks the
widget bar where ipywidgets exist), one line per phase anywhere else (a log file, a
pipe, CI)."""

from __future__ import annotations

import sys
import time
import warnings


def tqdm_class():
  """tqdm.auto's class: the notebook (widget) bar in a Jupyter/Colab kernel that has
  ipywidgets, the plain text bar otherwise (without tqdm's warning about the widgets)."""

  from tqdm import TqdmWarning
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)  # 'IProgress not found': text bar
    from tqdm.auto import tqdm
  return tqdm


def progress(total: int, desc: str, initial: int = 0, enabled: bool = True):
  """A tqdm progress bar on stderr (disabled when not wanted; see tqdm_class); when
  stderr is not a terminal (a log file, a pipe, CI) and not a notebook's,
  :class:`PhaseLines` instead: one line per phase, no carriage-return bar updates."""
  if enabled and not _interactive_stderr():
    return PhaseLines(total, desc, initial)
  tqdm = tqdm_class()
  return tqdm(total=total, desc=desc, initial=initial, disable=not enabled,
              file=sys.stderr, dynamic_ncols=True, unit="step")


def _interactive_stderr() -> bool:
  """A terminal, or a Jupyter kernel (whose stderr is no tty but shows a bar)."""
  try:
    if sys.stderr.isatty():
      return True
  except (AttributeError, ValueError):  # replaced or closed stream
    return False
  return "ipykernel" in sys.modules


class PhaseLines:
  """Progress for a stderr that is not a terminal: one line per phase, e.g.

    jaxdepth: train d=12 w=128: compiling
    jaxdepth: train d=12 w=128: training (first segment, compilation included: 9.1 s)
    jaxdepth: train d=12 w=128: analysing at step 2500 of 10000
    jaxdepth: train d=12 w=128: writing checkpoint at step 2500 of 10000
    jaxdepth: train d=12 w=128: done, 10000 of 10000 steps in 91.0 s

  (a bar that is never given a description of its own starts with its first
  ``training`` line). The subset of tqdm's interface the experiments use (update,
  set_description, set_postfix, close, n, total), plus :meth:`phase` (the driver's
  evaluations and checkpoints) and :meth:`resumed` (steps a resumed run already did).
  """

  def __init__(self, total: int, desc: str, initial: int = 0, stream=None):
    self.total, self.desc, self.n = total, desc, initial
    self.stream = stream
    self.t0 = self.t_phase = time.time()
    self._training = self._closed = False

  def _say(self, what: str) -> None:
    print(f"jaxdepth: {self.desc}: {what}", file=self.stream or sys.stderr, flush=True)

  def _at(self) -> str:
    return f"step {self.n} of {self.total}" if self.total else f"step {self.n}"

  def set_description(self, desc: str, refresh: bool = True) -> None:
    self.desc, self._training, self.t_phase = desc, False, time.time()
    self._say("compiling")

  def resumed(self, n: int) -> None:
    self.n += n

  def update(self, n: int = 1) -> None:
    if not n:
      return
    self.n += n
    if not self._training:
      self._training = True
      self._say(f"training (first segment, compilation included: "
                f"{time.time() - self.t_phase:.1f} s)")

  def phase(self, name: str) -> None:
    """A phase inside the loop (``analysing``, ``writing checkpoint``) starts now."""
    self._say(f"{name} at {self._at()}")

  def set_postfix(self, *args, **kwargs) -> None:
    pass

  def refresh(self) -> None:
    pass

  def close(self) -> None:
    if self._closed:
      return
    self._closed = True
    took = time.time() - self.t0
    if self.total and self.n < self.total:
      self._say(f"stopped at {self._at()} ({took:.1f} s)")
    else:
      self._say(f"done, {self._at()[len('step '):]} steps in {took:.1f} s")
