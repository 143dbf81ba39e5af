"""The run axis never holds more than one copy of the dataset (issue 25 item 5): the
jitted epoch and analysis programs take the training/test inputs as shared, unbatched
arguments, and no value inside them (scan bodies included) is the dataset repeated
over runs. Peak RSS against the run count: benchmarks/memory_bench.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth import cli, data
from jaxdepth.papers import sgd
from jaxdepth.papers.minimal_depth import train

N, D = 256, 24  # input dim 24: no hidden width, class count or batch has that size


def _config(**kw):
  c = cli.load_config("configs/tiny.py", [])
  c.num_seeds, c.label_noise, c.width, c.depth = 3, (0.0, 0.5), 16, 3
  c.shard_runs = False
  for k, v in kw.items():
    c[k] = v
  return c


def _dataset():
  rng = np.random.default_rng(0)
  return data.Dataset(rng.standard_normal((N, D)).astype(np.float32),
                      rng.integers(0, 4, N).astype(np.int32),
                      rng.standard_normal((N // 2, D)).astype(np.float32),
                      rng.integers(0, 4, N // 2).astype(np.int32), 4, "gaussian")


def _avals(jaxpr):
  """Every value's aval in a (closed) jaxpr and the jaxprs nested in its equations."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  out = [v.aval for v in jaxpr.invars]
  for eqn in jaxpr.eqns:
    out += [v.aval for v in eqn.outvars]
    for p in eqn.params.values():
      for sub in p if isinstance(p, (tuple, list)) else (p,):
        if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
          out += _avals(sub)
  return out


def _data_copies(jaxpr, runs, n_examples):
  """Values that hold the inputs of >= all examples for every run: shape (..., D) with
  at least runs * n_examples * D elements."""
  return [a.shape for a in _avals(jaxpr) if hasattr(a, "shape") and a.shape
          and a.shape[-1] == D and math.prod(a.shape) >= runs * n_examples * D]


def _built():
  c = _config()
  ds = _dataset()
  grid = train.run_grid(c)
  prog = train.build_program(c, ds, c.depth, c.width)
  keys = train.make_keys(c.seed, grid)
  state, labels, chosen = prog.init(keys)
  return c, ds, len(grid), prog, keys, state, labels, chosen


def test_epoch_program_holds_one_copy_of_the_data():
  c, ds, R, prog, keys, state, labels, _ = _built()
  assert R == 6
  x = jnp.asarray(ds.x_train)
  jaxpr = jax.make_jaxpr(prog.epoch)(state, labels, keys, 0, x)
  assert jaxpr.in_avals[-1].shape == (N, D)  # the data: no run axis
  n_state = len(jax.tree.leaves(state))
  assert jaxpr.in_avals[n_state].shape == (R, N)  # the labels: per run (label noise)
  assert _data_copies(jaxpr, R, N) == []  # nothing holds the data of every run
  # The check does see a per-run copy: the same epoch with the data batched over runs.
  spe = N // c.batch_size
  tx = sgd.make_optimizer(c, spe)
  epoch_fn = sgd.make_epoch(prog.network, tx, c.batch_size, spe)
  bad = jax.make_jaxpr(jax.vmap(epoch_fn, in_axes=(0, 0, 0, None, 0)))(
      state, labels, keys, 0, jnp.broadcast_to(x, (R, N, D)))
  assert (R, N, D) in _data_copies(bad, R, N)


def test_analysis_program_holds_one_copy_of_the_data():
  _, ds, R, prog, _, state, labels, chosen = _built()
  # The jitted analysis is not a field of Program: take it (and its shared batched
  # splits) from the closure of prog.analyze.
  cells = dict(zip(prog.analyze.__code__.co_freevars,
                   (cl.cell_contents for cl in prog.analyze.__closure__)))
  analyze_jit, train_b, test_b = cells["analyze_jit"], cells["train_b"], cells["test_b"]
  jaxpr = jax.make_jaxpr(analyze_jit)(state, labels, chosen, train_b, test_b)
  shapes = [a.shape for a in jaxpr.in_avals]
  assert train_b.x.shape in shapes and test_b.x.shape in shapes  # no run axis
  n_pad = train_b.x.shape[0] * train_b.x.shape[1]
  assert n_pad >= N
  assert _data_copies(jaxpr, R, n_pad) == []
