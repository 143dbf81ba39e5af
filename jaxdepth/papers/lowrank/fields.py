"""The config fields of the low-rank experiments, each declared once.

``VOLUME``, ``INIT_RANK``, ``REGRESSION``, ``OPTIMIZERS`` and ``OVERPARAM`` are
:class:`jaxdepth.engine.validate.Schema` records (a Field per config field: default,
kind, allowed values, one line of meaning; and the rules across fields), derived from
one pool of Fields (``_POOL``; OVERPARAM's ``data.*`` and ``train.*`` rows take the
collapse trainer's rules, papers/minimal_depth/fields.py). From them come the defaults
of ``configs/lowrank/{volume,init_rank,regression,optimizers,overparam}.py``
(``SCHEMA.defaults()`` plus their variants), each experiment's ``validate``
(``SCHEMA.validate(config)``) and docs/config_fields.md (``jaxdepth fields``).

Imports nothing heavy (the configs import it); the activations' and expanded models'
names are looked up (init_rank.py, nets/expanded.py) when a config is checked.
"""

from __future__ import annotations

import dataclasses
import math

from jaxdepth.engine import validate as V
from jaxdepth.engine.validate import ABSENT, Field
from jaxdepth.papers.minimal_depth import fields as collapse_fields

DISTRIBUTIONS = ("normal", "uniform")
TARGETS = ("low_rank", "full_rank")
INITS = ("normal", "low_rank")
OPTIMIZER_NAMES = ("sgd", "nesterov", "adam", "lbfgs", "random_search", "es")
GRADIENT_FREE = ("random_search", "es")
LEARNING_RATES = ("sgd", "nesterov", "adam", "es")  # the optimizers with a step size


def _activations() -> tuple[str, ...]:
  from jaxdepth.papers.lowrank import init_rank
  return tuple(init_rank.ACTIVATIONS)


def _expanded_models() -> tuple[str, ...]:
  from jaxdepth.nets import expanded
  return tuple(expanded.MODELS)


# Every field once; a default here is the one most configs use (each schema below
# states its own where it differs).
_POOL = (
    Field("experiment", "lowrank.volume", "str",
          "registry name (`jaxdepth/papers/lowrank/`)"),
    Field("depths", (1, 2, 4, 8, 16), "ints", "numbers of factors / layers d (one "
          "compiled program each)", low=1),
    Field("draws", 1000, "int", "independent random draws per depth (vmapped)", low=2),
    Field("distribution", "normal", "str", "entries of each random factor",
          choices=DISTRIBUTIONS),
    Field("dim", 32, "int", "input = output dimension of W*", low=2),
    Field("target_rank", 4, "int", "rank of the low-rank W* (flat spectrum)", low=1),
    Field("n_train", 24, "int", "training points (< dim: under-determined)", low=1),
    Field("n_test", 2000, "int", "test points", low=1),
    Field("steps", 4000, "int", "full-batch GD steps", low=1),
    Field("num_seeds", 3, "int", "seeds (data, target, init), vmapped", low=1),
    Field("seed", 0, "int", "root seed", low=0),
    Field("progress", True, "bool", "progress bar"),
)


def _schema(experiment: str, names: tuple, doc: str, new=(), defaults=None,
            checks=()) -> V.Schema:
  """``experiment``'s Schema: ``names`` from the pool (or ``new``), its defaults."""
  fields = V.derive(_POOL, names, new, {"experiment": experiment, **(defaults or {})})
  return V.Schema(experiment, fields, tuple(checks), doc=doc)


# ------------------------------------------------------------ rules across fields
def thresholds_below_log_n(config) -> None:
  """Every threshold is at most log(n) (the largest rho of an n x n matrix)."""
  top = math.log(config.n)
  for i, x in enumerate(config.thresholds):
    V.require(x <= top, "thresholds",
              f"entry {i} must be in (0, log n = {top:g}], got {x}")


def _at_most_dim(config, field: str) -> None:
  v, dim = config[field], config.dim
  V.require(v <= dim, field, f"must be in [1, {dim}] (1 to dim), got {v}")


def target_rank_fits_dim(config) -> None:
  """target_rank <= dim."""
  _at_most_dim(config, "target_rank")


def init_rank_fits_dim(config) -> None:
  """init_rank <= dim."""
  _at_most_dim(config, "init_rank")


def log_every_divides_steps(config) -> None:
  """log_every divides steps."""
  V.require(config.steps % config.log_every == 0, "log_every",
            f"must divide steps={config.steps}, got {config.log_every}")


