"""Shared defaults for 'collapse' configs (Galanti et al. 2022 per-layer analysis).

Each experiment config starts from ``base()`` and changes what it needs. The fields,
their defaults, types and allowed values are declared once, in
jaxdepth/papers/minimal_depth/fields.py (the table: docs/config_fields.md); every
field is read by jaxdepth.papers.minimal_depth.train; unknown fields are rejected.
"""

import ml_collections


def base() -> ml_collections.ConfigDict:
  """The collapse experiment's declared defaults (``fields.COLLAPSE``): MLP-8-128 on
  MNIST-1D (4000/1000 examples), 3 seeds, clean labels, 30 epochs of SGD (lr 0.05,
  momentum 0.9, weight decay 5e-4, one warm-up epoch, x0.2 at 50% and 75%)."""
  # Imported here: configs sit above the papers in the layering (no module-level
  # import of a paper outside jaxdepth/papers).
  from jaxdepth.papers.minimal_depth import fields
  return fields.COLLAPSE.defaults()


def paper_conv(dataset: str, augment: tuple = ()) -> ml_collections.ConfigDict:
  """CONV-L-128 depth sweep on a TFDS dataset with the reference schedule
  (docs/definitions.md, "Training and data").

  Shared by configs/{mnist,fashion_mnist,svhn,cifar10}_conv.py, which differ only in
  the dataset and the augmentation.
  """
  c = base()
  c.dataset = dataset                 # a tfds name (see jaxdepth/data/tfds.py)
  c.data.num_train = 0                # all training images
  c.data.num_test = 0                 # all test images
  c.data.download = True              # prepare with tfds when missing (needs internet)
  c.family = "conv"                   # CONV-L-H: stem 3x3/2 conv + (L-1) scanned 3x3 convs
  c.depth = 8                         # L (overridden by sweep_depths)
  c.sweep_depths = (2, 4, 6, 8, 10, 12, 16)  # one compiled program per depth
  c.width = 128                       # H channels (jaxdepth choice; paper's H unconfirmed)
  c.batchnorm = True                  # conv -> BN -> ReLU in every layer
  c.init = "kaiming"                  # He normal
  c.model.head = "gap"                # global average pooling -> Linear(H -> 10)
  c.num_seeds = 3                     # vmapped seeds
  c.label_noise = (0.0,)              # clean labels (override for the noise sweep)
  c.epochs = 100                      # proportionally scaled reference schedule
  c.batch_size = 128
  c.lr = 0.1                          # reference base learning rate
  c.warmup_epochs = 1.0               # linear warm-up over the first epoch
  c.milestones = (0.1, 0.2, 0.27, 0.5)  # reference 60/120/160/300 of 600 epochs
  c.decay = 0.2                       # lr *= 0.2 at each milestone
  c.weight_decay = 5e-4               # coupled L2, as PyTorch SGD
  c.eval_every = 10                   # per-layer analysis every 10 epochs and at the end
  c.checkpoint_every = 10
  c.analysis_batch = 500              # streamed: 500 x 16*16*128 floats per layer at a time
  c.rank_samples = 512
  c.augment = augment                 # training-only augmentation
  return c


def tiny_images(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``:tiny`` variant of an image config: the same dataset and family, seconds of
  compute (256 training images, CONV-3-8, 2 epochs): it checks the pipeline runs."""
  c.data.num_train = 256
  c.data.num_test = 128
  c.width = 8
  c.depth = 3
  c.sweep_depths = (2, 3)
  c.num_seeds = 2
  c.epochs = 2
  c.batch_size = 64
  c.eval_every = 2
  c.checkpoint_every = 2
  c.analysis_batch = 128
  c.rank_samples = 32
  c.progress = False
  return c
