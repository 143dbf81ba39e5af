"""One trainer for every incremental-learning experiment.

A :class:`Problem` is three pure single-run functions (init, loss, track).  The
trainer vmaps them over seeds (outer axis, with per-seed data and init keys) and
init scales (inner axis), and runs full-batch gradient descent as a jitted,
donated *segment*: a ``lax.scan`` over log records, each a scan over tracking
evaluations, each a scan over ``record_every`` optimizer steps.  First-crossing
times of thresholds (t10/t50/t90, selection times) and the tracked vector at
each first crossing are kept in the carry, so they have the resolution of
``record_every`` without storing every step.  Depth is a shape: the caller loops
over depths, one compile each.  The segments run through engine/driver; every log
record is written into buffers of the device state, so a depth's checkpoint (after
each segment, :class:`Store`) holds all a resumed depth needs.

Stopping (docs/definitions.md, "Stopping"):
the scan length is fixed; a run whose loss falls below
``stop_loss`` freezes its parameters (``jnp.where``) and records its stop step.
A run whose loss becomes non-finite or grows past ``diverge_factor`` x its
initial loss also freezes (at its last finite parameters) and is flagged
``diverged``.  The loop ends early once every run is frozen (decided one segment
late, on the fetched outputs); the records kept are those up to the first segment at
whose end every run was frozen, derived from the state (:func:`_kept`).
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.engine import devices, driver
from jaxdepth.engine import progress as progress_lib


class Problem(NamedTuple):
  init: Callable[[Any, Any, Any], Any]  # (key, sigma0, data) -> params
  loss: Callable[[Any, Any], jax.Array]  # (params, data) -> scalar
  track: Callable[[Any, Any], tuple]  # (params, data) -> (cross_K, logged_J)


class RunState(NamedTuple):
  params: Any
  loss0: jax.Array  # initial loss (divergence reference)
  done: jax.Array  # bool: loss fell below stop_loss
  diverged: jax.Array  # bool
  stop_step: jax.Array  # int: step at which the run froze (-1 while running)
  cross_t_AxK: jax.Array  # first step with cross_K >= thr_AxK (inf: never)
  cross_snap_AxKxK: jax.Array  # cross_K at that step (only if snapshots)


class Result(NamedTuple):
  """Host-side outputs; leading axes (S seeds, I init scales), T log records."""

  steps_T: np.ndarray
  loss_SxIxT: np.ndarray
  logged_SxIxTxJ: np.ndarray
  cross_t_SxIxAxK: np.ndarray
  cross_snap_SxIxAxKxK: np.ndarray | None
  done_SxI: np.ndarray
  diverged_SxI: np.ndarray
  stop_step_SxI: np.ndarray
  params: Any  # final parameters, numpy, leading (S, I)
  wall_s: float
  steps_run: int


def _cross_update(st: RunState, cross_K, thr_AxK, t, snapshots: bool) -> RunState:
  new_AxK = (cross_K[None, :] >= thr_AxK) & jnp.isinf(st.cross_t_AxK)
  cross_t = jnp.where(new_AxK, jnp.asarray(t, st.cross_t_AxK.dtype), st.cross_t_AxK)
  snap = st.cross_snap_AxKxK
  if snapshots:
    snap = jnp.where(new_AxK[:, :, None], cross_K[None, None, :], snap)
  return st._replace(cross_t_AxK=cross_t, cross_snap_AxKxK=snap)


def _tree_where(c, new, old):
  return jax.tree.map(lambda a, b: jnp.where(c, a, b), new, old)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.stack(leaves).all()


def make_fns(problem: Problem, *, record_every: int, evals_per_log: int, logs_per_segment: int,
             stop_loss: float, diverge_factor: float, snapshots: bool):
  """Jitted (init_fn, segment_fn) for one depth, vmapped over (seed, init scale)."""

  def init_single(key, sigma0, data, thr_AxK):
    params = problem.init(key, sigma0, data)
    loss0 = problem.loss(params, data)
    cross_K, logged_J = problem.track(params, data)
    a, k = thr_AxK.shape
    # Strong (non-weak) dtypes, so that the segment's output state has the input's types
    # and the segment compiles once.
    st = RunState(params, loss0, jnp.zeros((), bool), ~jnp.isfinite(loss0),
                  jnp.full((), -1, jax.dtypes.canonicalize_dtype(jnp.int64)),
                  jnp.full((a, k), jnp.inf, cross_K.dtype),
                  jnp.zeros((a, k, k) if snapshots else (1, 1, 1), cross_K.dtype))
    return _cross_update(st, cross_K, thr_AxK, 0, snapshots), (loss0, logged_J)

  def gd_step(st: RunState, data, lr, t):
    loss, g = jax.value_and_grad(problem.loss)(st.params, data)
    new = jax.tree.map(lambda p, gp: p - lr * gp, st.params, g)
    running = ~(st.done | st.diverged)
    bad = ~jnp.isfinite(loss) | (loss > diverge_factor * st.loss0) | ~_all_finite(new)
    stop = running & ~bad & (loss < stop_loss)  # converged at the current params
    upd = running & ~bad & ~stop
    freeze = running & (bad | stop)
    return st._replace(params=_tree_where(upd, new, st.params), done=st.done | stop,
                       diverged=st.diverged | (running & bad),
                       stop_step=jnp.where(freeze, t, st.stop_step))

  def segment_single(st, data, thr_AxK, lr, t0):
    def eval_body(st, t_eval):  # record_every steps, then one tracking evaluation
      def step_body(st, t):
        return gd_step(st, data, lr, t), None

      st, _ = jax.lax.scan(step_body, st, t_eval + jnp.arange(record_every))
      cross_K, logged_J = problem.track(st.params, data)
      return _cross_update(st, cross_K, thr_AxK, t_eval + record_every, snapshots), logged_J

    def log_body(st, t_log):
      st, logged_ExJ = jax.lax.scan(eval_body, st,
                                    t_log + record_every * jnp.arange(evals_per_log))
      return st, (problem.loss(st.params, data), logged_ExJ[-1])

    per_log = record_every * evals_per_log
    st, out = jax.lax.scan(log_body, st, t0 + per_log * jnp.arange(logs_per_segment))
    return st, (*out, st.done | st.diverged)  # finished: read by the loop's stop

  init_v = jax.vmap(jax.vmap(init_single, in_axes=(None, 0, None, None)),
                    in_axes=(0, None, 0, None))
  seg_v = jax.vmap(jax.vmap(segment_single, in_axes=(0, None, None, None, None)),
                   in_axes=(0, 0, None, None, None))
  return jax.jit(init_v), jax.jit(seg_v, donate_argnums=0)


def _segment_logs(num_logs: int, target: int) -> int:
  """Largest divisor of num_logs that is <= target (segments all of equal length)."""
  for n in range(min(target, num_logs), 0, -1):
    if num_logs % n == 0:
      return n
  return 1


class Store(NamedTuple):
  """Where one depth of a sweep keeps its checkpoints and metric records.

  subdir: checkpoint directory under ``workdir``. stream: a metrics.MetricsLog stream;
  one record ``{"step", **stream.fields, "loss": (S, I)}`` per log. meta: JSON saved
  with every checkpoint; accept: ``meta -> bool``, may the depth resume from it.
  """
  workdir: str
  subdir: str
  stream: Any
  meta: dict
  accept: Callable[[dict], bool]


class DepthState(NamedTuple):
  """The device state of one depth: the runs and every log record so far (T = logs+1)."""
  run: RunState
  loss_SxIxT: jax.Array
  logged_SxIxTxJ: jax.Array


@functools.partial(jax.jit, static_argnums=2)
def _new_buffers(loss0_SxI, logged0_SxIxJ, num_records: int):
  """The log buffers, record 0 the initial loss and tracked values."""
  zeros = lambda a: jnp.zeros((*a.shape[:2], num_records, *a.shape[2:]), a.dtype)
  return (zeros(loss0_SxI).at[:, :, 0].set(loss0_SxI),
          zeros(logged0_SxIxJ).at[:, :, 0].set(logged0_SxIxJ))


@functools.partial(jax.jit, donate_argnums=(0, 1))
def _write_logs(loss_SxIxT, logged_SxIxTxJ, loss_SxIxL, logged_SxIxLxJ, pos):
  """A segment's log records into the buffers, from record ``pos`` on."""
  put = lambda buf, new: jax.lax.dynamic_update_slice_in_dim(buf, new, pos, axis=2)
  return put(loss_SxIxT, loss_SxIxL), put(logged_SxIxTxJ, logged_SxIxLxJ)


