"""Datasets that need no download: MNIST-1D (generated), Gaussian mixtures, sklearn digits."""

from __future__ import annotations

import numpy as np

from jaxdepth.data.base import Dataset
from jaxdepth.errors import ConfigError

EMBEDDED = ("mnist1d", "gaussian", "digits")


def _standardize(x_train, x_test):
  mu, sd = x_train.mean(), x_train.std() + 1e-8
  return ((x_train - mu) / sd).astype(np.float32), ((x_test - mu) / sd).astype(np.float32)


def mnist1d(num_train: int = 4000, num_test: int = 1000, seed: int = 42) -> Dataset:
  """MNIST-1D (Greydanus 2020), generated locally by ``mnist1d.make_dataset``.

  Never downloads. 40-dimensional signals, 10 classes; standardized with the
  training mean and std.
  """
  from mnist1d.data import get_dataset_args, make_dataset
  args = get_dataset_args()
  args.num_samples = num_train + num_test
  args.train_split = num_train / (num_train + num_test)
  args.seed = seed
  d = make_dataset(args)
  x_tr, x_te = _standardize(np.asarray(d["x"]), np.asarray(d["x_test"]))
  return Dataset(x_tr, np.asarray(d["y"], np.int32), x_te,
                 np.asarray(d["y_test"], np.int32), 10, "mnist1d")


def gaussian_mixture(num_train: int = 1000, num_test: int = 500, num_classes: int = 4,
                     dim: int = 16, separation: float = 3.0, seed: int = 0) -> Dataset:
  """Synthetic mixture: class c ~ N(mu_c, I), mu_c ~ N(0, separation^2 I / dim)."""
  rng = np.random.default_rng(seed)
  mu_CxD = rng.normal(size=(num_classes, dim)) * separation
  def sample(n):
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    return (mu_CxD[y] + rng.normal(size=(n, dim))).astype(np.float32), y.astype(np.int32)
  x_tr, y_tr = sample(num_train)
  x_te, y_te = sample(num_test)
  return Dataset(x_tr, y_tr, x_te, y_te, num_classes, "gaussian")


def load_digits(seed: int = 0, test_fraction: float = 0.25, as_image: bool = True) -> Dataset:
  """scikit-learn's bundled digits (1,797 8x8 grayscale images, 10 classes), offline.

  Stratified train/test split fixed by ``seed``; pixels (0..16) scaled to [0, 1], then
  standardized with the scalar mean/std of the training split.
  Images (N, 8, 8, 1) if ``as_image`` else flat (N, 64).
  """
  from sklearn.datasets import load_digits as sk_digits

  if not 0.0 < test_fraction < 1.0:
    raise ConfigError("data.test_fraction", f"must be in (0, 1), got {test_fraction}")
  d = sk_digits()
  x = d.data.astype(np.float32) / np.float32(16.0)
  y = d.target.astype(np.int32)
  rng = np.random.default_rng(seed)
  test_idx = []
  for c in range(10):  # stratified: the same test fraction in every class
    idx = rng.permutation(np.flatnonzero(y == c))
    test_idx.append(idx[: round(test_fraction * idx.size)])
  is_test = np.zeros(y.shape, bool)
  is_test[np.concatenate(test_idx)] = True
  tr, te = rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))
  mean, std = x[tr].mean(), x[tr].std()
  x = (x - mean) / std
  if as_image:
    x = x.reshape(-1, 8, 8, 1)
  return Dataset(x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te], num_classes=10,
                 name="digits")
