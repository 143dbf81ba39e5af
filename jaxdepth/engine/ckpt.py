"""Every orbax call of jaxdepth lives here.

Checkpoints are pure array trees (``StandardSave``) plus JSON metadata (``JsonSave``), so
they restore without any model code: the offline bound calculator relies on this.

Damaged checkpoints are not fatal: restoring tries the steps newest first, warns in one
line about each unreadable one (the step, the reason) and renames it aside to
``<step>.unreadable-<reason>-<time>`` (orbax does not list it; nothing is lost or read
again); when none is readable, :class:`CheckpointUnreadable` (a one-line ConfigError: exit 2
from the CLI). A failed save removes its partial step and raises
:class:`CheckpointWriteError`; the previous steps stay readable. :func:`newest_meta` reads
the newest step's metadata without checking or moving anything.

Only orbax's public API is used and no error text is interpreted. A step is unreadable when
its files differ from the list (size, CRC-32) ``save`` wrote into it, or when restoring it
raises anything (but a ``target`` it does not fit). A failed save's errno is an OSError's in
the error's cause/context chain, else what the directory answers (a probe write's OSError,
or too little free space: ENOSPC).
"""

from __future__ import annotations

import contextlib
import errno as errno_lib
import logging
import os
import shutil
import threading
import time
import zlib
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxdepth.engine import distributed, writers
from jaxdepth.errors import ConfigError

log = logging.getLogger("jaxdepth.ckpt")

ITEMS = ("state", "meta")
COMMIT_MARKER = "commit_success.txt"   # orbax >= 0.11 writes it into every finished step
TMP_MARKER = ".orbax-checkpoint-tmp"   # an unfinished save (orbax ignores these)
ASIDE_MARKER = ".unreadable-"          # a step set aside by this module
FILE_LIST = "jaxdepth_files.json"      # size and CRC-32 of a finished step's files


class CheckpointUnreadable(ConfigError):
  """No checkpoint step can be read (or an explicitly requested one cannot)."""

  def __init__(self, directory: str, message: str):
    self.field = "checkpoint"
    self.directory = directory
    ValueError.__init__(self, message)  # no "config." prefix: it is not a config field


class CheckpointWriteError(writers.WriteError):
  """A checkpoint save failed (``errno``, ``strerror``, ``filename`` = step dir)."""


class _Damaged(Exception):
  """Internal: the step at hand is unreadable for ``slug`` (``reason`` for humans)."""

  def __init__(self, slug: str, reason: str):
    super().__init__(reason)
    self.slug, self.reason = slug, reason


@contextlib.contextmanager
def _quiet_orbax():
  """Orbax logs failures (with tracebacks) before raising them: we report them."""
  levels = [(lg, lg.level) for lg in map(logging.getLogger, ("absl", "asyncio"))]
  try:
    for lg, _ in levels:
      lg.setLevel(logging.CRITICAL)
    yield
  finally:
    for lg, lv in levels:
      lg.setLevel(lv)


def _short(e: BaseException, base: str = "", limit: int = 180) -> str:
  """One line for humans (shown, never interpreted): the error type and the start of
  its message, paths relative to ``base``, without tensorstore's long JSON spec."""
  msg = " ".join(str(e).split()).split(" [tensorstore_spec", 1)[0]
  msg = msg.replace(base.rstrip("/") + "/", "") if base else msg
  msg = msg if len(msg) <= limit else msg[:limit - 3] + "..."
  return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _errno_in(e: BaseException) -> int | None:
  """The errno of the first OSError in ``e``, its causes, contexts and groups."""
  seen, todo = set(), [e]
  while todo:
    x = todo.pop(0)
    if x is None or id(x) in seen:
      continue
    seen.add(id(x))
    if isinstance(x, OSError) and x.errno:
      return x.errno
    todo += [x.__cause__, x.__context__, *getattr(x, "exceptions", ())]
  return None


