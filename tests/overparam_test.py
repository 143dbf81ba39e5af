"""Linear over-parameterization: exact collapse, init variance, gradients (AC5-AC7)."""

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.nets import overparam as op


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _numpy_params(spec, dtype, seed=0):
  """Random expanded parameters with non-trivial BN, drawn with numpy (no threefry
  compile): the collapse tests do not depend on the init scheme."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: op.init(jax.random.key(0), spec, dtype))

  def fill(path, a):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      lead = 1 if "mid" in name else 0
      fan = int(np.prod(a.shape[lead:-1]))
      v = rng.standard_normal(a.shape) / math.sqrt(fan)
    elif "bn_scale" in name:
      v = 1.0 + 0.3 * rng.standard_normal(a.shape)
    elif "var" in name:
      v = rng.uniform(0.5, 1.5, a.shape)
    else:  # bias, bn_bias, mean
      v = 0.3 * rng.standard_normal(a.shape)
    return jnp.asarray(v, dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _probe(spec, params, stats):
  """The plain layer recovered by evaluating the eval-mode block on one-hot inputs
  (an oracle independent of collapse). Dense: b = f(0), W[i] = f(e_i) - f(0). Conv:
  the block without padding on k x k one-hot inputs (position, input channel); each
  1 x 1 output minus the zero-input response is one kernel entry per output channel."""
  dtype = params["first"]["kernel"].dtype
  if spec.kind == "dense":
    probes = jnp.concatenate([jnp.zeros((1, spec.d_in), dtype), jnp.eye(spec.d_in, dtype=dtype)])
    y = op.apply(spec, params, probes, stats)[0]
    w, b = y[1:] - y[:1], y[0]
  else:
    (kh, kw), c = spec.kernel, spec.in_ch
    probes = jnp.eye(kh * kw * c, dtype=dtype).reshape(-1, kh, kw, c)
    probes = jnp.concatenate([jnp.zeros_like(probes[:1]), probes])
    y = op.apply(dataclasses.replace(spec, padding="VALID"), params, probes, stats)[0]
    y = y[:, 0, 0, :]
    w, b = (y[1:] - y[:1]).reshape(kh, kw, c, spec.out_ch), y[0]
  return {"kernel": w, "bias": b} if spec.bias or spec.batchnorm else {"kernel": w}


def _check(spec, x_shape, dtype, tol, seed=0, probe=True):
  """Expanded vs collapsed vs probed, all in one jitted program (one compile)."""
  params, stats = _numpy_params(spec, dtype, seed)
  x = jnp.asarray(np.random.default_rng(seed + 1).standard_normal(x_shape), dtype)

  @jax.jit
  def run(params, stats, x):
    y, _ = op.apply(spec, params, x, stats, train=False)
    plain = op.collapse(spec, params, stats)
    probed = _probe(spec, params, stats) if probe else plain
    return y, op.apply_plain(spec, plain, x), plain, probed

  y, y_plain, plain, probed = run(params, stats, x)
  assert y_plain.shape == y.shape
  err = _rel(y_plain, y)
  assert err < tol, (spec, err)
  if spec.kind == "conv":
    assert plain["kernel"].shape[:2] == spec.kernel
  for k in plain:
    assert _rel(probed[k], plain[k]) < 100 * tol, k
  return err


def test_batchnorm_train_mode_updates_running_stats():
  spec = op.DenseSpec(5, 4, depth=2, batchnorm=True, bias=False)
  params, stats = _numpy_params(spec, jnp.float32)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((64, 5)), jnp.float32)
  y, new = op.apply(spec, params, x, stats, train=True)
  h = np.asarray(x) @ np.asarray(params["first"]["kernel"])
  np.testing.assert_allclose(new["first"]["mean"],
                             0.9 * np.asarray(stats["first"]["mean"]) + 0.1 * h.mean(0),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new["first"]["var"],
                             0.9 * np.asarray(stats["first"]["var"]) + 0.1 * h.var(0),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(y).mean(0), params["last"]["bn_bias"], atol=1e-5)


DENSE_GRID = list(itertools.product([1, 2, 4, 8, 16], [0.5, 1.0, 4.0]))


@pytest.mark.parametrize("depth,width", DENSE_GRID)
def test_dense_collapse_exact(depth, width):
  spec = op.DenseSpec(12, 8, depth=depth, width=width)
  with jax.enable_x64(True):
    y_err = _check(spec, (16, 12), jnp.float64, 1e-12, probe=depth <= 4)
  assert y_err < 1e-12
  _check(spec, (16, 12), jnp.float32, 1e-5, probe=False)


@pytest.mark.parametrize("bn,bias", [(True, True), (False, True), (True, False),
                                     (False, False)])
def test_dense_bn_and_bias(bn, bias):
  spec = op.DenseSpec(10, 10, depth=5, width=1.0, batchnorm=bn, bias=bias)
  with jax.enable_x64(True):
    _check(spec, (32, 10), jnp.float64, 1e-10)
  _check(spec, (32, 10), jnp.float32, 1e-5, probe=False)


CONV_GRID = [
    # kernel, depth, stride, padding
    (3, 3, 1, "SAME"), (3, 3, 2, "SAME"), (3, 2, 1, "VALID"), (5, 3, 2, 1),
    (3, 4, 1, ((2, 1), (0, 3))), (3, 1, 2, "VALID"), (1, 2, 1, "SAME"),
    (3, 5, 2, ((1, 1), (1, 1))),
]


@pytest.mark.parametrize("kernel,depth,stride,padding", CONV_GRID)
def test_conv_collapse_exact(kernel, depth, stride, padding):
  spec = op.ConvSpec(3, 4, kernel=kernel, depth=depth, stride=stride, padding=padding,
                     width=1.5)
  with jax.enable_x64(True):
    _check(spec, (2, 11, 10, 3), jnp.float64, 1e-12)
  _check(spec, (2, 11, 10, 3), jnp.float32, 1e-5, probe=False)


@pytest.mark.parametrize("kw", [
    dict(batchnorm=True),
    dict(depth=5, stride=2, batchnorm=True, bias=False),
    dict(kernel=(3, 5), padding="VALID", batchnorm=True, fan="fan_in"),
    dict(kernel=(1, 3), padding=((0, 0), (1, 1)), stride=(1, 2)),  # a 1-D conv
])
def test_conv_options_exact(kw):
  kw = {**dict(in_ch=3, out_ch=5, kernel=3, depth=3, width=1.5, padding="SAME"), **kw}
  spec = op.ConvSpec(**kw)
  with jax.enable_x64(True):
    _check(spec, (3, 9, 8, spec.in_ch), jnp.float64, 1e-10)
  _check(spec, (3, 9, 8, spec.in_ch), jnp.float32, 1e-5, probe=False)


def test_plain_layer():
  spec = op.ConvSpec(3, 6, kernel=3, depth=4, stride=2, padding="SAME", batchnorm=True)
  assert op.plain_layer(spec) == dict(features=6, kernel_size=(3, 3), strides=(2, 2),
                                      padding=((1, 1), (1, 1)), use_bias=True)
  assert op.plain_layer(op.DenseSpec(4, 3, bias=False)) == dict(features=3, use_bias=False)


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_init_keeps_kaiming_variance(depth):
  """AC6: Var(W_e) * fan_in in [1.85, 2.15] for the collapsed 128x128 map."""
  spec = op.DenseSpec(128, 128, depth=depth, bias=False)
  keys = jax.random.split(jax.random.key(depth), 20)
  w = jax.vmap(lambda k: op.collapse(spec, op.init(k, spec)[0])["kernel"])(keys)
  v = float(jnp.var(w)) * 128
  assert 1.85 <= v <= 2.15, v


def test_conv_init_keeps_kaiming_fan_out_variance():
  spec = op.ConvSpec(32, 32, kernel=3, depth=4, bias=False)
  keys = jax.random.split(jax.random.key(0), 20)
  w = jax.vmap(lambda k: op.collapse(spec, op.init(k, spec)[0])["kernel"])(keys)
  v = float(jnp.var(w)) * 32 * 9  # fan_out = out * k * k
  assert 1.8 <= v <= 2.2, v


def test_param_counts_match_reference_table():
  # Linear 512 -> 512 and Conv 64 -> 64 3x3, with biases, expanded into d sub-layers
  # of hidden width out: d = 1 is the plain layer, every further one adds out x out
  # weights (a 1x1 conv) and out biases.
  for d, n in ((1, 262_656), (2, 525_312), (4, 1_050_624)):
    assert op.num_params(op.DenseSpec(512, 512, depth=d)) == n
  for d, n in ((1, 36_928), (2, 41_088), (4, 49_408)):
    assert op.num_params(op.ConvSpec(64, 64, kernel=3, depth=d)) == n


def test_training_through_collapse_equals_expanded_gradients():
  """Drop-in use: loss(apply_plain(collapse(p))) has the expanded model's gradients."""
  spec = op.ConvSpec(3, 4, kernel=3, depth=3, stride=2)
  params, _ = _numpy_params(spec, jnp.float32)
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 8, 8, 3)), jnp.float32)

  def loss_expanded(p):
    return jnp.sum(jnp.sin(op.apply(spec, p, x)[0]))

  def loss_collapsed(p):
    return jnp.sum(jnp.sin(op.apply_plain(spec, op.collapse(spec, p), x)))

  g1, g2 = jax.jit(jax.grad(loss_expanded))(params), jax.jit(jax.grad(loss_collapsed))(
      params)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    assert _rel(b, a) < 1e-4


