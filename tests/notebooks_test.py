"""Every notebook runs top to bottom at its tiny setting (JAXDEPTH_TINY=1), as a user
runs it: jaxdepth installed from a wheel (built once per session from this checkout)
into a fresh virtual environment, the kernel started with that environment's python,
in a directory outside the repository; and every plotting cell shows a figure.

The environment is created without pip or dependencies (offline): a ``.pth`` file puts
the test interpreter's site-packages (jax, flax, ipykernel, ...) on its path, as plain
directories, so that their own ``.pth`` files, among them an editable jaxdepth install
of the checkout, are not processed; ``--system-site-packages`` alone would not do it
from a virtual environment (it points at the base interpreter's site-packages).
"""

import ast
import glob
import json
import os
import re
import shutil
import site
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
KERNEL = "jaxdepth-wheel-test"
# A cell that draws: pyplot, or a PNG shown with IPython.display.Image (the notebooks'
# `show(path)` helper is one), outside a function definition. Each of them must leave
# an image/png display_data.
PLOTTING = re.compile(r"\bplt\.|\bdisplay\(Image\(|^\s*show\(", re.M)
DEFINITION = re.compile(r"^(def|class) .*?(?=^\S|\Z)", re.M | re.S)
# The marker the test's last cell prints (where jaxdepth and the kernel's python are).
WHERE = "JAXDEPTH_WHERE="


def _code(nb):
  return [c for c in nb.cells if c.cell_type == "code"]


