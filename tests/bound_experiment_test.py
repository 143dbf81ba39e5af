"""Bound experiment (training + checkpoints) and the offline calculator, end to end.

One tiny training (configs/bound.py:tiny, Gaussian mixture) is shared by all tests;
the calculator must reproduce the training-time per-layer NCC errors from the
checkpoints alone, and every bad input gives a one-line error.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxdepth import cli, data
from jaxdepth.configs import bound as bound_config
from jaxdepth.engine import ckpt
from jaxdepth.engine.validate import ConfigError
from jaxdepth.measure.collapse import effective_depth
from jaxdepth.papers.minimal_depth import bound_experiment, bound_main, bounds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("bound") / "run")
  config = bound_config.get_config("tiny")
  summary = bound_experiment.run(config, workdir)
  return config, workdir, summary


def copy_checkpoints(workdir, dst):
  """A workdir holding nothing but the checkpoints (no config/summary/metrics)."""
  shutil.copytree(os.path.join(workdir, "checkpoints"), os.path.join(dst, "checkpoints"))
  return str(dst)


@pytest.mark.parametrize("field,value,match", [
    ("p", (0.2, 1.0), "p"), ("p", (0.2, 0.5), "p: 0.5 is outside \\(0, 0.5\\): Prop. 1"),
    ("p", (0.0, 0.2), "p: 0 is outside"), ("p", (0.45, 0.6), "p: 0.6 is outside"),
    ("batch_size", 1000, "batch_size"), ("m", 200, "m"),
    ("num_draws", 0, "num_draws"), ("eps", (1.5,), "eps")])
def test_validate_rejects(field, value, match):
  c = bound_config.get_config("tiny")
  c[field] = value
  with pytest.raises(ConfigError, match=f"config.{match}"):
    bound_experiment.validate(c)


def test_validate_unknown_field():
  c = bound_config.get_config("tiny")
  c.label_noise = (0.1,)
  with pytest.raises(ConfigError, match="config.label_noise: unknown field"):
    bound_experiment.validate(c)


def test_checkpoint_metadata_names_every_run(trained):
  config, workdir, _ = trained
  K, n = config.num_draws, config.num_noisy_seeds
  loaded = bound_main.load(workdir)
  samples, dmeta = loaded["data"]
  for k in range(K):
    s1, s2 = samples["s1"][k], samples["s2"][k]
    assert not set(s1) & set(s2)
    y = data.gaussian_mixture(240, 120, seed=0).y_train
    assert np.array_equal(np.bincount(y[s1]), np.full(4, config.m // 4))
    assert np.array_equal(np.bincount(y[s2]), np.full(4, config.m // 4))
    assert bounds.trained_ps(config)[0] == 0.0  # tiny trains the control
    for j, p in enumerate(bounds.trained_ps(config)):
      changed = samples["y_s2_noisy"][k, j] != samples["y_s2"][k]
      assert changed.sum() == data.num_corrupted(p, config.m)
      assert np.array_equal(changed, samples["corrupted"][k, j])  # flip: all change
  tree, meta = loaded["noisy"]
  assert meta["complete"] and meta["epoch"] == config.epochs
  assert {(r["draw"], r["p"], r["seed"]) for r in meta["runs"]} == {
      (k, p, g) for k in range(K) for p in bounds.trained_ps(config) for g in range(n)}
  for r in meta["runs"]:
    i = r["run"]
    assert (tree["draw"][i], tree["p_index"][i], tree["seed"][i]) == (
        r["draw"], r["p_index"], r["seed"])
    expect = np.concatenate([samples["y_s1"][r["draw"]],
                             samples["y_s2_noisy"][r["draw"], r["p_index"]]])
    assert np.array_equal(tree["labels"][i], expect)


def test_recomputed_ncc_errors_equal_logged(trained):
  config, workdir, summary = trained
  rec = bound_main.recompute(bound_main.load(workdir))
  logged_c = np.array([1 - np.array(r["ncc_train_acc"]) for r in summary["clean_runs"]])
  logged_n = np.array([1 - np.array(r["ncc_train_acc"]) for r in summary["noisy_runs"]])
  np.testing.assert_allclose(rec["clean_err"], logged_c, atol=1e-6)
  np.testing.assert_allclose(rec["noisy_err"], logged_n, atol=1e-6)
  np.testing.assert_allclose(rec["clean_test_err"],
                             [r["test_error"] for r in summary["clean_runs"]], atol=1e-6)


def test_offline_table_equals_training_time_table(trained, tmp_path, capsys):
  config, workdir, summary = trained
  rows = bound_main.main(workdir, out=str(tmp_path / "b"))
  assert len(rows) == (len(config.p) + 1) * len(config.alpha) * len(config.eps)
  assert [r["control"] for r in rows[:2]] == [True, False]
  assert rows[0]["bound"] is None and rows[0]["p"] == 0.0
  for got, want in zip(rows, summary["table"]):
    for k in ("first_term", "first_term_hi", "mean_clean_depth", "mean_min_depth", "p",
              "eps"):
      assert got[k] == pytest.approx(want[k]), k
    assert got["bound"] == (None if want["bound"] is None else pytest.approx(want["bound"]))
    assert got["mean_test_error"] == pytest.approx(want["mean_test_error"], abs=1e-6)
  written = json.load(open(tmp_path / "b.json"))["rows"]
  assert [r["bound"] for r in written] == [r["bound"] for r in rows]
  assert open(tmp_path / "b.csv").readline().startswith("dataset,architecture,m,")
  # the curve: assumption columns, summary, warning and one figure per eps
  for got, want in zip(rows, summary["table"]):
    for k in ("own_label_holds_frac", "own_label_depth", "delta2_frac",
              "mistake_overlap_ratio", "test_error_hi", "holds_vs_test_hi"):
      assert got[k] == (None if want[k] is None else pytest.approx(want[k], abs=1e-6)), k
  doc = json.load(open(tmp_path / "b.json"))
  assert [(c["eps"], c["alpha"]) for c in doc["curve"]] == [(0.01, 0.1), (0.1, 0.1)]
  assert doc["curve"] == json.loads(json.dumps(bounds.curve_summary(rows)))
  # tiny trains p = 0.2, 0.4: nothing at or below 2 eps = 0.02 for eps = 0.01
  assert len(doc["warnings"]) >= 1 and doc["warnings"][0].startswith("eps=0.01: no p <= 2*eps")
  assert "warning: eps=0.01: no p <= 2*eps" in capsys.readouterr().out
  assert doc["figures"] == [str(tmp_path / "b_curve_eps0.01.png"),
                            str(tmp_path / "b_curve_eps0.1.png")]
  assert all(os.path.getsize(f) > 0 for f in doc["figures"])
  assert os.path.exists(os.path.join(workdir, "figures", "bound_curve_eps0.01.png"))
  assert summary["curve"] == json.loads(json.dumps(bounds.curve_summary(summary["table"])))


def test_assumption_diagnostics_against_numpy_float64(trained):
  """(a) and (c) inputs of one clean network, recomputed in float64 numpy from its
  embeddings: NCC (S1 means) agreement with the network on S2 and the test set, the NCC
  error on S1 u S2 relabelled by the network, and its mistakes on S2."""
  from jaxdepth import nets
  config, workdir, summary = trained
  loaded = bound_main.load(workdir)
  samples, dmeta = loaded["data"]
  ct, cm = loaded["clean"]
  network = nets.build(dmeta["model"], tuple(dmeta["input_shape"]), dmeta["num_classes"])
  C, m = dmeta["num_classes"], config.m
  for i in (0, len(cm["runs"]) - 1):
    run = cm["runs"][i]
    v = jax_tree_index(ct["variables"], i)
    k = run["draw"]
    feats = lambda x, v=v: [np.asarray(g, np.float64).reshape(g.shape[0], g.shape[1], -1)
                            for g in network.apply(v, x, train=False)[1]]
    logits = lambda x, v=v: np.asarray(network.apply(v, x, train=False)[0])
    x1, y1, x2 = samples["x_s1"][k], samples["y_s1"][k], samples["x_s2"][k]
    xt = samples["x_test"]
    h2, ht = logits(x2).argmax(1), logits(xt).argmax(1)

    def ncc(f_tr, y_tr, f_ev):  # (L, N, D) -> (L, N_ev)
      mu = np.stack([f_tr[:, y_tr == c].mean(1) for c in range(C)], 1)  # (L, C, D)
      d = ((f_ev[:, :, None] - mu[:, None]) ** 2).sum(-1)
      return d.argmin(-1)

    f1 = np.concatenate(feats(x1))
    f2 = np.concatenate(feats(x2))
    ft = np.concatenate(feats(xt))
    agree_s2 = (ncc(f1, y1, f2) == h2[None]).mean(1)
    agree_te = (ncc(f1, y1, ft) == ht[None]).mean(1)
    fu, yu = np.concatenate([f1, f2], 1), np.concatenate([y1, h2])
    own = (ncc(fu, yu, fu) != yu[None]).mean(1)
    rec = next(r for r in summary["clean_runs"]
               if (r["draw"], r["seed"]) == (run["draw"], run["seed"]))
    np.testing.assert_allclose(rec["ncc_agree_s2"], agree_s2, atol=1.5 / m)
    np.testing.assert_allclose(rec["ncc_agree_test"], agree_te, atol=1.5 / len(xt))
    np.testing.assert_allclose(rec["ncc_err_own_labels"], own, atol=1.5 / (2 * m))
    assert rec["s2_mistakes"] == np.nonzero(h2 != samples["y_s2"][k])[0].tolist()
    assert np.mean(ht != samples["y_test"]) == pytest.approx(rec["test_error"], abs=1e-6)


def jax_tree_index(tree, i):
  import jax
  return jax.tree.map(lambda a: np.asarray(a)[i], tree)


def test_other_eps_alpha_p_need_no_retraining(trained, tmp_path):
  _, workdir, summary = trained
  rows = bound_main.main(workdir, eps=[0.3], alpha=[0.0, 0.5], p=[0.4],
                         out=str(tmp_path / "b"))
  assert [(r["eps"], r["alpha"], r["p"]) for r in rows] == [(0.3, 0.0, 0.4), (0.3, 0.5, 0.4)]
  # Independent reference: thresholds applied to the training-time error curves.
  k_, g_ = summary["num_draws"], 2
  err_c = np.array([1 - np.array(r["ncc_train_acc"]) for r in summary["clean_runs"]])
  err_n = np.array([1 - np.array(r["ncc_train_acc"]) for r in summary["noisy_runs"]
                    if r["p"] == 0.4])
  d_c = np.asarray(effective_depth(err_c, 0.3, summary["m"])).reshape(k_, g_).mean(1)
  d_n = np.asarray(effective_depth(err_n, 0.3, 2 * summary["m"])).reshape(k_, g_).min(1)
  assert rows[1]["first_term"] == pytest.approx(np.mean(d_c >= d_n))
  assert rows[1]["bound"] == pytest.approx(np.mean(d_c >= d_n) + 1.5 * 0.4)
  assert rows[1]["first_term_count"] == int(np.sum(d_c >= d_n))


def test_calculator_reads_only_checkpoints_and_no_training_code(trained, tmp_path):
  _, workdir, summary = trained
  only = copy_checkpoints(workdir, tmp_path / "only")
  assert sorted(os.listdir(only)) == ["checkpoints"]
  code = ("import sys, json; from jaxdepth.papers.minimal_depth import bound_main; "
          f"rows = bound_main.main({only!r}); "
          # jaxdepth.measure.analysis (the shared per-layer evaluation) is allowed: it has no
          # optimizer or training step; the trainer and optax must stay unloaded.
          "bad = [m for m in ('jaxdepth.papers.minimal_depth.train', 'optax', "
          "'jaxdepth.papers.minimal_depth.bound_experiment') "
          "if m in sys.modules]; "
          "print(json.dumps({'bad': bad, 'bounds': [r['bound'] for r in rows]}))")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                       capture_output=True, check=True)
  res = json.loads(out.stdout.strip().splitlines()[-1])
  assert res["bad"] == []
  assert res["bounds"][0] is None  # the control row
  assert res["bounds"][1:] == pytest.approx([r["bound"] for r in summary["table"]][1:])


def test_error_no_checkpoints(tmp_path, capsys):
  assert cli.main(["bound", "--workdir", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "no checkpoints in" in err and "jaxdepth train --config configs/bound.py" in err


def test_error_checkpoints_of_another_experiment(tmp_path):
  os.makedirs(tmp_path / "checkpoints" / "d3_w16" / "4")
  with pytest.raises(bound_main.BoundError, match="no bound-experiment checkpoints"):
    bound_main.load(str(tmp_path))


def test_error_untrained_p_and_bad_eps(trained):
  _, workdir, _ = trained
  with pytest.raises(bound_main.BoundError,
                     match=r"p=0.3 was not trained \(trained: 0, 0.2, 0.4\)"):
    bound_main.report(workdir, p=[0.3])
  with pytest.raises(bound_main.BoundError, match="--eps 1.5 is outside"):
    bound_main.report(workdir, eps=[1.5])


def _rewrite_noisy(workdir, edit):
  """Replace the noisy checkpoint by one whose metadata went through ``edit``."""
  ck = ckpt.Checkpointer(workdir, max_to_keep=None, subdir="checkpoints/noisy")
  step, tree, meta = ck.restore()
  ck.close()
  shutil.rmtree(os.path.join(workdir, "checkpoints", "noisy"))
  ck = ckpt.Checkpointer(workdir, max_to_keep=None, subdir="checkpoints/noisy")
  ck.save(step, tree, edit(meta))
  ck.close()


def test_error_incompatible_config(trained, tmp_path):
  _, workdir, _ = trained
  w = copy_checkpoints(workdir, tmp_path / "w")
  _rewrite_noisy(w, lambda m: {**m, "config": {**m["config"], "lr": 0.5}})
  with pytest.raises(bound_main.BoundError, match=r"incompatible config \(lr=0.5"):
    bound_main.load(w)


def test_error_draw_with_missing_runs(trained, tmp_path):
  _, workdir, _ = trained
  w = copy_checkpoints(workdir, tmp_path / "w")
  _rewrite_noisy(w, lambda m: {**m, "runs": [r for r in m["runs"] if
                                             not (r["draw"] == 1 and r["seed"] == 1)]})
  with pytest.raises(bound_main.BoundError, match=r"draw 1 is missing 3 noisy run\(s\)"):
    bound_main.load(w)


def test_error_missing_group(trained, tmp_path):
  _, workdir, _ = trained
  w = copy_checkpoints(workdir, tmp_path / "w")
  shutil.rmtree(os.path.join(w, "checkpoints", "noisy"))
  with pytest.raises(bound_main.BoundError, match="noisy runs missing"):
    bound_main.load(w)


def test_interrupted_experiment_resumes(trained, tmp_path):
  """Drop the final noisy checkpoint (as if killed mid-training): the calculator refuses
  the partial experiment; rerunning resumes from the earlier checkpoint and ends with
  the same networks."""
  config, workdir, summary = trained
  w = copy_checkpoints(workdir, tmp_path / "w")
  noisy = os.path.join(w, "checkpoints", "noisy")
  steps = sorted(int(s) for s in os.listdir(noisy) if s.isdigit())
  assert len(steps) == 2
  shutil.rmtree(os.path.join(noisy, str(steps[-1])))
  with pytest.raises(bound_main.BoundError, match=r"noisy runs incomplete \(epoch 15/30\)"):
    bound_main.load(w)
  resumed = bound_experiment.run(config, w)
  for a, b in zip(resumed["noisy_runs"], summary["noisy_runs"]):
    np.testing.assert_allclose(a["ncc_train_acc"], b["ncc_train_acc"], atol=1e-6)
  assert [r["first_term"] for r in resumed["table"]] == pytest.approx(
      [r["first_term"] for r in summary["table"]])


def test_error_diverged_network(trained, tmp_path):
  _, workdir, _ = trained
  w = copy_checkpoints(workdir, tmp_path / "w")
  ck = ckpt.Checkpointer(w, max_to_keep=None, subdir="checkpoints/clean")
  step, tree, meta = ck.restore()
  ck.close()
  w_out = np.array(tree["variables"]["params"]["w_out"])
  w_out[1] = np.nan  # run 1 = draw 0, seed 1
  tree["variables"]["params"]["w_out"] = w_out
  shutil.rmtree(os.path.join(w, "checkpoints", "clean"))
  ck = ckpt.Checkpointer(w, max_to_keep=None, subdir="checkpoints/clean")
  ck.save(step, tree, meta)
  ck.close()
  with pytest.raises(bound_main.BoundError, match=r"1 stored network\(s\) diverged .*"
                     r"draw 0 seed 1\);"):
    bound_main.report(w)
