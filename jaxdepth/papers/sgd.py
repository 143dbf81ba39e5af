"""The SGD training segment shared by the supervised experiments (collapse, bound,
over-parameterization): train state, schedules, optimizer, one epoch as a scan.

Everything here is per run; the experiments vmap it over their run axis. It reads the
supervised experiments' optimizer fields (lr, momentum, weight_decay, schedule, ...),
so it lives with the papers, not in the engine.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdepth import nets, papers


class TrainState(NamedTuple):
  params: Any
  batch_stats: Any
  opt_state: Any
  step: jax.Array


class RunKeys(NamedTuple):
  """One typed key per purpose and run (init, data order, label noise, augment)."""
  init: jax.Array
  order: jax.Array
  noise: jax.Array
  augment: jax.Array


# The value hyperparameters a config may list as run axes (``--config.lr='(0.01,0.1)'``):
# a number is one value, a tuple one value per point of the run grid.
HPARAMS = papers.HPARAM_COORDINATES  # lr, weight_decay, momentum, warmup_epochs, decay


def values(config, field: str) -> tuple[float, ...]:
  """A value hyperparameter as a tuple (a number is a 1-tuple)."""
  v = config[field]
  return tuple(float(x) for x in v) if isinstance(v, (tuple, list)) else (float(v),)


def _one(config, field: str) -> float:
  v = values(config, field)
  if len(v) != 1:
    raise ValueError(f"config.{field} has {len(v)} values; this optimizer takes one "
                     "(make_optimizer(..., per_run=True) takes a run axis)")
  return v[0]


def make_schedule(config, steps_per_epoch: int):
  """Linear warm-up from 0, then constant, step decay (milestones as fractions of
  training, each multiplying by ``decay``) or cosine decay to 0."""
  lr, decay = _one(config, "lr"), _one(config, "decay")
  total = config.epochs * steps_per_epoch
  warm = int(round(_one(config, "warmup_epochs") * steps_per_epoch))
  if config.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif config.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total - warm, 1))
  else:
    bounds = {int(round(f * total)) - warm: decay for f in config.milestones}
    main = optax.piecewise_constant_schedule(lr, bounds)
  if warm == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])


def per_run_schedule(config, steps_per_epoch: int):
  """:func:`make_schedule` as ``(count, lr, warmup_steps, decay) -> value`` with the
  hyperparameters traced (per run under vmap): the same formulas, so one compiled
  program serves every value."""
  total = config.epochs * steps_per_epoch
  kind = config.schedule
  thresholds = sorted({int(round(f * total)) for f in config.milestones})

  def schedule(count, lr, warm, decay):
    if kind == "constant":
      main = lr
    elif kind == "cosine":
      n = jnp.maximum(total - warm, 1.0)
      c = jnp.minimum(count - warm, n)
      main = lr * (0.5 * (1 + jnp.cos(jnp.pi * c / n)))
    else:  # step decay: x decay at every milestone reached (warm-up included)
      main = lr
      for t in thresholds:
        indicator = jnp.maximum(0.0, jnp.sign(t - count))
        main = main * indicator + (1 - indicator) * decay * main
    frac = 1 - jnp.clip(count, 0, warm) / jnp.maximum(warm, 1.0)
    ramp = (0.0 - lr) * frac + lr  # linear warm-up from 0 (optax.linear_schedule)
    return jnp.where(count < warm, ramp, main)

  return schedule


def make_optimizer(config, steps_per_epoch: int,
                   per_run: bool = False) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (added to the gradient, as PyTorch).

  ``per_run``: the hyperparameters (lr, weight decay, momentum, warm-up steps, decay)
  live in the optimizer state (``optax.inject_hyperparams``), so a vmapped run axis
  carries one value per run; set them after ``init`` with :func:`set_hparams`.
  Otherwise every field must hold one value and is a constant of the program.
  """
  if not per_run:
    momentum = _one(config, "momentum")
    return optax.chain(optax.add_decayed_weights(_one(config, "weight_decay")),
                       optax.sgd(make_schedule(config, steps_per_epoch),
                                 momentum=momentum or None))
  schedule = per_run_schedule(config, steps_per_epoch)

  def factory(lr, weight_decay, momentum, warmup_steps, decay):
    return optax.chain(
        optax.add_decayed_weights(weight_decay), optax.trace(decay=momentum),
        optax.scale_by_schedule(lambda c: -schedule(c, lr, warmup_steps, decay)))

  return optax.inject_hyperparams(factory)(lr=0.0, weight_decay=0.0, momentum=0.0,
                                           warmup_steps=0.0, decay=1.0)


