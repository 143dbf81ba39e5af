"""Deep matrix sensing (Figure 1a): depth >= 3 learns singular values one by one.

  jaxdepth train --config configs/incremental/matrix_sensing.py --workdir runs/inc_ms

Runtime: about 2 minutes on a 2-core CPU (d = 50, m = 1000, 20k steps, depths 1-4).
Expected (spec §5.1): relative error ~0.6 for depth 1 (dense minimum-norm
solution), ~1e-3 for depth 2, <= 1e-5 for depths 3-4; for depth >= 3 t50 is
increasing and next_frac_at_t90 <= 0.01 (incremental), depth 2 is not.
``:small`` is the AC5 setting (d = 20, m = 200, about 25 s); ``:tiny`` a smoke run.
"""

import ml_collections


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
