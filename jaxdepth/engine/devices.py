"""Where the runs of a sweep live: one CPU device per core, a mesh over every device of
every process, padded run axes, placement and gathering.

Every experiment's runs are one leading axis R of its arrays. :class:`Placement`
shards that axis over all devices (of all JAX processes, see ``distributed.py``):
R is padded to a multiple of the device count with copies of the last run, which
are computed but never reach an output (:meth:`Placement.gather` drops them).
Each run is computed by the same per-run program whatever the device count, so
results do not depend on it (tests/devices_test.py checks 1, 2 and 4 devices).

XLA:CPU runs one program on one core; ``use_cpu_cores()`` (called by the CLI before
jax starts a backend; one line in a notebook) gives XLA one CPU device per core so
that the sharded run axis keeps every core busy.

  import jaxdepth; jaxdepth.use_cpu_cores()   # before the first jax computation
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np


def cpu_count() -> int:
  """Cores this process may use (affinity mask where the OS has one)."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # macOS
    return max(1, os.cpu_count() or 1)


def host_memory_bytes() -> int:
  """Physical memory of this host in bytes (0 where the OS does not say)."""
  try:
    return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
  except (ValueError, OSError, AttributeError):
    return 0


def use_cpu_cores(n: int | None = None, runs: int | None = None) -> int:
  """Give XLA ``n`` CPU devices (default: one per core) and return the count in use.

  ``runs``: the length of the run axis, when the caller knows it before jax starts. A
  run axis shorter than the default device count gets ONE device that keeps XLA's
  intra-op threads: padded to one device per core, a single run trained a copy of itself
  on the other core (CONV-4-32, 1 seed, 2 cores: 15.7 s per epoch and 43 s fixed cost
  against 10.4 s and 27 s, benchmarks/RESULTS.md).

  Only CPU is affected: a GPU/TPU backend keeps its own devices (and XLA_FLAGS gains
  ``--xla_cpu_multi_thread_eigen=false``, a CPU-only flag, see below). Must run before
  jax's first computation. A count the user already chose (``jax_num_cpu_devices``,
  or ``--xla_force_host_platform_device_count`` in XLA_FLAGS) wins over the default;
  an explicit ``n`` after jax started warns that a restart is needed.
  """
  if n is not None and int(n) < 1:
    raise ValueError(f"device count must be >= 1, got {n}")
  user_set = (jax.config.jax_num_cpu_devices > 0
              or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""))
  if n is None and user_set:
    return len(jax.devices("cpu"))
  want = cpu_count() if n is None else int(n)
  few = n is None and runs is not None and 0 < runs < want
  want = 1 if few else want
  try:
    jax.config.update("jax_num_cpu_devices", want)
  except RuntimeError:
    # jax refuses a new device count once it has started a backend (its documented
    # rule for this option); the count it started with stays.
    have = len(jax.devices("cpu"))
    if n is not None and have != want:
      import warnings
      warnings.warn(f"jax already started with {have} CPU device(s); restart the "
                    f"process (or call use_cpu_cores first) to use {n}", stacklevel=2)
    return have
  # Each device is already one core, so XLA's intra-op Eigen threads only contend;
  # with them, how a reduction is split depends on the device count, and CDNV moved
  # by 1 float32 ulp between 1, 2 and 4 devices. Single-threaded Eigen removes that
  # source of difference at no measured cost (per-device batch shapes still compile to
  # different kernels, so results agree to float32 rounding, not bitwise:
  # tests/multiprocess_test.py). Set here, by the
  # caller's choice, never at import; a user's own setting of the flag wins.
  flags = os.environ.get("XLA_FLAGS", "")
  if not few and "xla_cpu_multi_thread_eigen" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
  return want


def lapack_safe() -> bool:
  """May a program with batched LAPACK calls (svd, eigvalsh, qr) be sharded here?

  Not on several CPU devices with jaxlib 0.10.x: its CPU LAPACK kernels split the
  batch onto XLA's worker pool and block a pool thread waiting for it; with one
  sharded call per device the pool has no thread left and the program deadlocks
  (reduced to a 10-line repro: sharded jit(vmap(eigvalsh)) on 2 CPU devices stops
  for good within ~25 calls; the Eigen single-thread flag does not prevent it).
  Experiments whose segments decompose matrices keep one CPU device; the collapse
  analysis takes its eigenvalues on the host instead.
  """
  return jax.default_backend() != "cpu" or len(jax.devices()) == 1


def padded(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def pad_runs(tree: Any, num: int) -> Any:
  """Pad every leaf's leading (run) axis to ``num`` with copies of the last run."""

  def pad(a):
    extra = num - a.shape[0]
    if extra <= 0:
      return a
    xp = np if isinstance(a, np.ndarray) else jax.numpy
    return xp.concatenate([a, xp.repeat(a[-1:], extra, axis=0)], axis=0)

  return jax.tree.map(pad, tree)


class Placement:
  """The run axis of one program sharded over every device of every process.

  ``num_runs`` real runs become ``padded_runs`` (a multiple of the device count);
  :meth:`runs` places a run-major tree, :meth:`shared` replicates data every run
  reads, :meth:`gather` brings a run-major result to the host without the padding.
  With one device nothing is sharded and arrays stay where jax put them.
  """

  def __init__(self, num_runs: int, enabled: bool = True):
    devs = list(jax.devices())
    if not enabled and jax.process_count() == 1:  # a job's processes all take part
      devs = devs[:1]
    self.devices = devs
    self.num_runs = num_runs
    self.padded_runs = padded(num_runs, len(devs))
    self.multi_process = jax.process_count() > 1
    self.sharded = len(devs) > 1
    if self.sharded:
      from jax.sharding import AxisType, Mesh, NamedSharding
      from jax.sharding import PartitionSpec as P
      self.mesh = Mesh(np.asarray(devs), ("runs",), axis_types=(AxisType.Auto,))
      self.run_sharding = NamedSharding(self.mesh, P("runs"))
      self.replicated = NamedSharding(self.mesh, P())

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def pad(self, tree: Any) -> Any:
    return pad_runs(tree, self.padded_runs)

  def _put(self, tree: Any, sharding) -> Any:
    def put(a):
      if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(a)
        raw = put(jax.random.key_data(a))
        return jax.random.wrap_key_data(raw, impl=impl)
      host = np.asarray(a)  # every process holds the full value; each takes its shards
      return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)

  def runs(self, tree: Any) -> Any:
    """Pad a run-major tree and shard it on the run axis."""
    tree = self.pad(tree)
    return self._put(tree, self.run_sharding) if self.sharded else tree

  def shared(self, tree: Any) -> Any:
    """Replicate a tree every run reads (data, targets) over the devices."""
    return self._put(tree, self.replicated) if self.sharded else tree

  def gather(self, tree: Any) -> Any:
    """Run-major result -> host numpy of the real runs (the padding dropped).

    In a multi-process job every process receives the whole result.
    """
    if self.multi_process:
      from jax.experimental import multihost_utils
      tree = multihost_utils.process_allgather(tree, tiled=True)
    else:
      tree = jax.device_get(tree)

    def cut(a):
      a = np.asarray(a)
      return a if a.ndim == 0 else a[: self.num_runs]

    return jax.tree.map(cut, tree)
