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
    "collapse": "jaxdepth.train",
    "bound": "jaxdepth.bound_experiment",
    # Gissin et al.: incremental learning.
    "incremental.toy": "jaxdepth.incremental.toy",
    "incremental.matrix_sensing": "jaxdepth.incremental.matrix_sensing",
    "incremental.quadratic": "jaxdepth.incremental.quadratic",
    "incremental.diagonal": "jaxdepth.incremental.diagonal",
    "incremental.circular_conv": "jaxdepth.incremental.circular_conv",
    "incremental.omp": "jaxdepth.incremental.omp",
    # Huh et al.: low-rank simplicity bias.
    "lowrank.volume": "jaxdepth.lowrank.volume",
    "lowrank.init_rank": "jaxdepth.lowrank.init_rank",
    "lowrank.regression": "jaxdepth.lowrank.regression",
    "lowrank.optimizers": "jaxdepth.lowrank.optimizers",
    "lowrank.overparam": "jaxdepth.lowrank.overparam_exp",
}


def get(name: str):
  from jaxdepth.validate import ConfigError
  if name not in EXPERIMENTS:
    raise ConfigError("experiment",
                      f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
  return importlib.import_module(EXPERIMENTS[name])
