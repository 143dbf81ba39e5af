"""Toy model sigma_i = u_i^N: staircase at depth 2 vs 4, time scaling, critical-init table.

  jaxdepth train --config configs/incremental/toy.py --workdir runs/inc_toy

Runtime: about 6 s on a 2-core CPU (float64, every step tracked).  Expected
(paper): for N >= 3 the values are learned one at a time with
t50(i)/t50(1) close to sigma*_1/sigma*_i = 1, 2, 3, 4 and next_frac_at_t90 <= 0.01;
N = 2 learns the pairs with next_frac_at_t90 of 0.05 to 0.5; N = 1 has
next_frac_at_t90 = 0.90 for every pair.  The printed critical-init table matches
docs/definitions.md (depth 2 needs sigma0 ~ 1e-19 for r = 0.9, depth 4 only ~ 7e-4).
``:tiny`` runs in a few seconds (tests, notebook).
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.incremental import fields
  c = fields.TOY.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":
    c.depths = (2, 4)
    c.init_scales = (1e-3,)
    c.steps = 50_000
    c.critical_ratios = (0.5, 0.9)
    c.critical_depths = (2, 4)
    c.progress = False
  return c
