"""The experiment configs, shipped with the package, and how ``--config`` finds them.

Each experiment config is a module here with ``get_config(arg=None)`` returning an
``ml_collections.ConfigDict``, a docstring whose first line says what it runs, and a
module-level ``VARIANTS = (...)``: the values ``arg`` may take (every config has
``tiny``, a seconds-long smoke version); ``VARIANTS_COMBINE = True`` when ``arg`` may
also join several of them with commas (``noise_sweep:uniform,tiny``).
``jaxdepth train --config SPEC`` accepts

  quickstart, lowrank/volume:tiny     a name here (``jaxdepth list`` shows them all)
  path/to/my_config.py[:ARG]          a user's own file
  configs/quickstart.py[:ARG]         the path in a clone (its top-level ``configs/`` links
                                      here) or, where no such file exists relative to
                                      the working directory, the same name

This module reads the config files with ``ast`` only (no jax, no ml_collections), so
``jaxdepth list`` and name checks are instant; ``load`` imports the chosen one.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import os

from jaxdepth.errors import ConfigError

DIR = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class Entry:
  name: str | None            # the name in this package (None: a user's file)
  path: str                   # the file
  description: str            # first line of the module docstring
  variants: tuple | None      # VARIANTS (None: the file declares none)
  combine: bool = False       # VARIANTS_COMBINE: comma-separated combinations allowed


def read(path: str, name: str | None = None) -> Entry | None:
  """The entry of a config file, or None when it defines no ``get_config``."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  if not any(isinstance(n, ast.FunctionDef) and n.name == "get_config" for n in tree.body):
    return None
  doc = (ast.get_docstring(tree) or "").strip()
  consts = {}
  for node in tree.body:
    if (isinstance(node, ast.Assign) and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("VARIANTS", "VARIANTS_COMBINE")):
      consts[node.targets[0].id] = ast.literal_eval(node.value)
  variants = consts.get("VARIANTS")
  return Entry(name, path, doc.splitlines()[0] if doc else "",
               None if variants is None else tuple(variants),
               bool(consts.get("VARIANTS_COMBINE", False)))


def catalog() -> list[Entry]:
  """Every experiment config of the package, sorted by name."""
  out = []
  for root, dirs, files in os.walk(DIR):
    dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
    for f in sorted(files):
      if f.endswith(".py") and not f.startswith("_"):
        path = os.path.join(root, f)
        name = os.path.relpath(path, DIR)[:-3].replace(os.sep, "/")
        entry = read(path, name)
        if entry is not None:
          out.append(entry)
  return sorted(out, key=lambda e: e.name)


def _packaged(name: str) -> str | None:
  if not name or any(p in ("", ".", "..") or p.startswith("_") for p in name.split("/")):
    return None
  path = os.path.join(DIR, *name.split("/")) + ".py"
  return path if os.path.isfile(path) else None


def resolve(spec: str) -> tuple[Entry, str | None]:
  """``(entry, arg)`` of ``--config SPEC``; ConfigError for an unknown file or name or
  an arg not in the config's VARIANTS (nothing is imported)."""
  file, sep, arg = spec.partition(":")
  arg = arg if sep and arg else None
  real = os.path.realpath(file)
  if os.path.isfile(file) and not real.startswith(os.path.realpath(DIR) + os.sep):
    entry = read(file)                       # a user's file (or an old clone's)
    if entry is None:
      raise ConfigError("", f"{file} defines no get_config()")
  else:
    # A name, or a path into this package (the clone's top-level configs/ links here):
    # the packaged config, known by its name.
    name = (os.path.relpath(real, os.path.realpath(DIR)) if os.path.isfile(file)
            else file).replace(os.sep, "/")
    while name.startswith("./"):
      name = name[2:]
    for prefix in ("jaxdepth/configs/", "configs/"):
      if name.startswith(prefix):
        name = name[len(prefix):]
        break
    name = name[:-3] if name.endswith(".py") else name
    path = _packaged(name)
    entry = read(path, name) if path else None
    if entry is None:
      raise ConfigError("", f"no config {file!r}: not a file, nor a name of "
                        f"`jaxdepth list` ({', '.join(e.name for e in catalog())})")
  check_variant(entry, arg)
  return entry, arg


def check_variant(entry: Entry, arg: str | None) -> None:
  """An ``arg`` outside VARIANTS is a ConfigError (with VARIANTS_COMBINE, each
  comma-separated part of it is checked)."""
  if arg is None or entry.variants is None or arg in entry.variants:
    return
  bad = [a for a in arg.split(",") if a not in entry.variants] if entry.combine else [arg]
  if bad:
    allowed = ", ".join(entry.variants) + (" (comma-separated)" if entry.combine else "")
    raise ConfigError("", f"unknown variant {bad[0]!r} of {entry.name or entry.path}; "
                      f"allowed: {allowed}")


def load(spec: str):
  """The ConfigDict that ``--config SPEC`` names (``get_config(ARG)`` of its module)."""
  entry, arg = resolve(spec)
  if entry.name is not None:
    module = importlib.import_module("jaxdepth.configs." + entry.name.replace("/", "."))
  else:
    mod_name = "jaxdepth_user_config_" + "".join(
        c if c.isalnum() else "_" for c in os.path.abspath(entry.path))
    module_spec = importlib.util.spec_from_file_location(mod_name, entry.path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
  try:
    config = module.get_config(*([] if arg is None else [arg]))
  except (ValueError, TypeError) as e:
    lines = str(e).strip().splitlines() or [type(e).__name__]
    raise ConfigError("", f"{entry.name or entry.path}: {lines[0]}") from None
  if config is None:
    raise ConfigError("", f"get_config() of {entry.name or entry.path} returned None")
  return config
