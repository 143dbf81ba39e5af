"""Generalization bound of Galanti et al. 2022 (Prop. 1), estimated from checkpoints.

Trains, for each of K draws of disjoint class-balanced samples S1, S2 (m each),
n clean networks on S1 and n noisy networks on S1 u S2~ for every p (S2's labels
flipped on round(p m) points); clean runs are one vmapped program, noisy runs
another. Every network is checkpointed with its draw, p and seed. Then the offline
calculator reads only the checkpoints:

  jaxdepth train --config configs/bound.py --workdir runs/bound
  jaxdepth bound --workdir runs/bound [--eps 0.01 0.05] [--alpha 0.1] [--p 0.4 0.6]

Runtime: 8m55s wall for training (3m24s CPU user time; the 2-core CPU was shared with
other jobs; MNIST-1D, MLP-8-128, m=1000, K=3 draws x 3 seeds, 9 clean + 36 noisy runs,
80 epochs); the calculator 12 s wall (4 s CPU).
Measured (seed 0): mean clean test error 0.542. eps=0.01: clean nets separate at layer
6.8 on average, the noisy sets need 7.7-8, so the first term is 0 for every p and the
bound is (1 + alpha) p = 0.22 / 0.44 / 0.66 / 0.88 for p = 0.2 / 0.4 / 0.6 / 0.8 --
non-trivial, but for p <= 0.4 below the measured test error (the delta terms are not
negligible here: MLPs memorize MNIST-1D). eps=0.1: first term 1 at p=0.2, 0 above.
The tiny variant (``configs/bound.py:tiny``, Gaussian mixture, under a minute) is for
tests and the notebook.
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "bound"        # registry name -> jaxdepth/papers/minimal_depth/bound_experiment.py
  c.dataset = "mnist1d"         # mnist1d | gaussian | digits | a tfds name
  c.data = ml_collections.ConfigDict(dict(
      num_train=4000,           # training pool the samples S1, S2 are drawn from
      num_test=1000,            # test examples for the clean networks' test error
      seed=42,                  # generator / split seed of the embedded datasets
      data_dir="",              # tfds data_dir ('' = tfds default)
      download=False,           # tfds: download_and_prepare when missing
  ))
  c.family = "mlp"              # architecture G: mlp | conv | resnet18_top
  c.depth = 8                   # L (>= L0 so effective depths do not depend on it)
  c.width = 128                 # H
  c.batchnorm = True            # BN in every block
  c.init = "kaiming"            # kaiming | pytorch
  c.model = ml_collections.ConfigDict()  # family-specific extras
  c.seed = 0                    # root key; subset/noise/init/order keys per spec §9.2
  c.m = 1000                    # size of S1 and of S2 (multiple of the class count)
  c.num_draws = 3               # K draws of (S1, S2)
  c.num_clean_seeds = 3         # n_gamma networks trained on each clean S1
  c.num_noisy_seeds = 3         # n_noisy networks per draw and p (min gives dmin_hat)
  c.p = (0.2, 0.4, 0.6, 0.8)    # corruption fractions of S2 (< 1)
  c.noise_mode = "flip"         # flip (Prop. 1: always a wrong class) | uniform
  c.alpha = (0.1,)              # slack alpha of the bound, reported by default
  c.eps = (0.01, 0.05, 0.1)     # effective-depth thresholds reported by default
  c.epochs = 80                 # epochs (noisy runs see 2m points: twice the steps)
  c.batch_size = 100            # SGD batch; epoch remainder dropped
  c.lr = 0.05                   # base learning rate
  c.momentum = 0.9              # SGD momentum
  c.weight_decay = 5e-4         # coupled L2
  c.warmup_epochs = 1.0         # linear warm-up from 0
  c.schedule = "step"           # step | cosine | constant
  c.milestones = (0.5, 0.75)    # fractions of training where lr *= decay
  c.decay = 0.2                 # step factor
  c.checkpoint_every = 40       # epochs between checkpoints (and always at the end)
  c.keep_checkpoints = 1        # checkpoints kept per program (clean, noisy)
  c.analysis_batch = 500        # batch of the streamed per-layer analysis
  c.rank_samples = 64           # examples for the per-layer rank diagnostic
  c.shard_runs = True           # shard the run axis over devices when there are several
  c.progress = True             # progress bar
  if arg == "tiny":             # seconds on CPU: tests, notebook under JAXDEPTH_TINY=1
    c.dataset = "gaussian"
    c.data.num_train = 240
    c.data.num_test = 120
    c.data.seed = 0
    c.depth = 4
    c.width = 16
    c.m = 40
    c.num_draws = 2
    c.num_clean_seeds = 2
    c.num_noisy_seeds = 2
    c.p = (0.25, 0.5)
    c.alpha = (0.1,)
    c.eps = (0.01, 0.1)
    c.epochs = 30
    c.batch_size = 20
    c.checkpoint_every = 15
    c.keep_checkpoints = 2    # the tests delete the last one to simulate an interruption
    c.analysis_batch = 32     # not a divisor of m: exercises the masked tail
    c.rank_samples = 16
    c.progress = False
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; allowed: tiny")
  return c
