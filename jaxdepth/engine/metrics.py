"""metrics.jsonl (and TensorBoard) as a stream that survives resumption: nothing is
logged twice.

Records are keyed by some fields (e.g. kind, depth, width and seed of a run) and
ordered by ``step``. A resumed run re-computes evaluations after its last
checkpoint; the log skips those whose (key, step) it already holds, and the
TensorBoard writer those whose (run, tag, step) its event files already hold.

:class:`RunStreams` writes one record per (kind, run, step) from arrays with a
leading run axis; :func:`load` reads ``metrics.jsonl`` as a tidy pandas DataFrame.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxdepth.engine import writers

# Record fields that place a record in time, never metrics or coordinates.
TIME_FIELDS = ("step", "epoch")


class MetricsLog:
  """Append-only ``metrics.jsonl`` of ``workdir``; ``stream(**key)`` writes one program's
  (or run's) records, skipping steps already logged for that key by an earlier process.

  ``tensorboard``: the key fields that name a TensorBoard run (one directory under
  ``workdir/tb`` per value, ``depth=3,width=16,seed=0``); every written record's numeric
  fields become scalars of that run, tagged ``<other key fields>/<field>`` (e.g.
  ``train/batch_loss``) and ``.../layer_NN`` for per-layer lists. None: no TensorBoard.
  """

  def __init__(self, workdir: str, key_fields: tuple[str, ...], enabled: bool = True,
               tensorboard: tuple[str, ...] | None = None):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.key_fields = key_fields
    self.enabled = enabled
    self._writer = writers.JsonlWriter(self.path)
    self._last: dict = {}
    self.tb_dir = os.path.join(workdir, "tb")
    self.tb_fields = tensorboard
    self._tb: dict[str, writers.TensorBoardWriter] = {}
    if os.path.exists(self.path):
      for r in writers.read_jsonl(self.path):
        k = tuple(r.get(f) for f in key_fields)
        self._last[k] = max(self._last.get(k, -1), r.get("step", -1))

  def stream(self, **key) -> _Stream:
    return _Stream(self, tuple(key.get(f) for f in self.key_fields), key)

  def _tensorboard(self, fields: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    if self.tb_fields is None:
      return
    run = ",".join(f"{f}={fields.get(f)}" for f in self.tb_fields)
    if run not in self._tb:
      self._tb[run] = writers.TensorBoardWriter(os.path.join(self.tb_dir, run))
    prefix = "/".join(str(fields[f]) for f in self.key_fields
                      if f in fields and f not in self.tb_fields)
    self._tb[run].write(record["step"], scalars(record, exclude=(*fields, *TIME_FIELDS),
                                                prefix=prefix))

  def close(self) -> None:
    for w in self._tb.values():
      w.close()
    self._tb.clear()


class _Stream:
  def __init__(self, log: MetricsLog, key: tuple, fields: dict):
    self.log, self.key, self.fields = log, key, fields
    self.limit = log._last.get(key, -1)

  def restart(self) -> None:
    """Forget this key's records (its run starts over, e.g. after another config's
    checkpoint was refused): metrics.jsonl is rewritten without them (atomically)."""
    self.limit = -1
    self.log._last.pop(self.key, None)
    if not self.log.enabled or not os.path.exists(self.log.path):
      return
    kept = [r for r in writers.read_jsonl(self.log.path)
            if tuple(r.get(f) for f in self.log.key_fields) != self.key]
    with writers._atomic(self.log.path) as f:
      f.writelines(json.dumps(writers.to_jsonable(r)) + "\n" for r in kept)

  def write(self, record: Mapping[str, Any]) -> None:
    if not self.log.enabled or record["step"] <= self.limit:
      return
    self.log._writer.write({**record, **self.fields})
    self.limit = record["step"]
    self.log._tensorboard(self.fields, record)


def scalars(record: Mapping[str, Any], exclude=(), prefix: str = "") -> dict[str, float]:
  """TensorBoard tags -> values of a record's numeric fields (a list: one tag per
  layer, ``name/layer_01`` ...); None, strings and ``exclude`` are left out."""
  out = {}
  pre = f"{prefix}/" if prefix else ""
  for k, v in record.items():
    if k in exclude:
      continue
    v = writers.to_jsonable(v)
    if isinstance(v, list):
      width = max(2, len(str(len(v))))
      for i, x in enumerate(v):
        if isinstance(x, (int, float)):
          out[f"{pre}{k}/layer_{i + 1:0{width}d}"] = float(x)
    elif isinstance(v, (int, float)):
      out[f"{pre}{k}"] = float(v)
  return out


class RunStreams:
  """Per-run records of one program: ``write(kind, step, values)`` splits arrays with
  a leading run axis into one record per run,
  ``{"kind", "step", **time, **fields, **runs[i], metric: value or per-layer list}``,
  each through its own (kind, run) stream of ``log`` (whose key fields must name
  ``kind``, ``fields`` and the run coordinates)."""

  def __init__(self, log: MetricsLog | None, runs: Sequence[Mapping[str, Any]], **fields):
    self.log = log
    self.coords = [{**fields, **r} for r in runs]
    self._streams: dict = {}

  def write(self, kind: str, step: int, values: Mapping[str, Any], **time) -> None:
    if self.log is None:
      return
    host = {k: np.asarray(v) for k, v in values.items()}
    for i, c in enumerate(self.coords):
      if (kind, i) not in self._streams:
        self._streams[kind, i] = self.log.stream(kind=kind, **c)
      rec = {"kind": kind, "step": int(step), **time, **c,
             **{k: v[i] for k, v in host.items()}}
      self._streams[kind, i].write(rec)


# ------------------------------------------------------------------------------ load
def load(workdir: str, coordinates: Sequence[str] = ()):
  """``workdir/metrics.jsonl`` as a tidy pandas DataFrame, one row per (run, step,
  metric[, layer]) (``jaxdepth.load_metrics`` names the papers' coordinates).

  Columns: the run coordinates (in first-seen order), ``step``, ``epoch`` (when
  records carry it), ``metric``, ``layer`` (1-based for per-layer metrics, else <NA>)
  and ``value`` (float; NaN where the record holds null). A record field is a
  coordinate when it is named in ``coordinates`` or is not numeric (a string); every
  other numeric field (bools as 0/1), list (per layer) or dict (``name.key``) is a
  metric.
  """
  import pandas as pd

  coords = set(coordinates)
  path = os.path.join(workdir, "metrics.jsonl")
  records = writers.read_jsonl(path) if os.path.exists(path) else []
  rows: list[dict] = []
  coord_cols: list[str] = []
  has_epoch = any("epoch" in r for r in records)

  def number(x):
    if x is None:
      return math.nan
    if isinstance(x, (bool, int, float)):
      return float(x)
    return None

  for r in records:
    base, metrics = {}, {}
    for k, v in r.items():
      if k in TIME_FIELDS:
        continue
      if k in coords or not (v is None or isinstance(v, (bool, int, float, list, dict))):
        base[k] = v
        if k not in coord_cols:
          coord_cols.append(k)
      else:
        metrics[k] = v
    base["step"] = r.get("step")
    if has_epoch:
      base["epoch"] = r.get("epoch")
    for name, v in metrics.items():
      items = ([(f"{name}.{k}", None, x) for k, x in v.items()] if isinstance(v, dict)
               else [(name, i + 1, x) for i, x in enumerate(v)] if isinstance(v, list)
               else [(name, None, v)])
      for metric, layer, x in items:
        val = number(x)
        if val is not None:
          rows.append({**base, "metric": metric, "layer": layer, "value": val})
  columns = [*coord_cols, "step", *(["epoch"] if has_epoch else []), "metric", "layer",
             "value"]
  df = pd.DataFrame(rows, columns=columns)
  for c in ("step", "epoch", "layer"):
    if c in df:
      df[c] = df[c].astype("Int64")
  df["value"] = df["value"].astype(float)
  return df
