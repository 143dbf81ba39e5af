"""Configs of the low-rank simplicity-bias experiments (Huh et al. 2021)."""
