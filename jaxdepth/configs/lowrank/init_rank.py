"""Gram rank of MLP embeddings at initialization vs depth
(docs/definitions.md, "Init rank").

jaxdepth train --config configs/lowrank/init_rank.py --workdir runs/lr_init_rank

Runtime: under 20 s CPU on a 2-core machine (100 draws, five depths, three
activations, one compiled program).
Expected (AC3 setup): mean rho(K) strictly decreasing in depth for linear, ReLU and
tanh; about 2.2 at d=1 for all three, then roughly 0.6 (linear), 0.2 (ReLU) and
1.1 (tanh) at d=16. Outputs: summary.json, metrics.jsonl, init_rank.png;
checkpoints/init_rank (the results of the depths done: a re-run resumes from them).
Tiny CI setting: append ":tiny" to the config path.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.lowrank import fields
  c = fields.INIT_RANK.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.depths, c.draws = (1, 4, 16), 16
    c.progress = False
  return c
