"""Per-layer NCC separability vs total depth: CONV-L-128 on CIFAR-10 (Galanti et al. 2022).

  jaxdepth train --config configs/cifar10_conv.py --workdir runs/cifar10_conv

Needs the TFDS dataset: with internet it is prepared on first use (data.download,
needs ``pip install 'jaxdepth[tfds]'``); offline, prepare it elsewhere with
``python -m jaxdepth.tfds_data cifar10 --data_dir DIR`` and pass
``--config.data.data_dir=DIR``.
Images are normalized with CIFAR-10's own statistics (the reference code
used CIFAR-100's); training batches get random crop (pad 4) and horizontal flip on
device, all analysis uses un-augmented images.

Runtime: not measured (no accelerator was available when this config was written);
each depth is one vmapped program for the 3 seeds, 390 steps per epoch. A 2-core CPU
is far too slow for this config: use a GPU/TPU, or lower width/epochs.
Expected (spec §14.1): NCC train accuracy reaches ~1 below the top layer and stays
there; the 0.01-effective depth stops growing once L passes a small threshold; train
CDNV in the top layers falls as L grows.
CIFAR-10 is the hardest of the four: NCC test accuracy stays well below train.
"""

from configs import common


def get_config(arg=None):
  c = common.base()
  c.dataset = "cifar10"               # tfds cifar10, 50k/10k, 32x32x3
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
  c.epochs = 100                      # proportionally scaled reference schedule (spec §11)
  c.batch_size = 128
  c.lr = 0.1                          # reference base learning rate
  c.warmup_epochs = 1.0               # linear warm-up over the first epoch
  c.milestones = (0.1, 0.2, 0.27, 0.5)  # reference 60/120/160/300 of 600 epochs
  c.decay = 0.2                       # lr *= 0.2 at each milestone
  c.weight_decay = 5e-4               # coupled L2, as PyTorch SGD
  c.augment = ("crop", "flip")        # training only; reference also rotates +-15 deg
  c.eval_every = 10                   # per-layer analysis every 10 epochs and at the end
  c.checkpoint_every = 10
  c.analysis_batch = 500              # streamed: 500 x 16*16*128 floats per layer at a time
  c.rank_samples = 512
  return c
