"""A user's flax linen Module (family 'flax', by import path) trained on a user's .npz
by the sweep engine: vmapped seeds and hyperparameters, per-layer results equal to
analyze_model's on the final parameters, resume after an interruption, BatchNorm and
dropout measured in eval mode, and bad configs refused before any training."""

import json
import os

import jax
import numpy as np
import pytest

import jaxdepth
from jaxdepth import cli, nets
from jaxdepth.configs import your_model
from jaxdepth.engine import ckpt, interrupt, writers
from jaxdepth.errors import ConfigError, Interrupted
from jaxdepth.examples.flax_mlp import MLP
from jaxdepth.measure.models import analyze_model
from jaxdepth.papers.minimal_depth import train

C, D, N_TRAIN, N_TEST = 3, 6, 96, 48
DEPTH, WIDTH = 2, 16


def _write_npz(path, **replace):
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(C, D)) * 2.0

  def split(n):
    y = (np.arange(n) % C).astype(np.int64)
    rng.shuffle(y)
    return (mu[y] + rng.normal(size=(n, D))).astype(np.float64), y

  x_tr, y_tr = split(N_TRAIN)
  x_te, y_te = split(N_TEST)
  arrays = {**dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te), **replace}
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return str(path)


@pytest.fixture(scope="module")
def npz_path(tmp_path_factory):
  return _write_npz(tmp_path_factory.mktemp("data") / "data.npz")


def _config(path):
  """The tiny example config on the npz (validation tests: nothing is trained)."""
  c = your_model.get_config("tiny")
  c.dataset = "npz"
  c.data.path = path
  c.model.kwargs = dict(depth=DEPTH, width=WIDTH)
  return c


def _final_state(workdir):
  ck = ckpt.Checkpointer(workdir, subdir=os.path.join("checkpoints", f"d{DEPTH}_w0"))
  step, tree, _ = ck.restore()
  ck.close()
  return step, tree["state"]


def _analyze(state, npz):
  d = np.load(npz)
  variables = {"params": state["params"], "batch_stats": state["batch_stats"]["module"]}
  return analyze_model(MLP(num_classes=C, depth=DEPTH, width=WIDTH, batchnorm=True,
                           dropout=0.2), variables,
                       d["x_train"].astype(np.float32), d["y_train"], C,
                       x_test=d["x_test"].astype(np.float32), y_test=d["y_test"],
                       layers=["Block_*"], batch_size=40)


def _assert_matches(summary, res):
  runs = summary["runs"]
  assert res["layer_names"] == summary["layers"] == [f"Block_{i}" for i in range(DEPTH)]
  get = lambda k: np.array([r[k] for r in runs])
  np.testing.assert_allclose(get("ncc_train_acc"), res["ncc_acc_train"], atol=1e-6)
  np.testing.assert_allclose(get("ncc_test_acc"), res["ncc_acc_test"], atol=1e-6)
  np.testing.assert_allclose(get("train_acc"), res["acc_train"], atol=1e-6)
  np.testing.assert_allclose(get("test_acc"), res["acc_test"], atol=1e-6)
  np.testing.assert_allclose(get("nc1_train"), res["nc1_train"], rtol=2e-4)
  for e in summary["eps"]:
    np.testing.assert_array_equal([r["effective_depth"][str(e)] for r in runs],
                                  res["effective_depth"][e])


def _overrides(npz):
  """The config of the training tests: the packaged example MLP with BatchNorm and
  dropout on the npz, 2 seeds x 2 learning rates, 4 epochs."""
  return ["--config.dataset=npz", f"--config.data.path={npz}",
          f"--config.model.kwargs.depth={DEPTH}", f"--config.model.kwargs.width={WIDTH}",
          "--config.model.kwargs.batchnorm=True", "--config.model.kwargs.dropout=0.2",
          "--config.lr=(0.05,0.1)", "--config.epochs=4", "--config.batch_size=32",
          "--config.eval_every=2", "--config.checkpoint_every=2",
          "--config.analysis_batch=40", "--config.rank_samples=32", "--config.plots=False"]


@pytest.fixture(scope="module")
def straight(npz_path, tmp_path_factory):
  """One uninterrupted CLI run: (workdir, summary)."""
  wd = str(tmp_path_factory.mktemp("straight") / "w")
  assert cli.main(["train", "--config", "your_model:tiny", "--workdir", wd,
                   *_overrides(npz_path)]) == 0
  with open(os.path.join(wd, "summary.json")) as f:
    return wd, json.load(f)


