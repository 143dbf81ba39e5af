"""The config fields of the six incremental-learning experiments, each declared once.

One pool of Fields (``_POOL``: the fields every experiment shares, then the
experiment-specific ones) gives every experiment its
:class:`jaxdepth.engine.validate.Schema` (``TOY``, ``MATRIX_SENSING``, ``QUADRATIC``,
``DIAGONAL``, ``CIRCULAR_CONV``, ``OMP``): its fields in its config's order, its
defaults (the full-size config; ``configs/incremental/<name>.py`` is
``SCHEMA.defaults()`` plus its variants) and the rules across fields. From them come

  * the defaults of ``configs/incremental/*.py``;
  * the validation: each experiment's ``validate`` is ``SCHEMA.validate(config)``;
  * the docs: docs/config_fields.md (``jaxdepth fields``).

Imports nothing heavy (the configs import it).
"""

from __future__ import annotations

from jaxdepth.engine import validate as V
from jaxdepth.engine.validate import Field

LOSSES = ("exponential", "logistic")

# Every field once, with the rule all experiments share; a default here is the one
# most configs use (each schema below states its own where it differs).
_POOL = (
    Field("experiment", "incremental.toy", "str",
          "registry name (`jaxdepth/papers/incremental/`)"),
    Field("depths", (1, 2, 3, 4), "ints", "N, network depths (one compiled program each)",
          low=1),
    Field("init_scales", (1e-4,), "floats", "sigma0, initialization scales (vmapped)",
          low=0.0, low_open=True),
    Field("num_seeds", 1, "int", "seeds (data and init), vmapped", low=1),
    Field("seed", 0, "int", "root key", low=0),
    Field("steps", 100_000, "int", "full-batch GD steps (at most: a run freezes once its "
          "loss is below stop_loss)", low=1),
    Field("lr", 0.01, "float", "learning rate", low=0.0, low_open=True),
    Field("record_every", 10, "int", "steps between tracking evaluations (crossing "
          "checks, SVDs: the t10/t50/t90 resolution)", low=1),
    Field("log_every", 100, "int", "steps between logged records (figures, "
          "metrics.jsonl)", low=1),
    Field("stop_loss", 0.01, "float", "a run freezes once its loss is below this "
          "(0: never)", low=0.0),
    Field("x64", True, "bool", "float64 (needed for tiny initializations)"),
    Field("progress", True, "bool", "progress bar"),
    # Problem sizes and teachers.
    Field("d", 100, "int", "input dimension", low=1),
    Field("n", 200, "int", "training points x ~ N(0, I_d)", low=1),
    Field("n_test", 2000, "int", "held-out points", low=1),
    Field("targets", (12.0, 6.0, 4.0, 3.0), "floats", "target values (> 0)",
          low=0.0, low_open=True),
    Field("teacher", (8.0, 4.0, 2.0, 1.0), "floats", "w* (normalized) on the first "
          "coordinates", low=0.0, low_open=True),
    Field("loss", "exponential", "str", "classification loss, mean over the batch",
          choices=LOSSES),
    Field("threshold", 0.2, "float", "coordinate j crosses at the first step with "
          "|beta_j| >= this", low=0.0, low_open=True),
    Field("top_k", 5, "int", "largest values tracked, logged and plotted", low=1),
    Field("svm", True, "bool", "also fit an l2 max-margin linear SVM baseline "
          "(scikit-learn)"),
)


def _schema(experiment: str, names: tuple, doc: str, new=(), defaults=None,
            checks=()) -> V.Schema:
  """``experiment``'s Schema: ``names`` from the pool (or ``new``), its defaults."""
  fields = V.derive(_POOL, names, new, {"experiment": experiment, **(defaults or {})})
  return V.Schema(experiment, fields, (log_every_multiple_of_record_every, *checks),
                  doc=doc)


# ------------------------------------------------------------ rules across fields
def log_every_multiple_of_record_every(config) -> None:
  """log_every is a multiple of record_every."""
  rec, log = config.record_every, config.log_every
  V.require(log % rec == 0, "log_every",
            f"must be a multiple of record_every={rec}, got {log}")


def _at_most(config, field: str, limit: int, what: str) -> None:
  n = len(config[field])
  V.require(n <= limit, field, f"at most {what}={limit} values, got {n}")


def targets_fit_d(config) -> None:
  """len(targets) <= d."""
  _at_most(config, "targets", config.d, "d")


def teacher_fits_d(config) -> None:
  """len(teacher) <= d."""
  _at_most(config, "teacher", config.d, "d")


