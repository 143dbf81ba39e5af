"""``jaxdepth analyze --workdir W``: recompute every metric of a finished run from its
checkpoints, without training, so metrics added to jaxdepth since reach old runs.

The run's own ``config.json`` is loaded and its experiment run again: the engine's
driver restores each program's final checkpoint and evaluates it once (the analysis of
the current jaxdepth), then the experiment writes summary.json, layers.csv and its
figures anew. Nothing is trained: a run whose checkpoints stop before the last epoch is
refused with one line (resume it with ``jaxdepth train`` first), and metrics.jsonl
gains no line (its steps are logged already).
"""

from __future__ import annotations

import os

from jaxdepth.engine import writers
from jaxdepth.errors import ConfigError

# Experiments with a network whose checkpoints hold everything the analysis needs.
ANALYZABLE = ("collapse", "bound", "lowrank.overparam")


def _tuples(x):
  if isinstance(x, list):
    return tuple(_tuples(v) for v in x)
  if isinstance(x, dict):
    return {k: _tuples(v) for k, v in x.items()}
  return x


def load_run_config(workdir: str):
  """The ConfigDict a run was started with (config.json; lists back to tuples)."""
  import ml_collections
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ConfigError("workdir", f"{workdir} holds no run (no config.json)")
  raw = writers.read_json(path)
  writers.check_schema(raw.get(writers.SCHEMA_KEY), workdir)
  raw = {k: v for k, v in raw.items() if not k.startswith("_")}
  return ml_collections.ConfigDict(_tuples(raw))


def _check_complete(workdir: str, config) -> None:
  """Every program's newest checkpoint must be its last epoch (read through
  ckpt.newest_meta: nothing is checked, moved or written here)."""
  from jaxdepth.engine import ckpt
  root = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(root):
    raise ConfigError("workdir", f"{workdir} has no checkpoints to analyse")
  for tag in sorted(os.listdir(root)):
    sub = os.path.join(root, tag)
    if tag == "data" or not os.path.isdir(sub):
      continue
    newest = ckpt.newest_meta(sub)
    if newest is None and not any(ckpt.ASIDE_MARKER in n for n in os.listdir(sub)):
      newest = (None, {"segment": 0})  # started, never saved: it would train from scratch
    # Metadata unreadable, or every step set aside: the driver's restore decides (it
    # reports an unreadable step in one line and refuses when none is left).
    meta = (newest and newest[1]) or {}
    done = meta.get("segment", meta.get("epoch"))
    if done is not None and done < config.epochs:
      raise ConfigError("workdir", f"{workdir}: checkpoints/{tag} stops at epoch {done} of "
                        f"{config.epochs}; finish it with jaxdepth train --config ... "
                        f"--workdir {workdir} first (analyze never trains)")


def main(workdir: str):
  """Re-run the finished experiment of ``workdir``; returns (its module, the summary)."""
  from jaxdepth.engine import registry
  config = load_run_config(workdir)
  name = config.get("experiment", "collapse")
  if name not in ANALYZABLE:
    raise ConfigError("experiment", f"{name!r} has no network checkpoints to analyse; "
                      f"analyze runs: {', '.join(ANALYZABLE)}")
  _check_complete(workdir, config)
  module = registry.get(name)
  module.validate(config)
  return module, module.run(config, workdir)
