"""Deep linear networks on low-rank vs full-rank regression, depth 1 to 32
(docs/definitions.md, "Regression targets";
a smaller training set: --config.n_train=128).

jaxdepth train --config configs/lowrank/regression.py --workdir runs/lr_regression

Runtime: measured 59 s CPU, 144 s wall on a loaded 2-core machine (nine depths,
2 targets x 3 seeds vmapped, 4000 full-batch GD steps each). Measured: on the rank-4
target (rho(W*) = log 4 = 1.386) train loss < 1e-3 at every depth and the converged
rho(W_e) falls 2.38 / 2.21 / 1.91 / 1.59 / 1.44 at d = 1 / 4 / 8 / 16 / 32 towards rho(W*);
rho at init falls with depth. On the full-rank target (rho 3.25) the final train
loss grows with depth (4e-5 at d=1, 0.075 at d=16, 0.19 at d=32) and the converged rho
falls to 2.11, well below rho(W*). Test loss is not U-shaped here (0.54 at d=1,
0.81 at d=32; Gaussian inputs leave W* outside span(X_train) unidentifiable).
Outputs: summary.json, metrics.jsonl, regression.png; checkpoints/regression (the
results of the depths done: a re-run resumes from them).
Tiny CI setting: append ":tiny" to the config path.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.lowrank import fields
  c = fields.REGRESSION.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.depths, c.steps, c.num_seeds, c.n_test = (1, 4, 8), 1000, 1, 500
    c.progress = False
  return c
