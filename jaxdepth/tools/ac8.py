"""The embedding-rank table of docs/definitions.md ("Linear over-parameterization"):
AC8's synthetic setting, run and tabulated in one command.

  python -m jaxdepth.tools.ac8 [--steps 600] [--seeds 3] [--data-keys 42 7]

A ReLU MLP 32-128-128-128-10 without BatchNorm, at expansion d = 1 and d = 4 (every
layer a product of d factors, trained through the factors, evaluated collapsed), on 512
Gaussian points labelled by a random tanh teacher (data key k); the seeds are vmapped,
full-batch Adam (lr 1e-3). Reported: rho(K) of the penultimate features, K = Phi Phi^T
(the entropy effective rank), at initialisation and after training, as mean ± sample std
over the seeds with the per-seed values, and the gap mean(d = 1) - mean(d = 4).
"""

from __future__ import annotations

import argparse
import sys


def teacher_data(key, n: int = 512, dim: int = 32, classes: int = 10):
  """Gaussian inputs (float32 draws, the same under x64) and the argmax labels of a
  random two-layer tanh teacher."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  k_x, k1, k2 = jax.random.split(key, 3)
  x = jax.random.normal(k_x, (n, dim), jnp.float32)
  w1 = jax.random.normal(k1, (dim, 64), jnp.float32) / np.sqrt(dim)
  w2 = jax.random.normal(k2, (64, classes), jnp.float32) / np.sqrt(64)
  return x, jnp.argmax(jnp.tanh(x @ w1) @ w2, axis=1)


def mlp(expansion: int):
  """The base MLP 32-128-128-128-10 and its expansion sites."""
  import jax

  from jaxdepth import nets
  from jaxdepth.nets import expanded
  base = nets.mlp(3, 128, 32, 10, batchnorm=False)
  shapes = jax.eval_shape(base.init, jax.random.key(0))["params"]
  return base, expanded.sites("mlp", shapes, expansion, 1.0, (32,))


def train(expansion: int, seeds: int, x, y, steps: int):
  """Expanded params at init and after ``steps`` full-batch Adam steps through the
  factors, seeds vmapped: (base, sites, p0, p)."""
  import jax
  import jax.numpy as jnp
  import optax

  from jaxdepth.nets import overparam
  base, sites = mlp(expansion)

  def loss(p):
    logits = base.apply({"params": overparam.collapse_params(p, sites), "batch_stats": {}},
                        x)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  tx = optax.adam(1e-3)

  def one(k):
    p0 = overparam.expand_params(k, base.init(k)["params"], sites)

    def step(s, _):
      p, o = s
      u, o = tx.update(jax.grad(loss)(p), o, p)
      return (optax.apply_updates(p, u), o), None
    (p, _), _ = jax.lax.scan(step, (p0, tx.init(p0)), None, length=steps)
    return p0, p

  keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
  p0, p = jax.jit(jax.vmap(one))(keys)
  return base, sites, p0, p


def penultimate_ranks(base, sites, params, x):
  """rho(K) of the collapsed network's penultimate features, one per seed (numpy)."""
  import jax
  import numpy as np

  from jaxdepth.measure import rank
  from jaxdepth.nets import overparam

  @jax.jit
  @jax.vmap
  def rho(ps):
    _, (f_LxNxH,), _ = base.apply(
        {"params": overparam.collapse_params(ps, sites), "batch_stats": {}}, x)
    return rank.gram_entropy_rank(f_LxNxH[-1])
  return np.asarray(rho(params), np.float64)


def _cell(v) -> str:
  import numpy as np
  return (f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f} ("
          + ", ".join(f"{a:.3f}" for a in v) + ")")


def table(data_keys=(42, 7), seeds: int = 3, steps: int = 600) -> str:
  import jax
  import numpy as np
  lines = ["| data key | | d = 1 | d = 4 | gap |", "|---|---|---|---|---|"]
  for k in data_keys:
    x, y = teacher_data(jax.random.key(k))
    got = {}
    for d in (1, 4):
      base, sites, p0, p = train(d, seeds, x, y, steps)
      got[d] = (penultimate_ranks(base, sites, p0, x), penultimate_ranks(base, sites, p, x))
    for i, when in enumerate(("init", "trained")):
      a, b = got[1][i], got[4][i]
      lines.append(f"| {k} | {when} | {_cell(a)} | {_cell(b)} | "
                   f"{np.mean(a) - np.mean(b):.2f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m jaxdepth.tools.ac8",
                              description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=600)
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--data-keys", type=int, nargs="+", default=[42, 7])
  a = p.parse_args(argv)
  if a.seeds < 2 or a.steps < 0:
    print("jaxdepth: error: --seeds must be >= 2 (a spread) and --steps >= 0",
          file=sys.stderr)
    return 2
  print(table(tuple(a.data_keys), a.seeds, a.steps))
  return 0


if __name__ == "__main__":
  sys.exit(main())
