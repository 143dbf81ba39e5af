"""ResNet-18 + top layers: feats groups and dims, BN modes, top scan, vmap over runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.engine.validate import ConfigError
from jaxdepth.nets import trunks

TINY = dict(family="resnet18_top", width=4, top_depth=2, top_kind="res", batchnorm=True,
            init="kaiming")


def test_feature_dims_32x32_paper_values():
  """Nine embeddings of the reference ResNet-18 with two top layers (stem, four
  stages, pool, fc, two top layers), sized for 32x32x3 inputs and width 64."""
  cfg = dict(TINY, width=64)
  net = trunks.build_resnet18_top(cfg, (32, 32, 3), 10)
  v = jax.eval_shape(net.init, jax.random.key(0))
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  logits, feats, _ = jax.eval_shape(lambda v, x: net.apply(v, x, train=False), v, x)
  want = (65536, 65536, 32768, 16384, 8192, 512, 128, 128, 128)
  assert trunks.feature_dims((32, 32, 3)) == want
  assert [f.shape[0] for f in feats] == [1, 1, 1, 1, 1, 1, 1, 2]
  dims = [f.shape[2] for f in feats for _ in range(f.shape[0])]
  assert tuple(dims) == want
  assert net.num_layers == 9 and len(net.layer_names) == 9
  assert logits.shape == (2, 10)
  n_params = sum(a.size for a in jax.tree.leaves(v["params"]))
  # ResNet-18 (CIFAR) 11,168,832 conv+BN params without fc; + fc 512*128+128, two
  # residual top blocks 2*(128*50+50+50*128+128), head 128*10+10.
  assert n_params == 11_168_832 + 65_664 + 2 * 12_978 + 1_290


@pytest.mark.parametrize("top_kind", ["res", "fc"])
@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 7, 1)])
def test_forward_shapes(top_kind, shape):
  net = trunks.build_resnet18_top(dict(TINY, top_kind=top_kind, top_depth=3), shape, 5)
  v = jax.eval_shape(net.init, jax.random.key(1))
  x = jax.ShapeDtypeStruct((4,) + shape, jnp.float32)
  logits, feats, stats = jax.eval_shape(lambda v, x: net.apply(v, x, True), v, x)
  assert logits.shape == (4, 5)
  assert sum(f.shape[0] for f in feats) == net.num_layers == 10
  dims = tuple(f.shape[2] for f in feats for _ in range(f.shape[0]))
  assert dims == trunks.feature_dims(shape, 4, 128, 3)
  assert all(f.shape[1] == 4 for f in feats)
  assert jax.tree.structure(stats) == jax.tree.structure(v["batch_stats"])


@pytest.mark.parametrize("kind,impl", [("res", "patches"), ("fc", "xla")])
def test_top_scan_equals_unrolled_and_reference_embed(kind, impl):
  cfg = dict(TINY, top_kind=kind, top_depth=3, embed="reference", conv_impl=impl)
  net = trunks.build_resnet18_top(cfg, (8, 8, 3), 4)
  v = net.init(jax.random.key(3))
  x = jax.random.normal(jax.random.key(4), (3, 8, 8, 3), jnp.float32)
  logits, feats, _ = jax.jit(lambda v, x: net.apply(v, x, False))(v, x)
  assert all(bool(jnp.all(f >= 0)) for f in feats[:6])  # post-ReLU stem/stages/pool
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
  pool = np.asarray(feats[5][0], np.float64)
  z = pool @ p["fc"]["w"] + p["fc"]["b"]
  np.testing.assert_allclose(feats[6][0], z, rtol=1e-5, atol=1e-6)  # pre-ReLU fc
  h = np.maximum(np.asarray(z, np.float64), 0)
  q = p["top"]
  for t in range(3):
    if kind == "res":
      u = np.maximum(h @ q["w1"][t] + q["b1"][t], 0)
      h = np.maximum(h + u @ q["w2"][t] + q["b2"][t], 0)
      rec = h
    else:
      rec = h @ q["w"][t] + q["b"][t]
      h = np.maximum(rec, 0)
    np.testing.assert_allclose(feats[7][t], rec, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(logits, h @ p["head"]["w"] + p["head"]["b"], rtol=1e-4,
                             atol=1e-5)


def test_batchnorm_modes_and_vmap_over_runs():
  net = trunks.build_resnet18_top(dict(TINY, top_depth=1), (8, 8, 1), 3)
  keys = jax.random.split(jax.random.key(5), 2)
  vs = jax.vmap(net.init)(keys)
  x = jax.random.normal(jax.random.key(6), (4, 8, 8, 1), jnp.float32)
  run = jax.jit(jax.vmap(lambda v: net.apply(v, x, train=True)))
  logits, feats, stats = run(vs)
  for r in range(2):
    v_r = net.init(keys[r])
    l_r, f_r, s_r = jax.jit(lambda v: net.apply(v, x, train=True))(v_r)
    # float32, batch-of-4 BN: vmapped and single convs differ in rounding only.
    np.testing.assert_allclose(logits[r], l_r, rtol=1e-3, atol=1e-4)
    for a, b in zip(feats, f_r):
      np.testing.assert_allclose(a[r], b, rtol=1e-3, atol=1e-4)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(s_r)):
      np.testing.assert_allclose(a[r], b, rtol=1e-3, atol=1e-5)
    # Eval mode: stats untouched; train mode moved the stem running mean.
    def eval_keeps_stats(v):
      assert net.apply(v, x, False)[2] is v["batch_stats"]

    jax.eval_shape(eval_keeps_stats, v_r)
    assert not np.allclose(s_r["stem"]["mean"], 0.0)
    assert "proj" in s_r["stage2_block0"] and "proj" not in s_r["stage1_block0"]


def test_no_batchnorm_and_bad_inputs():
  net = trunks.build_resnet18_top(dict(TINY, batchnorm=False, top_depth=0), (8, 8, 3), 2)
  v = jax.eval_shape(net.init, jax.random.key(7))
  assert v["batch_stats"] == {}
  _, feats, s = jax.eval_shape(lambda v, x: net.apply(v, x, True), v, jnp.ones((2, 8, 8, 3)))
  assert len(feats) == 7 and net.num_layers == 7 and s == {}
  with pytest.raises(ConfigError, match="images"):
    trunks.build_resnet18_top(TINY, (40,), 10)
  with pytest.raises(ConfigError, match="model.top_depth"):
    trunks.build_resnet18_top(dict(TINY, depth=3), (8, 8, 3), 10)  # conflicts with 2
  assert trunks.top_depth_of(dict(family="resnet18_top", depth=5)) == 5  # depth sweeps
  with pytest.raises(ConfigError, match="model.top_kind"):
    trunks.build_resnet18_top(dict(TINY, top_kind="mlp"), (8, 8, 3), 10)
  with pytest.raises(ValueError, match="built for inputs"):
    jax.eval_shape(net.apply, v, jnp.ones((2, 16, 16, 3)))
