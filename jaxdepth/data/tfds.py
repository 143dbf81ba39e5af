"""Image datasets through TFDS: ``tfds.data_source`` (array_record), no TensorFlow.

Reading needs no TensorFlow: ``tfds.data_source`` reads array_record files and decodes
examples with numpy/PIL. Every split is decoded once into numpy arrays (NHWC float32,
normalized; labels int32) and returned as a :class:`jaxdepth.data.Dataset`; the
trainer puts them on device once.

Preparing a dataset (download + conversion to array_record) does need TensorFlow:
``pip install 'jaxdepth[tfds]'`` and then, on a machine with internet,
``python -m jaxdepth.data.tfds NAME [--data_dir DIR]`` (or ``download=True``).
Offline with the dataset absent, :func:`load_tfds` raises a one-line
:class:`DatasetUnavailable` naming the dataset, the directory searched and that
command, before any compute.

Fashion-MNIST without tfds: :func:`load_images` (what ``jaxdepth.data.load`` calls)
reads the IDX files of Debian's ``dataset-fashion-mnist`` package (jaxdepth.data.idx)
when tfds has not prepared the set. Order: tfds prepared -> tfds; IDX files found ->
IDX; ``download`` -> tfds download; else one line naming both routes.

Preprocessing (Galanti et al. 2022; docs/definitions.md, "Training and data"):
- MNIST and Fashion-MNIST are zero-padded 28 -> 32 before normalization, as in the
  authors' reference code (``pad_to_32=False`` keeps 28x28).
- SVHN: ``train`` split only (the 531k ``extra`` images are not used).
- STL-10: the 5,000 labelled ``train`` images (no ``unlabelled`` split).
- Normalization ``x = (pixel / 255 - mean) / std`` per channel, with
  ``normalization=``
  'dataset' (default): each dataset's own published statistics (table below);
  'reference': the authors' reference code (CIFAR-100 statistics for CIFAR-10 and
    CIFAR-100, MNIST statistics for Fashion-MNIST, 0.5/0.5 for SVHN, ImageNet for
    STL-10);
  'computed': per-channel mean/std of the loaded (padded, un-augmented) train split.
No augmentation here: see jaxdepth.data.augment (training only).
"""

from __future__ import annotations

import argparse
import logging
from typing import NamedTuple

import numpy as np

from jaxdepth.data import idx
from jaxdepth.data.base import Dataset
from jaxdepth.errors import ConfigError

CIFAR100_STATS = ((0.50708, 0.48655, 0.44092), (0.26733, 0.25644, 0.27615))
MNIST_STATS = ((0.1307,), (0.3081,))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class TfdsInfo(NamedTuple):
  image_shape: tuple[int, int, int]  # as stored (before padding)
  num_classes: int
  train_split: str
  test_split: str
  stats: tuple[tuple[float, ...], tuple[float, ...]]  # own (mean, std), pixels in [0, 1]
  reference_stats: tuple[tuple[float, ...], tuple[float, ...]]  # authors' code
  pad_to_32: bool  # zero-pad 28 -> 32 (reference code) unless disabled


KNOWN_TFDS: dict[str, TfdsInfo] = {
    "mnist": TfdsInfo((28, 28, 1), 10, "train", "test", MNIST_STATS, MNIST_STATS, True),
    "fashion_mnist": TfdsInfo((28, 28, 1), 10, "train", "test", ((0.2860,), (0.3530,)),
                              MNIST_STATS, True),
    "cifar10": TfdsInfo((32, 32, 3), 10, "train", "test",
                        ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                        CIFAR100_STATS, False),
    "cifar100": TfdsInfo((32, 32, 3), 100, "train", "test", CIFAR100_STATS, CIFAR100_STATS,
                         False),
    "svhn_cropped": TfdsInfo((32, 32, 3), 10, "train", "test",
                             ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
                             ((0.5,) * 3, (0.5,) * 3), False),
    "stl10": TfdsInfo((96, 96, 3), 10, "train", "test",
                      ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
                      IMAGENET_STATS, False),
}
NORMALIZATIONS = ("dataset", "reference", "computed")
EMBEDDED = ("digits",)  # image sets that come from embedded.py, not TFDS


class DatasetUnavailable(ConfigError):
  """The dataset is not prepared locally and cannot be prepared now (one line)."""

  def __init__(self, message: str):
    super().__init__("dataset", message)


def _check_name(name: str) -> TfdsInfo:
  if name not in KNOWN_TFDS:
    known = ", ".join(sorted(KNOWN_TFDS) + list(EMBEDDED))
    raise ConfigError("dataset", f"unknown dataset {name!r}; known: {known}")
  return KNOWN_TFDS[name]


def image_shape(name: str, pad_to_32: bool = True) -> tuple[int, int, int]:
  """Per-example (H, W, C) that :func:`load_tfds` returns, without loading anything."""
  if name == "digits":
    return (8, 8, 1)
  info = _check_name(name)
  if pad_to_32 and info.pad_to_32:
    return (32, 32, info.image_shape[2])
  return info.image_shape


def num_classes(name: str) -> int:
  return 10 if name == "digits" else _check_name(name).num_classes


