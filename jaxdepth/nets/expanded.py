"""The ``overparam`` family: a core MLP or CONV-L-H with every Linear/Conv layer
linearly expanded (Huh et al.); apply collapses the factors exactly (overparam.py).

  nets.build({"family": "overparam", "base": "mlp", "expansion": 4, ...}, shape, C)
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxdepth import nets
from jaxdepth.engine.validate import ConfigError
from jaxdepth.nets import overparam

MODELS = {"mlp": "mlp", "conv": "conv"}  # config name -> core family


def sites(base: str, params, expansion: int, width: float, input_shape) -> list:
  """Expansion sites of every Linear/Conv layer of a core MLP or CONV-L-H."""
  relu, lin = math.sqrt(2.0), 1.0
  out = []
  if base == "mlp":
    for w, b, gain in (("w_in", "b_in", relu), ("w_hid", "b_hid", relu),
                       ("w_out", "b_out", lin)):
      shape = np.shape(params[w])
      stacked = shape[0] if w == "w_hid" else 0
      if w == "w_hid" and stacked == 0:
        continue
      d_in, d_out = shape[-2:]
      out.append(overparam.Site((w,), (b,), overparam.DenseSpec(
          d_in, d_out, depth=expansion, width=width, gain=gain), stacked))
    return out
  one_d = len(input_shape) < 3
  for group, stride in (("stem", 2), ("hidden", 1)):
    shape = np.shape(params[group]["w"])
    stacked = shape[0] if group == "hidden" else 0
    if group == "hidden" and stacked == 0:
      continue
    cin, cout = shape[-2:]
    has_b = "b" in params[group]
    spec = overparam.ConvSpec(
        cin, cout, kernel=(1, 3) if one_d else 3, depth=expansion, width=width,
        stride=(1, stride) if one_d else stride,
        padding=((0, 0), (1, 1)) if one_d else 1, bias=has_b, fan="fan_in", gain=relu)
    out.append(overparam.Site((group, "w"), (group, "b") if has_b else None, spec,
                              stacked, one_d))
  d_in, d_out = np.shape(params["head"]["w"])
  out.append(overparam.Site(("head", "w"), ("head", "b"), overparam.DenseSpec(
      d_in, d_out, depth=expansion, width=width, gain=lin)))
  return out


def validate_model(model_cfg) -> None:
  base = model_cfg.get("base", None)
  if base not in MODELS:
    raise ConfigError("models", f"unknown model {base!r}; allowed: {', '.join(MODELS)}")
  module = nets.family_module(MODELS[base])
  if hasattr(module, "validate_model"):
    module.validate_model({**model_cfg, "family": MODELS[base]})


def build_expanded(model_cfg, input_shape, num_classes
                   ) -> tuple[nets.Network, list[overparam.Site]]:
  """The core network of ``model_cfg['base']`` with every layer linearly expanded,
  and its expansion sites. apply collapses the factors, then runs the core network
  (exact, and the same gradients as applying the sub-layers one by one)."""
  base_cfg = {**model_cfg, "family": MODELS[model_cfg["base"]]}
  base = nets.build(base_cfg, input_shape, num_classes)
  shapes = jax.eval_shape(base.init, jax.random.key(0))["params"]
  site_list = sites(model_cfg["base"], shapes, int(model_cfg["expansion"]),
                    float(model_cfg.get("expansion_width", 1.0)), input_shape)

  def init_fn(key):
    k_base, k_exp = jax.random.split(key)
    v = base.init(k_base)
    return {"params": overparam.expand_params(k_exp, v["params"], site_list),
            "batch_stats": v["batch_stats"]}

  def apply_fn(variables, x, train: bool = False):
    plain = overparam.collapse_params(variables["params"], site_list)
    return base.apply({"params": plain, "batch_stats": variables["batch_stats"]}, x,
                      train)

  # init is jitted: eagerly, every random call would compile on its own.
  net = nets.Network(jax.jit(init_fn), apply_fn, base.num_layers, base.layer_names)
  return net, site_list


def build_family(model_cfg, input_shape, num_classes) -> nets.Network:
  return build_expanded(model_cfg, input_shape, num_classes)[0]
