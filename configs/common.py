"""Shared defaults for 'collapse' configs (Galanti et al. 2022 per-layer analysis).

Each experiment config starts from ``base()`` and changes what it needs. Every field
is read by jaxdepth.train; unknown fields are rejected.
"""

import ml_collections


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = "collapse"     # registry name in jaxdepth/experiments.py
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
  c.augment = ()                # training-only augmentation: ('crop', 'flip') for images
  c.analysis_batch = 1000       # batch size of the streamed per-layer analysis
  c.rank_samples = 512          # examples whose Gram matrix gives the per-layer rank
  c.sweep_depths = ()           # if set, loop over these depths (one program each)
  c.sweep_widths = ()           # if set, loop over these widths
  c.shard_runs = True           # shard the run axis over devices when there are several
  c.progress = True             # progress bar
  c.plots = True                # write PNG figures
  return c
