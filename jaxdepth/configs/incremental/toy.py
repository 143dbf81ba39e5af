"""Toy model sigma_i = u_i^N: staircase at depth 2 vs 4, time scaling, critical-init table.

  jaxdepth train --config configs/incremental/toy.py --workdir runs/inc_toy

Runtime: about 6 s on a 2-core CPU (float64, every step tracked).  Expected
(paper): for N >= 3 the values are learned one at a time with
t50(i)/t50(1) close to sigma*_1/sigma*_i = 1, 2, 3, 4 and next_frac_at_t90 <= 0.01;
N = 2 learns the pairs with next_frac_at_t90 of 0.05 to 0.5; N = 1 has
next_frac_at_t90 = 0.90 for every pair.  The printed critical-init table matches
docs/definitions.md (depth 2 needs sigma0 ~ 1e-19 for r = 0.9, depth 4 only ~ 7e-4).
``:tiny`` runs in a few seconds (tests, notebook).
"""

import ml_collections

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "incremental.toy"  # registry name -> jaxdepth/incremental/toy.py
  c.targets = (12.0, 6.0, 4.0, 3.0)  # sigma*_i (> 0; sorted descending internally)
  c.depths = (1, 2, 3, 4)  # N: sigma = u^N; one compiled program per depth
  c.init_scales = (1e-3, 1e-4)  # sigma0 = sigma_i(0); vmapped
  c.num_seeds = 1  # the toy init is deterministic; seeds only replicate
  c.seed = 0  # root key
  c.steps = 200_000  # max GD steps (stops early once every run has loss < stop_loss)
  c.lr = 0.0  # 0: per-depth rule lr_factor / (N^2 max sigma*^(2-2/N))
  c.lr_factor = 0.02  # ~100x below the stability limit, so GD tracks gradient flow
  c.record_every = 1  # steps between tracking evaluations (t10/t50/t90 resolution)
  c.log_every = 100  # steps between logged records (figures, metrics.jsonl)
  c.stop_loss = 1e-8  # loss 1/2 sum (sigma - sigma*)^2 below which a run freezes
  c.x64 = True  # float64 (needed for sigma0 <= 1e-6)
  c.progress = True  # progress bar
  c.critical_ratios = (0.5, 0.8, 0.9, 0.95)  # r = sigma*_{i+1}/sigma*_i of the table
  c.critical_depths = (2, 3, 4, 6, 10)  # depths of the critical-init table
  c.critical_eps = 0.1  # epsilon of eps-incremental learning
  if arg == "tiny":
    c.depths = (2, 4)
    c.init_scales = (1e-3,)
    c.steps = 50_000
    c.critical_ratios = (0.5, 0.9)
    c.critical_depths = (2, 4)
    c.progress = False
  return c
