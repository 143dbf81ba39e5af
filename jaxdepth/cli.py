"""The ``jaxdepth`` command.

  jaxdepth train --config quickstart --workdir runs/qs [--config.depth=10]
  jaxdepth train --config lowrank/volume:tiny --workdir runs/v   (NAME[:VARIANT])
  jaxdepth train --config my_config.py[:ARG] --workdir runs/mine (your own file)
  jaxdepth list                      (every packaged config and its variants)
  jaxdepth fields                    (every config field: default, type, allowed values)
  jaxdepth bound --workdir runs/bound [--eps 0.01] [--alpha 0.1] [--p 0.1 0.2]
  jaxdepth analyze --workdir runs/qs      # every current metric, from the checkpoints
  jaxdepth table --table quickstart --workdir runs/qs [--check README.md]
                                          # a README/docs results table, from summary.json

Bad input (unknown field, value out of range, mismatched workdir) prints one line
``jaxdepth: error: config.FIELD: ...`` and exits with status 2 before any compute;
so does a workdir whose checkpoints are all unreadable. A failed write (disk full,
permission) prints one line naming the path and errno and exits with status 1; the
previous checkpoint is kept, so the same command resumes from it.

Ctrl-C during ``jaxdepth train`` (one process) stops at the end of the running epoch
(segment), writes a checkpoint where the experiment keeps them, prints one line
``jaxdepth: interrupted at epoch 3 of 8; checkpoint written (...); resume with: ...``
and exits with status 130; a second Ctrl-C stops at once. A multi-process job keeps
the default Ctrl-C behaviour. The final results table goes to stdout; logs, warnings,
progress bars and the paths written go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import sys

from jaxdepth.errors import ConfigError, Interrupted


def load_config(spec: str, overrides: list[str]):
  """The ConfigDict ``--config SPEC`` names (a packaged name, ``NAME:VARIANT``, or a
  file path; see jaxdepth.configs), with ``--config.FIELD=VALUE`` overrides applied."""
  from absl import flags
  from ml_collections import config_flags

  from jaxdepth import configs

  config = configs.load(spec)
  overrides = join_override_values(overrides)
  _widen_to_tuples(config, overrides)
  argv = ["jaxdepth", *overrides]
  try:
    fv = flags.FlagValues()
    # sys_argv: the override flags are registered from this list, not from sys.argv.
    config_flags.DEFINE_config_dict("config", config, flag_values=fv, lock_config=True,
                                    sys_argv=argv)
    fv(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    keys = [o.split("=")[0][len("--config."):] for o in overrides
            if o.startswith("--config.")]
    field = next((k for k in keys if k in msg or k.split(".")[-1] in msg), "config")
    if isinstance(e, (AttributeError, KeyError)):
      msg = f"unknown field {field!r} (not in {spec})"
    raise ConfigError(field, msg) from None
  return fv.config


def _widen_to_tuples(config, overrides: list[str]) -> None:
  """A number field given a tuple (``--config.lr='(0.01,0.1)'``: a run axis) becomes a
  tuple field, so the override parses; whether the experiment accepts a tuple there is
  its validate's decision."""
  for o in overrides:
    if not o.startswith("--config.") or "=" not in o:
      continue
    path, value = o[len("--config."):].split("=", 1)
    if not value.strip().startswith(("(", "[")):
      continue
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
      node = node.get(part) if hasattr(node, "get") else None
    if node is None or not hasattr(node, "ignore_type") or leaf not in node:
      continue
    cur = node[leaf]
    if isinstance(cur, (int, float)) and not isinstance(cur, bool):
      with node.ignore_type():
        node[leaf] = (cur,)


def join_override_values(argv: list[str]) -> list[str]:
  """``--config.FIELD VALUE`` -> ``--config.FIELD=VALUE`` when VALUE is not an option
  (a negative number is a value); other tokens are left as they are."""
  out, i = [], 0
  while i < len(argv):
    a = argv[i]
    if (a.startswith("--config.") and "=" not in a and i + 1 < len(argv)
        and not _is_option(argv[i + 1])):
      out.append(f"{a}={argv[i + 1]}")
      i += 2
    else:
      out.append(a)
      i += 1
  return out


def _is_option(token: str) -> bool:
  if not token.startswith("-") or token == "-":
    return False
  try:
    float(token)
    return False
  except ValueError:
    return True


