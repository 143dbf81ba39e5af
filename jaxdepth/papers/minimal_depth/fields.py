"""The config fields of the minimal-depth experiments, each declared once.

``COLLAPSE`` (the 'collapse' trainer, train.py) and ``BOUND`` (the Prop. 1 protocol,
bound_experiment.py) are :class:`jaxdepth.engine.validate.Schema` records: a Field
per config field (default, kind, allowed values, one line of meaning) and the rules
that involve several fields. From them come

  * the defaults: ``configs/common.py``'s ``base()`` is ``COLLAPSE.defaults()``;
  * the validation: ``train.validate`` / ``bound_experiment.validate`` call
    ``SCHEMA.validate(config)`` (unknown fields with a did-you-mean, every field's
    rule, the cross-field checks), then check what needs the dataset or the network;
  * the docs: docs/config_fields.md (``jaxdepth fields``, tests/config_fields_test.py
    keeps it equal to this file).

Imports nothing heavy: the configs import it to build their defaults; the registries
that give some fields their allowed values (datasets, network families, augmentations)
are looked up when a config is checked.
"""

from __future__ import annotations

from jaxdepth import papers
from jaxdepth.engine import validate as V
from jaxdepth.engine.validate import ABSENT, Field


def _datasets() -> tuple[str, ...]:
  from jaxdepth import data
  return data.known_datasets()


def _families() -> tuple[str, ...]:
  from jaxdepth import nets
  return tuple(nets.FAMILIES)


def _augmentations() -> tuple[str, ...]:
  from jaxdepth.data import augment
  return augment.KINDS


