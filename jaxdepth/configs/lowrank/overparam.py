"""Linear over-parameterization of MLP-L-H and CONV-L-H
(docs/definitions.md, "Linear over-parameterization").

jaxdepth train --config configs/lowrank/overparam.py --workdir runs/lr_overparam

Every Linear/Conv layer is expanded into 2 or 4 linear sub-layers during training
(collapsed for inference; expansion 1 = the network as-is) and trained by the core
trainer on scikit-learn's digits (8x8 images), 3 seeds vmapped.
Runtime: about 7 min CPU on a 2-core machine (2 models x 3 expansions x 30 epochs).
Measured (3 seeds, lr / e): the collapsed weights get lower rho with expansion
(MLP hidden layers 3.93 -> 3.74 -> 3.40 for e = 1 / 2 / 4, CONV hidden 4.14 -> 3.89 ->
3.50); test accuracy barely moves (MLP 0.959 / 0.965 / 0.964, CONV 0.977 / 0.980 /
0.969, train accuracy 1.0 everywhere). The per-layer embedding Gram ranks do NOT fall
here: they are higher for expanded networks (MLP last layer 1.60 / 1.65 / 1.81), so
summary.json's embedding-rank checks read False at this setting (AC8's synthetic
setting, tested in tests/lowrank_overparam_test.py, does show the drop).
Over-fitting regime (":overfit": 300 training images, 8 seeds, 150 epochs, 279 s
wall; ":overfit,none": the same with the step size not divided by e, 282 s), measured
2026-12-03: embedding ranks still rise with e (MLP 1.39 / 1.58 / 1.78 with lr / e,
1.39 / 2.02 with lr unscaled at e = 1 / 2), test accuracy falls slightly (0.922 /
0.910 / 0.898), unscaled e = 4 diverges (MLP 8 of 8 seeds, CONV 4 of 8). Table in the
README. Diverged runs are counted in ``diverged_runs`` and never averaged in.
On the paper's terms (":paper": lr x0.1 at 1/3 and 2/3 of training, the paper's
60/120-of-180 schedule; ":fashion_mnist": MLP-4-64 on the first 1,000 Fashion-MNIST
images from Debian's IDX files, 8 seeds, 100 epochs), measured 2026-12-04 with
":overfit,paper" (10 min 20 s), ":overfit,paper,none" (13 min 35 s),
":fashion_mnist,paper" (3 min 54 s) and ":fashion_mnist,paper,none" (1 min 53 s):
the collapsed weights' rho falls with e for every seed (MLP 3.605 / 3.395 / 3.053 on
digits, 3.641 / 3.420 / 3.098 on Fashion-MNIST); embedding ranks rise on digits (MLP
1.40 / 1.60 / 1.85) and fall weakly, with overlapping seeds, on Fashion-MNIST (2.03 /
2.03 / 1.92); test accuracy falls with e on both. Table and reading: README and
docs/definitions.md ("Over-parameterization on its own terms").
Outputs: summary.json (per model/expansion: accuracies, per-layer rank_train /
rank_test, per-layer weight_rho), metrics.jsonl, overparam.png, checkpoints/.
Tiny CI setting: append ":tiny" to the config path.
"""

VARIANTS = ("tiny", "overfit", "none", "paper", "fashion_mnist")  # values of get_config's arg
VARIANTS_COMBINE = True  # and comma-separated combinations of them


def get_config(arg=None):
  # Imported here: configs sit above the papers in the layering.
  from jaxdepth.papers.lowrank import fields
  c = fields.OVERPARAM.defaults()  # the fields and their meaning: docs/config_fields.md
  variants = [a for a in (arg or "").split(",") if a]
  for a in variants:
    if a not in VARIANTS:
      raise ValueError(f"unknown variant {a!r}; allowed: {', '.join(VARIANTS)} "
                       "(comma-separated)")
  if "none" in variants:                # the step size is not divided by e
    c.lr_scaling = "none"
  if "overfit" in variants:             # 300 training images: networks over-fit
    c.data.num_train = 300
    c.num_seeds = 8
    c.train.epochs = 150                # 4 steps per epoch: 600 steps
    c.train.eval_every = 50
  if "fashion_mnist" in variants:       # Debian's IDX files (apt-get install -y
    c.dataset = "fashion_mnist"         # dataset-fashion-mnist), 32x32 after padding
    c.data.idx_dir = ""                 # '' = $JAXDEPTH_IDX_DIR or Debian's directory
    c.data.num_train = 1000             # the first 1,000 training images: over-fitting
    c.data.num_test = 2000              # the first 2,000 test images
    c.models = ("mlp",)                 # CONV-4-64 on 32x32 is ~40x the MLP's FLOPs
    c.num_seeds = 8
    c.train.epochs = 100                # 15 steps per epoch: 1,500 steps
    c.train.eval_every = 50
  if "paper" in variants:               # the paper's optimizer for its over-parameterized
    c.train.schedule = "step"           # CNNs: SGD + momentum, lr drops at 1/3 and 2/3 of
    c.train.milestones = (1 / 3, 2 / 3)  # training (epochs 60 and 120 of 180), x0.1
    c.train.decay = 0.1
  if "tiny" in variants:                # CI / notebook setting (well under a minute)
    c.dataset, c.expansions, c.depth, c.width, c.num_seeds = "gaussian", (1, 4), 2, 8, 1
    c.data.num_train, c.data.num_test = 256, 128
    c.train.epochs, c.train.eval_every, c.train.rank_samples = 2, 2, 64
    c.train.analysis_batch = 128
    c.progress = False
  return c
