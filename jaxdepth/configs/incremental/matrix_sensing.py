"""Deep matrix sensing (Figure 1a): depth >= 3 learns singular values one by one.

  jaxdepth train --config configs/incremental/matrix_sensing.py --workdir runs/inc_ms

Runtime: about 1 minute on a 2-core CPU (d = 50, m = 1000, 20k steps, depths 1-4;
each step reads the 20 MB measurement tensor twice).
Expected (paper; measured, seed 0): relative error 0.59 / 4.6e-4 / 2.5e-6 /
3.0e-7 for depths 1 / 2 / 3 / 4; depths 3 and 4 learn the four singular values one
at a time (t50 950, 1900, 3150, 4050 and 2150, 3950, 6650, 10850 steps; every
next_frac_at_t90 <= 0.01), depth 2 learns the later pairs together (next_frac 0.05,
0.30, 0.81) and depth 1 converges to the dense minimum-norm solution.
``:small`` is the AC5 setting (d = 20, m = 200, about 25 s); ``:tiny`` a smoke run.
"""

import ml_collections

VARIANTS = ("small", "tiny")  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "incremental.matrix_sensing"  # -> jaxdepth/incremental/matrix_sensing.py
  c.d = 50  # W is d x d
  c.m = 1000  # Gaussian measurements <A_i, W*> (m << d^2)
  c.targets = (12.0, 6.0, 4.0, 3.0)  # nonzero singular values of W* = diag(targets, 0...)
  c.depths = (1, 2, 3, 4)  # N factors W_1 ... W_N (lax.scan); one compile per depth
  c.init_scales = (1e-4,)  # sigma0: factors N(0, sigma0^(2/N)/d); vmapped
  c.init = "gaussian"  # gaussian | identity (sigma0^(1/N) I)
  c.num_seeds = 1  # seeds (measurements and init), vmapped
  c.seed = 0  # root key
  c.steps = 20_000  # full-batch GD steps; loss = mean (<A_i, W> - y_i)^2 (no 1/2)
  c.lr = 1e-3  # learning rate
  c.record_every = 50  # steps between SVDs (t10/t50/t90 resolution)
  c.log_every = 50  # steps between logged records
  c.stop_loss = 0.0  # freeze a run once its loss is below this (0: never)
  c.top_k = 5  # singular values tracked
  c.x64 = True  # float64
  c.progress = True  # progress bar
  if arg == "small":
    c.d, c.m = 20, 200
  if arg == "tiny":
    c.d, c.m, c.depths, c.steps, c.progress = 10, 60, (1, 3), 2000, False
    c.targets, c.lr, c.init_scales = (3.0, 1.0), 0.01, (1e-3,)
    c.top_k = 3
  return c
