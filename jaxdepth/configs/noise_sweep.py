"""Effective depth and per-layer NCC accuracy vs label noise: MLP-16-128, MNIST-1D.

  jaxdepth train --config configs/noise_sweep.py --workdir runs/noise_flip
  jaxdepth train --config configs/noise_sweep.py:uniform --workdir runs/noise_uniform

All 6 noise levels x 5 seeds are ONE vmapped program. 'flip' (default) moves each
chosen label to a different class; ':uniform' draws it uniformly from all
classes, so about 1/C of the chosen labels stay correct. Writes
summary.json, layers.csv (one row per run and layer; ``label_noise`` is the fraction
p, the number of random labels is round(p * num_train)) and figures/: layers_d16_w128.png
(per-layer NCC train/test accuracy, CDNV and rank, one curve per p; effective depth
vs p) and noise_d16_w128.png (effective depth and per-layer NCC accuracy vs p).
Runtime (flip): 319 s wall on the 2-core CPU (2 CPU devices), measured 2026-12-03.
Measured (flip, 5 seeds): every run fits its noisy labels (train accuracy >= 0.999);
the eps=0.05 effective depth grows with p, 5.6 / 7.6 / 12.6 / 14.0 for p = 0 / 0.1 /
0.2 / 0.4, then stays at 13.6-14.0 (below L = 16) for p = 0.6, 0.8; network test
accuracy falls from 0.730 to 0.137. docs/minimal_depth.md §2 has the table.
"""

from jaxdepth.configs import common
from jaxdepth.configs.depth_sweep import _tiny

VARIANTS = ("uniform", "tiny")  # values of get_config's arg
VARIANTS_COMBINE = True  # and comma-separated combinations of them


def get_config(arg=None):
  c = common.base()
  c.dataset = "mnist1d"
  c.depth = 16                        # MLP-16-H: deep enough that noise does not hit L
  c.width = 128                       # H
  c.num_seeds = 5                     # seeds per noise level (vmapped)
  c.label_noise = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8)  # fraction p of corrupted labels
  c.noise_mode = "flip"               # flip | uniform (variant ':uniform')
  c.epochs = 120                      # long enough to memorize the noisy labels
  c.eval_every = 120                  # analyse at the end only
  c.checkpoint_every = 40
  c.rank_samples = 256
  for a in (arg or "").split(","):
    if a == "uniform":
      c.noise_mode = "uniform"
    elif a == "tiny":
      _tiny(c)
      c.label_noise = (0.0, 0.3, 0.6)
    elif a:
      raise ValueError(f"unknown variant {a!r}; allowed: uniform, tiny (comma-separated)")
  return c
