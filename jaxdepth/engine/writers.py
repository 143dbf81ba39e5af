"""Run-directory I/O: config.json, metrics.jsonl, summary.json, CSV, progress bars.

Nothing here imports TensorFlow. All writes of whole files are atomic (temporary
file + rename) so an interrupted run never leaves a truncated summary.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from typing import Any, Iterable, Mapping

import numpy as np

from jaxdepth.engine.validate import ConfigError

# Fields that may change between a run and its resumption without making the
# stored checkpoints meaningless (they only affect logging and bookkeeping).
RESUME_SAFE_FIELDS = ("progress", "eval_every", "checkpoint_every", "plots",
                      "keep_checkpoints")


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


def write_json(path: str, obj: Any) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(to_jsonable(obj), f, indent=1)
    f.write("\n")
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def config_to_dict(config) -> dict:
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.loads(json.dumps(to_jsonable(d)))


def prepare_workdir(workdir: str, config) -> bool:
  """Create ``workdir`` and write ``config.json``; returns True when resuming.

  A workdir that already holds a run of a different config is refused with a
  ConfigError naming the first differing field; nothing there is touched.
  """
  new = config_to_dict(config)
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    old = read_json(path)
    for key in sorted(set(old) | set(new)):
      if key in RESUME_SAFE_FIELDS:
        continue
      if old.get(key) != new.get(key):
        raise ConfigError(
            key, f"workdir {workdir} holds a run with {key}={old.get(key)!r}, this "
            f"config has {new.get(key)!r}; use a new --workdir or the same config")
    return True
  os.makedirs(workdir, exist_ok=True)
  write_json(path, new)
  return False


class JsonlWriter:
  """Appends one JSON object per line (``{"step": s, ...}``)."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: Mapping[str, Any]) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(to_jsonable(record)) + "\n")


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_csv(path: str, rows: Iterable[Mapping[str, Any]]) -> None:
  """Tidy CSV; the header is the union of keys in first-seen order."""
  rows = [to_jsonable(r) for r in rows]
  fields: list[str] = []
  for r in rows:
    fields.extend(k for k in r if k not in fields)
  tmp = f"{path}.tmp"
  with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for r in rows:
      w.writerow({k: ("" if v is None else v) for k, v in r.items()})
  os.replace(tmp, path)


def progress(total: int, desc: str, initial: int = 0, enabled: bool = True):
  """A tqdm progress bar on stderr (disabled when not wanted)."""
  from tqdm.auto import tqdm
  return tqdm(total=total, desc=desc, initial=initial, disable=not enabled,
              file=sys.stderr, dynamic_ncols=True, unit="step")
