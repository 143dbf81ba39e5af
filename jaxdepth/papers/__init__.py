"""Each paper's experiments, built on the engine, nets, data and measure packages:
``minimal_depth`` (Galanti et al. 2022), ``incremental`` (Gissin et al. 2020),
``lowrank`` (Huh et al. 2021)."""
