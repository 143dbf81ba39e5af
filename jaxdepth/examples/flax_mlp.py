"""An MLP as a flax linen Module, written the way the sweep engine trains a user's
model (``family = "flax"``, configs/your_model.py): copy it and change the layers.

The convention (jaxdepth/nets/flax_module.py):
  * ``__call__(self, x, train: bool = False)`` returns logits (batch, num_classes);
  * BatchNorm uses ``use_running_average=not train`` (running averages when measured);
  * Dropout uses ``deterministic=not train`` (the 'dropout' rng is given in training);
  * a ``num_classes`` field is filled in from the dataset when the config leaves it out.

Each hidden layer is a ``Block`` submodule, so its output -- the post-activation
embedding that the per-layer analysis measures -- is one captured layer ``Block_i``
(select them with ``model.layers = ("Block_*",)``; without a selection the Dense and
BatchNorm outputs inside the blocks and the classifier's are measured too).
"""

from __future__ import annotations

from flax import linen as nn


class Block(nn.Module):
  """Dense -> [BatchNorm] -> ReLU -> [Dropout]."""
  width: int
  batchnorm: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Dense(self.width, use_bias=not self.batchnorm)(x)
    if self.batchnorm:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(x)
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class MLP(nn.Module):
  """``depth`` Blocks of ``width`` units, then a linear classifier."""
  num_classes: int
  depth: int = 4
  width: int = 64
  batchnorm: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape(x.shape[0], -1)  # images or vectors: flattened per example
    for _ in range(self.depth):
      x = Block(self.width, self.batchnorm, self.dropout)(x, train)
    return nn.Dense(self.num_classes)(x)
