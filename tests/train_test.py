"""Trainer: vmapped runs equal per-run training, resume is bitwise, sharding, CLI."""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import cli, data
from jaxdepth.configs import tiny
from jaxdepth.engine import ckpt, writers
from jaxdepth.papers import sgd
from jaxdepth.papers.minimal_depth import train


def tiny_config(**kw):
  c = tiny.get_config()
  c.plots = False
  for k, v in kw.items():
    setattr(c, k, v)
  return c


@pytest.fixture(scope="module")
def ds():
  return data.load(tiny_config())


def test_vmapped_runs_equal_per_run_loop(ds):
  c = tiny_config(shard_runs=False)
  grid = train.run_grid(c)
  prog = train.build_program(c, ds, c.depth, c.width)
  keys = train.make_keys(c.seed, grid)
  state, labels, chosen = prog.init(keys)
  x = jnp.asarray(ds.x_train)
  single = jax.jit(sgd.make_epoch(prog.network, sgd.make_optimizer(c, prog.steps_per_epoch),
                                  c.batch_size, prog.steps_per_epoch))
  take = lambda t, i: jax.tree.map(lambda a: a[i], t)
  singles = [take(state, i) for i in range(len(grid))]
  for epoch in range(2):
    state, _ = prog.epoch(state, labels, keys, epoch, x)
    singles = [single(s, labels[i], take(keys, i), epoch, x)[0] for i, s in enumerate(singles)]
  for i, s in enumerate(singles):
    for a, b in zip(jax.tree.leaves(take(state.params, i)), jax.tree.leaves(s.params)):
      np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
  # Same seed, different noise level: same initialization and data order.
  assert prog.epoch._cache_size() == 1  # one compile for all epochs


def test_seed_and_noise_keys_are_independent():
  c = tiny_config()
  grid = train.run_grid(c)
  k = train.make_keys(c.seed, grid)
  data_ = lambda kk: np.asarray(jax.random.key_data(kk))
  by = {(r["seed"], r["label_noise"]): r["run"] for r in grid}
  a, b = by[(0, 0.0)], by[(0, 0.25)]
  np.testing.assert_array_equal(data_(k.init)[a], data_(k.init)[b])
  np.testing.assert_array_equal(data_(k.order)[a], data_(k.order)[b])
  assert not np.array_equal(data_(k.noise)[a], data_(k.noise)[b])
  assert not np.array_equal(data_(k.init)[by[(0, 0.0)]], data_(k.init)[by[(1, 0.0)]])


def _final_params(workdir, tag="d3_w16"):
  ck = ckpt.Checkpointer(workdir, subdir=os.path.join("checkpoints", tag))
  step, tree, meta = ck.restore()
  ck.close()
  return step, tree, meta


