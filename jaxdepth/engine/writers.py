"""Run-directory I/O: config.json, metrics.jsonl, TensorBoard event files, summary.json,
CSV, progress bars.

Nothing here imports TensorFlow (event files are written with tensorboardX) or
initializes jax. All writes of whole files are atomic (temporary
file + rename) so an interrupted run never leaves a truncated summary. A write that
fails (disk full, permission) removes its temporary file, keeps the previous file,
and raises :class:`WriteError`: an OSError naming the file and errno, which the CLI
prints as one line.
"""

from __future__ import annotations

import contextlib
import csv
import errno as errno_lib
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from jaxdepth.errors import ConfigError


# Fields that may change between a run and its resumption without making the
# stored checkpoints meaningless (they only affect logging and bookkeeping).
def to_jsonable(x: Any) -> Any:
  """Plain Python for json.dumps: arrays to lists, non-finite floats to None."""
  if isinstance(x, Mapping):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  if hasattr(x, "tolist") and hasattr(x, "dtype"):
    return to_jsonable(np.asarray(x).tolist())
  if isinstance(x, (np.floating, float)):
    x = float(x)
    return x if math.isfinite(x) else None
  if isinstance(x, np.integer):
    return int(x)
  if isinstance(x, np.bool_):
    return bool(x)
  return x


class WriteError(OSError):
  """A failed write: ``errno``, ``strerror``, ``filename`` (the file or directory) and
  ``hint`` (what is kept, how to go on). ``str()`` is one line."""

  def __init__(self, code: int, strerror: str, filename: str, hint: str = ""):
    super().__init__(code, strerror, filename)
    self.hint = hint

  def __str__(self) -> str:
    name = errno_lib.errorcode.get(self.errno, "?")
    hint = f"; {self.hint}" if self.hint else ""
    return f"cannot write {self.filename}: {self.strerror} (errno {self.errno} {name}){hint}"


@contextlib.contextmanager
def _atomic(path: str, mode: str = "w", **kw):
  """Write ``path.tmp`` then rename it over ``path``; on failure remove the temporary
  file (``path`` is untouched) and raise WriteError naming ``path``."""
  tmp = f"{path}.tmp"
  try:
    with open(tmp, mode, **kw) as f:
      yield f
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if not isinstance(e, OSError) or isinstance(e, WriteError) or not e.errno:
      raise
    raise WriteError(e.errno, e.strerror or os.strerror(e.errno), path,
                     hint=f"the previous {os.path.basename(path)} is kept"
                     if os.path.exists(path) else "") from None


def write_json(path: str, obj: Any) -> None:
  text = json.dumps(to_jsonable(obj), indent=1) + "\n"
  with _atomic(path) as f:
    f.write(text)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def config_to_dict(config) -> dict:
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.loads(json.dumps(to_jsonable(d)))


# The workdir layout (config.json, checkpoints, metrics.jsonl) this jaxdepth writes.
# config.json and every checkpoint's metadata carry it as "_schema"; a workdir without
# it was written before versioning (layout 1, which this version reads unchanged). A
# newer layout than this is refused, never misread. Bump it when a change makes old
# workdirs unreadable, and teach check_schema what to say about the old ones.
SCHEMA = 2
SCHEMA_KEY = "_schema"


def check_schema(found, where: str) -> None:
  """Refuse a workdir (or checkpoint) written by a newer layout than this one."""
  found = 1 if found is None else found
  if not isinstance(found, int) or found > SCHEMA:
    raise ConfigError("workdir", f"{where} was written by a newer jaxdepth (workdir "
                      f"layout {found!r}; this version reads layouts 1 to {SCHEMA}); "
                      "upgrade jaxdepth or use a new --workdir")


PROVENANCE_KEY = "_provenance"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint")


def provenance(runtime: Mapping[str, Any] | None = None) -> dict:
  """What produced a run: jaxdepth version and git commit (None outside a git
  checkout), package versions, CPU model, XLA_FLAGS, Python; ``runtime`` adds what the
  caller knows of jax's devices (backend, device_kind). Never initializes jax."""
  from importlib import metadata

  from jaxdepth.version import __version__

  def version(name):
    try:
      return metadata.version(name)
    except metadata.PackageNotFoundError:
      return None

  return {"jaxdepth": __version__, "git_commit": _git_commit(),
          "packages": {p: version(p) for p in PACKAGES},
          "backend": None, "device_kind": None, **dict(runtime or {}),
          "cpu": _cpu_model(), "xla_flags": os.environ.get("XLA_FLAGS"),
          "python": platform.python_version()}


