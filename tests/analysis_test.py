"""Streamed per-layer analysis equals a one-shot float64 numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdepth import nets
from jaxdepth.measure import analysis
from tests.collapse_test import np_cdnv, np_ncc_pred


def np_rank(phi):
  s = np.linalg.svd(np.asarray(phi, np.float64), compute_uv=False) ** 2
  p = s / s.sum()
  p = p[p > 0]
  return float(-(p * np.log(p)).sum())


@pytest.fixture(scope="module")
def setup():
  rng = np.random.default_rng(0)
  C, D, n_tr, n_te = 4, 10, 230, 170  # neither a multiple of the batch size
  mu = rng.normal(size=(C, D)) * 2
  y_tr = rng.integers(0, C, n_tr).astype(np.int32)
  y_te = rng.integers(0, C, n_te).astype(np.int32)
  x_tr = (mu[y_tr] + rng.normal(size=(n_tr, D))).astype(np.float32)
  x_te = (mu[y_te] + rng.normal(size=(n_te, D))).astype(np.float32)
  labels = y_tr.copy()
  corrupted = np.zeros(n_tr, bool)
  corrupted[:40] = True
  labels[:40] = (labels[:40] + 1) % C
  net = nets.mlp(3, 12, D, C, batchnorm=True)
  v = net.init(jax.random.key(0))
  v["batch_stats"] = {"mean": 0.05 * jnp.ones((3, 12)), "var": 1.5 * jnp.ones((3, 12))}
  return net, v, C, x_tr, y_tr, labels, corrupted, x_te, y_te


def test_streamed_analysis_matches_numpy(setup):
  net, v, C, x_tr, y_tr, labels, corrupted, x_te, y_te = setup
  eps = (0.01, 0.5)
  tr_b = analysis.batch_pad(x_tr, y_tr, 64)
  te_b = analysis.batch_pad(x_te, y_te, 64)
  an = analysis.make_analyzer(net, C, eps, rank_samples=100)
  out = analysis.finalize(jax.jit(an)(v, tr_b, analysis.relabel(tr_b, jnp.asarray(labels)),
                                     analysis.relabel(tr_b, jnp.asarray(corrupted)), te_b))
  logits_tr, (f_tr,), _ = net.apply(v, x_tr, train=False)
  logits_te, (f_te,), _ = net.apply(v, x_te, train=False)
  f_tr, f_te = np.asarray(f_tr, np.float64), np.asarray(f_te, np.float64)
  for l in range(3):
    means = np.stack([f_tr[l][labels == c].mean(0) for c in range(C)])
    pred_tr = np_ncc_pred(f_tr[l], means)
    pred_te = np_ncc_pred(f_te[l], means)
    assert float(out["ncc_train_acc"][l]) == pytest.approx(np.mean(pred_tr == labels), abs=1e-6)
    assert float(out["ncc_test_acc"][l]) == pytest.approx(np.mean(pred_te == y_te), abs=1e-6)
    assert float(out["ncc_train_acc_clean"][l]) == pytest.approx(
        np.mean(pred_tr[~corrupted] == labels[~corrupted]), abs=1e-6)
    assert float(out["ncc_train_acc_corrupted"][l]) == pytest.approx(
        np.mean(pred_tr[corrupted] == labels[corrupted]), abs=1e-6)
    np.testing.assert_allclose(out["cdnv_train"][l], np_cdnv(f_tr[l], labels, C), rtol=1e-4)
    np.testing.assert_allclose(out["cdnv_test"][l], np_cdnv(f_te[l], y_te, C), rtol=1e-4)
    np.testing.assert_allclose(out["rank_train"][l], np_rank(f_tr[l][:100]), rtol=1e-4)
    np.testing.assert_allclose(out["rank_test"][l], np_rank(f_te[l][:100]), rtol=1e-4)
  err = 1 - np.asarray(out["ncc_train_acc"])
  for e, got in zip(eps, out["effective_depth"]):
    ok = np.flatnonzero(err <= e)
    assert int(got) == (ok[0] + 1 if ok.size else 4)
  lt = np.asarray(logits_tr, np.float64)
  lse = np.log(np.exp(lt - lt.max(1, keepdims=True)).sum(1)) + lt.max(1)
  want_loss = np.mean(lse - lt[np.arange(len(labels)), labels])
  assert float(out["train_loss"]) == pytest.approx(want_loss, rel=1e-4)
  assert float(out["train_acc"]) == pytest.approx(np.mean(lt.argmax(1) == labels))
  assert float(out["test_acc"]) == pytest.approx(np.mean(np.asarray(logits_te).argmax(1) == y_te))


def test_batch_size_does_not_change_results(setup):
  net, v, C, x_tr, y_tr, labels, corrupted, x_te, y_te = setup
  outs = []
  for b in (50, 230, 1000):
    tr_b, te_b = analysis.batch_pad(x_tr, y_tr, b), analysis.batch_pad(x_te, y_te, b)
    an = analysis.make_analyzer(net, C, (0.01,), rank_samples=50)
    outs.append(analysis.finalize(an(v, tr_b, analysis.relabel(tr_b, jnp.asarray(labels)),
                                     analysis.relabel(tr_b, jnp.asarray(corrupted)), te_b)))
  for o in outs[1:]:
    for k in ("ncc_train_acc", "ncc_test_acc", "train_acc"):
      np.testing.assert_allclose(o[k], outs[0][k], atol=1e-6)
    for k in ("cdnv_train", "cdnv_test", "train_loss", "rank_train"):
      np.testing.assert_allclose(o[k], outs[0][k], rtol=1e-4)


def test_batch_pad_masks_tail():
  b = analysis.batch_pad(np.ones((7, 2), np.float32), np.arange(7), 3)
  assert b.x.shape == (3, 3, 2)
  np.testing.assert_array_equal(b.mask.reshape(-1), [1] * 7 + [0, 0])


def test_cached_equals_streamed(setup):
  net, v, C, x_tr, y_tr, labels, corrupted, x_te, y_te = setup
  tr_b, te_b = analysis.batch_pad(x_tr, y_tr, 64), analysis.batch_pad(x_te, y_te, 64)
  args = (v, tr_b, analysis.relabel(tr_b, jnp.asarray(labels)),
          analysis.relabel(tr_b, jnp.asarray(corrupted)), te_b)
  a = analysis.make_analyzer(net, C, (0.01,), 50, cache=False)(*args)
  b = analysis.make_analyzer(net, C, (0.01,), 50, cache=True)(*args)
  for k in a:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_finalize_device_path_equals_host_path(monkeypatch):
  """The accelerator branch (batched eigvalsh on the device) gives the host's ranks."""
  rng = np.random.default_rng(0)
  phi = rng.standard_normal((2, 3, 40, 12)).astype(np.float32) * np.geomspace(1, 1e-3, 12)
  g = np.einsum("rlnd,rlne->rlde", phi, phi)
  g[1, 2, 0, 0] = np.nan  # a diverged run's layer: NaN rank, not a crash
  out = {"gram_train": g, "gram_test": g[:, :1], "ncc_train_acc": np.ones((2, 3))}
  host = analysis.finalize(dict(out))
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  dev = analysis.finalize({k: jnp.asarray(v) for k, v in out.items()})
  assert set(dev) == set(host) == {"rank_train", "rank_test", "ncc_train_acc"}
  np.testing.assert_allclose(dev["rank_train"], host["rank_train"], rtol=1e-4)
  np.testing.assert_allclose(dev["rank_test"], host["rank_test"], rtol=1e-4)
  assert np.isnan(dev["rank_train"][1, 2]) and np.isfinite(dev["rank_train"][0]).all()
  # Reference: entropy of the normalized eigenvalues, numpy float64.
  ev = np.clip(np.linalg.eigvalsh(g[0, 0].astype(np.float64)), 0, None)
  p = ev / ev.sum()
  np.testing.assert_allclose(host["rank_train"][0, 0], -np.sum(p[p > 0] * np.log(p[p > 0])),
                             rtol=1e-6)


