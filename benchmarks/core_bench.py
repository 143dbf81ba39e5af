"""Core benchmark: jaxdepth's vmapped trainer vs PyTorch ensembles, the machine's GEMM
peak, compile time vs depth, and the cost of the full per-layer analysis (issues 2, 12).

  .venv/bin/pip install torch==2.13.0      # the 'bench' extra (CPU build)
  .venv/bin/python benchmarks/core_bench.py --json /tmp/core.json
  .venv/bin/python benchmarks/core_bench.py --quick --json /tmp/q.json   # smoke test

Same data (MNIST-1D 4000 train / 1000 test, generated locally by jaxdepth.data.mnist1d),
same model MLP-L-H (Linear -> BatchNorm (batch statistics, train mode) -> ReLU blocks,
linear read-out, He-normal init), same SGD (lr 0.05 constant, momentum 0.9, coupled
weight decay 5e-4), batch 128, epoch remainder dropped, S = 8 seeds, each seed its own
data order. Variants (each in its own worker process):

  jax-1     jaxdepth's epoch program (train.build_program(...).epoch), all seeds vmapped,
            1 CPU device, set up as ``jaxdepth train`` does (devices.use_cpu_cores:
            jax_num_cpu_devices and single-threaded Eigen, before jax starts);
  jax-N     the same with N = cores CPU devices (hence a process per device count),
            the run axis sharded as train.train_shape does;
  torch-stacked / torch-stacked-compile
            the PyTorch ensemble recipe: every parameter stacked on a leading seed axis
            (S, ...), torch.baddbmm, per-seed batch-statistics BN, one torch.optim.SGD
            over the stacked tensors (SGD is elementwise, so this is S independent
            optimizers), eager and under torch.compile (model and optimizer step);
  torch-vmap  torch.func.stack_module_state + functional_call under torch.vmap;
  torch-loop  the per-seed loop: torch.nn MLP + torch.optim.SGD, one seed after another;
  gemm        the measured fp32 GEMM peak: large square matmuls (numpy's BLAS and XLA
            with multi-threaded Eigen, all cores), best of the two.

Interleaving: every variant is a long-lived worker process, set up and warmed up
(compile excluded) before timing; then the parent runs repeat r of variant A, of B, of
C, ... one at a time (never two concurrently), then repeat r+1. Background load thus
hits all variants alike, and ratios are per-repeat ratios taken minutes apart at most.
Throughput = optimizer steps over all seeds / s (median over repeats); achieved FLOP/s
counts the matmul FLOPs of a step (forward, weight and input gradients) and is reported
as a fraction of the gemm worker's median. The per-layer analysis (program.analyze) is
timed in the jax workers, interleaved the same way, against their epoch time.
No timing thresholds are asserted anywhere; the issue's targets are printed next to
the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TARGETS = {"speedup_vs_best_torch": {"64": 1.5, "256": 1.2},
           "gemm_fraction_min": {"256": 0.6},
           "analysis_over_epoch_max": {"64": 0.5, "256": 1.0},
           "compile_ratio_max": 1.5}
PREFIX = "@@bench "  # worker -> parent result lines (anything else is passed through)


def loadavg() -> list[float]:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return [float("nan")] * 3


def cpu_count() -> int:
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:
    return max(1, os.cpu_count() or 1)


def matmul_flops_per_step(depth: int, width: int, in_dim: int, classes: int,
                          batch: int) -> int:
  """Matmul FLOPs of one SGD step of one seed: the forward dots, every weight gradient,
  and every input gradient but the first layer's (nothing needs d loss / d x)."""
  dims = [in_dim] + [width] * depth + [classes]
  macs = [batch * a * b for a, b in zip(dims[:-1], dims[1:])]
  return 2 * (sum(macs) + sum(macs) + sum(macs[1:]))


# ============================================================================ workers
# Each worker: build + warm up, print PREFIX {"ready": ...}, then answer commands read
# from stdin ("run E", "analyze", "quit") with one PREFIX json line each.
def _emit(obj):
  sys.stdout.write(PREFIX + json.dumps(obj, default=float) + "\n")
  sys.stdout.flush()


def _load_npz(path):
  import numpy as np
  d = np.load(path)
  return {k: d[k] for k in d.files}


