"""Small matplotlib helpers shared by every experiment's figures (files, no display).

The figures are ``matplotlib.figure.Figure`` objects, not pyplot ones: they are written
to PNG files and never shown, with whatever backend is active, and importing this module
selects no backend (a notebook keeps its inline one; the CLI picks Agg itself).
"""

from __future__ import annotations

import os
import warnings

import matplotlib.pyplot as plt  # noqa: F401  (plotting.plt.get_cmap; selects no backend)
import numpy as np
from matplotlib.figure import Figure


def mean_band(ax, x, y_SxX, label=None, color=None, log=False, **kw):
  """Plot the mean over the leading (seed) axis with a min-max band."""
  y = np.asarray(y_SxX, dtype=float)
  if y.ndim == 1:
    y = y[None]
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # a column where every run diverged
    mean = np.nanmean(y, axis=0)
    lo, hi = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
  (line,) = ax.plot(x, mean, label=label, color=color, marker="o", ms=3, **kw)
  if y.shape[0] > 1:
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
  if log:
    ax.set_yscale("log")
  return line


def subplots(n: int, ncols: int | None = None, size=(3.6, 3.0)):
  ncols = ncols or min(n, 4)
  nrows = int(np.ceil(n / ncols))
  fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))  # outside pyplot: never shown
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for ax in axes.flat[n:]:
    ax.set_visible(False)
  return fig, axes.flat[:n]


def save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return path


def legend(ax, **kwargs) -> None:
  """A legend only when something is labelled (an all-diverged panel has nothing)."""
  if ax.get_legend_handles_labels()[0]:
    ax.legend(**kwargs)
