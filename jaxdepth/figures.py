"""Figures of the 'collapse' experiment in the style of Galanti et al. 2022.

Per-layer curves (one per label-noise level, mean over seeds with a min-max band)
and effective depth against noise, depth or width. Inputs are summary.json dicts,
so figures can be redrawn offline: ``figures.collapse_figures(read_json(...), dir)``.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from jaxdepth import plotting

PANELS = (("ncc_train_acc", "NCC train accuracy", False),
          ("ncc_test_acc", "NCC test accuracy", False),
          ("cdnv_train", "CDNV (train)", True),
          ("cdnv_test", "CDNV (test)", True),
          ("rank_train", "embedding effective rank (train)", False))


def _ok(runs):
  return [r for r in runs if not r["diverged"]]


def _group(runs, *keys):
  out = defaultdict(list)
  for r in runs:
    out[tuple(r[k] for k in keys)].append(r)
  return dict(sorted(out.items()))


def per_layer_figure(runs, path: str, title: str) -> str:
  """Per-layer panels plus effective depth vs noise for one (depth, width)."""
  fig, axes = plotting.subplots(len(PANELS) + 1, ncols=3)
  by_noise = _group(_ok(runs), "label_noise")
  for ax, (key, label, log) in zip(axes, PANELS):
    for (p,), rs in by_noise.items():
      y = np.array([r[key] for r in rs], dtype=float)
      plotting.mean_band(ax, np.arange(1, y.shape[1] + 1), y, label=f"p={p:g}", log=log)
    ax.set_xlabel("layer")
    ax.set_title(label)
  axes[0].legend(fontsize=8)
  ax = axes[-1]
  noise = [p for (p,) in by_noise]
  for e in runs[0]["effective_depth"]:
    ed = np.array([[r["effective_depth"][e] for r in rs] for rs in by_noise.values()],
                  dtype=float)
    plotting.mean_band(ax, noise, ed.T, label=f"eps={e}")
  ax.axhline(runs[0]["depth"], color="k", ls=":", lw=1)
  ax.set_xlabel("label noise p")
  ax.set_title("effective depth")
  ax.legend(fontsize=8)
  fig.suptitle(title)
  return plotting.save(fig, path)


def sweep_figure(runs, key: str, path: str, eps: str, title: str) -> str:
  """Effective depth against ``key`` ('depth' or 'width'), one curve per noise level."""
  fig, axes = plotting.subplots(2, ncols=2)
  for (p,), rs in _group(_ok(runs), "label_noise").items():
    by_x = _group(rs, key)
    xs = [x for (x,) in by_x]
    n = min(len(v) for v in by_x.values())
    ed = np.array([[r["effective_depth"][eps] for r in v[:n]] for v in by_x.values()])
    top = np.array([[r["ncc_train_acc"][-1] for r in v[:n]] for v in by_x.values()])
    plotting.mean_band(axes[0], xs, ed.T.astype(float), label=f"p={p:g}")
    plotting.mean_band(axes[1], xs, top.T, label=f"p={p:g}")
  if key == "depth":
    xs = sorted({r["depth"] for r in runs})
    axes[0].plot(xs, xs, "k:", lw=1, label="L")
  axes[0].set_title(f"effective depth (eps={eps})")
  axes[1].set_title("NCC train accuracy, top layer")
  for ax in axes:
    ax.set_xlabel(key)
    ax.legend(fontsize=8)
  fig.suptitle(title)
  return plotting.save(fig, path)


def collapse_figures(summary: dict, outdir: str) -> list[str]:
  eps = str(summary["eps"][0])
  runs = summary["runs"]
  paths = []
  for (d, w), rs in _group(runs, "depth", "width").items():
    paths.append(per_layer_figure(
        rs, os.path.join(outdir, f"layers_d{d}_w{w}.png"),
        f"{summary['dataset']}: depth {d}, width {w}"))
  for key, other in (("depth", "width"), ("width", "depth")):
    if len({r[key] for r in runs}) > 1:
      for (o,), rs in _group(runs, other).items():
        paths.append(sweep_figure(rs, key, os.path.join(outdir, f"{key}_sweep_{other[0]}{o}.png"),
                                  eps, f"{summary['dataset']}: {key} sweep, {other} {o}"))
  return paths
