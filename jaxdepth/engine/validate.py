"""Config validation: one-line errors that name the field and what is allowed.

Every experiment exposes ``validate(config)``; the CLI calls it before any compute
and before anything is written, and turns a :class:`ConfigError` into one line on
stderr with exit code 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from jaxdepth.errors import ConfigError


def _get(config, field: str) -> Any:
  node = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(field, "missing field")
    node = node[part]
  return node


def require(cond: bool, field: str, message: str) -> None:
  if not cond:
    raise ConfigError(field, message)


def integer(config, field: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
  """An int field with optional bounds (inclusive)."""
  v = _get(config, field)
  if isinstance(v, bool) or not isinstance(v, int):
    raise ConfigError(field, f"must be an integer, got {v!r}")
  if minimum is not None and v < minimum:
    raise ConfigError(field, f"must be >= {minimum}, got {v}")
  if maximum is not None and v > maximum:
    raise ConfigError(field, f"must be <= {maximum}, got {v}")
  return v


def number(config, field: str, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
  """A finite float field inside [low, high] (ends optionally open)."""
  v = _get(config, field)
  _check_number(field, v, low, high, low_open, high_open)
  return float(v)


def _interval(low, high, low_open, high_open) -> str:
  lo = "(" if low_open else "["
  hi = ")" if high_open else "]"
  return f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"


def _check_number(field, v, low, high, low_open, high_open, where=""):
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
    raise ConfigError(field, f"{where}must be a finite number, got {v!r}")
  bad = (low is not None and (v < low or (low_open and v == low))) or (
      high is not None and (v > high or (high_open and v == high)))
  if bad:
    raise ConfigError(
        field, f"{where}must be in {_interval(low, high, low_open, high_open)}, got {v}")


def numbers(config, field: str, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False,
            nonempty: bool = True) -> tuple[float, ...]:
  """A tuple of finite floats, each inside the interval."""
  v = _get(config, field)
  if isinstance(v, (int, float)) and not isinstance(v, bool):
    v = (v,)
  if not isinstance(v, (tuple, list)):
    raise ConfigError(field, f"must be a tuple of numbers, got {v!r}")
  if nonempty and not v:
    raise ConfigError(field, "must not be empty")
  for i, x in enumerate(v):
    _check_number(field, x, low, high, low_open, high_open, where=f"entry {i} ")
  return tuple(float(x) for x in v)


def axis(config, field: str, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> tuple[float, ...]:
  """A value that may be a run axis: a number (one value) or a non-empty tuple of
  distinct numbers, each inside the interval."""
  v = _get(config, field)
  where = _interval(low, high, low_open, high_open)
  want = f"must be a number or a non-empty tuple of distinct numbers in {where}"
  if isinstance(v, (tuple, list)):
    if not v:
      raise ConfigError(field, f"{want}, got ()")
    for x in v:
      if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ConfigError(field, f"{want}, got {tuple(v)!r}")
    bad = [x for x in v if (low is not None and (x < low or (low_open and x == low))) or
           (high is not None and (x > high or (high_open and x == high)))]
    if bad:
      raise ConfigError(field, f"{want}, got {bad[0]} in {tuple(v)!r}")
    if len(set(v)) != len(v):
      raise ConfigError(field, f"{want}, got duplicates in {tuple(v)!r}")
    return tuple(float(x) for x in v)
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
    raise ConfigError(field, f"{want}, got {v!r}")
  _check_number(field, v, low, high, low_open, high_open)
  return (float(v),)


def integers(config, field: str, minimum: int | None = None,
             nonempty: bool = True) -> tuple[int, ...]:
  """A tuple of ints, each >= minimum."""
  v = _get(config, field)
  if isinstance(v, int) and not isinstance(v, bool):
    v = (v,)
  if not isinstance(v, (tuple, list)):
    raise ConfigError(field, f"must be a tuple of integers, got {v!r}")
  if nonempty and not v:
    raise ConfigError(field, "must not be empty")
  for x in v:
    if isinstance(x, bool) or not isinstance(x, int):
      raise ConfigError(field, f"must contain integers only, got {x!r}")
    if minimum is not None and x < minimum:
      raise ConfigError(field, f"every entry must be >= {minimum}, got {x}")
  return tuple(int(x) for x in v)


def choice(config, field: str, allowed: Iterable[str]) -> Any:
  v = _get(config, field)
  allowed = tuple(allowed)
  if v not in allowed:
    raise ConfigError(field, f"unknown value {v!r}; allowed: {', '.join(map(str, allowed))}")
  return v


def known_fields(config, allowed: Sequence[str], prefix: str = "") -> None:
  """Reject fields a config defines that the experiment does not read."""
  extra = sorted(set(config.keys()) - set(allowed))
  if extra:
    raise ConfigError(prefix + extra[0],
                      f"unknown field; known fields: {', '.join(sorted(allowed))}")
