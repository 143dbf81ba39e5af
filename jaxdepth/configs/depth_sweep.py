"""Effective depth vs total depth: MLP-L-128 on MNIST-1D, L in {2, 4, ..., 24}.

  jaxdepth train --config configs/depth_sweep.py --workdir runs/depth_sweep

One compiled program per depth (5 seeds vmapped). Writes summary.json, layers.csv
(one row per run and layer) and figures/: depth_sweep_w128.png (effective depth and
top-layer NCC accuracy vs L) and layers_by_depth_w128.png (per-layer NCC accuracy and
CDNV, one curve per L). Runtime: 405 s wall on the 2-core CPU (2 CPU devices),
measured 2026-12-03. Measured (5 seeds, 120 epochs): the eps=0.1 effective depth is
5.0 for every L from 12 to 20 (it saturates); at eps=0.05 it moves from 5.0 to 6.0
while L goes 8 -> 20; at eps=0.01 it still grows, by 1.4 layers over those 12 (6.0 -> 7.4).
L = 24 is harder to optimize (test accuracy 0.66 vs 0.73) and separates later.
docs/minimal_depth.md §1 has the table.
``:tiny`` is a seconds-long Gaussian-mixture variant.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = common.base()
  c.dataset = "mnist1d"
  c.width = 128                       # H
  c.depth = 24                        # unused when sweep_depths is set (kept = max L)
  c.sweep_depths = (2, 4, 6, 8, 10, 12, 16, 20, 24)  # total depths L, one compile each
  c.num_seeds = 5                     # seeds per depth (vmapped): mean and spread
  c.label_noise = (0.0,)              # clean labels
  c.epochs = 120                      # long enough for the deep nets to fit
  c.eval_every = 120                  # analyse at the end only
  c.checkpoint_every = 40
  c.rank_samples = 256
  if arg == "tiny":
    _tiny(c)
    c.sweep_depths = (2, 4)
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; allowed: tiny")
  return c


def _tiny(c):
  """Seconds on CPU: Gaussian mixture, width 16 (tests, notebook under JAXDEPTH_TINY=1)."""
  c.dataset = "gaussian"
  c.data.num_train = 256
  c.data.num_test = 128
  c.data.seed = 0
  c.width = 16
  c.depth = 4
  c.num_seeds = 2
  c.epochs = 4
  c.batch_size = 32
  c.eval_every = 4
  c.checkpoint_every = 4
  c.analysis_batch = 128
  c.rank_samples = 32
  c.progress = False
