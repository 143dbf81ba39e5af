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

from jaxdepth import nets


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


def make_schedule(config, steps_per_epoch: int):
  """Linear warm-up from 0, then constant, step decay (milestones as fractions of
  training, each multiplying by ``decay``) or cosine decay to 0."""
  total = config.epochs * steps_per_epoch
  warm = int(round(config.warmup_epochs * steps_per_epoch))
  if config.schedule == "constant":
    main = optax.constant_schedule(config.lr)
  elif config.schedule == "cosine":
    main = optax.cosine_decay_schedule(config.lr, max(total - warm, 1))
  else:
    bounds = {int(round(f * total)) - warm: config.decay for f in config.milestones}
    main = optax.piecewise_constant_schedule(config.lr, bounds)
  if warm == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, config.lr, warm), main], [warm])


def make_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (added to the gradient, as PyTorch)."""
  return optax.chain(optax.add_decayed_weights(config.weight_decay),
                     optax.sgd(make_schedule(config, steps_per_epoch),
                               momentum=config.momentum or None))


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


def tree_finite(tree) -> jax.Array:
  """Per run (leading axis): are all floating leaves finite?"""
  leaves = [jnp.all(jnp.isfinite(a), axis=tuple(range(1, a.ndim)))
            for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves), axis=0)
