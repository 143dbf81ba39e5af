"""Figures of the 'collapse' experiment in the style of Galanti et al. 2022.

Per-layer curves (one per label-noise level, mean over seeds with a min-max band)
and effective depth against noise, depth or width. Effective depth is drawn as the
mean ± std over the runs that reached eps; a run that never did (its value is the
L + 1 placeholder) is never averaged in: points where only some runs reached are
hollow and labelled with the fraction, points where none did are not drawn. Inputs
are summary.json dicts, so figures can be redrawn offline:
``figures.collapse_figures(read_json(...), dir)``.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from jaxdepth.engine import plotting

PANELS = (("ncc_train_acc", "NCC train accuracy", False),
          ("ncc_test_acc", "NCC test accuracy", False),
          ("cdnv_train", "CDNV (train)", True),
          ("cdnv_test", "CDNV (test)", True),
          ("rank_train", "embedding effective rank (train)", False),
          ("nc1_train", "NC1 = tr(Σ_W Σ_B⁺)/C (train)", True),
          ("nc2_etf_error_train", "NC2: distance to a simplex ETF", False))


def _ok(runs):
  return [r for r in runs if not r["diverged"]]


def _group(runs, *keys):
  out = defaultdict(list)
  for r in runs:
    out[tuple(r[k] for k in keys)].append(r)
  return dict(sorted(out.items()))


def _reached(r, eps: str) -> bool:
  """Whether the run reached eps (summaries from before the flag: depth <= L)."""
  if "reached" in r:
    return bool(r["reached"][eps])
  return r["effective_depth"][eps] <= r["depth"]


def depth_band(ax, x, groups, eps: str, label=None, color=None):
  """Effective depth at ``eps`` against ``x``, one group of runs per x value: mean ±
  std over the runs that reached it (placeholders never enter the mean); returns
  the line, or None when no run of any group reached eps."""
  stats = []
  for rs in groups:
    v = np.array([r["effective_depth"][eps] for r in rs if _reached(r, eps)], float)
    stats.append((v.mean() if v.size else np.nan,
                  v.std(ddof=1) if v.size > 1 else 0.0, v.size, len(rs)))
  mean, std, k, n = (np.array(c) for c in zip(*stats)) if stats else ([],) * 4
  if not np.isfinite(mean).any():
    return None
  x = np.asarray(x, float)
  (line,) = ax.plot(x, mean, label=label, color=color, lw=1.5)
  c = line.get_color()
  ax.fill_between(x, mean - std, mean + std, color=c, alpha=0.2, lw=0)
  full = k == n
  ax.plot(x[full], mean[full], "o", ms=4, color=c)
  part = (k < n) & (k > 0)
  ax.plot(x[part], mean[part], "o", ms=5, mfc="white", color=c)
  for xi, yi, ki, ni in zip(x[part], mean[part], k[part], n[part]):
    ax.annotate(f"{ki}/{ni}", (xi, yi), textcoords="offset points", xytext=(3, 4),
                fontsize=6, color=c)
  return line


def per_layer_figure(runs, path: str, title: str) -> str:
  """Per-layer panels plus effective depth vs noise for one (depth, width)."""
  # Summaries written before a metric existed have no key for it: no panel.
  panels = [p for p in PANELS if all(p[0] in r for r in runs)]
  fig, axes = plotting.subplots(len(panels) + 1, ncols=4)
  by_noise = _group(_ok(runs), "label_noise")
  if not by_noise:  # every run diverged: say so instead of empty panels
    for ax in axes:
      ax.text(0.5, 0.5, "all runs diverged", ha="center", transform=ax.transAxes)
    fig.suptitle(title)
    return plotting.save(fig, path)
  for ax, (key, label, log) in zip(axes, panels):
    for (p,), rs in by_noise.items():
      y = np.array([r[key] for r in rs], dtype=float)
      plotting.mean_band(ax, np.arange(1, y.shape[1] + 1), y, label=f"p={p:g}", log=log)
    ax.set_xlabel("layer")
    ax.set_title(label)
  plotting.legend(axes[0], fontsize=8)
  ax = axes[-1]
  noise = [p for (p,) in by_noise]
  for e in runs[0]["effective_depth"]:
    depth_band(ax, noise, by_noise.values(), e, label=f"eps={e}")
  ax.axhline(runs[0]["depth"], color="k", ls=":", lw=1)
  ax.set_xlabel("label noise p")
  ax.set_title("effective depth (runs that reached eps)")
  plotting.legend(ax, fontsize=8)
  fig.suptitle(title)
  return plotting.save(fig, path)


def sweep_figure(runs, key: str, path: str, eps_list, title: str) -> str:
  """Effective depth against ``key`` ('depth' or 'width'): one curve per noise level
  at the first eps, or, with a single noise level, one curve per eps."""
  eps = [str(e) for e in eps_list]
  fig, axes = plotting.subplots(2, ncols=2)
  by_noise = _group(_ok(runs), "label_noise")
  for (p,), rs in by_noise.items():
    by_x = _group(rs, key)
    xs = [x for (x,) in by_x]
    n = min(len(v) for v in by_x.values())
    top = np.array([[r["ncc_train_acc"][-1] for r in v[:n]] for v in by_x.values()])
    for e in (eps if len(by_noise) == 1 else eps[:1]):
      depth_band(axes[0], xs, by_x.values(), e,
                 label=f"eps={e}" if len(by_noise) == 1 else f"p={p:g}")
    plotting.mean_band(axes[1], xs, top.T, label=f"p={p:g}")
  if key == "depth":
    xs = sorted({r["depth"] for r in runs})
    axes[0].plot(xs, xs, "k:", lw=1, label="L")
  axes[0].set_title("effective depth (runs that reached eps)" if len(by_noise) == 1
                    else f"effective depth (eps={eps[0]}, runs that reached it)")
  axes[1].set_title("NCC train accuracy, top layer")
  for ax in axes:
    ax.set_xlabel(key)
    plotting.legend(ax, fontsize=8)
  fig.suptitle(title)
  return plotting.save(fig, path)


LAYER_PANELS = PANELS[:4]


def layers_by_figure(runs, key: str, path: str, title: str) -> str:
  """Per-layer NCC accuracy and CDNV, one curve per value of ``key`` (depth or width),
  at the lowest label noise: how collapse at each layer changes along a sweep."""
  runs = _ok(runs) or runs  # all diverged: draw them anyway (NaN curves)
  p0 = min(r["label_noise"] for r in runs)
  fig, axes = plotting.subplots(len(LAYER_PANELS), ncols=4)
  for ax, (k, label, log) in zip(axes, LAYER_PANELS):
    for (v,), rs in _group([r for r in runs if r["label_noise"] == p0], key).items():
      y = np.array([r[k] for r in rs], dtype=float)
      plotting.mean_band(ax, np.arange(1, y.shape[1] + 1), y, label=f"{key} {v}", log=log)
    ax.set_xlabel("layer")
    ax.set_title(label)
  plotting.legend(axes[0], fontsize=7)
  fig.suptitle(f"{title} (p={p0:g})")
  return plotting.save(fig, path)


def noise_figure(runs, path: str, title: str, eps_list) -> str:
  """Effective depth (each eps) and per-layer NCC train/test accuracy against the
  fraction p of corrupted labels; one curve per layer, mean and min-max over seeds."""
  runs = _ok(runs) or runs  # all diverged: draw them anyway (NaN curves)
  by_noise = _group(runs, "label_noise")
  ps = [p for (p,) in by_noise]
  fig, axes = plotting.subplots(4, ncols=4)
  for e in eps_list:
    depth_band(axes[0], ps, by_noise.values(), str(e), label=f"eps={e}")
  axes[0].axhline(runs[0]["depth"], color="k", ls=":", lw=1)
  axes[0].set_title("effective depth (runs that reached eps)")
  L = len(runs[0]["ncc_train_acc"])
  layers = sorted({0, L // 4, L // 2, (3 * L) // 4, L - 1})
  cmap = plotting.plt.get_cmap("viridis")
  for ax, k, label in ((axes[1], "ncc_train_acc", "NCC train accuracy (noisy labels)"),
                       (axes[2], "ncc_test_acc", "NCC test accuracy")):
    for li in layers:
      y = np.array([[r[k][li] for r in rs] for rs in by_noise.values()], dtype=float)
      plotting.mean_band(ax, ps, y.T, label=f"layer {li + 1}",
                         color=cmap(li / max(L - 1, 1)))
    ax.set_title(label)
  acc = np.array([[r["test_acc"] for r in rs] for rs in by_noise.values()])
  plotting.mean_band(axes[3], ps, acc.T, label="network")
  axes[3].set_title("test accuracy (network)")
  for ax in axes:
    ax.set_xlabel("fraction of corrupted labels p")
    plotting.legend(ax, fontsize=7)
  fig.suptitle(title)
  return plotting.save(fig, path)


def bound_figure(summary: dict, path: str) -> str:
  """Bound experiment: per-layer NCC train accuracy of the clean runs (on S1) and of
  the noisy runs (on S1 u S2~) for each p, and mean D_k vs mean dmin_hat against p."""
  fig, axes = plotting.subplots(2, ncols=2, size=(4.2, 3.2))
  clean = _ok(summary["clean_runs"])
  y = np.array([r["ncc_train_acc"] for r in clean], dtype=float)
  x = np.arange(1, y.shape[1] + 1)
  plotting.mean_band(axes[0], x, y, label="clean S1", color="k")
  for (p,), rs in _group(_ok(summary["noisy_runs"]), "p").items():
    plotting.mean_band(axes[0], x, np.array([r["ncc_train_acc"] for r in rs], float),
                       label=f"S1+S2~, p={p:g}")
  axes[0].set_xlabel("layer")
  axes[0].set_title("NCC train accuracy")
  plotting.legend(axes[0], fontsize=7)
  for e in summary["eps"]:
    rows = [r for r in summary["table"] if r["eps"] == e and r["alpha"] == summary["alpha"][0]]
    ps = [r["p"] for r in rows]
    line = plotting.mean_band(axes[1], ps, [r["mean_min_depth"] for r in rows],
                              label=f"mean dmin_hat, eps={e}")
    axes[1].axhline(rows[0]["mean_clean_depth"], ls="--", color=line.get_color(),
                    label=f"mean D_k, eps={e}")
  axes[1].set_xlabel("p")
  axes[1].set_title("effective depths")
  plotting.legend(axes[1], fontsize=7)
  fig.suptitle(f"{summary['dataset']}: bound experiment, m={summary['m']}")
  return plotting.save(fig, path)


def bound_curve_figure(rows: list[dict], eps: float, path: str, title: str = "") -> str:
  """The bound as a curve at one eps: the estimate B(p) (one line per alpha) with the
  band of its first term's 95% interval, the mean test error with its 95% interval
  (grey band) and +- 1 std (dotted), the region where the estimate is below the
  mean test error shaded red, and p = 2 eps (where the corrupted p/2 of S1 u S2 exceed
  the NCC's eps budget and dmin_hat jumps) as a vertical line. Inputs are bound.json
  rows (``bounds.bound_rows``)."""
  rs = [r for r in rows if r["eps"] == eps and not r["control"]]
  fig, axes = plotting.subplots(1, ncols=1, size=(5.2, 3.8))
  ax = axes[0]
  if not rs:
    ax.text(0.5, 0.5, f"no p > 0 rows at eps={eps:g}", ha="center", transform=ax.transAxes)
    return plotting.save(fig, path)
  hi_p = max(r["p"] for r in rs)
  r0 = rs[0]
  err, std = r0["mean_test_error"], r0["test_error_std"]
  x = np.array([0.0, hi_p * 1.05])
  ax.fill_between(x, r0.get("test_error_lo", err), r0.get("test_error_hi", err),
                  color="0.75", lw=0, label="test error, 95% interval of the mean")
  for y in (err - std, err + std):
    ax.axhline(y, color="0.3", ls=":", lw=0.8)
  ax.plot([], [], color="0.3", ls=":", lw=0.8, label="test error +- std")
  ax.axhline(err, color="k", lw=1, label=f"mean test error {err:.3f}")
  for alpha in dict.fromkeys(r["alpha"] for r in rs):
    ra = sorted((r for r in rs if r["alpha"] == alpha), key=lambda r: r["p"])
    p = np.array([r["p"] for r in ra])
    b = np.array([r["bound"] for r in ra])
    bhi = np.array([r["bound_hi"] for r in ra])
    blo = np.array([r["first_term_lo"] for r in ra]) + (1 + alpha) * p
    (line,) = ax.plot(p, b, "o-", ms=4, label=f"estimate, alpha={alpha:g}")
    ax.fill_between(p, blo, bhi, color=line.get_color(), alpha=0.15, lw=0,
                    label="first term 95% CI")
    ax.fill_between(p, b, err, where=b < err, interpolate=True, color="tab:red",
                    alpha=0.35, lw=0, label="invalid (estimate < test error)")
    bad = b < err
    ax.plot(p[bad], b[bad], "x", color="tab:red", ms=7)
  ax.axvline(2 * eps, color="tab:green", ls="--", lw=1.2, label=f"p = 2 eps = {2 * eps:g}")
  ax.set_xlim(0, hi_p * 1.05)
  low = min(min(r["bound"] for r in rs), err - std)
  if low > 0:  # log scale: the first term jumps between ~1 and 0, the test error is small
    ax.set_yscale("log")
    ax.set_ylim(low / 1.5, 1.5)
  else:
    ax.set_ylim(0, 1.05)
  ax.set_xlabel("p (fraction of S2's labels corrupted)")
  ax.set_ylabel("error")
  ax.set_title(f"{title}\neps={eps:g}" if title else f"eps={eps:g}", fontsize=8)
  plotting.legend(ax, fontsize=6, loc="upper left")
  return plotting.save(fig, path)


def collapse_figures(summary: dict, outdir: str) -> list[str]:
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
                                  summary["eps"],
                                  f"{summary['dataset']}: {key} sweep, {other} {o}"))
        paths.append(layers_by_figure(
            rs, key, os.path.join(outdir, f"layers_by_{key}_{other[0]}{o}.png"),
            f"{summary['dataset']}: per-layer collapse by {key}, {other} {o}"))
  for (d, w), rs in _group(runs, "depth", "width").items():
    if len({r["label_noise"] for r in rs}) >= 3:
      paths.append(noise_figure(rs, os.path.join(outdir, f"noise_d{d}_w{w}.png"),
                                f"{summary['dataset']}: label noise, depth {d}, width {w}",
                                [str(e) for e in summary["eps"]]))
  return paths