def _kept(run: RunState, total: int, per_segment: int) -> int:
  """Segments whose logs count: up to the first at whose end every run was frozen (the
  loop's one-late stop ends there), else all; derived from the state, so a resumed
  depth (even one that ran a segment past that point) keeps the same records."""
  finished = np.asarray(run.done) | np.asarray(run.diverged)
  if not finished.all():
    return total
  last = int(np.max(np.maximum(np.asarray(run.stop_step), 0))) // per_segment
  return min(total, last + 1)


def train(problem: Problem, data, keys_S, scales_I, thr_AxK, *, lr: float, steps: int,
          record_every: int, log_every: int, stop_loss: float = 0.0,
          diverge_factor: float = 1e6, snapshots: bool = False,
          segment_steps: int = 20000, progress: bool = False, desc: str = "",
          store: Store | None = None) -> Result:
  """Full-batch GD of every (seed, init scale) run of one depth in one compiled program.

  Segments run through :func:`jaxdepth.engine.driver.run`; every log record lives in
  the device state (buffers written per segment), so a checkpoint holds all a
  resumed depth needs.

  Args:
    problem: single-run init/loss/track functions.
    data: pytree of arrays with a leading seed axis S (per-seed data sets/teachers).
    keys_S: (S,) typed init keys.  scales_I: (I,) init scales sigma0 (vmapped).
    thr_AxK: thresholds for first-crossing times of the tracked vector (inf: unused).
    steps: maximum number of steps (rounded up to a multiple of log_every).
    record_every: steps between tracking evaluations (crossing resolution).
    log_every: steps between logged records (a multiple of record_every).
    store: checkpoints (every segment; a finished depth is restored, not trained; an
      interrupted one resumes at its last segment) and metric records; None: in memory.
  Returns:
    :class:`Result` with numpy arrays.
  """
  evals_per_log = max(1, log_every // record_every)
  log_every = evals_per_log * record_every
  num_logs = max(1, math.ceil(steps / log_every))
  lps = _segment_logs(num_logs, max(1, segment_steps // log_every))
  init_fn, seg_fn = make_fns(problem, record_every=record_every, evals_per_log=evals_per_log,
                             logs_per_segment=lps, stop_loss=stop_loss,
                             diverge_factor=diverge_factor, snapshots=snapshots)
  dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  scales_I = jnp.asarray(scales_I, dtype)
  thr_AxK = jnp.asarray(thr_AxK, dtype)
  lr = jnp.asarray(lr, dtype)
  t_start, wall0 = time.perf_counter(), [0.0]
  wall = lambda: wall0[0] + time.perf_counter() - t_start
  # The seed axis is the run axis: padded and sharded over every device (engine).
  place = devices.Placement(len(keys_S), enabled=devices.lapack_safe())
  keys_S, data = place.runs((keys_S, data))
  st, (loss0, logged0) = init_fn(keys_S, scales_I, data, thr_AxK)
  state = DepthState(st, *_new_buffers(loss0, logged0, num_logs + 1))
  per_segment, total = lps * log_every, num_logs // lps
  bar = progress_lib.progress(num_logs * log_every, desc, enabled=progress)

  def segment(state, i):
    run, (loss_SxIxL, logged_SxIxLxJ, finished) = seg_fn(state.run, data, thr_AxK, lr,
                                                         i * per_segment)
    bufs = _write_logs(state.loss_SxIxT, state.logged_SxIxTxJ, loss_SxIxL,
                               logged_SxIxLxJ, 1 + i * lps)
    return DepthState(run, *bufs), finished  # finished: read by the loop's stop

  checkpoint = None
  if store is not None:
    params0 = state.run.params  # the params' type and 0-size fields (not saved)
    checkpoint = driver.Checkpointing(
        store.subdir, every=1, keep=1, to_host=lambda s: _to_host(place.gather(s), wall()),
        from_host=lambda tree: place.runs(_from_host(tree, params0, wall0)),
        meta=lambda done: {**store.meta, "steps_run": done * per_segment},
        steps_per_segment=per_segment, accept=store.accept, required=False,
        aside_dir=os.path.join(store.workdir, store.subdir + ".unreadable"))
  # Every run finished (converged or diverged): decided on the fetched outputs, one
  # segment late; the segment dispatched meanwhile leaves frozen runs unchanged.
  try:
    state, _ = driver.run(state, segment, total=total, workdir=store and store.workdir,
                          checkpoint=checkpoint, stream=store and store.stream, bar=bar,
                          steps_per_segment=per_segment, fetch=place.gather,
                          stop=lambda finished: bool(np.all(finished)), unit="segment")
  finally:
    bar.close()
  host = place.gather(state)
  kept = _kept(host.run, total, per_segment)
  num_t = kept * lps + 1
  steps_T = np.arange(num_t) * log_every
  loss_SxIxT = host.loss_SxIxT[:, :, :num_t]
  if store is not None:
    for t, step in enumerate(steps_T):
      store.stream.write({"step": int(step), **store.stream.fields,
                          "loss": loss_SxIxT[:, :, t]})
  run = host.run
  return Result(
      steps_T=steps_T, loss_SxIxT=loss_SxIxT,
      logged_SxIxTxJ=host.logged_SxIxTxJ[:, :, :num_t], cross_t_SxIxAxK=run.cross_t_AxK,
      cross_snap_SxIxAxKxK=run.cross_snap_AxKxK if snapshots else None,
      done_SxI=run.done, diverged_SxI=run.diverged, stop_step_SxI=run.stop_step,
      params=run.params, wall_s=wall(), steps_run=kept * per_segment)


def _to_host(host: DepthState, wall_s: float) -> dict:
  """A checkpoint's arrays (orbax saves no 0-size array: those come from the init)."""
  run = host.run
  return {"params": {k: v for k, v in run.params._asdict().items() if np.size(v)},
          **{k: v for k, v in run._asdict().items() if k != "params"},
          "loss": host.loss_SxIxT, "logged": host.logged_SxIxTxJ,
          "wall_s": np.asarray(wall_s, np.float64)}


def _from_host(tree: dict, params0, wall0: list) -> DepthState:
  """A restored checkpoint as a DepthState; parameters orbax did not save (0-size) are
  taken from ``params0``, the initial (device) parameters."""
  wall0[0] = float(tree["wall_s"])
  params = type(params0)(**{k: tree["params"][k] if k in tree["params"] else
                            np.zeros((len(tree["done"]), *v.shape[1:]), v.dtype)
                            for k, v in params0._asdict().items()})
  run = RunState(params, *(tree[k] for k in RunState._fields[1:]))
  return DepthState(run, tree["loss"], tree["logged"])
