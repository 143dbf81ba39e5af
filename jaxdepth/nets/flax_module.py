"""A user's flax linen Module as a Network (family ``flax``): trained by the sweep
engine like the built-in families, its layers measured like ``analyze_model``'s.

  c.family = "flax"
  c.model.module = "my_pkg.models:MyNet"      # or "path/to/file.py:MyNet"
  c.model.kwargs = ml_collections.ConfigDict(dict(width=64))   # MyNet(**kwargs)
  c.model.layers = ("Block_*",)               # optional: which submodule outputs

The module's calling convention:

* ``__call__(self, x, train: bool = False)`` returns the logits ``(batch, C)`` for a
  batch ``x`` of the dataset's inputs (unflattened: images stay (B, H, W, C)). A
  module whose ``__call__`` takes no ``train`` is called as ``module(x)``.
* BatchNorm: ``nn.BatchNorm(use_running_average=not train)``. In training the
  ``batch_stats`` collection is mutable and its update is kept; in evaluation (every
  per-layer analysis, NCC, test accuracy) ``train=False``: running averages.
* Dropout: ``nn.Dropout(rate, deterministic=not train)``; the ``'dropout'`` rng is
  given in training (a fresh key every step, carried per run and checkpointed, so a
  resumed run draws the same masks), never in evaluation.
* ``num_classes``: if the class has a field of that name and ``kwargs`` do not set
  it, it is set to the dataset's number of classes.
* Variables: ``params`` and optionally ``batch_stats`` (``intermediates`` sown at init
  are dropped); any other collection is a ConfigError.

Layers: the outputs of the submodules' ``__call__`` (linen ``capture_intermediates``),
in the order the calls finish, named by module path (``Block_0``, ``Block_0/Dense_0``,
...) -- the rule of :func:`jaxdepth.analyze_model` (measure/models.py, whose capture
helpers this uses). ``model.layers`` keeps only the names or glob patterns it lists
(``*`` within one path part); empty keeps all. A module output is what the module
returns: ``nn.Dense`` gives a pre-activation; wrap a layer in a submodule (a block) to
measure post-activations. Each measured layer is its own feature group (1, B, D_l).

``depth``, ``width``, ``batchnorm`` and ``init`` of the config do not apply to this
family (the module's kwargs say what it is).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxdepth.errors import ConfigError
from jaxdepth.nets.base import Network

FAMILY = "flax"
COLLECTIONS = ("params", "batch_stats")


def _plain(v):
  """ConfigDict / FrozenConfigDict / mapping -> nested plain dict (tuples kept)."""
  if hasattr(v, "to_dict"):
    v = v.to_dict()
  if isinstance(v, Mapping):
    return {k: _plain(x) for k, x in v.items()}
  return v


def _import_file(path: str):
  name = "jaxdepth_user_model_" + "".join(c if c.isalnum() else "_"
                                          for c in os.path.abspath(path))
  if name in sys.modules:
    return sys.modules[name]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    sys.modules.pop(name, None)
    raise
  return module


def resolve(spec) -> type:
  """The linen Module class that ``spec`` (``pkg.mod:Class`` or ``file.py:Class``)
  names; ConfigError naming ``model.module`` otherwise."""
  from flax import linen as nn
  field = "model.module"
  want = "'package.module:Class' or 'path/to/file.py:Class'"
  if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
    raise ConfigError(field, f"must be {want}, got {spec!r}")
  mod_name, attr = spec.split(":")
  try:
    if mod_name.endswith(".py"):
      if not os.path.isfile(mod_name):
        raise ConfigError(field, f"no file {mod_name!r} (in {os.getcwd()})")
      module = _import_file(mod_name)
    else:
      module = importlib.import_module(mod_name)
  except ConfigError:
    raise
  except Exception as e:  # the user's code: any error while importing it
    lines = str(e).strip().splitlines() or [""]
    raise ConfigError(field, f"cannot import {mod_name!r}: {type(e).__name__}: "
                      f"{lines[0]}") from None
  obj = module
  for part in attr.split("."):
    if not hasattr(obj, part):
      raise ConfigError(field, f"{mod_name!r} has no attribute {attr!r}")
    obj = getattr(obj, part)
  if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
    raise ConfigError(field, f"{spec!r} is {type(obj).__name__} {obj!r}, not a flax "
                      "linen Module class (flax.linen.Module subclass)")
  return obj


def _takes_train(cls) -> bool:
  try:
    params = inspect.signature(cls.__call__).parameters
  except (TypeError, ValueError):
    return False
  return "train" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def instantiate(model_cfg, num_classes: int | None = None):
  """(the module instance, whether its __call__ takes ``train``); ConfigError for a
  bad ``model.module``, ``model.kwargs`` or ``model.layers``."""
  cls = resolve(model_cfg.get("module", None))
  kwargs = model_cfg.get("kwargs", None)
  kwargs = {} if kwargs is None else _plain(kwargs)
  if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
    raise ConfigError("model.kwargs", "must be a dict of keyword arguments "
                      f"(a ConfigDict), got {kwargs!r}")
  fields = {f.name for f in dataclasses.fields(cls) if f.init} - {"parent", "name"}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ConfigError("model.kwargs", f"{cls.__name__} has no field {unknown[0]!r}; "
                      f"its fields: {', '.join(sorted(fields)) or '(none)'}")
  if "num_classes" in fields and "num_classes" not in kwargs:
    # validate_model knows no dataset yet: any class count checks the other kwargs
    kwargs["num_classes"] = 2 if num_classes is None else int(num_classes)
  try:
    module = cls(**kwargs)
  except Exception as e:
    raise ConfigError("model.kwargs", f"{cls.__name__}(**kwargs) failed: "
                      f"{type(e).__name__}: {e}") from None
  layers = model_cfg.get("layers", ())
  if isinstance(layers, str) or not isinstance(layers, (tuple, list)) or not all(
      isinstance(n, str) and n for n in layers):
    raise ConfigError("model.layers", "must be a tuple of layer names or glob patterns "
                      f"('Block_*'), empty for all; got {layers!r}")
  return module, _takes_train(cls)


def validate_model(model_cfg) -> None:
  """Check ``model.module``, ``model.kwargs`` and ``model.layers`` (imports the
  module; no compute). The fit to the data is checked by :func:`build_flax`."""
  instantiate(model_cfg)


def build_flax(model_cfg, input_shape, num_classes: int) -> Network:
  """The Network of the linen module ``model_cfg['module']`` (module docstring)."""
  from jaxdepth.measure import models
  module, takes_train = instantiate(model_cfg, num_classes)
  patterns = tuple(model_cfg.get("layers", ()) or ())
  keep = models.select_layers(patterns or None)
  x0 = jnp.zeros((1, *input_shape), jnp.float32)
  call = lambda train: {"train": train} if takes_train else {}

  def module_init(key):
    k_params, k_dropout = jax.random.split(key)
    return module.init({"params": k_params, "dropout": k_dropout}, x0, **call(False))

  try:
    shapes = jax.eval_shape(module_init, jax.random.key(0))
  except ConfigError:
    raise
  except Exception as e:
    lines = str(e).strip().splitlines() or [""]
    raise ConfigError("model.module", f"{type(module).__name__}.init on inputs of "
                      f"shape {(1, *input_shape)} failed: {type(e).__name__}: "
                      f"{lines[0]}") from None
  extra = sorted(set(shapes) - set(COLLECTIONS) - {"intermediates"})
  if extra:
    raise ConfigError("model.module", f"{type(module).__name__} has variable "
                      f"collections {extra}; supported: {', '.join(COLLECTIONS)}")
  has_stats = "batch_stats" in shapes

  def init_fn(key):
    k_module, k_dropout = jax.random.split(key)
    v = module_init(k_module)
    return {"params": v["params"],
            "batch_stats": {"module": v.get("batch_stats", {}),
                            "dropout_key": jax.random.key_data(k_dropout)}}

  def apply_fn(variables, x, train: bool = False):
    stats = variables["batch_stats"]
    v = {"params": variables["params"]}
    if has_stats:
      v["batch_stats"] = stats["module"]
    mutable = ["intermediates", *(["batch_stats"] if train and has_stats else [])]
    rngs, new_stats = {}, stats
    if train:
      k_step, k_next = jax.random.split(jax.random.wrap_key_data(stats["dropout_key"]))
      rngs = {"dropout": k_step}
    logits, state = module.apply(v, x, rngs=rngs, mutable=mutable,
                                 capture_intermediates=models.capture_calls, **call(train))
    if train:
      new_stats = {"module": state.get("batch_stats", stats["module"]),
                   "dropout_key": jax.random.key_data(k_next)}
    layers = models.linen_layers(state.get("intermediates", {}), keep)
    groups = tuple(a.reshape(1, a.shape[0], -1) for _, a in layers)
    return logits, groups, new_stats

  meta = {}

  def probe(v, x):
    logits, state = module.apply(v, x, mutable=["intermediates"],
                                 capture_intermediates=models.capture_calls, **call(False))
    layers = models.linen_layers(state.get("intermediates", {}), lambda p: True)
    meta["all"] = [(n, a.shape) for n, a in layers]
    meta["kept"] = [n for n, _ in models.linen_layers(state.get("intermediates", {}),
                                                      keep)]
    return logits

  x2 = jnp.zeros((2, *input_shape), jnp.float32)
  try:
    logits = jax.eval_shape(probe, {k: shapes[k] for k in shapes if k in COLLECTIONS}, x2)
  except Exception as e:
    lines = str(e).strip().splitlines() or [""]
    raise ConfigError("model.module", f"{type(module).__name__} on inputs of shape "
                      f"{x2.shape} failed: {type(e).__name__}: {lines[0]}") from None
  if not hasattr(logits, "shape") or tuple(logits.shape) != (2, num_classes):
    got = getattr(logits, "shape", type(logits).__name__)
    raise ConfigError("model.module", f"{type(module).__name__} must return logits of "
                      f"shape (batch, {num_classes}); on a batch of 2 it returned {got}")
  all_names = [n for n, _ in meta["all"]]
  for p in patterns:
    if not any(models.select_layers([p])(tuple(n.split(":")[0].split("/")))
               for n in all_names):
      raise ConfigError("model.layers", f"{p!r} matches no layer; the module's layers: "
                        f"{', '.join(all_names) or '(none)'}")
  names = tuple(meta["kept"])
  if not names:
    raise ConfigError("model.layers", f"no layer selected; the module's layers: "
                      f"{', '.join(all_names) or '(none: it has no submodules)'}")
  return Network(init=jax.jit(init_fn), apply=apply_fn, num_layers=len(names),
                 layer_names=names)
