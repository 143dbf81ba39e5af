"""Every orbax call of jaxdepth lives here.

Checkpoints are pure array trees (``StandardSave``) plus JSON metadata
(``JsonSave``), so they restore without any model code: the offline bound
calculator relies on this.

Damaged checkpoints are not fatal. :meth:`Checkpointer.restore` (and
:meth:`Checkpointer.restore_latest_readable`) try the steps newest first; a step
that cannot be read (array data, metadata, missing files, no commit marker) is
reported in one warning line naming the step and the reason, renamed aside to
``<step>.unreadable-<reason>-<time>`` (which orbax does not list as a step, so
nothing is lost and nothing is read again), and the next older step is tried.
In a multi-process job the processes agree on each step (one collective) and only
process 0 renames it, after every process has finished reading it.
When steps exist but none is readable, :class:`CheckpointUnreadable` (a one-line
ConfigError: exit 2 from the CLI). A save that fails (disk full, permission)
removes its partial step and raises :class:`CheckpointWriteError` (an OSError
naming the step directory and errno); the previous steps stay readable.
"""

from __future__ import annotations

import contextlib
import errno as errno_lib
import json
import logging
import os
import re
import shutil
import time
from typing import Any

import orbax.checkpoint as ocp

from jaxdepth.engine import distributed
from jaxdepth.engine.writers import WriteError, to_jsonable
from jaxdepth.errors import ConfigError

log = logging.getLogger("jaxdepth.ckpt")

ITEMS = ("state", "meta")
COMMIT_MARKER = "commit_success.txt"   # orbax >= 0.11 writes it into every finished step
TMP_MARKER = ".orbax-checkpoint-tmp"   # an unfinished save (orbax ignores these)
ASIDE_MARKER = ".unreadable-"          # a step set aside by this module


class CheckpointUnreadable(ConfigError):
  """No checkpoint step can be read (or an explicitly requested one cannot)."""

  def __init__(self, directory: str, message: str):
    self.field = "checkpoint"
    self.directory = directory
    ValueError.__init__(self, message)  # no "config." prefix: it is not a config field


class CheckpointWriteError(WriteError):
  """A checkpoint save failed (``errno``, ``strerror``, ``filename`` = step dir)."""


class _Damaged(Exception):
  """Internal: the step at hand is unreadable for ``slug`` (``reason`` for humans)."""

  def __init__(self, slug: str, reason: str):
    super().__init__(reason)
    self.slug, self.reason = slug, reason


def _closed_loop_noise(u) -> bool:
  """After a failed read, tensorstore still completes the other reads of the step
  and posts them to orbax's event loop, which is closed by then: asyncio raises in
  that callback thread and Python prints the traceback, once per read."""
  tb = u.exc_traceback
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return (isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed"
          and tb is not None and "asyncio" in tb.tb_frame.f_code.co_filename)


def _drop_closed_loop_noise() -> None:
  import sys
  prev = sys.unraisablehook
  if getattr(prev, "_jaxdepth", False):
    return

  def hook(u):
    if not _closed_loop_noise(u):
      prev(u)

  hook._jaxdepth = True
  sys.unraisablehook = hook


def _join_orbax_threads(timeout: float = 60.0) -> None:
  """Orbax writes array data in background threads; when one part of a save fails,
  the others go on (and log their own failure) after the save raised."""
  import threading
  try:
    from orbax.checkpoint._src.futures import future as ocp_future
    kind = ocp_future._SignalingThread  # pylint: disable=protected-access
  except (ImportError, AttributeError):
    return
  deadline = time.time() + timeout
  for t in threading.enumerate():
    if isinstance(t, kind) and t is not threading.current_thread():
      t.join(max(0.0, deadline - time.time()))


@contextlib.contextmanager
def _quiet_orbax():
  """Orbax logs failures (with tracebacks) before raising them: we report them."""
  _drop_closed_loop_noise()
  loggers = [logging.getLogger(n) for n in ("absl", "asyncio")]
  levels = [lg.level for lg in loggers]
  for lg in loggers:
    lg.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    for lg, lv in zip(loggers, levels):
      lg.setLevel(lv)


def _short(e: BaseException, base: str = "", limit: int = 180) -> str:
  """One line: the error type and message, paths relative to ``base``, long
  tensorstore chains cut to their status code and final cause."""
  msg = re.split(r"\s*\[tensorstore_spec", " ".join(str(e).split()))[0]
  if base:
    msg = msg.replace(base.rstrip("/") + "/", "")
  if len(msg) > limit:
    code = re.match(r"[A-Z_]{4,}: ", msg)
    head = code.group(0) if code else ""
    msg = head + "..." + msg[-(limit - len(head) - 3):]
  return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


# Tensorstore reports damaged or missing files as a ValueError with a status code.
_TS_DAMAGE = re.compile(r"\b(DATA_LOSS|OUT_OF_RANGE|FAILED_PRECONDITION|NOT_FOUND)\b|"
                        r"Error (decoding|reading)")


