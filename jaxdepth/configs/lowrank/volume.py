"""Volume simulation: rho of random products of n x n matrices vs depth
(docs/definitions.md, "Volume simulation").

jaxdepth train --config configs/lowrank/volume.py --workdir runs/lr_volume

Runtime: measured 14 s CPU (29 s wall on a loaded 2-core machine), 1000 draws,
n=16, five depths, float64. Measured: mean rho 2.54 / 2.35 / 2.05 / 1.63 / 1.13 for
d = 1 / 2 / 4 / 8 / 16 (std 0.03 to 0.19), and the
fraction of draws below every threshold is non-decreasing in depth; the uniform
distribution (--config.distribution=uniform) gives nearly the same histograms.
Outputs: summary.json (per depth mean_rho, std_rho, frac_below per threshold),
metrics.jsonl, rho_draws.csv, hist_depth_D.png per depth and volume.png;
checkpoints/volume (the results of the depths done: a re-run resumes from them).
Tiny CI setting: append ":tiny" to the config path.
"""

VARIANTS = ("tiny",)  # values of get_config's arg


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.lowrank import fields
  c = fields.VOLUME.defaults()  # the fields and their meaning: docs/config_fields.md
  if arg == "tiny":                     # CI / notebook setting (seconds)
    c.depths, c.draws = (1, 4, 16), 64
    c.progress = False
  return c
