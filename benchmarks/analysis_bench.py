"""Analysis of a user's flax model: ``jaxdepth.analyze_model`` vs the same measurements
made the way the PyTorch neural-collapse codebases make them (issue 22, item 8).

  .venv/bin/pip install torch==2.13.0      # the 'bench' extra (CPU build)
  .venv/bin/python benchmarks/analysis_bench.py --json /tmp/anbench.json
  .venv/bin/python benchmarks/analysis_bench.py --quick        # smoke run, seconds

The model is a flax linen MLP-L-H (L blocks ``Block = Dense(H) + ReLU``, a linear
head ``Dense(C)``), S seeds of parameters stacked on a leading axis
(``jax.vmap(model.init)``), untrained. Data: synthetic Gaussian classes (D_in = 40 like
MNIST-1D, C = 10, N train + N_test test samples). The measured layers are the L block
outputs (post-ReLU); NC3 is at the last block against the head's weights.

Variants (one process; repeat r of every variant before repeat r + 1):

  jaxdepth       ``analyze_model(model, params, ..., layers=['Block_*'],
                 classifier='Dense_0/kernel')``: the trainer's streamed analyzer, two
                 passes over fixed-size batches, all seeds vmapped in one jitted program,
                 C x C statistics for NC1/NC2, Gram eigenvalues on the host in float64.
  torch-stacked  the PyTorch codebases' recipe (Papyan, Han & Donoho 2020's
                 neural-collapse code; the CDNV of Galanti et al. 2022) in its strongest
                 eager form: the same weights as (S, D_in, D_out) tensors, forward with
                 ``torch.baddbmm`` over all seeds at once, streamed over the same batches
                 under ``torch.no_grad``. Pass 1: class counts and sums per layer (one-hot
                 matmul); pass 2: Sigma_W as a D x D accumulated covariance of the
                 residuals h - mu_y (``baddbmm``), per-class M2 (CDNV), NCC decisions by
                 the matmul form of argmin_c |h - mu_c|, agreement with the network's
                 argmax (NC4), loss and accuracy. Then Sigma_B = M^T M / C (D x D) and
                 NC1 = tr(Sigma_W Sigma_B^+) / C with Sigma_B^+ from its C - 1 leading
                 eigenpairs (``torch.linalg.eigh``, the codebases' ``svds(Sb, k=C-1)``),
                 NC2 from the cosine matrix of the centred means, NC3 against the head's
                 weights, and the effective rank from float64 ``eigvalsh`` of the Gram
                 matrix of the first ``rank_samples`` examples (what jaxdepth reports).
                 Test set: pass 1 for its class means (CDNV on test), pass 2 for the
                 NCC test accuracy with the train means. Sums are taken relative to the
                 first batch's mean, as jaxdepth does (for collapsed layers, whose class
                 means are close relative to their norm). Raw sums (``shift=False``)
                 gave the same metrics to 7e-7 here and flipped 1 NCC decision of 10,000.
  torch-stacked-1thread  the same with one intra-op thread: on a loaded machine every
                 small multi-threaded torch op can wait a scheduler tick for its second
                 thread (seen here: 9 ms per tiny baddbmm), so one thread can be faster.
  torch-stacked-compile  the same, the per-batch steps of both passes under
                 ``torch.compile`` (default inductor; compile time reported separately).
  torch-loop     the same metric code once per seed, on a per-seed ``torch.nn``
                 Sequential (Linear, ReLU, ..., Linear) whose ReLU outputs are captured
                 with forward hooks (how the codebases read layers).

Correctness: every torch variant's metrics are compared with jaxdepth's and the largest
deviations are printed (NCC accuracies in samples; NC1 relative to a tolerance derived
from the conditioning kappa of Sigma_B). Timing: jaxdepth's first call (compile
included) separately, then ``--repeats`` interleaved repeats of every variant; the
ratio is per repeat, median reported. No thresholds are asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

METRICS = ("ncc_acc_train", "ncc_acc_test", "cdnv_train", "cdnv_test", "nc1_train",
           "nc1_ratio_train", "nc2_equinorm_train", "nc2_equiangular_train",
           "nc2_maxangle_train", "nc2_etf_error_train", "nc3_duality_train",
           "nc4_agreement_train", "rank_train", "rank_test", "acc_train", "loss_train",
           "acc_test", "loss_test")
EPS32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff 2^-24


def loadavg() -> list[float]:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return [float("nan")] * 3


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
      if line.startswith("Model name"):
        return line.split(":", 1)[1].strip()
  except (OSError, subprocess.SubprocessError):
    pass
  return platform.processor() or "unknown"


# ----------------------------------------------------------------------------- data, model
def make_data(n: int, n_test: int, din: int, C: int, seed: int = 0):
  """Gaussian classes: centres N(0, 1) in D_in dimensions, unit noise, balanced labels."""
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((C, din)).astype(np.float32)
  y = (np.arange(n) % C).astype(np.int32)
  yt = (np.arange(n_test) % C).astype(np.int32)
  rng.shuffle(y)
  x = centres[y] + rng.standard_normal((n, din)).astype(np.float32)
  xt = centres[yt] + rng.standard_normal((n_test, din)).astype(np.float32)
  return x, y, xt, yt


def flax_mlp(depth: int, width: int, C: int):
  from flax import linen as nn

  class Block(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
      return nn.relu(nn.Dense(self.width)(x))

  class MLP(nn.Module):
    depth: int
    width: int
    num_classes: int

    @nn.compact
    def __call__(self, x):
      for _ in range(self.depth):
        x = Block(self.width)(x)
      return nn.Dense(self.num_classes)(x)

  return MLP(depth, width, C)


def init_params(model, seeds: int, x):
  import jax
  keys = jax.random.split(jax.random.key(0), seeds)
  return jax.vmap(model.init, (0, None))(keys, x[:1])


def jax_analyze(model, variables, x, y, xt, yt, C, batch_size, rank_samples):
  import jaxdepth
  return jaxdepth.analyze_model(model, variables, x, y, C, x_test=xt, y_test=yt,
                                layers=["Block_*"], classifier="Dense_0/kernel",
                                batch_size=batch_size, rank_samples=rank_samples)


# ----------------------------------------------------------------------------- torch side
def torch_weights(variables, depth: int):
  """[(W (S, in, out), b (S, 1, out))] for the L blocks and the head, as torch tensors."""
  import torch
  p = variables["params"]
  dense = [p[f"Block_{i}"]["Dense_0"] for i in range(depth)] + [p["Dense_0"]]
  return [(torch.from_numpy(np.array(d["kernel"], np.float32)),
           torch.from_numpy(np.array(d["bias"], np.float32))[:, None]) for d in dense]


def stacked_forward(weights):
  """x (B, D_in) -> (logits (S, B, C), [block outputs (S, B, H)]), all seeds at once."""
  import torch

  def forward(x):
    w0, b0 = weights[0]
    h = torch.relu_(torch.baddbmm(b0, x.expand(w0.shape[0], *x.shape), w0))
    feats = [h]
    for w, b in weights[1:-1]:
      h = torch.relu_(torch.baddbmm(b, h, w))
      feats.append(h)
    w, b = weights[-1]
    return torch.baddbmm(b, h, w), feats

  return forward


def hooked_forward(weights, s: int):
  """One seed's torch.nn.Sequential, block outputs read with forward hooks on the ReLUs;
  returns x -> (logits (1, B, C), [(1, B, H)]) for the shared metric code."""
  import torch
  from torch import nn
  mods = []
  for w, b in weights:
    lin = nn.Linear(w.shape[1], w.shape[2])
    with torch.no_grad():
      lin.weight.copy_(w[s].T)
      lin.bias.copy_(b[s, 0])
    mods += [lin, nn.ReLU()]
  net = nn.Sequential(*mods[:-1]).eval()
  captured = []
  for m in net:
    if isinstance(m, nn.ReLU):
      m.register_forward_hook(lambda _m, _i, out: captured.append(out))

  def forward(x):
    captured.clear()
    logits = net(x)
    return logits[None], [f[None] for f in captured]

  return forward


def many_matrices(fn, a):
  """``fn`` (a torch.linalg decomposition) over a stack of matrices: one LAPACK thread
  per matrix, the stack split over one Python thread per intra-op thread (torch
  releases the GIL). jaxdepth's host eigvalsh does the same (measure/analysis.py):
  a multi-threaded LAPACK call per small matrix was ten times slower on 2 shared cores
  (measured here under load: about 14 s vs 1.4 s for the 64 Sigma_B and 128 float64
  Gram matrices of MLP-8-256 x 8 seeds)."""
  from concurrent.futures import ThreadPoolExecutor

  import torch
  n = torch.get_num_threads()
  chunks = a.chunk(min(n, a.shape[0]))
  torch.set_num_threads(1)
  try:
    if len(chunks) == 1:
      parts = [fn(chunks[0])]
    else:
      with ThreadPoolExecutor(len(chunks)) as ex:
        parts = list(ex.map(fn, chunks))
  finally:
    torch.set_num_threads(n)
  if isinstance(parts[0], torch.Tensor):
    return torch.cat(parts)
  return tuple(torch.cat(p) for p in zip(*parts))


def torch_metrics(forward, head_w, batches, test_batches, C: int, rank_x, nc3_layer: int,
                  compile: bool = False, shift: bool = True) -> dict:
  """The PyTorch codebases' accumulators and metrics, vectorized over S stacked seeds.

  ``forward(x) -> (logits (S, B, C), [feats (S, B, D)])``; ``head_w`` (S, C, D) the
  classifier for NC3; ``batches`` / ``test_batches`` lists of (x, y) torch tensors;
  ``rank_x`` the inputs whose Gram matrices give the effective rank; ``compile``: the
  per-batch steps of both passes under ``torch.compile`` (inductor); ``shift``: sums
  of h minus the first batch's mean (False: of h itself). Returns numpy
  arrays (S, L) (network loss/acc: (S,)), keyed like ``analyze_model``'s result.
  """
  import torch
  from torch.nn import functional as F
  f64 = torch.float64
  with torch.no_grad():
    _, feats0 = forward(batches[0][0])
    refs = [f.mean(1, keepdim=True) * shift for f in feats0]  # (S, 1, D) shift
    S, L = feats0[0].shape[0], len(feats0)

    def sums_step(x, oh):  # one batch of pass 1: per-layer (S, C, D) increments
      _, feats = forward(x)
      return [oh.T @ (f - r) for f, r in zip(feats, refs)]

    def m2_step(x, y, oh, mus, ncc_mus, ncc_sq, sw):
      """One batch of pass 2; accumulates Sigma_W (D x D, N times) into ``sw`` when given
      (in place) and returns the other increments."""
      logits, feats = forward(x)
      net_pred = logits.argmax(-1)  # (S, B)
      loss_b = -torch.log_softmax(logits, -1).gather(
          2, y.expand(S, -1)[..., None])[..., 0].sum(1)
      acc_b = (net_pred == y).sum(1)
      m2_b, hit_b, agree_b = [], [], []
      for l, f in enumerate(feats):
        z = f - refs[l]
        r = z - oh @ mus[l]  # h_i - mu_{y_i}, (S, B, D)
        m2_b.append((r * r).sum(-1) @ oh)
        pred = (2 * z @ ncc_mus[l].transpose(1, 2) - ncc_sq[l]).argmax(-1)  # (S, B)
        hit_b.append((pred == y).sum(1))
        if sw is not None:
          sw[l].baddbmm_(r.transpose(1, 2), r)
          agree_b.append((pred == net_pred).sum(1))
      agree_b = torch.stack(agree_b, 1) if agree_b else None
      return m2_b, torch.stack(hit_b, 1), agree_b, loss_b, acc_b

    if compile:
      sums_step, m2_step = torch.compile(sums_step), torch.compile(m2_step)

    def class_sums(data):  # pass 1: counts (C,), means of (h - ref) (S, C, D) per layer
      cnt = torch.zeros(C)
      sums = [torch.zeros(S, C, f.shape[2]) for f in feats0]
      for x, y in data:
        oh = F.one_hot(y.long(), C).float()  # (B, C)
        cnt += oh.sum(0)
        for acc_, inc in zip(sums, sums_step(x, oh)):
          acc_ += inc
      return cnt, [s / cnt.clamp(min=1)[None, :, None] for s in sums]

    def second_pass(data, mus, ncc_mus, sigma_w: bool):
      """M2 per class; NCC hits with ``ncc_mus``; Sigma_W (D x D) and NC4 if asked."""
      m2 = [torch.zeros(S, C) for _ in range(L)]
      hit = torch.zeros(S, L)
      agree = torch.zeros(S, L)
      sw = [torch.zeros(S, f.shape[2], f.shape[2]) for f in feats0] if sigma_w else None
      loss = torch.zeros(S)
      acc = torch.zeros(S)
      ncc_sq = [(m * m).sum(-1)[:, None] for m in ncc_mus]  # (S, 1, C)
      for x, y in data:
        y = y.long()
        oh = F.one_hot(y, C).float()
        m2_b, hit_b, agree_b, loss_b, acc_b = m2_step(x, y, oh, mus, ncc_mus, ncc_sq, sw)
        for acc_, inc in zip(m2, m2_b):
          acc_ += inc
        hit += hit_b
        loss += loss_b
        acc += acc_b
        if sigma_w:
          agree += agree_b
      return m2, hit, agree, sw, loss, acc

    cnt, mus = class_sums(batches)
    cnt_t, mus_t = class_sums(test_batches)
    n, n_t = cnt.sum(), cnt_t.sum()
    m2, hit, agree, sw, loss, acc = second_pass(batches, mus, mus, True)
    m2_t, hit_t, _, _, loss_t, acc_t = second_pass(test_batches, mus_t, mus, False)

    def cdnv(cnt_, mus_, m2_):
      var = m2_ / cnt_.clamp(min=1)  # (S, C)
      d2 = ((mus_[:, :, None] - mus_[:, None]) ** 2).sum(-1)  # (S, C, C)
      iu = torch.triu_indices(C, C, 1)
      v = (var[:, :, None] + var[:, None]) / (2 * d2)
      return v[:, iu[0], iu[1]].mean(-1)

    out = {k: torch.zeros(S, L) for k in (
        "cdnv_train", "cdnv_test", "nc1_ratio_train", "nc2_equinorm_train",
        "nc2_equiangular_train", "nc2_maxangle_train", "nc2_etf_error_train")}
    out["nc3_duality_train"] = torch.full((S, L), float("nan"))
    iu = torch.triu_indices(C, C, 1)
    ms, sigma_bs = [], []
    for l in range(L):
      mu_g = (cnt[None, :, None] * mus[l]).sum(1, keepdim=True) / n
      M = mus[l] - mu_g  # (S, C, D) centred class means
      ms.append(M)
      sigma_b = M.transpose(1, 2) @ M / C  # (S, D, D)
      sigma_bs.append(sigma_b)
      out["nc1_ratio_train"][:, l] = (m2[l].sum(-1) / n) / (
          torch.diagonal(sigma_b, dim1=1, dim2=2).sum(-1))
      norms = M.norm(dim=-1)  # (S, C)
      out["nc2_equinorm_train"][:, l] = norms.std(-1, unbiased=False) / norms.mean(-1)
      G = M @ M.transpose(1, 2)
      cos = (G / (norms[:, :, None] * norms[:, None]))[:, iu[0], iu[1]]
      out["nc2_equiangular_train"][:, l] = cos.std(-1, unbiased=False)
      out["nc2_maxangle_train"][:, l] = (cos + 1 / (C - 1)).abs().mean(-1)
      etf = (torch.eye(C) - 1 / C) / (C - 1) ** 0.5
      out["nc2_etf_error_train"][:, l] = (G / G.norm(dim=(1, 2), keepdim=True) - etf).norm(
          dim=(1, 2))
      out["cdnv_train"][:, l] = cdnv(cnt, mus[l], m2[l])
      mu_gt = (cnt_t[None, :, None] * mus_t[l]).sum(1, keepdim=True) / n_t
      out["cdnv_test"][:, l] = cdnv(cnt_t, mus_t[l] - mu_gt, m2_t[l])
      if l == nc3_layer:
        out["nc3_duality_train"][:, l] = (
            head_w / head_w.norm(dim=(1, 2), keepdim=True)
            - M / M.norm(dim=(1, 2), keepdim=True)).norm(dim=(1, 2))
    # NC1 = tr(Sigma_W Sigma_B^+) / C, Sigma_B^+ from its C - 1 leading eigenpairs (the
    # codebases' svds(Sb, k=C-1)); all layers' D x D Sigma_B in one batched eigh.
    D = sigma_bs[0].shape[-1]
    lam, vec = many_matrices(torch.linalg.eigh, torch.stack(sigma_bs).reshape(L * S, D, D))
    lam, vec = lam[:, -(C - 1):], vec[:, :, -(C - 1):]  # ascending: the leading are last
    sigma_w = torch.stack(sw).reshape(L * S, D, D) / n
    proj = ((sigma_w @ vec) * vec).sum(1)  # v_k^T Sigma_W v_k
    out["nc1_train"] = ((proj / lam).sum(-1) / C).reshape(L, S).T
    out["kappa_sb"] = (lam[:, -1] / lam[:, 0]).reshape(L, S).T
    out.update(ncc_acc_train=hit / n, ncc_acc_test=hit_t / n_t,
               nc4_agreement_train=agree / n, loss_train=loss / n, acc_train=acc / n,
               loss_test=loss_t / n_t, acc_test=acc_t / n_t)

    def ranks(x):  # entropy of the normalized eigenvalues of the Gram matrix (float64)
      _, feats = forward(x)
      f = torch.stack(feats).to(f64).flatten(0, 1)  # (L * S, k, D)
      g = f.transpose(1, 2) @ f if f.shape[2] <= f.shape[1] else f @ f.transpose(1, 2)
      p = many_matrices(torch.linalg.eigvalsh, g).clamp(min=0)
      p = p / p.sum(-1, keepdim=True)
      rho = -torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1)), 0).sum(-1)
      return rho.reshape(L, S).T.float()

    out["rank_train"], out["rank_test"] = ranks(rank_x[0]), ranks(rank_x[1])
  return {k: v.numpy().astype(np.float64) for k, v in out.items()}


def torch_batches(x, y, batch_size: int):
  import torch
  return [(torch.from_numpy(x[i:i + batch_size]), torch.from_numpy(y[i:i + batch_size]))
          for i in range(0, len(x), batch_size)]


def torch_inputs(variables, depth, x, y, xt, yt, batch_size, rank_samples):
  import torch
  weights = torch_weights(variables, depth)
  head_w = weights[-1][0].transpose(1, 2).contiguous()  # (S, C, D)
  rank_x = (torch.from_numpy(x[:rank_samples]), torch.from_numpy(xt[:rank_samples]))
  return (weights, head_w, torch_batches(x, y, batch_size), torch_batches(xt, yt, batch_size),
          rank_x)


def torch_stacked(inputs, C, nc3_layer, compile=False):
  weights, head_w, tr, te, rank_x = inputs
  return torch_metrics(stacked_forward(weights), head_w, tr, te, C, rank_x, nc3_layer,
                       compile)


def torch_loop(inputs, C, nc3_layer):
  weights, head_w, tr, te, rank_x = inputs
  per_seed = [torch_metrics(hooked_forward(weights, s), head_w[s:s + 1], tr, te, C, rank_x,
                            nc3_layer) for s in range(head_w.shape[0])]
  return {k: np.concatenate([r[k] for r in per_seed]) for k in per_seed[0]}


# ----------------------------------------------------------------------------- comparison
def deviations(jx: dict, th: dict, n: int, n_test: int) -> dict:
  """Largest deviation of the torch metrics from jaxdepth's, per metric: NCC accuracies
  and NC4 in samples, NC1 as the largest |rel. error| / tolerance, the rest relative."""
  out = {}
  for k in METRICS:
    a, b = np.asarray(jx[k], np.float64), np.asarray(th[k], np.float64)
    both = np.isnan(a) & np.isnan(b)
    if (np.isnan(a) != np.isnan(b)).any():
      out[k] = float("inf")
      continue
    a, b = a[~both], b[~both]
    if k in ("ncc_acc_train", "nc4_agreement_train", "acc_train"):  # float32 fractions
      out[k + " (samples)"] = round(float(np.max(np.abs(a - b)) * n), 2)
    elif k in ("ncc_acc_test", "acc_test"):
      out[k + " (samples)"] = round(float(np.max(np.abs(a - b)) * n_test), 2)
    else:
      out[k] = float(np.max(np.abs(a - b) / np.abs(a)))
  rel = np.abs(jx["nc1_train"] - th["nc1_train"]) / np.abs(jx["nc1_train"])
  out["nc1_train / tolerance"] = float(np.max(rel / nc1_tolerance(th["kappa_sb"])))
  out["kappa_sb (max)"] = float(np.max(th["kappa_sb"]))
  return out


def nc1_tolerance(kappa):
  """NC1 divides by the C - 1 kept eigenvalues of Sigma_B: a relative error u of the
  class means (float32 sums over N samples) or of the eigenvalues (float32 eigh of the
  D x D Sigma_B in torch: absolute error ~ eps |Sigma_B|) moves NC1 by about kappa * u,
  kappa = lambda_max / lambda_(C-1). Held to 256 kappa 2^-24 (at least 1e-4)."""
  return np.maximum(1e-4, 256 * np.asarray(kappa) * EPS32)


def check(dev: dict, samples_tol: float = 1.0, rtol: float = 1e-4) -> list[str]:
  """Names of the deviations over tolerance (NCC/NC4 in samples, NC1 by its own
  tolerance, the rest 1e-4 relative)."""
  bad = []
  for k, v in dev.items():
    if k.startswith("kappa"):
      continue
    if k.endswith("(samples)"):
      ok = v <= samples_tol
    elif k == "nc1_train / tolerance":
      ok = v <= 1
    elif k == "nc1_train":
      continue
    else:
      ok = v <= rtol
    if not ok:
      bad.append(f"{k}={v:.3g}")
  return bad


# ----------------------------------------------------------------------------- main
def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--depth", type=int, default=8)
  ap.add_argument("--width", type=int, default=256)
  ap.add_argument("--seeds", type=int, default=8)
  ap.add_argument("--num-train", type=int, default=10_000)
  ap.add_argument("--num-test", type=int, default=2_000)
  ap.add_argument("--in-dim", type=int, default=40)
  ap.add_argument("--classes", type=int, default=10)
  ap.add_argument("--batch-size", type=int, default=1024)
  ap.add_argument("--rank-samples", type=int, default=512)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--torch-threads", type=int, default=0, help="0: the number of cores")
  ap.add_argument("--no-compile", action="store_true",
                  help="leave out torch-stacked-compile (about a minute of compiling)")
  ap.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats, no compile")
  ap.add_argument("--json", default=None)
  a = ap.parse_args(argv)
  if a.quick:
    a.depth, a.width, a.seeds, a.num_train, a.num_test, a.repeats = 3, 32, 2, 600, 200, 2
    a.batch_size, a.rank_samples, a.no_compile = 128, 64, True

  import jax
  import torch
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  torch.set_num_threads(a.torch_threads or cores)
  res = {"args": vars(a), "load_start": loadavg(),
         "machine": {"cpu": cpu_model(), "cores": cores, "python": platform.python_version(),
                     "jax": jax.__version__, "torch": torch.__version__,
                     "torch_threads": torch.get_num_threads()}}
  C = a.classes
  x, y, xt, yt = make_data(a.num_train, a.num_test, a.in_dim, C)
  model = flax_mlp(a.depth, a.width, C)
  variables = init_params(model, a.seeds, x)
  run_jax = lambda: jax_analyze(model, variables, x, y, xt, yt, C, a.batch_size,
                                a.rank_samples)
  t0 = time.perf_counter()
  jx = run_jax()
  res["jax_first_call_s"] = time.perf_counter() - t0
  nc3_layer = jx["nc3_layer"]
  inputs = torch_inputs(variables, a.depth, x, y, xt, yt, a.batch_size, a.rank_samples)
  def one_thread(fn):  # torch with one intra-op thread (no OpenMP barrier per op)
    def run():
      n = torch.get_num_threads()
      torch.set_num_threads(1)
      try:
        return fn()
      finally:
        torch.set_num_threads(n)
    return run

  variants = {"jaxdepth": run_jax,
              "torch-stacked": lambda: torch_stacked(inputs, C, nc3_layer)}
  if torch.get_num_threads() > 1:
    variants["torch-stacked-1thread"] = one_thread(variants["torch-stacked"])
  if not a.no_compile:
    variants["torch-stacked-compile"] = lambda: torch_stacked(inputs, C, nc3_layer, True)
  variants["torch-loop"] = lambda: torch_loop(inputs, C, nc3_layer)
  torch_names = [k for k in variants if k != "jaxdepth"]
  # Warm-up (first torch calls allocate, torch.compile compiles; jaxdepth's is above;
  # the compiled variant is called twice: its second call still recompiled for the
  # dynamic batch dimension) and correctness.
  res["deviations"] = {}
  res["first_call_s"] = {"jaxdepth": res["jax_first_call_s"]}
  for name in torch_names:
    t0 = time.perf_counter()
    th = variants[name]()
    res["first_call_s"][name] = time.perf_counter() - t0
    if name.endswith("compile"):
      th = variants[name]()
    dev = deviations(jx, th, a.num_train, a.num_test)
    res["deviations"][name] = dev
    bad = check(dev)
    print(f"{name} vs jaxdepth, max deviations: "
          + ", ".join(f"{k} {v:.3g}" for k, v in dev.items())
          + ("  -- OK" if not bad else f"  -- OVER TOLERANCE: {bad}"), flush=True)
  print("first call (compile included): " + ", ".join(
      f"{k} {v:.2f} s" for k, v in res["first_call_s"].items()), flush=True)
  times = {k: [] for k in variants}
  loads = []
  for r in range(a.repeats):
    for name, fn in variants.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
    loads.append(loadavg()[0])
    print(f"repeat {r}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items())
          + f" (load {loads[-1]})", flush=True)
  best_torch = min(torch_names, key=lambda k: statistics.median(times[k]))
  ratios = [t / j for t, j in zip(times[best_torch], times["jaxdepth"])]
  res.update(times=times, median_s={k: statistics.median(v) for k, v in times.items()},
             best_torch=best_torch, speedup_per_repeat=ratios,
             speedup_median=statistics.median(ratios), load_per_repeat=loads,
             load_end=loadavg())
  print("median: " + ", ".join(f"{k} {v:.3f} s" for k, v in res["median_s"].items()))
  print(f"speed-up of jaxdepth over {best_torch} (its time / jaxdepth's; > 1: jaxdepth "
        f"faster): {res['speedup_median']:.2f}x "
        f"(median of per-repeat ratios {', '.join(f'{q:.2f}' for q in ratios)})")
  if a.json:
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)
  return res


if __name__ == "__main__":
  main()