def teacher_freqs_fit_d(config) -> None:
  """len(teacher_freqs) <= d // 2 + 1 (the rfft bins)."""
  _at_most(config, "teacher_freqs", config.d // 2 + 1, "d//2+1")


def _top_k_in(config, low: int, high: int, where: str) -> None:
  k = config.top_k
  V.require(low <= k <= high, "top_k", f"must be in [{low}, {high}] ({where}), got {k}")


def top_k_at_most_d(config) -> None:
  """top_k <= d."""
  _top_k_in(config, 1, config.d, "1 to d")


def top_k_covers_targets(config) -> None:
  """len(targets) <= top_k <= d (every target value is tracked)."""
  _top_k_in(config, len(config.targets), config.d, "len(targets) to d")


def top_k_at_most_bins(config) -> None:
  """top_k <= d // 2 + 1 (the rfft bins)."""
  _top_k_in(config, 1, config.d // 2 + 1, "1 to d//2+1")


def depth_is_two(config) -> None:
  """depths is (2,): a quadratic network has depth 2."""
  V.require(tuple(config.depths) == (2,), "depths",
            f"a quadratic network has depth 2; use (2,), got {tuple(config.depths)}")


def sparsity_fits(config) -> None:
  """sparsity <= min(d, n)."""
  k, limit = config.sparsity, min(config.d, config.n)
  V.require(k <= limit, "sparsity", f"must be in [1, {limit}] (1 to min(d, n)), got {k}")


# ---------------------------------------------------------------------- schemas
TOY = _schema(
    "incremental.toy",
    ("experiment", "targets", "depths", "init_scales", "num_seeds", "seed", "steps", "lr",
     "lr_factor", "record_every", "log_every", "stop_loss", "x64", "progress",
     "critical_ratios", "critical_depths", "critical_eps"),
    new=(
        Field("targets", (12.0, 6.0, 4.0, 3.0), "floats", "sigma*_i (> 0; sorted "
              "descending internally)", low=0.0, low_open=True),
        Field("num_seeds", 1, "int", "seeds: the toy init is deterministic, seeds only "
              "replicate", low=1),
        Field("lr", 0.0, "float", "learning rate; 0: the per-depth rule lr_factor / "
              "(N^2 max sigma*^(2-2/N))", low=0.0),
        Field("lr_factor", 0.02, "float", "factor of the per-depth lr rule (~100x below "
              "the stability limit, so GD tracks gradient flow)", low=0.0, low_open=True),
        Field("critical_ratios", (0.5, 0.8, 0.9, 0.95), "floats", "r = sigma*_{i+1} / "
              "sigma*_i of the critical-init table", low=0.0, high=1.0, low_open=True,
              high_open=True, nonempty=False),
        Field("critical_depths", (2, 3, 4, 6, 10), "ints", "depths of the critical-init "
              "table", low=2, nonempty=False),
        Field("critical_eps", 0.1, "float", "epsilon of eps-incremental learning",
              low=0.0, high=0.5, low_open=True, high_open=True),
    ),
    defaults={"depths": (1, 2, 3, 4), "init_scales": (1e-3, 1e-4), "steps": 200_000,
              "record_every": 1, "stop_loss": 1e-8},
    doc="Toy model sigma_i = u_i^N: the staircase, its time scaling and the "
    "critical-init table (`jaxdepth/papers/incremental/toy.py`; config: "
    "`configs/incremental/toy.py`). Tracked every step in float64; loss 1/2 sum "
    "(sigma - sigma*)^2.")

MATRIX_SENSING = _schema(
    "incremental.matrix_sensing",
    ("experiment", "d", "m", "targets", "depths", "init_scales", "init", "num_seeds",
     "seed", "steps", "lr", "record_every", "log_every", "stop_loss", "top_k", "x64",
     "progress"),
    new=(
        Field("d", 50, "int", "W is d x d", low=1),
        Field("m", 1000, "int", "Gaussian measurements <A_i, W*> (m << d^2)", low=1),
        Field("targets", (12.0, 6.0, 4.0, 3.0), "floats", "nonzero singular values of "
              "W* = diag(targets, 0, ...)", low=0.0, low_open=True),
        Field("init", "gaussian", "str", "gaussian (factors N(0, sigma0^(2/N)/d)) | "
              "identity (sigma0^(1/N) I)", choices=("gaussian", "identity")),
    ),
    defaults={"steps": 20_000, "lr": 1e-3, "record_every": 50, "log_every": 50,
              "stop_loss": 0.0},
    checks=(targets_fit_d, top_k_covers_targets),
    doc="Deep matrix sensing, Figure 1a: W = W_1 ... W_N from m << d^2 measurements, "
    "loss mean (<A_i, W> - y_i)^2 (`jaxdepth/papers/incremental/matrix_sensing.py`; "
    "config: `configs/incremental/matrix_sensing.py`).")

QUADRATIC = _schema(
    "incremental.quadratic",
    ("experiment", "d", "n", "n_test", "targets", "depths", "init_scales", "bias_modes",
     "num_seeds", "seed", "steps", "lr", "record_every", "log_every", "stop_loss",
     "top_k", "x64", "progress"),
    new=(
        Field("d", 20, "int", "input dimension = number of hidden units", low=1),
        Field("n_test", 2000, "int", "fresh inputs for the test relative MSE", low=1),
        Field("targets", (1.0, 1 / 2, 1 / 3, 1 / 4), "floats", "eigenvalues of M* = "
              "W*^T W*", low=0.0, low_open=True),
        Field("depths", (2,), "ints", "a quadratic network has depth 2 (only (2,))",
              low=2),
        Field("bias_modes", ("none", "mean_y"), "strs", "none (no bias) and/or mean_y "
              "(a trainable bias started at mean(y))", choices=("none", "mean_y")),
    ),
    defaults={"n": 100, "num_seeds": 4, "steps": 30_000, "lr": 1e-3, "record_every": 50,
              "log_every": 50, "stop_loss": 0.0},
    checks=(depth_is_two, targets_fit_d, top_k_covers_targets),
    doc="Quadratic network f(x) = ||W x||^2 (+ b), Figure 1b: eigenvalues of W^T W "
    "one at a time; W(0) = sqrt(sigma0) Q, loss mean (f - y)^2 "
    "(`jaxdepth/papers/incremental/quadratic.py`; config: "
    "`configs/incremental/quadratic.py`).")

DIAGONAL = _schema(
    "incremental.diagonal",
    ("experiment", "d", "n", "n_test", "teacher", "loss", "depths", "init_scales",
     "num_seeds", "seed", "steps", "lr", "stop_loss", "threshold", "record_every",
     "log_every", "top_k", "svm", "x64", "progress"),
    defaults={"n_test": 5000, "depths": (1, 2, 3, 5), "init_scales": (0.01,),
              "num_seeds": 5},
    checks=(teacher_fits_d, top_k_at_most_d),
    doc="Diagonal linear networks, binary classification, Figure 1c: beta = w_+^N - "
    "w_-^N, labels sign(<w*, x>) (`jaxdepth/papers/incremental/diagonal.py`; config: "
    "`configs/incremental/diagonal.py`).")

CIRCULAR_CONV = _schema(
    "incremental.circular_conv",
    ("experiment", "d", "n", "n_test", "teacher_freqs", "loss", "depths", "init_scales",
     "num_seeds", "seed", "steps", "lr", "stop_loss", "threshold", "record_every",
     "log_every", "top_k", "svm", "x64", "progress"),
    new=(
        Field("d", 50, "int", "signal length (filters are full length)", low=2),
        Field("teacher_freqs", (3.0, 4.0, 6.0, 12.0), "floats", "rfft(w*)[0:k] before "
              "normalizing w*", low=0.0, low_open=True),
        Field("threshold", 0.1, "float", "frequency k crosses at |rfft(beta)_k| >= "
              "threshold F_k / max F", low=0.0, low_open=True),
        Field("x64", False, "bool", "float64 (float32 default: sigma0 >= 1e-3 needs no "
              "float64)"),
    ),
    defaults={"n": 100, "depths": (1, 2, 3), "init_scales": (0.01, 0.001),
              "num_seeds": 3},
    checks=(teacher_freqs_fit_d, top_k_at_most_bins),
    doc="Circular-convolutional linear networks, Figure 1d: N - 1 circular layers and "
    "a dense one; Fourier amplitudes learned largest first "
    "(`jaxdepth/papers/incremental/circular_conv.py`; config: "
    "`configs/incremental/circular_conv.py`).")

OMP = _schema(
    "incremental.omp",
    ("experiment", "d", "n", "sparsity", "value_scale", "depths", "init_scales",
     "num_seeds", "seed", "steps", "lr", "stop_loss", "threshold", "omp_tol",
     "record_every", "log_every", "x64", "progress"),
    new=(
        Field("d", 1000, "int", "coordinates", low=1),
        Field("n", 80, "int", "measurements (X has unit-norm Gaussian columns)", low=1),
        Field("sparsity", 5, "int", "nonzeros of w* (uniform support)", low=1),
        Field("value_scale", 10.0, "float", "nonzeros are Exponential(value_scale) + 1",
              low=0.0, low_open=True),
        Field("threshold", 0.1, "float", "coordinate j is selected at the first step "
              "with |beta_j| > this", low=0.0, low_open=True),
        Field("omp_tol", 1e-4, "float", "OMP stops when 1/2 ||r||^2 < omp_tol", low=0.0,
              low_open=True),
    ),
    defaults={"depths": (1, 2, 5), "init_scales": (1e-3,), "num_seeds": 3,
              "steps": 400_000, "lr": 2e-3},
    checks=(sparsity_fits,),
    doc="Deep toy model beta = w_+^N - w_-^N vs Orthogonal Matching Pursuit on sparse "
    "regression, loss mean (X beta - y)^2 (`jaxdepth/papers/incremental/omp.py`; "
    "config: `configs/incremental/omp.py`).")

SCHEMAS = (TOY, MATRIX_SENSING, QUADRATIC, DIAGONAL, CIRCULAR_CONV, OMP)
