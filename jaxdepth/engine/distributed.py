"""Several JAX processes as one job (TPU pod slices, multi-node GPU, SLURM, localhost).

Every process runs the same ``jaxdepth train`` command. The run axis is sharded over
the devices of all processes (``devices.Placement`` builds global arrays from each
process's own shards); process 0 alone writes config.json, metrics.jsonl,
summary.json, layers.csv and figures; checkpoints are saved and restored by all
processes together (orbax). A process that dies makes the others stop within about
``heartbeat_timeout`` seconds (JAX's coordination service aborts them); re-running
every process resumes from the last complete checkpoint.

  jaxdepth train ... --coordinator_address 10.0.0.1:1234 --num_processes 4 --process_id 0
  jaxdepth train ... --distributed          # TPU pod / SLURM / Open MPI auto-detection
"""

from __future__ import annotations

import os
import secrets

import numpy as np

from jaxdepth.errors import ConfigError


class FlagError(ConfigError):
  """A bad command-line flag: ``--flag: message``."""

  def __init__(self, flag: str, message: str):
    ValueError.__init__(self, f"--{flag}: {message}")
    self.field = flag


def check_flags(coordinator_address: str | None, num_processes: int | None,
                process_id: int | None, auto: bool) -> bool:
  """Validates the multi-process flags (no side effect); True if a job is to be joined."""
  given = [n for n, v in (("coordinator_address", coordinator_address),
                          ("num_processes", num_processes), ("process_id", process_id))
           if v is not None]
  if auto:
    if coordinator_address is not None and (num_processes is None or process_id is None):
      raise FlagError("coordinator_address", "with --distributed, give all of "
                      "--coordinator_address, --num_processes and --process_id, or none")
    return True
  if not given:
    return False
  if coordinator_address is None:
    raise FlagError(given[0], "needs --coordinator_address HOST:PORT (or --distributed "
                    "for cluster auto-detection)")
  host, _, port = coordinator_address.rpartition(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise FlagError("coordinator_address", f"must be HOST:PORT, got {coordinator_address!r}")
  if num_processes is None:
    raise FlagError("num_processes", "is required with --coordinator_address")
  if num_processes < 1:
    raise FlagError("num_processes", f"must be >= 1, got {num_processes}")
  if process_id is None:
    raise FlagError("process_id", f"is required with --coordinator_address "
                    f"(0 .. {num_processes - 1})")
  if not 0 <= process_id < num_processes:
    raise FlagError("process_id", f"must be in 0 .. {num_processes - 1} "
                    f"(--num_processes {num_processes}), got {process_id}")
  return True


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, heartbeat_timeout: int = 30,
               initialization_timeout: int = 120) -> None:
  """Join the job (before any jax computation). On CPU, collectives go through gloo.

  Without an address, jax.distributed detects the cluster (TPU pod, SLURM, Open MPI).
  A peer that stops sending heartbeats for ``heartbeat_timeout`` s ends every process.
  """
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = dict(initialization_timeout=initialization_timeout,
                heartbeat_timeout_seconds=heartbeat_timeout)
  if coordinator_address is not None:
    kwargs.update(coordinator_address=coordinator_address, num_processes=num_processes,
                  process_id=process_id, cluster_detection_method="deactivate")
  jax.distributed.initialize(**kwargs)


def process_count() -> int:
  import jax
  return jax.process_count()


def is_primary() -> bool:
  """Process 0 (or the only process): the one that writes result files."""
  import jax
  return jax.process_index() == 0


def barrier(name: str) -> None:
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def all_ok(ok: bool) -> bool:
  """True on every process iff ``ok`` on every process (one collective)."""
  import jax
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils
  flags = multihost_utils.process_allgather(np.asarray([int(ok)], np.int32))
  return bool(np.all(flags))


TOKEN = ".jaxdepth_job"


def check_shared_workdir(workdir: str) -> None:
  """Stop every process with one line if a process does not see process 0's workdir.

  Process 0 writes a fresh token into the workdir; every other process must read the
  same token there (a non-shared or different directory does not have it).
  """
  import jax
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils
  token = np.frombuffer(secrets.token_bytes(16), np.uint8)
  token = np.asarray(multihost_utils.broadcast_one_to_all(token))
  path = os.path.join(workdir, TOKEN)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path, "wb") as f:
      f.write(token.tobytes())
  barrier("jaxdepth_workdir_token")
  try:
    with open(path, "rb") as f:
      mine = f.read() == token.tobytes()
  except OSError:
    mine = False
  if not all_ok(mine):
    raise FlagError("workdir", f"{os.path.abspath(workdir)} is not the same directory on "
                    f"every process (process {jax.process_index()} "
                    f"{'sees' if mine else 'does not see'} process 0's files there); "
                    "use a shared filesystem path")
