"""The ``jaxdepth`` command.

  jaxdepth train --config configs/quickstart.py --workdir runs/qs [--config.depth=10]
  jaxdepth bound --workdir runs/bound [--eps 0.01] [--alpha 0.1] [--p 0.1 0.2]

Bad input (unknown field, value out of range, mismatched workdir) prints one line
``jaxdepth: error: config.FIELD: ...`` and exits with status 2 before any compute.
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxdepth.engine.validate import ConfigError


def load_config(path: str, overrides: list[str]):
  """Load an ml_collections config file and apply ``--config.FIELD=VALUE``."""
  from absl import flags
  from ml_collections import config_flags

  if not os.path.exists(path.split(":")[0]):
    raise ConfigError("config", f"config file {path.split(':')[0]!r} does not exist")
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", default=path, flag_values=fv,
                                  lock_config=True)
  argv = ["jaxdepth", f"--config={path}", *overrides]
  saved = sys.argv
  try:
    sys.argv = argv  # config_flags reads sys.argv to register the override flags
    fv(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    keys = [o.split("=")[0][len("--config."):] for o in overrides
            if o.startswith("--config.")]
    field = next((k for k in keys if k in msg or k.split(".")[-1] in msg), "config")
    if isinstance(e, (AttributeError, KeyError)):
      msg = f"unknown field {field!r} (not in {path})"
    raise ConfigError(field, msg) from None
  finally:
    sys.argv = saved
  return fv.config


def _train(args, overrides) -> int:
  from jaxdepth.engine import registry as experiments
  from jaxdepth.engine import writers
  config = load_config(args.config, overrides)
  name = config.get("experiment", "collapse")
  module = experiments.get(name)
  module.validate(config)
  writers.prepare_workdir(args.workdir, config)
  summary = module.run(config, args.workdir)
  print(f"wrote {os.path.join(args.workdir, 'summary.json')}", file=sys.stderr)
  if summary is not None and args.print_summary:
    import json
    print(json.dumps(writers.to_jsonable(summary), indent=1))
  return 0


def _bound(args, overrides) -> int:
  if overrides:
    raise ConfigError("bound", f"unexpected arguments {overrides}")
  from jaxdepth.papers.minimal_depth import bound_main
  bound_main.main(args.workdir, eps=args.eps, alpha=args.alpha, p=args.p,
                  out=args.out)
  return 0


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  parser = argparse.ArgumentParser(prog="jaxdepth", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  t = sub.add_parser("train", help="run the experiment a config file describes")
  t.add_argument("--config", required=True, help="configs/NAME.py[:ARG]")
  t.add_argument("--workdir", required=True, help="run directory (resumed if it exists)")
  t.add_argument("--print_summary", action="store_true")
  b = sub.add_parser("bound", help="offline generalization-bound report from checkpoints")
  b.add_argument("--workdir", required=True)
  b.add_argument("--eps", type=float, nargs="+", default=None)
  b.add_argument("--alpha", type=float, nargs="+", default=None)
  b.add_argument("--p", type=float, nargs="+", default=None)
  b.add_argument("--out", default=None, help="output prefix (default WORKDIR/bound)")
  args, rest = parser.parse_known_args(argv)
  bad = [r for r in rest if not r.startswith("--config.")]
  if bad:
    parser.error(f"unrecognized arguments: {' '.join(bad)}")
  try:
    return {"train": _train, "bound": _bound}[args.command](args, rest)
  except ConfigError as e:
    print(f"jaxdepth: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
