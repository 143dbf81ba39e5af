"""The public API, import hygiene and the layout's promises (no import circles)."""

import ast
import json
import os
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import jaxdepth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_changes_nothing_in_the_users_process():
  code = ("import os, sys, json; before = os.environ.get('XLA_FLAGS'); import jaxdepth; "
          "jaxdepth.__all__; loaded = 'jax' in sys.modules; import jax; "
          "print(json.dumps([before, os.environ.get('XLA_FLAGS'), loaded, "
          "jax.config.jax_num_cpu_devices, len(jax.devices())]))")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  for flags in (None, "--xla_force_host_platform_device_count=3"):
    if flags:
      env["XLA_FLAGS"] = flags
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         capture_output=True, check=True).stdout
    before, after, jax_loaded, num_cpu, n_dev = json.loads(out)
    assert before == after == flags
    assert not jax_loaded  # importing jaxdepth does not even import jax
    assert num_cpu == -1 and n_dev == (3 if flags else 1)


def test_public_api_names_resolve():
  for name in jaxdepth.__all__:
    assert getattr(jaxdepth, name) is not None, name
  with pytest.raises(AttributeError):
    jaxdepth.not_a_name  # noqa: B018


def _np_reference(feats, y, C):
  """float64 NCC accuracy and CDNV of one layer, straight from the definitions."""
  f = np.asarray(feats, np.float64).reshape(len(y), -1)
  mu = np.stack([f[y == c].mean(0) for c in range(C)])
  pred = np.argmin(((f[:, None] - mu[None]) ** 2).sum(-1), 1)
  var = np.array([((f[y == c] - mu[c]) ** 2).sum(1).mean() for c in range(C)])
  pairs = [(var[i] + var[j]) / (2 * ((mu[i] - mu[j]) ** 2).sum())
           for i in range(C) for j in range(C) if i != j]
  return (pred == y).mean(), np.mean(pairs), mu


