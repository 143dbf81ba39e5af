"""Circular-convolutional linear networks: Fourier amplitudes learned largest first.

Gissin et al. (2020), Figure 1d and appendix;
docs/definitions.md, "Models".  N - 1 full-length
circular cross-correlation layers (FFT) and a dense d -> 1 layer; teacher with
rfft(w*)[0:4] = ``teacher_freqs`` (unit norm); labels sign(<w*, x>); exponential or
logistic loss; full-batch GD stopped at ``stop_loss``.  The end-to-end beta is exact
(network applied to the identity basis); tracked |rfft(beta)|.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth.papers.incremental import common, diagonal, fields, metrics, models, runner

EXPERIMENT = "incremental.circular_conv"

# The fields, their defaults and rules: fields.CIRCULAR_CONV (docs/config_fields.md).
SCHEMA = fields.CIRCULAR_CONV


def validate(config) -> None:
  """Check the config against fields.CIRCULAR_CONV; raises ConfigError before any compute."""
  SCHEMA.validate(config)


def teacher(d: int, freqs) -> np.ndarray:
  """w* = irfft(c) / ||.||, with c_k = freqs[k] for the first bins and 0 elsewhere."""
  c = np.zeros(d // 2 + 1, complex)
  c[: len(freqs)] = freqs
  w = np.fft.irfft(c, n=d)
  return w / np.linalg.norm(w)


def freq_thresholds(d: int, freqs, threshold: float) -> np.ndarray:
  """(1, d//2+1): bin k crosses at |rfft(beta)_k| >= threshold F_k / F_kmax (targets only)."""
  f_k = np.abs(np.fft.rfft(teacher(d, freqs)))[: len(freqs)]
  thr = np.full((1, d // 2 + 1), np.inf)
  thr[0, : len(freqs)] = threshold * f_k / f_k.max()
  return thr


def conv_problem(d: int, depth: int, loss: str, top_k: int) -> runner.Problem:
  def track(p, data):
    amp = jnp.abs(jnp.fft.rfft(models.circ_conv_beta(p)))
    return amp, jax.lax.top_k(amp, top_k)[0]

  def loss_fn(p, data):
    return models.margin_loss(data.y_B * models.circ_conv_apply(p, data.x_BxD), loss)

  return runner.Problem(init=lambda key, s0, data: models.circ_conv_init(key, d, depth, s0),
                        loss=loss_fn, track=track)


def beta_np(f_LxD, v_D) -> np.ndarray:
  """End-to-end vector in NumPy: beta = C_1^T ... C_{N-1}^T v, probing e_j (reference)."""
  z = np.eye(len(v_D))
  for w in np.asarray(f_LxD, float):
    z = np.fft.irfft(np.fft.rfft(z, axis=-1) * np.conj(np.fft.rfft(w))[None], n=len(v_D), axis=-1)
  return z @ np.asarray(v_D, float)


def freq_record(beta, w_star, k: int, cross_t, x_test, y_test) -> dict:
  """Fraction of |rfft(beta)|^2 on the target bins, cosine, crossing order, accuracy."""
  amp2 = np.abs(np.fft.rfft(beta)) ** 2
  t = np.asarray(cross_t, float)[:k]
  big = int(np.argmax(np.abs(np.fft.rfft(w_star))[:k]))
  others = np.delete(t, big)
  return {"cosine": diagonal.cosine(beta, w_star),
          "freq_mass": float(amp2[:k].sum() / amp2.sum()),
          "cross_t_freqs": t,
          "largest_first": bool(np.isfinite(t[big]) and np.all(t[big] < others)),
          "active_count": metrics.crossed_count(t),
          "test_accuracy": float(np.mean(np.sign(x_test @ beta) == y_test)),
          "amp_top": np.sort(np.sqrt(amp2))[::-1][:5] / np.sqrt(amp2.sum())}


def run(config, workdir: str) -> dict:
  w_star = teacher(config.d, config.teacher_freqs)
  k = len(config.teacher_freqs)
  with common.precision(config):
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    data = jax.vmap(lambda key: diagonal.make_data(key, jnp.asarray(w_star, dtype), config.n,
                                                   config.n_test))(common.seed_keys(config, 1))
    thr = freq_thresholds(config.d, config.teacher_freqs, config.threshold)

    def setup(depth):
      return (conv_problem(config.d, depth, config.loss, config.top_k), data,
              common.seed_keys(config, 0), thr, config.lr)

    results = common.sweep(config, workdir, "circular_conv", setup)
    host = jax.device_get(data)
  runs = []
  for depth, res in results.items():
    for s in range(config.num_seeds):
      for i in range(len(config.init_scales)):
        r = common.base_run(config, depth, res, s, i, config.lr)
        beta = beta_np(res.params.f_LxD[s, i], res.params.v_D[s, i])
        r.update(freq_record(beta, w_star, k, res.cross_t_SxIxAxK[s, i, 0],
                             np.asarray(host.x_test_BxD[s]), np.asarray(host.y_test_B[s])))
        runs.append(r)
  extra = {"teacher_rfft_amplitudes": np.abs(np.fft.rfft(w_star))[:k]}
  if config.svm:
    svm = []
    for s in range(config.num_seeds):
      w = diagonal.svm_direction(host.x_BxD[s], host.y_B[s])
      amp2 = np.abs(np.fft.rfft(w)) ** 2  # amplitudes (the authors' code used the real part)
      svm.append({"seed": config.seed + s, "cosine": diagonal.cosine(w, w_star),
                  "freq_mass": float(amp2[:k].sum() / amp2.sum())})
    extra["svm"] = svm
  for i, s0 in enumerate(config.init_scales):
    common.plot_values(os.path.join(workdir, f"fourier_amplitudes_sigma0_{s0:g}.png"), config,
                       results, i, ylabel=r"top $|\mathrm{rfft}(\beta)_k|$",
                       title="circular-convolutional network: Fourier amplitudes")
  common.plot_losses(os.path.join(workdir, "loss.png"), config, results)
  return common.finish(workdir, runs, extra)
