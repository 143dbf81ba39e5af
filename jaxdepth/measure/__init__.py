"""Measurements on embeddings: NCC accuracy, CDNV, effective depth (collapse.py),
the neural-collapse metrics NC1-NC4 (nc.py: ``collapse_metrics``), effective rank
(rank.py), and the streamed per-layer analyzer of a network (analysis.py, used by the
trainers).

``per_layer`` measures any list of embeddings, e.g. a notebook's own model:

  from jaxdepth import measure
  m = measure.per_layer([h1_train, h2_train], y_train, 10, test=([h1_test, h2_test], y_test))
  m["ncc_train_acc"], m["cdnv_train"], m["effective_depth"][0.01]
  nc = measure.collapse_metrics(h_train, y_train, 10, classifier=W, predictions=pred)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.measure import collapse, rank
from jaxdepth.measure.nc import collapse_metrics as collapse_metrics  # public re-export


def _rank(f) -> float:
  f = np.asarray(f)
  return float(rank.gram_entropy_rank64(f)) if np.isfinite(f).all() else float("nan")


def per_layer(train_feats: Sequence, train_labels, num_classes: int, test=None,
              eps: Sequence[float] = (0.01, 0.05, 0.1), rank_samples: int | None = 512
              ) -> dict:
  """Per-layer NCC accuracy, CDNV and effective rank of embeddings (one per layer).

  Args:
    train_feats: per layer, an (N, ...) array (flattened to (N, D_l)); class means
      come from these with ``train_labels``.
    test: optional (feats per layer, labels): NCC test accuracy uses the train means.
    eps: thresholds of the eps-effective depth (first layer with NCC train error
      <= eps; L + 1 when none).
    rank_samples: rows of the Gram matrix for the effective rank (None: all).
  Returns:
    dict of numpy arrays over layers: ncc_train_acc, cdnv_train, rank_train (and the
    test counterparts; rank is NaN for non-finite embeddings), and effective_depth
    {eps: int}.
  """
  y = jnp.asarray(train_labels)
  out: dict = {k: [] for k in ("ncc_train_acc", "cdnv_train", "rank_train")}
  if test is not None:
    out.update(ncc_test_acc=[], cdnv_test=[], rank_test=[])
  flat = lambda f: jnp.asarray(f, jnp.float32).reshape(f.shape[0], -1)
  with jax.default_matmul_precision("highest"):
    for li, f in enumerate(train_feats):
      f = flat(f)
      st = collapse.class_stats(f, y, num_classes)
      means = jnp.where((st.counts_C > 0)[:, None], st.means_CxD + st.ref_D[None], 0.0)
      out["ncc_train_acc"].append(collapse.ncc_accuracy(f, y, means, st.counts_C))
      out["cdnv_train"].append(collapse.cdnv_from_stats(st.counts_C, st.means_CxD,
                                                        st.m2_C).value)
      out["rank_train"].append(_rank(f[:rank_samples]))
      if test is not None:
        ft, yt = flat(test[0][li]), jnp.asarray(test[1])
        out["ncc_test_acc"].append(collapse.ncc_accuracy(ft, yt, means, st.counts_C))
        out["cdnv_test"].append(collapse.cdnv(ft, yt, num_classes))
        out["rank_test"].append(_rank(ft[:rank_samples]))
  out = {k: np.asarray(v, np.float64) for k, v in out.items()}
  # From integer error counts, as the trainer's analyzer (one rule: collapse.EPS_SLACK).
  err_L = 1.0 - out["ncc_train_acc"]
  out["effective_depth"] = {e: int(collapse.effective_depth(err_L, e, y.shape[0]))
                            for e in eps}
  return out
