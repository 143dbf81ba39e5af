"""Streamed per-layer analysis of any jaxdepth Network (docs/definitions.md, "Minimal
depth"). One jitted program computes, for every layer and (under vmap) every run: NCC
train and test accuracy, CDNV on train and on test (two passes, centred), effective
depths, the Gram-matrix effective rank of the embeddings, and the network's own accuracy
and loss. Data come in fixed-size batches (the tail padded and masked, never dropped);
the passes read cached embeddings or recompute them batch by batch (``cache``)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.engine import devices
from jaxdepth.measure import collapse, rank
from jaxdepth.nets.base import Network


class Batched(NamedTuple):
  """A dataset cut into (num_batches, B, ...) with a validity mask."""
  x: jax.Array  # (NB, B, ...)
  y: jax.Array  # (NB, B) true labels (0 in padding)
  mask: jax.Array  # (NB, B) bool


def batch_pad(x, y, batch_size: int) -> Batched:
  """Pad to a multiple of ``batch_size`` and reshape; padding is masked out."""
  n = x.shape[0]
  nb = -(-n // batch_size)
  pad = nb * batch_size - n
  xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
  yp = np.concatenate([y, np.zeros((pad,), y.dtype)])
  mask = np.arange(nb * batch_size) < n
  return Batched(xp.reshape(nb, batch_size, *x.shape[1:]), yp.reshape(nb, batch_size),
                 mask.reshape(nb, batch_size))


def relabel(batched: Batched, labels_N) -> jax.Array:
  """Per-run training labels (N,) cut like ``batched.y``."""
  nb, b = batched.y.shape
  pad = nb * b - labels_N.shape[0]
  return jnp.concatenate([labels_N, jnp.zeros((pad,), labels_N.dtype)]).reshape(nb, b)


def gram_matrix(phi_NxD) -> jax.Array:
  """The smaller of Phi^T Phi (D x D) and Phi Phi^T (N x N): same non-zero spectrum
  as the Gram matrix K = Phi Phi^T, whose effective rank is reported."""
  n, d = phi_NxD.shape
  return phi_NxD.T @ phi_NxD if d <= n else phi_NxD @ phi_NxD.T


def _masked_eigvalsh(g, xp):
  """Eigenvalues of a stack of symmetric matrices; a non-finite matrix (a diverged
  run) gets NaN eigenvalues instead of an error.  ``xp`` is numpy or jax.numpy."""
  finite = xp.isfinite(g).all(axis=(-2, -1))
  ev = xp.linalg.eigvalsh(xp.where(finite[..., None, None], g, 0.0))
  return xp.where(finite[..., None], ev, xp.nan)


# finalize()'s Gram eigenvalues: "auto" (host on a CPU backend, else device), "host"
# or "device" (a module setting, for benchmarks).
EIGVALSH_ON = "auto"

_device_eigvalsh = jax.jit(lambda g: _masked_eigvalsh(g, jnp))


def host_eigvalsh(g) -> np.ndarray:
  """float64 eigenvalues of a stack of symmetric matrices on the host: one LAPACK
  thread per matrix, the stack split over one Python thread per core (LAPACK
  releases the GIL). Multi-threaded BLAS on these small matrices was up to 35x slower
  (measured on 2 cores: 128 64x64 matrices 1.03 s vs 0.028 s with one BLAS thread,
  when the other core was busy); each matrix's result is the same either way."""
  from concurrent.futures import ThreadPoolExecutor

  from threadpoolctl import threadpool_limits
  g = np.asarray(g, np.float64)
  flat = g.reshape(-1, *g.shape[-2:])
  workers = max(1, min(len(flat), devices.cpu_count()))
  with threadpool_limits(1, user_api="blas"):
    if workers == 1:
      ev = _masked_eigvalsh(flat, np)
    else:
      with ThreadPoolExecutor(workers) as ex:
        parts = list(ex.map(lambda c: _masked_eigvalsh(c, np),
                            np.array_split(flat, workers)))
      ev = np.concatenate(parts)
  return ev.reshape(*g.shape[:-1])


_entropy_jit = jax.jit(rank.entropy_from_singular_values)  # eagerly: 0.4 s of compiles


def _host_device():
  """The CPU device, or the default one where no CPU backend is loaded (JAX_PLATFORMS=
  cuda on an H200 raised 'Unknown backend cpu')."""
  try:
    return jax.local_devices(backend="cpu")[0]
  except RuntimeError:
    return jax.local_devices()[0]