def test_factor_gradients_and_preconditioned_update():
  """AC7: dL/dW_j = (W_<j)^T G (W_>j)^T, and one GD step moves W_e by
  -eta sum_j P_j G Q_j + O(eta^2) (row convention: W_e = W_1 ... W_d)."""
  with jax.enable_x64(True):
    d, n = 4, 6
    spec = op.DenseSpec(n, n, depth=d, bias=False, gain=1.0)
    params, _ = _numpy_params(spec, jnp.float64, seed=3)
    target = jnp.asarray(np.random.default_rng(4).standard_normal((n, n)))

    def loss_we(w):
      return 0.5 * jnp.sum((w - target) ** 2)

    def loss(p):
      return loss_we(op.collapse(spec, p)["kernel"])

    def factors(p):
      return [p["first"]["kernel"], *p["mid"]["kernel"], p["last"]["kernel"]]

    def prod(ws):
      out = jnp.eye(n, dtype=jnp.float64)
      for w in ws:
        out = out @ w
      return out

    ws = factors(params)
    g = jax.grad(loss_we)(prod(ws))
    grads = factors(jax.grad(loss)(params))
    for j in range(d):
      expect = prod(ws[:j]).T @ g @ prod(ws[j + 1:]).T
      np.testing.assert_allclose(grads[j], expect, rtol=1e-10, atol=1e-12)
    pre = sum(prod(ws[:j]) @ prod(ws[:j]).T @ g @ prod(ws[j + 1:]).T @ prod(ws[j + 1:])
              for j in range(d))
    errs = []
    for eta in (1e-2, 1e-3, 1e-4):
      new = [w - eta * gw for w, gw in zip(ws, grads)]
      dwe = prod(new) - prod(ws)
      errs.append(_rel(dwe, -eta * pre))
    r1, r2 = errs[0] / errs[1], errs[1] / errs[2]
    assert 8 < r1 < 12 and 8 < r2 < 12, errs


