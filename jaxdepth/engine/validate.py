"""Config validation: one-line errors that name the field and what is allowed.

Every experiment exposes ``validate(config)``; the CLI calls it before any compute
and before anything is written, and turns a :class:`ConfigError` into one line on
stderr with exit code 2.
"""

from __future__ import annotations

import dataclasses
import difflib
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


def _interval_g(low, high, low_open, high_open) -> str:
  g = lambda x, inf: inf if x is None else f"{x:g}"
  return f"{'(' if low_open else '['}{g(low, '-inf')}, {g(high, 'inf')}{')' if high_open else ']'}"


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


# ------------------------------------------------------------------ declared fields
# An experiment declares each config field once, as a Field; its config's defaults,
# its validation and the docs table (docs/config_fields.md, `jaxdepth fields`) are
# derived from the declaration. The declarations live with the experiments (papers/);
# only this machinery is here.

# A Field's default when the defaults omit it: optional, checked when a config sets it.
ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

KINDS = ("int", "float", "bool", "str", "ints", "floats", "strs", "axis", "dict", "any")


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field: its name (dotted inside a nested dict: ``data.seed``), its
  default (:data:`ABSENT`: optional, not in the defaults), its kind, the values it
  may take and one line of documentation.

  kind: ``int``, ``float`` (finite), ``bool``, ``str``; ``ints``, ``floats``, ``strs``
  (a tuple of them; a number is accepted as one entry where the code reads it so);
  ``axis`` (a number or a non-empty tuple of distinct numbers: a run axis); ``dict``
  (a nested ConfigDict: its declared subfields are ``NAME.SUB`` Fields; ``open=True``
  lets it hold undeclared keys, checked elsewhere); ``any`` (not checked).
  choices: the allowed values (of every entry for ``strs``), or a function returning
  them (looked up when checking: a registry that imports heavy modules).
  low/high (inclusive unless low_open/high_open): the range of a number, of every
  entry of a tuple of numbers; ``why``: the reason for the range, said when a value
  is outside it. nonempty: a tuple must have an entry; distinct: no entry twice.
  """
  name: str
  default: Any = ABSENT
  kind: str = "any"
  doc: str = ""
  choices: Any = None
  low: float | None = None
  high: float | None = None
  low_open: bool = False
  high_open: bool = False
  nonempty: bool = True
  distinct: bool = False
  open: bool = False
  why: str = ""

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Field {self.name}: unknown kind {self.kind!r}")

  def allowed(self) -> tuple | None:
    """The choices as a tuple (None: any value of the kind within the range)."""
    if self.choices is None:
      return None
    return tuple(self.choices() if callable(self.choices) else self.choices)

  def rule(self) -> str:
    """What is allowed, in words (the docs table's "allowed" column)."""
    allowed = self.allowed()
    if allowed is not None:
      return ("each of " if self.kind == "strs" else "") + ", ".join(map(str, allowed))
    if self.low is None and self.high is None:
      return ""
    if self.high is None:
      return f"{'>' if self.low_open else '>='} {self.low}"
    return _interval(self.low, self.high, self.low_open, self.high_open)


def field_map(fields: Sequence[Field]) -> dict[str, Field]:
  out = {}
  for f in fields:
    if f.name in out:
      raise ValueError(f"field {f.name} declared twice")
    out[f.name] = f
  return out


def derive(base: Sequence[Field], names: Sequence[str], new: Sequence[Field] = (),
           defaults: dict | None = None) -> tuple[Field, ...]:
  """Another experiment's declaration from ``base``'s rules: the top-level fields
  ``names`` in this order (each with its ``NAME.*`` subfields), taken from ``new``
  when declared there, else from ``base``; ``defaults`` replaces defaults (by full
  name; :data:`ABSENT` makes a field optional)."""
  pool = {**field_map(base), **field_map(new)}
  out = []
  for n in names:
    if n not in pool:
      raise ValueError(f"no field {n} to derive")
    out.append(pool[n])
    out += [f for k, f in pool.items() if k.startswith(n + ".")]
  defaults = dict(defaults or {})
  out = [dataclasses.replace(f, default=defaults.pop(f.name)) if f.name in defaults
         else f for f in out]
  if defaults:
    raise ValueError(f"defaults for undeclared fields: {', '.join(defaults)}")
  return tuple(out)


def defaults(fields: Sequence[Field], **overrides):
  """The ConfigDict of the declared defaults (nested dicts for dotted names), fields
  in declaration order; ``overrides`` replace top-level values."""
  import ml_collections
  tree: dict = {}
  for f in fields:
    *parents, leaf = f.name.split(".")
    node = tree
    for p in parents:
      node = node[p]
    if f.kind == "dict":
      node[leaf] = dict(f.default) if f.default is not ABSENT else {}
    elif f.default is not ABSENT:
      node[leaf] = f.default
  for k, v in overrides.items():
    if k not in tree:
      raise ValueError(f"no field {k} to override")
    tree[k] = v
  return ml_collections.ConfigDict(tree)


def _suggest(name: str, known: Iterable[str]) -> str:
  close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
  return f"did you mean {close[0]!r}? " if close else ""


def check_known(config, fields: Sequence[Field], prefix: str = "") -> None:
  """Reject (sub)fields the declaration does not name, suggesting the nearest one."""
  by = field_map(fields)
  known = sorted(k[len(prefix):] for k in by if k.startswith(prefix)
                 and "." not in k[len(prefix):])
  for key in config.keys():
    if key not in known:
      raise ConfigError(prefix + key, f"unknown field; {_suggest(key, known)}"
                        f"known fields: {', '.join(known)}")
    f = by[prefix + key]
    if f.kind == "dict" and not f.open and hasattr(config[key], "keys"):
      check_known(config[key], fields, prefix + key + ".")


def check_field(config, f: Field) -> Any:
  """Check one declared field of ``config``; returns its value. A missing top-level
  field is an error unless it is optional (default :data:`ABSENT`); a missing
  subfield (``data.seed``) is skipped: the code reading it has a default."""
  try:
    v = _get(config, f.name)
  except ConfigError:
    if f.default is ABSENT or "." in f.name:
      return None
    raise
  name, k = f.name, f.kind
  rng = (f.low, f.high, f.low_open, f.high_open)
  if k == "int":
    integer(config, name, f.low, f.high)
  elif k == "float":
    _check_number(name, v, *rng)
  elif k == "bool":
    if not isinstance(v, bool):
      raise ConfigError(name, f"must be True or False, got {v!r}")
  elif k == "str":
    if not isinstance(v, str):
      raise ConfigError(name, f"must be a string, got {v!r}")
  elif k == "floats":
    if f.why:  # the range with its reason: "0.5 is outside (0, 0.5): <why>"
      for x in numbers(config, name, nonempty=f.nonempty):
        try:
          _check_number(name, x, *rng)
        except ConfigError:
          raise ConfigError(name, f"{x:g} is outside {_interval_g(*rng)}: "
                            f"{f.why}") from None
    else:
      numbers(config, name, *rng, nonempty=f.nonempty)
  elif k == "ints":
    integers(config, name, f.low, nonempty=f.nonempty)
    if f.high is not None:
      numbers(config, name, *rng, nonempty=f.nonempty)
  elif k == "axis":
    axis(config, name, *rng)
  elif k == "strs":
    if isinstance(v, str) or not isinstance(v, (tuple, list)):
      raise ConfigError(name, f"must be a tuple of strings, got {v!r}")
    if f.nonempty and not v:
      raise ConfigError(name, "must not be empty")
  elif k == "dict":
    if not hasattr(v, "keys"):
      raise ConfigError(name, f"must be a dict of fields, got {v!r}")
  if f.distinct and k in ("ints", "floats", "strs") and isinstance(v, (tuple, list)):
    require(len(set(v)) == len(v), name, f"duplicate values in {tuple(v)!r}")
  allowed = f.allowed()
  if allowed is not None:
    for x in (v if k == "strs" else (v,)):
      if x not in allowed:
        hint = _suggest(x, map(str, allowed)) if isinstance(x, str) else ""
        raise ConfigError(name, f"unknown value {x!r}; {hint}allowed: "
                          f"{', '.join(map(str, allowed))}")
  return v


def check(config, fields: Sequence[Field]) -> None:
  """Every single-field rule of the declaration, after the unknown-field check: the
  first violation is a ConfigError naming the field and what is allowed."""
  check_known(config, fields)
  for f in fields:
    check_field(config, f)


def table(fields: Sequence[Field]) -> str:
  """The declaration as a markdown table: field, default, kind, allowed, meaning."""
  def cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")

  def default(f):
    if f.kind == "dict" and not f.open:
      return "see below"
    return "(unset)" if f.default is ABSENT else f"`{f.default!r}`"

  rows = ["| field | default | type | allowed | meaning |", "|---|---|---|---|---|"]
  for f in fields:
    rule = f.rule()
    rows.append(f"| `{f.name}` | {cell(default(f))} | {f.kind} | "
                f"{cell(rule)} | {cell(f.doc)} |")
  return "\n".join(rows)


@dataclasses.dataclass(frozen=True)
class Schema:
  """An experiment's config, declared: its fields (:class:`Field`) and the rules that
  involve several fields (``checks``: functions ``config -> None`` raising
  ConfigError; the docs list their docstrings' first paragraphs)."""
  experiment: str
  fields: tuple
  checks: tuple = ()
  doc: str = ""

  def defaults(self, **overrides):
    """The config of the declared defaults (see :func:`defaults`)."""
    return defaults(self.fields, **overrides)

  def validate(self, config) -> None:
    """Unknown fields, every field's rule, then the cross-field checks."""
    check(config, self.fields)
    for c in self.checks:
      c(config)

  def markdown(self) -> str:
    """This experiment's section of docs/config_fields.md."""
    parts = [f"## `{self.experiment}`", ""]
    if self.doc:
      parts += [self.doc, ""]
    parts.append(table(self.fields))
    rules = [" ".join((c.__doc__ or c.__name__).strip().split("\n\n")[0].split())
             for c in self.checks]  # each docstring's first paragraph
    if rules:
      parts += ["", "Rules across fields:", ""] + [f"- {r}" for r in rules]
    return "\n".join(parts) + "\n"
