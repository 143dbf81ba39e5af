"""Label corruption (exactly round(p*n) labels changed) and balanced disjoint samples."""

from __future__ import annotations

import numpy as np


def num_corrupted(p: float, n: int) -> int:
  """k = round(p * n) with the rule floor(p * n + 1/2) (docs/definitions.md,
  "Label corruption")."""
  return int(np.floor(p * n + 0.5))


def corrupt_labels(key, y_N, p, num_classes: int, mode: str = "flip"):
  """Change exactly round(p * N) labels, chosen uniformly without replacement.

  'flip': y -> (y + U{1..C-1}) mod C, never the original class.
  'uniform': y -> U{0..C-1}, so about 1/C keep their label.
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
  """Indices of two disjoint class-balanced samples S1, S2 of size m each
  (docs/definitions.md, "Bound protocol")."""
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
