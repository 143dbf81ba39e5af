"""Offline CONV-L-H smoke experiment: CONV-6-32 on scikit-learn's digits, 2 seeds.

  jaxdepth train --config configs/digits_conv.py --workdir runs/digits_conv

Runs offline (digits ships with scikit-learn). Runtime: about 2 minutes on a 2-core
CPU (compile included). Expected: the network fits the 1,347 training images (train
accuracy ~1); per-layer NCC train accuracy rises with the layer index and is ~1 in
the top layers (0.01-effective depth below 6); NCC test accuracy ~0.95 in the top
layers.
"""

from configs import common


def get_config(arg=None):
  c = common.base()
  c.dataset = "digits"              # 8x8x1 images, 10 classes, bundled with scikit-learn
  c.data.num_train = 0              # all 1,347 training images (75/25 split fixed by seed)
  c.data.num_test = 0               # all 450 test images
  c.data.seed = 0                   # seed of the stratified train/test split
  c.family = "conv"                 # CONV-L-H: stem conv 3x3/2 + (L-1) scanned 3x3 convs
  c.depth = 6                       # L conv layers (stem included)
  c.width = 32                      # H channels
  c.batchnorm = True                # conv -> BN -> ReLU in every layer
  c.init = "kaiming"                # He normal
  c.model.head = "gap"              # global average pooling, then Linear(H -> 10)
  c.num_seeds = 2                   # vmapped seeds
  c.label_noise = (0.0,)            # clean labels
  c.epochs = 40                     # 21 steps per epoch at batch 64
  c.batch_size = 64
  c.lr = 0.05
  c.milestones = (0.5, 0.75)        # lr *= 0.2 at 50% and 75% of training
  c.eval_every = 10                 # per-layer NCC/CDNV every 10 epochs and at the end
  c.checkpoint_every = 20
  c.analysis_batch = 500
  c.rank_samples = 256
  c.augment = ()                    # no augmentation on 8x8 digits
  return c
