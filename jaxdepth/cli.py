"""The ``jaxdepth`` command.

  jaxdepth train --config configs/quickstart.py --workdir runs/qs [--config.depth=10]
  jaxdepth bound --workdir runs/bound [--eps 0.01] [--alpha 0.1] [--p 0.1 0.2]

Bad input (unknown field, value out of range, mismatched workdir) prints one line
``jaxdepth: error: config.FIELD: ...`` and exits with status 2 before any compute;
so does a workdir whose checkpoints are all unreadable. A failed write (disk full,
permission) prints one line naming the path and errno and exits with status 1; the
previous checkpoint is kept, so the same command resumes from it.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from jaxdepth.errors import ConfigError


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


def start_jax(args) -> None:
  """Devices and processes, before jax computes anything: one CPU device per core
  (or ``--cpu_devices``), and the multi-process job when its flags are given."""
  from jaxdepth.engine import devices, distributed
  multi = distributed.check_flags(args.coordinator_address, args.num_processes,
                                  args.process_id, args.distributed)
  if args.cpu_devices is not None and args.cpu_devices < 1:
    raise distributed.FlagError("cpu_devices", f"must be >= 1, got {args.cpu_devices}")
  devices.use_cpu_cores(args.cpu_devices)
  if multi:
    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                           heartbeat_timeout=args.heartbeat_timeout)


def runtime_info() -> dict:
  """The started jax's backend and devices, for config.json's ``_provenance``
  (initializes jax: call it after :func:`start_jax`)."""
  import jax
  return {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
          "device_count": jax.device_count(), "process_count": jax.process_count()}


def _train(args, overrides) -> int:
  from jaxdepth.engine import distributed, writers
  from jaxdepth.engine import registry as experiments
  start_jax(args)
  config = load_config(args.config, overrides)
  name = config.get("experiment", "collapse")
  module = experiments.get(name)
  module.validate(config)
  primary = distributed.is_primary()
  if distributed.process_count() > 1 and not experiments.multi_process(name):
    multi = [n for n in experiments.names() if experiments.multi_process(n)]
    raise ConfigError("experiment", f"{name!r} runs in one process; multi-process jobs "
                      f"run: {', '.join(multi)}")
  # Data preparation happens inside module.run: if the run stops on an error before
  # it produced anything (missing dataset, batch_size vs dataset size), what this
  # command created is removed again; a workdir holding a run is never touched.
  # In a multi-process job process 0 alone prepares the workdir and writes results.
  runtime = runtime_info()  # on every process: jax starts in step
  before = writers.snapshot_workdir(args.workdir) if primary else None
  try:
    ok, err = True, None
    if primary:
      try:
        writers.prepare_workdir(args.workdir, config, resume_safe(module), runtime)
      except ConfigError as e:
        ok, err = False, e
    if not distributed.all_ok(ok):  # every process stops with process 0's reason
      raise err or ConfigError("workdir", f"process 0 refused {args.workdir} (see its "
                               "error)")
    distributed.check_shared_workdir(args.workdir)
    summary = module.run(config, args.workdir)
  except BaseException:
    if primary:
      writers.remove_unstarted(args.workdir, before)
    raise
  if summary is not None and primary:
    print(final_report(module, summary, args.workdir), file=sys.stderr)
    if args.print_summary:
      import json
      print(json.dumps(writers.to_jsonable(summary), indent=1))
  return 0


def resume_safe(module) -> tuple[str, ...]:
  """The config fields that may change on a resume: the experiment's, else the papers'."""
  from jaxdepth import papers
  return tuple(getattr(module, "RESUME_SAFE_FIELDS", papers.RESUME_SAFE_FIELDS))


def final_report(module, summary: dict, workdir: str) -> str:
  """The headline table of a finished run and the paths of what it wrote."""
  from jaxdepth import papers
  from jaxdepth.engine import report
  text = (module.report(summary) if hasattr(module, "report") else report.summary_report(
      summary, coordinates=getattr(module, "COORDINATES", papers.COORDINATES),
      short=getattr(module, "SHORT_NAMES", papers.SHORT_NAMES),
      skip=getattr(module, "SKIP_FIELDS", papers.SKIP_FIELDS)))
  lines = [text] if text else []
  n_div = sum(bool(r.get("diverged")) for r in summary.get("runs", ())
              if isinstance(r, dict))
  if n_div:
    lines.append(f"{n_div} of {len(summary['runs'])} runs diverged "
                 "(flagged 'diverged' in summary.json; left out of means and figures)")
  wrote = [p for p in ("summary.json", "layers.csv", "metrics.jsonl")
           if os.path.exists(os.path.join(workdir, p))]
  fig_dir = os.path.join(workdir, "figures")
  figs = ([os.path.join(fig_dir, f) for f in sorted(os.listdir(fig_dir))]
          if os.path.isdir(fig_dir) else [])
  figs += [os.path.join(workdir, f) for f in sorted(os.listdir(workdir))
           if f.endswith(".png")]
  lines.append("wrote " + ", ".join(os.path.join(workdir, p) for p in wrote))
  if figs:
    lines.append("figures: " + ", ".join(figs))
  return "\n".join(lines)


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
  t.add_argument("--cpu_devices", type=int, default=None,
                 help="XLA CPU devices (default: one per core); runs are sharded over them")
  m = t.add_argument_group("many hosts (every process runs the same command)")
  m.add_argument("--coordinator_address", default=None, help="HOST:PORT of process 0")
  m.add_argument("--num_processes", type=int, default=None)
  m.add_argument("--process_id", type=int, default=None)
  m.add_argument("--distributed", action="store_true",
                 help="join a job found by jax.distributed (TPU pod, SLURM, Open MPI)")
  m.add_argument("--heartbeat_timeout", type=int, default=30,
                 help="seconds after which a silent process stops the job")
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
  except OSError as e:  # disk full, permission: one line naming the path and errno
    if e.errno is None:
      raise
    print(f"jaxdepth: error: {_os_error(e)}", file=sys.stderr)
    return 1


def _os_error(e: OSError) -> str:
  from jaxdepth.engine.writers import WriteError
  if isinstance(e, WriteError):
    return str(e)
  name = errno.errorcode.get(e.errno, "?")
  where = f"{e.filename}: " if e.filename else ""
  return f"{where}{e.strerror} (errno {e.errno} {name})"


if __name__ == "__main__":
  sys.exit(main())
