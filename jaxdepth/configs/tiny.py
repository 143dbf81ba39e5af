"""CPU smoke test: MLP-3-16 on a small Gaussian mixture, 2 seeds x 2 noise levels.

  jaxdepth train --config configs/tiny.py --workdir /tmp/tiny

Runtime: a few seconds. Used by the tests and CI.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = common.base()
  c.dataset = "gaussian"
  c.data.num_train = 256              # examples per split
  c.data.num_test = 128
  c.depth = 3
  c.width = 16
  c.num_seeds = 2
  c.label_noise = (0.0, 0.25)
  c.epochs = 4
  c.batch_size = 32
  c.eval_every = 2
  c.checkpoint_every = 2
  c.analysis_batch = 100              # not a divisor of 256: exercises the masked tail
  c.rank_samples = 64
  c.progress = False                # ':tiny' is this config as it is (every config has one)
  return c