def test_cli_trains_module_on_npz_over_seeds_and_lr_in_eval_mode(npz_path, straight):
  wd, summary = straight
  runs = summary["runs"]
  assert [(r["lr"], r["seed"]) for r in runs] == [(0.05, 0), (0.05, 1), (0.1, 0), (0.1, 1)]
  assert {r["depth"] for r in runs} == {DEPTH}
  step, state = _final_state(wd)
  assert step == 4 * (N_TRAIN // 32)
  leaf = state["params"]["Block_0"]["Dense_0"]["kernel"]
  assert leaf.shape[0] == 4 and not np.array_equal(leaf[0], leaf[1])  # seeds differ
  assert not np.array_equal(leaf[0], leaf[2])  # same seed and init, another lr
  # BatchNorm statistics were trained; the dropout key is carried per run and, like
  # init and data order, depends on the seed only (runs 0, 2: seed 0; 1, 3: seed 1).
  stats = state["batch_stats"]
  assert np.abs(stats["module"]["Block_0"]["BatchNorm_0"]["mean"]).max() > 1e-3
  k = stats["dropout_key"]
  assert np.array_equal(k[0], k[2]) and not np.array_equal(k[0], k[1])
  # Eval mode (running averages, no dropout): analyze_model on the final parameters,
  # an independent path, gives the trainer's per-layer results, and twice the same.
  r1, r2 = _analyze(state, npz_path), _analyze(state, npz_path)
  for k in ("ncc_acc_train", "ncc_acc_test", "nc1_train", "acc_test"):
    np.testing.assert_array_equal(r1[k], r2[k])
  _assert_matches(summary, r1)
  # The metric stream: a train record per run and epoch, an eval per run at 2 and 4.
  recs = writers.read_jsonl(os.path.join(wd, "metrics.jsonl"))
  keys = [(r["kind"], r["lr"], r["seed"], r["epoch"]) for r in recs]
  assert len(keys) == len(set(keys)) == 4 * (4 + 2)
  assert os.path.exists(os.path.join(wd, "layers.csv"))


def test_interrupted_run_resumes_to_the_same_result(npz_path, straight, tmp_path,
                                                    monkeypatch):
  full, s_full = straight
  c = cli.load_config("your_model:tiny", _overrides(npz_path))
  part = str(tmp_path / "part")
  # Interrupt at a segment boundary that is no checkpoint cadence (epoch 3 of 4: a
  # stop request during the epoch-2 evaluation), as Ctrl-C does; then resume.
  real_eval_metrics = train.eval_metrics
  calls = []

  def stop_once(config, out):
    calls.append(1)
    if len(calls) == 1:
      interrupt.request()
    return real_eval_metrics(config, out)

  monkeypatch.setattr(train, "eval_metrics", stop_once)
  try:
    with pytest.raises(Interrupted) as e:
      jaxdepth.run(c, part)
  finally:
    interrupt.clear()
  assert (e.value.done, e.value.total) == (3, 4)
  monkeypatch.setattr(train, "eval_metrics", real_eval_metrics)
  s_part = jaxdepth.run(c, part)
  (step_a, a), (step_b, b) = _final_state(full), _final_state(part)
  assert step_a == step_b == 4 * (N_TRAIN // 32)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  for r1, r2 in zip(s_full["runs"], s_part["runs"]):
    for k in ("train_acc", "test_acc", "ncc_train_acc", "ncc_test_acc"):
      np.testing.assert_allclose(r1[k], r2[k], atol=1e-6)
    np.testing.assert_allclose(r1["cdnv_train"], r2["cdnv_train"], rtol=1e-5)
  recs = writers.read_jsonl(os.path.join(part, "metrics.jsonl"))
  keys = [(r["kind"], r["lr"], r["seed"], r["epoch"]) for r in recs]
  assert len(keys) == len(set(keys)) == 4 * (4 + 2)  # no epoch logged twice


BAD = [
    # (change to the config, field, part of the message)
    ({"model.module": "nosuch_pkg.models:Net"}, "model.module", "cannot import"),
    ({"model.module": "jaxdepth.examples.flax_mlp:Nope"}, "model.module", "no attribute"),
    ({"model.module": "numpy:ndarray"}, "model.module", "not a flax linen Module"),
    ({"model.module": "just_a_name"}, "model.module", "package.module:Class"),
    ({"model.kwargs": {"depth": 2, "nosuch": 1}}, "model.kwargs", "no field 'nosuch'"),
    ({"model.kwargs": 3}, "model.kwargs", "dict of keyword arguments"),
    ({"model.kwargs": {"num_classes": 5}}, "model.module", "logits of shape (batch, 3)"),
    ({"model.layers": ("Nope_*",)}, "model.layers", "matches no layer"),
    ({"sweep_depths": (2, 3)}, "sweep_depths", "family 'flax'"),
    ({"data.path": "missing.npz"}, "data.path", "no file"),
    ({"data.num_classes": 2}, "data.num_classes", "holds label 2"),
]


def _set(c, key, value):
  node = c
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  if leaf in node:  # a ConfigDict field keeps its type; a new field takes any
    del node[leaf]
  node[leaf] = value


@pytest.mark.parametrize("change,field,message", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_config_is_a_config_error_before_training(npz_path, tmp_path, monkeypatch,
                                                      change, field, message):
  def no_compute(*a, **k):
    raise AssertionError("training started")
  monkeypatch.setattr(train, "build_program", no_compute)
  monkeypatch.chdir(tmp_path)
  c = _config(npz_path)
  for k, v in change.items():
    _set(c, k, v)
  with pytest.raises(ConfigError) as e:
    train.validate(c)
  assert e.value.field == field and message in str(e.value), str(e.value)


@pytest.mark.parametrize("replace,message", [
    ({"y_test": None}, "no array 'y_test'"),
    ({"x_test": np.zeros((N_TEST, D + 1))}, "x_test examples (7,)"),
    ({"y_train": np.full(N_TRAIN, -1)}, "negative label"),
    ({"y_train": np.zeros(N_TRAIN, np.float32)}, "integer array"),
    ({"x_train": np.full((N_TRAIN, D), np.nan)}, "NaN"),
])
def test_bad_npz_names_the_field_and_cli_exits_2(tmp_path, capsys, replace, message):
  bad = _write_npz(tmp_path / "bad.npz", **replace)
  wd = tmp_path / "w"
  rc = cli.main(["train", "--config", "your_model:tiny", "--workdir", str(wd),
                 "--config.dataset=npz", f"--config.data.path={bad}"])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1, err
  assert err[0].startswith("jaxdepth: error: config.data.path: ") and message in err[0]
  assert not wd.exists()  # refused before anything was written


def test_module_from_a_file_path(npz_path, tmp_path, monkeypatch):
  """``model.module = "file.py:Class"``: a module outside any package; one without a
  ``train`` argument is called as module(x); every submodule output is a layer."""
  (tmp_path / "my_net.py").write_text(
      "from flax import linen as nn\n"
      "class Hidden(nn.Module):\n"
      "  @nn.compact\n"
      "  def __call__(self, x):\n"
      "    return nn.tanh(nn.Dense(8)(x))\n"
      "class Net(nn.Module):\n"
      "  classes: int = 3\n"
      "  @nn.compact\n"
      "  def __call__(self, x):\n"
      "    h = Hidden()(x)\n"
      "    h = Hidden()(h)\n"
      "    return nn.Dense(self.classes)(h)\n")
  monkeypatch.chdir(tmp_path)
  c = _config(npz_path)
  c.model.module = "my_net.py:Net"
  c.model.kwargs = {}
  c.model.layers = ()  # all: both Hidden blocks, their Dense layers and the classifier
  train.validate(c)
  net = nets.build(train.model_cfg(c, 0, 0), (D,), C)
  assert net.layer_names == ("Hidden_0/Dense_0", "Hidden_0", "Hidden_1/Dense_0",
                             "Hidden_1", "Dense_0")
  v = net.init(jax.random.key(0))
  x = np.load(npz_path)["x_train"][:5].astype(np.float32)
  logits, groups, stats = net.apply(v, x, train=True)
  assert logits.shape == (5, C) and [g.shape for g in groups] == [
      (1, 5, 8), (1, 5, 8), (1, 5, 8), (1, 5, 8), (1, 5, C)]
  np.testing.assert_array_equal(groups[-1][0], logits)  # the classifier's output
  assert stats["module"] == {}
