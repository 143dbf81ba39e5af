"""Your own model and data: a flax linen Module (by import path) trained on an .npz file.

  jaxdepth train --config your_model:tiny --workdir runs/mine          # digits, seconds
  jaxdepth train --config your_model --workdir runs/mine \\
      --config.dataset=npz --config.data.path=my_data.npz              # your data

For your own module, copy this file, set ``model.module`` and ``model.kwargs`` (the
kwargs here are the example MLP's) and run ``jaxdepth train --config my_config.py``.

``model.module`` is ``package.module:Class`` (importable) or ``path/to/file.py:Class``;
``model.kwargs`` are the class's keyword arguments. The module's calling convention
(``__call__(self, x, train: bool = False)``, BatchNorm and dropout) is in
jaxdepth/nets/flax_module.py; jaxdepth/examples/flax_mlp.py follows it. The .npz holds
x_train, y_train, x_test, y_test (jaxdepth/data/npz.py). Seeds, label noise and the
value hyperparameters (lr, weight_decay, ...) are run axes as for the built-in
networks; checkpoints, resume, metrics.jsonl and the report are the same.
Without --config.dataset=npz it runs on the bundled digits (8x8 images, offline).
"""

import ml_collections

from jaxdepth.configs import common

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = common.base()
  c.dataset = "digits"                # or "npz" with data.path (x/y_train, x/y_test)
  c.data.num_train = 0                # all examples of the file (0 = all)
  c.data.num_test = 0
  c.data.path = ""                    # dataset=npz: the .npz file
  c.data.num_classes = 0              # dataset=npz: 0 = 1 + the largest label
  c.family = "flax"                   # a user's flax linen Module
  c.model.module = "jaxdepth.examples.flax_mlp:MLP"   # package.module:Class or file.py:Class
  c.model.kwargs = ml_collections.ConfigDict(dict(    # MLP(**kwargs); num_classes from data
      depth=6, width=128, batchnorm=True, dropout=0.0))
  c.model.layers = ("Block_*",)       # measured layers: names or patterns; () = all
  c.num_seeds = 3                     # seeds, vmapped in one program
  c.label_noise = (0.0,)
  c.epochs = 40
  c.batch_size = 128
  c.lr = 0.05
  c.eval_every = 10
  c.checkpoint_every = 10
  c.analysis_batch = 500
  c.rank_samples = 256
  if arg == "tiny":                   # seconds: MLP with 3 blocks of 32, 2 seeds, 2 epochs
    c.model.kwargs.depth, c.model.kwargs.width = 3, 32
    c.num_seeds = 2
    c.epochs, c.batch_size = 2, 64
    c.eval_every = c.checkpoint_every = 2
    c.analysis_batch, c.rank_samples = 256, 64
    c.progress = False
  return c