def test_per_layer_on_any_embeddings_matches_numpy_float64():
  rng = np.random.default_rng(0)
  C, n = 3, 90
  y = np.repeat(np.arange(C), n // C)
  centers = rng.normal(size=(C, 6))
  layers = [rng.normal(size=(n, 6)) * s + centers[y] * (2 - s) for s in (1.5, 0.8, 0.1)]
  layers[1] = layers[1].reshape(n, 2, 3)  # any trailing shape is flattened
  yt = rng.integers(0, C, 30)
  test = [rng.normal(size=(30, 6)) * 0.1 + centers[yt] * 1.9 for _ in layers]
  m = jaxdepth.per_layer(layers, y, C, test=(test, yt), eps=(0.0, 0.2))
  for li, f in enumerate(layers):
    acc, cdnv, mu = _np_reference(f, y, C)
    assert m["ncc_train_acc"][li] == pytest.approx(acc, abs=1e-6)  # float32 mean
    assert m["cdnv_train"][li] == pytest.approx(cdnv, rel=1e-4)
  # Test accuracy uses the train means.
  _, _, mu = _np_reference(layers[2], y, C)
  pred = np.argmin(((test[2][:, None] - mu[None]) ** 2).sum(-1), 1)
  assert m["ncc_test_acc"][2] == pytest.approx((pred == yt).mean(), abs=1e-6)
  # Effective depth from exact counts: the first layer with train error <= eps.
  err = 1 - m["ncc_train_acc"]
  for e in (0.0, 0.2):
    ok = np.flatnonzero(np.rint(err * n) <= np.floor(e * n))
    assert m["effective_depth"][e] == (ok[0] + 1 if ok.size else 4)
  for li, f in enumerate(layers):  # rho of the Gram matrix: entropy of s_i^2 / sum s^2
    sv2 = np.linalg.svd(np.asarray(f, np.float32).astype(np.float64).reshape(n, -1),
                        compute_uv=False) ** 2
    q = sv2 / sv2.sum()
    q = q[q > 0]
    assert m["rank_train"][li] == pytest.approx(-(q * np.log(q)).sum(), rel=1e-6)


def test_run_any_experiment_from_python(tmp_path):
  s = jaxdepth.run("configs/tiny.py", str(tmp_path / "w"), epochs=2, progress=False)
  assert len(s["runs"]) == 4 and os.path.exists(tmp_path / "w" / "summary.json")


def _top_level_imports(path: str, modname: str, modules: set) -> set:
  tree = ast.parse(open(path).read())
  deps = set()
  for node in tree.body:  # module level only: function-level imports are lazy
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    deps.update(n for n in names if n in modules and n != modname)
  return deps


def test_no_import_circles():
  mods = {}
  for info in pkgutil.walk_packages(jaxdepth.__path__, "jaxdepth."):
    spec = info.module_finder.find_spec(info.name)
    mods[info.name] = spec.origin
  mods["jaxdepth"] = jaxdepth.__file__
  graph = {m: _top_level_imports(p, m, set(mods)) for m, p in mods.items()}
  state: dict = {}

  def visit(m, stack):
    state[m] = "open"
    for d in graph[m]:
      if state.get(d) == "open":
        raise AssertionError("import circle: " + " -> ".join(stack + [m, d]))
      if d not in state:
        visit(d, stack + [m])
    state[m] = "done"

  for m in graph:
    if m not in state:
      visit(m, [])
  # The layers: the engine, nets, data and measure never import a paper.
  for m, deps in graph.items():
    if not m.startswith("jaxdepth.papers"):
      assert not [d for d in deps if d.startswith("jaxdepth.papers")], (m, deps)


def test_modules_are_small_or_say_why():
  for info in pkgutil.walk_packages(jaxdepth.__path__, "jaxdepth."):
    path = info.module_finder.find_spec(info.name).origin
    src = open(path).read()
    if src.count("\n") > 400:
      head = ast.get_docstring(ast.parse(src)) or ""
      assert "Why this module is long" in head, f"{path}: {src.count(chr(10))} lines"


def test_engine_points_down_and_knows_no_experiment():
  """engine/ imports (anywhere, also inside functions) none of nets, measure, papers,
  data; errors.py imports nothing of jaxdepth; no engine source names a field of an
  experiment's config."""
  import ast
  root = os.path.dirname(jaxdepth.__file__)
  upper = ("jaxdepth.nets", "jaxdepth.measure", "jaxdepth.papers", "jaxdepth.data")
  fields = ("label_noise", "init_scale", "expansion", "weight_decay", "momentum",
            "milestones", "num_seeds", "sweep_depths", "noise_mode", "eval_every",
            "checkpoint_every", "keep_checkpoints")

  def imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module:
        yield node.module
        yield from (f"{node.module}.{a.name}" for a in node.names)

  engine = os.path.join(root, "engine")
  for f in sorted(os.listdir(engine)):
    if f.endswith(".py"):
      path = os.path.join(engine, f)
      bad = [m for m in imports(path) if m.startswith(upper)]
      assert not bad, (f, bad)
      src = open(path).read()
      assert not [w for w in fields if w in src], (f, [w for w in fields if w in src])
  assert not [m for m in imports(os.path.join(root, "errors.py")) if "jaxdepth" in m]


_THIRD_PARTY = ("jax", "jaxlib", "orbax", "flax", "optax", "chex", "tensorstore")


def test_no_private_api_of_jax_or_orbax():
  """Only public modules of jax, orbax & co. (a private one moves in a minor release),
  and no process-wide hook replaced (``sys.unraisablehook``)."""
  bad = []
  for info in pkgutil.walk_packages(jaxdepth.__path__, "jaxdepth."):
    path = info.module_finder.find_spec(info.name).origin
    for node in ast.walk(ast.parse(open(path).read())):
      mods = []
      if isinstance(node, ast.Import):
        mods = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
      elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        mods = [node.value] if "._" in node.value and " " not in node.value else []
      elif isinstance(node, ast.Attribute) and node.attr in ("_src", "unraisablehook"):
        bad.append(f"{path}:{node.lineno}: .{node.attr}")
      for m in mods:
        parts = m.split(".")
        if parts[0] in _THIRD_PARTY and any(p.startswith("_") for p in parts[1:]):
          bad.append(f"{path}:{node.lineno}: {m}")
  assert not bad, bad


def test_use_cpu_cores_after_jax_started_keeps_the_device_count():
  """Whether jax has started is asked through its public config (it refuses a new
  device count then), not its private backend table."""
  import jax

  from jaxdepth.engine import devices
  have, flags = len(jax.devices("cpu")), os.environ.get("XLA_FLAGS")  # jax has started
  with pytest.warns(UserWarning, match=f"already started with {have} CPU device"):
    assert devices.use_cpu_cores(have + 1) == have
  assert devices.use_cpu_cores() == have and os.environ.get("XLA_FLAGS") == flags
  assert jax.config.jax_num_cpu_devices in (-1, have)
