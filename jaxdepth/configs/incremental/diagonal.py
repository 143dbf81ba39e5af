"""Diagonal linear networks, binary classification (Figure 1c): sparse features first.

  jaxdepth train --config configs/incremental/diagonal.py --workdir runs/inc_diag

Runtime: about 10 s on a 2-core CPU (depths 1, 2, 3, 5 x 5 seeds, plus an SVM).
Expected (paper): cos(beta, w*) ~0.85 for depth 1 (like the SVM), >= 0.98
for depth 2, >= 0.99 for depths 3 and 5; for depth >= 2 the four support coordinates
cross |beta_j| = 0.2 in teacher order; depth 1 lets ~50 off-support coordinates
cross, depth 3 only a few.  ``:tiny`` is a smoke run.
"""

import ml_collections

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "incremental.diagonal"  # -> jaxdepth/incremental/diagonal.py
  c.d = 100  # features
  c.n = 200  # training points x ~ N(0, I_d)
  c.n_test = 5000  # held-out points for the accuracy
  c.teacher = (8.0, 4.0, 2.0, 1.0)  # w* (normalized) on the first coordinates
  c.loss = "exponential"  # exponential | logistic (mean over the batch)
  c.depths = (1, 2, 3, 5)  # N: beta = w_+^N - w_-^N; one compile per depth
  c.init_scales = (0.01,)  # sigma0: w_+ = w_- = sigma0^(1/N); vmapped
  c.num_seeds = 5  # seeds (data), vmapped
  c.seed = 0  # root key
  c.steps = 100_000  # max full-batch GD steps
  c.lr = 0.01  # learning rate
  c.stop_loss = 0.01  # a run freezes once its loss is below this
  c.threshold = 0.2  # coordinate j "crosses" at the first step with |beta_j| >= this
  c.record_every = 10  # steps between crossing checks
  c.log_every = 100  # steps between logged records
  c.top_k = 5  # largest |beta_j| logged and plotted
  c.svm = True  # also fit an l2 max-margin linear SVM baseline (scikit-learn)
  c.x64 = True  # float64
  c.progress = True  # progress bar
  if arg == "tiny":
    c.d, c.n, c.n_test, c.depths, c.num_seeds, c.steps = 30, 60, 200, (1, 3), 2, 5000
    c.progress = False
  return c