def _write_probe(directory: str, size: int = 1 << 16) -> int | None:
  """The errno of writing a file in ``directory`` (no space, permission...), or None."""
  path = os.path.join(directory, f".jaxdepth-write-probe-{os.getpid()}")
  try:
    with open(path, "wb") as f:
      f.write(b"\0" * size)
      f.flush()
      os.fsync(f.fileno())
  except OSError as e:
    return e.errno
  finally:
    with contextlib.suppress(OSError):
      os.remove(path)
  return None


def _free_bytes(directory: str) -> int:
  st = os.statvfs(directory)
  return st.f_bavail * st.f_frsize


def _file_list(path: str, names=None) -> dict:
  """{file: [size, CRC-32]} of those of ``names`` (default: all item files) present."""
  if names is None:
    names = [os.path.relpath(os.path.join(r, n), path) for item in ITEMS
             for r, _, ns in os.walk(os.path.join(path, item)) for n in ns]
  files = {}
  for rel in names:
    crc, full = 0, os.path.join(path, rel)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), open(full, "rb") as f:
      while chunk := f.read(1 << 20):
        crc = zlib.crc32(chunk, crc)
      files[rel] = [os.path.getsize(full), crc]
  return files


def _names(paths: list[str], most: int = 3) -> str:
  return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most
                                    else "")


