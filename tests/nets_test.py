"""MLP: scan equals an unrolled reference, BN semantics, one compile for any depth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import nets
from jaxdepth.nets.mlp import UNROLL_MAX_LAYERS


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


@pytest.mark.parametrize("batchnorm,train", [(True, True), (True, False), (False, True)])
def test_scanned_mlp_equals_unrolled_float64(batchnorm, train):
  """The scanned path (depth - 1 > UNROLL_MAX_LAYERS hidden layers; the test above only
  reaches the unrolled one) against the float64 numpy loop, all in float64, so that
  anything beyond rounding shows: 1e-10 relative to each layer's largest entry."""
  depth = 20
  assert depth - 1 > UNROLL_MAX_LAYERS
  with jax.enable_x64(True):
    net = nets.mlp(depth, 16, 12, 3, batchnorm=batchnorm)
    v = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(0)))
    if batchnorm:  # BN parameters and running statistics that differ per layer and
      # channel, so that a layer taking another layer's slice would show
      k = jax.random.split(jax.random.key(2), 4)
      shape = (depth, 16)
      v["params"]["bn"] = {"scale": 1.0 + 0.2 * jax.random.normal(k[0], shape, jnp.float64),
                           "bias": 0.1 * jax.random.normal(k[1], shape, jnp.float64)}
      v["batch_stats"] = {"mean": 0.1 * jax.random.normal(k[2], shape, jnp.float64),
                          "var": jax.random.uniform(k[3], shape, jnp.float64, 0.5, 1.5)}
    x = jax.random.normal(jax.random.key(1), (32, 3, 4), jnp.float64)
    logits, (feats,), _ = jax.jit(lambda v, x: net.apply(v, x, train=train))(v, x)
  assert logits.dtype == feats.dtype == jnp.float64 and feats.shape == (depth, 32, 16)
  want_logits, want_feats = unrolled_mlp(v, np.asarray(x), batchnorm, train)
  for got, want in [(logits, want_logits)] + list(zip(feats, want_feats)):  # per layer
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.max(np.abs(want)))


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
    fn = jax.jit(lambda v, x, net=net: net.apply(v, x, train=True))
    hlo = fn.lower(v, jnp.ones((4, 8))).as_text()
    sizes[depth] = len(hlo)
  assert sizes[64] < 1.2 * sizes[4]


@pytest.mark.parametrize("shape,relu", [((32, 7), True), ((32, 7), False),
                                        ((4, 5, 5, 3), True)])
def test_batch_norm_gradient_matches_autodiff(shape, relu):
  """The hand-written train-mode BN(+ReLU) gradient equals autodiff of the plain
  two-pass formula (including the cotangents of the returned batch statistics)."""
  k = jax.random.split(jax.random.key(0), 5)
  x = 3.0 + 2.0 * jax.random.normal(k[0], shape)
  scale = 1.0 + 0.3 * jax.random.normal(k[1], shape[-1:])
  bias = jax.random.normal(k[2], shape[-1:])
  g_y, g_s = jax.random.normal(k[3], shape), jax.random.normal(k[4], shape[-1:])
  axes = tuple(range(len(shape) - 1))

  def plain(x, scale, bias):
    mu = x.mean(axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axes, keepdims=True)
    bc = (1,) * len(axes) + shape[-1:]
    y = (x - mu) / jnp.sqrt(var + nets.BN_EPS) * scale.reshape(bc) + bias.reshape(bc)
    y = jnp.maximum(y, 0.0) if relu else y
    return y, mu.reshape(-1), var.reshape(-1)

  def fused(x, scale, bias):
    y, m, v = nets.batch_norm(x, scale, bias, jnp.zeros_like(scale),
                              jnp.ones_like(scale), True, relu=relu)
    return y, (m - 0.0) / (1 - nets.BN_MOMENTUM), (v - nets.BN_MOMENTUM) / (1 - nets.BN_MOMENTUM)

  for with_stats in (0.0, 1.0):
    def loss(fn, with_stats=with_stats):
      return lambda *a: (lambda o: jnp.sum(o[0] * g_y) + with_stats * jnp.sum(
          (o[1] + o[2] ** 2) * g_s))(fn(*a))
    want = jax.grad(loss(plain), (0, 1, 2))(x, scale, bias)
    got = jax.grad(loss(fused), (0, 1, 2))(x, scale, bias)
    for w, g in zip(want, got):
      np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(w))))
  np.testing.assert_allclose(fused(x, scale, bias)[0], plain(x, scale, bias)[0],
                             rtol=1e-5, atol=1e-5)