def list_configs(out=None) -> int:
  """``jaxdepth list``: every packaged config, its variants and its first docstring
  line (read without importing them, or jax)."""
  from jaxdepth import configs
  out = out or sys.stdout
  print("jaxdepth train --config NAME[:VARIANT] --workdir DIR   (or --config "
        "path/to/your_config.py[:ARG])\n", file=out)
  for e in configs.catalog():
    variants = ", ".join(e.variants) if e.variants else "-"
    print(f"{e.name:<28}variants: {variants}\n    {e.description}", file=out)
  return 0


def start_jax(args, runs: int | None = None) -> None:
  """Devices and processes, before jax computes anything: one CPU device per core
  (or ``--cpu_devices``; one device for a run axis of ``runs`` shorter than the core
  count, devices.use_cpu_cores), and the multi-process job when its flags are given."""
  from jaxdepth.engine import devices, distributed
  multi = distributed.check_flags(args.coordinator_address, args.num_processes,
                                  args.process_id, args.distributed)
  if args.cpu_devices is not None and args.cpu_devices < 1:
    raise distributed.FlagError("cpu_devices", f"must be >= 1, got {args.cpu_devices}")
  devices.use_cpu_cores(args.cpu_devices, None if multi else runs)
  if multi:
    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                           heartbeat_timeout=args.heartbeat_timeout)


def runtime_info() -> dict:
  """The started jax's backend and devices, for config.json's ``_provenance``
  (initializes jax: call it after :func:`start_jax`)."""
  import jax
  return {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
          "device_count": jax.device_count(), "process_count": jax.process_count()}


def _num_runs(module, config) -> int | None:
  """The run axis an experiment declares (optional ``num_runs(config)``); None when it
  declares none or the config is invalid (validate() then names the field)."""
  try:
    return int(module.num_runs(config)) if hasattr(module, "num_runs") else None
  except Exception:
    return None


def _train(args, overrides) -> int:
  from jaxdepth import configs
  from jaxdepth.engine import distributed, interrupt, writers
  from jaxdepth.engine import registry as experiments
  configs.resolve(args.config)  # an unknown name or variant stops here, before jax starts
  config = load_config(args.config, overrides)  # reads the config; starts no backend
  name = config.get("experiment", "collapse")
  module = experiments.get(name)
  start_jax(args, _num_runs(module, config))
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
  # One process: the first Ctrl-C stops at the next segment boundary (errors.Interrupted).
  graceful = (interrupt.handling_sigint() if distributed.process_count() == 1
              else contextlib.nullcontext())
  with graceful:
    summary = _train_in(args, config, module, primary, before, runtime)
  if summary is not None and primary:
    text, paths = final_report_parts(module, summary, args.workdir)
    if text:
      print(text, flush=True)
    print(paths, file=sys.stderr)
    if args.print_summary:
      import json
      print(json.dumps(writers.to_jsonable(summary), indent=1))
  return 0


def _train_in(args, config, module, primary, before, runtime):
  """module.run in a prepared workdir; what it created is removed if it stops early."""
  from jaxdepth.engine import distributed, writers
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
    return module.run(config, args.workdir)
  except BaseException:
    if primary:
      writers.remove_unstarted(args.workdir, before)
    raise


def resume_safe(module) -> tuple[str, ...]:
  """The config fields that may change on a resume: the experiment's, else the papers'."""
  from jaxdepth import papers
  return tuple(getattr(module, "RESUME_SAFE_FIELDS", papers.RESUME_SAFE_FIELDS))


def final_report_parts(module, summary: dict, workdir: str) -> tuple[str, str]:
  """(the headline table with its diverged-runs note: for stdout, the lines naming
  what the run wrote: for stderr)."""
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
  table, lines = "\n".join(lines), []
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
  return table, "\n".join(lines)


def _analyze(args, overrides) -> int:
  if overrides:
    raise ConfigError("analyze", f"unexpected arguments {overrides}")
  from jaxdepth.papers import reanalyze
  start_jax(args)
  module, summary = reanalyze.main(args.workdir)
  text, paths = final_report_parts(module, summary, args.workdir)
  if text:
    print(text, flush=True)
  print(paths, file=sys.stderr)
  return 0


def _bound(args, overrides) -> int:
  if overrides:
    raise ConfigError("bound", f"unexpected arguments {overrides}")
  from jaxdepth.papers.minimal_depth import bound_main
  bound_main.main(args.workdir, eps=args.eps, alpha=args.alpha, p=args.p,
                  out=args.out)
  return 0


