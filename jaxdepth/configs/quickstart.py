"""Main job: MLP-12-128 on MNIST-1D, 4 seeds x 4 label-noise levels in one program.

  jaxdepth train --config configs/quickstart.py --workdir runs/quickstart
  jaxdepth train --config quickstart:tiny --workdir runs/qs_tiny   # seconds

Runtime: 91 s wall on a 2-core CPU (16 runs, 80 epochs each; measured 2026-12-03).
Expected: NCC train accuracy rises layer by layer and reaches ~1 in the top layers;
the 0.01-effective depth grows with the label noise (clean runs separate early,
noisy runs need more layers); NCC test accuracy falls with noise.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


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
  if arg == "tiny":                   # seconds: MLP-4-16, 2 seeds x 2 noise levels, 4 epochs
    c.data.num_train, c.data.num_test = 512, 256
    c.depth, c.width = 4, 16
    c.num_seeds = 2
    c.label_noise = (0.0, 0.4)
    c.epochs, c.batch_size = 4, 64
    c.eval_every = c.checkpoint_every = 4
    c.analysis_batch, c.rank_samples = 256, 64
    c.progress = False
  return c
