"""Shared helpers of the low-rank experiments: random factors, end-to-end products,
regression problems, one pure ``fit`` for every optimizer, summaries and figures.

Row-vector convention throughout: y = x @ W_e with W_e = W_1 @ W_2 @ ... @ W_d
(docs/definitions.md, "Effective rank").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from jaxdepth.engine import plotting
from jaxdepth.measure import rank

METHODS = ("gd", "sgd", "nesterov", "adam", "lbfgs", "random_search", "es")


# ------------------------------------------------------------------- matrices


def seed_keys(seed: int, purpose: int, n: int) -> jax.Array:
  """(n,) typed keys for one purpose (0 init, 1 data, 2 target, 3 optimizer noise)."""
  return jax.random.split(jax.random.fold_in(jax.random.key(seed), purpose), n)


def sample_matrices(key, shape, distribution: str, dtype=jnp.float32) -> jax.Array:
  """i.i.d. entries with variance 1/n (n = shape[-2]): Normal or Uniform(-a, a).

  rho is scale invariant; the 1/sqrt(n) scale only keeps deep products finite.
  """
  n = shape[-2]
  if distribution == "normal":
    return jax.random.normal(key, shape, dtype) / np.sqrt(n)
  a = np.sqrt(3.0 / n)
  return jax.random.uniform(key, shape, dtype, -a, a)


def end_to_end(w_DxNxM: jax.Array) -> jax.Array:
  """W_e = W_1 @ ... @ W_D of a stack of square factors, by lax.scan."""
  def step(acc, w):
    return jnp.matmul(acc, w, precision=jax.lax.Precision.HIGHEST), None
  out, _ = jax.lax.scan(step, w_DxNxM[0], w_DxNxM[1:])
  return out


def low_rank_factors(key, shape, r: int, distribution: str = "normal", dtype=jnp.float32):
  """Random (..., n, n) factors of rank r with the same entry variance as
  :func:`sample_matrices` (A B with A (n, r), B (r, n))."""
  k1, k2 = jax.random.split(key)
  n = shape[-1]
  a = jax.random.normal(k1, shape[:-1] + (r,), dtype)
  b = jax.random.normal(k2, shape[:-2] + (r, n), dtype)
  return jnp.matmul(a, b) / np.sqrt(n * r)


class Regression(NamedTuple):
  x_train: jax.Array  # (N, n)
  y_train: jax.Array  # (N, n)
  x_test: jax.Array   # (T, n)
  y_test: jax.Array
  w_star: jax.Array   # (n, n)


def make_target(key, dim: int, target: str, rank_: int, dtype=jnp.float32) -> jax.Array:
  """low_rank: U V^T sqrt(dim / r) (flat spectrum, rho = log r); full_rank: a Gaussian
  matrix with unit-norm rows (docs/definitions.md, "Regression targets").
  Both have ||W*||_F^2 = dim."""
  if target == "low_rank":
    k1, k2 = jax.random.split(key)
    u, _ = jnp.linalg.qr(jax.random.normal(k1, (dim, rank_), dtype))
    v, _ = jnp.linalg.qr(jax.random.normal(k2, (dim, rank_), dtype))
    return u @ v.T * np.sqrt(dim / rank_)
  w = jax.random.normal(key, (dim, dim), dtype)
  return w / jnp.linalg.norm(w, axis=1, keepdims=True)


def make_regression(key, dim: int, target: str, rank_: int, n_train: int, n_test: int,
                    dtype=jnp.float32) -> Regression:
  k_t, k_x, k_xt = jax.random.split(key, 3)
  w = make_target(k_t, dim, target, rank_, dtype)
  x = jax.random.normal(k_x, (n_train, dim), dtype)
  xt = jax.random.normal(k_xt, (n_test, dim), dtype)
  return Regression(x, x @ w, xt, xt @ w, w)


def mse(w_e, x_NxI, y_NxO) -> jax.Array:
  """Mean over samples and outputs of the squared error of y = x W_e."""
  return jnp.mean((x_NxI @ w_e - y_NxO) ** 2)


# ------------------------------------------------------------------------ fit


class FitHParams(NamedTuple):
  """Value hyperparameters (vmappable)."""
  lr: float = 0.1         # gradient methods and the ES update
  sigma: float = 0.05     # random search / ES perturbation scale
  momentum: float = 0.9   # nesterov


def fit(loss_fn: Callable, params0, method: str, steps: int, hp: FitHParams, key,
        log_every: int, population: int = 16):
  """Minimize ``loss_fn(params)`` for ``steps`` steps as one lax.scan.

  Methods: gd/sgd (full-batch gradient descent), nesterov, adam, lbfgs (optax with
  zoom line search), random_search (accept a Gaussian perturbation of scale sigma,
  geometrically annealed to sigma/100, when it lowers the loss) and es (antithetic
  evolution strategy: gradient estimate from ``population`` pairs, Adam update;
  Salimans et al. 2017). Returns (params, loss_T) with T = steps // log_every.
  """
  chunks = steps // log_every
  if method in ("gd", "sgd", "nesterov", "adam", "lbfgs"):
    opt = {"gd": lambda: optax.sgd(hp.lr), "sgd": lambda: optax.sgd(hp.lr),
           "nesterov": lambda: optax.sgd(hp.lr, momentum=hp.momentum, nesterov=True),
           "adam": lambda: optax.adam(hp.lr), "lbfgs": lambda: optax.lbfgs()}[method]()
    vg = (optax.value_and_grad_from_state(loss_fn) if method == "lbfgs"
          else jax.value_and_grad(loss_fn))

    def step(state, _):
      p, s = state
      if method == "lbfgs":
        v, g = vg(p, state=s)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=loss_fn)
      else:
        v, g = vg(p)
        u, s = opt.update(g, s, p)
      return (optax.apply_updates(p, u), s), v

    state = (params0, opt.init(params0))
  elif method == "random_search":
    decay = (0.01) ** (1.0 / steps)

    def step(state, t):
      p, v, k = state
      k, sub = jax.random.split(k)
      sig = hp.sigma * decay ** t
      leaves, tree = jax.tree.flatten(p)
      noise = [jax.random.normal(kk, a.shape, a.dtype) for kk, a in
               zip(jax.random.split(sub, len(leaves)), leaves)]
      cand = jax.tree.unflatten(tree, [a + sig * e for a, e in zip(leaves, noise)])
      vc = loss_fn(cand)
      better = vc < v
      p = jax.tree.map(lambda a, b: jnp.where(better, a, b), cand, p)
      return (p, jnp.minimum(v, vc), k), jnp.minimum(v, vc)

    state = (params0, loss_fn(params0), key)
  elif method == "es":
    opt = optax.adam(hp.lr)

    def step(state, t):
      p, s, k = state
      k, sub = jax.random.split(k)
      flat, unravel = jax.flatten_util.ravel_pytree(p)
      eps = jax.random.normal(sub, (population,) + flat.shape, flat.dtype)
      lp = jax.vmap(lambda e: loss_fn(unravel(flat + hp.sigma * e)))(eps)
      lm = jax.vmap(lambda e: loss_fn(unravel(flat - hp.sigma * e)))(eps)
      g = jnp.mean((lp - lm)[:, None] * eps, axis=0) / (2 * hp.sigma)
      u, s = opt.update(unravel(g), s, p)
      return (optax.apply_updates(p, u), s, k), loss_fn(p)

    state = (params0, opt.init(params0), key)
  else:
    raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")

  def chunk(state, c):
    state, _ = jax.lax.scan(step, state, c * log_every + jnp.arange(log_every))
    return state, loss_fn(state[0])

  state, loss_T = jax.lax.scan(chunk, state, jnp.arange(chunks))
  return state[0], loss_T


# ---------------------------------------------------------------- summaries


def nanmean(a, axis):
  """Mean over the finite entries (NaN where there are none), without warnings."""
  a = np.asarray(a, np.float64)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmean(a, axis=axis)


def stats(values) -> dict:
  """mean/std/min/max of per-seed values (NaN-aware), plus the values."""
  a = np.asarray(values, dtype=np.float64)
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (every seed diverged)
    return {"mean": float(np.nanmean(a)), "std": float(np.nanstd(a)),
            "min": float(np.nanmin(a)), "max": float(np.nanmax(a)), "values": a.tolist()}


def strictly_decreasing(seq) -> bool:
  s = np.asarray(seq, dtype=np.float64)
  return bool(np.all(np.diff(s) < 0))


def rho64(a) -> np.ndarray:
  """float64 rho of a (batch of) matrices, on host."""
  return rank.entropy_rank64(np.asarray(a, np.float64))


def plot_vs_depth(path: str, depths, panels: dict, hlines: dict | None = None) -> str:
  """One panel per entry {title: {label: values (S, D) or (D,)}}; log y for losses."""
  fig, axes = plotting.subplots(len(panels))
  hlines = hlines or {}
  for ax, (title, series) in zip(axes, panels.items()):
    for label, y in series.items():
      plotting.mean_band(ax, list(depths), y, label=label, log="loss" in title)
    for label, (value, color) in hlines.get(title, {}).items():
      ax.axhline(value, ls="--", color=color, lw=1, label=label)
    ax.set_xlabel("depth")
    ax.set_title(title)
    ax.legend(fontsize=7)
  return plotting.save(fig, path)
