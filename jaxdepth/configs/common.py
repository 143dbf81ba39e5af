"""Shared defaults for 'collapse' configs (Galanti et al. 2022 per-layer analysis).

Each experiment config starts from ``base()`` and changes what it needs. Every field
is read by jaxdepth.papers.minimal_depth.train; unknown fields are rejected.
"""

import ml_collections


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = "collapse"     # registry name in jaxdepth/engine/registry.py
  c.dataset = "mnist1d"         # mnist1d | gaussian | digits | a tfds name (mnist, cifar10, ...)
  c.data = ml_collections.ConfigDict(dict(
      num_train=4000,           # training examples (0 = all)
      num_test=1000,            # test examples (0 = all)
      seed=42,                  # generator / split seed of the embedded datasets
      data_dir="",              # tfds data_dir ('' = tfds default)
      download=False,           # tfds: download_and_prepare when missing
      normalization="dataset",  # tfds: dataset | reference (authors' code) | computed
      pad_to_32=True,           # tfds: zero-pad MNIST/Fashion-MNIST 28 -> 32 (reference)
  ))
  c.family = "mlp"              # mlp | conv | resnet18_top
  c.depth = 8                   # L, number of studied layers (a shape: one compile each)
  c.width = 128                 # H, hidden width / channels
  c.batchnorm = True            # BN in every block (batch stats in training)
  c.init = "kaiming"            # kaiming (He normal) | pytorch (PyTorch defaults, parity)
  c.model = ml_collections.ConfigDict()  # family-specific extras (conv stem, top_depth, ...)
  c.num_seeds = 3               # seeds per noise level, vmapped in one program
  c.seed = 0                    # root seed; init/order/noise keys are derived from it
  c.label_noise = (0.0,)        # fractions p of corrupted training labels (vmapped)
  c.noise_mode = "flip"         # flip (always a different class) | uniform (any class)
  c.epochs = 30                 # training epochs
  c.batch_size = 128            # SGD batch; epoch remainder dropped (fixed shapes)
  c.lr = 0.05                   # base learning rate
  c.momentum = 0.9              # SGD momentum
  c.weight_decay = 5e-4         # coupled L2 (added to the gradient, as PyTorch)
  c.warmup_epochs = 1.0         # linear warm-up from 0
  c.schedule = "step"           # step | cosine | constant
  c.milestones = (0.5, 0.75)    # step schedule: fractions of training where lr *= decay
  c.decay = 0.2                 # step schedule factor
  c.eps = (0.01, 0.05, 0.1)     # effective-depth thresholds on NCC train error
  c.eval_every = 10             # epochs between per-layer analyses (and always at the end)
  c.checkpoint_every = 10       # epochs between checkpoints (and always at the end)
  c.keep_checkpoints = 2        # checkpoints kept per (depth, width)
  c.augment = ()                # training-only augmentation: ('crop', 'flip', 'rotate') for images
  c.analysis_batch = 1000       # batch size of the streamed per-layer analysis
  c.rank_samples = 512          # examples whose Gram matrix gives the per-layer rank
  c.sweep_depths = ()           # if set, loop over these depths (one program each)
  c.sweep_widths = ()           # if set, loop over these widths
  c.shard_runs = True           # shard the run axis over devices when there are several
  c.progress = True             # progress bar
  c.plots = True                # write PNG figures
  return c


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
