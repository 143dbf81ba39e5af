"""Deep linear networks on low-rank vs full-rank regression, depth 1 to 32
(spec Sec. 5.5; AC4 with the defaults, AC9/AC10 with --config.n_train=128).

jaxdepth train --config configs/lowrank/regression.py --workdir runs/lr_regression

Runtime: a few minutes on a 2-core CPU (nine depths, 2 targets x 3 seeds vmapped,
4000 full-batch GD steps each). Expected: on the rank-4 target (rho(W*) = log 4 =
1.386) the training loss is near 0 up to moderate depth and the converged
rho(W_e) falls with depth (about 2.3 at d=1 to about 1.8 at d=8) towards rho(W*);
rho at init falls with depth. On the full-rank target (rho about 3.2) deep networks
stall at a high training loss within the budget and their converged rho falls below
rho(W*). Outputs: summary.json, metrics.jsonl, regression.png.
Tiny CI setting: append ":tiny" to the config path.
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "lowrank.regression"   # registry name
  c.dim = 32                            # input = output dimension of W*
  c.targets = ("low_rank", "full_rank") # W* kinds (vmapped)
  c.target_rank = 4                     # rank of the low-rank W* (flat spectrum)
  c.n_train = 24                        # training points (< dim: under-determined)
  c.n_test = 2000                       # test points
  c.depths = (1, 4, 8, 12, 16, 20, 24, 28, 32)  # factors d (one compile each)
  c.inits = ("normal",)                 # normal (N(0, 1/dim)) and/or low_rank factors
  c.init_rank = 4                       # rank of each factor for the low_rank init
  c.steps = 4000                        # full-batch GD steps
  c.lr = 0.2                            # base learning rate
  c.lr_scaling = "inverse_depth"        # inverse_depth (lr / d) | none
  c.num_seeds = 3                       # seeds (data, target, init), vmapped
  c.seed = 0                            # root seed
  c.log_every = 100                     # steps between logged training losses
  c.progress = True                     # progress bar
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.depths, c.steps, c.num_seeds, c.n_test = (1, 4, 8), 1000, 1, 500
    c.progress = False
  return c
