"""Per-layer NCC separability vs total depth: CONV-L-128 on Fashion-MNIST (Galanti et al. 2022).

  jaxdepth train --config configs/fashion_mnist_conv.py --workdir runs/fashion_mnist_conv
  jaxdepth train --config configs/fashion_mnist_conv.py:cpu --workdir runs/fm_cpu

Data, in this order: the TFDS dataset when prepared; else the IDX files of Debian's
package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``; read
from /usr/share/datasets/fashion-mnist, or ``--config.data.idx_dir=DIR`` /
$JAXDEPTH_IDX_DIR), full 60000/10000 splits, no network needed; else, with internet
and ``pip install 'jaxdepth[tfds]'``, tfds downloads it (data.download=True here).
Images are zero-padded 28 -> 32 and normalized with Fashion-MNIST's own
statistics (mean 0.2860, std 0.3530; the reference code used MNIST's); no
augmentation.

Default (paper-size): not measured on a 2-core CPU; each depth is one vmapped program
for the 3 seeds, 468 steps per epoch: use a GPU/TPU, or ``:cpu``.
Expected (paper): NCC train accuracy reaches ~1 below the top layer and stays
there; the 0.01-effective depth stops growing once L passes a small threshold; train
CDNV in the top layers falls as L grows.

``:cpu`` is the CPU-feasible paper run: the paper's other family, MLP-L-128 (on the
flattened 32x32 images), on the first 10000 training images (the suggested m = 10,000;
942-1027 per class), all 10000 test images, L in {2,4,6,8,12,16}, 5 seeds vmapped per depth,
60 epochs (lr 0.05, x0.2 at 50% and 75%). Runtime: 526 s wall on the 2-core CPU
(2 CPU devices). Measured: the eps=0.05 effective depth saturates at 4 from L = 8 on
(2, 3, 3, 4, 4, 4), test accuracy 0.86 at every L; docs/minimal_depth.md §5.
``:conv_small`` is the reduced CONV (CONV-L-32, 2000 training images, 5 seeds, 40
epochs): about 270 TFLOP of training, sized for one GPU; not run on the 2-core CPU.
``:tiny`` (256 images, 2 epochs, ~1 min) only checks that the pipeline runs on the
real data offline (measured: it does, reading the Debian IDX files).
"""

import ml_collections

from jaxdepth.configs import common

VARIANTS = ("cpu", "conv_small", "tiny")  # values of get_config's arg


def get_config(arg=None):
  c = common.paper_conv("fashion_mnist", augment=())
  c.data.idx_dir = ""                 # IDX directory ('' = $JAXDEPTH_IDX_DIR or Debian's)
  if arg == "cpu":
    c.family = "mlp"                  # MLP-L-128: Linear -> BN -> ReLU blocks
    c.model = ml_collections.ConfigDict()
    c.data.num_train = 10000          # the first 10000 of the 60000 training images
    c.data.num_test = 0               # all 10000 test images
    c.width = 128
    c.depth = 16
    c.sweep_depths = (2, 4, 6, 8, 12, 16)
    c.num_seeds = 5                   # vmapped seeds per depth
    c.epochs = 60
    c.batch_size = 128                # 78 steps per epoch
    c.lr = 0.05
    c.milestones = (0.5, 0.75)        # lr *= 0.2 at 50% and 75% of training
    c.eval_every = 60                 # analyse at the end only
    c.checkpoint_every = 20
    c.analysis_batch = 1000
    c.rank_samples = 256
  elif arg == "conv_small":
    c.data.num_train = 2000           # random subset of the 60000 training images
    c.data.num_test = 0               # all 10000 test images
    c.width = 32                      # CONV-L-32
    c.depth = 16
    c.sweep_depths = (2, 4, 6, 8, 12, 16)
    c.num_seeds = 5                   # vmapped seeds per depth
    c.epochs = 40
    c.batch_size = 100                # 20 steps per epoch
    c.lr = 0.05
    c.milestones = (0.5, 0.75)        # lr *= 0.2 at 50% and 75% of training
    c.eval_every = 40                 # analyse at the end only
    c.checkpoint_every = 20
    c.analysis_batch = 500
    c.rank_samples = 256
  elif arg == "tiny":
    common.tiny_images(c)
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; allowed: cpu, conv_small, tiny")
  return c
