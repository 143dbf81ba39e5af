"""Linear over-parameterization of whole networks: the drop-in expand_params /
collapse_params, AC8's computation (collapsed = expanded after training, rho(K) as
the float64 reference; the direction is documented, not asserted) and the
lowrank.overparam experiment end to end."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdepth import nets
from jaxdepth.configs.lowrank import overparam as op_cfg
from jaxdepth.engine import writers
from jaxdepth.engine.validate import ConfigError
from jaxdepth.measure import rank
from jaxdepth.nets import expanded, overparam
from jaxdepth.papers.lowrank import overparam_exp


def _teacher_data(key, n=512, dim=32, classes=10):
  # float32 draws pinned, so the test sees the same data under JAX_ENABLE_X64=1.
  k_x, k1, k2 = jax.random.split(key, 3)
  x = jax.random.normal(k_x, (n, dim), jnp.float32)
  w1 = jax.random.normal(k1, (dim, 64), jnp.float32) / np.sqrt(dim)
  w2 = jax.random.normal(k2, (64, classes), jnp.float32) / np.sqrt(64)
  return x, jnp.argmax(jnp.tanh(x @ w1) @ w2, axis=1)


def _mlp(expansion):
  base = nets.mlp(3, 128, 32, 10, batchnorm=False)  # 32-128-128-128-10
  shapes = jax.eval_shape(base.init, jax.random.key(0))["params"]
  return base, expanded.sites("mlp", shapes, expansion, 1.0, (32,))


def test_expanded_mlp_equals_sublayer_by_sublayer_application():
  base, sites = _mlp(3)
  v = jax.jit(base.init)(jax.random.key(0))
  p = jax.jit(lambda k, v: overparam.expand_params(k, v, sites))(jax.random.key(1),
                                                                  v["params"])
  x = jax.random.normal(jax.random.key(2), (16, 32))
  logits, (f_LxBxH,), _ = jax.jit(base.apply)(
      {"params": overparam.collapse_params(p, sites), "batch_stats": {}}, x)

  ref, h = jax.jit(lambda p, x: _sublayer_forward(sites, p, x))(p, x)
  np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(f_LxBxH[-1], h, rtol=1e-4, atol=1e-5)
  assert "b_in" not in p and set(p["w_in"]) == {"expanded"}


def test_drop_in_errors():
  base, sites = _mlp(2)
  v = base.init(jax.random.key(0))
  with pytest.raises(ValueError, match="no expanded factors"):
    overparam.collapse_params(v["params"], sites)
  bad = sites[0]._replace(spec=overparam.DenseSpec(31, 128, depth=2))
  with pytest.raises(ValueError, match="does not match"):
    overparam.expand_params(jax.random.key(0), v["params"], [bad])
  nobias = sites[0]._replace(bias=None)
  with pytest.raises(ValueError, match="bias"):
    overparam.expand_params(jax.random.key(0), v["params"], [nobias])


def _sublayer_forward(sites, p, x):
  """The expanded MLP applied sub-layer by sub-layer (overparam.apply): logits and the
  penultimate ReLU features, without collapsing anything."""
  s_in, s_hid, s_out = sites
  h = jax.nn.relu(overparam.apply(s_in.spec, p["w_in"]["expanded"], x)[0])
  for i in range(s_hid.stacked):
    layer = jax.tree.map(lambda a: a[i], p["w_hid"]["expanded"])  # noqa: B023
    h = jax.nn.relu(overparam.apply(s_hid.spec, layer, h)[0])
  return overparam.apply(s_out.spec, p["w_out"]["expanded"], h)[0], h


def _ac8(expansion, seeds, x, y, steps):
  """AC8's pipeline: expanded params at init and after ``steps`` full-batch Adam steps
  through the factors (seeds vmapped); returns (base, sites, p0, p)."""
  base, sites = _mlp(expansion)

  def loss(p):
    logits = base.apply({"params": overparam.collapse_params(p, sites), "batch_stats": {}},
                        x)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  tx = optax.adam(1e-3)

  def one(k):
    p0 = overparam.expand_params(k, base.init(k)["params"], sites)

    def step(s, _):
      p, o = s
      u, o = tx.update(jax.grad(loss)(p), o, p)
      return (optax.apply_updates(p, u), o), None
    (p, _), _ = jax.lax.scan(step, (p0, tx.init(p0)), None, length=steps)
    return p0, p

  keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
  p0, p = jax.jit(jax.vmap(one))(keys)
  return base, sites, p0, p


def _rho_gram64(phi):
  """Float64 numpy reference of rho(K), K = Phi Phi^T: entropy of K's normalized
  eigenvalues (Huh et al. 2021, Eq. 1)."""
  phi = np.asarray(phi, np.float64)
  ev = np.clip(np.linalg.eigvalsh(phi @ phi.T), 0.0, None)
  q = ev[ev > 0] / ev.sum()
  return float(-(q * np.log(q)).sum())


def test_ac8_computation_collapsed_equals_expanded_and_rank_is_the_float64_one():
  """AC8's computation, not its direction: after training through the factors, the
  collapsed network (what is evaluated) equals the expanded one applied sub-layer by
  sub-layer, and the embedding rank rho(K) of its penultimate features is the float64
  reference's. Whether expansion lowers rho(K) depends on the draw (3 seeds: d = 4 has
  one seed above every d = 1 seed after training); the measured gap and its spread are
  in docs/definitions.md ("Linear over-parameterization")."""
  x, y = _teacher_data(jax.random.key(42))
  for expansion in (1, 4):
    base, sites, p0, p = _ac8(expansion, 2, x, y, steps=30)

    @jax.jit
    @jax.vmap
    def both(ps):
      logits, (f_LxNxH,), _ = base.apply(  # noqa: B023
          {"params": overparam.collapse_params(ps, sites), "batch_stats": {}}, x)  # noqa: B023
      return (logits, f_LxNxH[-1], rank.gram_entropy_rank(f_LxNxH[-1]),
              *_sublayer_forward(sites, ps, x))  # noqa: B023

    for params in (p0, p):
      logits, h, rho, ref_logits, ref_h = both(params)
      np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)
      np.testing.assert_allclose(h, ref_h, rtol=1e-4, atol=1e-4)
      for s in range(2):
        assert float(rho[s]) == pytest.approx(_rho_gram64(h[s]), abs=1e-3)
    # training moved the factors (the pipeline ran) and stayed finite
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), p0, p)
    assert max(jax.tree.leaves(moved)) > 0
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(p))


def test_overparam_experiment_tiny(tmp_path):
  c = op_cfg.get_config("tiny")
  c.models, c.expansions = ("conv",), (1, 2)  # 1-D CONV-L-H on the Gaussian mixture
  overparam_exp.validate(c)
  wd = str(tmp_path / "op")
  writers.prepare_workdir(wd, c)
  s = overparam_exp.run(c, wd)
  for e in (1, 2):
    rec = s["results"][f"conv/e{e}"]
    assert len(rec["rank_train"]) == c.depth and len(rec["rank_test"]) == c.depth
    assert len(rec["weight_rho"]) == c.depth + 1  # every conv layer and the head
    assert np.isfinite(rec["weight_rho"]).all() and rec["diverged_runs"] == 0
  assert os.path.exists(os.path.join(wd, "overparam.png"))
  recs = writers.read_jsonl(os.path.join(wd, "metrics.jsonl"))
  assert {r["expansion"] for r in recs} == {1, 2}


@pytest.mark.parametrize("field,value,where", [
    ("expansions", (0, 2), "expansions"),
    ("models", ("mlp", "resnet"), "models"),
    ("dataset", "cifar10", "dataset"),
    ("lr_scaling", "sqrt", "lr_scaling"),
])
def test_bad_config_names_the_field(field, value, where):
  c = op_cfg.get_config()
  c[field] = value
  with pytest.raises(ConfigError, match=f"config.{where}"):
    overparam_exp.validate(c)


def test_bad_train_field_is_prefixed():
  c = op_cfg.get_config()
  c.train.batch_size = 0
  with pytest.raises(ConfigError, match="config.train.batch_size"):
    overparam_exp.validate(c)


def test_summary_never_averages_diverged_runs():
  import warnings

  import ml_collections
  import numpy as np

  from jaxdepth.papers.lowrank import overparam_exp
  c = ml_collections.ConfigDict(dict(
      experiment="lowrank.overparam", dataset="digits", depth=2, width=8,
      expansions=(1, 4), num_seeds=3, models=("mlp",), lr_scaling="none",
      train=dict(lr=0.1)))
  def m(acc, div):
    n = len(acc)
    rank = np.where(np.asarray(div)[:, None], np.nan, np.arange(2 * n).reshape(n, 2) + 1.0)
    return {"train_acc": acc, "test_acc": acc, "train_loss": acc, "test_loss": acc,
            "rank_train": rank, "rank_test": rank, "diverged": div}
  results = {("mlp", 1): (m([0.9, 0.8, 0.7], [False, False, False]), np.ones((3, 2))),
             ("mlp", 4): (m([0.9, 0.1, 0.1], [False, True, True]), np.full((3, 2), 2.0)),
             }
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    s = overparam_exp._summarize(c, results)
  e4 = s["results"]["mlp/e4"]
  assert e4["diverged_runs"] == 2
  assert e4["test_acc"]["mean"] == 0.9 and e4["test_acc"]["std"] == 0.0
  assert e4["rank_train"] == [1.0, 2.0] and e4["weight_rho"] == [2.0, 2.0]
  assert s["results"]["mlp/e1"]["test_acc"]["mean"] == np.mean([0.9, 0.8, 0.7])
  assert s["checks"]["mlp: weight rho lower at e4 than e1"] is False