class JaxWorker:
  """jaxdepth's compiled epoch program, all seeds vmapped (optionally sharded)."""

  def __init__(self, spec):
    import jax
    import jax.numpy as jnp

    from jaxdepth.engine import devices
    devices.use_cpu_cores(spec["devices"])  # as the CLI: before jax starts
    from jaxdepth import data
    from jaxdepth.configs import common
    from jaxdepth.papers.minimal_depth import train
    self.jax, self.train = jax, train
    d = _load_npz(spec["data"])
    ds = data.Dataset(d["x_train"], d["y_train"], d["x_test"], d["y_test"], 10, "mnist1d")
    c = common.base()
    c.dataset = "mnist1d"
    c.data.num_train, c.data.num_test = len(ds.x_train), len(ds.x_test)
    c.depth, c.width, c.num_seeds = spec["depth"], spec["width"], spec["seeds"]
    c.label_noise = (0.0,)
    c.batch_size, c.lr, c.momentum, c.weight_decay = spec["batch"], spec["lr"], 0.9, 5e-4
    c.warmup_epochs, c.schedule = 0.0, "constant"
    c.analysis_batch = spec["analysis_batch"]
    c.progress = c.plots = False
    train.validate(c)
    self.config = c
    t0 = time.perf_counter()
    grid = train.run_grid(c)
    # As train.train_shape: the run axis padded and sharded over every CPU device;
    # initialised on one device, then placed.
    place = train.placement(c, len(grid))
    self.prog = train.build_program(c, ds, c.depth, c.width, place)
    keys = place.pad(train.make_keys(c.seed, grid))
    self.state, self.labels, self.chosen = place.runs(self.prog.init(keys))
    self.keys = place.runs(keys)
    self.x = place.shared(jnp.asarray(ds.x_train))
    self.sharded = place.sharded
    self._block((self.state, self.labels, self.chosen, self.keys, self.x))
    self.epoch_idx = 0
    self.build_s = time.perf_counter() - t0
    self.first_epoch_s = self.run(1)["seconds"]
    self.run(1)
    t0 = time.perf_counter()
    self._block(self.prog.analyze(self.state, self.labels, self.chosen))
    self.analysis_first_s = time.perf_counter() - t0

  def _block(self, tree):
    self.jax.block_until_ready(tree)
    return tree

  def ready(self):
    import jax
    return {"build_init_s": self.build_s, "first_epoch_s": self.first_epoch_s,
            "analysis_first_s": self.analysis_first_s, "devices": jax.device_count(),
            "sharded": self.sharded, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "jax": jax.__version__}

  def run(self, epochs):
    import numpy as np
    t0 = time.perf_counter()
    for _ in range(epochs):
      self.state, loss = self.prog.epoch(self.state, self.labels, self.keys,
                                         self.epoch_idx, self.x)
      self.epoch_idx += 1
    self._block((self.state, loss))
    dt = time.perf_counter() - t0
    return {"seconds": dt, "loss": float(np.mean(np.asarray(loss["loss"])))}

  def analyze(self):
    t0 = time.perf_counter()
    out = self.prog.analyze(self.state, self.labels, self.chosen)
    self._block(out)
    return {"seconds": time.perf_counter() - t0}


