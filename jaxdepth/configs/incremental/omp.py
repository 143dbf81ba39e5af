"""Deep toy model vs Orthogonal Matching Pursuit on sparse regression
(docs/definitions.md, "Models").

  jaxdepth train --config configs/incremental/omp.py --workdir runs/inc_omp

Runtime: about 10 s on a 2-core CPU (d = 1000, n = 80, 5-sparse, depths 1, 2, 5 x
3 seeds).  Expected: depth 5 selects exactly the true support, one coordinate at a
time, in the same order as OMP (concurrence 1, orders agree) and recovers w*
(relative error < 1e-2); depth 1 crosses the threshold on many coordinates and has
relative error ~0.9 (the minimum-norm interpolant).  ``:tiny`` is a smoke run.
"""

import ml_collections

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "incremental.omp"  # -> jaxdepth/incremental/omp.py
  c.d = 1000  # coordinates
  c.n = 80  # measurements (X has unit-norm Gaussian columns)
  c.sparsity = 5  # nonzeros of w* (uniform support)
  c.value_scale = 10.0  # nonzeros are Exponential(value_scale) + 1
  c.depths = (1, 2, 5)  # N of the signed toy model beta = w_+^N - w_-^N
  c.init_scales = (1e-3,)  # sigma0 (each part starts at sigma0^(1/N)); vmapped
  c.num_seeds = 3  # seeds (data), vmapped
  c.seed = 0  # root key
  c.steps = 400_000  # max full-batch GD steps; loss = mean (X beta - y)^2 (no 1/2)
  c.lr = 2e-3  # learning rate
  c.stop_loss = 0.01  # a run freezes once its loss is below this
  c.threshold = 0.1  # coordinate j is selected at the first step with |beta_j| > this
  c.omp_tol = 1e-4  # OMP stops when 1/2 ||r||^2 < omp_tol
  c.record_every = 10  # steps between selection checks
  c.log_every = 100  # steps between logged records (resolution of t10/t50/t90)
  c.x64 = True  # float64
  c.progress = True  # progress bar
  if arg == "tiny":
    c.d, c.n, c.sparsity, c.depths, c.num_seeds, c.steps = 100, 30, 3, (5,), 1, 40_000
    c.progress = False
  return c
