"""The training step that benchmarks/core_bench.py and gpu_bench.py time, against a
float64 numpy reference written from the definitions (no jax, no torch in it).

The step: MLP-L-H (Linear -> BatchNorm in train mode with the seed's own batch mean
and biased variance, eps 1e-5 -> ReLU, ..., Linear read-out), mean cross-entropy over
the batch, SGD with momentum 0.9 (buffer b <- m b + g, from b = 0), coupled weight
decay (g = grad + wd p) and a constant learning rate, each of S seeds on its own
parameters. Running averages r <- 0.9 r + 0.1 batch statistic, the variance biased
(jaxdepth, Flax) or unbiased (PyTorch).

(a) jaxdepth's vmapped epoch program (train.build_program(...).epoch, as the jax-1/jax-N
    benchmark workers run it) equals the reference: runs in CI, torch or not.
(b) The PyTorch ensembles of the benchmarks (core_bench.StackedMLP and
    gpu_bench.StackedMLP: stacked parameters, baddbmm, one torch.optim.SGD; the per-seed
    torch.nn loop) equal the SAME reference: skipped without torch.
Together they say that the benchmarks' jax and torch variants train the same thing.
"""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

EPS = 1e-5
LR, MOMENTUM, WD = 0.1, 0.9, 5e-4


# ------------------------------------------------------------------- float64 reference
def forward(p, x_SxBxI):
  """Logits (S, B, C) and what the backward pass needs; p holds per-seed stacked
  arrays: w[i] (S, in, out), b[i] (S, out), scale[i] and shift[i] (S, H)."""
  h, cache = x_SxBxI, []
  for i in range(len(p["scale"])):
    z = h @ p["w"][i] + p["b"][i][:, None]
    mu = z.mean(1, keepdims=True)                    # per seed, over its batch
    var = ((z - mu) ** 2).mean(1, keepdims=True)     # biased
    inv = 1.0 / np.sqrt(var + EPS)
    xh = (z - mu) * inv
    a = xh * p["scale"][i][:, None] + p["shift"][i][:, None]
    cache.append((h, xh, inv, a, mu[:, 0], var[:, 0]))
    h = np.maximum(a, 0.0)
  return h @ p["w"][-1] + p["b"][-1][:, None], h, cache


def loss_and_grads(p, x, y):
  """Per-seed mean cross-entropy (S,), its gradients (same tree as p) and the batch
  statistics [(mean (S, H), biased var (S, H))] of every BN layer."""
  logits, h_last, cache = forward(p, x)
  S, B, _ = logits.shape
  m = logits.max(-1, keepdims=True)
  lse = m[..., 0] + np.log(np.exp(logits - m).sum(-1))
  picked = np.take_along_axis(logits, y[..., None], -1)[..., 0]
  loss = (lse - picked).mean(1)
  d = np.exp(logits - lse[..., None])                # softmax
  d[np.arange(S)[:, None], np.arange(B)[None], y] -= 1.0
  d /= B                                             # d loss / d logits
  L = len(p["scale"])
  g = {k: [None] * len(v) for k, v in p.items()}
  g["w"][L] = np.swapaxes(h_last, 1, 2) @ d
  g["b"][L] = d.sum(1)
  dh = d @ np.swapaxes(p["w"][L], 1, 2)
  for i in reversed(range(L)):
    h_in, xh, inv, a, _, _ = cache[i]
    da = dh * (a > 0)                                # ReLU' = 0 at 0 (jax and torch)
    g["scale"][i] = (da * xh).sum(1)
    g["shift"][i] = da.sum(1)
    dxh = da * p["scale"][i][:, None]
    dz = inv * (dxh - dxh.mean(1, keepdims=True) - xh * (dxh * xh).mean(1, keepdims=True))
    g["w"][i] = np.swapaxes(h_in, 1, 2) @ dz
    g["b"][i] = dz.sum(1)
    dh = dz @ np.swapaxes(p["w"][i], 1, 2)
  return loss, g, [(c[4], c[5]) for c in cache]


