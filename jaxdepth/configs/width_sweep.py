"""Intermediate collapse vs width: MLP-10-H on MNIST-1D, H in {16, 32, ..., 256}.

  jaxdepth train --config configs/width_sweep.py --workdir runs/width_sweep

One compiled program per width (3 seeds vmapped). Writes summary.json, layers.csv
(one row per run and layer) and figures/: layers_by_width_d10.png (per-layer NCC
train/test accuracy and CDNV, one curve per width) and width_sweep_d10.png (effective
depth and top-layer NCC accuracy vs H). Runtime: 115 s wall on the 2-core CPU (2 CPU
devices), measured 2026-12-03. The paper's CONV-10-H, H in {20, 40, 80, 160, 320}, is
the variant ':conv' (needs jaxdepth.nets.conv and an image dataset, e.g. --config.dataset=cifar10).
Expected: wider networks collapse more at every intermediate layer (higher NCC
accuracy, lower CDNV per layer) and reach NCC separability earlier.
"""

from jaxdepth.configs import common
from jaxdepth.configs.depth_sweep import _tiny

VARIANTS = ("conv", "tiny")  # values of get_config's arg


def get_config(arg=None):
  c = common.base()
  c.dataset = "mnist1d"
  c.depth = 10                        # MLP-10-H
  c.width = 256                       # unused when sweep_widths is set (kept = max H)
  c.sweep_widths = (16, 32, 64, 128, 256)  # widths H, one compile each
  c.num_seeds = 3                     # seeds per width (vmapped)
  c.label_noise = (0.0,)
  c.epochs = 40
  c.eval_every = 40                   # analyse at the end only
  c.checkpoint_every = 20
  c.rank_samples = 256
  if arg == "conv":                   # the paper's CONV-10-H width study
    c.family = "conv"
    c.width = 320
    c.sweep_widths = (20, 40, 80, 160, 320)
  elif arg == "tiny":
    _tiny(c)
    c.sweep_widths = (8, 32)
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; allowed: conv, tiny")
  return c
