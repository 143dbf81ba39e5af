"""The researcher's workflow (issue 23): configs found by name from any directory,
``jaxdepth list``, variants checked before any compute, ``--config.x v``, ``--version``."""

import os
import re
import subprocess
import sys

import pytest

import jaxdepth
from jaxdepth import cli, configs
from jaxdepth.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
ENV["PYTHONPATH"] = ROOT  # this checkout, whatever jaxdepth the venv has installed


def _jaxdepth(*args, cwd, flags=()):
  return subprocess.run([sys.executable, *flags, "-m", "jaxdepth", *args], cwd=cwd,
                        env=ENV, capture_output=True, text=True, timeout=600)


def test_train_by_name_from_a_directory_outside_the_repo(tmp_path):
  p = _jaxdepth("train", "--config", "quickstart:tiny", "--workdir", "w", cwd=tmp_path)
  assert p.returncode == 0, p.stderr[-3000:]
  assert (tmp_path / "w" / "summary.json").exists()
  assert '"depth": 4' in (tmp_path / "w" / "config.json").read_text()  # the tiny variant


def test_every_name_form_resolves_outside_the_repo(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # no configs/ here: names and old paths mean the package's
  assert cli.load_config("quickstart", []).depth == 12
  assert cli.load_config("quickstart:tiny", []).depth == 4
  for spec in ("lowrank/volume:tiny", "lowrank/volume.py:tiny", "configs/lowrank/volume.py:tiny",
               "./configs/lowrank/volume.py:tiny"):
    c = cli.load_config(spec, [])
    assert c.experiment == "lowrank.volume" and c.depths == (1, 4, 16), spec
  assert cli.load_config("configs/tiny.py", ["--config.epochs=2"]).epochs == 2
  # A user's own file, by path, with an arg of its own (no VARIANTS: anything goes).
  (tmp_path / "mine.py").write_text(
      "from jaxdepth.configs import common\n\n"
      "def get_config(arg=None):\n"
      "  c = common.base()\n"
      "  c.depth = int(arg or 3)\n"
      "  return c\n")
  assert cli.load_config("mine.py", []).depth == 3
  assert cli.load_config(str(tmp_path / "mine.py") + ":7", []).depth == 7
  # A file that exists relative to the working directory wins over the packaged name.
  (tmp_path / "configs").mkdir()
  (tmp_path / "configs" / "tiny.py").write_text((tmp_path / "mine.py").read_text())
  assert cli.load_config("configs/tiny.py:5", []).depth == 5
  with pytest.raises(ConfigError, match=r"^config: no config 'nosuch'"):
    cli.load_config("nosuch", [])


def test_the_clones_top_level_configs_folder_is_the_package(monkeypatch):
  """A clone has the design's top-level configs/ (a link to jaxdepth/configs); its paths
  name the packaged configs, so a run records the same name from either spelling."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  top = os.path.join(root, "configs")
  assert os.path.isdir(top)
  assert os.path.samefile(top, configs.DIR)
  monkeypatch.chdir(root)
  for spec in ("configs/quickstart.py", "./configs/quickstart.py", "quickstart",
               os.path.join(top, "quickstart.py"), "jaxdepth/configs/quickstart.py"):
    entry, arg = configs.resolve(spec + ":tiny")
    assert (entry.name, arg) == ("quickstart", "tiny"), spec
  assert sorted(e.name for e in configs.catalog())[:1] == ["bound"]
  with pytest.raises(ConfigError, match="no config"):
    configs.resolve("configs/common.py")  # a helper module of the package, not a config


def test_every_config_and_variant_loads_and_validates():
  from jaxdepth.engine import registry
  entries = configs.catalog()
  assert len(entries) >= 20
  for e in entries:
    assert e.variants and "tiny" in e.variants, e.name  # every config has :tiny
    assert e.description, e.name
    for v in (None, *e.variants):
      spec = e.name if v is None else f"{e.name}:{v}"
      c = cli.load_config(spec, [])
      registry.get(c.get("experiment", "collapse")).validate(c)


def test_list_shows_every_config_and_imports_no_jax():
  p = _jaxdepth("list", cwd=ROOT, flags=("-X", "importtime"))
  assert p.returncode == 0, p.stderr[-3000:]
  imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines()
              if line.startswith("import time:")}
  heavy = {m for m in imported
           if m.split(".")[0] in ("jax", "jaxlib", "tensorflow_datasets", "tensorflow",
                                  "matplotlib", "ml_collections", "numpy")}
  assert not heavy, sorted(heavy)
  for e in configs.catalog():
    m = re.search(rf"^{re.escape(e.name)} +variants: (.*)\n    (.*)$", p.stdout, re.M)
    assert m, e.name
    assert m.group(1) == ", ".join(e.variants) and m.group(2) == e.description
  assert "lowrank/volume" in p.stdout and "quickstart" in p.stdout
  assert "Main job: MLP-12-128 on MNIST-1D" in p.stdout
  h = _jaxdepth("--help", cwd=ROOT, flags=("-X", "importtime"))
  assert h.returncode == 0 and "list" in h.stdout
  assert not re.search(r"\| +(jax|matplotlib|tensorflow_datasets)$", h.stderr, re.M)


def test_unknown_variant_is_one_line_exit_2_and_no_workdir(tmp_path):
  p = _jaxdepth("train", "--config", "tiny:nosuchvariant", "--workdir", "w", cwd=tmp_path)
  assert p.returncode == 2
  assert p.stderr.strip().splitlines() == [
      "jaxdepth: error: config: unknown variant 'nosuchvariant' of tiny; allowed: tiny"]
  assert not (tmp_path / "w").exists()
  with pytest.raises(ConfigError, match=r"unknown variant 'nope' of noise_sweep; allowed: "
                                        r"uniform, tiny \(comma-separated\)"):
    cli.load_config("noise_sweep:uniform,nope", [])
  assert cli.load_config("noise_sweep:uniform,tiny", []).noise_mode == "uniform"


def test_override_value_after_a_space(tmp_path, capsys):
  c = cli.load_config("tiny", ["--config.depth", "5", "--config.lr", "-0.5",
                               "--config.plots", "--config.epochs=3"])
  assert (c.depth, c.lr, c.plots, c.epochs) == (5, -0.5, True, 3)
  assert cli.join_override_values(["--config.depth", "5", "--workdir", "w"]) == [
      "--config.depth=5", "--workdir", "w"]
  # Through the command: the value reaches validation (0 is refused, before any compute).
  w = tmp_path / "w"
  assert cli.main(["train", "--config", "tiny", "--config.depth", "0",
                   "--workdir", str(w)]) == 2
  assert "config.depth" in capsys.readouterr().err and not w.exists()


def test_load_config_leaves_sys_argv_alone(monkeypatch):
  argv = ["prog", "--config.depth=99", "--config.nosuch=1"]
  monkeypatch.setattr(sys, "argv", list(argv))
  assert cli.load_config("tiny", ["--config.width=7"]).depth == 3  # sys.argv not read
  assert sys.argv == argv


def test_version():
  p = _jaxdepth("--version", cwd=ROOT)
  assert p.returncode == 0 and p.stdout.strip() == f"jaxdepth {jaxdepth.__version__}"
  pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
  assert f'version = "{jaxdepth.__version__}"' in pyproject


def test_documented_config_specs_resolve(tmp_path, monkeypatch):
  """Every ``--config X`` in the README and the docs names a config (or a variant) that
  exists, from any directory."""
  monkeypatch.chdir(tmp_path)
  specs = set()
  for path in ("README.md", "docs/architecture.md", "docs/minimal_depth.md"):
    text = open(os.path.join(ROOT, path)).read()
    specs |= set(re.findall(r"--config[ =]((?:configs/)?[a-z0-9_/]+(?:\.py)?(?::[a-z0-9_,]+)?)",
                            text))
  specs -= {"configs/example.py", "example",  # the worked example's own config
            "my_config.py",                      # "your own file"
            "quickstart:huge"}                   # the README's unknown-variant example
  assert "configs/quickstart.py" in specs
  for spec in sorted(specs):
    configs.resolve(spec)


def test_license_and_citation():
  text = open(os.path.join(ROOT, "LICENSE")).read()
  assert "Apache License" in text and "Version 2.0, January 2004" in text
  assert "END OF TERMS AND CONDITIONS" in text
  yaml = pytest.importorskip("yaml")
  cff = yaml.safe_load(open(os.path.join(ROOT, "CITATION.cff")))
  assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == jaxdepth.__version__
  assert cff["license"] == "Apache-2.0"
  ids = {r["identifiers"][0]["value"] for r in cff["references"]}
  assert ids == {"arXiv:2202.09028", "arXiv:1909.12051", "arXiv:2103.10427"}


def test_a_run_axis_shorter_than_the_cores_gets_one_threaded_device(tmp_path):
  """`jaxdepth train` with fewer runs than cores starts one CPU device that keeps XLA's
  intra-op threads (no copies of runs padded onto idle cores); otherwise one device per
  core with single-threaded Eigen. The device count is read back from config.json."""
  import json

  from jaxdepth.engine import devices
  cores = devices.cpu_count()
  for seeds, noise, runs in ((1, "(0.0,)", 1), (2, "(0.0,0.25)", 4)):
    want = 1 if runs < cores else cores
    wd = tmp_path / f"s{seeds}"
    p = _jaxdepth("train", "--config", "tiny", "--workdir", str(wd), "--config.epochs=1",
                  f"--config.num_seeds={seeds}", f"--config.label_noise={noise}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    prov = json.loads((wd / "config.json").read_text())["_provenance"]
    assert prov["device_count"] == want, (seeds, prov)
  code = ("import os, jax; from jaxdepth.engine import devices; n = devices.use_cpu_cores("
          "runs={}); print(n, len(jax.devices()), "
          "'multi_thread_eigen=false' in os.environ.get('XLA_FLAGS', ''))")
  for runs in (1, cores):
    few = runs < cores
    out = f"{1 if few else cores} {1 if few else cores} {not few}"
    q = subprocess.run([sys.executable, "-c", code.format(runs)], env=ENV, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert q.stdout.split() == out.split(), (runs, q.stdout, q.stderr[-2000:])