def train(p, running, batches, unbiased_running: bool):
  """SGD steps on ``batches`` [(x (S, B, I), y (S, B))]; returns the parameters, the
  running statistics [(mean, var)] and the loss (S,) of each step before its update."""
  p = {k: [np.array(a, np.float64) for a in v] for k, v in p.items()}
  running = [(np.array(m, np.float64), np.array(v, np.float64)) for m, v in running]
  buf = {k: [np.zeros_like(a) for a in v] for k, v in p.items()}
  losses = []
  for x, y in batches:
    loss, g, stats = loss_and_grads(p, np.asarray(x, np.float64), np.asarray(y))
    losses.append(loss)
    for k in p:
      for j in range(len(p[k])):
        buf[k][j] = MOMENTUM * buf[k][j] + g[k][j] + WD * p[k][j]
        p[k][j] = p[k][j] - LR * buf[k][j]
    n = x.shape[1]
    running = [(0.9 * rm + 0.1 * mu, 0.9 * rv + 0.1 * var * (n / (n - 1) if unbiased_running
                                                                else 1.0))
               for (rm, rv), (mu, var) in zip(running, stats)]
  return p, running, np.stack(losses)


def random_params(rng, S, L, H, I, C):
  dims = [I] + [H] * L + [C]
  return {"w": [rng.normal(size=(S, a, b)) * np.sqrt(2.0 / a) for a, b in zip(dims, dims[1:])],
          "b": [rng.normal(size=(S, b)) * 0.1 for b in dims[1:]],
          "scale": [1.0 + 0.2 * rng.normal(size=(S, H)) for _ in range(L)],
          "shift": [0.1 * rng.normal(size=(S, H)) for _ in range(L)]}


# Float32 against float64. Every float32 operation rounds with relative error at most
# u = 2^-24 ~ 6e-8. A step's gradient is a chain of dot products of length K <= 64
# (fan-in, batch) through L = 3 BN layers; the standard worst-case bound (K u per dot
# product, |a| |b| in place of |a b|) gives a relative error of the gradient of order
# L * K * u ~ 1e-5, and BN's 1/sigma scales absolute errors by O(1) for these
# unit-variance pre-activations. Over 3-4 steps with lr 0.1 and momentum 0.9 the
# parameters (of size ~0.5) take lr * (1 + 1.9 + 2.7 + 3.4) ~ 1 gradient's worth of that,
# hence rtol 1e-4 with atol 1e-5: the worst case fits, and the measured errors are
# ~1e-7 (rounding errors mostly cancel). It still tells a wrong step: leaving out the
# weight decay (lr * wd * p per step) exceeds it 4x, BN eps 1e-3 for 1e-5 80x, no
# momentum 1000x.
RTOL, ATOL = 1e-4, 1e-5


def test_reference_gradient_is_the_finite_difference_of_its_loss():
  rng = np.random.default_rng(0)
  S, L, H, I, C, B = 2, 2, 5, 4, 3, 7
  p = random_params(rng, S, L, H, I, C)
  x, y = rng.normal(size=(S, B, I)), rng.integers(0, C, (S, B))
  _, g, _ = loss_and_grads(p, x, y)
  for k, j, idx in [("w", 0, (1, 2, 3)), ("w", 2, (0, 4, 1)), ("b", 1, (1, 0)),
                    ("scale", 0, (0, 2)), ("shift", 1, (1, 4)), ("b", 0, (0, 3))]:
    num = []
    for sign in (1, -1):
      q = {kk: [a.copy() for a in v] for kk, v in p.items()}
      q[k][j][idx] += sign * 1e-6
      num.append(loss_and_grads(q, x, y)[0][idx[0]])
    assert g[k][j][idx] == pytest.approx((num[0] - num[1]) / 2e-6, rel=1e-6, abs=1e-9), (k, j)


