"""ResNet-18 + two residual top layers on CIFAR-10 (authors' reference setup).

  jaxdepth train --config configs/cifar10_resnet18_top.py --workdir runs/c10_resnet

Reference-code parity: CIFAR-style ResNet-18 (3x3 stem, no max-pool), global average
pool, fc 512 -> 128, top_depth = 2 residual blocks y = ReLU(x + W2 ReLU(W1 x + b1) + b2)
(hidden 50), classifier 128 -> 10; PyTorch default init; SGD 0.1, momentum 0.9,
coupled weight decay 5e-4, one warm-up epoch, lr *= 0.2 at epochs 60/120/160/300 of
600; random crop (pad 4), flip and +-15 deg rotation (nearest, black fill) on device, as
the reference. Nine embeddings are analysed per evaluation: stem, 4 stages, pool, fc,
top1, top2 (65,536 ... 128 dims), streamed in batches of ``analysis_batch``.
``--config.depth=K`` (or ``sweep_depths``) changes the number of top layers;
``--config.model.top_kind=fc`` uses plain Linear+ReLU top layers;
``--config.model.embed=reference`` records fc and plain top layers before their ReLU,
as the reference code does. ``--config.epochs=200`` runs the same schedule scaled.

Needs the TFDS dataset (prepared on first use with internet and
``pip install 'jaxdepth[tfds]'``; offline: ``python -m jaxdepth.data.tfds cifar10``).
Runtime: not measured (no accelerator was available when this config was written);
390 steps per epoch, 600 epochs, 2 vmapped seeds: many GPU-hours. Not for a CPU.
Expected (paper): the added top layers are collapsed, with small train CDNV and
NCC train accuracy as high as the layer below, i.e. redundant.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = common.base()
  c.dataset = "cifar10"               # tfds cifar10, 50k/10k, 32x32x3
  c.data.num_train = 0                # all training images
  c.data.num_test = 0                 # all test images
  c.data.download = True              # prepare with tfds when missing (needs internet)
  c.family = "resnet18_top"           # ResNet-18 + fc(128) + top layers
  c.depth = 2                         # number of top layers (top_depth)
  c.width = 64                        # base channels: stages 64/128/256/512
  c.batchnorm = True                  # BN in the trunk (top layers have none)
  c.init = "pytorch"                  # PyTorch defaults, for parity with the reference
  c.model.top_kind = "res"            # res (reference default) | fc
  c.model.embed = "post"              # post (post-activation) | reference (parity)
  c.num_seeds = 2                     # vmapped seeds
  c.label_noise = (0.0,)              # clean labels
  c.epochs = 600                      # reference schedule length
  c.batch_size = 128                  # remainder of each epoch dropped: 390 steps
  c.lr = 0.1                          # reference base learning rate
  c.warmup_epochs = 1.0               # linear warm-up over the first epoch
  c.milestones = (0.1, 0.2, 0.2667, 0.5)  # epochs 60, 120, 160, 300 of 600
  c.decay = 0.2                       # lr *= 0.2 at each milestone
  c.weight_decay = 5e-4               # coupled L2 on all parameters, as PyTorch SGD
  c.augment = ("crop", "flip", "rotate")  # training only; analysis uses un-augmented data
  c.eval_every = 20                   # per-layer analysis every 20 epochs and at the end
  c.checkpoint_every = 20
  c.analysis_batch = 250              # 250 x 65,536 floats per stem/stage-1 batch
  c.rank_samples = 512
  if arg == "tiny":                   # seconds: checks the pipeline on the real dataset
    common.tiny_images(c)             # 256 images, 2 epochs, ...
    c.sweep_depths = ()
    c.depth = 1                       # one top layer
    c.width = 4                       # stages 4/8/16/32 channels
    c.num_seeds = 1
    c.epochs = c.eval_every = c.checkpoint_every = 1
  return c
