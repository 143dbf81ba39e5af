"""Main job: MLP-12-128 on MNIST-1D, 4 seeds x 4 label-noise levels in one program.

  jaxdepth train --config configs/quickstart.py --workdir runs/quickstart

Runtime: 91 s wall on a 2-core CPU (16 runs, 80 epochs each; measured 2026-12-03).
Expected: NCC train accuracy rises layer by layer and reaches ~1 in the top layers;
the 0.01-effective depth grows with the label noise (clean runs separate early,
noisy runs need more layers); NCC test accuracy falls with noise.
"""

from configs import common


def get_config(arg=None):
  c = common.base()
  c.dataset = "mnist1d"
  c.depth = 12                        # MLP-12-H
  c.width = 128                       # H
  c.num_seeds = 4                     # seeds per noise level (vmapped)
  c.label_noise = (0.0, 0.2, 0.4, 0.6)  # fraction of flipped training labels
  c.epochs = 80                       # enough to fit the noisy labels
  c.lr = 0.05
  c.eval_every = 20                   # per-layer analysis every 20 epochs and at the end
  c.checkpoint_every = 20
  return c
