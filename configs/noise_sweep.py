"""Effective depth and per-layer NCC accuracy vs label noise: MLP-10-128, MNIST-1D.

  jaxdepth train --config configs/noise_sweep.py --workdir runs/noise_flip
  jaxdepth train --config configs/noise_sweep.py:uniform --workdir runs/noise_uniform

All 6 noise levels x 3 seeds are ONE vmapped program. 'flip' (default) moves each
chosen label to a different class (spec §7.1); ':uniform' draws it uniformly from all
classes, so about 1/C of the chosen labels stay correct (spec §7.2). Writes
summary.json, layers.csv (one row per run and layer; ``label_noise`` is the fraction
p, the number of random labels is round(p * num_train)) and figures/: layers_d10_w128.png
(per-layer NCC train/test accuracy, CDNV and rank, one curve per p; effective depth
vs p) and noise_d10_w128.png (effective depth and per-layer NCC accuracy vs p).
Runtime: about 6 minutes on a shared 2-core CPU.
Expected: all runs fit their training labels in the top layers; the effective depth
grows with p (noisy labels need more layers); NCC test accuracy falls with p.
"""

from configs import common
from configs.depth_sweep import _tiny


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
