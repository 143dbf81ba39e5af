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


def known_datasets() -> tuple[str, ...]:
  """Embedded datasets, then those read through tensorflow-datasets."""
  from jaxdepth.tfds_data import KNOWN_TFDS
  return EMBEDDED + tuple(KNOWN_TFDS)


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
  from jaxdepth import tfds_data
  if name == "digits":
    return tfds_data.load_digits(seed=d.get("seed", 0),
                                 test_fraction=d.get("test_fraction", 0.25),
                                 as_image=d.get("as_image", True))
  return tfds_data.load_tfds(name, data_dir=d.get("data_dir") or None,
                             download=bool(d.get("download", False)),
                             normalization=d.get("normalization", "dataset"),
                             pad_to_32=d.get("pad_to_32", True))


def subsample(ds: Dataset, num_train: int | None, num_test: int | None) -> Dataset:
  """First ``num_train``/``num_test`` examples (None or 0 keeps all)."""
  return ds._replace(x_train=ds.x_train[:num_train or None],
                     y_train=ds.y_train[:num_train or None],
                     x_test=ds.x_test[:num_test or None], y_test=ds.y_test[:num_test or None])


def num_corrupted(p: float, n: int) -> int:
  """k = round(p * n) with the rule floor(p * n + 1/2) (spec §7.1)."""
  return int(np.floor(p * n + 0.5))


def corrupt_labels(key, y_N, p, num_classes: int, mode: str = "flip"):
  """Change exactly round(p * N) labels, chosen uniformly without replacement.

  'flip': y -> (y + U{1..C-1}) mod C, never the original class (spec §7.1).
  'uniform': y -> U{0..C-1}, so about 1/C keep their label (spec §7.2).
  ``p`` may be traced (vmapped over noise levels). Returns (labels, chosen_mask).
  """
  import jax
  import jax.numpy as jnp
  n = y_N.shape[0]
  k_perm, k_lab = jax.random.split(key)
  k = jnp.floor(jnp.asarray(p, jnp.float32) * n + 0.5).astype(jnp.int32)
  rank_N = jnp.argsort(jax.random.permutation(k_perm, n))  # position in the permutation
  chosen_N = rank_N < k
  if mode == "flip":
    new_N = (y_N + jax.random.randint(k_lab, (n,), 1, num_classes)) % num_classes
  elif mode == "uniform":
    new_N = jax.random.randint(k_lab, (n,), 0, num_classes)
  else:
    raise ValueError(f"unknown noise mode {mode!r}; allowed: flip, uniform")
  return jnp.where(chosen_N, new_N, y_N).astype(y_N.dtype), chosen_N


def balanced_disjoint_pair(rng: np.random.Generator, y_N: np.ndarray, m: int,
                           num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices of two disjoint class-balanced samples S1, S2 of size m each (spec §9.3)."""
  if m % num_classes:
    raise ValueError(f"m={m} must be divisible by the number of classes {num_classes}")
  per = m // num_classes
  s1, s2 = [], []
  for c in range(num_classes):
    idx = np.flatnonzero(y_N == c)
    if idx.size < 2 * per:
      raise ValueError(f"class {c} has {idx.size} examples, needs {2 * per} for m={m}")
    pick = rng.choice(idx, 2 * per, replace=False)
    s1.append(pick[:per])
    s2.append(pick[per:])
  return np.sort(np.concatenate(s1)), np.sort(np.concatenate(s2))
