"""CONV-L-H: shapes, scanned == unrolled, BN train/eval semantics, vmap over runs."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.engine.validate import ConfigError
from jaxdepth.nets import conv as convnets


def _cfg(depth=3, width=4, batchnorm=True, init="kaiming", head="gap", conv_impl="auto"):
  return dict(family="conv", depth=depth, width=width, batchnorm=batchnorm, init=init,
              head=head, conv_impl=conv_impl)


@pytest.mark.parametrize("x_shape,k,stride,pad", [((2, 7, 6, 3), 3, 1, 1),
                                                  ((2, 7, 6, 3), 3, 2, 1),
                                                  ((2, 8, 8, 3), 1, 2, 0),
                                                  ((3, 9, 2), 3, 2, 1)])
def test_patch_conv_equals_xla_conv(x_shape, k, stride, pad):
  nd = len(x_shape) - 2
  x = jax.random.normal(jax.random.key(0), x_shape, jnp.float32)
  w = jax.random.normal(jax.random.key(1), (k,) * nd + (x_shape[-1], 4), jnp.float32)
  def f(impl):
    return lambda x, w: convnets.conv(x, w, stride, pad, impl)

  np.testing.assert_allclose(f("patches")(x, w), f("xla")(x, w), rtol=1e-5, atol=1e-5)
  def g(impl):
    return jax.grad(lambda x, w: jnp.sum(jnp.sin(f(impl)(x, w))), (0, 1))

  for a, b in zip(g("patches")(x, w), g("xla")(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,feat_spatial", [((8, 8, 1), (4, 4)), ((7, 5, 3), (4, 3)),
                                                ((40,), (20,)), ((9, 2), (5,))])
@pytest.mark.parametrize("batchnorm", [True, False])
def test_forward_shapes_and_layer_count(shape, feat_spatial, batchnorm):
  depth, width, c = 3, 4, 5
  net = convnets.build_conv(_cfg(depth, width, batchnorm), shape, c)
  assert net.num_layers == depth and len(net.layer_names) == depth
  v = jax.eval_shape(net.init, jax.random.key(0))
  x = jax.ShapeDtypeStruct((6,) + shape, jnp.float32)
  for train in (True, False):
    logits, feats, stats = jax.eval_shape(functools.partial(net.apply, train=train), v, x)
    assert logits.shape == (6, c)
    assert len(feats) == 1
    assert feats[0].shape == (depth, 6, math.prod(feat_spatial) * width)
    assert sum(f.shape[0] for f in feats) == net.num_layers
    assert jax.tree.structure(stats) == jax.tree.structure(v["batch_stats"])


def test_depth_one_and_flatten_head():
  net = convnets.build_conv(_cfg(depth=1, head="flatten"), (6, 6, 2), 3)
  v = jax.eval_shape(net.init, jax.random.key(1))
  x = jax.ShapeDtypeStruct((2, 6, 6, 2), jnp.float32)
  logits, (f,), _ = jax.eval_shape(lambda v, x: net.apply(v, x, False), v, x)
  assert logits.shape == (2, 3) and f.shape == (1, 2, 3 * 3 * 4)


def _unrolled(v, x, depth, use_bn, train):
  """Independent reference: a Python loop over the layers, numpy-style BN."""
  p, s = v["params"], v["batch_stats"]

  def bn(h, scale, bias, mean, var):
    if train:
      mean, var = h.mean((0, 1, 2)), h.var((0, 1, 2))
    return (h - mean) / jnp.sqrt(var + 1e-5) * scale + bias

  def conv(h, w, stride):
    return jax.lax.conv_general_dilated(h, w, (stride, stride), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  h = conv(x, p["stem"]["w"], 2)
  if use_bn:
    h = bn(h, p["stem"]["bn"]["scale"], p["stem"]["bn"]["bias"], s["stem"]["mean"],
           s["stem"]["var"])
  else:
    h = h + p["stem"]["b"]
  h = jax.nn.relu(h)
  feats = [h.reshape(h.shape[0], -1)]
  for i in range(depth - 1):
    h = conv(h, p["hidden"]["w"][i], 1)
    if use_bn:
      h = bn(h, p["hidden"]["bn"]["scale"][i], p["hidden"]["bn"]["bias"][i],
             s["hidden"]["mean"][i], s["hidden"]["var"][i])
    else:
      h = h + p["hidden"]["b"][i]
    h = jax.nn.relu(h)
    feats.append(h.reshape(h.shape[0], -1))
  logits = h.mean((1, 2)) @ p["head"]["w"] + p["head"]["b"]
  return logits, jnp.stack(feats)


@pytest.mark.parametrize("use_bn,train,init,impl", [(True, True, "kaiming", "patches"),
                                                    (True, False, "pytorch", "xla"),
                                                    (False, True, "pytorch", "auto")])
def test_scan_equals_unrolled(use_bn, train, init, impl):
  depth = 4
  net = convnets.build_conv(_cfg(depth, 3, use_bn, init, conv_impl=impl), (8, 8, 2), 4)
  v = net.init(jax.random.key(2))
  if use_bn:  # non-trivial running stats so eval mode is exercised
    v["batch_stats"] = jax.tree.map(
        lambda a: a + 0.3 * jax.random.uniform(jax.random.key(9), a.shape, a.dtype),
        v["batch_stats"])
  x = jax.random.normal(jax.random.key(3), (5, 8, 8, 2), jnp.float32)
  with jax.numpy_rank_promotion("allow"):
    ref_logits, ref_feats = jax.jit(lambda v, x: _unrolled(v, x, depth, use_bn, train))(v, x)
  logits, (feats,), _ = jax.jit(lambda v, x: net.apply(v, x, train=train))(v, x)
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(feats, ref_feats, rtol=1e-4, atol=1e-5)
  assert bool(jnp.all(feats >= 0)) and float(feats.max()) > 0  # post-ReLU


def test_batchnorm_train_vs_eval():
  net = convnets.build_conv(_cfg(depth=3, width=3), (6, 6, 1), 2)
  v = net.init(jax.random.key(4))
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(5), (16, 6, 6, 1), jnp.float32)
  fwd = jax.jit(net.apply, static_argnums=2)
  # Eval: running stats returned unchanged.
  _, _, s_eval = net.apply(v, x, False)
  assert s_eval is v["batch_stats"]
  # Train: stem running mean moves 10% of the way to the batch mean of the conv output.
  _, _, s_train = fwd(v, x, True)
  h = convnets.conv(x, v["params"]["stem"]["w"], 2, 1)
  np.testing.assert_allclose(s_train["stem"]["mean"], 0.1 * h.mean((0, 1, 2)), rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(s_train["stem"]["var"], 0.9 + 0.1 * h.var((0, 1, 2)),
                             rtol=1e-4)
  assert s_train["hidden"]["mean"].shape == (2, 3)
  # Train-mode stem embedding is batch-normalized: per-channel pre-ReLU mean 0 var 1,
  # so the output depends on the batch, unlike eval mode.
  _, (f_train,), _ = fwd(v, x, True)
  _, (f_half,), _ = fwd(v, x[:8], True)
  _, (e_full,), _ = fwd(v, x, False)
  _, (e_half,), _ = fwd(v, x[:8], False)
  np.testing.assert_allclose(e_full[:, :8], e_half, rtol=1e-5, atol=1e-6)
  assert not np.allclose(f_train[:, :8], f_half, atol=1e-3)


def test_vmap_over_runs_equals_loop():
  net = convnets.build_conv(_cfg(depth=3, width=3), (6, 6, 1), 2)
  keys = jax.random.split(jax.random.key(6), 3)
  vs = jax.vmap(net.init)(keys)
  assert vs["params"]["hidden"]["w"].shape == (3, 2, 3, 3, 3, 3)
  x = jax.random.normal(jax.random.key(7), (4, 6, 6, 1), jnp.float32)
  logits, (f,), s = jax.jit(jax.vmap(lambda v: net.apply(v, x, train=True)))(vs)
  for r in range(3):
    l_r, (f_r,), s_r = jax.jit(lambda v: net.apply(v, x, True))(net.init(keys[r]))
    np.testing.assert_allclose(logits[r], l_r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f[r], f_r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s["hidden"]["var"][r], s_r["hidden"]["var"], rtol=1e-5)


def test_pytorch_init_bounds():
  net = convnets.build_conv(_cfg(depth=2, width=8, batchnorm=False, init="pytorch"),
                            (8, 8, 3), 10)
  p = net.init(jax.random.key(8))["params"]
  for w, b, fan in ((p["stem"]["w"], p["stem"]["b"], 27), (p["hidden"]["w"],
                                                          p["hidden"]["b"], 72)):
    bound = 1 / math.sqrt(fan)
    assert float(jnp.abs(w).max()) <= bound and float(jnp.abs(w).max()) > 0.8 * bound
    assert float(jnp.abs(b).max()) <= bound


def test_bad_inputs():
  with pytest.raises(ConfigError, match="config.depth"):
    convnets.build_conv(_cfg(depth=0), (8, 8, 1), 10)
  with pytest.raises(ConfigError, match="model.conv_impl"):
    convnets.build_conv(_cfg(conv_impl="cudnn"), (8, 8, 1), 10)
  with pytest.raises(ConfigError, match="config.init"):
    convnets.build_conv(_cfg(init="xavier"), (8, 8, 1), 10)
  with pytest.raises(ConfigError, match="conv needs"):
    convnets.build_conv(_cfg(), (2, 8, 8, 1), 10)
  net = convnets.build_conv(_cfg(), (8, 8, 1), 10)
  v = jax.eval_shape(net.init, jax.random.key(0))
  with pytest.raises(ValueError, match="built for inputs"):
    jax.eval_shape(net.apply, v, jnp.ones((2, 7, 7, 1)))


@pytest.mark.parametrize("stride", [1, 2])
def test_patch_conv_matches_float64_reference(stride):
  """conv_patches (a sum of one 2-D dot per kernel offset) against a float64 numpy
  direct sum; tolerance from float32 rounding: K = 9 * Cin products per output, each
  error <= K * eps * sum |x w| (a dot's worst-case bound)."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 9, 8, 5)).astype(np.float32)
  w = rng.standard_normal((3, 3, 5, 6)).astype(np.float32)
  got = np.asarray(convnets.conv_patches(jnp.asarray(x), jnp.asarray(w), stride, 1),
                   np.float64)
  xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  ho, wo = got.shape[1:3]
  ref, mag = np.zeros_like(got), np.zeros_like(got)
  for p in range(3):
    for q in range(3):
      xs = xp[:, p:p + stride * (ho - 1) + 1:stride, q:q + stride * (wo - 1) + 1:stride]
      ref += np.einsum("bhwc,co->bhwo", xs, w[p, q].astype(np.float64))
      mag += np.einsum("bhwc,co->bhwo", np.abs(xs), np.abs(w[p, q]).astype(np.float64))
  bound = 9 * 5 * np.finfo(np.float32).eps * mag
  assert np.all(np.abs(got - ref) <= bound)
