"""Diagonal linear networks, binary classification (Figure 1c): sparse features first.

  jaxdepth train --config configs/incremental/diagonal.py --workdir runs/inc_diag

Runtime: about 10 s on a 2-core CPU (depths 1, 2, 3, 5 x 5 seeds, plus an SVM).
Expected (paper): cos(beta, w*) ~0.85 for depth 1 (like the SVM), >= 0.98
for depth 2, >= 0.99 for depths 3 and 5; for depth >= 2 the four support coordinates
cross |beta_j| = 0.2 in teacher order; depth 1 lets ~50 off-support coordinates
cross, depth 3 only a few.  ``:tiny`` is a smoke run.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.incremental import fields
  c = fields.DIAGONAL.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":
    c.d, c.n, c.n_test, c.depths, c.num_seeds, c.steps = 30, 60, 200, (1, 3), 2, 5000
    c.progress = False
  return c
