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

VARIANTS = ("small", "tiny")  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.incremental import fields
  c = fields.MATRIX_SENSING.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "small":
    c.d, c.m = 20, 200
  if arg == "tiny":
    c.d, c.m, c.depths, c.steps, c.progress = 10, 60, (1, 3), 2000, False
    c.targets, c.lr, c.init_scales = (3.0, 1.0), 0.01, (1e-3,)
    c.top_k = 3
  return c
