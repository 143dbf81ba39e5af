"""Offline CONV-L-H smoke experiment: CONV-6-32 on scikit-learn's digits, 2 seeds.

  jaxdepth train --config configs/digits_conv.py --workdir runs/digits_conv

Runs offline (digits ships with scikit-learn). Runtime: 19.5 s wall on the 2-core CPU
(load 0.5-1, compile included; 2026-12-04, after the summed-dot patch convs).
Expected (measured, seeds 0 and 1): train accuracy 1.0, test accuracy 0.98; per-layer
NCC train accuracy rises with the layer index, 0.92 -> 0.95 -> 0.98 -> 0.995 -> 1.0 ->
1.0, NCC test accuracy 0.90 -> 0.99, train CDNV falls 0.81 -> 0.05; 0.01-effective
depth 4 of 6 layers.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


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
  if arg == "tiny":                 # seconds: CONV-3-8 on 256 images, 2 epochs
    common.tiny_images(c)
    c.sweep_depths = ()
  return c
