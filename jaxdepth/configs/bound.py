"""Generalization bound of Galanti et al. 2022 (Prop. 1), estimated from checkpoints.

Default: CONV-8-16 on scikit-learn's digits (offline, bundled with scikit-learn), where
the networks generalize. For each of K = 10 draws of disjoint class-balanced samples
S1, S2 (m = 500 each, from the 1,347 training images), 2 clean networks train on S1
and 1 noisy network on S1 u S2~ for every p (S2's labels flipped on round(p m)
points; p from 0.01 to 0.3, dense below 0.05 where the first term changes), plus the
p = 0 control (``control=True``: the "noisy" runs train on clean
S1 u S2); clean runs are one vmapped program, noisy runs another. Every network is
checkpointed with its draw, p and seed, and the offline calculator reads only the
checkpoints:

  jaxdepth train --config configs/bound.py --workdir runs/bound          # L = 8
  jaxdepth train --config configs/bound.py:L16 --workdir runs/bound_L16  # L = 16
  jaxdepth bound --workdir runs/bound [--eps 0.01 0.05] [--alpha 0.1] [--p 0.05 0.1]

Prop. 1 needs 0 < p < 1/2 (enforced: config.p); the first term is a proportion over K
draws and is printed with its exact 95% (Clopper-Pearson) interval.

Measured with the earlier grid ``--config.p=(0.05,0.1,0.2)`` (seed 0; tables in
README and docs/minimal_depth.md §4; the ten-point default trains 11 instead of 4
noisy sets per draw, so expect about 2.5x the time):
  L = 8:  11 min 44 s wall, 7 min 10 s CPU user, peak RSS 1.4 GB (shared 2-core CPU,
          load average 3.7-14). Clean test error 0.047 +- 0.010; clean effective depth
          D_k = 4.55 (eps 0.01); mean dmin_hat 4.20 (control) / 7.4 / 8 / 8 for
          p = 0 / 0.05 / 0.1 / 0.2; first term 9/10 (control), then 0/10; bound
          0.055 / 0.110 / 0.220, every row >= the test error, the tightest 0.055.
  L = 16 (``:L16``, 80 epochs): 18 min 26 s wall, 26 min CPU user (load 0.7-4).
          Test error 0.047 +- 0.010; D_k = 4.25; dmin_hat 4.00 / 14.4 / 15.5 / 16.3;
          first term 10/10 (control), then 0/10; the same bounds 0.055 / 0.110 / 0.220.
  With 40 epochs at L = 16 the noisy nets did not fit S1 u S2~ (dmin_hat = L + 1 in
  7/10 draws at p = 0.05) and the p = 0.05 row (0.055) fell 0.0001 below the test
  error 0.0551: hence 80 epochs there.
  0/10 draws only bound the first term by 0.31 (95% Clopper-Pearson): "bound (CI top)"
  is 0.363 at p = 0.05; delta_1 = delta_2 = 0 is assumed, not measured.

Variants: ``:L16`` (same protocol at L = 16), ``:mnist1d`` (the previous default,
MLP-8-128 on MNIST-1D, m = 1000, K = 3: networks that do not generalize, kept for
comparison), ``:fashion_mnist`` (the curve on a second dataset: MLP-8-128 on Debian's
Fashion-MNIST IDX files, pool of the first 10,000 training images, m = 500, K = 5
draws x 5 clean seeds, 100 epochs, no control; 8 min 43 s wall on the shared 2-core
CPU, 2026-12-04; test error 0.231, estimate below it for p in [0.075, 0.2] at
eps = 0.01; with ``--config.num_draws=10``, 9 min 57 s: p = 0.03 and [0.05, 0.2];
docs/minimal_depth.md §4.2), ``:tiny`` (Gaussian mixture, under a minute:
tests and the notebook).
"""

import ml_collections

VARIANTS = ("L16", "mnist1d", "fashion_mnist", "tiny")  # values of get_config's arg


def get_config(arg=None):
  # The defaults are the bound experiment's declared fields (fields.BOUND: CONV-8-16,
  # global-average-pool head, on digits; S1, S2 of m = 500; 10 draws x 2 clean seeds;
  # p from 0.01 to 0.3, dense where the first term changes (p <= 2 eps keeps the
  # corrupted p/2 of S1 u S2 within the NCC's eps budget); eps 0.01 and 0.05; 40 epochs
  # of SGD). docs/config_fields.md lists every field; the variants below change some.
  from jaxdepth.papers.minimal_depth import fields  # configs sit above the papers
  c = fields.BOUND.defaults()
  if arg == "L16":
    c.depth = 16
    c.epochs = 80               # at 40 epochs the 16-layer noisy nets did not fit S1 u S2~
    c.checkpoint_every = 40
  elif arg == "mnist1d":        # the earlier default: MNIST-1D MLPs (test error ~0.54)
    c.dataset = "mnist1d"
    c.data.num_train = 4000
    c.data.num_test = 1000
    c.data.seed = 42
    c.family = "mlp"
    c.width = 128
    c.model = ml_collections.ConfigDict()
    c.m = 1000
    c.num_draws = 3
    c.num_clean_seeds = 3
    c.num_noisy_seeds = 3
    c.p = (0.2, 0.4)
    c.eps = (0.01, 0.05, 0.1)
    c.epochs = 80
    c.batch_size = 100
    c.checkpoint_every = 40
    c.rank_samples = 64
  elif arg == "fashion_mnist":  # Fashion-MNIST (Debian IDX), MLP-8-128, 5 clean seeds
    c.dataset = "fashion_mnist"  # docs/minimal_depth.md §4.2
    c.data.num_train = 10000    # pool: the first 10,000 training images
    c.data.num_test = 0         # all 10,000 test images
    c.family = "mlp"
    c.width = 128
    c.model = ml_collections.ConfigDict()
    c.num_draws = 5
    c.num_clean_seeds = 5
    c.control = False
    c.epochs = 100              # at 40 the noisy nets did not fit S1 u S2~ for p >= 0.15
    c.checkpoint_every = 50
  elif arg == "tiny":           # seconds on CPU: tests, notebook under JAXDEPTH_TINY=1
    c.dataset = "gaussian"
    c.data.num_train = 240
    c.data.num_test = 120
    c.data.seed = 0
    c.family = "mlp"
    c.model = ml_collections.ConfigDict()
    c.depth = 4
    c.width = 16
    c.m = 40
    c.num_draws = 2
    c.num_clean_seeds = 2
    c.num_noisy_seeds = 2
    c.p = (0.2, 0.4)
    c.control = True
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
    raise ValueError(f"unknown variant {arg!r}; allowed: L16, mnist1d, fashion_mnist, "
                     "tiny")
  return c
