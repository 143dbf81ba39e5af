"""Depth-parameterized networks: the family registry and the shared contract.

  nets.build({"family": "mlp", "depth": 8, "width": 64, ...}, input_shape, num_classes)

Families: ``mlp`` (mlp.py), ``conv`` (conv.py, CONV-L-H), ``resnet18_top`` (trunks.py),
``overparam`` (expanded.py over overparam.py, linear over-parameterization collapsed in
apply), ``flax`` (flax_module.py: a user's linen Module, ``model.module =
"pkg.mod:Class"``). BatchNorm and weight initialization of the built-in ones: layers.py.
"""

from __future__ import annotations

import importlib

from jaxdepth.nets.base import Network
from jaxdepth.nets.layers import BN_EPS, BN_MOMENTUM, batch_norm, bn_init, dense_init
from jaxdepth.nets.mlp import mlp

__all__ = ["Network", "FAMILIES", "build", "family_module", "mlp", "dense_init",
           "batch_norm", "bn_init", "BN_EPS", "BN_MOMENTUM"]


# Families other than the MLP live in their own modules, imported on demand.
FAMILIES = {
    "mlp": "jaxdepth.nets.mlp:build_mlp",
    "conv": "jaxdepth.nets.conv:build_conv",
    "resnet18_top": "jaxdepth.nets.trunks:build_resnet18_top",
    # linearly over-parameterized MLP / CONV-L-H, collapsed in apply (Huh et al.)
    "overparam": "jaxdepth.nets.expanded:build_family",
    # a user's flax linen Module named by import path (model.module, model.kwargs)
    "flax": "jaxdepth.nets.flax_module:build_flax",
}


def family_module(family: str):
  """The module that builds ``family`` (see FAMILIES)."""
  if family not in FAMILIES:
    raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")
  return importlib.import_module(FAMILIES[family].split(":")[0])


def build(model_cfg, input_shape: tuple[int, ...], num_classes: int) -> Network:
  """Network for ``model_cfg.family`` (see FAMILIES) on inputs of ``input_shape``."""
  module = family_module(model_cfg["family"])  # raises for an unknown family
  fn = FAMILIES[model_cfg["family"]].split(":")[1]
  return getattr(module, fn)(model_cfg, tuple(input_shape), num_classes)
