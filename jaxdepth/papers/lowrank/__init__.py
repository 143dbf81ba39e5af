"""Huh et al. 2021, "The Low-Rank Simplicity Bias in Deep Networks": experiments.

volume (random products), init_rank (Gram rank at init), regression (deep linear
depth sweep), optimizers (bias across optimizers), overparam_exp (linear
over-parameterization of MLP / CONV-L-H). Shared helpers live in ``common``.
"""