def every_rate_is_set(config) -> None:
  """lr sets every step size (lr.sgd, lr.nesterov, lr.adam, lr.es) and sigma every
  perturbation scale (sigma.random_search, sigma.es)."""
  for group, names in (("lr", LEARNING_RATES), ("sigma", GRADIENT_FREE)):
    for o in names:
      V.require(o in config[group], f"{group}.{o}", "missing field (a number > 0)")


# ---------------------------------------------------------------------- schemas
VOLUME = _schema(
    "lowrank.volume",
    ("experiment", "n", "depths", "draws", "distribution", "thresholds", "seed", "bins",
     "progress"),
    new=(
        Field("n", 16, "int", "factor size n x n", low=2, high=512),
        Field("thresholds", (0.5, 1.0, 1.5, 2.0, 2.5), "floats", "tau: the fraction of "
              "draws with rho < tau is reported", low=0.0, low_open=True),
        Field("bins", 40, "int", "histogram bins on [0, log n]", low=2),
    ),
    checks=(thresholds_below_log_n,),
    doc="Volume simulation: rho of random products of n x n matrices vs depth "
    "(`jaxdepth/papers/lowrank/volume.py`; config: `configs/lowrank/volume.py`).")

INIT_RANK = _schema(
    "lowrank.init_rank",
    ("experiment", "n_points", "d_in", "width", "depths", "activations", "distribution",
     "draws", "center", "seed", "progress"),
    new=(
        Field("n_points", 128, "int", "N rows of the fixed input batch X ~ N(0, I)",
              low=2),
        Field("d_in", 16, "int", "input dimension", low=1),
        Field("width", 16, "int", "width of every layer", low=1),
        Field("activations", ("linear", "relu", "tanh"), "strs", "activations compared "
              "(one program computes them all)", choices=_activations),
        Field("distribution", "normal", "str", "weights, Kaiming variance",
              choices=DISTRIBUTIONS),
        Field("center", False, "bool", "subtract the batch mean before K = Phi Phi^T"),
    ),
    defaults={"draws": 100},
    doc="Gram rank rho(K) of MLP embeddings at initialization vs depth "
    "(`jaxdepth/papers/lowrank/init_rank.py`; config: `configs/lowrank/init_rank.py`).")

REGRESSION = _schema(
    "lowrank.regression",
    ("experiment", "dim", "targets", "target_rank", "n_train", "n_test", "depths",
     "inits", "init_rank", "steps", "lr", "lr_scaling", "num_seeds", "seed",
     "log_every", "progress"),
    new=(
        Field("targets", TARGETS, "strs", "kinds of W* (vmapped)", choices=TARGETS),
        Field("inits", ("normal",), "strs", "normal (N(0, 1/dim)) and/or low_rank "
              "factors", choices=INITS),
        Field("init_rank", 4, "int", "rank of each factor for the low_rank init", low=1),
        Field("lr", 0.2, "float", "base learning rate", low=0.0, low_open=True),
        Field("lr_scaling", "inverse_depth", "str", "inverse_depth (lr / d) | none",
              choices=("inverse_depth", "none")),
        Field("log_every", 100, "int", "steps between logged training losses", low=1),
    ),
    defaults={"depths": (1, 4, 8, 12, 16, 20, 24, 28, 32)},
    checks=(target_rank_fits_dim, init_rank_fits_dim, log_every_divides_steps),
    doc="Deep linear networks on low-rank vs full-rank regression targets "
    "(`jaxdepth/papers/lowrank/regression.py`; config: `configs/lowrank/regression.py`).")

OPTIMIZERS = _schema(
    "lowrank.optimizers",
    ("experiment", "dim", "target_rank", "n_train", "n_test", "depths", "optimizers",
     "steps", "gf_steps", "lbfgs_steps", "lr", "sigma", "momentum", "population",
     "num_seeds", "seed", "progress"),
    new=(
        Field("optimizers", OPTIMIZER_NAMES, "strs", "optimizers compared",
              choices=OPTIMIZER_NAMES),
        Field("steps", 3000, "int", "steps of sgd / nesterov / adam", low=1),
        Field("gf_steps", 20000, "int", "steps of random_search / es", low=1),
        Field("lbfgs_steps", 300, "int", "L-BFGS iterations", low=1),
        Field("lr", {}, "dict", "step size per optimizer (the `lr.*` rows)"),
        Field("lr.sgd", 0.2, "float", "SGD (full-batch GD), divided by depth", low=0.0,
              low_open=True),
        Field("lr.nesterov", 0.05, "float", "Nesterov, divided by depth", low=0.0,
              low_open=True),
        Field("lr.adam", 0.003, "float", "Adam", low=0.0, low_open=True),
        Field("lr.es", 0.003, "float", "Adam on the ES gradient estimate", low=0.0,
              low_open=True),
        Field("sigma", {}, "dict", "perturbation scale per gradient-free method (the "
              "`sigma.*` rows)"),
        Field("sigma.random_search", 0.05, "float", "perturbation scale, annealed to "
              "1/100", low=0.0, low_open=True),
        Field("sigma.es", 0.02, "float", "ES smoothing scale", low=0.0, low_open=True),
        Field("momentum", 0.9, "float", "Nesterov momentum", low=0.0, high=1.0,
              high_open=True),
        Field("population", 16, "int", "ES antithetic pairs per step", low=1),
    ),
    defaults={"dim": 16, "target_rank": 2, "n_train": 12, "n_test": 1000,
              "depths": (1, 2, 4, 8)},
    checks=(target_rank_fits_dim, every_rate_is_set),
    doc="Converged rho(W_e) vs depth for six optimizers, gradient-free included "
    "(`jaxdepth/papers/lowrank/optimizers.py`; config: `configs/lowrank/optimizers.py`).")