@pytest.mark.parametrize("make,msg", [
    (lambda: op.DenseSpec(4, 4, depth=0), "depth"),
    (lambda: op.DenseSpec(4, 4, depth=-2), "depth"),
    (lambda: op.DenseSpec(0, 4), "d_in"),
    (lambda: op.DenseSpec(4, 4, width=0.1), "width"),
    (lambda: op.ConvSpec(4, 4, kernel=0), "kernel"),
    (lambda: op.ConvSpec(4, 4, fan="fan_avg"), "fan"),
    (lambda: op.ConvSpec(4, 4, padding="REFLECT"), "padding"),
    (lambda: op.ConvSpec(4, 4, padding=(1, 2, 3)), "padding"),
])
def test_bad_specs(make, msg):
  with pytest.raises(ValueError, match=msg):
    make()


def test_collapse_refuses_foreign_params():
  spec = op.DenseSpec(4, 3, depth=3)
  params, _ = op.init(jax.random.key(0), spec)
  with pytest.raises(ValueError, match="not produced by overparam.init"):
    op.collapse(spec, {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)})
  with pytest.raises(ValueError, match="not produced by overparam.init"):
    op.collapse(op.DenseSpec(4, 3, depth=4), params)
  with pytest.raises(ValueError, match="not produced by overparam.init"):
    op.collapse(spec, jnp.ones((4, 3)))
  bn = op.DenseSpec(4, 3, depth=2, batchnorm=True)
  p_bn, _ = op.init(jax.random.key(0), bn)
  with pytest.raises(ValueError, match="batch_stats"):
    op.collapse(bn, p_bn)
  assert math.isclose(op.DenseSpec(4, 3, width=2.0).hidden, 6)