def hparams_of(runs, steps_per_epoch: int) -> dict:
  """Per-run hyperparameter arrays (float32, leading run axis) from run records that
  hold the :data:`HPARAMS` fields, in :func:`make_optimizer`'s per-run names."""
  col = lambda f: jnp.asarray([float(r[f]) for r in runs], jnp.float32)
  warm = [float(int(round(r["warmup_epochs"] * steps_per_epoch))) for r in runs]
  return {"lr": col("lr"), "weight_decay": col("weight_decay"),
          "momentum": col("momentum"), "warmup_steps": jnp.asarray(warm, jnp.float32),
          "decay": col("decay")}


def set_hparams(state: TrainState, hparams: dict) -> TrainState:
  """One run's state with its hyperparameters (a per-run optimizer's state)."""
  opt = state.opt_state
  return state._replace(opt_state=opt._replace(hyperparams={
      k: jnp.asarray(hparams[k], opt.hyperparams[k].dtype) for k in opt.hyperparams}))


def make_epoch(network: nets.Network, tx, batch_size: int, steps_per_epoch: int,
               augment_fn=None):
  """One epoch of SGD for one run, as a lax.scan over fixed-size batches.

  The shuffled epoch's remainder (N mod B examples) is dropped, so every batch has
  the same shape and nothing recompiles; a fresh permutation each epoch. Returns the
  new state and ``{"loss", "acc"}``: the mean over the epoch's batches of the batch
  loss and of the accuracy (argmax of the training-mode logits against the labels
  trained on, augmented inputs), each measured before that batch's update.
  """

  def epoch_fn(state: TrainState, labels_N, keys: RunKeys, epoch, x_N):
    n = labels_N.shape[0]
    perm = jax.random.permutation(jax.random.fold_in(keys.order, epoch), n)
    idx_SxB = perm[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)
    k_aug = jax.random.fold_in(keys.augment, epoch)

    def step(state: TrainState, xs):
      i, idx_B = xs
      x_B, y_B = x_N[idx_B], labels_N[idx_B]
      if augment_fn is not None:
        x_B = augment_fn(jax.random.fold_in(k_aug, i), x_B)

      def loss_fn(params):
        logits, _, new_stats = network.apply(
            {"params": params, "batch_stats": state.batch_stats}, x_B, train=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_B).mean()
        return loss, (new_stats, jnp.mean(jnp.argmax(logits, -1) == y_B))

      (loss, (new_stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      return TrainState(params, new_stats, opt_state, state.step + 1), (loss, acc)

    state, (losses, accs) = jax.lax.scan(step, state,
                                         (jnp.arange(steps_per_epoch), idx_SxB))
    return state, {"loss": losses.mean(), "acc": accs.mean()}

  return epoch_fn


def init_state(network, tx, key) -> TrainState:
  v = network.init(key)
  return TrainState(v["params"], v["batch_stats"], tx.init(v["params"]),
                    jnp.zeros((), jnp.int32))


@jax.jit
def tree_finite(tree) -> jax.Array:
  """Per run (leading axis): are all floating leaves finite? (Jitted: eagerly, every
  leaf's isfinite and all compiled alone, 0.5 s at the end of a CONV-4 run.)"""
  leaves = [jnp.all(jnp.isfinite(a), axis=tuple(range(1, a.ndim)))
            for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves), axis=0)
