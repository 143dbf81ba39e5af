"""Circular-convolutional linear networks (Figure 1d): Fourier amplitudes, largest first.

  jaxdepth train --config configs/incremental/circular_conv.py --workdir runs/inc_conv

Runtime: about 20 s on a 2-core CPU (d = 50, n = 100, depths 1-3, 2 init scales x 3
seeds).  Expected (paper; measured over seeds 0-31 of this config's stream):
the fraction of |rfft(beta)|^2 on the four target frequencies (rfft bins as they are)
has median 0.77 for depth 1 (0.68-0.86; <= 0.8 in 22/32 seeds) and 0.98 for depths 2
and 3 (depth 3: 0.86-1.00, >= 0.95 in 26/32); cos(beta, w*) median 0.85 / 0.97 / 0.97.
The largest target frequency (k = 3) crosses its threshold first for depths 2 / 3 in
19/32 / 17/32 seeds at sigma0 = 0.01 and 25/32 / 22/32 at sigma0 = 1e-3.  These are
per-seed random outcomes: the observed values (depth-1 mass 0.66, k = 3 first
in 3/3) are seeds 0-2 of a NumPy ``default_rng`` stream, which jaxdepth reproduces
exactly on the same draws; over 200 seeds of that stream k = 3 is first in 76% / 68%
of seeds at sigma0 = 0.01 (tests/incremental_classification_test.py, AC8).  About 1-3%
of depth-3 runs diverge at lr = 0.01 (GD at the edge of stability; float64 too).
``:tiny`` is a smoke run.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.incremental import fields
  c = fields.CIRCULAR_CONV.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":
    c.d, c.n, c.n_test, c.depths, c.num_seeds, c.steps = 16, 40, 100, (1, 2), 1, 3000
    c.init_scales = (0.01,)
    c.progress = False
  return c
