"""Depth-parameterized networks as pure (init, apply) pairs.

Every network returns its logits and the flattened post-activation embedding of
every studied layer. Layers of equal shape are stored stacked on a leading axis and
applied with ``lax.scan``, so compile time does not grow with depth.

Network contract (all families):
  init(key) -> variables = {"params": tree, "batch_stats": tree}
  apply(variables, x_B..., train) -> (logits_BxC, feats, new_batch_stats)
  feats: tuple of layer groups, each (L_g, B, D_g); sum of L_g == num_layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax


class Network(NamedTuple):
  init: Callable[[jax.Array], dict]
  apply: Callable[..., tuple[jax.Array, tuple[jax.Array, ...], Any]]
  num_layers: int
  layer_names: tuple[str, ...]
  # variables -> (C, D): the linear classifier acting on the top layer's embedding
  # (NC3 compares it with the class means there); None when the logits are not a
  # linear map of that embedding (e.g. a pooled head).
  classifier: Callable[[dict], jax.Array] | None = None
