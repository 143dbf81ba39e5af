"""Per-layer NCC separability vs total depth: CONV-L-128 on SVHN (Galanti et al. 2022).

  jaxdepth train --config configs/svhn_conv.py --workdir runs/svhn_conv

Needs the TFDS dataset: with internet it is prepared on first use (data.download,
needs ``pip install 'jaxdepth[tfds]'``); offline, prepare it elsewhere with
``python -m jaxdepth.data.tfds svhn_cropped --data_dir DIR`` and pass
``--config.data.data_dir=DIR``.
Uses the 73,257-image ``train`` split only (no ``extra``), normalized with
SVHN's own statistics (the reference code used 0.5/0.5); no augmentation.

Runtime: not measured (no accelerator was available when this config was written);
each depth is one vmapped program for the 3 seeds, 572 steps per epoch. A 2-core CPU
is far too slow for this config: use a GPU/TPU, or lower width/epochs.
Expected (paper): NCC train accuracy reaches ~1 below the top layer and stays
there; the 0.01-effective depth stops growing once L passes a small threshold; train
CDNV in the top layers falls as L grows.
"""

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = common.paper_conv("svhn_cropped", augment=())
  if arg == "tiny":                   # seconds: checks the pipeline on the real dataset
    common.tiny_images(c)
  return c
