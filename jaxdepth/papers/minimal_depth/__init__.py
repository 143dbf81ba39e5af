"""Galanti, Galanti & Ben-Shaul 2022: the collapse trainer (train.py: per-layer NCC,
CDNV, effective depth over seeds x label noise x depth/width), the Prop. 1 bound
protocol (bound_experiment.py), its offline calculator (bound_main.py, bounds.py) and
the figures."""
