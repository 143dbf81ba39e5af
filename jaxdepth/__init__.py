"""jaxdepth: the implicit bias of depth, measured in JAX."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# XLA:CPU's multi-threaded Eigen pool can wedge (all threads idle, program never
# finishes) on the vmapped scan/decomposition graphs jaxdepth compiles; seen here
# with jax 0.10.2 on 2 cores, and reported upstream (PyAutoFit #1528). Running
# Eigen single-threaded avoids it. CPU-only flag (no effect on GPU/TPU); only
# applied if jax has not been imported yet; JAXDEPTH_EIGEN_THREADS=1 opts out.
_FLAG = "--xla_cpu_multi_thread_eigen=false"
if ("jax" not in _sys.modules and _os.environ.get("JAXDEPTH_EIGEN_THREADS") != "1"
    and "xla_cpu_multi_thread_eigen" not in _os.environ.get("XLA_FLAGS", "")):
  _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