# ------------------------------------------------------------------- overparam
OVERPARAM_DATASETS = ("digits", "mnist1d", "gaussian", "fashion_mnist")
# The core trainer's fields that overparam's ``train`` dict sets (train_config).
OVERPARAM_TRAIN = ("epochs", "batch_size", "lr", "momentum", "weight_decay",
                   "warmup_epochs", "schedule", "milestones", "decay", "eval_every",
                   "analysis_batch", "rank_samples")


def _collapse(name: str, rename: str | None = None, **defaults) -> Field:
  """The collapse trainer's Field ``name`` (its kind, rule and meaning), renamed and
  with another default: overparam hands these fields to that trainer."""
  f = V.field_map(collapse_fields.COLLAPSE.fields)[name]
  return dataclasses.replace(f, name=rename or name, **defaults)


OVERPARAM = V.Schema(
    "lowrank.overparam",
    (
        Field("experiment", "lowrank.overparam", "str",
              "registry name (`jaxdepth/papers/lowrank/`)"),
        Field("dataset", "digits", "str", "digits (8x8), mnist1d, gaussian or "
              "fashion_mnist (Debian's IDX files)", choices=OVERPARAM_DATASETS),
        _collapse("data"),
        _collapse("data.num_train", default=0),
        _collapse("data.num_test", default=0),
        _collapse("data.seed", default=0),
        *(_collapse(f"data.{k}", default=ABSENT) for k in (
            "data_dir", "download", "normalization", "pad_to_32", "idx_dir",
            "num_classes", "dim", "separation", "test_fraction", "as_image")),
        Field("models", ("mlp", "conv"), "strs", "core networks: MLP-L-H and CONV-L-H",
              choices=_expanded_models),
        Field("expansions", (1, 2, 4), "ints", "linear sub-layers per layer (1 = the "
              "network as-is; one program each)", low=1),
        Field("expansion_width", 1.0, "float", "hidden size of the expansions = "
              "width * out", low=0.0, low_open=True),
        Field("lr_scaling", "inverse_expansion", "str", "inverse_expansion (train.lr / "
              "e) | none", choices=("inverse_expansion", "none")),
        _collapse("depth", doc="L layers of the core network", default=4),
        _collapse("width", doc="H units / channels", default=64),
        _collapse("batchnorm", doc="BN after each (collapsed) layer of the core network",
                  default=False),
        _collapse("num_seeds", doc="seeds, vmapped in one program", default=3),
        _collapse("seed", default=0),
        Field("train", {}, "dict", "the core trainer's optimizer and analysis (the "
              "`train.*` rows)"),
        *(_collapse(k, f"train.{k}", default=v) for k, v in (
            ("epochs", 30), ("batch_size", 64), ("lr", 0.02), ("momentum", 0.9),
            ("weight_decay", 0.0), ("warmup_epochs", 1.0), ("schedule", "cosine"),
            ("milestones", (0.5, 0.75)), ("decay", 0.2), ("eval_every", 10),
            ("analysis_batch", 500), ("rank_samples", 256))),
        _collapse("progress", doc="progress bars"),
    ),
    doc="Linear over-parameterization of MLP-L-H and CONV-L-H, trained by the collapse "
    "trainer (`jaxdepth/papers/lowrank/overparam_exp.py`; config: "
    "`configs/lowrank/overparam.py`). Each (model, expansion)'s trainer config must "
    "also pass the collapse rules (e.g. train.batch_size <= data.num_train).")

SCHEMAS = (VOLUME, INIT_RANK, REGRESSION, OPTIMIZERS, OVERPARAM)
