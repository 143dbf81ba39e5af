"""Converged rho(W_e) vs depth for six optimizers (Observation 3).

docs/definitions.md, "Optimizers".

jaxdepth train --config configs/lowrank/optimizers.py --workdir runs/lr_optimizers

Runtime: measured 132 s CPU, 6 min wall on a loaded 2-core machine (6 optimizers
x 4 depths, 3 seeds vmapped). Measured converged rho at d = 1 -> 8: SGD 1.64 -> 1.19,
Nesterov 1.62 -> 1.06, Adam 1.67 -> 0.88, L-BFGS 1.62 -> 0.85, random search
1.87 -> 1.68, ES 1.81 -> 1.37 (ES not monotone: 1.28 at d=4).
Expected: for every optimizer, deeper networks converge to a lower rho(W_e) on the
under-determined rank-2 regression (rho(W*) = log 2); the gradient-free methods
(random search, evolution strategy) show it too, though they fit less tightly.
Outputs: summary.json, metrics.jsonl, optimizers.png; checkpoints/optimizers (the
results of the (optimizer, depth) settings done: a re-run resumes from them).
Tiny CI setting: append ":tiny" to the config path.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.lowrank import fields
  c = fields.OPTIMIZERS.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.dim, c.n_train, c.depths, c.num_seeds = 8, 6, (1, 4), 1
    c.steps, c.gf_steps, c.lbfgs_steps, c.population = 500, 2000, 50, 4
    c.progress = False
  return c