def pad_value(name: str, normalization: str = "dataset") -> tuple[float, ...]:
  """A black pixel in normalized units, -mean / std per channel (augmentation fill)."""
  info = _check_name(name)
  if normalization not in ("dataset", "reference"):
    raise ConfigError("data.normalization",
                      "pad_value needs fixed statistics: 'dataset' or 'reference'")
  mean, std = info.stats if normalization == "dataset" else info.reference_stats
  return tuple(-m / s for m, s in zip(mean, std))


def prepare_command(name: str, data_dir: str | None) -> str:
  where = f" --data_dir {data_dir}" if data_dir else ""
  return f"pip install 'jaxdepth[tfds]' && python -m jaxdepth.data.tfds {name}{where}"


def _builder(name: str, data_dir: str | None, download: bool, extra_hint: str = ""):
  """TFDS builder whose data is prepared; prepares it if ``download``, else raises."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DatasetUnavailable(
        f"dataset {name!r} needs tensorflow-datasets, which is not installed ({e}); "
        f"install it with: pip install 'jaxdepth[tfds]'{extra_hint}") from e

  absl_log = logging.getLogger("absl")
  level = absl_log.level
  absl_log.setLevel(logging.ERROR)  # probing a missing dataset logs warnings: keep 1 line
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    prepared = builder.is_prepared()
  finally:
    absl_log.setLevel(level)
  if prepared:
    return builder
  searched = str(builder.data_dir)
  hint = f"prepare it with: {prepare_command(name, data_dir)}"
  tail = extra_hint
  if not download:
    raise DatasetUnavailable(
        f"dataset {name!r} is not prepared in {searched} and download is off; "
        f"{hint} (or set data.download=True on a machine with internet){tail}")
  try:
    builder.download_and_prepare(file_format="array_record")
  except Exception as e:  # no network, no TensorFlow, disk full: one line for the user
    cause = " ".join(f"{type(e).__name__}: {e}".split())[:300]
    raise DatasetUnavailable(
        f"dataset {name!r} is not prepared in {searched} and preparing it failed "
        f"({cause}); {hint}{tail}") from e
  return builder


def _tfds_prepared(name: str, data_dir: str | None) -> bool:
  try:
    _builder(name, data_dir, download=False)
  except DatasetUnavailable:
    return False
  return True


def source(name: str, data_dir: str | None = None, download: bool = False,
           idx_dir: str | None = None) -> tuple[str, str | None]:
  """Where ``name`` will be read from: ('tfds', None) or ('idx', directory).

  tfds when prepared; else the IDX files (jaxdepth.data.idx) when ``name`` has them
  and they are found; else tfds with ``download`` (prepared now); else a one-line
  :class:`DatasetUnavailable` naming the tfds route and, where there is one, the
  Debian package. Touches the filesystem only unless tfds has to download.
  """
  _check_name(name)
  if name not in idx.KNOWN_IDX:
    _builder(name, data_dir, download)
    return "tfds", None
  if _tfds_prepared(name, data_dir):
    return "tfds", None
  found = idx.find(name, idx_dir)
  if found:
    return "idx", found
  _builder(name, data_dir, download, extra_hint=f"; {idx.hint(name, idx_dir)}")
  return "tfds", None


def check_available(name: str, data_dir: str | None = None, download: bool = False,
                    idx_dir: str | None = None) -> None:
  """Raise before any compute if ``name`` is unknown or absent and cannot be fetched.

  Touches the filesystem only (no download, no decoding) unless ``download`` is set,
  in which case a missing dataset is prepared now (see :func:`source`).
  """
  if name in EMBEDDED:
    return
  source(name, data_dir, download, idx_dir)


def _read_split(name: str, split: str, data_dir: str | None, download: bool):
  """Decode one split once: images (N, H, W, C) uint8 and labels (N,) int64."""
  import tensorflow_datasets as tfds

  source = tfds.data_source(name, split=split, data_dir=data_dir, download=download,
                            download_and_prepare_kwargs={"file_format": "array_record"})
  n = len(source)
  images, labels = None, np.empty((n,), np.int64)
  for i in range(n):  # per-index reads: __getitems__ is broken under tfds mock_data
    ex = source[i]
    img = np.asarray(ex["image"])
    if images is None:
      images = np.empty((n,) + img.shape, np.uint8)
    images[i] = img
    labels[i] = int(ex["label"])
  if images is None:
    raise DatasetUnavailable(f"dataset {name!r} split {split!r} is empty")
  return images, labels


def load_tfds(name: str, data_dir: str | None = None, download: bool = False, *,
              normalization: str = "dataset", pad_to_32: bool = True,
              num_train: int | None = None, num_test: int | None = None) -> Dataset:
  """Load a TFDS image dataset into normalized numpy arrays.

  Args:
    name: one of KNOWN_TFDS (mnist, fashion_mnist, cifar10, cifar100, svhn_cropped,
      stl10).
    data_dir: TFDS data directory (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    download: prepare the dataset if it is missing (needs internet and TensorFlow).
    normalization: 'dataset' | 'reference' | 'computed' (module docstring).
    pad_to_32: zero-pad MNIST/Fashion-MNIST 28 -> 32 (reference pipeline).

  Returns:
    Dataset with x_* (N, H, W, C) float32 normalized, y_* (N,) int32 in [0, C).
  """
  info = _check_name(name)
  if normalization not in NORMALIZATIONS:
    raise ConfigError("data.normalization", f"unknown value {normalization!r}; allowed: "
                      f"{', '.join(NORMALIZATIONS)}")
  _builder(name, data_dir, download)  # one-line error if absent; data_source re-opens it
  raw = {split: _read_split(name, split, data_dir, download)
         for split in (info.train_split, info.test_split)}
  return preprocess(name, raw[info.train_split], raw[info.test_split],
                    normalization=normalization, pad_to_32=pad_to_32,
                    num_train=num_train, num_test=num_test)


def preprocess(name: str, train, test, *, normalization: str = "dataset",
               pad_to_32: bool = True, num_train: int | None = None,
               num_test: int | None = None) -> Dataset:
  """(images uint8 (N, H, W, C), labels) train/test pairs -> the normalized Dataset.

  Shared by the tfds and the IDX readers: pixels / 255, zero padding 28 -> 32 (before
  normalization) when the dataset asks for it and ``pad_to_32``, then
  ``(x - mean) / std`` per channel with the statistics ``normalization`` names.
  ``num_train``/``num_test`` (None or 0: all) keep the first examples of each split,
  as ``data.subsample`` does; only those are converted (the statistics of
  'computed' still come from the whole training split).
  """
  info = _check_name(name)
  if normalization not in NORMALIZATIONS:
    raise ConfigError("data.normalization", f"unknown value {normalization!r}; allowed: "
                      f"{', '.join(NORMALIZATIONS)}")
  for split, (images, labels) in (("train", train), ("test", test)):
    if images.shape[1:] != info.image_shape:
      raise ValueError(f"{name} split {split}: images {images.shape[1:]}, "
                       f"expected {info.image_shape}")
    if labels.min() < 0 or labels.max() >= info.num_classes:
      raise ValueError(f"{name} split {split}: labels outside [0, {info.num_classes})")
  pad = pad_to_32 and info.pad_to_32
  full_train = train
  train = (train[0][:num_train or None], train[1][:num_train or None])
  test = (test[0][:num_test or None], test[1][:num_test or None])

  def to_float(images):
    x = images.astype(np.float32) / np.float32(255.0)
    if pad:  # zeros before normalization, like torchvision's Pad on PIL images
      ph, pw = 32 - x.shape[1], 32 - x.shape[2]
      x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    return x

  x_train, y_train = to_float(train[0]), train[1]
  x_test, y_test = to_float(test[0]), test[1]
  if normalization == "computed":
    x_all = x_train if len(train[0]) == len(full_train[0]) else to_float(full_train[0])
    mean = x_all.mean(axis=(0, 1, 2), dtype=np.float64)
    std = x_all.std(axis=(0, 1, 2), dtype=np.float64)
  else:
    mean, std = info.stats if normalization == "dataset" else info.reference_stats
  mean = np.asarray(mean, np.float32).reshape(1, 1, 1, -1)
  std = np.asarray(std, np.float32).reshape(1, 1, 1, -1)
  return Dataset(
      x_train=(x_train - mean) / std, y_train=y_train.astype(np.int32),
      x_test=(x_test - mean) / std, y_test=y_test.astype(np.int32),
      num_classes=info.num_classes, name=name)


def load_images(name: str, data_dir: str | None = None, download: bool = False, *,
                normalization: str = "dataset", pad_to_32: bool = True,
                idx_dir: str | None = None, num_train: int | None = None,
                num_test: int | None = None) -> Dataset:
  """An image dataset from tfds or, for Fashion-MNIST, from IDX files (:func:`source`);
  ``num_train``/``num_test``: :func:`preprocess`."""
  _check_name(name)
  if normalization not in NORMALIZATIONS:
    raise ConfigError("data.normalization", f"unknown value {normalization!r}; allowed: "
                      f"{', '.join(NORMALIZATIONS)}")
  kind, where = source(name, data_dir, download, idx_dir)
  if kind == "idx":
    train, test = idx.read_splits(where)
    return preprocess(name, train, test, normalization=normalization, pad_to_32=pad_to_32,
                      num_train=num_train, num_test=num_test)
  return load_tfds(name, data_dir, download, normalization=normalization,
                   pad_to_32=pad_to_32, num_train=num_train, num_test=num_test)


def main(argv=None) -> None:
  """``python -m jaxdepth.data.tfds NAME [--data_dir DIR]``: download and prepare."""
  ap = argparse.ArgumentParser(description=main.__doc__)
  ap.add_argument("name", choices=sorted(KNOWN_TFDS))
  ap.add_argument("--data_dir", default=None)
  args = ap.parse_args(argv)
  builder = _builder(args.name, args.data_dir, download=True)
  print(f"{args.name}: prepared in {builder.data_dir}; "
        f"splits {', '.join(f'{k}={v.num_examples}' for k, v in builder.info.splits.items())}")


if __name__ == "__main__":
  main()
