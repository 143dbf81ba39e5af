"""Neural-collapse metrics NC1-NC4 of one set of embeddings (issue 22).

Papyan, Han & Donoho 2020, "Prevalence of neural collapse during the terminal phase of
deep learning training", with the CDNV of Galanti et al. 2022 and the NCC accuracy of
collapse.py. ``collapse_metrics`` is pure, jittable and vmappable (over layers and
runs): shapes are checked with chex, values only through masks.

Notation: h_i the N features (rows), y_i their labels, mu_c the class means, mu_G the
mean of all N features, M the matrix of rows M_c = mu_c - mu_G over the *present*
classes (count > 0; C_eff of them), Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(.)^T and
Sigma_B = (1/C_eff) sum_c M_c M_c^T.

Numerics: the class statistics come from collapse.class_stats (two passes: the features
are centred at mu_G, then at their class mean; never E|h|^2 - |mu|^2), every product
runs at matmul precision "highest", and the dtype follows the input (float64 features
with x64 enabled give float64 metrics; anything else float32).

Sigma_B^+ (NC1) comes from C x C matrices rather than the D x D ones: with G = M M^T =
U diag(s^2) U^T and W = M Sigma_W M^T, tr(Sigma_W Sigma_B^+) / C_eff = sum_k
(U^T W U)_kk / s_k^4 (v_k = M^T u_k / s_k are Sigma_B's eigenvectors). The trainers'
streamed analysis accumulates exactly G and W, so both share ``nc_from_gram``. The
pseudo-inverse keeps the eigenvalues lambda_k = s_k^2 / C_eff
with (a) k among the C_eff - 1 largest (Sigma_B has rank <= C_eff - 1: the rows of M,
weighted by the class counts, sum to zero; the rounding residue of that null direction
is never inverted) and (b) lambda_k > PINV_RTOL_EPS * max(C, D) * eps(dtype) *
lambda_max (numpy's matrix_rank rule: a direction below it is rounding, not spread).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

import jaxdepth.measure.collapse as collapse  # not "from jaxdepth.measure": no import circle

PINV_RTOL_EPS = 1.0  # relative eigenvalue cutoff of Sigma_B^+, in units of max(C, D) * eps

KEYS = ("ncc_acc", "cdnv", "nc1", "nc1_ratio", "nc2_equinorm", "nc2_equiangular",
        "nc2_maxangle", "nc2_etf_error", "nc3_duality", "nc4_agreement", "counts")


def _safe_div(a, b):
  """a / b, with b = 0 replaced by 1 (the caller masks those entries)."""
  return a / jnp.where(b == 0, 1, b)


def collapse_metrics(features, labels, num_classes: int, classifier=None,
                     predictions=None) -> dict:
  """Neural-collapse metrics of one layer's features.

  Args:
    features: (N, D) embeddings h_i.
    labels: (N,) integer labels in [0, num_classes).
    num_classes: C (static).
    classifier: optional (C, D) last-layer weights W (for NC3).
    predictions: optional (N,) classes predicted by the network (for NC4).
  Returns:
    dict of scalars in the features' dtype (``counts``: (C,) int32):
      ncc_acc: fraction of samples whose nearest class mean (ties to the lower class
        index; absent classes never win) is their label.
      cdnv: collapse.cdnv_from_stats (mean over pairs of (Var_i + Var_j) / (2 |mu_i -
        mu_j|^2); coincident means are left out, NaN if no pair is left).
      nc1: tr(Sigma_W Sigma_B^+) / C_eff (the cutoff of Sigma_B^+: module docstring).
      nc1_ratio: tr(Sigma_W) / tr(Sigma_B).
      nc2_equinorm: std_c |M_c| / mean_c |M_c| (population std).
      nc2_equiangular: std over pairs c != c' of cos(M_c, M_c') (population std).
      nc2_maxangle: mean over pairs c != c' of |cos(M_c, M_c') + 1 / (C_eff - 1)|.
      nc2_etf_error: |M M^T / |M M^T|_F - (I - 11^T / C_eff) / sqrt(C_eff - 1)|_F.
      nc3_duality: |W / |W|_F - M / |M|_F|_F, the rows of W of absent classes left out
        (NaN without a classifier).
      nc4_agreement: fraction of samples whose predicted class is their NCC class (NaN
        without predictions).
      counts: samples per class.
  Edge cases (all defined, no exception):
    - classes absent from the sample are left out of M, of C (C_eff in every NC
      formula, including the ETF target) and of the NCC vote;
    - fewer than 2 present classes: NaN for cdnv, nc1, nc1_ratio, nc2_*, nc3_duality
      (ncc_acc and nc4_agreement stay defined);
    - Sigma_B = 0 (all present means coincide): nc1 is NaN; a present class whose mean
      equals mu_G has no direction, so the cosine metrics (and nc3 if M = 0) are NaN;
    - any non-finite feature: every float metric is NaN (counts stay exact).
  """
  features = jnp.asarray(features)
  labels = jnp.asarray(labels)
  chex.assert_rank(features, 2)
  chex.assert_rank(labels, 1)
  chex.assert_type(labels, int)
  chex.assert_equal_shape_prefix([features, labels], 1)
  if classifier is not None:
    classifier = jnp.asarray(classifier)
    chex.assert_shape(classifier, (num_classes, features.shape[1]))
  if predictions is not None:
    predictions = jnp.asarray(predictions)
    chex.assert_type(predictions, int)
    chex.assert_equal_shape([predictions, labels])
  with jax.default_matmul_precision("highest"):
    return _metrics(features, labels, num_classes, classifier, predictions)


def nc_from_gram(counts_C, g_CxC, w_CxC, trace_w, dim, eps=None) -> dict:
  """NC1 and NC2 from class statistics: the definitions of this module, shared by
  ``collapse_metrics`` and the trainers' streamed analysis (measure/analysis.py).

  Args:
    counts_C: samples per class (absent classes: 0; their rows of G and W are zero).
    g_CxC: G = M M^T, the Gram matrix of the rows M_c = mu_c - mu_G.
    w_CxC: W = M Sigma_W M^T.
    trace_w: tr(Sigma_W).
    dim: max(C, D), for the pseudo-inverse cutoff (may be an array).
    eps: the rounding unit of the features' dtype (default: that of G's dtype).
  Returns:
    nc1, nc1_ratio, nc2_equinorm, nc2_equiangular, nc2_maxangle, nc2_etf_error (NaN
    where undefined; the caller masks C_eff < 2). With G = U diag(lambda) U^T,
    tr(Sigma_W Sigma_B^+) / C_eff = sum_k (U^T W U)_kk / lambda_k^2 over the kept
    eigenvalues (see the module docstring for the cutoff).
  """
  dtype = jnp.result_type(g_CxC.dtype, jnp.float32)
  g_CxC, w_CxC = g_CxC.astype(dtype), w_CxC.astype(dtype)
  C = g_CxC.shape[-1]
  nan = jnp.array(jnp.nan, dtype)
  present_C = counts_C > 0
  c_eff = present_C.sum()
  ce = c_eff.astype(dtype)
  norm2_C = jnp.where(present_C, jnp.diagonal(g_CxC), 0)
  tr_b = jnp.sum(norm2_C) / jnp.maximum(ce, 1)
  nc1_ratio = _safe_div(jnp.asarray(trace_w, dtype), tr_b)
  lam_K, u_CxK = jnp.linalg.eigh(g_CxC)
  lam_K, u_CxK = lam_K[::-1], u_CxK[:, ::-1]  # descending
  rtol = PINV_RTOL_EPS * jnp.asarray(dim, dtype) * (jnp.finfo(dtype).eps if eps is None
                                                     else eps)
  keep_K = (jnp.arange(C) < c_eff - 1) & (lam_K > rtol * lam_K[0]) & (lam_K > 0)
  proj_K = jnp.einsum("ck,ce,ek->k", u_CxK, w_CxC, u_CxK,
                      precision=jax.lax.Precision.HIGHEST)
  nc1 = jnp.sum(jnp.where(keep_K, _safe_div(proj_K, jnp.square(lam_K)), 0))
  nc1 = jnp.where(keep_K.any(), nc1, nan)

  # NC2 over present classes and pairs c != c' (each unordered pair once: the same mean
  # and population std as over ordered pairs).
  norm_C = jnp.sqrt(norm2_C)
  mean_norm = jnp.sum(jnp.where(present_C, norm_C, 0)) / jnp.maximum(ce, 1)
  var_norm = jnp.sum(jnp.where(present_C, jnp.square(norm_C - mean_norm), 0)) / jnp.maximum(
      ce, 1)
  equinorm = jnp.sqrt(var_norm) / mean_norm
  cos_CxC = g_CxC / (norm_C[:, None] * norm_C[None])  # NaN for absent classes: masked
  pair_CxC = jnp.triu(jnp.ones((C, C), bool), k=1) & present_C[:, None] & present_C[None]
  n_pairs = jnp.maximum(pair_CxC.sum(), 1).astype(dtype)
  pair_sum = lambda x: jnp.sum(jnp.where(pair_CxC, x, 0))
  mean_cos = pair_sum(cos_CxC) / n_pairs
  equiangular = jnp.sqrt(pair_sum(jnp.square(cos_CxC - mean_cos)) / n_pairs)
  maxangle = pair_sum(jnp.abs(cos_CxC + 1 / jnp.maximum(ce - 1, 1))) / n_pairs
  both_CxC = present_C[:, None] & present_C[None]
  target_CxC = jnp.where(both_CxC, jnp.eye(C, dtype=dtype) - 1 / jnp.maximum(ce, 1), 0)
  target_CxC = target_CxC / jnp.sqrt(jnp.maximum(ce - 1, 1))
  etf_error = jnp.linalg.norm(g_CxC / jnp.linalg.norm(g_CxC) - target_CxC)
  return dict(nc1=nc1, nc1_ratio=nc1_ratio, nc2_equinorm=equinorm,
              nc2_equiangular=equiangular, nc2_maxangle=maxangle, nc2_etf_error=etf_error)


def _metrics(features, labels, C: int, classifier, predictions) -> dict:
  dtype = jnp.promote_types(features.dtype, jnp.float32)
  N, D = features.shape
  nan = jnp.array(jnp.nan, dtype)
  finite = jnp.all(jnp.isfinite(features))
  # Zeros in place of non-finite features: no NaN reaches the SVD; all NaN at the end.
  h_NxD = jnp.where(finite, features, 0).astype(dtype)

  st = collapse.class_stats(h_NxD, labels, C)
  ref_D = st.ref_D.astype(dtype)  # mu_G
  M_CxD = st.means_CxD.astype(dtype)  # rows mu_c - mu_G; zero rows for absent classes
  present_C = st.counts_C > 0
  c_eff = present_C.sum()
  between_ok = c_eff >= 2

  # NCC: collapse's scores (absent classes -inf); argmax takes the lowest index on ties.
  ncc_N = jnp.argmax(collapse.ncc_scores(h_NxD, M_CxD, st.counts_C, ref_D), axis=1)
  ncc_acc = jnp.mean((ncc_N == labels).astype(dtype))
  cdnv = collapse.cdnv_from_stats(st.counts_C, M_CxD, st.m2_C.astype(dtype)).value

  # NC1 and NC2 from the class Gram matrix G = M M^T and W = M Sigma_W M^T (C x C), the
  # one definition the streamed trainer analysis shares (nc_from_gram).
  oh_NxC = collapse.one_hot_masked(labels, C, dtype=dtype)
  r_NxD = (h_NxD - ref_D[None]) - collapse._mm(oh_NxC, M_CxD)  # h_i - mu_{y_i}
  p_NxC = collapse._mm(r_NxD, M_CxD.T)
  g_CxC = collapse._mm(M_CxD, M_CxD.T)
  w_CxC = collapse._mm(p_NxC.T, p_NxC) / N
  tr_w = jnp.sum(st.m2_C.astype(dtype)) / N
  nc12 = nc_from_gram(st.counts_C, g_CxC, w_CxC, tr_w, max(C, D))

  m_norm = jnp.linalg.norm(M_CxD)
  if classifier is None:
    nc3 = nan
  else:
    w_CxD = jnp.where(present_C[:, None], classifier.astype(dtype), 0)
    nc3 = jnp.linalg.norm(w_CxD / jnp.linalg.norm(w_CxD) - M_CxD / m_norm)
  if predictions is None:
    nc4 = nan
  else:
    nc4 = jnp.mean((predictions == ncc_N).astype(dtype))

  between = dict(cdnv=cdnv, **nc12, nc3_duality=nc3)
  out = {k: jnp.where(between_ok, v, nan) for k, v in between.items()}
  out.update(ncc_acc=ncc_acc, nc4_agreement=nc4)
  out = {k: jnp.where(finite, jnp.asarray(v, dtype), nan) for k, v in out.items()}
  out["counts"] = st.counts_C.astype(jnp.int32)
  return {k: out[k] for k in KEYS}