@functools.cache
def _nc_from_gram_jit():
  """nc.nc_from_gram vmapped and jitted once (per analysis cost 280 ms at H=256)."""
  from jaxdepth.measure import nc
  return jax.jit(jax.vmap(lambda c, g, w, t, d: nc.nc_from_gram(
      c, g, w, t, d, eps=float(np.finfo(np.float32).eps))))


def _nc_host(st: dict) -> dict:
  """NC1/NC2 per run and layer from the streamed class statistics (host, float64): the
  definitions of measure/nc.py (nc_from_gram), with the cutoff of float32 features."""
  lead = st["nc_gram_train"].shape[:-2]
  flat = {k: np.asarray(v, np.float64).reshape(-1, *np.shape(v)[len(lead):])
          for k, v in st.items()}
  with jax.enable_x64(True), jax.default_device(_host_device()):
    got = jax.device_get(_nc_from_gram_jit()(
        flat["nc_counts_train"], flat["nc_gram_train"], flat["nc_w_train"],
        flat["nc_trw_train"], flat["nc_dim_train"]))
  enough = (flat["nc_counts_train"] > 0).sum(-1) >= 2
  finite = np.isfinite(flat["nc_gram_train"]).all((-2, -1)) & np.isfinite(
      flat["nc_w_train"]).all((-2, -1))
  return {f"{k}_train": np.where(enough & finite, np.asarray(v), np.nan).reshape(lead)
          for k, v in got.items()}


def finalize(out: dict) -> dict:
  """Host side: replace the Gram matrices ``gram_*`` by effective ranks ``rank_*``.

  rho(K) = entropy of the normalized eigenvalues of K (Huh et al. 2021). On the CPU
  the eigenvalues come from numpy float64 ``eigvalsh`` (LAPACK inside the large vmapped
  analysis program hung XLA:CPU, jax 0.10.2); on a GPU/TPU from one batched ``eigvalsh``
  on the device (a host loop cost 25 epochs per analysis at width 256 on an H100).
  Accepts device or host arrays with any leading axes (runs, layers); returns numpy.
  """
  out = dict(out)
  grams = {s: out.pop(f"gram_{s}") for s in ("train", "test") if f"gram_{s}" in out}
  if EIGVALSH_ON == "device" or (EIGVALSH_ON == "auto" and jax.default_backend() != "cpu"):
    evs = {s: _device_eigvalsh(g) for s, g in grams.items()}
  else:
    evs = {s: host_eigvalsh(g) for s, g in grams.items()}
  out, evs = jax.device_get((out, evs))
  if "nc_gram_train" in out:
    out.update(_nc_host({k: out.pop(k) for k in [k for k in out if k.startswith("nc_")]}))
  for split, ev in evs.items():
    ev = np.asarray(ev, np.float64)
    finite = np.isfinite(ev).all(axis=-1)  # diverged runs: NaN rank, no crash
    ev = np.clip(np.where(finite[..., None], ev, 0.0), 0.0, None)
    with jax.enable_x64(True):  # element-wise only: no decomposition inside XLA
      rho = np.asarray(_entropy_jit(ev))
    out[f"rank_{split}"] = np.where(finite, rho, np.nan)
  return out


def _forward(network: Network):
  """(variables, x) -> (logits, per-group embeddings flattened to (L_g, B, D_g))."""
  def forward(variables, x):
    logits, groups, _ = network.apply(variables, x, train=False)
    return logits, [g.reshape(g.shape[0], g.shape[1], -1) for g in groups]
  return forward


def _centres(forward, variables, train: Batched):
  """Centring point per layer: the mean of the first training batch (translation
  invariance makes this exact; it keeps float32 sums well conditioned)."""
  _, groups0 = forward(variables, train.x[0])
  m0 = train.mask[0].astype(jnp.float32)
  return [jnp.einsum("lbd,b->ld", g, m0) / jnp.maximum(m0.sum(), 1) for g in groups0]


def _class_sums(items, get, labels, mask, refs, C: int):
  """Pass 1 over batches: per-class counts and means of (f - ref), every layer.
  ``get(item) -> (logits, groups)`` turns one scanned item into embeddings."""
  def body(carry, xs):
    item, y, m = xs
    _, groups = get(item)
    out = []
    for (cnt, sums), f, r in zip(carry, groups, refs):
      c_b, s_b = jax.vmap(lambda f_, r_: collapse.class_sums(f_, y, C, r_, m))(f, r)
      out.append((cnt + c_b, sums + s_b))
    return out, None
  init = [(jnp.zeros((r.shape[0], C)), jnp.zeros((r.shape[0], C, r.shape[1])))
          for r in refs]
  carry, _ = jax.lax.scan(body, init, (items, labels, mask))
  return [(cnt, jax.vmap(collapse.means_from_sums)(cnt, sums)) for cnt, sums in carry]


