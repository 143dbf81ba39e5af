"""Each paper's experiments, built on the engine, nets, data and measure packages:
``minimal_depth`` (Galanti et al. 2022), ``incremental`` (Gissin et al. 2020),
``lowrank`` (Huh et al. 2021)."""

# How the papers' run records name their grid: the coordinates a final table groups
# by (those present in a summary's records), their short headers, and scalar fields
# that are bookkeeping rather than results. An experiment module may define its own
# COORDINATES / SHORT_NAMES / SKIP_FIELDS; these are the defaults.
COORDINATES = ("model", "method", "expansion", "depth", "width", "init_scale",
               "label_noise", "variant")
SHORT_NAMES = {"label_noise": "p", "init_scale": "sigma0", "expansion": "e"}
SKIP_FIELDS = ("seed", "lr", "stop_step", "wall_s_per_depth", "wall_s", "run",
               "noise_index")
# Fields that may change when a run is resumed in its workdir (display and cadences).
RESUME_SAFE_FIELDS = ("progress", "eval_every", "checkpoint_every", "plots",
                      "keep_checkpoints")


def fingerprint(config) -> dict:
  """The config fields that determine a run's results (what a resume must match): the
  config as JSON, less RESUME_SAFE_FIELDS."""
  from jaxdepth.engine import writers
  return {k: v for k, v in writers.config_to_dict(config).items()
          if k not in RESUME_SAFE_FIELDS}


def load_metrics(workdir: str, coordinates=None):
  """``workdir/metrics.jsonl`` as a tidy pandas DataFrame: one row per (run, step,
  metric, layer), columns the run coordinates (for the collapse trainer ``kind``,
  ``depth``, ``width``, ``seed``, ``label_noise``), ``step``, ``epoch``, ``metric``,
  ``layer`` (per-layer metrics, 1-based; else <NA>) and ``value``. Coordinates are the
  fields named in ``coordinates`` (default: COORDINATES and ``seed``) and every
  non-numeric field; see ``engine.metrics.load``."""
  from jaxdepth.engine import metrics
  return metrics.load(workdir, (*COORDINATES, "seed", *HPARAM_COORDINATES)
                      if coordinates is None else tuple(coordinates))
# The supervised experiments' value hyperparameters, run axes when given several values
# (papers/sgd.HPARAMS is this tuple): coordinates of a metric record, not metrics.
HPARAM_COORDINATES = ("lr", "weight_decay", "momentum", "warmup_epochs", "decay")
