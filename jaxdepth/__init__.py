"""jaxdepth: the implicit bias of depth, measured in JAX.

The public API for notebooks (imported lazily: ``import jaxdepth`` loads no jax and
changes neither XLA_FLAGS nor jax's config):

  import jaxdepth
  jaxdepth.use_cpu_cores()                  # CPU: one XLA device per core (call first)
  net = jaxdepth.build_network({"family": "mlp", "depth": 8, "width": 64}, (40,), 10)
  summary = jaxdepth.run("tiny", "runs/tiny", epochs=8)   # any experiment, by config name
  df = jaxdepth.load_metrics("runs/tiny")   # metrics.jsonl, one row per (run, step, metric)
  m = jaxdepth.per_layer([h1, h2], y, 10)   # NCC, CDNV, rank of any embeddings

Packages: ``engine`` (sweep loop, devices, processes, checkpoints, writers, reports),
``nets``, ``data``, ``measure`` and ``papers`` (minimal_depth, incremental, lowrank);
docs/architecture.md describes how they fit.
"""

from __future__ import annotations

import importlib

from jaxdepth.version import __version__

# name -> (module, attribute)
_API = {
    "use_cpu_cores": ("jaxdepth.engine.devices", "use_cpu_cores"),
    "build_network": ("jaxdepth.nets", "build"),
    "mlp": ("jaxdepth.nets", "mlp"),
    "load_dataset": ("jaxdepth.data", "load"),
    "corrupt_labels": ("jaxdepth.data", "corrupt_labels"),
    "per_layer": ("jaxdepth.measure", "per_layer"),
    "ncc_accuracy": ("jaxdepth.measure.collapse", "ncc_accuracy"),
    "class_means": ("jaxdepth.measure.collapse", "class_means"),
    "cdnv": ("jaxdepth.measure.collapse", "cdnv"),
    "collapse_metrics": ("jaxdepth.measure.nc", "collapse_metrics"),
    "analyze_model": ("jaxdepth.measure.models", "analyze_model"),
    "effective_depth": ("jaxdepth.measure.collapse", "effective_depth"),
    "effective_rank": ("jaxdepth.measure.rank", "entropy_rank"),
    "load_config": ("jaxdepth.cli", "load_config"),
    "experiments": ("jaxdepth.engine.registry", "names"),
    "load_metrics": ("jaxdepth.papers", "load_metrics"),
}
__all__ = ["run", "__version__", *_API]


def run(config, workdir: str, **overrides):
  """Run any experiment (a config name ``"quickstart:tiny"``, a config file path
  ``"my_config.py[:arg]"``, as ``--config`` takes, or a ConfigDict) into ``workdir``,
  as ``jaxdepth train`` does; returns its summary dict.

  ``overrides`` set config fields (``epochs=8``, ``**{"data.num_train": 512}``).
  """
  from jaxdepth.cli import load_config
  from jaxdepth.engine import registry, writers
  if isinstance(config, str):
    config = load_config(config, [f"--config.{k}={v}" for k, v in overrides.items()])
  else:
    config = config.copy_and_resolve_references()
    for k, v in overrides.items():
      node = config
      *parents, leaf = k.split(".")
      for p in parents:
        node = node[p]
      node[leaf] = v
  module = registry.get(config.get("experiment", "collapse"))
  module.validate(config)
  from jaxdepth.cli import resume_safe, runtime_info
  writers.prepare_workdir(workdir, config, resume_safe(module), runtime_info())
  return module.run(config, workdir)


def __getattr__(name: str):
  if name in _API:
    mod, attr = _API[name]
    return getattr(importlib.import_module(mod), attr)
  raise AttributeError(f"module 'jaxdepth' has no attribute {name!r}")


def __dir__():
  return sorted(__all__)
