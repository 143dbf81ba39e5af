"""Linear over-parameterization of whole networks: the drop-in expand_params /
collapse_params, AC8's computation (collapsed = expanded after training, rho(K) as
the float64 reference; the direction is documented, not asserted) and the
lowrank.overparam experiment end to end."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.configs.lowrank import overparam as op_cfg
from jaxdepth.engine import writers
from jaxdepth.engine.validate import ConfigError
from jaxdepth.measure import rank
from jaxdepth.nets import overparam
from jaxdepth.papers.lowrank import overparam_exp
from jaxdepth.tools import ac8

# AC8's setting lives in jaxdepth/tools/ac8.py (which also prints docs/definitions.md's
# table); the tests below check its computation against independent references.
_teacher_data, _mlp, _ac8 = ac8.teacher_data, ac8.mlp, ac8.train


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


def test_ac8_table_tool_prints_the_float64_ranks(capsys):
  """`python -m jaxdepth.tools.ac8` at a tiny size: each cell's per-seed values are the
  float64 rho(K) of the collapsed network's penultimate features, mean ± sample std."""
  assert ac8.main(["--steps", "3", "--seeds", "2", "--data-keys", "7"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "| data key | | d = 1 | d = 4 | gap |" and len(lines) == 4
  x, y = _teacher_data(jax.random.key(7))
  for d, col in ((1, 3), (4, 4)):
    base, sites, p0, p = _ac8(d, 2, x, y, steps=3)
    for params, line in ((p0, lines[2]), (p, lines[3])):
      feats = jax.vmap(lambda ps: base.apply(  # noqa: B023
          {"params": overparam.collapse_params(ps, sites), "batch_stats": {}},  # noqa: B023
          x)[1][0][-1])(params)
      want = [_rho_gram64(f) for f in np.asarray(feats)]
      got = [float(v) for v in line.split("|")[col].split("(")[1].rstrip(") ").split(",")]
      np.testing.assert_allclose(got, want, atol=2e-3)  # 3 decimals + float32 features
  assert ac8.main(["--seeds", "1"]) == 2