def _classify(e: Exception, base: str) -> _Damaged | None:
  """The damage an orbax restore error shows, or None (a bug or mismatch: re-raise)."""
  why = _short(e, base)
  if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)):
    return _Damaged("metadata", f"metadata unreadable ({why})")
  if isinstance(e, FileNotFoundError):
    return _Damaged("missing-files", f"missing files ({why})")
  if isinstance(e, ValueError) and _TS_DAMAGE.search(str(e)):
    text = str(e)
    if "NOT_FOUND" in text:
      return _Damaged("missing-files", f"missing files ({why})")
    if "Invalid JSON" in text:
      return _Damaged("metadata", f"metadata unreadable ({why})")
    return _Damaged("array-data", f"array data unreadable ({why})")
  return None


def _errno_of(e: BaseException) -> tuple[int | None, str | None]:
  """(errno, file) of a failed write: an OSError, or tensorstore's message."""
  if isinstance(e, OSError) and e.errno:
    return e.errno, e.filename
  text = str(e)
  m = re.search(r"os_error_code='?(\d+)|\[Errno (\d+)\]", text)
  code = int(m.group(1) or m.group(2)) if m else None
  if code is None:
    for c, words in ((errno_lib.ENOSPC, "No space left on device"),
                     (errno_lib.EACCES, "Permission denied"),
                     (errno_lib.EROFS, "Read-only file system"),
                     (errno_lib.EDQUOT, "Disk quota exceeded")):
      if words in text:
        code = c
        break
  f = re.search(r'Failed writing: "([^"]+)"', text)
  return code, f.group(1) if f else None