def make_analyzer(network: Network, num_classes: int, eps: tuple[float, ...],
                  rank_samples: int = 512, cache: bool = False, classifier=None):
  """Returns analyze(variables, train, train_labels_NBxB, corrupted_NBxB, test) -> dict.

  ``classifier``: None, or ``(layer, get_w)``: ``nc3_duality_train`` at flat layer
  ``layer`` against the (C, D) matrix ``get_w(variables)`` (NaN at other layers).

  ``train``/``test`` are Batched (shared by all runs); ``train_labels`` are the labels
  the run was trained on and ``corrupted`` marks the corrupted ones. vmap over runs.
  With ``cache`` the embeddings of each split are computed once and both passes read
  them (for small layers); without it every pass recomputes them batch by batch, so
  memory stays at one batch of embeddings (wide conv layers).
  """
  C = num_classes
  eps_E = jnp.asarray(eps, jnp.float32)
  forward = _forward(network)

  def source(variables, data: Batched):
    """What the passes scan over, and how to turn one item into (logits, groups)."""
    if cache:
      return jax.lax.map(lambda x: forward(variables, x), data.x), lambda item: item
    return data.x, lambda x: forward(variables, x)

  def pass_sums(src, data: Batched, labels, refs):
    """Pass 1: per-class counts and sums of (f - ref), every layer."""
    return _class_sums(*src, labels, data.mask, refs, C)

  def pass_m2(src, data: Batched, labels, stats, refs, ncc_stats, ncc_labels, subset,
              ms=None):
    """Pass 2: M2 per class, NCC correct counts (on ``ncc_labels``), network loss/acc;
    with ``ms`` (rows M_c = mu_c - mu_G per layer) also W = M Sigma_W M^T (times N) and
    the NCC's agreement with the network's prediction (NC1, NC4)."""
    items, get = src

    def body(carry, xs):
      item, y, y_ncc, m, sub = xs
      logits, groups = get(item)
      mf = m.astype(jnp.float32)
      net_pred = jnp.argmax(logits, 1)
      m2s, corrects, ws, agrees = [], [], [], []
      for gi, (f, r, (_cnt, mu), (ncnt, nmu), acc_m2, acc_c) in enumerate(zip(
          groups, refs, stats, ncc_stats, carry["m2"], carry["correct"])):
        m2_b = jax.vmap(lambda f_, mu_, r_: collapse.class_m2(f_, y, mu_, r_, m))(f, mu, r)
        pred = jax.vmap(lambda f_, mu_, c_, r_: jnp.argmax(
            collapse.ncc_scores(f_, mu_, c_, r_), axis=1))(f, nmu, ncnt, r)
        hit = (pred == y_ncc[None]).astype(jnp.float32)
        c_b = jnp.stack([hit @ mf, hit @ (mf * (1 - sub)), hit @ (mf * sub)], axis=1)
        m2s.append(acc_m2 + m2_b)
        corrects.append(acc_c + c_b)
        if ms is not None:  # residuals h_i - mu_{y_i}, projected on the rows of M
          resid = f - r[:, None] - jnp.take(mu, y, axis=1)  # (L, B, D)
          p_LxBxC = jnp.einsum("lbd,lcd->lbc", resid, ms[gi])
          ws.append(carry["w"][gi] + jnp.einsum("lbc,lbe,b->lce", p_LxBxC, p_LxBxC, mf))
          agrees.append(carry["agree"][gi] + (pred == net_pred[None]).astype(
              jnp.float32) @ mf)
      ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), y_ncc[:, None], axis=1)[:, 0]
      new = {"m2": m2s, "correct": corrects, "w": ws, "agree": agrees,
             "loss": carry["loss"] + jnp.sum(ce * mf),
             "acc": carry["acc"] + jnp.sum((net_pred == y_ncc) * mf)}
      return new, None
    with_nc = ms is not None
    init = {"m2": [jnp.zeros((r.shape[0], C)) for r in refs],
            "correct": [jnp.zeros((r.shape[0], 3)) for r in refs],
            "w": [jnp.zeros((r.shape[0], C, C)) for r in refs] if with_nc else [],
            "agree": [jnp.zeros((r.shape[0],)) for r in refs] if with_nc else [],
            "loss": jnp.zeros(()), "acc": jnp.zeros(())}
    carry, _ = jax.lax.scan(body, init, (items, labels, ncc_labels, data.mask, subset))
    return carry

  def analyze(variables, train: Batched, train_labels, corrupted, test: Batched):
    # Every matmul of the analysis, the forward passes included, at full float32: on
    # GPU/TPU the default would use TF32/bf16 passes, and the NCC/CDNV numbers would
    # then depend on the batch size and drift from the formula.
    with jax.default_matmul_precision("highest"):
      return _analyze(variables, train, train_labels, corrupted, test)

  def _analyze(variables, train: Batched, train_labels, corrupted, test: Batched):
    refs = _centres(forward, variables, train)
    sub = corrupted.astype(jnp.float32)
    tr_src, te_src = source(variables, train), source(variables, test)
    tr_stats = pass_sums(tr_src, train, train_labels, refs)
    te_stats = pass_sums(te_src, test, test.y, refs)
    ms = [_centred_means(cnt, mu) for cnt, mu in tr_stats]  # rows mu_c - mu_G
    tr = pass_m2(tr_src, train, train_labels, tr_stats, refs, tr_stats, train_labels, sub,
                 ms)
    te = pass_m2(te_src, test, test.y, te_stats, refs, tr_stats, test.y,
                 jnp.zeros(test.mask.shape))
    n_tr = train.mask.sum()
    n_te = test.mask.sum()
    n_corrupt = jnp.sum(sub * train.mask)

    def cdnv_all(stats, m2):
      out = [jax.vmap(collapse.cdnv_from_stats)(cnt, mu, mm) for (cnt, mu), mm in
             zip(stats, m2)]
      return jax.tree.map(lambda *a: jnp.concatenate(a), *out)

    cd_tr, cd_te = cdnv_all(tr_stats, tr["m2"]), cdnv_all(te_stats, te["m2"])
    corr_tr = jnp.concatenate(tr["correct"])  # (L, 3): all, clean, corrupted
    corr_te = jnp.concatenate(te["correct"])
    ncc_train = corr_tr[:, 0] / n_tr
    # Error fractions of exact counts; effective_depth rounds them back to counts with
    # n_tr (not 1 - acc compared in float32, which puts 4/400 just above 0.01).
    err_L = (n_tr - corr_tr[:, 0]) / n_tr
    # Gram-matrix effective rank of the embeddings of a fixed subset.
    def ranks(data: Batched, src):  # Gram matrices of the first rank_samples examples
      # Padding rows are zeroed: zero rows leave the non-zero singular values as
      # they are, so the rank is that of the first min(k, N) real examples.
      nb, b = data.mask.shape
      k = min(rank_samples, nb * b)
      m = data.mask.reshape(-1)[:k].astype(jnp.float32)
      if cache:  # reuse the cached embeddings: (NB, L, B, D) -> (L, NB*B, D)[:, :k]
        gs = [jnp.moveaxis(g, 1, 0).reshape(g.shape[1], nb * b, -1)[:, :k]
              for g in src[0][1]]
      else:
        _, gs = forward(variables, data.x.reshape(-1, *data.x.shape[2:])[:k])
      return [jax.vmap(gram_matrix)(g * m[None, :, None]) for g in gs]

    out = {}
    if classifier is not None:
      out["nc3_duality_train"] = _nc3(classifier, variables, ms, tr_stats)
    return out | {
        "ncc_train_acc": ncc_train,
        "ncc_test_acc": corr_te[:, 0] / n_te,
        "ncc_train_acc_clean": corr_tr[:, 1] / jnp.maximum(n_tr - n_corrupt, 1),
        "ncc_train_acc_corrupted": jnp.where(
            n_corrupt > 0, corr_tr[:, 2] / jnp.maximum(n_corrupt, 1), jnp.nan),
        "cdnv_train": cd_tr.value, "cdnv_test": cd_te.value,
        "degenerate_pairs_train": cd_tr.num_degenerate_pairs,
        "degenerate_pairs_test": cd_te.num_degenerate_pairs,
        "empty_classes_train": cd_tr.num_empty_classes[0],
        "empty_classes_test": cd_te.num_empty_classes[0],
        # Gram matrices per layer; analysis.finalize() turns them into ranks.
        "gram_train": _stack(ranks(train, tr_src)), "gram_test": _stack(ranks(test, te_src)),
        "effective_depth": jax.vmap(
            lambda e: collapse.effective_depth(err_L, e, n_tr))(eps_E),
        "effective_depth_suffix": jax.vmap(
            lambda e: collapse.effective_depth(err_L, e, n_tr, suffix=True))(eps_E),
        # Class statistics of the NC metrics (finalize turns them into nc1, nc2_*).
        "nc_counts_train": jnp.concatenate([cnt for cnt, _ in tr_stats]),
        "nc_gram_train": jnp.concatenate([jnp.einsum("lcd,led->lce", m_, m_) for m_ in ms]),
        "nc_w_train": jnp.concatenate(tr["w"]) / n_tr,
        "nc_trw_train": jnp.concatenate([m2.sum(-1) for m2 in tr["m2"]]) / n_tr,
        "nc_dim_train": jnp.concatenate([jnp.full((m_.shape[0],), max(C, m_.shape[2]))
                                         for m_ in ms]),
        "nc4_train": jnp.concatenate(tr["agree"]) / n_tr,
        "train_loss": tr["loss"] / n_tr, "train_acc": tr["acc"] / n_tr,
        "test_loss": te["loss"] / n_te, "test_acc": te["acc"] / n_te,
    }

  return analyze


