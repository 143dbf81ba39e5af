"""Device-ready datasets: embedded or generated sets, TFDS image sets, label corruption.

  ds = data.load({"dataset": "mnist1d", "data": {"num_train": 4000}})

Modules: base.py (the Dataset record), embedded.py (MNIST-1D, Gaussian mixtures,
digits), tfds.py (TFDS image sets, read without TensorFlow; Fashion-MNIST falls back to
idx.py, Debian's IDX files), npz.py (a user's arrays: ``dataset="npz"``,
``data.path``), labels.py (label noise,
balanced samples), augment.py (training-time augmentation).
"""

from __future__ import annotations

from jaxdepth.data.base import Dataset, subsample
from jaxdepth.data.embedded import EMBEDDED, gaussian_mixture, load_digits, mnist1d
from jaxdepth.data.labels import balanced_disjoint_pair, corrupt_labels, num_corrupted

__all__ = ["Dataset", "subsample", "EMBEDDED", "gaussian_mixture", "load_digits",
           "mnist1d", "balanced_disjoint_pair", "corrupt_labels", "num_corrupted",
           "known_datasets", "load", "augment_fill"]


def known_datasets() -> tuple[str, ...]:
  """Embedded datasets, a user's ``npz`` file, then those read through
  tensorflow-datasets."""
  from jaxdepth.data.tfds import KNOWN_TFDS
  return (*EMBEDDED, "npz", *KNOWN_TFDS)


def load(cfg) -> Dataset:
  """Dataset named by ``cfg.dataset`` with the sizes/options of ``cfg.data``."""
  name = cfg["dataset"]
  d = cfg.get("data", {}) or {}
  if name == "mnist1d":
    return mnist1d(d.get("num_train", 4000), d.get("num_test", 1000), d.get("seed", 42))
  if name == "gaussian":
    return gaussian_mixture(d.get("num_train", 1000), d.get("num_test", 500),
                            d.get("num_classes", 4), d.get("dim", 16),
                            d.get("separation", 3.0), d.get("seed", 0))
  if name == "digits":
    return load_digits(seed=d.get("seed", 0), test_fraction=d.get("test_fraction", 0.25),
                       as_image=d.get("as_image", True))
  if name == "npz":
    from jaxdepth.data import npz
    return npz.load_npz(d.get("path", None), d.get("num_classes", 0))
  from jaxdepth.data import tfds
  return tfds.load_images(name, data_dir=d.get("data_dir") or None,
                          download=bool(d.get("download", False)),
                          normalization=d.get("normalization", "dataset"),
                          pad_to_32=d.get("pad_to_32", True),
                          idx_dir=d.get("idx_dir") or None,
                          num_train=d.get("num_train"), num_test=d.get("num_test"))


def augment_fill(cfg) -> tuple[float, ...] | float:
  """Fill value (normalized units) for pixels that augmentation pads or rotates in:
  black for tfds images with fixed statistics (the reference pads and rotates in black
  before normalizing); 0.0 (the mean) otherwise."""
  from jaxdepth.data import tfds
  norm = (cfg.get("data", {}) or {}).get("normalization", "dataset")
  if cfg["dataset"] not in tfds.KNOWN_TFDS or norm not in ("dataset", "reference"):
    return 0.0
  return tfds.pad_value(cfg["dataset"], norm)
