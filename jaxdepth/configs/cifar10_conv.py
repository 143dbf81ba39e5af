"""Per-layer NCC separability vs total depth: CONV-L-128 on CIFAR-10 (Galanti et al. 2022).

  jaxdepth train --config configs/cifar10_conv.py --workdir runs/cifar10_conv

Needs the TFDS dataset: with internet it is prepared on first use (data.download,
needs ``pip install 'jaxdepth[tfds]'``); offline, prepare it elsewhere with
``python -m jaxdepth.data.tfds cifar10 --data_dir DIR`` and pass
``--config.data.data_dir=DIR``.
Images are normalized with CIFAR-10's own statistics (the reference code
used CIFAR-100's); training batches get random crop (pad 4), horizontal flip and
+-15 deg rotation (black fill) on device, all analysis uses un-augmented images.

Runtime: not measured (no accelerator was available when this config was written);
each depth is one vmapped program for the 3 seeds, 390 steps per epoch. A 2-core CPU
is far too slow for this config: use a GPU/TPU, or lower width/epochs.
Expected (paper): NCC train accuracy reaches ~1 below the top layer and stays
there; the 0.01-effective depth stops growing once L passes a small threshold; train
CDNV in the top layers falls as L grows.
CIFAR-10 is the hardest of the four: NCC test accuracy stays well below train.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = common.paper_conv("cifar10", augment=("crop", "flip", "rotate"))  # as the reference
  if arg == "tiny":                   # seconds: checks the pipeline on the real dataset
    common.tiny_images(c)
  return c