def _nc3(classifier, variables, ms, stats):
  """(L,) NC3 (nc.collapse_metrics' definition) at the classifier's layer, else NaN."""
  layer, get_w = classifier
  sizes = [m_.shape[0] for m_ in ms]
  g = int(np.searchsorted(np.cumsum(sizes), layer, side="right"))
  i = layer - sum(sizes[:g])
  m_CxD, present_C = ms[g][i], stats[g][0][i] > 0
  w_CxD = jnp.where(present_C[:, None], jnp.asarray(get_w(variables), m_CxD.dtype), 0)
  nc3 = jnp.linalg.norm(w_CxD / jnp.linalg.norm(w_CxD) - m_CxD / jnp.linalg.norm(m_CxD))
  nc3 = jnp.where(present_C.sum() >= 2, nc3, jnp.nan)
  return jnp.full((sum(sizes),), jnp.nan, m_CxD.dtype).at[layer].set(nc3)


def _centred_means(cnt_LxC, mu_LxCxD):
  """Rows M_c = mu_c - mu_G per layer (zero rows for classes absent from the set)."""
  n_L = cnt_LxC.sum(-1)
  mu_g = jnp.einsum("lc,lcd->ld", cnt_LxC, mu_LxCxD) / jnp.maximum(n_L, 1)[:, None]
  return jnp.where((cnt_LxC > 0)[..., None], mu_LxCxD - mu_g[:, None], 0.0)


