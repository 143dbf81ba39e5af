"""Deep toy model vs Orthogonal Matching Pursuit on sparse regression
(docs/definitions.md, "Models").

  jaxdepth train --config configs/incremental/omp.py --workdir runs/inc_omp

Runtime: about 10 s on a 2-core CPU (d = 1000, n = 80, 5-sparse, depths 1, 2, 5 x
3 seeds).  Expected: depth 5 selects exactly the true support, one coordinate at a
time, in the same order as OMP (concurrence 1, orders agree) and recovers w*
(relative error < 1e-2); depth 1 crosses the threshold on many coordinates and has
relative error ~0.9 (the minimum-norm interpolant).  ``:tiny`` is a smoke run.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.incremental import fields
  c = fields.OMP.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":
    c.d, c.n, c.sparsity, c.depths, c.num_seeds, c.steps = 100, 30, 3, (5,), 1, 40_000
    c.progress = False
  return c
