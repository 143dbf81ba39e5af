"""Label corruption, balanced subsets and embedded datasets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxdepth import data


@pytest.mark.parametrize("p", [0.0, 0.1, 0.25, 0.333, 0.5, 0.999])
def test_flip_changes_exactly_round_pn(p):
  n, C = 1001, 7
  y = jnp.asarray(np.arange(n) % C, jnp.int32)
  new, chosen = data.corrupt_labels(jax.random.key(0), y, p, C, "flip")
  k = int(np.floor(p * n + 0.5))
  assert k == data.num_corrupted(p, n)
  assert int((new != y).sum()) == k == int(chosen.sum())
  assert not np.any(np.asarray(new)[~np.asarray(chosen)] != np.asarray(y)[~np.asarray(chosen)])
  assert int(new.min()) >= 0 and int(new.max()) < C


def test_flip_is_uniform_over_other_classes_and_deterministic():
  n, C = 4000, 5
  y = jnp.zeros((n,), jnp.int32)
  new, chosen = data.corrupt_labels(jax.random.key(1), y, 0.9, C, "flip")
  counts = np.bincount(np.asarray(new)[np.asarray(chosen)], minlength=C)
  assert counts[0] == 0
  assert stats.chisquare(counts[1:]).pvalue > 1e-3
  again, _ = data.corrupt_labels(jax.random.key(1), y, 0.9, C, "flip")
  np.testing.assert_array_equal(new, again)
  other, _ = data.corrupt_labels(jax.random.key(2), y, 0.9, C, "flip")
  assert np.any(np.asarray(other) != np.asarray(new))


def test_uniform_mode_keeps_about_one_over_c():
  n, C = 20000, 4
  y = jnp.asarray(np.arange(n) % C, jnp.int32)
  new, chosen = data.corrupt_labels(jax.random.key(3), y, 1.0, C, "uniform")
  assert int(chosen.sum()) == n
  kept = float(jnp.mean(new == y))
  assert abs(kept - 1 / C) < 0.02


def test_corruption_vmaps_over_noise_levels():
  y = jnp.asarray(np.arange(100) % 10, jnp.int32)
  keys = jax.random.split(jax.random.key(0), 3)
  new, chosen = jax.jit(jax.vmap(lambda k, p: data.corrupt_labels(k, y, p, 10)))(
      keys, jnp.array([0.0, 0.2, 0.45]))
  np.testing.assert_array_equal(chosen.sum(1), [0, 20, 45])


def test_balanced_disjoint_pair():
  y = np.repeat(np.arange(4), 50)
  s1, s2 = data.balanced_disjoint_pair(np.random.default_rng(0), y, 40, 4)
  assert len(s1) == len(s2) == 40 and not set(s1) & set(s2)
  for s in (s1, s2):
    np.testing.assert_array_equal(np.bincount(y[s]), [10] * 4)
  with pytest.raises(ValueError, match="divisible"):
    data.balanced_disjoint_pair(np.random.default_rng(0), y, 42, 4)


def test_embedded_datasets():
  ds = data.mnist1d(200, 100)
  assert ds.x_train.shape == (200, 40) and ds.x_test.shape == (100, 40)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert set(np.unique(ds.y_train)) <= set(range(10))
  assert abs(float(ds.x_train.mean())) < 1e-4
  assert float(ds.x_train.std()) == pytest.approx(1, abs=1e-3)
  g = data.gaussian_mixture(100, 50, num_classes=3, dim=5)
  assert g.x_train.shape == (100, 5) and g.num_classes == 3
  np.testing.assert_array_equal(np.bincount(g.y_train), [34, 33, 33])
