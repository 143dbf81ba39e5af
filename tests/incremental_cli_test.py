"""Every incremental config runs end to end from the CLI (tiny); bad input exits 2."""

import json
import os
import subprocess
import sys

import pytest

from jaxdepth import cli


def _cli(*args):
  """The installed command in a subprocess (--config.F=V overrides do not parse when
  cli.main is called in-process after absl flags were touched)."""
  p = subprocess.run([sys.executable, "-m", "jaxdepth", *args], capture_output=True, text=True,
                     env={**os.environ, "JAX_PLATFORMS": "cpu"})
  return p.returncode, p.stderr

EXPERIMENTS = ("toy", "matrix_sensing", "quadratic", "diagonal", "circular_conv", "omp")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_tiny_config_end_to_end(name, tmp_path):
  wd = str(tmp_path / name)
  assert cli.main(["train", "--config", f"configs/incremental/{name}.py:tiny",
                   "--workdir", wd]) == 0
  with open(os.path.join(wd, "summary.json")) as f:
    s = json.load(f)
  assert s["runs"] and all({"depth", "init_scale", "seed", "diverged"} <= set(r) for r in s["runs"])
  assert not any(r["diverged"] for r in s["runs"])
  assert any(p.endswith(".png") for p in os.listdir(wd))
  assert os.path.isdir(os.path.join(wd, "checkpoints"))
  if name in ("toy", "matrix_sensing", "quadratic"):
    assert all("t50" in r and "next_frac_at_t90" in r for r in s["runs"])


@pytest.mark.parametrize("name,override,field", [
    ("toy", "--config.init_scales=(0.0,)", "init_scales"),
    ("toy", "--config.init_scales=(-1e-3,)", "init_scales"),
    ("toy", "--config.depths=(0,)", "depths"),
    ("toy", "--config.targets=(3.0,-1.0)", "targets"),
    ("matrix_sensing", "--config.init=orthogonal", "init"),
    ("matrix_sensing", "--config.lr=0.0", "lr"),
    ("quadratic", "--config.depths=(3,)", "depths"),
    ("diagonal", "--config.loss=hinge", "loss"),
    ("circular_conv", "--config.depths=(0,2)", "depths"),
    ("omp", "--config.sparsity=0", "sparsity"),
])
def test_bad_input_is_a_config_error(name, override, field, tmp_path):
  wd = str(tmp_path / "run")
  rc, err = _cli("train", "--config", f"configs/incremental/{name}.py:tiny", "--workdir", wd,
                 override)
  assert rc == 2 and f"jaxdepth: error: config.{field}:" in err, err
  assert "Unknown command line flag" not in err
  assert not os.path.exists(wd)  # rejected before anything is written


def test_diverging_lr_is_flagged_not_plotted(tmp_path):
  wd = str(tmp_path / "div")
  rc, err = _cli("train", "--config", "configs/incremental/toy.py:tiny", "--workdir", wd,
                 "--config.lr=5.0", "--config.steps=2000")
  assert rc == 0, err
  with open(os.path.join(wd, "summary.json")) as f:
    s = json.load(f)
  assert all(r["diverged"] for r in s["runs"]) and s["num_diverged"] == len(s["runs"])
  assert os.path.exists(os.path.join(wd, "values_sigma0_0.001.png"))
