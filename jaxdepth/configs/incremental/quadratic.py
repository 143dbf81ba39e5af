"""Quadratic network f(x) = ||W x||^2 (+ b) (Figure 1b): eigenvalues of W^T W one at a time.

  jaxdepth train --config configs/incremental/quadratic.py --workdir runs/inc_quad

Runtime: about 10 s on a 2-core CPU (4 seeds x 2 bias modes, 30k steps).
Expected (paper; measured, seeds 0-3): with a bias started at mean(y) the
sorted eigenvalues reach half their targets strictly in order in 4/4 seeds (mean
t50(2)/t50(1) = 4.1); without a bias the order breaks in 4/4 seeds (a smaller
eigenvalue reaches half its target first, or two at once); test relative MSE <= 0.05.
``:tiny`` is a smoke run.
"""

import ml_collections

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "incremental.quadratic"  # -> jaxdepth/incremental/quadratic.py
  c.d = 20  # input dimension = number of hidden units
  c.n = 100  # training inputs x ~ N(0, I_d)
  c.n_test = 2000  # fresh inputs for the test relative MSE
  c.targets = (1.0, 1 / 2, 1 / 3, 1 / 4)  # eigenvalues of M* = W*^T W*
  c.depths = (2,)  # a quadratic network has depth 2 (only (2,) is accepted)
  c.init_scales = (1e-4,)  # sigma0: W(0) = sqrt(sigma0) Q, M(0) = sigma0 I; vmapped
  c.bias_modes = ("none", "mean_y")  # no bias | trainable bias started at mean(y)
  c.num_seeds = 4  # seeds (data and orthogonal init), vmapped
  c.seed = 0  # root key
  c.steps = 30_000  # full-batch GD steps; loss = mean (f(x) - y)^2 (no 1/2)
  c.lr = 1e-3  # learning rate
  c.record_every = 50  # steps between eigen-decompositions
  c.log_every = 50  # steps between logged records
  c.stop_loss = 0.0  # freeze a run once its loss is below this (0: never)
  c.top_k = 5  # eigenvalues tracked
  c.x64 = True  # float64
  c.progress = True  # progress bar
  if arg == "tiny":
    c.d, c.n, c.n_test, c.num_seeds, c.steps, c.progress = 8, 60, 200, 2, 3000, False
    c.targets = (1.0, 0.5)
    c.top_k = 3
  return c