def _stack(grams):
  """Layer groups of Gram matrices as one (L, m, m) array (groups may differ in m:
  then each is zero-padded, which leaves the non-zero spectrum unchanged)."""
  m = max(g.shape[-1] for g in grams)
  return jnp.concatenate([jnp.pad(g, ((0, 0), (0, m - g.shape[-1]), (0, m - g.shape[-1])))
                          for g in grams])


def make_ncc_predictor(network: Network, num_classes: int):
  """Returns predict(variables, train, train_labels_NBxB, evals) ->
  (ncc_pred_LxNBxB, net_pred_NBxB).

  Per-layer NCC predictions on ``evals`` (Batched) with the class means of ``train``
  (Batched) under ``train_labels``, streamed and centred like ``make_analyzer`` (same
  class sums, means and NCC scores, at full float32 matmul precision), and the
  network's own argmax on ``evals``. Padding rows of ``evals`` get predictions too
  (mask them). vmap over runs.
  """
  C = num_classes
  forward = _forward(network)

  def predict(variables, train: Batched, train_labels, evals: Batched):
    with jax.default_matmul_precision("highest"):
      refs = _centres(forward, variables, train)
      stats = _class_sums(train.x, lambda x: forward(variables, x), train_labels,
                          train.mask, refs, C)

      def preds(_, x):
        logits, groups = forward(variables, x)
        p = [jax.vmap(lambda f_, mu_, c_, r_: jnp.argmax(
            collapse.ncc_scores(f_, mu_, c_, r_), axis=1))(f, mu, cnt, r)
             for f, r, (cnt, mu) in zip(groups, refs, stats)]
        return None, (jnp.concatenate(p), jnp.argmax(logits, axis=1))
      _, (ncc_NBxLxB, net_NBxB) = jax.lax.scan(preds, None, evals.x)
      return jnp.moveaxis(ncc_NBxLxB, 1, 0), net_NBxB

  return predict
