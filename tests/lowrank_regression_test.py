"""Deep linear regression depth sweep (spec Sec. 5.5; AC4, AC9, AC10) and the
optimizers experiment (Sec. 5.3)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth.configs.lowrank import optimizers as opt_cfg
from jaxdepth.configs.lowrank import regression as reg_cfg
from jaxdepth.engine import writers
from jaxdepth.engine.validate import ConfigError
from jaxdepth.papers.lowrank import common, optimizers, regression


def _sweep(target, n_train, depths, steps=4000, seeds=1, lr=0.2):
  probs = [common.make_regression(jax.random.key(s), 32, target, 4, n_train, 2000)
           for s in range(seeds)]
  problems = jax.tree.map(lambda *a: jnp.stack(a), *probs)
  keys = jax.random.split(jax.random.key(7), seeds)
  out = {}
  for d in depths:
    w0, w, loss, test = regression.train_depth(d, problems, keys, jnp.zeros(seeds, bool),
                                               lr / d, steps, steps // 4, 4)
    out[d] = dict(rho=common.rho64(w), rho0=common.rho64(w0), train=loss[:, -1],
                  test=test)
  return out, common.rho64(problems.w_star)


def test_ac4_deeper_finds_lower_rank_solution():
  out, rho_star = _sweep("low_rank", 24, (1, 2, 4, 8))
  np.testing.assert_allclose(rho_star, np.log(4), atol=1e-4)
  rho = [out[d]["rho"][0] for d in (1, 2, 4, 8)]
  assert all(out[d]["train"][0] < 1e-3 for d in out), {d: out[d]["train"] for d in out}
  assert np.all(np.diff(rho) < 0), rho
  assert rho[-1] < rho[0] - 0.3, rho
  rho0 = [out[d]["rho0"][0] for d in (1, 2, 4, 8)]
  assert np.all(np.diff(rho0) < 0), rho0  # at init too (sec. 4)


def test_ac9_ac10_overdetermined_and_full_rank_targets():
  low, rho_low = _sweep("low_rank", 128, (1, 16))
  full, rho_full = _sweep("full_rank", 128, (1, 16))
  # AC9: with n_train > dim, depth 1 recovers W*.
  assert low[1]["train"][0] < 1e-8 and low[1]["test"][0] < 1e-8
  assert abs(low[1]["rho"][0] - np.log(4)) < 1e-3
  # AC10: depth 16 fails to fit the full-rank target in the budget.
  assert full[16]["train"][0] > 0.05
  assert full[16]["train"][0] > 100 * low[16]["train"][0]
  assert full[16]["rho"][0] < rho_full[0] - 0.3  # converged rho below the truth
  assert 3.0 < rho_full[0] < 3.4


def test_fit_methods_reduce_the_loss():
  prob = common.make_regression(jax.random.key(0), 6, "low_rank", 2, 4, 10)
  f0 = 0.5 * jax.random.normal(jax.random.key(1), (2, 6, 6))
  loss = lambda f: common.mse(common.end_to_end(f), prob.x_train, prob.y_train)
  hp = common.FitHParams(lr=0.05, sigma=0.05)
  for m in optimizers.OPTIMIZERS:
    steps = 40 if m == "lbfgs" else 400
    f, loss_T = jax.jit(lambda f0, m=m, steps=steps: common.fit(
        loss, f0, m, steps, hp, jax.random.key(2), steps // 2))(f0)
    assert loss_T.shape == (2,)
    assert float(loss_T[-1]) < 0.5 * float(loss(f0)), m


def test_regression_and_optimizers_run_tiny(tmp_path):
  c = reg_cfg.get_config("tiny")
  c.targets, c.depths = ("low_rank",), (1, 4)
  regression.validate(c)
  writers.prepare_workdir(str(tmp_path / "reg"), c)
  s = regression.run(c, str(tmp_path / "reg"))
  assert s["checks"]["low_rank/normal: rho_final strictly decreasing in depth"]
  per = s["results"]["low_rank/normal"]["per_depth"]
  assert set(per) == {str(d) for d in c.depths}
  assert {"rho_init", "rho_final", "train_loss", "test_loss"} <= set(per["1"])
  assert os.path.exists(tmp_path / "reg" / "regression.png")
  c = opt_cfg.get_config("tiny")
  c.optimizers = ("adam", "random_search")
  optimizers.validate(c)
  writers.prepare_workdir(str(tmp_path / "opt"), c)
  s = optimizers.run(c, str(tmp_path / "opt"))
  assert set(s["per_optimizer"]) == {"adam", "random_search"}
  assert os.path.exists(tmp_path / "opt" / "optimizers.png")
  assert len(writers.read_jsonl(str(tmp_path / "opt" / "metrics.jsonl"))) == 4


@pytest.mark.parametrize("cfg,module,field,value", [
    (reg_cfg, regression, "targets", ("low_rank", "medium")),
    (reg_cfg, regression, "target_rank", 64),
    (reg_cfg, regression, "log_every", 3),
    (reg_cfg, regression, "lr", 0.0),
    (opt_cfg, optimizers, "optimizers", ("sgd", "cma")),
    (opt_cfg, optimizers, "lr.adam", -1.0),
])
def test_bad_config_names_the_field(cfg, module, field, value):
  c = cfg.get_config()
  if "." in field:
    a, b = field.split(".")
    c[a][b] = value
  else:
    c[field] = value
  with pytest.raises(ConfigError, match=f"config.{field}"):
    module.validate(c)
