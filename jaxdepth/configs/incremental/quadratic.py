"""Quadratic network f(x) = ||W x||^2 (+ b) (Figure 1b): eigenvalues of W^T W one at a time.

  jaxdepth train --config configs/incremental/quadratic.py --workdir runs/inc_quad

Runtime: about 10 s on a 2-core CPU (4 seeds x 2 bias modes, 30k steps).
Expected (paper; measured, seeds 0-3): with a bias started at mean(y) the
sorted eigenvalues reach half their targets strictly in order in 4/4 seeds (mean
t50(2)/t50(1) = 4.1); without a bias the order breaks in 4/4 seeds (a smaller
eigenvalue reaches half its target first, or two at once); test relative MSE <= 0.05.
``:tiny`` is a smoke run.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.incremental import fields
  c = fields.QUADRATIC.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":
    c.d, c.n, c.n_test, c.num_seeds, c.steps, c.progress = 8, 60, 200, 2, 3000, False
    c.targets = (1.0, 0.5)
    c.top_k = 3
  return c
