"""Names of experiments (``config.experiment``) -> modules with validate/run.

Each module defines ``validate(config) -> None`` (raises ConfigError, no compute)
and ``run(config, workdir) -> dict`` (the summary that is also written to
``workdir/summary.json``). Modules are imported lazily so that ``jaxdepth --help``
stays fast.
"""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    # Galanti et al.: per-layer NCC / CDNV / effective depth, noise sweeps.
    "collapse": "jaxdepth.papers.minimal_depth.train",
    "bound": "jaxdepth.papers.minimal_depth.bound_experiment",
    # Gissin et al.: incremental learning.
    "incremental.toy": "jaxdepth.papers.incremental.toy",
    "incremental.matrix_sensing": "jaxdepth.papers.incremental.matrix_sensing",
    "incremental.quadratic": "jaxdepth.papers.incremental.quadratic",
    "incremental.diagonal": "jaxdepth.papers.incremental.diagonal",
    "incremental.circular_conv": "jaxdepth.papers.incremental.circular_conv",
    "incremental.omp": "jaxdepth.papers.incremental.omp",
    # Huh et al.: low-rank simplicity bias.
    "lowrank.volume": "jaxdepth.papers.lowrank.volume",
    "lowrank.init_rank": "jaxdepth.papers.lowrank.init_rank",
    "lowrank.regression": "jaxdepth.papers.lowrank.regression",
    "lowrank.optimizers": "jaxdepth.papers.lowrank.optimizers",
    "lowrank.overparam": "jaxdepth.papers.lowrank.overparam_exp",
}


# Experiments whose run grid spans several JAX processes (the others refuse a
# multi-process job with a one-line error).
MULTI_PROCESS = ("collapse",)


def get(name: str):
  from jaxdepth.engine.validate import ConfigError
  if name not in EXPERIMENTS:
    raise ConfigError("experiment",
                      f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
  return importlib.import_module(EXPERIMENTS[name])
