"""Device-ready datasets (embedded or generated), label corruption, balanced subsets."""

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