def compile_worker(spec):
  """(c) lower + compile of a fresh epoch program at each depth (median of repeats)."""
  import jax.numpy as jnp

  from jaxdepth import data
  from jaxdepth.configs import common
  from jaxdepth.papers.minimal_depth import train
  d = _load_npz(spec["data"])
  ds = data.Dataset(d["x_train"], d["y_train"], d["x_test"], d["y_test"], 10, "mnist1d")
  rows = {}
  for depth in spec["depths"]:
    c = common.base()
    c.dataset = "mnist1d"
    c.depth, c.width, c.num_seeds, c.label_noise = depth, spec["width"], spec["seeds"], (0.0,)
    c.batch_size, c.lr, c.warmup_epochs, c.schedule = spec["batch"], spec["lr"], 0.0, "constant"
    c.progress = c.plots = False
    reps = []
    for _ in range(spec["repeats"]):
      prog = train.build_program(c, ds, depth, c.width)
      keys = train.make_keys(c.seed, train.run_grid(c))
      state, labels, _ = prog.init(keys)
      x = jnp.asarray(ds.x_train)
      t0 = time.perf_counter()
      lowered = prog.epoch.lower(state, labels, keys, 0, x)
      t1 = time.perf_counter()
      lowered.compile()
      t2 = time.perf_counter()
      reps.append({"lower_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0})
    rows[str(depth)] = {k: statistics.median([r[k] for r in reps]) for k in reps[0]}
    rows[str(depth)]["repeat_total_s"] = [r["total_s"] for r in reps]
  d0, d1 = str(min(spec["depths"])), str(max(spec["depths"]))
  return {"width": spec["width"], "seeds": spec["seeds"], "by_depth": rows,
          "ratio_deepest_over_shallowest": rows[d1]["total_s"] / rows[d0]["total_s"],
          "ratio_depths": [int(d1), int(d0)], "load_after": loadavg()}


# ---------------------------------------------------------------------------- PyTorch
def torch_available() -> tuple[bool, str]:
  try:
    import torch  # noqa: F401
  except Exception as e:  # ImportError or a broken install
    return False, f"torch not importable ({type(e).__name__}: {e})"
  return True, ""


class StackedMLP:
  """MLP-L-H for S seeds at once, every parameter stacked on a leading seed axis.

  x (S, B, I) -> baddbmm -> per-seed BatchNorm over B (train mode: batch mean and
  biased variance normalize; running mean / unbiased variance updated with PyTorch's
  momentum 0.1) -> ReLU, ..., -> linear read-out (S, B, C). He-normal weights (std
  sqrt(2 / fan_in), sqrt(1 / fan_in) for the read-out), zero biases, BN scale 1 and
  shift 0, as jaxdepth's 'kaiming' init.
  """

  def __init__(self, torch, seeds, depth, width, in_dim, classes, generator):
    self.torch = torch
    dims = [in_dim] + [width] * depth + [classes]
    self.weights, self.biases, self.scales, self.shifts = [], [], [], []
    self.running = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
      std = math.sqrt((2.0 if i < depth else 1.0) / a)
      self.weights.append(torch.randn(seeds, a, b, generator=generator) * std)
      self.biases.append(torch.zeros(seeds, 1, b))
      if i < depth:
        self.scales.append(torch.ones(seeds, 1, b))
        self.shifts.append(torch.zeros(seeds, 1, b))
        self.running.append((torch.zeros(seeds, 1, b), torch.ones(seeds, 1, b)))
    for p in self.parameters():
      p.requires_grad_(True)

  def parameters(self):
    return self.weights + self.biases + self.scales + self.shifts

  def __call__(self, x):
    torch = self.torch
    h = x
    depth = len(self.scales)
    for i in range(depth):
      h = torch.baddbmm(self.biases[i], h, self.weights[i])
      mean = h.mean(1, keepdim=True)
      var = h.var(1, unbiased=False, keepdim=True)
      with torch.no_grad():  # running statistics (eval mode only; PyTorch semantics)
        n = h.shape[1]
        rm, rv = self.running[i]
        rm.mul_(0.9).add_(mean.detach(), alpha=0.1)
        rv.mul_(0.9).add_(var.detach() * (n / (n - 1)), alpha=0.1)
      h = torch.relu((h - mean) * torch.rsqrt(var + 1e-5) * self.scales[i] + self.shifts[i])
    return torch.baddbmm(self.biases[depth], h, self.weights[depth])


def stacked_loss(torch, logits_SxBxC, y_SxB):
  """Sum over seeds of each seed's mean cross-entropy (so each seed's gradient is its
  own mean-loss gradient)."""
  s, b, c = logits_SxBxC.shape
  return torch.nn.functional.cross_entropy(logits_SxBxC.reshape(s * b, c),
                                           y_SxB.reshape(s * b), reduction="sum") / b


class _TorchEnsemble:
  """What the stacked-ensemble workers share: the data, one data order per seed and
  the timed loop; a subclass builds the model and defines ``step(x_SxB, y_SxB)``."""

  def _setup(self, spec):
    import numpy as np
    import torch
    self.torch = torch
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    d = _load_npz(spec["data"])
    self.x = torch.from_numpy(np.ascontiguousarray(d["x_train"].reshape(len(d["x_train"]), -1)))
    self.y = torch.from_numpy(d["y_train"].astype(np.int64))
    self.S, self.B = spec["seeds"], spec["batch"]
    self.spe = len(self.x) // self.B
    self.order = torch.Generator().manual_seed(1)
    return torch

  def _warm_up(self):
    t0 = time.perf_counter()
    self.run(1)
    self.first_epoch_s = time.perf_counter() - t0
    self.run(1)

  def ready(self):
    return {"first_epoch_s": self.first_epoch_s, "threads": self.torch.get_num_threads(),
            "torch": self.torch.__version__}

  def run(self, epochs):
    torch = self.torch
    t0 = time.perf_counter()
    n, b = len(self.x), self.B
    for _ in range(epochs):
      perm = torch.argsort(torch.rand(self.S, n, generator=self.order), dim=1)
      for i in range(self.spe):
        idx = perm[:, i * b:(i + 1) * b]  # (S, B): each seed its own order
        loss = self.step(self.x[idx], self.y[idx])
    dt = time.perf_counter() - t0
    return {"seconds": dt, "loss": float(loss.detach()) / self.S}


class TorchStacked(_TorchEnsemble):
  """The stacked-parameter ensemble, eager or torch.compile'd (forward+backward via
  AOTAutograd, and the optimizer step)."""

  def __init__(self, spec):
    torch = self._setup(spec)
    g = torch.Generator().manual_seed(0)
    self.net = StackedMLP(torch, self.S, spec["depth"], spec["width"], self.x.shape[1], 10, g)
    self.opt = torch.optim.SGD(self.net.parameters(), lr=spec["lr"], momentum=0.9,
                               weight_decay=5e-4, **spec.get("sgd_kwargs", {}))
    net, opt = self.net, self.opt

    def loss_fn(x, y):
      return stacked_loss(torch, net(x), y)

    def step_opt():
      opt.step()

    self.compiled = spec["kind"] == "torch-stacked-compile"
    if self.compiled:
      loss_fn = torch.compile(loss_fn)
      step_opt = torch.compile(step_opt)
    self.loss_fn, self.step_opt = loss_fn, step_opt
    self._warm_up()

  def step(self, x, y):
    self.opt.zero_grad(set_to_none=True)
    loss = self.loss_fn(x, y)
    loss.backward()
    self.step_opt()
    return loss


class TorchVmap(_TorchEnsemble):
  """torch.func model ensembling: stack_module_state + functional_call under vmap."""

  def __init__(self, spec):
    import copy

    from torch.func import functional_call, stack_module_state
    torch = self._setup(spec)
    models = [torch_mlp(torch, spec["depth"], spec["width"], self.x.shape[1], 10)
              for _ in range(self.S)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    self.params, self.buffers = params, buffers
    self.opt = torch.optim.SGD(list(params.values()), lr=spec["lr"], momentum=0.9,
                               weight_decay=5e-4)

    def fmodel(p, bufs, x):
      return functional_call(base, (p, bufs), (x,))

    self.forward = torch.vmap(fmodel, randomness="different")
    self._warm_up()

  def step(self, x, y):
    self.opt.zero_grad(set_to_none=True)
    loss = stacked_loss(self.torch, self.forward(self.params, self.buffers, x), y)
    loss.backward()
    self.opt.step()
    return loss


def torch_mlp(torch, depth, width, in_dim, classes):
  """torch.nn MLP-L-H with jaxdepth's 'kaiming' init (He normal, zero bias)."""
  nn = torch.nn
  layers, d_in = [], in_dim
  for _ in range(depth):
    lin = nn.Linear(d_in, width)
    nn.init.normal_(lin.weight, std=math.sqrt(2.0 / d_in))
    nn.init.zeros_(lin.bias)
    layers += [lin, nn.BatchNorm1d(width), nn.ReLU()]
    d_in = width
  out = nn.Linear(d_in, classes)
  nn.init.normal_(out.weight, std=math.sqrt(1.0 / d_in))
  nn.init.zeros_(out.bias)
  layers.append(out)
  return nn.Sequential(*layers)


class TorchLoop:
  """The usual research loop: one seed after another, torch.nn + torch.optim.SGD."""

  def __init__(self, spec):
    import numpy as np
    import torch
    self.torch = torch
    torch.set_num_threads(spec["threads"])
    d = _load_npz(spec["data"])
    self.x = torch.from_numpy(np.ascontiguousarray(d["x_train"].reshape(len(d["x_train"]), -1)))
    self.y = torch.from_numpy(d["y_train"].astype(np.int64))
    self.spec = spec
    self.spe = len(self.x) // spec["batch"]
    t0 = time.perf_counter()
    self.run_seed(0, 1)
    self.first_epoch_s = time.perf_counter() - t0

  def ready(self):
    return {"warmup_one_seed_epoch_s": self.first_epoch_s,
            "threads": self.torch.get_num_threads(), "torch": self.torch.__version__}

  def run_seed(self, seed, epochs):
    torch, s = self.torch, self.spec
    torch.manual_seed(seed)
    net = torch_mlp(torch, s["depth"], s["width"], self.x.shape[1], 10)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=s["lr"], momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, b = len(self.x), s["batch"]
    for _ in range(epochs):
      perm = torch.randperm(n)
      for i in range(self.spe):
        idx = perm[i * b:(i + 1) * b]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(self.x[idx]), self.y[idx])
        loss.backward()
        opt.step()
    return float(loss.detach())

  def run(self, epochs):
    t0 = time.perf_counter()
    losses = [self.run_seed(g, epochs) for g in range(self.spec["seeds"])]
    return {"seconds": time.perf_counter() - t0, "loss": sum(losses) / len(losses)}


class Gemm:
  """The machine's fp32 GEMM rate, all cores: numpy's BLAS and XLA (multi-threaded
  Eigen: this worker never calls devices.use_cpu_cores)."""

  def __init__(self, spec):
    import numpy as np
    self.n = spec["gemm_n"]
    rng = np.random.default_rng(0)
    self.a = rng.standard_normal((self.n, self.n), dtype=np.float32)
    self.b = rng.standard_normal((self.n, self.n), dtype=np.float32)
    self.use_jax = spec.get("gemm_jax", True)
    if self.use_jax:
      import jax
      import jax.numpy as jnp
      self.jax = jax
      self.ja, self.jb = jnp.asarray(self.a), jnp.asarray(self.b)
      self.jf = jax.jit(lambda a, b: a @ b)
      jax.block_until_ready(self.jf(self.ja, self.jb))
    self.a @ self.b

  def ready(self):
    import numpy as np
    cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else None
    blas = None
    try:
      blas = cfg["Build Dependencies"]["blas"]["name"]
    except (TypeError, KeyError):
      pass
    return {"n": self.n, "numpy_blas": blas}

  def run(self, epochs):
    flop = 2.0 * self.n ** 3
    reps = max(1, epochs)
    t0 = time.perf_counter()
    for _ in range(reps):
      self.a @ self.b
    np_s = (time.perf_counter() - t0) / reps
    out = {"numpy_gflops": flop / np_s / 1e9}
    if self.use_jax:
      t0 = time.perf_counter()
      for _ in range(reps):
        r = self.jf(self.ja, self.jb)
      self.jax.block_until_ready(r)
      jx_s = (time.perf_counter() - t0) / reps
      out["xla_gflops"] = flop / jx_s / 1e9
    out["gflops"] = max(v for k, v in out.items() if k.endswith("_gflops"))
    out["seconds"] = np_s + (jx_s if self.use_jax else 0.0)
    return out


WORKERS = {"jax": JaxWorker, "torch-stacked": TorchStacked,
           "torch-stacked-compile": TorchStacked, "torch-vmap": TorchVmap,
           "torch-loop": TorchLoop, "gemm": Gemm}


def worker_main(spec_json: str) -> None:
  spec = json.loads(spec_json)
  if spec["kind"] == "compile":
    _emit({"result": compile_worker(spec)})
    return
  w = WORKERS[spec["kind"]](spec)
  _emit({"ready": w.ready()})
  for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
      break
    if cmd[0] == "run":
      _emit(w.run(int(cmd[1])))
    elif cmd[0] == "analyze":
      _emit(w.analyze())


# ============================================================================= parent
class Proc:
  """One worker process; only one is ever computing at a time."""

  def __init__(self, name, spec, env, script=None):
    self.name, self.spec = name, spec
    script = os.path.abspath(script or __file__)  # another benchmark's workers: its file
    self.p = subprocess.Popen([sys.executable, script, "--worker",
                               json.dumps(spec)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    self.info = None

  def recv(self):
    for line in self.p.stdout:
      if line.startswith(PREFIX):
        return json.loads(line[len(PREFIX):])
      sys.stderr.write(f"[{self.name}] {line}")
    raise RuntimeError(f"worker {self.name} exited (rc {self.p.wait()})")

  def send(self, cmd):
    self.p.stdin.write(cmd + "\n")
    self.p.stdin.flush()
    return self.recv()

  def close(self):
    if self.p.poll() is None:
      try:
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
      except (BrokenPipeError, OSError):
        pass
      try:
        self.p.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self.p.kill()


def child_env(base_env, xla_flags=None):
  env = dict(base_env)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  # Device counts are the workers' own (jax_num_cpu_devices): drop an inherited
  # simulated-device flag (e.g. the test suite's 4 devices).
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  if not env["XLA_FLAGS"]:
    del env["XLA_FLAGS"]
  return env


def variants(args, use_torch: bool) -> list[tuple[str, dict, str | None]]:
  """(name, spec, XLA_FLAGS or None = inherit) of every timed variant."""
  out = []
  for n in args.jax_devices:
    out.append((f"jax-{n}", {"kind": "jax", "devices": n}, None))
  for i, v in enumerate(args.jax_variant):  # "DEVICES:XLA_FLAGS" (exploration)
    n, flags = v.split(":", 1)
    out.append((f"jax-{n}+{i}", {"kind": "jax", "devices": int(n)}, flags))
  if use_torch:
    for kind in args.torch_variants:
      for th in args.torch_threads:
        out.append((f"{kind}/{th}t", {"kind": kind, "threads": th}, None))
  if args.gemm:
    out.append(("gemm", {"kind": "gemm", "gemm_n": args.gemm_n,
                         "gemm_jax": not args.quick}, ""))
  return out


def throughput_point(width, args, data_path, base_env, use_torch) -> dict:
  depth, seeds = args.depth, args.seeds
  spe = args.num_train // args.batch
  steps = seeds * spe * args.epochs
  fps = matmul_flops_per_step(depth, width, 40, 10, args.batch)
  common_spec = {"depth": depth, "width": width, "seeds": seeds, "batch": args.batch,
                 "lr": args.lr, "analysis_batch": args.analysis_batch, "data": data_path}
  out = {"depth": depth, "width": width, "seeds": seeds, "steps_per_epoch": spe,
         "epochs_per_repeat": args.epochs, "steps_per_repeat": steps,
         "matmul_flop_per_seed_step": fps, "repeats": args.repeats,
         "load_before": loadavg(), "variants": {}}
  procs = []
  try:
    for name, spec, flags in variants(args, use_torch):
      print(f"  start {name}", flush=True)
      p = Proc(name, {**common_spec, **spec}, child_env(base_env, flags))
      p.info = p.recv()["ready"]  # set up + warm up, one worker at a time
      procs.append(p)
    reps = {p.name: [] for p in procs}
    an = {p.name: [] for p in procs if p.spec["kind"] == "jax"}
    loads = []
    for r in range(args.repeats):
      loads.append(loadavg())
      for p in procs:
        reps[p.name].append(p.send(f"run {args.gemm_reps if p.name == 'gemm' else args.epochs}"))
      for p in procs:
        if p.name in an:
          an[p.name].append(p.send("analyze")["seconds"])
      print(f"  repeat {r + 1}/{args.repeats} load {loads[-1]}", flush=True)
  finally:
    for p in procs:
      p.close()
  out["load_per_repeat"] = loads
  peak = None
  if "gemm" in reps:
    g = reps["gemm"]
    peak = statistics.median([x["gflops"] for x in g]) * 1e9
    out["gemm"] = {**procs[-1].info, "repeat_gflops": [x["gflops"] for x in g],
                   "numpy_gflops": [x["numpy_gflops"] for x in g],
                   "xla_gflops": [x.get("xla_gflops") for x in g],
                   "median_gflops": peak / 1e9}
  for p in procs:
    if p.name == "gemm":
      continue
    secs = [x["seconds"] for x in reps[p.name]]
    med = statistics.median(secs)
    v = {**p.info, "repeat_s": secs, "median_s": med, "steps_per_s": steps / med,
         "epoch_s": med / args.epochs, "final_loss": reps[p.name][-1]["loss"],
         "losses": [x["loss"] for x in reps[p.name]],
         "matmul_gflops": steps * fps / med / 1e9}
    if peak:
      v["gemm_fraction"] = steps * fps / med / peak
    if p.name in an:
      a = statistics.median(an[p.name])
      v["analysis"] = {"repeat_s": an[p.name], "median_s": a,
                       "analysis_over_epoch": a / v["epoch_s"],
                       "per_repeat": [t / (s / args.epochs) for t, s in zip(an[p.name], secs)]}
    out["variants"][p.name] = v
  jax_names = [n for n in out["variants"] if n.startswith("jax-")]
  torch_names = [n for n in out["variants"] if n.startswith("torch-")]
  best_j = max(jax_names, key=lambda n: out["variants"][n]["steps_per_s"])
  out["best_jax"] = best_j
  out["best_torch"] = out["speedup_best_jax_over_best_torch"] = None
  if torch_names:
    best_t = max(torch_names, key=lambda n: out["variants"][n]["steps_per_s"])
    out["best_torch"] = best_t
    jv, tv = out["variants"][best_j], out["variants"][best_t]
    out["speedup_best_jax_over_best_torch"] = jv["steps_per_s"] / tv["steps_per_s"]
    out["speedup_per_repeat"] = [t / j for j, t in zip(jv["repeat_s"], tv["repeat_s"])]
    out["ratios_vs_best_torch"] = {n: out["variants"][n]["steps_per_s"] / tv["steps_per_s"]
                                   for n in out["variants"]}
  out["load_after"] = loadavg()
  return out


def machine(base_env) -> dict:
  info = {"platform": platform.platform(), "python": platform.python_version(),
          "cpu_count": cpu_count()}
  try:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    for line in lscpu.splitlines():
      if line.startswith("Model name:"):
        info["cpu_model"] = line.split(":", 1)[1].strip()
  except (OSError, subprocess.SubprocessError):
    pass
  try:
    with open("/proc/meminfo") as f:
      info["ram_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
  except (OSError, ValueError, IndexError):
    pass
  info["xla_flags_env"] = base_env.get("XLA_FLAGS", "")
  return info


def print_summary(res: dict) -> None:
  print(f"\nload average start/end: {res['load_start']} / {res['load_end']}")
  for p in res["throughput"]:
    w = str(p["width"])
    print(f"MLP-{p['depth']}-{p['width']}, {p['seeds']} seeds "
          f"(load per repeat {[l[0] for l in p['load_per_repeat']]}):")
    if "gemm" in p:
      print(f"  gemm peak {p['gemm']['median_gflops']:.1f} GFLOP/s "
            f"(numpy {statistics.median(p['gemm']['numpy_gflops']):.1f}, xla "
            f"{statistics.median([x or 0 for x in p['gemm']['xla_gflops']]):.1f})")
    for n, v in p["variants"].items():
      line = f"  {n:28s} {v['steps_per_s']:7.0f} steps/s  {v['matmul_gflops']:6.1f} GFLOP/s"
      if "gemm_fraction" in v:
        line += f" ({100 * v['gemm_fraction']:.0f}% of peak)"
      if p.get("ratios_vs_best_torch"):
        line += f"  {p['ratios_vs_best_torch'][n]:.2f}x best torch"
      if "analysis" in v:
        line += f"  analysis {v['analysis']['analysis_over_epoch']:.2f} epochs"
      print(line + f"  loss {v['final_loss']:.3f}")
    if p["best_torch"]:
      t = TARGETS["speedup_vs_best_torch"].get(w)
      print(f"  best jax {p['best_jax']} / best torch {p['best_torch']}: "
            f"{p['speedup_best_jax_over_best_torch']:.2f}x"
            + (f" (target >= {t}x)" if t else ""))
  c = res.get("compile")
  if c:
    for d, r in c["by_depth"].items():
      print(f"compile depth {d}: lower {r['lower_s']:.2f} s + compile {r['compile_s']:.2f} s"
            f" = {r['total_s']:.2f} s")
    print(f"compile ratio depth {c['ratio_depths'][0]}/{c['ratio_depths'][1]}: "
          f"{c['ratio_deepest_over_shallowest']:.2f} (target <= {TARGETS['compile_ratio_max']})")
  if res.get("torch_skipped"):
    print(f"PyTorch baselines skipped: {res['torch_skipped']}")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
  p.add_argument("--json", default="", help="write all results to this JSON file")
  p.add_argument("--depth", type=int, default=8)
  p.add_argument("--widths", type=int, nargs="+", default=[64, 256])
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--num-train", type=int, default=4000)
  p.add_argument("--num-test", type=int, default=1000)
  p.add_argument("--epochs", type=int, default=2, help="epochs per timed repeat")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--jax-devices", type=int, nargs="+", default=None,
                 help="CPU device counts of the jax variants (default: 1 and cores)")
  p.add_argument("--jax-variant", action="append", default=[],
                 help="extra jax variant DEVICES:XLA_FLAGS (repeatable)")
  p.add_argument("--torch-variants", nargs="+",
                 default=["torch-stacked", "torch-stacked-compile", "torch-vmap",
                          "torch-loop"], choices=[k for k in WORKERS if k.startswith("torch")])
  p.add_argument("--torch-threads", type=int, nargs="+", default=None,
                 help="torch.set_num_threads settings, each a variant (default: cores)")
  p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
  p.add_argument("--no-gemm", dest="gemm", action="store_false")
  p.add_argument("--gemm-n", type=int, default=2048)
  p.add_argument("--gemm-reps", type=int, default=5, help="matmuls per gemm repeat")
  p.add_argument("--analysis-batch", type=int, default=1000)
  p.add_argument("--compile-depths", type=int, nargs="*", default=[4, 16, 64])
  p.add_argument("--compile-width", type=int, default=64)
  p.add_argument("--compile-repeats", type=int, default=2)
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  cores = cpu_count()
  if args.jax_devices is None:
    args.jax_devices = sorted({1, cores})
  if args.torch_threads is None:
    args.torch_threads = [cores]
  if args.quick:
    args.depth, args.seeds, args.widths = 3, 2, [16]
    args.num_train, args.num_test, args.batch = 256, 128, 64
    args.epochs, args.repeats = 1, 2
    args.jax_devices = [1, 2]
    args.torch_variants = [v for v in args.torch_variants if v != "torch-stacked-compile"]
    args.torch_threads = [1]
    args.gemm_n, args.gemm_reps = 256, 2
    args.compile_depths, args.compile_width, args.compile_repeats = [2, 3], 16, 1
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.worker is not None:
    worker_main(args.worker)
    return {}
  base_env = dict(os.environ)  # before anything imports jaxdepth (it sets XLA_FLAGS)
  use_torch, why = (False, "--no-torch") if args.no_torch else torch_available()
  if not use_torch:
    print(f"PyTorch baselines skipped: {why}", flush=True)
  res = {"args": vars(args), "machine": machine(base_env), "targets": TARGETS,
         "torch_skipped": None if use_torch else why, "load_start": loadavg()}
  import numpy as np

  from jaxdepth.data import embedded, subsample
  t0 = time.perf_counter()
  ds = subsample(embedded.mnist1d(args.num_train, args.num_test), args.num_train,
                 args.num_test)
  res["data"] = {"name": ds.name, "num_train": len(ds.x_train), "num_test": len(ds.x_test),
                 "generate_s": time.perf_counter() - t0}
  with tempfile.TemporaryDirectory() as tmp:
    data_path = os.path.join(tmp, "mnist1d.npz")
    np.savez(data_path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
             y_test=ds.y_test)
    res["throughput"] = []
    for w in args.widths:
      print(f"[throughput] MLP-{args.depth}-{w}, {args.seeds} seeds", flush=True)
      res["throughput"].append(throughput_point(w, args, data_path, base_env, use_torch))
    res["compile"] = None
    if args.compile_depths:
      print(f"[compile] depths {args.compile_depths}", flush=True)
      p = Proc("compile", {"kind": "compile", "depths": args.compile_depths,
                           "width": args.compile_width, "seeds": args.seeds,
                           "batch": args.batch, "lr": args.lr, "repeats": args.compile_repeats,
                           "data": data_path}, child_env(base_env))
      res["compile"] = p.recv()["result"]
      p.close()
  res["load_end"] = loadavg()
  if use_torch:
    import torch
    res["machine"]["torch"] = torch.__version__
  print_summary(res)
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
      json.dump(res, f, indent=1, default=float)
  return res


if __name__ == "__main__":
  main()
