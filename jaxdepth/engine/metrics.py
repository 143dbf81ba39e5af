"""metrics.jsonl as a stream that survives resumption: nothing is logged twice.

Records are keyed by some fields (e.g. depth and width of a program) and ordered by
``step``. A resumed run re-computes evaluations after its last checkpoint; the log
skips those whose (key, step) it already holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from jaxdepth.engine import writers


class MetricsLog:
  """Append-only ``metrics.jsonl`` of ``workdir``; ``stream(**key)`` writes one program's
  records, skipping steps already logged for that key by an earlier (killed) process."""

  def __init__(self, workdir: str, key_fields: tuple[str, ...], enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.key_fields = key_fields
    self.enabled = enabled
    self._writer = writers.JsonlWriter(self.path)
    self._last: dict = {}
    if os.path.exists(self.path):
      for r in writers.read_jsonl(self.path):
        k = tuple(r.get(f) for f in key_fields)
        self._last[k] = max(self._last.get(k, -1), r.get("step", -1))

  def stream(self, **key) -> _Stream:
    return _Stream(self, tuple(key.get(f) for f in self.key_fields), key)

  def last_step(self, **key) -> int:
    return self._last.get(tuple(key.get(f) for f in self.key_fields), -1)


class _Stream:
  def __init__(self, log: MetricsLog, key: tuple, fields: dict):
    self.log, self.key, self.fields = log, key, fields
    self.limit = log._last.get(key, -1)

  def write(self, record: Mapping[str, Any]) -> None:
    if not self.log.enabled or record["step"] <= self.limit:
      return
    self.log._writer.write({**record, **self.fields})
    self.limit = record["step"]
