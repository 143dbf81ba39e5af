"""Experiments (``config.experiment``) -> the modules that define them, found by reading.

An experiment is a module anywhere under ``jaxdepth/papers/`` that assigns a string to
``EXPERIMENT`` at its top level (``EXPERIMENT = "lowrank.volume"``) and defines
``validate(config) -> None`` (raises ConfigError, no compute) and ``run(config,
workdir) -> dict`` (the summary, also written to ``workdir/summary.json``). A module
that may span several JAX processes says ``MULTI_PROCESS = True``.

The table is built by parsing the sources (no imports: ``jaxdepth --help`` stays
fast), so adding an experiment is one new module and one config: nothing here
changes. Other packages can register more with :func:`register`.
"""

from __future__ import annotations

import ast
import functools
import importlib
import os

from jaxdepth.errors import ConfigError

_EXTRA: dict[str, tuple[str, bool]] = {}


def _constant(tree: ast.Module, name: str):
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == name for t in node.targets):
      if isinstance(node.value, ast.Constant):
        return node.value.value
  return None


@functools.cache
def _scan(root: str) -> dict[str, tuple[str, bool]]:
  found: dict[str, tuple[str, bool]] = {}
  base = os.path.dirname(os.path.dirname(root))  # the folder holding jaxdepth/
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    for f in sorted(files):
      if not f.endswith(".py"):
        continue
      path = os.path.join(folder, f)
      with open(path, encoding="utf-8") as fh:
        src = fh.read()
      if "EXPERIMENT" not in src:
        continue
      tree = ast.parse(src, path)
      name = _constant(tree, "EXPERIMENT")
      if not isinstance(name, str):
        continue
      module = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
      if name in found:
        raise RuntimeError(f"experiment {name!r} defined twice: {found[name][0]}, {module}")
      found[name] = (module, _constant(tree, "MULTI_PROCESS") is True)
  return found


def experiments() -> dict[str, tuple[str, bool]]:
  """name -> (module, may run in several processes), papers' and registered ones."""
  papers = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "papers")  # read as files: the engine imports no paper
  return {**_scan(papers), **_EXTRA}


def register(name: str, module: str, multi_process: bool = False) -> None:
  """Make ``config.experiment = name`` run ``module`` (e.g. a user's own package)."""
  _EXTRA[name] = (module, multi_process)


def names() -> list[str]:
  return list(experiments())


def multi_process(name: str) -> bool:
  return experiments()[name][1]


def get(name: str):
  table = experiments()
  if name not in table:
    raise ConfigError("experiment",
                      f"unknown experiment {name!r}; allowed: {', '.join(table)}")
  return importlib.import_module(table[name][0])
