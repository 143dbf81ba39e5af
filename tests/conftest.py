"""Test setup: 4 simulated CPU devices and rank promotion 'raise', before JAX loads."""

import os

os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
# Tests compare against float64 references: no TF32/bf16 matmul passes on GPU/TPU.
jax.config.update("jax_default_matmul_precision", "highest")
