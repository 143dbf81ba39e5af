"""Every orbax call of jaxdepth lives here.

Checkpoints are pure array trees (``StandardSave``) plus JSON metadata
(``JsonSave``), so they restore without any model code: the offline bound
calculator relies on this.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """Periodic and final checkpoints of ``(arrays, metadata)`` under ``DIR/checkpoints``."""

  def __init__(self, workdir: str, max_to_keep: int | None = 2, subdir: str = "checkpoints"):
    self.directory = os.path.abspath(os.path.join(workdir, subdir))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._mngr = ocp.CheckpointManager(self.directory, options=options,
                                       item_names=("state", "meta"))

  def save(self, step: int, state: Any, meta: dict | None = None, force: bool = True) -> None:
    from jaxdepth.engine.writers import to_jsonable
    self._mngr.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        meta=ocp.args.JsonSave(to_jsonable(meta or {}))), force=force)
    self._mngr.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def restore(self, step: int | None = None, target: Any = None) -> tuple[int, Any, dict] | None:
    """Returns (step, state, meta) of ``step`` (default latest), or None if none saved.

    With ``target`` (a tree of arrays or ShapeDtypeStructs) the state comes back
    with that structure and sharding; without it, as plain arrays (no model code).
    """
    step = self._mngr.latest_step() if step is None else step
    if step is None:
      return None
    state_args = ocp.args.StandardRestore(target) if target is not None else ocp.args.StandardRestore()
    out = self._mngr.restore(step, args=ocp.args.Composite(
        state=state_args, meta=ocp.args.JsonRestore()))
    return step, out["state"], dict(out["meta"])

  def close(self) -> None:
    self._mngr.close()


def has_checkpoints(workdir: str, subdir: str = "checkpoints") -> bool:
  d = os.path.join(workdir, subdir)
  return os.path.isdir(d) and any(name.isdigit() for name in os.listdir(d))