def main(argv: list[str] | None = None) -> int:
  from jaxdepth.version import __version__
  # The command draws only to files: a non-interactive backend, chosen here and not in
  # the library (whose import leaves a notebook's inline backend alone). An environment
  # variable, so that `jaxdepth list` still imports no matplotlib.
  os.environ.setdefault("MPLBACKEND", "Agg")
  command = "jaxdepth " + shlex.join(sys.argv[1:] if argv is None else list(argv))
  argv = join_override_values(sys.argv[1:] if argv is None else list(argv))
  parser = argparse.ArgumentParser(prog="jaxdepth", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--version", action="version", version=f"jaxdepth {__version__}")
  sub = parser.add_subparsers(dest="command", required=True)
  t = sub.add_parser("train", help="run the experiment a config describes")
  t.add_argument("--config", required=True,
                 help="NAME[:VARIANT] (see `jaxdepth list`) or PATH.py[:ARG]")
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
  a = sub.add_parser("analyze", help="recompute every metric of a finished run from its "
                     "checkpoints (no training)")
  a.add_argument("--workdir", required=True)
  for flag in ("cpu_devices", "coordinator_address", "num_processes", "process_id"):
    a.set_defaults(**{flag: None})
  a.set_defaults(distributed=False, heartbeat_timeout=30)
  b = sub.add_parser("bound", help="offline generalization-bound report from checkpoints")
  b.add_argument("--workdir", required=True)
  b.add_argument("--eps", type=float, nargs="+", default=None)
  b.add_argument("--alpha", type=float, nargs="+", default=None)
  b.add_argument("--p", type=float, nargs="+", default=None)
  b.add_argument("--out", default=None, help="output prefix (default WORKDIR/bound)")
  sub.add_parser("list", help="every packaged config, its variants and what it runs")
  fl = sub.add_parser("fields", help="every config field: default, type, allowed values "
                      "(docs/config_fields.md)")
  fl.add_argument("--experiment", default=None, help="one experiment's table (default: all)")
  fl.add_argument("--write", default=None, metavar="FILE",
                  help="write the markdown to FILE instead of printing it")
  tb = sub.add_parser("table", help="regenerate a README/docs results table from a run "
                      "(see python -m jaxdepth.tools.tables --help)")
  from jaxdepth.tools import tables  # stdlib only: no jax, no numpy at import
  tables.add_arguments(tb)
  args, rest = parser.parse_known_args(argv)
  bad = [r for r in rest if not r.startswith("--config.")]
  if bad:
    parser.error(f"unrecognized arguments: {' '.join(bad)}")
  try:
    if args.command == "list":
      if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
      return list_configs()
    if args.command == "fields":
      if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
      from jaxdepth.tools import fields
      return fields.run(args)
    if args.command == "table":
      if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
      return tables.run(args)
    return {"train": _train, "bound": _bound, "analyze": _analyze}[args.command](args, rest)
  except ConfigError as e:
    print(f"jaxdepth: error: {e}", file=sys.stderr)
    return 2
  except Interrupted as e:
    _close_bars()
    where = f"jaxdepth: interrupted at {e.unit} {e.done} of {e.total}"
    if e.checkpoint:
      print(f"{where}; checkpoint written ({e.checkpoint}); resume with: {command}",
            file=sys.stderr)
    else:
      print(f"{where}; no checkpoint (this experiment restarts from the beginning)",
            file=sys.stderr)
    return 130
  except KeyboardInterrupt:  # outside a training loop, or a second Ctrl-C
    _close_bars()
    print(f"jaxdepth: interrupted (no checkpoint written now); run again with: {command}",
          file=sys.stderr)
    return 130
  except OSError as e:  # disk full, permission: one line naming the path and errno
    if e.errno is None:
      raise
    print(f"jaxdepth: error: {_os_error(e)}", file=sys.stderr)
    return 1


def _close_bars() -> None:
  """End any progress bar's line, so that the next message starts a line of its own."""
  try:
    from tqdm import tqdm
    for bar in list(getattr(tqdm, "_instances", ())):
      bar.close()
  except Exception:  # a message matters more than a tidy bar
    pass


def _os_error(e: OSError) -> str:
  from jaxdepth.engine.writers import WriteError
  if isinstance(e, WriteError):
    return str(e)
  name = errno.errorcode.get(e.errno, "?")
  where = f"{e.filename}: " if e.filename else ""
  return f"{where}{e.strerror} (errno {e.errno} {name})"


if __name__ == "__main__":
  sys.exit(main())