# The collapse trainer's fields, in the order of its config. BOUND shares the rules of
# the fields it has in common (dataset, model, optimizer, analysis).
_COLLAPSE_FIELDS = (
    Field("experiment", "collapse", "str", "registry name (`jaxdepth/papers/`)"),
    Field("dataset", "mnist1d", "str", "mnist1d, gaussian, digits (embedded), npz (a "
          "user's arrays) or a tfds name", choices=_datasets),
    Field("data", kind="dict", doc="dataset sizes and options (the `data.*` rows)"),
    Field("data.num_train", 4000, "int", "training examples (0 = all)", low=0),
    Field("data.num_test", 1000, "int", "test examples (0 = all)", low=0),
    Field("data.seed", 42, "int", "generator / split seed of the embedded datasets",
          low=0),
    Field("data.data_dir", "", "str", "tfds data_dir ('' = tfds default)"),
    Field("data.download", False, "bool", "tfds: download_and_prepare when missing"),
    Field("data.normalization", "dataset", "str", "tfds: dataset (its own statistics) "
          "| reference (authors' code) | computed",
          choices=("dataset", "reference", "computed")),
    Field("data.pad_to_32", True, "bool",
          "tfds: zero-pad MNIST/Fashion-MNIST 28 -> 32 (reference)"),
    Field("data.idx_dir", ABSENT, "str", "Fashion-MNIST IDX files ('' = "
          "$JAXDEPTH_IDX_DIR or Debian's dataset-fashion-mnist)"),
    Field("data.path", ABSENT, "str", "dataset=npz: the .npz file (x_train, y_train, "
          "x_test, y_test)"),
    Field("data.num_classes", ABSENT, "int", "gaussian: classes; npz: 0 = 1 + the "
          "largest label", low=0),
    Field("data.dim", ABSENT, "int", "gaussian: input dimension", low=1),
    Field("data.separation", ABSENT, "float", "gaussian: distance of the class means",
          low=0.0, low_open=True),
    Field("data.test_fraction", ABSENT, "float", "digits: test split fraction",
          low=0.0, high=1.0, low_open=True, high_open=True),
    Field("data.as_image", ABSENT, "bool", "digits: 8x8x1 images (False: 64 features)"),
    Field("family", "mlp", "str", "network family (`jaxdepth/nets/`)",
          choices=_families),
    Field("depth", 8, "int", "L, number of studied layers (a shape: one compile each)",
          low=1),
    Field("width", 128, "int", "H, hidden width / channels", low=1),
    Field("batchnorm", True, "bool", "BN in every block (batch stats in training)"),
    Field("init", "kaiming", "str", "kaiming (He normal) | pytorch (PyTorch defaults, "
          "parity)", choices=("kaiming", "pytorch")),
    Field("model", {}, "dict", "family-specific extras (conv head, top_depth, flax "
          "module, ...), checked by the family's module", open=True),
    Field("num_seeds", 3, "int", "seeds per noise level, vmapped in one program", low=1),
    Field("seed", 0, "int", "root seed; init/order/noise keys are derived from it",
          low=0),
    Field("label_noise", (0.0,), "floats", "fractions p of corrupted training labels "
          "(a run axis)", low=0.0, high=1.0, high_open=True),
    Field("noise_mode", "flip", "str", "flip (always a different class) | uniform (any "
          "class)", choices=("flip", "uniform")),
    Field("epochs", 30, "int", "training epochs", low=1),
    Field("batch_size", 128, "int", "SGD batch; epoch remainder dropped (fixed shapes)",
          low=1),
    Field("lr", 0.05, "axis", "base learning rate (a tuple: a run axis)", low=0.0,
          low_open=True),
    Field("momentum", 0.9, "axis", "SGD momentum (a tuple: a run axis)", low=0.0,
          high=1.0, high_open=True),
    Field("weight_decay", 5e-4, "axis", "coupled L2, added to the gradient as PyTorch "
          "(a tuple: a run axis)", low=0.0),
    Field("warmup_epochs", 1.0, "axis", "linear warm-up from 0 (a tuple: a run axis)",
          low=0.0),
    Field("schedule", "step", "str", "learning-rate schedule after the warm-up",
          choices=("step", "cosine", "constant")),
    Field("milestones", (0.5, 0.75), "floats", "step schedule: fractions of training "
          "where lr *= decay", low=0.0, high=1.0, low_open=True, high_open=True,
          nonempty=False),
    Field("decay", 0.2, "axis", "step schedule factor (a tuple: a run axis)", low=0.0,
          high=1.0, low_open=True),
    Field("eps", (0.01, 0.05, 0.1), "floats", "effective-depth thresholds on NCC train "
          "error", low=0.0, high=1.0, high_open=True),
    Field("eval_every", 10, "int", "epochs between per-layer analyses (and always at "
          "the end)", low=1),
    Field("checkpoint_every", 10, "int", "epochs between checkpoints (and always at "
          "the end)", low=1),
    Field("keep_checkpoints", 2, "int", "checkpoints kept per program (the newest)", low=1),
    Field("augment", (), "strs", "training-only augmentation of images",
          choices=_augmentations, nonempty=False),
    Field("analysis_batch", 1000, "int", "batch size of the streamed per-layer analysis",
          low=1),
    Field("rank_samples", 512, "int", "examples whose Gram matrix gives the per-layer "
          "rank", low=1),
    Field("sweep_depths", (), "ints", "if set, loop over these depths (one program "
          "each)", low=1, nonempty=False),
    Field("sweep_widths", (), "ints", "if set, loop over these widths", low=1,
          nonempty=False),
    Field("shard_runs", True, "bool", "shard the run axis over devices when there are "
          "several"),
    Field("progress", True, "bool", "progress bar"),
    Field("plots", True, "bool", "write PNG figures"),
)


def _num_train(config):
  return (config.get("data") or {}).get("num_train", None)


def flax_size_from_module(config) -> None:
  """family 'flax': sweep_depths and sweep_widths must be empty (model.kwargs sets
  the size)."""
  if config.family == "flax":
    for f in ("sweep_depths", "sweep_widths"):
      V.require(not config[f], f, "must be empty for family 'flax' (the module's "
                "model.kwargs set its size)")


def batch_fits_train_set(config) -> None:
  """batch_size <= data.num_train when data.num_train is set (not 0)."""
  n_train = _num_train(config)
  if n_train:
    V.require(config.batch_size <= n_train, "batch_size",
              f"batch_size {config.batch_size} is larger than data.num_train {n_train}")


