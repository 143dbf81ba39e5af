"""Converged rho(W_e) vs depth for six optimizers (Observation 3).

docs/definitions.md, "Optimizers".

jaxdepth train --config configs/lowrank/optimizers.py --workdir runs/lr_optimizers

Runtime: measured 132 s CPU, 6 min wall on a loaded 2-core machine (6 optimizers
x 4 depths, 3 seeds vmapped). Measured converged rho at d = 1 -> 8: SGD 1.64 -> 1.19,
Nesterov 1.62 -> 1.06, Adam 1.67 -> 0.88, L-BFGS 1.62 -> 0.85, random search
1.87 -> 1.68, ES 1.81 -> 1.37 (ES not monotone: 1.28 at d=4).
Expected: for every optimizer, deeper networks converge to a lower rho(W_e) on the
under-determined rank-2 regression (rho(W*) = log 2); the gradient-free methods
(random search, evolution strategy) show it too, though they fit less tightly.
Outputs: summary.json, metrics.jsonl, optimizers.png.
Tiny CI setting: append ":tiny" to the config path.
"""

import ml_collections

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "lowrank.optimizers"   # registry name
  c.dim = 16                            # input = output dimension of W*
  c.target_rank = 2                     # rank of W* (flat spectrum)
  c.n_train = 12                        # training points (< dim: under-determined)
  c.n_test = 1000                       # test points
  c.depths = (1, 2, 4, 8)               # factors d (one compile per optimizer and depth)
  c.optimizers = ("sgd", "nesterov", "adam", "lbfgs", "random_search", "es")
  c.steps = 3000                        # steps of sgd / nesterov / adam
  c.gf_steps = 20000                    # steps of random_search / es
  c.lbfgs_steps = 300                   # L-BFGS iterations
  c.lr = ml_collections.ConfigDict(dict(
      sgd=0.2,                          # divided by depth
      nesterov=0.05,                    # divided by depth
      adam=0.003,                       # Adam
      es=0.003,                         # Adam on the ES gradient estimate
  ))
  c.sigma = ml_collections.ConfigDict(dict(
      random_search=0.05,               # perturbation scale, annealed to 1/100
      es=0.02,                          # ES smoothing scale
  ))
  c.momentum = 0.9                      # Nesterov momentum
  c.population = 16                     # ES antithetic pairs per step
  c.num_seeds = 3                       # seeds (data, target, init), vmapped
  c.seed = 0                            # root seed
  c.progress = True                     # progress bar
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.dim, c.n_train, c.depths, c.num_seeds = 8, 6, (1, 4), 1
    c.steps, c.gf_steps, c.lbfgs_steps, c.population = 500, 2000, 50, 4
    c.progress = False
  return c