def test_notebooks_exist():
  names = {os.path.basename(p) for p in NOTEBOOKS}
  assert {"minimal_depth.ipynb", "incremental_learning.ipynb", "low_rank_bias.ipynb",
          "your_model.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_committed_clean_with_install_cell(path):
  """No outputs; the first code cell is the one install cell (a no-op where jaxdepth
  imports; JAXDEPTH_SOURCE is its one setting), the same in every notebook."""
  from IPython.core.inputtransformer2 import TransformerManager
  nb = nbformat.read(path, as_version=4)
  for c in _code(nb):
    assert not c.get("outputs") and c.get("execution_count") is None, \
        "notebooks are committed without outputs"
  first = _code(nb)[0].source
  reference = _code(nbformat.read(NOTEBOOKS[0], as_version=4))[0].source
  assert first == reference
  assert len(re.findall(r"^JAXDEPTH_SOURCE = ", first, re.M)) == 1
  assert re.search(r"^try:\n  import jaxdepth\nexcept ImportError:", first, re.M)
  compile(TransformerManager().transform_cell(first), "install cell", "exec")


def test_library_selects_no_matplotlib_backend():
  """Figures show inline in a notebook: no module but the CLI selects a backend, and
  importing the plotting modules leaves the active one alone."""
  for path in glob.glob(os.path.join(ROOT, "jaxdepth", "**", "*.py"), recursive=True):
    if os.path.relpath(path, ROOT) != os.path.join("jaxdepth", "cli.py"):
      with open(path) as f:
        assert not re.search(r"matplotlib\.use\(|MPLBACKEND", f.read()), path
  code = ("import matplotlib; matplotlib.use('svg')\n"
          "import jaxdepth.engine.plotting, jaxdepth.papers.minimal_depth.figures\n"
          "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()")
  env = {**os.environ, "PYTHONPATH": ROOT}
  env.pop("MPLBACKEND", None)
  subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


@pytest.fixture(scope="session")
def wheel_kernel(tmp_path_factory):
  """A venv with jaxdepth installed from a wheel of this checkout, and a Jupyter kernel
  spec (under the returned JUPYTER_PATH) that starts its python."""
  tmp = tmp_path_factory.mktemp("wheel_env")
  src = tmp / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md", "LICENSE"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  shutil.copytree(os.path.join(ROOT, "jaxdepth"), src / "jaxdepth",
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  pip = [sys.executable, "-m", "pip"]
  subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                  "-w", str(tmp / "dist"), "./src"], cwd=tmp, check=True)
  (whl,) = glob.glob(str(tmp / "dist" / "jaxdepth-*.whl"))
  venv = tmp / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                  str(venv)], check=True)
  python = str(venv / "bin" / "python")
  purelib = subprocess.run([python, "-c", "import sysconfig; "
                            "print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
  parents = [p for p in site.getsitepackages() if os.path.isdir(p)]
  with open(os.path.join(purelib, "_test_parent_site.pth"), "w") as f:
    f.write("\n".join(parents) + "\n")
  subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q",
                  whl], check=True)
  kernels = tmp / "jupyter" / "kernels" / KERNEL
  kernels.mkdir(parents=True)
  (kernels / "kernel.json").write_text(json.dumps({
      "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "jaxdepth (wheel)", "language": "python"}))
  return {"jupyter_path": str(tmp / "jupyter"), "purelib": os.path.realpath(purelib),
          "python": python}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_from_wheel(path, wheel_kernel, tmp_path, monkeypatch):
  nb = nbformat.read(path, as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell(
      f"import sys\nprint({WHERE!r} + repr((jaxdepth.__file__, sys.executable)))"))
  run_dir = tmp_path / "cwd"   # outside the repository
  run_dir.mkdir()
  monkeypatch.setenv("JUPYTER_PATH", wheel_kernel["jupyter_path"])
  monkeypatch.setenv("JAXDEPTH_TINY", "1")
  monkeypatch.setenv("JAXDEPTH_WORKDIR", str(tmp_path / "runs"))
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
  monkeypatch.delenv("PYTHONPATH", raising=False)
  monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its inline backend
  client = NotebookClient(nb, timeout=600, kernel_name=KERNEL,
                          resources={"metadata": {"path": str(run_dir)}})
  client.execute()
  cells = _code(nb)
  errors = [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
  assert not errors, errors

  text = "".join(o.text for o in cells[-1].outputs if o.output_type == "stream")
  jaxdepth_file, python = ast.literal_eval(text.split(WHERE, 1)[1].strip())
  assert python == wheel_kernel["python"]
  assert os.path.realpath(jaxdepth_file).startswith(wheel_kernel["purelib"] + os.sep)
  assert not os.path.realpath(jaxdepth_file).startswith(ROOT + os.sep)

  out = os.environ.get("JAXDEPTH_NOTEBOOK_OUT")   # keep the executed notebooks (debugging)
  if out:
    os.makedirs(out, exist_ok=True)
    nbformat.write(nb, os.path.join(out, os.path.basename(path)))

  for c in cells:  # no table both printed and displayed by one cell
    printed = {l.strip() for o in c.outputs if o.output_type == "stream"
               for l in o.text.splitlines() if len(l.strip()) > 10}
    shown = [o.data.get(k, "") for o in c.outputs
             if o.output_type in ("display_data", "execute_result")
             for k in ("text/markdown", "text/html", "text/plain")
             if o.output_type == "execute_result" or k != "text/plain"]
    assert not [l for l in printed if any(l in t for t in shown)], c.source

  plotting = [c for c in cells[:-1] if PLOTTING.search(DEFINITION.sub("", c.source))]
  assert plotting
  for c in plotting:
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {})
               for o in c.outputs), f"no figure from the cell:\n{c.source}"


@pytest.mark.slow
def test_cli_from_wheel_in_an_empty_directory(wheel_kernel, tmp_path):
  """The wheel's console script, in an empty directory with no PYTHONPATH: `jaxdepth
  list` names the packaged configs and `jaxdepth train --config quickstart:tiny`
  trains and writes its summary (issue 23: configs as package data)."""
  jaxdepth = os.path.join(os.path.dirname(wheel_kernel["python"]), "jaxdepth")
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPLBACKEND")}
  env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
  cwd = tmp_path / "empty"
  cwd.mkdir()
  where = subprocess.run([wheel_kernel["python"], "-c", "import jaxdepth; "
                          "print(jaxdepth.__file__)"], cwd=cwd, env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
  assert os.path.realpath(where).startswith(wheel_kernel["purelib"] + os.sep)
  listed = subprocess.run([jaxdepth, "list"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
  assert listed.returncode == 0, listed.stderr
  for name in ("quickstart", "bound", "lowrank/volume", "incremental/toy"):
    assert re.search(rf"^\s*{re.escape(name)}\b", listed.stdout, re.M), name
  run = subprocess.run([jaxdepth, "train", "--config", "quickstart:tiny", "--workdir", "w"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  with open(cwd / "w" / "summary.json") as f:
    summary = json.load(f)
  assert len(summary["runs"]) >= 2 and all("test_acc" in r for r in summary["runs"])
  assert "test acc" in run.stdout  # the final table, on stdout
  assert os.listdir(cwd) == ["w"]  # nothing written beside the workdir