class Checkpointer:
  """Periodic and final checkpoints of ``(arrays, metadata)`` under ``DIR/checkpoints``.

  ``aside_dir`` is where unreadable steps are moved (default: next to the steps).
  """

  def __init__(self, workdir: str, max_to_keep: int | None = 2, subdir: str = "checkpoints",
               aside_dir: str | None = None):
    self.directory = os.path.abspath(os.path.join(workdir, subdir))
    self.aside_dir = os.path.abspath(aside_dir) if aside_dir else self.directory
    self._max_to_keep = max_to_keep
    self._mngr = self._manager()

  def _manager(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

  def _reload(self) -> None:
    """Orbax caches its step list: re-create the manager after we moved steps."""
    with contextlib.suppress(Exception):
      self._mngr.close()
    self._mngr = self._manager()

  # ---------------------------------------------------------------------- save
  def save(self, step: int, state: Any, meta: dict | None = None, force: bool = True) -> None:
    step = int(step)
    try:
      with _quiet_orbax():
        self._mngr.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(to_jsonable(meta or {}))), force=force)
        self._mngr.wait_until_finished()
    except Exception as e:
      code, _ = _errno_of(e)
      with contextlib.suppress(Exception), _quiet_orbax():
        _join_orbax_threads()  # writes of the failed save still in flight end first
        self._mngr.wait_until_finished()
        self._mngr.close()
      self._discard_partial(step)
      self._mngr = self._manager()
      if code is None:
        raise
      prev = [s for s in self.all_steps() if s != step]
      kept = (f"the previous checkpoint (step {max(prev)}) is kept; re-run the same "
              "command to resume from it" if prev else "no earlier checkpoint")
      raise CheckpointWriteError(code, os.strerror(code),
                                 os.path.join(self.directory, str(step)),
                                 hint=f"checkpoint step {step} not written; {kept}") from None

  def _discard_partial(self, step: int) -> None:
    """Remove what a failed save of ``step`` left (its tmp dir, an uncommitted step)."""
    if not os.path.isdir(self.directory):
      return
    for name in os.listdir(self.directory):
      path = os.path.join(self.directory, name)
      if name.startswith(f"{step}{TMP_MARKER}"):
        shutil.rmtree(path, ignore_errors=True)
      elif name == str(step) and not os.path.exists(os.path.join(path, COMMIT_MARKER)):
        shutil.rmtree(path, ignore_errors=True)

  # ------------------------------------------------------------------- listing
  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def set_aside(self) -> list[str]:
    """Names of the steps set aside as unreadable (now or by an earlier run)."""
    if not os.path.isdir(self.aside_dir):
      return []
    return sorted(n for n in os.listdir(self.aside_dir) if ASIDE_MARKER in n)

  # ------------------------------------------------------------------- restore
  def _check_step(self, step: int) -> None:
    """Cheap structural checks orbax does not make on a local file system."""
    path = os.path.join(self.directory, str(step))
    for item in ITEMS:
      if not os.path.isdir(os.path.join(path, item)):
        raise _Damaged("missing-files", f"missing files (no {item}/ directory)")
    markers = [os.path.exists(os.path.join(path, COMMIT_MARKER))] + [
        os.path.exists(os.path.join(path, item, COMMIT_MARKER)) for item in ITEMS]
    others = any(os.path.exists(os.path.join(self.directory, str(s), COMMIT_MARKER))
                 for s in self.all_steps() if s != step)
    # Every finished save carries markers; a step without (while its items or other
    # steps have them) was not committed. No marker anywhere: an older orbax format.
    if not all(markers) and (any(markers) or others):
      missing = [p for p, ok in zip(["", *(f"{i}/" for i in ITEMS)], markers) if not ok]
      raise _Damaged("no-commit-marker",
                     f"no commit marker ({', '.join(m + COMMIT_MARKER for m in missing)}): "
                     "its save did not finish")

  def _restore_step(self, step: int, target: Any) -> tuple[int, Any, dict]:
    state_args = (ocp.args.StandardRestore(target) if target is not None
                  else ocp.args.StandardRestore())
    with _quiet_orbax():
      out = self._mngr.restore(step, args=ocp.args.Composite(
          state=state_args, meta=ocp.args.JsonRestore()))
    meta = out["meta"]
    if not isinstance(meta, dict):
      raise _Damaged("metadata", f"metadata is a {type(meta).__name__}, not an object")
    return step, out["state"], dict(meta)

  def _try_step(self, step: int, target: Any) -> tuple[int, Any, dict]:
    """Restore ``step`` or raise _Damaged (any other error propagates unchanged)."""
    self._check_step(step)
    try:
      return self._restore_step(step, target)
    except _Damaged:
      raise
    except Exception as e:
      damage = _classify(e, os.path.join(self.directory, str(step)))
      if damage is None:
        raise
      raise damage from e

  def _move_aside(self, step: int, slug: str) -> str:
    os.makedirs(self.aside_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = os.path.join(self.aside_dir, f"{step}{ASIDE_MARKER}{slug}-{stamp}")
    dest, k = base, 1
    while os.path.exists(dest):
      k += 1
      dest = f"{base}-{k}"
    os.replace(os.path.join(self.directory, str(step)), dest)
    return dest

  def restore_latest_readable(self, target: Any = None, required: bool = True
                              ) -> tuple[int, Any, dict] | None:
    """(step, state, meta) of the newest readable step; None if no step was saved.

    Unreadable steps are warned about (one line each) and renamed aside. When no
    step is readable and some are (or were earlier) set aside: CheckpointUnreadable
    if ``required``, else None (the caller recomputes what the checkpoint held).
    """
    moved = []  # (step, reason, new name)

    def report(outcome: str) -> None:
      self._reload()
      if not distributed.is_primary():
        return  # one warning per job, not one per process
      for step, reason, dest in moved:  # one line per unreadable step
        log.warning("checkpoint step %d in %s cannot be read: %s; kept aside as %s; %s",
                    step, self.directory, reason, dest, outcome)

    for step in sorted(self.all_steps(), reverse=True):
      try:
        got, damage = self._try_step(step, target), None
      except _Damaged as d:
        got, damage = None, d
      # In a multi-process job every process reads the same shared step; they agree
      # on it before anyone moves it, and only process 0 renames it (after all have
      # finished reading, so no process reads a directory that is being moved).
      if distributed.all_ok(damage is None):
        if moved:
          report(f"using step {step}")
        return got
      damage = damage or _Damaged("other-process", "unreadable on another process")
      distributed.barrier(f"jaxdepth-ckpt-read-{step}")
      dest = self._move_aside(step, damage.slug) if distributed.is_primary() else ""
      distributed.barrier(f"jaxdepth-ckpt-aside-{step}")
      moved.append((step, damage.reason, os.path.basename(dest)))
    aside = self.set_aside()
    if moved:
      report("no readable step left" + ("; recomputing it" if not required else ""))
    if not aside or not required:
      return None
    shown = ", ".join(aside[:4]) + (f" and {len(aside) - 4} more" if len(aside) > 4 else "")
    raise CheckpointUnreadable(
        self.directory,
        f"no readable checkpoint in {self.directory} (unreadable steps kept aside in "
        f"{self.aside_dir}: {shown}); delete that directory to start these runs over, "
        "or use a new --workdir")

  def restore(self, step: int | None = None, target: Any = None) -> tuple[int, Any, dict] | None:
    """Returns (step, state, meta) of ``step`` (default: the newest readable), or None
    if none was saved.

    With ``target`` (a tree of arrays or ShapeDtypeStructs) the state comes back
    with that structure and sharding; without it, as plain arrays (no model code).
    An explicit ``step`` that cannot be read raises CheckpointUnreadable (nothing
    is moved).
    """
    if step is None:
      return self.restore_latest_readable(target)
    try:
      return self._try_step(int(step), target)
    except _Damaged as d:
      raise CheckpointUnreadable(
          self.directory, f"checkpoint step {step} in {self.directory} cannot be "
          f"read: {d.reason}") from None

  def close(self) -> None:
    self._mngr.close()


def has_checkpoints(workdir: str, subdir: str = "checkpoints") -> bool:
  d = os.path.join(workdir, subdir)
  return os.path.isdir(d) and any(name.isdigit() for name in os.listdir(d))


def has_committed_step(directory: str) -> bool:
  """Whether any checkpoint directory below ``directory`` holds a finished step."""
  for _root, dirs, _ in os.walk(directory):
    if any(d.isdigit() for d in dirs):
      return True
    dirs[:] = [d for d in dirs if not d.isdigit() and TMP_MARKER not in d]
  return False
