"""Errors every layer may raise (a leaf module: it imports nothing of jaxdepth)."""

from __future__ import annotations


class ConfigError(ValueError):
  """A bad config value. ``str(err)`` is the one-line message shown to users:
  ``config.FIELD: what is wrong (allowed: ...)``, or ``config: ...`` when the
  config as a whole is wrong (an unknown name or variant: ``field=""``)."""

  def __init__(self, field: str, message: str):
    self.field = field
    super().__init__(f"config.{field}: {message}" if field else f"config: {message}")