def test_host_eigvalsh_matches_numpy_per_matrix():
  from jaxdepth.measure import analysis
  rng = np.random.default_rng(0)
  a = rng.normal(size=(3, 5, 7, 7))
  g = a @ np.swapaxes(a, -1, -2)
  g[1, 2, 0, 0] = np.nan                               # a diverged run's Gram matrix
  ev = analysis.host_eigvalsh(g.astype(np.float32))
  assert ev.shape == (3, 5, 7) and ev.dtype == np.float64
  assert np.isnan(ev[1, 2]).all()
  ok = np.ones((3, 5), bool)
  ok[1, 2] = False
  want = np.linalg.eigvalsh(g.astype(np.float32).astype(np.float64)[ok])
  np.testing.assert_array_equal(ev[ok], want)           # same LAPACK call per matrix


def test_streamed_nc_metrics_equal_collapse_metrics(setup):
  """NC1, NC2 and NC4 of the streamed analyzer (class statistics accumulated over
  batches, finalized on the host) equal jaxdepth.collapse_metrics on the whole set of
  embeddings, layer by layer, and a numpy float64 computation of NC1."""
  from jaxdepth.measure import nc
  net, v, C, x_tr, y_tr, labels, corrupted, x_te, y_te = setup
  tr_b, te_b = analysis.batch_pad(x_tr, y_tr, 64), analysis.batch_pad(x_te, y_te, 64)
  an = analysis.make_analyzer(net, C, (0.01,), rank_samples=50,
                              classifier=(2, net.classifier))
  out = analysis.finalize(jax.jit(an)(v, tr_b, analysis.relabel(tr_b, jnp.asarray(labels)),
                                     analysis.relabel(tr_b, jnp.asarray(corrupted)), te_b))
  assert not [k for k in out if k.startswith("nc_")]  # statistics consumed
  # NC3 at the top layer against the MLP's own head (w_out^T), NaN below it; the
  # reference is collapse_metrics in float64 on the whole embedding matrix.
  logits, (f_tr,), _ = net.apply(v, x_tr, train=False)
  with jax.enable_x64(True):
    want3 = nc.collapse_metrics(
        jnp.asarray(np.asarray(f_tr[2], np.float64)), jnp.asarray(labels), C,
        classifier=jnp.asarray(np.asarray(v["params"]["w_out"], np.float64).T))
  assert np.isnan(out["nc3_duality_train"][:2]).all()
  np.testing.assert_allclose(out["nc3_duality_train"][2], want3["nc3_duality"], rtol=1e-5)
  logits, (f_tr,), _ = net.apply(v, x_tr, train=False)
  pred = jnp.argmax(logits, 1)
  for l in range(3):
    want = nc.collapse_metrics(f_tr[l], jnp.asarray(labels), C, predictions=pred)
    for k in ("nc1", "nc1_ratio", "nc2_equinorm", "nc2_equiangular", "nc2_maxangle",
              "nc2_etf_error"):
      # Both from float32 statistics (streamed sums vs one pass); NC1 divides by the
      # squared eigenvalues of M M^T, which amplifies their rounding: 2e-4 relative.
      np.testing.assert_allclose(out[f"{k}_train"][l], want[k], rtol=2e-4, err_msg=k)
    np.testing.assert_allclose(out["nc4_train"][l], want["nc4_agreement"], atol=1e-6)
    # NC1 from its definition in float64: tr(Sigma_W Sigma_B^+) / C.
    f = np.asarray(f_tr[l], np.float64)
    mu = np.stack([f[labels == c].mean(0) for c in range(C)])
    m = mu - f.mean(0)
    r = f - mu[labels]
    sw, sb = r.T @ r / len(f), m.T @ m / C
    np.testing.assert_allclose(out["nc1_train"][l],
                               np.trace(sw @ np.linalg.pinv(sb, rcond=1e-6)) / C, rtol=2e-4)


def test_nc_finalisation_without_a_cpu_backend(monkeypatch):
  """With JAX_PLATFORMS naming only an accelerator there is no 'cpu' backend (seen on
  an H200: 'Unknown backend cpu'); the NC finalisation then runs on the default device
  and gives the same numbers."""
  from jaxdepth.measure import nc
  rng = np.random.default_rng(3)
  C, L = 4, 2
  m = rng.normal(size=(L, C, 6))
  st = {"nc_counts_train": np.full((L, C), 5.0), "nc_gram_train": m @ m.transpose(0, 2, 1),
        "nc_w_train": 0.1 * np.eye(C)[None].repeat(L, 0),
        "nc_trw_train": np.full((L,), 0.6), "nc_dim_train": np.full((L,), 6.0)}
  want = analysis._nc_host(dict(st))
  real = jax.local_devices

  def no_cpu(*args, backend=None, **kw):
    if backend == "cpu":
      raise RuntimeError("Unknown backend cpu. Available backends are ['cuda']")
    return real(*args, **kw)
  monkeypatch.setattr(jax, "local_devices", no_cpu)
  got = analysis._nc_host(dict(st))
  assert set(got) == {f"{k}_train" for k in nc.KEYS if k.startswith(("nc1", "nc2"))}
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
