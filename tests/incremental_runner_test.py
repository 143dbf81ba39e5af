"""The incremental trainer: one compile per depth, frozen runs, first-crossing bookkeeping."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import metrics, runner, toy


def test_segment_compiles_once_over_segments():
  with jax.enable_x64(True):
    prob = toy.toy_problem(3, 2)
    init_fn, seg_fn = runner.make_fns(prob, record_every=2, evals_per_log=5,
                                      logs_per_segment=4, stop_loss=0.0, diverge_factor=1e6,
                                      snapshots=True)
    data = jnp.asarray([[2.0, 1.0]])
    keys = jax.random.split(jax.random.key(0), 1)
    thr = jnp.asarray(metrics.thresholds((2.0, 1.0)))
    st, _ = init_fn(keys, jnp.asarray([1e-2, 1e-3]), data, thr)
    for t0 in (0, 40, 80):
      st, (loss_SxIxL, _, _finished) = seg_fn(st, data, thr, jnp.asarray(1e-3), t0)
    assert loss_SxIxL.shape == (1, 2, 4)
    assert seg_fn._cache_size() == 1


def test_stop_freezes_runs_and_records_step():
  with jax.enable_x64(True):
    res, lr = toy.train_toy((1.0,), 2, (1e-2, 1e-1), steps=5000, log_every=10, stop_loss=1e-4)
  assert res.done_SxI.all() and not res.diverged_SxI.any()
  stop = res.stop_step_SxI[0]
  assert stop[1] < stop[0]  # the larger init converges first
  # After freezing, the logged loss is constant.
  after = res.loss_SxIxT[0, 1, res.steps_T > stop[1]]
  assert np.all(after == after[0]) and after[0] < 1e-4
