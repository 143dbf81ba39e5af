"""The dataset record every loader returns, and subsetting."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
  x_train: np.ndarray  # (N, ...) float32; images NHWC, normalized
  y_train: np.ndarray  # (N,) int32 in [0, C)
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  name: str


def subsample(ds: Dataset, num_train: int | None, num_test: int | None) -> Dataset:
  """First ``num_train``/``num_test`` examples (None or 0 keeps all)."""
  return ds._replace(x_train=ds.x_train[:num_train or None],
                     y_train=ds.y_train[:num_train or None],
                     x_test=ds.x_test[:num_test or None], y_test=ds.y_test[:num_test or None])
