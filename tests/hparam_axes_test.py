"""Value hyperparameters as run axes (issue 25 item 2): lr, weight_decay, momentum,
warmup_epochs and decay join seeds and label noise on the vmapped run axis."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import cli, data
from jaxdepth.errors import ConfigError
from jaxdepth.papers import sgd
from jaxdepth.papers.minimal_depth import bound_experiment, train

GRID = ["--config.lr=(0.01,0.1)", "--config.weight_decay=(0,1e-3)"]
COMMON = ["--config.epochs=2", "--config.plots=False", "--config.progress=False"]
PER_LAYER = ("ncc_train_acc", "ncc_test_acc", "cdnv_train", "cdnv_test")
SCALARS = ("train_loss", "test_loss", "train_acc", "test_acc")


def _train(tmp_path, name, *overrides):
  wd = str(tmp_path / name)
  assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", wd, *COMMON,
                   *overrides]) == 0
  return wd, json.load(open(os.path.join(wd, "summary.json")))


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
  return _train(tmp_path_factory.mktemp("grid"), "grid", *GRID)


def test_grid_runs_are_labelled(grid_run):
  wd, s = grid_run
  runs = s["runs"]
  assert len(runs) == 2 * 2 * 2 * 2  # noise x lr x wd x seeds
  points = [(r["label_noise"], r["lr"], r["weight_decay"], r["seed"]) for r in runs]
  assert points == [(p, lr, w, g) for p in (0.0, 0.25) for lr in (0.01, 0.1)
                    for w in (0.0, 1e-3) for g in (0, 1)]  # seed minor
  assert {r["momentum"] for r in runs} == {0.9}  # one value: still in every record
  rows = list(csv.DictReader(open(os.path.join(wd, "layers.csv"))))
  assert {(float(r["lr"]), float(r["weight_decay"])) for r in rows} == {
      (lr, w) for lr in (0.01, 0.1) for w in (0.0, 1e-3)}
  # One metrics record per run and epoch/evaluation, labelled by every varying axis.
  recs = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  first = [r for r in recs if r["kind"] == "train" and r["epoch"] == 1]
  assert sorted((r["label_noise"], r["lr"], r["weight_decay"], r["seed"]) for r in first) \
      == sorted(points)
  assert "momentum" not in recs[0]  # records carry the axes with several values
  table = train.report(s)
  head = table.splitlines()[0].split()
  assert head[:4] == ["p", "lr", "wd", "runs"] and len(table.splitlines()) == 2 + 8


def test_grid_runs_equal_separate_scalar_runs(grid_run, tmp_path):
  _, s = grid_run
  for lr in (0.01, 0.1):
    for w in (0, 1e-3):
      _, one = _train(tmp_path, f"lr{lr}_wd{w}", f"--config.lr={lr}",
                      f"--config.weight_decay={w}")
      mine = [r for r in s["runs"] if r["lr"] == lr and r["weight_decay"] == w]
      assert len(mine) == len(one["runs"]) == 4
      for a, b in zip(mine, one["runs"]):
        for k in ("seed", "label_noise", "lr", "weight_decay", "momentum", "depth"):
          assert a[k] == b[k], k  # coordinates: exact
        assert a["effective_depth"] == b["effective_depth"]
        for k in SCALARS + PER_LAYER:  # different compiled shapes: float32 rounding
          np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)


def _config(*overrides):
  return cli.load_config("configs/tiny.py", list(overrides))


def test_one_compilation_for_the_grid():
  c = _config("--config.lr=(0.01,0.03,0.1)", "--config.weight_decay=(0,5e-4)",
              "--config.label_noise=(0.0,)", "--config.epochs=2",
              "--config.shard_runs=False")
  train.validate(c)
  grid = train.run_grid(c)
  assert len(grid) == 3 * 2 * 2
  ds = data.load(c)
  prog = train.build_program(c, ds, c.depth, c.width)
  keys = train.make_keys(c.seed, grid)
  state, labels, _ = prog.init(keys)
  hp = state.opt_state.hyperparams
  np.testing.assert_array_equal(hp["lr"], np.float32([r["lr"] for r in grid]))
  np.testing.assert_array_equal(hp["weight_decay"],
                                np.float32([r["weight_decay"] for r in grid]))
  x = jnp.asarray(ds.x_train)
  for epoch in range(c.epochs):
    state, loss = prog.epoch(state, labels, keys, epoch, x)
  jax.block_until_ready(loss)
  assert prog.epoch._cache_size() == 1  # one compiled epoch serves all 12 runs


def test_per_run_schedule_matches_optax():
  spe = 10
  for sched, warm, decay in (("step", 1.0, 0.2), ("step", 0.0, 0.5), ("cosine", 1.5, 0.2),
                             ("constant", 2.0, 0.2)):
    c = _config(f"--config.schedule={sched}", f"--config.warmup_epochs={warm}",
                f"--config.decay={decay}", "--config.lr=0.1", "--config.epochs=6")
    ref = sgd.make_schedule(c, spe)
    fn = sgd.per_run_schedule(c, spe)
    w = float(round(warm * spe))
    steps = jnp.arange(c.epochs * spe + 3)
    got = jax.vmap(lambda t, fn=fn, w=w, decay=decay: fn(
        t, jnp.float32(0.1), jnp.float32(w), jnp.float32(decay)))(steps)
    np.testing.assert_allclose(got, jax.vmap(ref)(steps), rtol=1e-6, atol=1e-9,
                               err_msg=sched)


@pytest.mark.parametrize("override,field,text", [
    ("--config.lr=(0.01,-0.1)", "lr", "(0.0, inf]"),
    ("--config.lr=()", "lr", "non-empty"),
    ("--config.momentum=(0.5,1.0)", "momentum", "[0.0, 1.0)"),
    ("--config.weight_decay=(0,0)", "weight_decay", "duplicates"),
    ("--config.decay=(0.1,2)", "decay", "(0.0, 1.0]"),
    ("--config.warmup_epochs=-1", "warmup_epochs", "[0.0, inf]"),
    ("--config.lr=('a',)", "lr", "number"),
])
def test_bad_values_are_one_line_errors(override, field, text, tmp_path, capsys):
  with pytest.raises(ConfigError) as e:
    train.validate(_config(override))
  msg = str(e.value)
  assert msg.startswith(f"config.{field}: ") and text in msg and "\n" not in msg
  wd = tmp_path / "bad"
  assert cli.main(["train", "--config", "configs/tiny.py", "--workdir", str(wd),
                   override]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith(f"jaxdepth: error: config.{field}: ") and "\n" not in err
  assert not wd.exists()  # refused before any compute or write


def test_bound_refuses_value_axes():
  c = cli.load_config("configs/bound.py:tiny", ["--config.lr=(0.01,0.1)"])
  with pytest.raises(ConfigError, match=r"^config\.lr: the bound experiment takes one "):
    bound_experiment.validate(c)
  bound_experiment.validate(cli.load_config("configs/bound.py:tiny", []))
