"""GPU benchmark: jaxdepth's vmapped training program against stacked PyTorch ensembles
on one accelerator, in ONE run sized for a lent machine (under 6 minutes wall, every
JAX and torch.compile compile included).

  PYTHONPATH=. python3 benchmarks/gpu_bench.py --json /tmp/gpu_bench.json     # GPU box
  .venv/bin/python benchmarks/gpu_bench.py --quick --json /tmp/g.json          # CPU smoke

On the GPU box it needs jax (+ CUDA plugin), optax, orbax-checkpoint, absl-py (an optax
and orbax dependency), numpy and, for the baselines, torch; without torch the jax rows
still run. Expected wall time on one H100/H200: about 4-5 minutes, at most
--hard-limit-s (345 s); --quick on a 2-core CPU: 20-45 s.

What is timed. The jax side is jaxdepth's own training program: the epoch function
``jaxdepth train`` runs (``train.build_program(...).epoch``: all seeds vmapped, one
``lax.scan`` over the epoch's SGD steps, each seed its own data order, momentum 0.9,
coupled weight decay 5e-4, constant lr, BatchNorm in train mode), built from a small
attribute-dict config instead of an ml_collections ConfigDict, on synthetic data
(Gaussian inputs of the MNIST-1D / Fashion-MNIST shapes, 10 random classes: the speed
does not depend on the values), so neither ml-collections, mnist1d nor
tensorflow-datasets is needed. If ``jaxdepth.papers.minimal_depth.train`` cannot be
imported, the same epoch is built from jaxdepth's SGD module (``jaxdepth.papers.sgd``,
formerly ``jaxdepth.engine.sgd``) + ``jaxdepth.nets`` + optax as the trainer builds it
(recorded as ``program: sgd-fallback``; the
analysis row is then skipped). The PyTorch side runs in a worker process (a torch
crash or a hung compile cannot take the jax results with it) and mirrors
benchmarks/core_bench.py: every parameter stacked on a leading seed axis,
``torch.baddbmm``, per-seed batch-statistics BatchNorm, one SGD over the stacked
tensors (``fused=True`` where supported), eager and ``torch.compile``'d (loss forward +
backward); for CONV-L-H a grouped-conv ensemble (``groups = seeds``; BatchNorm2d over
seeds x channels is per-seed BN) and a per-seed loop.

Rows (GPU sizes; ``--quick`` shrinks all of them):
  gemm  measured fp32 GEMM peak: jnp.matmul 8192^3 at default precision (TF32 on
        Ampere and later) and at precision='highest' (true fp32); torch.mm with TF32
        on and off, for reference.
  1     MLP-10-1024 (784 inputs), 64 seeds, batch 128: steps/s, achieved matmul
        TFLOP/s, MFU against both measured peaks; jax (default and 'highest'
        precision) vs torch stacked eager (TF32 and fp32) and compiled (TF32).
  2     MLP-8-64 and MLP-8-256, 40 inputs, 4000 examples, 8 seeds (the CPU
        core-bench setting): jax vs torch stacked eager / compiled.
  3     CONV-4-32 and CONV-8-64 on 28x28x1, 1 and 4 seeds: jax (native XLA convs)
        vs torch grouped-conv ensemble (eager, compiled) and per-seed loop.
  4     seeds curve, MLP-10-1024, jax only: 1, 4, 16, 64, 256 seeds (until memory
        runs out): samples x seeds / s.
  5     per-layer analysis (``program.analyze``, the trainer's analysis) over one
        epoch, MLP-8-256 x 8 seeds (row 2's program).

Method. Warm-up (compile + at least one epoch) before timing; each row's variants are
timed in turn, repeat r of every variant before repeat r+1 (jax and torch
interleaved, never concurrent), median of --repeats (5) repeats; jax synchronizes
with block_until_ready, torch with torch.cuda.synchronize. Builds run one framework
at a time too (--overlap-builds lets the torch compiles overlap the jax ones, never a
timed run), so compile-time autotuning sees a quiet GPU. Steps/s counts optimizer
steps over all seeds ("seed-steps"); achieved FLOP/s counts the matmul/conv FLOPs of
a step (forward, every weight gradient, every input gradient but the first layer's);
MFU = achieved / measured GEMM peak (TF32 peak for default-precision / TF32 variants,
fp32 peak for 'highest' / fp32 ones). JAX's default fp32 matmul on a GPU is TF32;
PyTorch's eager default is full fp32, so the torch variants set TF32 explicitly and
the fair pairs are jax-default vs torch-tf32 and jax-highest vs torch-fp32.
Budget: torch.compile variants are skipped once fewer than --compile-min-left seconds
of --budget-s remain (and after the first compile failure or timeout), rows and seed
counts once too little remains for them; at --hard-limit-s a watchdog writes what was
measured and exits (rc 3). The JSON is rewritten after every row. JAX gets
XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 of the GPU memory (unless set), the torch worker
the rest. No timing thresholds are asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

T_START = time.monotonic()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
PREFIX = "@@gpu_bench "  # torch worker -> parent result lines
CLASSES = 10


# ============================================================================== FLOPs
def _step_flops(macs: list[int]) -> int:
  """Forward dots, every weight gradient, every input gradient but the first layer's."""
  return 2 * (sum(macs) + sum(macs) + sum(macs[1:]))


def matmul_flops_per_step(depth: int, width: int, in_dim: int, classes: int,
                          batch: int) -> int:
  """Matmul FLOPs of one SGD step of one seed of MLP-L-H (as core_bench's)."""
  dims = [in_dim] + [width] * depth + [classes]
  return _step_flops([batch * a * b for a, b in zip(dims[:-1], dims[1:])])