class Checkpointer:
  """Periodic and final checkpoints of ``(arrays, metadata)`` under ``DIR/checkpoints``;
  ``aside_dir`` is where unreadable steps are moved (default: next to the steps)."""

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
    step, before = int(step), set(threading.enumerate())
    if step in self.all_steps():  # saved again (a loop stopped at a count just saved)
      self._mngr.delete(step)
    try:
      with _quiet_orbax():
        self._mngr.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(writers.to_jsonable(meta or {}))), force=force)
        self._mngr.wait_until_finished()
    except Exception as e:
      self._abandon(before)
      # The errno: an OSError the save raised (or one it was raised from), else what
      # the directory answers now, before the partial step is removed and frees space
      # (less room than the step's arrays and 1 MiB for orbax's own files: ENOSPC).
      code = _errno_in(e)
      if code is None and os.path.isdir(self.directory):
        need = sum(getattr(a, "nbytes", 0) for a in jax.tree.leaves(state)) + (1 << 20)
        code = _write_probe(self.directory) or (
            errno_lib.ENOSPC if _free_bytes(self.directory) < need else None)
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
    if distributed.is_primary():
      self._write_file_list(step)

  def _abandon(self, before: set, timeout: float = 60.0) -> None:
    """After a failed save, let the writes of its other parts end (orbax raises at
    once; they go on in the non-daemon threads it started) and close the manager, so
    that nothing writes into the partial step once it is removed."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(Exception), _quiet_orbax():
      self._mngr.wait_until_finished()
      for t in set(threading.enumerate()) - before:
        if not t.daemon and t is not threading.current_thread():
          t.join(max(0.0, deadline - time.monotonic()))
      self._mngr.close()

  def _discard_partial(self, step: int, passes: int = 5) -> None:
    """Remove a failed save's leftovers, again while a late write thread re-creates them."""
    for i in range(passes):
      names = os.listdir(self.directory) if os.path.isdir(self.directory) else []
      left = [os.path.join(self.directory, n) for n in names if n.startswith(
          f"{step}{TMP_MARKER}") or (n == str(step) and not os.path.exists(
              os.path.join(self.directory, n, COMMIT_MARKER)))]
      for path in left:
        shutil.rmtree(path, ignore_errors=True)
      if not left:
        return
      time.sleep(0.05 * (i + 1))

  def _write_file_list(self, step: int) -> None:
    """Size and CRC-32 of the item files of a finished step. Best effort: a step
    without the list (or from an older jaxdepth) is checked by restoring it only."""
    path = os.path.join(self.directory, str(step))
    try:
      writers.write_json(os.path.join(path, FILE_LIST), _file_list(path))
    except OSError as e:
      log.debug("no file list for checkpoint step %d: %s", step, e)

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
    """Checks of the step's files that orbax does not make (before orbax reads it:
    a read that fails part-way leaves tensorstore reads behind that end in noise)."""
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
    try:
      saved = dict(writers.read_json(os.path.join(path, FILE_LIST)))
    except (OSError, ValueError, TypeError):
      return  # no file list: only restoring it tells
    now = _file_list(path, saved)
    missing = sorted(set(saved) - set(now))
    changed = sorted(n for n in now if now[n] != saved[n])
    if missing:
      raise _Damaged("missing-files", f"missing files ({_names(missing)})")
    if changed:
      what = "metadata" if any(n.startswith("meta/") for n in changed) else "array data"
      raise _Damaged(what.replace(" ", "-"), f"{what} unreadable ({_names(changed)} "
                     "changed since it was saved)")

  def _restore_items(self, step: int, **items) -> dict:
    with _quiet_orbax():
      return self._mngr.restore(step, args=ocp.args.Composite(**items))

  def _try_step(self, step: int, target: Any) -> tuple[int, Any, dict]:
    """Restore ``step`` or raise _Damaged: any error reading it makes it unreadable,
    but a ``target`` it does not fit (it restores without: a caller's bug) propagates."""
    self._check_step(step)
    short = lambda e: _short(e, os.path.join(self.directory, str(step)))
    try:
      meta = self._restore_items(step, meta=ocp.args.JsonRestore())["meta"]
    except Exception as e:
      raise _Damaged("metadata", f"metadata unreadable ({short(e)})") from e
    if not isinstance(meta, dict):
      raise _Damaged("metadata", f"metadata is a {type(meta).__name__}, not an object")
    try:
      state = self._restore_items(step, state=ocp.args.StandardRestore(target))["state"]
    except Exception as e:
      if target is not None and self._readable(step):
        raise  # the step reads without the target: the target is wrong, not the step
      raise _Damaged("array-data", f"array data unreadable ({short(e)})") from e
    return step, state, dict(meta)

  def _readable(self, step: int) -> bool:
    with contextlib.suppress(Exception):
      return self._restore_items(step, state=ocp.args.StandardRestore()) is not None
    return False

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
    Unreadable steps are warned about (one line each) and renamed aside. When no step is
    readable and some are (or were earlier) set aside: CheckpointUnreadable if
    ``required``, else None (the caller recomputes what the checkpoint held)."""
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
    raise CheckpointUnreadable(
        self.directory,
        f"no readable checkpoint in {self.directory} (unreadable steps kept aside in "
        f"{self.aside_dir}: {_names(aside, 4)}); delete that directory to start these "
        "runs over, or use a new --workdir")

  def restore(self, step: int | None = None, target: Any = None) -> tuple[int, Any, dict] | None:
    """Returns (step, state, meta) of ``step`` (default: the newest readable), or None
    if none was saved. With ``target`` (a tree of arrays or ShapeDtypeStructs) the state
    comes back with that structure and sharding; without it, as plain arrays (no model
    code). An explicit ``step`` that cannot be read raises CheckpointUnreadable (nothing
    is moved)."""
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


def newest_meta(directory: str) -> tuple[int, dict | None] | None:
  """Read-only (nothing created, checked or moved): (the newest step in ``directory``, its
  metadata or None if that cannot be read), or None without steps."""
  step = meta = None
  if os.path.isdir(directory):
    opts = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    with _quiet_orbax(), contextlib.closing(
        ocp.CheckpointManager(directory, options=opts, item_names=ITEMS)) as mngr:
      step = mngr.latest_step()
      with contextlib.suppress(Exception):  # unreadable: a restore will tell why
        meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  return None if step is None else (step, dict(meta) if isinstance(meta, dict) else None)