def _git_commit() -> str | None:
  """HEAD of the git checkout jaxdepth is imported from (None when it is not one)."""
  pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    out = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=pkg,
                         capture_output=True, text=True, timeout=10, check=True)
    top, commit = out.stdout.split()
  except (OSError, ValueError, subprocess.SubprocessError):
    return None
  # An installed copy inside some other repository is not a checkout of jaxdepth.
  if os.path.realpath(os.path.join(top, "jaxdepth")) != os.path.realpath(pkg):
    return None
  return commit


def _cpu_model() -> str | None:
  with contextlib.suppress(OSError):
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  return platform.processor() or None


def prepare_workdir(workdir: str, config, resume_safe=(),
                    runtime: Mapping[str, Any] | None = None) -> bool:
  """Create ``workdir`` and write ``config.json``; returns True when resuming.

  A workdir that already holds a run of a different config is refused with a
  ConfigError naming the first differing field, and one of a newer layout (``_schema``)
  with one line saying what to do; nothing there is touched. ``resume_safe`` names the
  fields that may differ on a resume (the experiment says which: progress, cadences).
  Keys starting with ``_`` (``_schema``, ``_provenance``: what wrote the run, see
  :func:`provenance`; ``runtime`` is passed to it) are bookkeeping, not config fields:
  a resume under other versions or devices is allowed and keeps the first record.
  """
  new = config_to_dict(config)
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    old = read_json(path)
    check_schema(old.pop(SCHEMA_KEY, None), workdir)
    check_same_config(old, new, resume_safe, f"workdir {workdir} holds")
    return True
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WriteError(e.errno, e.strerror, workdir) from None
  write_json(path, {**new, SCHEMA_KEY: SCHEMA, PROVENANCE_KEY: provenance(runtime)})
  return False


def check_same_config(old: Mapping[str, Any], new: Mapping[str, Any], resume_safe,
                      holder: str) -> None:
  """ConfigError naming the first field (sorted) where a saved run's config ``old``
  differs from ``new``, outside ``resume_safe`` and bookkeeping keys (``_...``);
  ``holder`` says what holds the run ("workdir W holds")."""
  for key in sorted(set(old) | set(new)):
    if key in resume_safe or key.startswith("_"):
      continue
    if old.get(key) != new.get(key):
      raise ConfigError(
          key, f"{holder} a run with {key}={old.get(key)!r}, this config has "
          f"{new.get(key)!r}; use a new --workdir or the same config")


def snapshot_workdir(workdir: str) -> set[str] | None:
  """The entries of ``workdir`` before a run (None: it does not exist yet)."""
  return set(os.listdir(workdir)) if os.path.isdir(workdir) else None


def remove_unstarted(workdir: str, before: set[str] | None) -> bool:
  """After a run stopped by an error: remove what it created, if it produced nothing
  but ``config.json`` and empty directories (it stopped before training). A workdir
  that held a run, or files the run produced, is left as it is. Returns True if
  something was removed."""
  if not os.path.isdir(workdir):
    return False
  new = set(os.listdir(workdir)) - (before or set())
  if before is not None and "config.json" in before:
    return False  # an existing run: never touched
  for name in new:
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      if any(files for _, _, files in os.walk(path)):
        return False
    elif name != "config.json":
      return False
  if before is None:
    shutil.rmtree(workdir, ignore_errors=True)
  else:
    for name in new:
      path = os.path.join(workdir, name)
      (shutil.rmtree if os.path.isdir(path) else os.remove)(path)
  return bool(new) or before is None