# ------------------------------------------------------------------ (a) jaxdepth (CI)
def _jax_program(S, L, H, I, C, N):
  from jaxdepth import data
  from jaxdepth.configs import common
  from jaxdepth.papers.minimal_depth import train as collapse
  rng = np.random.default_rng(1)
  x = rng.normal(size=(N, I)).astype(np.float32)
  y = rng.integers(0, C, N).astype(np.int32)
  ds = data.Dataset(x, y, x[:C], y[:C], C, "reference")
  c = common.base()
  c.dataset, c.depth, c.width, c.num_seeds, c.label_noise = "reference", L, H, S, (0.0,)
  # One batch of all N examples per epoch: BN statistics and the mean loss do not
  # depend on the order, so each epoch is one step of the reference on (x, y), with
  # no need to reproduce jaxdepth's shuffling.
  c.batch_size, c.lr, c.momentum, c.weight_decay = N, LR, MOMENTUM, WD
  c.warmup_epochs, c.schedule = 0.0, "constant"
  c.progress = c.plots = False
  c.shard_runs = False
  prog = collapse.build_program(c, ds, L, H)
  assert prog.steps_per_epoch == 1
  keys = collapse.make_keys(c.seed, collapse.run_grid(c))
  return prog, keys, x, y


def _from_jax(params, batch_stats, L):
  a = lambda t: np.asarray(t, np.float64)
  p = {"w": [a(params["w_in"])] + [a(params["w_hid"][:, i]) for i in range(L - 1)]
       + [a(params["w_out"])],
       "b": [a(params["b_in"])] + [a(params["b_hid"][:, i]) for i in range(L - 1)]
       + [a(params["b_out"])],
       "scale": [a(params["bn"]["scale"][:, i]) for i in range(L)],
       "shift": [a(params["bn"]["bias"][:, i]) for i in range(L)]}
  running = [(a(batch_stats["mean"][:, i]), a(batch_stats["var"][:, i])) for i in range(L)]
  return p, running


def _assert_close(got, want, what):
  for k in want:
    for j, (g, w) in enumerate(zip(got[k], want[k])):
      np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{what} {k}[{j}]")


def test_jaxdepth_vmapped_epochs_equal_the_float64_reference():
  import jax.numpy as jnp
  S, L, H, I, C, N, steps = 3, 3, 16, 10, 4, 64, 4
  prog, keys, x, y = _jax_program(S, L, H, I, C, N)
  state, labels, _ = prog.init(keys)
  p0, run0 = _from_jax(state.params, state.batch_stats, L)
  assert not np.allclose(p0["w"][0][0], p0["w"][0][1])  # seeds start apart
  losses = []
  x_dev = jnp.asarray(x)
  for epoch in range(steps):
    state, out = prog.epoch(state, labels, keys, epoch, x_dev)
    losses.append(np.asarray(out["loss"]))
  np.testing.assert_array_equal(np.asarray(labels), np.broadcast_to(y, (S, N)))
  xs, ys = np.broadcast_to(x, (S, N, I)), np.broadcast_to(y, (S, N))
  p_ref, run_ref, loss_ref = train(p0, run0, [(xs, ys)] * steps, unbiased_running=False)
  p_jax, run_jax = _from_jax(state.params, state.batch_stats, L)
  np.testing.assert_allclose(np.stack(losses), loss_ref, rtol=RTOL, atol=ATOL)
  _assert_close(p_jax, p_ref, "jaxdepth")
  for i, ((m, v), (rm, rv)) in enumerate(zip(run_jax, run_ref)):
    np.testing.assert_allclose(m, rm, rtol=RTOL, atol=ATOL, err_msg=f"running mean {i}")
    np.testing.assert_allclose(v, rv, rtol=RTOL, atol=ATOL, err_msg=f"running var {i}")
  assert np.abs(p_ref["w"][1] - p0["w"][1]).max() > 1e-2  # the steps moved the weights


# --------------------------------------------------------- (b) PyTorch (torch optional)
def _torch_batches(torch, S, B, I, C, steps):
  g = torch.Generator().manual_seed(2)
  return [(torch.randn(S, B, I, generator=g), torch.randint(0, C, (S, B), generator=g))
          for _ in range(steps)]


