"""The config fields of every experiment that declares them, as markdown.

  python -m jaxdepth.tools.fields                 # print docs/config_fields.md
  jaxdepth fields                                 # the same
  jaxdepth fields --experiment bound              # one experiment's table
  jaxdepth fields --write docs/config_fields.md   # regenerate the committed file

The declarations are the ``SCHEMAS`` of each ``jaxdepth/papers/<paper>/fields.py``
(``jaxdepth.engine.validate.Schema``: one Field per config field with its default,
type, allowed values and meaning, and the rules across fields); this prints them.
tests/config_fields_test.py keeps docs/config_fields.md equal to the output. Lists
of allowed values that come from a registry (datasets, network families) are looked
up, which imports those packages (jax among them); ``jaxdepth --help`` does not.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from jaxdepth.engine import registry
from jaxdepth.errors import ConfigError

HEADER = """# Config fields

Generated from the declarations in `jaxdepth/papers/*/fields.py` by
`jaxdepth fields --write docs/config_fields.md` (a test keeps this file equal to the
output): do not edit by hand. Each experiment's config has exactly these fields;
override any with `--config.FIELD=VALUE` (tuples as `'(a,b)'`). A value outside
"allowed", an unknown field or a failed rule across fields stops `jaxdepth train`
before any compute with one line `jaxdepth: error: config.FIELD: ...`.

Types: `int`, `float` (finite), `bool`, `str`; `ints`, `floats`, `strs` (tuples of
them); `axis` (a number, or a tuple of distinct numbers: one run per value, trained as
one program); `dict` (nested fields, the `NAME.*` rows). A default "(unset)" marks an
optional field that the packaged configs leave out (the code reading it has its own
default); a missing `data.*` field takes the dataset reader's default.
"""


def schemas() -> list:
  """Every declared experiment schema, papers in alphabetical order."""
  papers = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "papers")
  out = []
  for paper in sorted(os.listdir(papers)):
    if os.path.isfile(os.path.join(papers, paper, "fields.py")):
      module = importlib.import_module(f"jaxdepth.papers.{paper}.fields")
      out += list(module.SCHEMAS)
  return out


def markdown(experiment: str | None = None) -> str:
  """docs/config_fields.md (or one experiment's section of it)."""
  found = schemas()
  if experiment is not None:
    chosen = [s for s in found if s.experiment == experiment]
    if not chosen:
      raise ConfigError("experiment", f"no declared fields for {experiment!r}; "
                        f"allowed: {', '.join(s.experiment for s in found)}")
    return chosen[0].markdown()
  parts = [HEADER]
  undeclared = sorted(set(registry.names()) - {s.experiment for s in found})
  if undeclared:
    parts.append("Not declared here yet (the experiment's module checks its config): "
                 + ", ".join(f"`{n}`" for n in undeclared) + ".\n")
  return "\n".join(parts + [s.markdown() for s in found])


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--experiment", default=None,
                      help="one experiment's table (default: all)")
  parser.add_argument("--write", default=None, metavar="FILE",
                      help="write the markdown to FILE instead of printing it")


def run(args) -> int:
  text = markdown(args.experiment)
  if args.write:
    with open(args.write, "w", encoding="utf-8") as f:
      f.write(text)
    print(f"wrote {args.write}", file=sys.stderr)
  else:
    sys.stdout.write(text)
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxdepth.tools.fields",
                                   description=__doc__.splitlines()[0])
  add_arguments(parser)
  try:
    return run(parser.parse_args(argv))
  except ConfigError as e:
    print(f"jaxdepth: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
