"""Errors every layer may raise (a leaf module: it imports nothing of jaxdepth)."""

from __future__ import annotations


class ConfigError(ValueError):
  """A bad config value. ``str(err)`` is the one-line message shown to users:
  ``config.FIELD: what is wrong (allowed: ...)``, or ``config: ...`` when the
  config as a whole is wrong (an unknown name or variant: ``field=""``)."""

  def __init__(self, field: str, message: str):
    self.field = field
    super().__init__(f"config.{field}: {message}" if field else f"config: {message}")


class Interrupted(Exception):
  """Training stopped at a segment boundary on request (Ctrl-C): ``done`` of ``total``
  segments (``unit``: "epoch", ...) ran; ``checkpoint``: the checkpoint directory
  (relative to the workdir) holding them, or None when the experiment keeps none."""

  def __init__(self, done: int, total: int, unit: str = "segment",
               checkpoint: str | None = None):
    self.done, self.total, self.unit, self.checkpoint = done, total, unit, checkpoint
    where = f"; checkpoint {checkpoint}" if checkpoint else ""
    super().__init__(f"interrupted at {unit} {done} of {total}{where}")