def _stacked_to_numpy(ens):
  a = lambda t: t.detach().double().numpy()
  return ({"w": [a(w) for w in ens.weights], "b": [a(b[:, 0]) for b in ens.biases],
           "scale": [a(s[:, 0]) for s in ens.scales], "shift": [a(s[:, 0]) for s in ens.shifts]},
          [(a(m[:, 0]), a(v[:, 0])) for m, v in ens.running])


@pytest.mark.parametrize("bench", ["core_bench", "gpu_bench"])
def test_torch_stacked_ensemble_equals_the_float64_reference(bench):
  torch = pytest.importorskip("torch")
  mod = __import__(bench)
  S, L, H, I, C, B, steps = 3, 3, 16, 10, 4, 32, 3
  g = torch.Generator().manual_seed(0)
  args = (torch, S, L, H, I, C, g) + ((torch.device("cpu"),) if bench == "gpu_bench" else ())
  ens = mod.StackedMLP(*args)
  with torch.no_grad():  # non-trivial biases and BN parameters, as after some training
    rng = np.random.default_rng(3)
    for t in ens.biases + ens.scales + ens.shifts:
      t.add_(torch.as_tensor(0.1 * rng.normal(size=tuple(t.shape)), dtype=t.dtype))
  p0, run0 = _stacked_to_numpy(ens)
  opt = torch.optim.SGD(ens.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
  batches = _torch_batches(torch, S, B, I, C, steps)
  losses = []
  for x, y in batches:  # as the benchmarks' step
    opt.zero_grad()
    loss = mod.stacked_loss(torch, ens(x), y)
    loss.backward()
    opt.step()
    losses.append(loss.detach().item() / S)
  p_ref, run_ref, loss_ref = train(p0, run0, [(x.numpy(), y.numpy()) for x, y in batches],
                                   unbiased_running=True)
  np.testing.assert_allclose(losses, loss_ref.mean(1), rtol=RTOL, atol=ATOL)
  p_t, run_t = _stacked_to_numpy(ens)
  _assert_close(p_t, p_ref, bench)
  for (m, v), (rm, rv) in zip(run_t, run_ref):
    np.testing.assert_allclose(m, rm, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(v, rv, rtol=RTOL, atol=ATOL)


def test_torch_per_seed_loop_equals_the_float64_reference():
  """core_bench's torch-loop variant: a plain torch.nn MLP and torch.optim.SGD per seed."""
  torch = pytest.importorskip("torch")
  import core_bench
  S, L, H, I, C, B, steps = 2, 3, 16, 10, 4, 32, 3
  torch.manual_seed(0)
  batches = _torch_batches(torch, S, B, I, C, steps)
  a = lambda t: t.detach().double().numpy()
  for s in range(S):
    net = core_bench.torch_mlp(torch, L, H, I, C).train()
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm1d)]
    p0 = {"w": [a(m.weight.T)[None] for m in lins], "b": [a(m.bias)[None] for m in lins],
          "scale": [a(m.weight)[None] for m in bns], "shift": [a(m.bias)[None] for m in bns]}
    run0 = [(a(m.running_mean)[None], a(m.running_var)[None]) for m in bns]
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    for x, y in batches:
      opt.zero_grad()
      torch.nn.functional.cross_entropy(net(x[s]), y[s]).backward()
      opt.step()
    p_ref, run_ref, _ = train(p0, run0, [(x[s:s + 1].numpy(), y[s:s + 1].numpy())
                                         for x, y in batches], unbiased_running=True)
    got = {"w": [a(m.weight.T)[None] for m in lins], "b": [a(m.bias)[None] for m in lins],
           "scale": [a(m.weight)[None] for m in bns], "shift": [a(m.bias)[None] for m in bns]}
    _assert_close(got, p_ref, f"torch-loop seed {s}")
    for m, (rm, rv) in zip(bns, run_ref):
      np.testing.assert_allclose(a(m.running_mean)[None], rm, rtol=RTOL, atol=ATOL)
      np.testing.assert_allclose(a(m.running_var)[None], rv, rtol=RTOL, atol=ATOL)
