"""Gram rank of MLP embeddings at initialization vs depth
(docs/definitions.md, "Init rank").

jaxdepth train --config configs/lowrank/init_rank.py --workdir runs/lr_init_rank

Runtime: under 20 s CPU on a 2-core machine (100 draws, five depths, three
activations, one compiled program).
Expected (AC3 setup): mean rho(K) strictly decreasing in depth for linear, ReLU and
tanh; about 2.2 at d=1 for all three, then roughly 0.6 (linear), 0.2 (ReLU) and
1.1 (tanh) at d=16. Outputs: summary.json, metrics.jsonl, init_rank.png.
Tiny CI setting: append ":tiny" to the config path.
"""

import ml_collections

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "lowrank.init_rank"    # registry name
  c.n_points = 128                      # N rows of the fixed input batch X ~ N(0, I)
  c.d_in = 16                           # input dimension
  c.width = 16                          # width of every layer
  c.depths = (1, 2, 4, 8, 16)           # layers d (one compile each)
  c.activations = ("linear", "relu", "tanh")  # also leaky_relu, gelu, selu, sine
  c.distribution = "normal"             # normal | uniform weights (Kaiming variance)
  c.draws = 100                         # random networks per depth (vmapped)
  c.center = False                      # subtract the batch mean before K = Phi Phi^T
  c.seed = 0                            # root seed (X and weights)
  c.progress = True                     # progress bar
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.depths, c.draws = (1, 4, 16), 16
    c.progress = False
  return c
