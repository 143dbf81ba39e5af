"""One rule for "NCC train error <= eps", pinned at the boundary through every entry
point: the public function, measure.per_layer, the streamed analyzer the trainers use,
and the bound calculator. N = 400 samples, eps = 0.01: an error of exactly 4 samples
qualifies, 5 does not, however k / N or 1 - accuracy was rounded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import measure
from jaxdepth.measure import analysis, collapse
from jaxdepth.nets.base import Network
from jaxdepth.papers.minimal_depth import bounds

N, EPS = 400, 0.01


def features(errors_per_layer):
  """(L, N, 1) features and labels (two classes of 200) whose NCC train error at layer
  l is exactly errors_per_layer[l] samples: class 0 sits at -1 except k samples at +3
  (nearer class 1's mean +1, so misclassified); class 0's mean stays below 0."""
  y = np.repeat([0, 1], N // 2).astype(np.int32)
  layers = []
  for k in errors_per_layer:
    f = np.where(y == 0, -1.0, 1.0)
    f[:k] = 3.0
    layers.append(f[:, None])
  return np.stack(layers).astype(np.float32), y


@pytest.mark.parametrize("errors,want", [((5, 4, 0), 2), ((5, 5, 4), 3), ((5, 5, 5), 4),
                                         ((4, 5, 0), 1)])
def test_public_function_on_counts(errors, want):
  k = np.asarray(errors, np.float64)
  for err in (k / N,                                            # exact fractions
              np.float32(k) / np.float32(N),                    # k / N in float32
              1 - (np.float32(N - k) / np.float32(N))):         # 1 - acc in float32
    assert int(collapse.effective_depth(jnp.asarray(err), EPS, N)) == want
  assert int(collapse.effective_depth(k / N, EPS)) == want      # exact, without N
  ok = [all(e <= 4 for e in errors[i:]) for i in range(len(errors))]
  want_suffix = ok.index(True) + 1 if any(ok) else len(errors) + 1
  assert int(collapse.effective_depth(k / N, EPS, N, suffix=True)) == want_suffix


@pytest.mark.parametrize("errors,want", [((5, 4, 0), 2), ((5, 5, 4), 3), ((5, 5, 5), 4)])
def test_per_layer(errors, want):
  f, y = features(errors)
  m = measure.per_layer(list(f), y, 2, eps=(EPS,), rank_samples=8)
  np.testing.assert_allclose(1 - m["ncc_train_acc"], np.asarray(errors) / N, atol=1e-7)
  assert m["effective_depth"][EPS] == want


@pytest.mark.parametrize("errors,want", [((5, 4, 0), 2), ((5, 5, 4), 3), ((5, 5, 5), 4)])
def test_streamed_analyzer(errors, want):
  f, y = features(errors)
  # A "network" whose input already holds every layer's embedding: (B, L, 1).
  net = Network(init=lambda key: {"params": {}, "batch_stats": {}},
                apply=lambda v, x, train=False: (jnp.zeros((x.shape[0], 2)),
                                                 (jnp.moveaxis(x, 1, 0),), {}),
                num_layers=len(errors), layer_names=tuple(map(str, range(len(errors)))))
  x = np.moveaxis(f, 0, 1)  # (N, L, 1)
  an = analysis.make_analyzer(net, 2, (EPS,), rank_samples=8)
  b = analysis.batch_pad(x, y, 128)  # 400 = 3 * 128 + 16: a masked tail
  out = analysis.finalize(jax.jit(an)({"params": {}, "batch_stats": {}}, b,
                                      analysis.relabel(b, jnp.asarray(y)),
                                      analysis.relabel(b, jnp.zeros(N, bool)), b))
  assert int(out["effective_depth"][0]) == want


@pytest.mark.parametrize("errors,want", [((5, 4, 0), 2), ((5, 5, 4), 3)])
def test_bound_calculator(errors, want):
  # One draw, one clean seed on S1 (m = 400) with these errors; one noisy seed on
  # S1 u S2 (800 samples) with exactly 8 errors (= eps) at layer `want` only.
  clean = (1 - (np.float32(N - np.asarray(errors)) / np.float32(N)))[None, None]
  noisy_k = np.full(3, 9.0)
  noisy_k[want - 1] = 8.0
  noisy = (noisy_k / (2 * N))[None, None, None]
  rows = bounds.bound_rows(clean, noisy, np.zeros((1, 1)), (0.1,), (0.0,), (EPS,),
                           n_clean=N, n_noisy=2 * N)
  assert rows[0]["mean_clean_depth"] == want
  assert rows[0]["mean_min_depth"] == want
  assert rows[0]["first_term"] == 1.0  # D_k >= dmin