def conv_flops_per_step(depth: int, width: int, hw: tuple[int, int], in_ch: int,
                        classes: int, batch: int) -> int:
  """Conv + head matmul FLOPs of one SGD step of one seed of CONV-L-H: a 3x3/2 stem
  (padding 1), L-1 3x3/1 convs at the stem's output size, global pooling, a linear
  head (BN, ReLU and pooling not counted)."""
  ho, wo = ((n + 2 - 3) // 2 + 1 for n in hw)
  pix = batch * ho * wo
  macs = [pix * 9 * in_ch * width] + [pix * 9 * width * width] * (depth - 1)
  return _step_flops(macs + [batch * width * classes])


# ============================================================================= helpers
def elapsed() -> float:
  return time.monotonic() - T_START


def log(msg: str) -> None:
  print(f"[{elapsed():6.1f}s] {msg}", flush=True)


def med(xs):
  return statistics.median(xs) if xs else float("nan")


def short_error(e: BaseException) -> str:
  text = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
  return text[:400]


class Cfg(dict):
  """The config fields train.build_program reads, as attributes (no ml_collections)."""
  __getattr__ = dict.__getitem__


def jax_config(family, depth, width, seeds, batch, lr, analysis_batch, model=None) -> Cfg:
  return Cfg(family=family, depth=depth, width=width, batchnorm=True, init="kaiming",
             model=dict(model or {}), num_seeds=seeds, seed=0, label_noise=(0.0,),
             noise_mode="flip", epochs=1000, batch_size=batch, lr=lr, momentum=0.9,
             weight_decay=5e-4, warmup_epochs=0.0, schedule="constant", milestones=(),
             decay=1.0, eps=(0.01, 0.05, 0.1), analysis_batch=analysis_batch,
             rank_samples=512, augment=(), shard_runs=False, dataset="synthetic",
             data={})


def synthetic(in_shape, n_train, n_test, seed=0):
  """Gaussian inputs, uniform random labels, as jaxdepth's Dataset record."""
  import numpy as np

  from jaxdepth.data.base import Dataset
  rng = np.random.default_rng(seed)
  x = lambda n: rng.standard_normal((n, *in_shape), dtype=np.float32)
  y = lambda n: rng.integers(0, CLASSES, n).astype(np.int32)
  return Dataset(x(n_train), y(n_train), x(n_test), y(n_test), CLASSES, "synthetic")


# ============================================================================ jax side
def sgd_module():
  """jaxdepth's SGD segment module (moved from jaxdepth.engine to jaxdepth.papers)."""
  try:
    from jaxdepth.papers import sgd
  except ImportError:
    from jaxdepth.engine import sgd
  return sgd


def _fallback_program(cfg, ds):
  """train.build_program's training half from sgd + nets (no analysis)."""
  import jax
  import jax.numpy as jnp

  from jaxdepth import nets
  sgd = sgd_module()
  model = dict(family=cfg.family, depth=cfg.depth, width=cfg.width,
               batchnorm=cfg.batchnorm, init=cfg.init, **cfg.model)
  network = nets.build(model, ds.x_train.shape[1:], ds.num_classes)
  spe = ds.x_train.shape[0] // cfg.batch_size
  tx = sgd.make_optimizer(cfg, spe)
  y = jnp.asarray(ds.y_train)
  init = jax.jit(jax.vmap(lambda k: (sgd.init_state(network, tx, k.init), y,
                                     jnp.zeros(y.shape, bool))))
  epoch = jax.jit(jax.vmap(sgd.make_epoch(network, tx, cfg.batch_size, spe),
                           in_axes=(0, 0, 0, None, None)), donate_argnums=0)

  class Prog:
    pass
  p = Prog()
  p.network, p.init, p.epoch, p.analyze, p.steps_per_epoch = network, init, epoch, None, spe
  return p


class JaxVariant:
  """jaxdepth's compiled epoch program for all seeds of one (model, precision)."""

  def __init__(self, name, cfg, ds, precision=None):
    import jax
    import jax.numpy as jnp
    self.jax, self.name, self.precision = jax, name, precision
    self.seeds = cfg.num_seeds
    t0 = time.perf_counter()
    with self.ctx():
      try:
        from jaxdepth.papers.minimal_depth import train
        self.prog = train.build_program(cfg, ds, cfg.depth, cfg.width)
        keys = train.make_keys(cfg.seed, train.run_grid(cfg))
        self.kind = "train.build_program"
      except ImportError as e:  # trainer module unavailable: the same epoch from sgd
        sgd = sgd_module()
        self.prog = _fallback_program(cfg, ds)
        k = jax.random.split(jax.random.key(cfg.seed), 4 * cfg.num_seeds)
        keys = sgd.RunKeys(*k.reshape(4, cfg.num_seeds))
        self.kind = f"sgd-fallback ({short_error(e)})"
      self.keys = keys
      self.state, self.labels, self.chosen = self.prog.init(keys)
      self.x = jnp.asarray(ds.x_train)
      jax.block_until_ready((self.state, self.labels, self.x))
    self.spe = self.prog.steps_per_epoch
    self.build_s = time.perf_counter() - t0
    self.epoch_idx = 0
    self.first_epoch_s = self.run(1)["seconds"]  # compile + one epoch
    self.run(1)

  def ctx(self):
    if self.precision:
      return self.jax.default_matmul_precision(self.precision)
    return contextlib.nullcontext()

  def run(self, epochs):
    import numpy as np
    jax = self.jax
    with self.ctx():
      jax.block_until_ready(self.state)
      t0 = time.perf_counter()
      for _ in range(epochs):
        self.state, loss = self.prog.epoch(self.state, self.labels, self.keys,
                                           self.epoch_idx, self.x)
        self.epoch_idx += 1
      jax.block_until_ready((self.state, loss))
      dt = time.perf_counter() - t0
    return {"seconds": dt, "loss": float(np.mean(np.asarray(loss["loss"])))}

  def analyze(self):
    with self.ctx():
      self.jax.block_until_ready(self.state)
      t0 = time.perf_counter()
      out = self.prog.analyze(self.state, self.labels, self.chosen)  # host results
      self.jax.block_until_ready(out)
      return time.perf_counter() - t0

  def info(self):
    return {"program": self.kind, "build_init_s": self.build_s,
            "first_epoch_s": self.first_epoch_s, "steps_per_epoch": self.spe,
            "precision": self.precision or "default"}


class JaxGemm:
  def __init__(self, n):
    import jax
    import jax.numpy as jnp
    self.jax, self.n = jax, n
    ka, kb = jax.random.split(jax.random.key(0))
    self.a = jax.random.normal(ka, (n, n), jnp.float32)
    self.b = jax.random.normal(kb, (n, n), jnp.float32)
    hi = jax.lax.Precision.HIGHEST
    self.fns = {"default": jax.jit(lambda a, b: a @ b),
                "highest": jax.jit(lambda a, b: jnp.matmul(a, b, precision=hi))}
    for f in self.fns.values():
      jax.block_until_ready(f(self.a, self.b))

  def run(self, which, reps):
    f = self.fns[which]
    t0 = time.perf_counter()
    for _ in range(reps):
      out = f(self.a, self.b)
    self.jax.block_until_ready(out)
    return 2.0 * self.n ** 3 * reps / (time.perf_counter() - t0) / 1e12


# ========================================================================== torch side
def set_tf32(torch, on: bool) -> None:
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
      torch.backends.cuda.matmul.allow_tf32 = on
      torch.backends.cudnn.allow_tf32 = on
    except Exception:  # newer API only
      torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
      torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"


class StackedMLP:
  """core_bench.StackedMLP on a device: MLP-L-H for S seeds, parameters stacked on a
  leading seed axis, baddbmm, per-seed train-mode BatchNorm (running statistics
  updated), ReLU, linear read-out; He-normal weights, zero biases."""

  def __init__(self, torch, seeds, depth, width, in_dim, classes, generator, device):
    self.torch = torch
    dims = [in_dim] + [width] * depth + [classes]
    self.weights, self.biases, self.scales, self.shifts, self.running = [], [], [], [], []
    dev = lambda t: t.to(device)
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
      std = math.sqrt((2.0 if i < depth else 1.0) / a)
      self.weights.append(dev(torch.randn(seeds, a, b, generator=generator) * std))
      self.biases.append(dev(torch.zeros(seeds, 1, b)))
      if i < depth:
        self.scales.append(dev(torch.ones(seeds, 1, b)))
        self.shifts.append(dev(torch.zeros(seeds, 1, b)))
        self.running.append((dev(torch.zeros(seeds, 1, b)), dev(torch.ones(seeds, 1, b))))
    for p in self.parameters():
      p.requires_grad_(True)

  def parameters(self):
    return self.weights + self.biases + self.scales + self.shifts

  def __call__(self, x_SxBxI):
    torch = self.torch
    h = x_SxBxI.reshape(x_SxBxI.shape[0], x_SxBxI.shape[1], -1)
    depth = len(self.scales)
    for i in range(depth):
      h = torch.baddbmm(self.biases[i], h, self.weights[i])
      mean = h.mean(1, keepdim=True)
      var = h.var(1, unbiased=False, keepdim=True)
      with torch.no_grad():
        n = h.shape[1]
        rm, rv = self.running[i]
        rm.mul_(0.9).add_(mean.detach(), alpha=0.1)
        rv.mul_(0.9).add_(var.detach() * (n / (n - 1)), alpha=0.1)
      h = torch.relu((h - mean) * torch.rsqrt(var + 1e-5) * self.scales[i] + self.shifts[i])
    return torch.baddbmm(self.biases[depth], h, self.weights[depth])


class GroupedConv:
  """CONV-L-H for S seeds as one network: seed s owns input channels [s*Cin, (s+1)*Cin)
  and feature channels [s*H, (s+1)*H); every conv has groups=S (no cross-seed
  weights), BatchNorm2d over the S*H channels is per-seed BN, global average pooling,
  per-seed linear head (baddbmm). S=1 is the plain torch.nn CONV-L-H."""

  def __init__(self, torch, seeds, depth, width, in_ch, classes, generator, device):
    nn = torch.nn
    self.torch, self.S, self.H = torch, seeds, width
    layers, c = [], in_ch
    for i in range(depth):
      conv = nn.Conv2d(seeds * c, seeds * width, 3, 2 if i == 0 else 1, 1, groups=seeds,
                       bias=False)
      with torch.no_grad():
        conv.weight.normal_(0.0, math.sqrt(2.0 / (9 * c)), generator=generator)
      layers += [conv, nn.BatchNorm2d(seeds * width), nn.ReLU()]
      c = width
    self.body = nn.Sequential(*layers).to(device).train()
    w = torch.randn(seeds, width, classes, generator=generator) * math.sqrt(1.0 / width)
    self.head_w = w.to(device).requires_grad_(True)
    self.head_b = torch.zeros(seeds, 1, classes, device=device, requires_grad=True)

  def parameters(self):
    return [*self.body.parameters(), self.head_w, self.head_b]

  def __call__(self, x_SxBxCxHxW):
    s, b, c, hh, ww = x_SxBxCxHxW.shape
    x = x_SxBxCxHxW.transpose(0, 1).reshape(b, s * c, hh, ww)
    z = self.body(x).mean((2, 3)).reshape(b, s, self.H).transpose(0, 1)  # (S, B, H)
    return self.torch.baddbmm(self.head_b, z, self.head_w)


def stacked_loss(torch, logits_SxBxC, y_SxB):
  """Sum over seeds of each seed's mean cross-entropy."""
  s, b, c = logits_SxBxC.shape
  return torch.nn.functional.cross_entropy(logits_SxBxC.reshape(s * b, c),
                                           y_SxB.reshape(s * b), reduction="sum") / b


class TorchVariant:
  """One timed PyTorch ensemble: data on the device, one data order per seed (a fresh
  permutation per epoch, as the jax program), S seeds per optimizer step."""

  def __init__(self, torch, device, spec):
    self.torch, self.device, self.spec = torch, device, spec
    S, B, n = spec["seeds"], spec["batch"], spec["n_train"]
    self.S, self.B, self.n, self.spe = S, B, n, n // B
    self.precision = spec.get("precision", "tf32")
    g = torch.Generator().manual_seed(0)
    in_shape = spec["in_shape"]
    if spec["model"] == "conv":
      hh, ww, c = in_shape
      x = torch.randn(n, c, hh, ww, generator=g)
    else:
      x = torch.randn(n, math.prod(in_shape), generator=g)
    self.x = x.to(device)
    self.y = torch.randint(0, CLASSES, (n,), generator=g).to(device)
    self.order = torch.Generator(device=device).manual_seed(1)
    self._tf32(self.precision)
    d, w = spec["depth"], spec["width"]
    if spec["model"] == "mlp":
      nets = [StackedMLP(torch, S, d, w, math.prod(in_shape), CLASSES, g, device)]
    elif spec["impl"] == "grouped":
      nets = [GroupedConv(torch, S, d, w, in_shape[-1], CLASSES, g, device)]
    else:  # "loop": one plain network + optimizer per seed
      nets = [GroupedConv(torch, 1, d, w, in_shape[-1], CLASSES, g, device)
              for _ in range(S)]
    self.members = []
    self.sgd = "fused"
    if spec.get("compile"):
      # Every variant's loss function shares one code object: without a reset, dynamo
      # would treat this build as a recompile of the previous variant's and mark the
      # shapes dynamic ('automatic dynamic'); dynamic=False keeps every graph static.
      torch._dynamo.reset()
    for net in nets:
      kw = dict(lr=spec["lr"], momentum=0.9, weight_decay=5e-4)
      try:
        opt = torch.optim.SGD(net.parameters(), fused=True, **kw)
      except Exception:
        opt = torch.optim.SGD(net.parameters(), **kw)
        self.sgd = "default"
      fn = (lambda net: lambda x, y: stacked_loss(torch, net(x), y))(net)  # noqa: B023
      if spec.get("compile"):
        fn = torch.compile(fn, dynamic=False)
      self.members.append((net, opt, fn))
    self.pos = 0
    t0 = time.perf_counter()
    self.run(2)  # compiles (first call) and recompiles (second) happen here
    self.first_steps_s = time.perf_counter() - t0
    self.run(self.spe)
    self.warmup_s = time.perf_counter() - t0

  def _tf32(self, precision):
    if self.device.type == "cuda":
      set_tf32(self.torch, precision == "tf32")

  def _sync(self):
    if self.device.type == "cuda":
      self.torch.cuda.synchronize()

  def run(self, steps, precision=None):
    torch = self.torch
    self._tf32(precision or self.precision)
    self._sync()
    t0 = time.perf_counter()
    B = self.B
    for _ in range(steps):
      i = self.pos % self.spe
      if i == 0:
        self.perm = torch.argsort(torch.rand(self.S, self.n, device=self.device,
                                             generator=self.order), dim=1)
      self.pos += 1
      idx = self.perm[:, i * B:(i + 1) * B]  # (S, B)
      xb, yb = self.x[idx], self.y[idx]
      for k, (_, opt, fn) in enumerate(self.members):
        xs, ys = (xb, yb) if len(self.members) == 1 else (xb[k:k + 1], yb[k:k + 1])
        opt.zero_grad(set_to_none=True)
        loss = fn(xs, ys)
        loss.backward()
        opt.step()
    self._sync()
    dt = time.perf_counter() - t0
    return {"seconds": dt, "loss": float(loss.detach()) / (self.S if len(self.members) == 1
                                                           else 1)}

  def ready(self):
    return {"first_steps_s": self.first_steps_s, "warmup_s": self.warmup_s, "sgd": self.sgd,
            "steps_per_epoch": self.spe}


def torch_gemm(torch, device, n, reps):
  a = torch.randn(n, n, device=device)
  b = torch.randn(n, n, device=device)
  out = {}
  for name, on in (("tf32", True), ("fp32", False)):
    if device.type == "cuda":
      set_tf32(torch, on)
    elif on:
      continue
    c = a @ b
    if device.type == "cuda":
      torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
      c = a @ b
    if device.type == "cuda":
      torch.cuda.synchronize()
    out[name] = 2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12
  del c
  return out


def torch_worker_main(opts: dict) -> None:
  def emit(obj):
    sys.stdout.write(PREFIX + json.dumps(obj, default=float) + "\n")
    sys.stdout.flush()

  try:
    import torch
  except Exception as e:  # ImportError or a broken install
    emit({"ok": False, "error": f"torch not importable ({short_error(e)})"})
    return
  want = opts.get("device", "auto")
  if want == "auto":
    want = "cuda" if torch.cuda.is_available() else "cpu"
  device = torch.device(want)
  if opts.get("threads"):
    torch.set_num_threads(opts["threads"])
  torch.backends.cudnn.benchmark = True
  info = {"torch": torch.__version__, "device": str(device),
          "threads": torch.get_num_threads()}
  if device.type == "cuda":
    torch.zeros(1, device=device)  # CUDA context
    info.update(device_name=torch.cuda.get_device_name(device),
                cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                capability=list(torch.cuda.get_device_capability(device)))
  emit({"ok": True, "info": info})
  variants = {}
  for line in sys.stdin:
    if not line.strip():
      continue
    cmd = json.loads(line)
    op = cmd["op"]
    if op == "quit":
      break
    try:
      if op == "build":
        variants[cmd["name"]] = TorchVariant(torch, device, cmd["spec"])
        out = variants[cmd["name"]].ready()
      elif op == "run":
        out = variants[cmd["name"]].run(cmd["steps"], cmd.get("precision"))
      elif op == "free":
        variants.pop(cmd["name"], None)
        out = {}
      elif op == "gemm":
        out = torch_gemm(torch, device, cmd["n"], cmd["reps"])
      else:
        raise ValueError(f"unknown op {op!r}")
      emit({"ok": True, **out})
    except Exception as e:
      if op == "build":
        variants.pop(cmd["name"], None)
      emit({"ok": False, "error": short_error(e), "trace": traceback.format_exc()[-1500:]})
    if op in ("free", "build"):
      gc.collect()
      if device.type == "cuda":
        torch.cuda.empty_cache()


class TorchError(RuntimeError):
  pass


class TorchClient:
  """The parent's handle on the torch worker process (started at most twice)."""

  def __init__(self, opts):
    self.opts, self.p, self.q, self.info, self.error, self.starts = opts, None, None, None, None, 0

  def start(self):
    self.starts += 1
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    self.p = subprocess.Popen(
        [sys.executable, "-u", os.path.abspath(__file__), "--torch-worker",
         json.dumps(self.opts)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=ROOT, env=env, start_new_session=True)
    self.q = queue.Queue()
    threading.Thread(target=self._reader, args=(self.p, self.q), daemon=True).start()
    self.info = None

  @staticmethod
  def _reader(p, q):
    for line in p.stdout:
      if line.startswith(PREFIX):
        q.put(json.loads(line[len(PREFIX):]))
      else:
        print(f"  [torch] {line.rstrip()}", flush=True)
    q.put(None)

  def ready(self, timeout=180.0) -> bool:
    """Start (or restart once after a kill) and wait for the worker's info line."""
    if self.error and self.error.startswith("torch not importable"):
      return False
    if self.p is None or self.p.poll() is not None:
      if self.starts >= 2:
        return False
      self.start()
    if self.info is None:
      try:
        r = self.recv(timeout)
      except TorchError as e:
        self.error = str(e)
        return False
      if not r.get("ok"):
        self.error = r.get("error")
        self.kill()
        return False
      self.info = r["info"]
    return True

  def send(self, cmd):
    try:
      self.p.stdin.write(json.dumps(cmd) + "\n")
      self.p.stdin.flush()
    except (BrokenPipeError, OSError, AttributeError) as e:
      raise TorchError(f"torch worker gone ({short_error(e)})") from e

  def recv(self, timeout):
    try:
      r = self.q.get(timeout=max(1.0, timeout))
    except queue.Empty:
      self.kill()
      raise TorchError(f"torch worker timed out after {timeout:.0f} s (killed)") from None
    if r is None:
      rc = self.p.wait()
      raise TorchError(f"torch worker exited (rc {rc})")
    return r

  def call(self, cmd, timeout):
    self.send(cmd)
    r = self.recv(timeout)
    if not r.get("ok"):
      raise TorchError(r.get("error", "failed"))
    return r

  def kill(self):
    if self.p is not None and self.p.poll() is None:
      with contextlib.suppress(OSError):
        os.killpg(self.p.pid, signal.SIGKILL)
      with contextlib.suppress(Exception):
        self.p.wait(timeout=10)

  def close(self):
    if self.p is None:
      return
    if self.p.poll() is None:
      with contextlib.suppress(Exception):
        self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.p.stdin.close()
      try:
        self.p.wait(timeout=15)
      except subprocess.TimeoutExpired:
        pass
    self.kill()


# ============================================================================== rows
class Bench:
  """Shared state of one benchmark run: args, results, torch worker, budget."""

  def __init__(self, args):
    self.a = args
    self.res = {"args": vars(args), "machine": {}, "rows": {}, "notes": [],
                "torch_skipped": None, "peak_tflops": {}}
    self.torch = None
    self.lock = threading.Lock()
    self.jax_kept = {}
    self.compile_broken = None  # the first torch.compile failure turns compiling off

  # ---------------------------------------------------------------- budget, output
  def left(self) -> float:
    return self.a.budget_s - elapsed()

  def allow_compile(self) -> bool:
    if self.a.torch_compile == "off" or (self.a.torch_compile == "auto" and self.a.quick):
      return False
    if self.compile_broken:
      return False
    return self.left() > self.a.compile_min_left

  def note(self, text):
    log(f"note: {text}")
    self.res["notes"].append(text)

  def write_json(self):
    if not self.a.json:
      return
    with self.lock:
      self.res["elapsed_s"] = elapsed()
      text = json.dumps(self.res, indent=1, default=float)
    path = os.path.abspath(self.a.json)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)

  # ------------------------------------------------------------------------ torch
  def torch_ok(self) -> bool:
    if self.torch is None:
      return False
    ok = self.torch.ready()
    if ok and self.torch.info.get("device") == "cpu" and self.res["machine"].get(
        "backend", "cpu") != "cpu" and self.a.torch_device == "auto":
      self.torch.error = "torch sees no CUDA device while jax runs on the accelerator"
      self.torch.kill()
      self.torch.starts = 99
      ok = False
    if not ok and self.res["torch_skipped"] is None:
      self.res["torch_skipped"] = self.torch.error or "torch worker unavailable"
      self.note(f"PyTorch baselines skipped: {self.res['torch_skipped']}")
    if ok:
      self.res["machine"]["torch"] = self.torch.info
    return ok

  # ------------------------------------------------------------------------- gemm
  def row_gemm(self):
    a = self.a
    out = {"n": a.gemm_n, "reps": a.gemm_reps}
    g = JaxGemm(a.gemm_n)
    use_torch = self.torch_ok()
    reps = {"jax_default": [], "jax_highest": [], "torch_tf32": [], "torch_fp32": []}
    for _ in range(a.repeats):
      reps["jax_default"].append(g.run("default", a.gemm_reps))
      reps["jax_highest"].append(g.run("highest", max(1, a.gemm_reps // 4)))
      if use_torch:
        try:
          t = self.torch.call({"op": "gemm", "n": a.gemm_n, "reps": a.gemm_reps}, 120)
          for k in ("tf32", "fp32"):
            if k in t:
              reps[f"torch_{k}"].append(t[k])
        except TorchError as e:
          out["torch_error"] = str(e)
          use_torch = False
    del g
    for k, v in reps.items():
      if v:
        out[f"{k}_tflops"] = med(v)
        out[f"{k}_repeat_tflops"] = v
    self.res["peak_tflops"] = {"default": out["jax_default_tflops"],
                               "highest": out["jax_highest_tflops"]}
    log(f"gemm {a.gemm_n}^3: jax default {out['jax_default_tflops']:.1f} TFLOP/s, "
        f"highest {out['jax_highest_tflops']:.1f}"
        + (f"; torch tf32 {out.get('torch_tf32_tflops', float('nan')):.1f}, fp32 "
           f"{out.get('torch_fp32_tflops', float('nan')):.1f}" if use_torch else ""))
    return out

  # ------------------------------------------------------------ comparison rows
  def compare(self, title, setting, jax_specs, torch_specs, epochs, flops_per_seed_step,
              keep=None):
    """Time jax variants (name, cfg, ds, precision) against torch variants (name, spec,
    run-precision list), interleaved; returns the row dict."""
    a = self.a
    row = {"title": title, **setting, "epochs_per_repeat": epochs,
           "flop_per_seed_step": flops_per_seed_step, "variants": {}, "errors": {}}
    seeds = setting["seeds"]
    timed = []  # (label, kind, obj or name, precision tag)
    # 1./2. jax builds, and torch builds after them (or at the same time with
    # --overlap-builds: faster, but XLA's compile-time autotuning of GEMMs and convs
    # and cudnn.benchmark would then time their candidates on a shared GPU)
    sent = []

    def send_torch_builds():
      if not (torch_specs and self.torch_ok()):
        return
      for name, spec, _ in torch_specs:
        if spec.get("compile") and not self.allow_compile():
          row["errors"][name] = "skipped (budget or --torch-compile)"
          continue
        try:
          self.torch.send({"op": "build", "name": name, "spec": spec})
          sent.append((name, spec))
        except TorchError as e:
          row["errors"][name] = str(e)

    if a.overlap_builds:
      send_torch_builds()
    for name, cfg, ds, precision in jax_specs:
      try:
        log(f"  build {name}")
        v = JaxVariant(name, cfg, ds, precision)
        row["variants"][name] = {**v.info(), "framework": "jax",
                                 "tag": "full" if precision == "highest" else "fast"}
        timed.append((name, "jax", v, None))
      except Exception as e:
        row["errors"][name] = short_error(e)
        log(f"  {name} failed: {row['errors'][name]}")
    if not a.overlap_builds:
      send_torch_builds()
    # 3. torch builds finish; a worker killed by a hung compile is restarted once and
    # the row's eager variants rebuilt
    spe = self._collect(row, sent, torch_specs, timed)
    if sent and self.torch.p is not None and self.torch.p.poll() is not None:
      timed[:] = [t for t in timed if t[1] != "torch"]
      for label in [n for n, v in row["variants"].items() if v["framework"] == "torch"]:
        row["variants"].pop(label)
      redo = [(n, sp) for n, sp in sent if not sp.get("compile")]
      sent = []
      if redo and self.torch_ok():
        self.note(f"{title}: torch worker restarted; eager variants rebuilt")
        for name, spec in redo:
          row["errors"].pop(name, None)
          with contextlib.suppress(TorchError):
            self.torch.send({"op": "build", "name": name, "spec": spec})
            sent.append((name, spec))
        spe = self._collect(row, sent, torch_specs, timed) or spe
    # 4. interleaved repeats
    jax_spe = {n: v.spe for n, k, v, _ in timed if k == "jax"}
    spe = next(iter(jax_spe.values()), spe)
    if spe is None:
      raise RuntimeError("no variant could be built: " + json.dumps(row["errors"]))
    steps = epochs * spe  # program steps per repeat (each covers every seed)
    reps = {label: [] for label, *_ in timed}
    losses = {label: [] for label, *_ in timed}
    for r in range(a.repeats):
      if r >= 3 and elapsed() > a.hard_limit_s - 30:
        self.note(f"{title}: stopped after {r} repeats (hard limit near)")
        break
      for label, kind, obj, prec in timed:
        if label in row["errors"]:
          continue
        try:
          if kind == "jax":
            out = obj.run(epochs)
          else:
            out = self.torch.call({"op": "run", "name": obj, "steps": steps,
                                   "precision": prec}, 120)
          reps[label].append(out["seconds"])
          losses[label].append(out["loss"])
        except Exception as e:
          row["errors"][label] = short_error(e)
          log(f"  {label} failed: {row['errors'][label]}")
    # 5. clean up
    for name, _ in sent:
      with contextlib.suppress(TorchError):
        if self.torch.p is not None and self.torch.p.poll() is None:
          self.torch.call({"op": "free", "name": name}, 60)
    for label, kind, obj, _ in timed:
      if kind == "jax" and keep == label:
        self.jax_kept[label] = obj
    timed = None
    gc.collect()
    # 6. numbers
    peak = self.res.get("peak_tflops") or {}
    row.update(steps_per_epoch=spe, steps_per_repeat=steps, seed_steps_per_repeat=steps * seeds)
    for label, secs in reps.items():
      v = row["variants"][label]
      if not secs or label in row["errors"]:
        row["variants"].pop(label)
        continue
      m = med(secs)
      v.update(repeat_s=secs, median_s=m, seed_steps_per_s=steps * seeds / m,
               program_steps_per_s=steps / m,
               samples_per_s=steps * seeds * setting["batch"] / m,
               tflops=steps * seeds * flops_per_seed_step / m / 1e12,
               final_loss=losses[label][-1])
      pk = peak.get("highest" if v["tag"] == "full" else "default")
      if pk:
        v["mfu"] = v["tflops"] / pk
      if peak.get("default"):
        v["fraction_of_tf32_peak"] = v["tflops"] / peak["default"]
      if peak.get("highest"):
        v["fraction_of_fp32_peak"] = v["tflops"] / peak["highest"]
    for tag in ("fast", "full"):
      js = [n for n, v in row["variants"].items() if v["framework"] == "jax" and v["tag"] == tag]
      ts = [n for n, v in row["variants"].items() if v["framework"] == "torch"
            and v["tag"] == tag]
      if js and ts:
        j = js[0]
        t = max(ts, key=lambda n: row["variants"][n]["seed_steps_per_s"])
        jv, tv = row["variants"][j], row["variants"][t]
        row[f"ratio_{tag}"] = {
            "jax": j, "best_torch": t,
            "jax_over_best_torch": jv["seed_steps_per_s"] / tv["seed_steps_per_s"],
            "per_repeat": [ts_ / js_ for js_, ts_ in zip(jv["repeat_s"], tv["repeat_s"])]}
        for n in ts:
          row["variants"][n]["jax_over_this"] = (jv["seed_steps_per_s"]
                                                 / row["variants"][n]["seed_steps_per_s"])
    for n, v in row["variants"].items():
      log(f"  {n:28s} {v['seed_steps_per_s']:10.0f} seed-steps/s  {v['tflops']:7.2f} TFLOP/s"
          + (f"  MFU {100 * v['mfu']:.1f}%" if "mfu" in v else "")
          + (f"  jax/this {v['jax_over_this']:.2f}x" if "jax_over_this" in v else ""))
    return row

  def _collect(self, row, sent, torch_specs, timed):
    """Receive the build replies of ``sent`` (in order); returns steps per epoch."""
    a, spe = self.a, None
    for name, spec in sent:
      timeout = min(a.compile_timeout if spec.get("compile") else 120,
                    max(30.0, a.hard_limit_s - elapsed() - 20))
      try:
        log(f"  wait for torch {name}")
        r = self.torch.recv(timeout)
        if not r.get("ok"):
          raise TorchError(r.get("error", "failed"))
        spe = r["steps_per_epoch"]
        for pname, spec2, precs in torch_specs:
          if pname != name:
            continue
          for p in precs:
            label = name if len(precs) == 1 else f"{name}-{p}"
            row["variants"][label] = {k: r[k] for k in ("first_steps_s", "warmup_s", "sgd")}
            row["variants"][label].update(framework="torch", precision=p,
                                          tag="full" if p == "fp32" else "fast",
                                          compiled=bool(spec2.get("compile")),
                                          impl=spec2.get("impl", "stacked"))
            timed.append((label, "torch", name, p))
      except TorchError as e:
        row["errors"][name] = str(e)
        log(f"  torch {name} failed: {e}")
        if spec.get("compile") and not self.compile_broken:
          self.compile_broken = str(e)
          self.note(f"torch.compile failed ({e}); no further compiled variants")
    return spe

  def mlp_row(self, title, depth, width, in_dim, seeds, batch, spe, n_test, epochs,
              with_full=False, keep=None):
    a = self.a
    n = batch * spe
    ds = synthetic((in_dim,), n, n_test)
    cfg = jax_config("mlp", depth, width, seeds, batch, a.lr, a.analysis_batch)
    jax_specs = [("jax", cfg, ds, None)]
    if with_full:
      jax_specs.append(("jax-highest", cfg, ds, "highest"))
    spec = {"model": "mlp", "depth": depth, "width": width, "in_shape": [in_dim],
            "seeds": seeds, "batch": batch, "n_train": n, "lr": a.lr, "precision": "tf32"}
    torch_specs = [("torch-eager", {**spec, "compile": False},
                    ["tf32", "fp32"] if with_full else ["tf32"]),
                   ("torch-compile", {**spec, "compile": True}, ["tf32"])]
    setting = {"model": f"MLP-{depth}-{width}", "depth": depth, "width": width,
               "in_dim": in_dim, "seeds": seeds, "batch": batch, "n_train": n}
    return self.compare(title, setting, jax_specs, torch_specs, epochs,
                        matmul_flops_per_step(depth, width, in_dim, CLASSES, batch),
                        keep=keep)

  def row1(self):
    a = self.a
    d, w, s = a.big_mlp
    return self.mlp_row(f"MLP-{d}-{w} x {s} seeds", d, w, a.big_in, s, a.batch, a.big_spe,
                        a.n_test, a.big_epochs, with_full=True)

  def row2(self):
    a = self.a
    out = {}
    for w in a.small_widths:
      log(f"[row 2] MLP-{a.small_depth}-{w} x {a.small_seeds} seeds")
      try:
        out[f"MLP-{a.small_depth}-{w}"] = self.mlp_row(
            f"MLP-{a.small_depth}-{w} x {a.small_seeds} seeds", a.small_depth, w, a.small_in,
            a.small_seeds, a.batch, a.small_n // a.batch, a.small_test, a.small_epochs,
            keep="jax" if w == max(a.small_widths) else None)
      except Exception as e:
        out[f"MLP-{a.small_depth}-{w}"] = {"error": short_error(e)}
        log(f"  failed: {short_error(e)}")
      self.res["rows"]["2_small_mlps"] = out
      self.write_json()
    return out

  def row3(self):
    a = self.a
    out = {}
    hw = tuple(a.conv_hw)
    for d, w in a.convs:
      for s in a.conv_seeds:
        key = f"CONV-{d}-{w} x {s}"
        if self.left() < 15:
          out[key] = {"error": "skipped (budget)"}
          continue
        log(f"[row 3] CONV-{d}-{w} x {s} seeds")
        try:
          n = a.batch * a.conv_spe
          ds = synthetic((*hw, 1), n, a.conv_test)
          cfg = jax_config("conv", d, w, s, a.batch, a.lr, a.analysis_batch,
                           {"head": "gap", "conv_impl": "auto"})
          spec = {"model": "conv", "depth": d, "width": w, "in_shape": [*hw, 1], "seeds": s,
                  "batch": a.batch, "n_train": n, "lr": a.lr, "precision": "tf32"}
          torch_specs = [("torch-grouped", {**spec, "impl": "grouped"}, ["tf32"])]
          if s > 1:
            torch_specs.append(("torch-loop", {**spec, "impl": "loop"}, ["tf32"]))
          torch_specs.append(("torch-grouped-compile",
                              {**spec, "impl": "grouped", "compile": True}, ["tf32"]))
          setting = {"model": f"CONV-{d}-{w}", "depth": d, "width": w,
                     "in_shape": [*hw, 1], "seeds": s, "batch": a.batch, "n_train": n}
          out[key] = self.compare(key, setting, [("jax", cfg, ds, None)], torch_specs,
                                  a.conv_epochs,
                                  conv_flops_per_step(d, w, hw, 1, CLASSES, a.batch))
        except Exception as e:
          out[key] = {"error": short_error(e)}
          log(f"  failed: {short_error(e)}")
        self.res["rows"]["3_conv"] = out
        self.write_json()
    return out

  def row4(self):
    a = self.a
    d, w, _ = a.big_mlp
    n = a.batch * a.big_spe
    ds = synthetic((a.big_in,), n, a.n_test)
    flops = matmul_flops_per_step(d, w, a.big_in, CLASSES, a.batch)
    peak = self.res.get("peak_tflops", {}).get("default")
    out = {"model": f"MLP-{d}-{w}", "in_dim": a.big_in, "batch": a.batch, "n_train": n,
           "flop_per_seed_step": flops, "points": {}}
    for s in a.curve_seeds:
      if self.left() < (40 if s >= 64 else 15):
        out["points"][str(s)] = {"error": "skipped (budget)"}
        continue
      log(f"[row 4] MLP-{d}-{w} x {s} seeds")
      v = None
      try:
        cfg = jax_config("mlp", d, w, s, a.batch, a.lr, a.analysis_batch)
        v = JaxVariant(f"jax-{s}", cfg, ds)
        secs = [v.run(a.curve_epochs)["seconds"] for _ in range(a.repeats)]
        m = med(secs)
        steps = a.curve_epochs * v.spe
        p = {**v.info(), "repeat_s": secs, "median_s": m, "seed_steps_per_s": steps * s / m,
             "samples_x_seeds_per_s": steps * s * a.batch / m,
             "tflops": steps * s * flops / m / 1e12}
        if peak:
          p["mfu"] = p["tflops"] / peak
        out["points"][str(s)] = p
        log(f"  {s:4d} seeds: {p['samples_x_seeds_per_s']:12.0f} samples*seeds/s  "
            f"{p['tflops']:.2f} TFLOP/s")
      except Exception as e:
        out["points"][str(s)] = {"error": short_error(e)}
        log(f"  {s} seeds failed: {short_error(e)}")
        if "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower():
          out["saturated"] = f"out of memory at {s} seeds"
          break
      finally:
        del v
        gc.collect()
      self.res["rows"]["4_seeds_curve"] = out
      self.write_json()
    pts = [(int(k), p["samples_x_seeds_per_s"]) for k, p in out["points"].items()
           if "samples_x_seeds_per_s" in p]
    if pts:
      best = max(pts, key=lambda t: t[1])
      out["best"] = {"seeds": best[0], "samples_x_seeds_per_s": best[1]}
    return out

  def row5(self):
    a = self.a
    v = self.jax_kept.pop("jax", None)
    if v is None:
      return {"error": "skipped: row 2's MLP-8-256 jax program is not available"}
    if v.prog.analyze is None:
      return {"error": "skipped: the trainer module (and its analyzer) is not importable"}
    out = {"model": f"MLP-{a.small_depth}-{max(a.small_widths)}", "seeds": v.seeds,
           "analysis_batch": a.analysis_batch, "steps_per_epoch": v.spe}
    out["first_analysis_s"] = v.analyze()  # compile + run
    ep, an = [], []
    for _ in range(a.repeats):
      ep.append(v.run(1)["seconds"])
      an.append(v.analyze())
    out.update(epoch_repeat_s=ep, analysis_repeat_s=an, epoch_s=med(ep),
               analysis_s=med(an), analysis_over_epoch=med(an) / med(ep),
               per_repeat=[x / y for x, y in zip(an, ep)])
    log(f"[row 5] analysis {1e3 * out['analysis_s']:.1f} ms / epoch "
        f"{1e3 * out['epoch_s']:.1f} ms = {out['analysis_over_epoch']:.2f} epochs")
    out["breakdown"] = self._row5_breakdown(v)
    log(f"[row 5] breakdown {out['breakdown']}")
    return out

  def _row5_breakdown(self, v):
    """Where an analysis' time goes: the device program (with the copy to the host)
    and the host finalize, with the Gram eigenvalues on the device or on the host."""
    try:
      from jaxdepth.measure import analysis
    except ImportError as e:
      return {"error": short_error(e)}
    orig, mode0, got = analysis.finalize, analysis.EIGVALSH_ON, {}

    def timed_finalize(out):
      v.jax.block_until_ready(out)
      t1 = time.perf_counter()
      got["device_s"].append(t1 - got["t0"])
      res = orig(out)
      got["finalize_s"].append(time.perf_counter() - t1)
      return res
    res = {}
    try:
      analysis.finalize = timed_finalize
      for mode in ("device", "host"):
        analysis.EIGVALSH_ON = mode
        got.update(device_s=[], finalize_s=[])
        for _ in range(self.a.repeats + 1):  # the first call warms this mode up
          with v.ctx():
            v.jax.block_until_ready(v.state)
            got["t0"] = time.perf_counter()
            v.prog.analyze(v.state, v.labels, v.chosen)
        res[f"eig_{mode}"] = {"total_s": med([d + f for d, f in zip(
            got["device_s"][1:], got["finalize_s"][1:])]),
            "device_s": med(got["device_s"][1:]), "finalize_s": med(got["finalize_s"][1:])}
    except Exception as e:  # a breakdown must not lose the row
      res["error"] = short_error(e)
    finally:
      analysis.finalize, analysis.EIGVALSH_ON = orig, mode0
    return res


# ============================================================================ output
def fmt(x, spec=".0f"):
  return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def markdown(res) -> str:
  lines = []
  m = res.get("machine", {})
  t = m.get("torch") or {}
  lines.append(f"\n## gpu_bench ({m.get('jax_device', '?')}; jax {m.get('jax', '?')}, "
               f"torch {t.get('torch', 'absent')} on {t.get('device', '-')}; "
               f"{res.get('elapsed_s', elapsed()):.0f} s)\n")
  g = res["rows"].get("gemm")
  if g and "error" not in g:
    lines.append("| GEMM peak (fp32 inputs) | TFLOP/s |")
    lines.append("|---|---|")
    for k, label in (("jax_default", "jnp.matmul, default precision (TF32 on a GPU)"),
                     ("jax_highest", "jnp.matmul, precision='highest' (fp32)"),
                     ("torch_tf32", "torch.mm, TF32 on"), ("torch_fp32", "torch.mm, TF32 off")):
      if f"{k}_tflops" in g:
        lines.append(f"| {label}, n={g['n']} | {g[f'{k}_tflops']:.1f} |")
    lines.append("")
  lines.append("| row | model | seeds | variant | seed-steps/s | samples/s | TFLOP/s | MFU | "
               "jax / this |")
  lines.append("|---|---|---|---|---|---|---|---|---|")

  def rows_of(key, row):
    if not isinstance(row, dict):
      return
    if "variants" not in row:
      if "error" in row:
        lines.append(f"| {key} | {row.get('title', '')} | | error: {row['error']} | | | | | |")
      return
    for n, v in row["variants"].items():
      name = n + (f" ({v['precision']})" if v.get("framework") == "jax" and
                  v.get("precision") != "default" else "")
      lines.append(f"| {key} | {row['model']} | {row['seeds']} | {name} | "
                   f"{fmt(v['seed_steps_per_s'])} | {fmt(v['samples_per_s'])} | "
                   f"{fmt(v['tflops'], '.2f')} | "
                   f"{fmt(100 * v['mfu'], '.1f') + '%' if 'mfu' in v else ''} | "
                   f"{fmt(v.get('jax_over_this'), '.2f')} |")
    for n, e in row.get("errors", {}).items():
      lines.append(f"| {key} | {row['model']} | {row['seeds']} | {n} | {e} | | | | |")

  rows = res["rows"]
  rows_of("1", rows.get("1_big_mlp"))
  for r in (rows.get("2_small_mlps") or {}).values():
    rows_of("2", r)
  for r in (rows.get("3_conv") or {}).values():
    rows_of("3", r)
  c = rows.get("4_seeds_curve")
  if c and "points" in c:
    lines.append(f"\nRow 4: seeds curve, {c['model']}, jax, batch {c['batch']}:")
    lines.append("\n| seeds | samples x seeds / s | TFLOP/s | MFU (default-precision peak) |")
    lines.append("|---|---|---|---|")
    for s, p in c["points"].items():
      if "error" in p:
        lines.append(f"| {s} | {p['error']} | | |")
      else:
        lines.append(f"| {s} | {fmt(p['samples_x_seeds_per_s'])} | {fmt(p['tflops'], '.2f')}"
                     f" | {fmt(100 * p['mfu'], '.1f') + '%' if 'mfu' in p else ''} |")
  a5 = rows.get("5_analysis")
  if a5:
    if "error" in a5:
      lines.append(f"\nRow 5 (analysis): {a5['error']}")
    else:
      lines.append(f"\nRow 5: per-layer analysis of {a5['model']} x {a5['seeds']} seeds: "
                   f"{1e3 * a5['analysis_s']:.1f} ms, one epoch {1e3 * a5['epoch_s']:.1f} ms: "
                   f"**{a5['analysis_over_epoch']:.2f} epochs** (first call, with compile: "
                   f"{a5['first_analysis_s']:.1f} s)")
      for mode, b in sorted((a5.get("breakdown") or {}).items()):
        if isinstance(b, dict):
          lines.append(f"- {mode.replace('eig_', 'Gram eigenvalues on the ')}: "
                       f"{1e3 * b['total_s']:.1f} ms = device program "
                       f"{1e3 * b['device_s']:.1f} ms + host finalize "
                       f"{1e3 * b['finalize_s']:.1f} ms")
  ratios = []
  for key, r in [("1", rows.get("1_big_mlp"))] + \
      [("2", r) for r in (rows.get("2_small_mlps") or {}).values()] + \
      [("3", r) for r in (rows.get("3_conv") or {}).values()]:
    if isinstance(r, dict):
      for tag in ("fast", "full"):
        q = r.get(f"ratio_{tag}")
        if q:
          ratios.append(f"- row {key} {r['title']} ({'TF32' if tag == 'fast' else 'fp32'}): "
                        f"{q['jax']} / {q['best_torch']} = **{q['jax_over_best_torch']:.2f}x**")
  if ratios:
    lines.append("\njax / best torch:")
    lines.extend(ratios)
  if res.get("notes"):
    lines.append("\nNotes:")
    lines.extend(f"- {n}" for n in res["notes"])
  return "\n".join(lines)


# ============================================================================== main
def machine_info(res):
  import jax
  m = res["machine"]
  m.update(python=platform.python_version(), platform=platform.platform(),
           cpu_count=os.cpu_count(), jax=jax.__version__, backend=jax.default_backend(),
           jax_devices=[str(d) for d in jax.devices()],
           jax_device=jax.devices()[0].device_kind,
           env={k: os.environ.get(k) for k in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                                               "JAX_PLATFORMS")})
  try:
    import jaxlib
    m["jaxlib"] = jaxlib.__version__
  except Exception:
    pass
  try:
    q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                        "clocks.max.sm,power.limit", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=20)
    if q.returncode == 0:
      m["nvidia_smi"] = q.stdout.strip()
  except (OSError, subprocess.SubprocessError):
    pass


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny sizes: CPU smoke run (< 1 min)")
  p.add_argument("--json", default="", help="write all results here (rewritten per row)")
  p.add_argument("--rows", default="gemm,1,2,5,4,3",
                 help="rows to run, in this order (default: gemm,1,2,5,4,3)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--budget-s", type=float, default=300.0,
                 help="no new optional work (compiles, rows) past this many seconds")
  p.add_argument("--hard-limit-s", type=float, default=345.0,
                 help="watchdog: write results and exit (rc 3) at this many seconds")
  p.add_argument("--compile-min-left", type=float, default=100.0,
                 help="torch.compile variants only while this much budget is left")
  p.add_argument("--compile-timeout", type=float, default=150.0)
  p.add_argument("--torch-compile", choices=("auto", "on", "off"), default="auto",
                 help="auto: on, except in --quick")
  p.add_argument("--overlap-builds", action="store_true",
                 help="build (compile) the torch variants while jax compiles (saves time; "
                 "autotuning then shares the GPU)")
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--torch-device", default="auto")
  p.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
  p.add_argument("--jax-mem-fraction", default="0.6",
                 help="XLA_PYTHON_CLIENT_MEM_FRACTION unless set (the rest is torch's)")
  p.add_argument("--fast-compile", action=argparse.BooleanOptionalAction, default=None,
                 help="jax_disable_most_optimizations (default: only in --quick, where "
                 "XLA:CPU compiles dominate and the numbers only show the machinery works)")
  p.add_argument("--torch-worker", default=None, help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  # sizes (GPU)
  a.lr, a.batch, a.analysis_batch, a.n_test = 0.05, 128, 1000, 512
  a.gemm_n, a.gemm_reps = 8192, 20
  a.big_mlp, a.big_in, a.big_spe, a.big_epochs = (10, 1024, 64), 784, 50, 2
  a.small_depth, a.small_widths, a.small_seeds, a.small_in = 8, [64, 256], 8, 40
  a.small_n, a.small_test, a.small_epochs = 4000, 1000, 3
  a.convs, a.conv_seeds, a.conv_hw, a.conv_spe, a.conv_epochs = \
      [(4, 32), (8, 64)], [1, 4], [28, 28], 25, 2
  a.conv_test = 256
  a.curve_seeds, a.curve_epochs = [1, 4, 16, 64, 256], 1
  if a.quick:
    a.repeats = min(a.repeats, 3)
    a.batch, a.analysis_batch, a.n_test = 16, 64, 64
    a.gemm_n, a.gemm_reps = 256, 4
    a.big_mlp, a.big_in, a.big_spe, a.big_epochs = (2, 16, 2), 784, 4, 1
    a.small_depth, a.small_widths, a.small_seeds, a.small_in = 2, [16], 2, 40
    a.small_n, a.small_test, a.small_epochs = 64, 64, 1
    a.convs, a.conv_seeds, a.conv_hw, a.conv_spe, a.conv_epochs = \
        [(2, 4)], [2], [12, 12], 2, 1
    a.conv_test = 16
    a.curve_seeds, a.curve_epochs = [1, 2], 1
    if not a.torch_threads:
      a.torch_threads = 1
  if a.fast_compile is None:
    a.fast_compile = a.quick
  return a


def main(argv=None) -> dict:
  a = parse_args(argv)
  if a.torch_worker is not None:
    torch_worker_main(json.loads(a.torch_worker))
    return {}
  os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", a.jax_mem_fraction)
  b = Bench(a)
  if a.no_torch:
    b.res["torch_skipped"] = "--no-torch"
  else:
    import importlib.util
    if importlib.util.find_spec("torch") is None:
      b.res["torch_skipped"] = "torch not installed"
      b.note("PyTorch baselines skipped: torch not installed")
    else:  # starts now: its imports and CUDA set-up overlap jax's
      b.torch = TorchClient({"device": a.torch_device, "threads": a.torch_threads})
      b.torch.start()

  def watchdog():
    print(f"\n!! hard limit {a.hard_limit_s:.0f} s reached: writing partial results", flush=True)
    with contextlib.suppress(Exception):
      b.res["notes"].append(f"hard limit {a.hard_limit_s:.0f} s reached: partial results")
      b.write_json()
      print(markdown(b.res), flush=True)
    if b.torch:
      b.torch.kill()
    os._exit(3)

  timer = threading.Timer(max(1.0, a.hard_limit_s - elapsed()), watchdog)
  timer.daemon = True
  timer.start()
  log("start: importing jax")
  if a.fast_compile:
    import jax
    jax.config.update("jax_disable_most_optimizations", True)
    b.note("--fast-compile: XLA optimizations off (smoke run; timings not meaningful)")
  machine_info(b.res)
  log(f"jax {b.res['machine']['jax']} on {b.res['machine']['jax_device']}")
  b.write_json()
  rows = {"gemm": ("gemm", b.row_gemm), "1": ("1_big_mlp", b.row1),
          "2": ("2_small_mlps", b.row2), "3": ("3_conv", b.row3),
          "4": ("4_seeds_curve", b.row4), "5": ("5_analysis", b.row5)}
  try:
    for r in a.rows.split(","):
      key, fn = rows[r.strip()]
      if b.left() < 10:
        b.res["rows"][key] = {"error": "skipped (budget)"}
        continue
      log(f"[row {r}] {key}")
      try:
        b.res["rows"][key] = fn()
      except Exception as e:
        b.res["rows"][key] = {"error": short_error(e)}
        log(f"row {r} failed: {short_error(e)}")
        traceback.print_exc()
      b.write_json()
  finally:
    if b.torch:
      b.torch.close()
    if b.torch and b.torch.info:
      b.res["machine"]["torch"] = b.torch.info
  b.jax_kept.clear()
  b.write_json()
  timer.cancel()
  print(markdown(b.res), flush=True)
  log("done")
  return b.res


if __name__ == "__main__":
  main()