def plain_mlp_loss(p, x, w):
  """Training-mode MLP loss written out in jax (unrolled, BN by its formula)."""
  h = x
  L = p["w_hid"].shape[0] + 1
  for i in range(L):
    wi, bi = (p["w_in"], p["b_in"]) if i == 0 else (p["w_hid"][i - 1], p["b_hid"][i - 1])
    z = h @ wi + bi[None]
    mu = z.mean(0, keepdims=True)
    var = jnp.mean(jnp.square(z - mu), 0, keepdims=True)
    z = (z - mu) / jnp.sqrt(var + nets.BN_EPS) * p["bn"]["scale"][i][None] + \
        p["bn"]["bias"][i][None]
    h = jnp.maximum(z, 0.0)
  return jnp.sum((h @ p["w_out"] + p["b_out"][None]) * w)


@pytest.mark.parametrize("depth", [4, 20])  # unrolled (<= 16 hidden layers) and scanned
def test_mlp_train_gradient_matches_plain_autodiff(depth):
  """Loss and gradient through the whole training-mode MLP (custom BN gradient; unrolled
  or scanned) vs autodiff of the plain unrolled formula, both in float64 (x64 on).

  In float64 the two are the same math evaluated in a different order, so they agree to
  a few thousand ulps of 1e-16 whatever the CPU; float32 through 20 BatchNorm layers
  does not promise 1e-5 on every CPU (issue 20), so the float32 run is checked only to
  the error that its rounding can reach (derived below from the loss's conditioning).
  """
  with jax.enable_x64(True):
    net = nets.mlp(depth, 8, 5, 3)
    v = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (16, 5), jnp.float64)
    w = jax.random.normal(jax.random.key(2), (16, 3), jnp.float64)
    loss = lambda p: jnp.sum(net.apply({"params": p, "batch_stats": v["batch_stats"]}, x,
                                       train=True)[0] * w)
    assert loss(v["params"]).dtype == jnp.float64
    np.testing.assert_allclose(loss(v["params"]), plain_mlp_loss(v["params"], x, w),
                               rtol=1e-10)
    got = jax.grad(loss)(v["params"])
    want = jax.grad(plain_mlp_loss)(v["params"], x, w)
    for name in ("w_in", "w_hid", "w_out", "b_out"):
      scale = float(jnp.max(jnp.abs(want[name])))
      np.testing.assert_allclose(got[name], want[name], rtol=1e-8, atol=1e-10 * scale)
    for name in ("scale", "bias"):
      scale = float(jnp.max(jnp.abs(want["bn"][name])))
      np.testing.assert_allclose(got["bn"][name], want["bn"][name], rtol=1e-8,
                                 atol=1e-10 * scale)
    want_loss = float(plain_mlp_loss(v["params"], x, w))
    # The float32 network's error bound, derived from this loss's conditioning: the
    # float64 loss moves by `sens` (relative) when every parameter and input is
    # perturbed by one float32 rounding (relative 2^-24, random). Rounding inside each
    # of the layers' ops adds errors of that order per layer, so the float32 loss is
    # allowed 10x the largest of 8 such draws (at depth 20 this loss is ill-conditioned:
    # sens ~ 7e-5, and an AVX-512 EPYC gave 1.4e-5).
    sens = 0.0
    leaves, tree = jax.tree.flatten(v["params"])
    for i in range(8):
      ks = jax.random.split(jax.random.key(100 + i), len(leaves) + 1)
      jit = lambda a, k: a * (1 + 2.0 ** -24 * jax.random.normal(k, a.shape, a.dtype))
      p_pert = jax.tree.unflatten(tree, [jit(a, k) for a, k in zip(leaves, ks[1:])])
      sens = max(sens, abs(float(plain_mlp_loss(p_pert, jit(x, ks[0]), w)) - want_loss))
    v32 = jax.tree.map(lambda a: a.astype(jnp.float32), v)
  loss32 = float(jnp.sum(net.apply(v32, x.astype(jnp.float32), train=True)[0] *
                         w.astype(jnp.float32)))
  assert abs(loss32 - want_loss) <= 10 * sens + 1e-6 * abs(want_loss)


def test_mlp_gradient_check_detects_a_perturbation():
  """The float64 comparison above fails for a perturbation far below float32 rounding
  (BN epsilon 1e-5 -> 1e-5 * (1 + 1e-6)), so its tolerance is not vacuous."""
  with jax.enable_x64(True):
    net = nets.mlp(20, 8, 5, 3)
    v = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (16, 5), jnp.float64)
    w = jax.random.normal(jax.random.key(2), (16, 3), jnp.float64)
    got = jnp.sum(net.apply(v, x, train=True)[0] * w)
    old = nets.BN_EPS
    try:
      nets.BN_EPS = old * (1 + 1e-6)  # plain_mlp_loss reads it at call time
      want = plain_mlp_loss(v["params"], x, w)
    finally:
      nets.BN_EPS = old
    assert abs(float(got - want)) > 1e-10 * abs(float(want))
