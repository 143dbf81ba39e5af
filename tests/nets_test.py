"""MLP: scan equals an unrolled reference, BN semantics, one compile for any depth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import nets


def unrolled_mlp(v, x, batchnorm, train):
  """Python loop over layers in float64 numpy (independent of nets.mlp's scan)."""
  p, s = v["params"], v["batch_stats"]
  h = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  L = p["w_hid"].shape[0] + 1
  ws = [p["w_in"]] + [p["w_hid"][i] for i in range(L - 1)]
  bs = [p["b_in"]] + [p["b_hid"][i] for i in range(L - 1)]
  feats = []
  for i in range(L):
    z = h @ np.asarray(ws[i], np.float64) + np.asarray(bs[i], np.float64)
    if batchnorm:
      if train:
        mu, var = z.mean(0), z.var(0)
      else:
        mu, var = np.asarray(s["mean"][i]), np.asarray(s["var"][i])
      z = (z - mu) / np.sqrt(var + nets.BN_EPS) * np.asarray(p["bn"]["scale"][i]) + \
          np.asarray(p["bn"]["bias"][i])
    h = np.maximum(z, 0)
    feats.append(h)
  return h @ np.asarray(p["w_out"], np.float64) + np.asarray(p["b_out"]), np.stack(feats)


@pytest.mark.parametrize("depth,batchnorm,train", [(1, False, False), (5, True, True),
                                                   (5, True, False), (4, False, True)])
def test_scan_equals_unrolled(depth, batchnorm, train):
  net = nets.mlp(depth, 16, 12, 3, batchnorm=batchnorm)
  v = net.init(jax.random.key(0))
  if batchnorm:  # non-trivial running statistics
    v["batch_stats"] = {"mean": 0.1 * jnp.ones((depth, 16)), "var": 2.0 * jnp.ones((depth, 16))}
  x = jax.random.normal(jax.random.key(1), (32, 3, 4))
  logits, feats, new_stats = net.apply(v, x, train=train)
  want_logits, want_feats = unrolled_mlp(v, np.asarray(x), batchnorm, train)
  assert len(feats) == 1 and feats[0].shape == (depth, 32, 16)
  np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(feats[0], want_feats, rtol=1e-4, atol=1e-4)
  if batchnorm and train:  # running averages move towards the batch statistics
    assert not np.allclose(new_stats["mean"], v["batch_stats"]["mean"])
  elif batchnorm:
    np.testing.assert_array_equal(new_stats["mean"], v["batch_stats"]["mean"])


def test_init_statistics():
  net = nets.mlp(3, 512, 256, 10, init="kaiming")
  p = net.init(jax.random.key(0))["params"]
  assert float(jnp.std(p["w_hid"])) == pytest.approx(np.sqrt(2 / 512), rel=0.02)
  net = nets.mlp(3, 512, 256, 10, init="pytorch")
  p = net.init(jax.random.key(0))["params"]
  assert float(jnp.max(jnp.abs(p["w_hid"]))) <= 1 / np.sqrt(512)
  assert float(jnp.std(p["w_hid"])) == pytest.approx(1 / np.sqrt(3 * 512), rel=0.02)


def test_build_dispatch_and_unknown_family():
  net = nets.build({"family": "mlp", "depth": 2, "width": 8}, (5,), 3)
  assert net.num_layers == 2 and net.layer_names == ("layer1", "layer2")
  with pytest.raises(ValueError, match="allowed: mlp"):
    nets.build({"family": "transformer", "depth": 2, "width": 8}, (5,), 3)


def test_compiled_program_does_not_unroll_depth():
  """The HLO of a depth-64 forward is about as large as that of depth 4 (scan)."""
  sizes = {}
  for depth in (4, 64):
    net = nets.mlp(depth, 8, 8, 2)
    v = net.init(jax.random.key(0))
    hlo = jax.jit(lambda v, x: net.apply(v, x, train=True)).lower(v, jnp.ones((4, 8))).as_text()
    sizes[depth] = len(hlo)
  assert sizes[64] < 1.2 * sizes[4]