def test_resume_equals_uninterrupted_and_sharding(tmp_path):
  assert jax.device_count() == 4
  c = tiny_config()  # 4 runs over 4 simulated devices: sharded
  assert train.placement(c, 4).sharded
  full, part = str(tmp_path / "full"), str(tmp_path / "part")
  s_full = train.run(c, full)
  train.run(c, part)
  # Simulate an interruption after epoch 2: drop the final checkpoint, then resume.
  ck_dir = os.path.join(part, "checkpoints", "d3_w16")
  last = max(int(d) for d in os.listdir(ck_dir) if d.isdigit())
  shutil.rmtree(os.path.join(ck_dir, str(last)))
  s_part = train.run(c, part)
  step_a, a, meta = _final_params(full)
  step_b, b, _ = _final_params(part)
  assert step_a == step_b == c.epochs * (256 // 32)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)  # bitwise on CPU
  for r1, r2 in zip(s_full["runs"], s_part["runs"]):
    assert r1["effective_depth"] == r2["effective_depth"]
    np.testing.assert_allclose(r1["cdnv_train"], r2["cdnv_train"], rtol=1e-5)
    np.testing.assert_allclose(r1["ncc_test_acc"], r2["ncc_test_acc"], atol=1e-6)
  # metrics.jsonl: no duplicated record after the resume (one per kind, run and step)
  recs = writers.read_jsonl(os.path.join(part, "metrics.jsonl"))
  keys = [(r["kind"], r["seed"], r["label_noise"], r["step"]) for r in recs]
  assert len(keys) == len(set(keys)) == 4 * (2 + 4)
  assert sorted({r["step"] for r in recs if r["kind"] == "eval"}) == [16, 32]
  # labels and corruption masks are stored with the run
  assert meta["num_corrupted"] == [0, 0, 64, 64]
  np.testing.assert_array_equal(np.asarray(a["corrupted"]).sum(1), [0, 0, 64, 64])
  # unsharded training gives the same result
  s_one = train.run(tiny_config(shard_runs=False), str(tmp_path / "one"))
  for r1, r2 in zip(s_one["runs"], s_full["runs"]):
    np.testing.assert_allclose(r1["ncc_train_acc"], r2["ncc_train_acc"], atol=1e-6)
    np.testing.assert_allclose(r1["cdnv_train"], r2["cdnv_train"], rtol=1e-3)


def test_summary_contract(tmp_path):
  s = train.run(tiny_config(epochs=2, label_noise=(0.0,), num_seeds=1), str(tmp_path))
  r = s["runs"][0]
  for k in ("seed", "label_noise", "depth", "width", "train_acc", "test_acc",
            "ncc_train_acc", "ncc_test_acc", "cdnv_train", "cdnv_test", "effective_depth"):
    assert k in r
  assert len(r["ncc_train_acc"]) == 3 and set(r["effective_depth"]) == {"0.01", "0.05", "0.1"}
  assert s["layers"] == ["layer1", "layer2", "layer3"]
  rows = open(tmp_path / "layers.csv").read().splitlines()
  assert len(rows) == 1 + 3


def test_divergence_is_flagged_not_fatal(tmp_path):
  s = train.run(tiny_config(lr=1e8, epochs=2, label_noise=(0.0,)), str(tmp_path))
  assert all(r["diverged"] for r in s["runs"])
  json.load(open(tmp_path / "summary.json"))  # valid JSON (NaN written as null)


@pytest.mark.parametrize("override,field", [
    ("--config.depth=0", "config.depth"),
    ("--config.width=0", "config.width"),
    ("--config.epochs=0", "config.epochs"),
    ("--config.label_noise=(0.2,1.0)", "config.label_noise"),
    ("--config.dataset=imagenet", "config.dataset"),
    ("--config.noise_mode=swap", "config.noise_mode"),
    ("--config.batch_size=100000", "config.batch_size"),
    ("--config.nonexistent=3", "config.nonexistent"),
])
def test_bad_config_one_line_exit_2(override, field, tmp_path, capsys):
  workdir = str(tmp_path / "w")
  code = cli.main(["train", "--config", "configs/tiny.py", "--workdir", workdir, override])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  assert len(err) == 1 and err[0].startswith("jaxdepth: error: ") and field in err[0]
  assert not os.path.exists(workdir)  # nothing written before the error


def test_unknown_dataset_lists_allowed(capsys, tmp_path):
  cli.main(["train", "--config", "configs/tiny.py", "--workdir", str(tmp_path),
            "--config.dataset=imagenet"])
  assert "mnist1d" in capsys.readouterr().err


def test_mismatched_workdir_is_refused_and_untouched(tmp_path, capsys):
  workdir = str(tmp_path)
  writers.prepare_workdir(workdir, tiny_config())
  before = open(os.path.join(workdir, "config.json")).read()
  code = cli.main(["train", "--config", "configs/tiny.py", "--workdir", workdir,
                   "--config.width=8"])
  assert code == 2 and "config.width" in capsys.readouterr().err
  assert open(os.path.join(workdir, "config.json")).read() == before


def test_cli_end_to_end(tmp_path):
  workdir = str(tmp_path / "run")
  out = subprocess.run([sys.executable, "-m", "jaxdepth", "train", "--config",
                        "configs/tiny.py", "--workdir", workdir, "--config.epochs=2"],
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.returncode == 0, out.stderr
  for f in ("config.json", "metrics.jsonl", "summary.json", "layers.csv",
            "figures/layers_d3_w16.png"):
    assert os.path.exists(os.path.join(workdir, f)), f
  s = json.load(open(os.path.join(workdir, "summary.json")))
  assert len(s["runs"]) == 4
  assert json.load(open(os.path.join(workdir, "config.json")))["epochs"] == 2


def test_analysis_cache_budget(monkeypatch):
  """On the CPU the embeddings of all of this host's devices count together against
  1/8 of the host's memory (at least ANALYSIS_CACHE_BYTES); elsewhere, per device."""
  from jaxdepth.engine import devices
  mib = 1 << 20
  assert jax.default_backend() == "cpu" and jax.local_device_count() == 4  # conftest
  monkeypatch.setattr(devices, "host_memory_bytes", lambda: 16 << 30)  # budget 2 GiB
  assert train.analysis_cache(mib, 2048, 1, 1)  # 2 GiB exactly
  assert not train.analysis_cache(mib, 2049, 1, 1)
  assert train.analysis_cache(mib, 512, 4, 4)  # 4 devices x 1 run x 512 MiB = 2 GiB
  assert not train.analysis_cache(mib, 513, 4, 4)
  assert train.analysis_cache(mib, 256, 8, 4)  # 2 runs per device: 4 x 2 x 256 MiB
  assert not train.analysis_cache(mib, 257, 8, 4)
  monkeypatch.setattr(devices, "host_memory_bytes", lambda: 0)  # unknown: 1 GiB
  assert train.analysis_cache(mib, 1024, 1, 1)
  assert not train.analysis_cache(mib, 1025, 1, 1)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # accelerators: per device
  assert train.analysis_cache(mib, 1024, 4, 4)
  assert not train.analysis_cache(mib, 1025, 4, 4)
  monkeypatch.undo()
  assert devices.host_memory_bytes() > 256 * mib  # the real query reads this machine's
