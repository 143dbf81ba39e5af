"""analyze_model on a user's own model (linen, nnx, plain callable) against hand-computed
features fed to collapse_metrics."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxdepth
from jaxdepth.measure import collapse, nc
from jaxdepth.measure.models import analyze_model

C, DIN, H, N, NT, R = 3, 5, 8, 45, 20, 3


class LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(H)(x))
    x = nn.relu(nn.Dense(H)(x))
    return nn.Dense(C)(x)


class NnxMLP(nnx.Module):
  def __init__(self, rngs):
    self.l0 = nnx.Linear(DIN, H, rngs=rngs)
    self.l1 = nnx.Linear(H, H, rngs=rngs)
    self.l2 = nnx.Linear(H, C, rngs=rngs)

  def __call__(self, x):
    return self.l2(jax.nn.relu(self.l1(jax.nn.relu(self.l0(x)))))


def _data():
  kx, ky, kt = jax.random.split(jax.random.key(1), 3)
  centers = 2.0 * jax.random.normal(kx, (C, DIN))
  y = jnp.arange(N) % C
  x = centers[y] + jax.random.normal(ky, (N, DIN))
  yt = jnp.arange(NT) % C
  xt = centers[yt] + jax.random.normal(kt, (NT, DIN))
  return x, y, xt, yt


def _hand(w, x):
  """Pre-activation outputs of the three Dense layers of one run, by hand."""
  h0 = x @ w["Dense_0"]["kernel"] + w["Dense_0"]["bias"][None]
  h1 = jax.nn.relu(h0) @ w["Dense_1"]["kernel"] + w["Dense_1"]["bias"][None]
  h2 = jax.nn.relu(h1) @ w["Dense_2"]["kernel"] + w["Dense_2"]["bias"][None]
  return [h0, h1, h2], h2


@pytest.fixture(scope="module")
def setup():
  x, y, xt, yt = _data()
  model = LinenMLP()
  keys = jax.random.split(jax.random.key(0), R)
  variables = jax.vmap(model.init, (0, None))(keys, x[:1])
  res = analyze_model(model, variables, x, y, C, x_test=xt, y_test=yt,
                      classifier="Dense_2/kernel", batch_size=16)
  return x, y, xt, yt, model, variables, res, _kappa(variables, x, y)


# NC1 is computed through the C x C Gram matrix G = M M^T of the class means
# (measure/nc.py): a relative error u in the class means moves NC1 by about
# kappa(G) * u, kappa(G) the ratio of G's largest to smallest kept eigenvalue (the
# 1/lambda_k^2 weights of nc_from_gram). The streamed analyzer accumulates the means
# over batches in float32 (u ~ a few float32 roundings, 2^-24 each), so NC1 is held to
# 64 kappa(G) 2^-24 (at least 2e-4); the other metrics do not divide by small
# eigenvalues and are held to 1e-5.
EPS32 = float(np.finfo(np.float32).eps) / 2


def _kappa(variables, x, y):
  """(R, L) kappa(G) per run and layer, from float64 copies of the hand features."""
  out = np.zeros((R, 3))
  for r in range(R):
    w = jax.tree.map(lambda a, r=r: a[r], variables["params"])
    for l, f in enumerate(_hand(w, x)[0]):
      f, yy = np.asarray(f, np.float64), np.asarray(y)
      m = np.stack([f[yy == c].mean(0) for c in range(C)]) - f.mean(0)
      ev = np.sort(np.linalg.eigvalsh(m @ m.T))[::-1][:C - 1]
      out[r, l] = ev[0] / ev[-1]
  return out


def _rtol(k, kappa):
  if k.startswith("nc1") and not k.startswith("nc1_ratio"):
    return np.maximum(2e-4, 64 * kappa * EPS32)
  return 1e-5


def _assert_close(got, want, rtol, atol=1e-5, err_msg=""):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  both_nan = np.isnan(got) & np.isnan(want)
  bad = ~both_nan & ~(np.abs(got - want) <= atol + rtol * np.abs(want))
  assert not bad.any(), (err_msg, got[bad], want[bad], np.broadcast_to(rtol, got.shape)[bad])


def _close(a, b, keys=None, kappa=None):
  for k in keys or [k for k in a if k not in ("effective_depth", "layer_names",
                                               "nc3_layer")]:
    rtol = _rtol(k, kappa) if np.ndim(a[k]) == 2 else 1e-5
    _assert_close(a[k], b[k], rtol, err_msg=k)


def test_linen_matches_hand_loop(setup):
  x, y, xt, yt, model, variables, res, kappa = setup
  assert res["layer_names"] == ["Dense_0", "Dense_1", "Dense_2"]
  assert res["nc3_layer"] == 1
  assert res["ncc_acc_train"].shape == (R, 3)
  assert res["counts_train"].shape == (R, 3, C)
  for r in range(R):
    w = jax.tree.map(lambda a, r=r: a[r], variables["params"])
    feats, logits = _hand(w, x)
    feats_t, logits_t = _hand(w, xt)
    pred = logits.argmax(-1)
    np.testing.assert_allclose(res["acc_train"][r], np.mean(pred == y), atol=1e-6)
    np.testing.assert_allclose(res["acc_test"][r], np.mean(logits_t.argmax(-1) == yt),
                               atol=1e-6)
    for l, f in enumerate(feats):
      cls = w["Dense_2"]["kernel"].T if l == 1 else None
      with jax.enable_x64(True):  # float64 reference of the same features
        ref = nc.collapse_metrics(
            jnp.asarray(np.asarray(f, np.float64)), y, C,
            classifier=None if cls is None else jnp.asarray(np.asarray(cls, np.float64)),
            predictions=pred)
      for k, v in ref.items():
        _assert_close(res[k + "_train"][r, l], v, _rtol(k, kappa[r, l]),
                      err_msg=f"{k} run {r} layer {l}")
      means = collapse.class_means(f, y, C)
      np.testing.assert_allclose(res["ncc_acc_test"][r, l],
                                 collapse.ncc_accuracy(feats_t[l], yt, means), atol=1e-6)
  assert np.isnan(res["nc3_duality_train"][:, [0, 2]]).all()
  assert np.isfinite(res["nc3_duality_train"][:, 1]).all()


def test_nnx_matches_linen(setup):
  x, y, xt, yt, model, variables, res, kappa = setup
  keys = jax.random.split(jax.random.key(5), R)
  m = nnx.vmap(lambda k: NnxMLP(nnx.Rngs(k)))(keys)
  graphdef, state = nnx.split(m)
  pr = variables["params"]
  for i in range(3):  # copy the linen weights
    state[f"l{i}"]["kernel"].set_value(pr[f"Dense_{i}"]["kernel"])
    state[f"l{i}"]["bias"].set_value(pr[f"Dense_{i}"]["bias"])
  out = analyze_model(m, state, x, y, C, x_test=xt, y_test=yt, classifier="l2/kernel",
                      batch_size=16)
  assert out["layer_names"] == ["l0", "l1", "l2"]
  _close(res, out, kappa=kappa)
  # params=None: the module's own (stacked) state.
  nnx.update(m, state)
  out2 = analyze_model(m, None, x, y, C, classifier="l2/kernel")
  _close(res, out2, ["ncc_acc_train", "nc1_train", "nc3_duality_train"], kappa)


def test_plain_callable_and_batches(setup):
  x, y, xt, yt, model, variables, res, kappa = setup
  apply = lambda p, xb: _hand(p, xb)[::-1]
  params = variables["params"]
  cls = lambda p: p["Dense_2"]["kernel"].T  # (C, D)
  one = analyze_model(apply, params, x, y, C, x_test=xt, y_test=yt, classifier=cls,
                      batch_size=N)
  assert one["layer_names"] == ["layer_0", "layer_1", "layer_2"]
  _close(res, one, kappa=kappa)
  # batch sizes that do not divide N (masked tail) give the same numbers as one batch.
  for bs in (7,):
    _close(one, analyze_model(apply, params, x, y, C, x_test=xt, y_test=yt,
                              classifier=cls, batch_size=bs), kappa=kappa)


def test_layer_selection(setup):
  x, y, xt, yt, model, variables, res, kappa = setup
  out = analyze_model(model, variables, x, y, C, layers=["Dense_0", "Dense_2"])
  assert out["layer_names"] == ["Dense_0", "Dense_2"]
  _assert_close(out["nc1_train"], res["nc1_train"][:, [0, 2]],
                _rtol("nc1", kappa[:, [0, 2]]))
  out = analyze_model(model, variables, x, y, C, layers=lambda p: p == ("Dense_1",))
  assert out["layer_names"] == ["Dense_1"]


def test_program_cache(setup):
  """A repeated call reuses the jitted program (no retrace) with the same results; a
  different static structure (layers, classifier, an unequal model) gets its own."""
  from jaxdepth.measure import models
  x, y, xt, yt, model, variables, res, kappa = setup
  models._PROGRAMS.clear()
  traces = []
  spy = lambda p, xb: (traces.append(1), _hand(p, xb)[::-1])[1]
  params = variables["params"]
  a = analyze_model(spy, params, x, y, C, layers=[0, 2])
  n = len(traces)
  b = analyze_model(spy, params, x, y, C, layers=[0, 2])
  assert len(traces) == n + 1  # only the shape probe outside the program
  assert len(models._PROGRAMS) == 1
  for k in ("ncc_acc_train", "nc1_train", "cdnv_train"):
    np.testing.assert_array_equal(a[k], b[k])
  analyze_model(spy, params, x, y, C, layers=[0, 1])
  assert len(models._PROGRAMS) == 2
  analyze_model(model, variables, x, y, C, classifier="Dense_2/kernel")
  analyze_model(model, variables, x, y, C)
  analyze_model(LinenMLP(), variables, x, y, C)  # an equal module: a cache hit
  assert len(models._PROGRAMS) == 4


def test_effective_depth(setup):
  x, y, xt, yt, model, variables, res, kappa = setup
  err = 1.0 - res["ncc_acc_train"]
  for e in (0.01, 0.05, 0.1):
    got = res["effective_depth"][e]
    assert got.shape == (R,)
    np.testing.assert_array_equal(got, collapse.effective_depth(err, e, N))
    for r in range(R):
      ok = [k for k in range(3) if round(err[r, k] * N) <= e * N * (1 + 1e-6)]
      assert got[r] == (ok[0] + 1 if ok else 4)


def test_lazy_export():
  assert jaxdepth.analyze_model is analyze_model


def test_readme_snippet():
  text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
  section = text.split("## Your own model", 1)[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  ns = {}
  exec(compile(code, "README.md", "exec"), ns)
  assert ns["res"]["ncc_acc_train"].shape[0] == 2


def test_sharded_over_devices_equals_one_device(setup):
  """The run axis sharded over the test session's 4 CPU devices (R = 3 padded to 4)
  gives the numbers of one device."""
  x, y, xt, yt, model, variables, res, kappa = setup
  assert len(jax.devices()) > 1  # conftest: 4 host devices
  one = analyze_model(model, variables, x, y, C, x_test=xt, y_test=yt,
                      classifier="Dense_2/kernel", batch_size=16, shard=False)
  _close(res, one, kappa=kappa)
  assert res["ncc_acc_train"].shape[0] == R  # the padding run is dropped