COLLAPSE = V.Schema(
    "collapse", _COLLAPSE_FIELDS, (flax_size_from_module, batch_fits_train_set),
    doc="Per-layer NCC separability, CDNV and effective depth over seeds x label "
    "noise x value hyperparameters x depth/width (`jaxdepth/papers/minimal_depth/"
    "train.py`; configs: `common.base()` and every config built on it). "
    "`--config.lr='(0.01,0.1)'` makes a value hyperparameter a run axis.")


# ------------------------------------------------------------------------- bound
def one_value_per_hyperparameter(config) -> None:
  """lr, weight_decay, momentum, warmup_epochs and decay take one value each (a value
  axis is a 'collapse' feature)."""
  for f in papers.HPARAM_COORDINATES:
    v = config[f]
    n = len(v) if isinstance(v, (tuple, list)) else 1
    V.require(n == 1, f, f"the bound experiment takes one value, got {n} (a value "
              "axis is a 'collapse' feature: run one bound config per value)")


def batch_fits_sample(config) -> None:
  """batch_size <= m (the size of S1)."""
  V.require(config.batch_size <= config.m, "batch_size",
            f"batch_size {config.batch_size} is larger than m={config.m}")


def two_samples_fit_pool(config) -> None:
  """2 m <= data.num_train when data.num_train is set (S1 and S2 are disjoint)."""
  n_train = _num_train(config)
  if n_train:
    V.require(2 * config.m <= n_train, "m",
              f"2m={2 * config.m} exceeds the training pool data.num_train={n_train}")


P_MAX = 0.5  # Prop. 1 holds for 0 < p < 1/2 (bounds.py reads it from here)

BOUND = V.Schema(
    "bound",
    V.derive(
        _COLLAPSE_FIELDS,
        ("experiment", "dataset", "data", "family", "depth", "width", "batchnorm",
         "init", "model", "seed", "m", "num_draws", "num_clean_seeds",
         "num_noisy_seeds", "p", "control", "noise_mode", "alpha", "eps", "epochs",
         "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs", "schedule",
         "milestones", "decay", "checkpoint_every", "keep_checkpoints",
         "analysis_batch", "rank_samples", "shard_runs", "progress"),
        new=(
            Field("m", 500, "int", "size of S1 and of S2 (a multiple of the class "
                  "count)", low=1),
            Field("num_draws", 10, "int", "K draws of (S1, S2)", low=1),
            Field("num_clean_seeds", 2, "int", "networks trained on each clean S1",
                  low=1),
            Field("num_noisy_seeds", 1, "int", "networks per draw and p (their min "
                  "gives dmin_hat)", low=1),
            Field("p", (0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3),
                  "floats", "corruption fractions of S2", low=0.0, high=P_MAX,
                  low_open=True, high_open=True, distinct=True,
                  why="Prop. 1 needs 0 < p < 1/2 (the p=0 control is "
                  "config.control=True)"),
            Field("control", True, "bool", "also train p = 0 (clean S1 u S2): the "
                  "control row"),
            Field("alpha", (0.1,), "floats", "slack alpha of the bound, reported by "
                  "default", low=0.0, high=1.0, high_open=True),
        ),
        defaults={"experiment": "bound", "dataset": "digits", "data.num_train": 0,
                  "data.num_test": 0, "data.seed": 0, "data.normalization": ABSENT,
                  "data.pad_to_32": ABSENT, "data.idx_dir": "", "family": "conv",
                  "width": 16, "model": {"head": "gap"}, "eps": (0.01, 0.05),
                  "epochs": 40, "batch_size": 50, "checkpoint_every": 20,
                  "keep_checkpoints": 1, "analysis_batch": 500, "rank_samples": 16}),
    (one_value_per_hyperparameter, batch_fits_sample, two_samples_fit_pool),
    doc="Generalization bound of Galanti et al. 2022 (Prop. 1): clean and noisy "
    "networks per draw of (S1, S2), checkpointed for `jaxdepth bound` "
    "(`jaxdepth/papers/minimal_depth/bound_experiment.py`; config: `bound`).")

SCHEMAS = (COLLAPSE, BOUND)