class JsonlWriter:
  """Appends one JSON object per line (``{"step": s, ...}``)."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: Mapping[str, Any]) -> None:
    line = (json.dumps(to_jsonable(record)) + "\n").encode()
    try:
      with open(self.path, "ab") as f:
        end = f.tell()
        if end and _last_byte(self.path, end) != b"\n":
          end = _drop_partial_line(f, self.path, end)  # a write that failed earlier
        try:
          f.write(line)
          f.flush()
        except OSError:
          with contextlib.suppress(OSError):
            f.truncate(end)  # no partial record is left behind
          raise
    except OSError as e:
      if isinstance(e, WriteError) or not e.errno:
        raise
      raise WriteError(e.errno, e.strerror or os.strerror(e.errno), self.path,
                       hint="the records before this one are kept") from None


def _last_byte(path: str, end: int) -> bytes:
  with open(path, "rb") as r:
    r.seek(end - 1)
    return r.read(1)


def _drop_partial_line(f, path: str, end: int) -> int:
  with open(path, "rb") as r:
    data = r.read(end)
  keep = data.rfind(b"\n") + 1
  f.truncate(keep)
  return keep


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSONL file; a truncated last line (a write cut short) is skipped."""
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  out = []
  for i, line in enumerate(lines):
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      if i == len(lines) - 1 and not line.endswith("\n"):
        break
      raise
  return out


class TensorBoardWriter:
  """Scalars of one TensorBoard run (a directory of event files), written with
  tensorboardX's synchronous event writer and flushed on every :meth:`write`, so a
  sweep can be watched while it runs.

  Resumable: the steps already in the directory's event files are read when the
  writer opens, and a scalar whose step is not after the last one logged for its tag
  is skipped, so a resumed or re-run program adds no duplicate point. Each process
  that writes opens a new event file, created on the first scalar it writes.
  """

  def __init__(self, logdir: str):
    self.logdir = logdir
    self._file = None
    self.last: dict[str, int] = {}
    for e in read_tensorboard(logdir):
      self.last[e["tag"]] = max(self.last.get(e["tag"], -1), e["step"])

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    """One event at ``step`` with the scalars (tag -> value) not logged before."""
    from tensorboardX.proto import event_pb2, summary_pb2
    values = [summary_pb2.Summary.Value(tag=t, simple_value=float(v))
              for t, v in scalars.items() if step > self.last.get(t, -1)]
    if not values:
      return
    try:
      if self._file is None:
        from tensorboardX.event_file_writer import EventsWriter
        os.makedirs(self.logdir, exist_ok=True)
        # A unique name: tensorboardX names files by the second and opens them "wb".
        self._file = EventsWriter(os.path.join(self.logdir, "events"),
                                  f".{os.getpid()}.{time.time_ns()}")
      self._file.write_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                             summary=summary_pb2.Summary(value=values)))
      self._file.flush()
    except OSError as e:
      if isinstance(e, WriteError) or not e.errno:
        raise
      raise WriteError(e.errno, e.strerror or os.strerror(e.errno), self.logdir,
                       hint="the events before this one are kept") from None
    for v in values:
      self.last[v.tag] = int(step)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


def read_tensorboard(logdir: str) -> list[dict]:
  """The scalars in the event files directly under ``logdir``, in file and write
  order: ``{"tag", "step", "value", "wall_time"}``. Reads the TFRecord framing with
  tensorboardX's protos (no TensorFlow, no tensorboard); a record cut short at the end
  of a file (a write interrupted by a kill) ends that file."""
  if not os.path.isdir(logdir):
    return []
  from tensorboardX.proto import event_pb2
  out = []
  for name in sorted(os.listdir(logdir)):
    if ".tfevents." not in name:
      continue
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (n,) = struct.unpack("<Q", data[pos:pos + 8])
      end = pos + 12 + n + 4
      if end > len(data):
        break
      event = event_pb2.Event()
      try:
        event.ParseFromString(data[pos + 12:pos + 12 + n])
      except Exception:  # protobuf's DecodeError: a damaged tail
        break
      pos = end
      for v in event.summary.value:
        if v.HasField("simple_value"):
          out.append({"tag": v.tag, "step": int(event.step), "value": v.simple_value,
                      "wall_time": event.wall_time})
  return out


def write_csv(path: str, rows: Iterable[Mapping[str, Any]]) -> None:
  """Tidy CSV; the header is the union of keys in first-seen order."""
  rows = [to_jsonable(r) for r in rows]
  fields: list[str] = []
  for r in rows:
    fields.extend(k for k in r if k not in fields)
  with _atomic(path, newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for r in rows:
      w.writerow({k: ("" if v is None else v) for k, v in r.items()})
