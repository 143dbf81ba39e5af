"""Offline bound calculator: ``jaxdepth bound --workdir DIR [--eps] [--alpha] [--p]``.

Reads ONLY the checkpoints of a bound experiment
(jaxdepth/papers/minimal_depth/bound_experiment.py) and their metadata: the samples,
corrupted labels and test set (checkpoints/data) and the network variables of every
clean and noisy run. Imports no training code (no jaxdepth.papers.minimal_depth.train,
no optax): the network's apply is rebuilt from the stored model config with
jaxdepth.nets. One jitted program, vmapped over ALL stored networks (clean runs padded
to 2m with masked rows), recomputes the per-layer NCC train errors on each run's own
training set (S1^k, or S1^k u S2^{k,p}~ with its noisy labels) and the network test
errors; a second program, vmapped over the clean networks, computes the assumption
diagnostics (per-layer NCC predictions on S2 and the test set, the NCC on S1 u S2
relabelled by the network). jaxdepth.papers.minimal_depth.bounds turns them into the
bound table and its curve summary (smallest valid p, invalid p ranges, diagnostics where
the estimate breaks), which are printed and written to DIR/bound.json and DIR/bound.csv,
with one figure per eps (DIR/bound_curve_epsE.png).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxdepth import nets
from jaxdepth.engine import ckpt, writers
from jaxdepth.errors import ConfigError
from jaxdepth.measure import analysis
from jaxdepth.papers.minimal_depth import bounds

FORMAT = 1
CAVEATS = (
    "delta_1 and delta_2 of Prop. 1 are taken as 0 in the bound; the rows carry "
    "diagnostics of the assumptions instead: (a) own_label_* (does h's layer-d(h) NCC "
    "fit S1 u S2 labelled by h), (b) delta2_frac (draws and q >= (1+alpha)p with "
    "dmin(q) < dmin(p)), (c) mistake_overlap_ratio (h's mistakes on S2 shared across "
    "clean seeds, vs random subsets of the same sizes).",
    "dmin_hat is the min over the noisy seeds only: an upper estimate of the minimal "
    "depth, so this is an estimate, not a certified bound.",
    "The first term is a proportion over K draws; its 95% interval is exact "
    "(Clopper-Pearson) and 'bound (CI top)' uses the interval's top. A row is valid "
    "when bound >= the mean test error (also reported against the top of the mean test "
    "error's 95% interval).",
    "For p > 2 eps the corrupted p/2 of S1 u S2 exceed the NCC's eps budget, dmin_hat "
    "jumps above the clean depths and the estimate is just (1+alpha)p: below the test "
    "error whenever (1+alpha)p is.",
)


class BoundError(ConfigError):
  """A one-line, user-facing error of the calculator (printed by the CLI)."""

  def __init__(self, message: str):
    self.field = "bound"
    ValueError.__init__(self, message)


def _train_cmd(workdir: str) -> str:
  return f"jaxdepth train --config configs/bound.py --workdir {workdir}"


# ------------------------------------------------------------------------- loading
def load(workdir: str) -> dict:
  """Restore data, clean and noisy checkpoints; check they are one complete experiment."""
  root = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(root) or not os.listdir(root):
    raise BoundError(f"no checkpoints in {workdir}: produce them with `{_train_cmd(workdir)}`")
  if not ckpt.has_checkpoints(root, "data"):
    found = ", ".join(sorted(os.listdir(root)))
    raise BoundError(f"{root} holds no bound-experiment checkpoints (found: {found}); "
                     f"they come from `{_train_cmd('NEW_DIR')}`")
  out = {}
  for kind in ("data", "clean", "noisy"):
    if not ckpt.has_checkpoints(root, kind):
      raise BoundError(f"{kind} runs missing (no checkpoint in {root}/{kind}): training "
                       f"stopped before them; resume with `{_train_cmd(workdir)}`")
    ck = ckpt.Checkpointer(workdir, max_to_keep=None, subdir=os.path.join("checkpoints", kind))
    try:  # an unreadable step is warned about and set aside; the newest readable is used
      step, tree, meta = ck.restore_latest_readable()
    finally:
      ck.close()
    if meta.get("experiment") != "bound" or meta.get("format") != FORMAT:
      raise BoundError(f"{root}/{kind} was written by experiment "
                       f"{meta.get('experiment')!r} format {meta.get('format')!r}, not a "
                       f"bound experiment of format {FORMAT}")
    out[kind] = (jax.tree.map(np.asarray, tree), meta)
  cfg = out["data"][1]["config"]
  for kind in ("clean", "noisy"):
    tree, meta = out[kind]
    if meta["config"] != cfg:
      diff = next(k for k in sorted(set(cfg) | set(meta["config"]))
                  if cfg.get(k) != meta["config"].get(k))
      raise BoundError(f"{kind} checkpoints come from an incompatible config "
                       f"({diff}={meta['config'].get(diff)!r}, data has {cfg.get(diff)!r}); "
                       "use one workdir per config")
    if not meta.get("complete"):
      raise BoundError(f"{kind} runs incomplete (epoch {meta.get('epoch')}/{cfg['epochs']});"
                       f" results would be partial: resume with `{_train_cmd(workdir)}`")
    _check_runs(kind, meta["runs"], cfg, workdir)
  return out


def _check_runs(kind, runs, cfg, workdir):
  ps = bounds.trained_ps(cfg)
  K, P = cfg["num_draws"], len(ps)
  n = cfg["num_clean_seeds"] if kind == "clean" else cfg["num_noisy_seeds"]
  have = {(r["draw"], r.get("p_index", -1), r["seed"]) for r in runs}
  js = [-1] if kind == "clean" else range(P)
  for k in range(K):
    missing = [(j, g) for j in js for g in range(n) if (k, j, g) not in have]
    if missing:
      what = ", ".join(f"seed {g}" + ("" if j < 0 else f" p={ps[j]}")
                       for j, g in missing[:4])
      raise BoundError(f"draw {k} is missing {len(missing)} {kind} run(s) ({what}); "
                       f"results would be partial: rerun `{_train_cmd(workdir)}`")


# --------------------------------------------------------------------- recomputation
def make_ncc_program(network: nets.Network, num_classes: int):
  """jit(vmap over runs) of (variables, x_NBxB.., y_NBxB, mask_NBxB, test) ->
  (ncc_train_err_L, test_err).

  The training-time analysis itself (analysis.make_analyzer: streamed class means of
  centred features, NCC with the training means; the network's own argmax on
  the test set), so recomputed errors equal the logged ones by construction.
  """
  analyzer = analysis.make_analyzer(network, num_classes, eps=(0.0,), rank_samples=1)

  def one_run(v, x, y, mask, xt, yt, mt):
    out = analyzer(v, analysis.Batched(x, y, mask), y, jnp.zeros(mask.shape, bool),
                   analysis.Batched(xt, yt, mt))
    return 1.0 - out["ncc_train_acc"], 1.0 - out["test_acc"]

  return jax.jit(jax.vmap(one_run, in_axes=(0, 0, 0, 0, None, None, None)))


def _cut(a, batch: int):
  """(R, N, ...) -> (R, NB, B, ...), zero-padded."""
  r, n = a.shape[:2]
  nb = -(-n // batch)
  pad = np.zeros((r, nb * batch - n, *a.shape[2:]), a.dtype)
  return np.concatenate([a, pad], 1).reshape(r, nb, batch, *a.shape[2:])


def recompute(loaded: dict) -> dict:
  """Per-layer NCC train errors and test errors of every stored network, one program."""
  samples, dmeta = loaded["data"]
  cfg = dmeta["config"]
  network = nets.build(dmeta["model"], tuple(dmeta["input_shape"]), dmeta["num_classes"])
  (ct, cm), (nt, nm) = loaded["clean"], loaded["noisy"]
  m = cfg["m"]
  # Every run sees 2m rows: S1 then S2 (masked out for the clean runs).
  d_c, d_n, j_n = ct["draw"], nt["draw"], nt["p_index"]
  x = np.concatenate([np.concatenate([samples["x_s1"][d_c], samples["x_s2"][d_c]], 1),
                      np.concatenate([samples["x_s1"][d_n], samples["x_s2"][d_n]], 1)])
  y_clean = np.concatenate([samples["y_s1"][d_c], np.zeros_like(samples["y_s2"][d_c])], 1)
  y_noisy = np.concatenate([samples["y_s1"][d_n], samples["y_s2_noisy"][d_n, j_n]], 1)
  y = np.concatenate([y_clean, y_noisy]).astype(np.int32)
  mask = np.ones(y.shape, bool)
  mask[: len(d_c), m:] = False
  if not (np.array_equal(ct["labels"], y_clean[:, :m]) and
          np.array_equal(nt["labels"], y_noisy)):
    raise BoundError("stored training labels disagree with the stored samples; the "
                     "checkpoints are corrupted or mixed from different runs")
  variables = jax.tree.map(lambda a, b: np.concatenate([a, b]), ct["variables"],
                           nt["variables"])
  finite_R = np.all([np.isfinite(a.reshape(a.shape[0], -1)).all(1)
                     for a in jax.tree.leaves(variables)
                     if np.issubdtype(a.dtype, np.floating)], axis=0)
  if not finite_R.all():
    bad = [r for r, ok in zip(cm["runs"] + nm["runs"], finite_R) if not ok]
    what = ", ".join(f"draw {r['draw']} seed {r['seed']}" +
                     (f" p={r['p']:g}" if "p" in r else "") for r in bad[:3])
    raise BoundError(f"{len(bad)} stored network(s) diverged (non-finite parameters: "
                     f"{what}); results would be partial: retrain in a new workdir with a "
                     "smaller --config.lr")
  b = cfg["analysis_batch"]
  xt, yt = samples["x_test"][None], samples["y_test"][None].astype(np.int32)
  prog = make_ncc_program(network, dmeta["num_classes"])
  err_RxL, test_R = jax.device_get(prog(
      variables, _cut(x, b), _cut(y, b), _cut(mask, b),
      _cut(xt, b)[0], _cut(yt, b)[0], _cut(np.ones(yt.shape, bool), b)[0]))
  nc = len(d_c)
  return {"clean_err": np.asarray(err_RxL[:nc]), "noisy_err": np.asarray(err_RxL[nc:]),
          "clean_test_err": np.asarray(test_R[:nc]), "noisy_test_err": np.asarray(test_R[nc:]),
          "clean_runs": cm["runs"], "noisy_runs": nm["runs"], "config": cfg,
          "layer_names": dmeta["layer_names"], "dataset": dmeta["dataset"]}


def make_assumption_program(network: nets.Network, num_classes: int, batch: int):
  """jit(vmap over clean runs) of (variables, x_s1, y_s1, x_s2, x_test, y_test) ->
  (own_err_L, agree_s2_L, agree_test_L, net_pred_s2, net_pred_test).

  Assumption (a) of Prop. 1 for a clean network h: per layer, the NCC error on
  S1 u S2_h (S2 labelled by h's own argmax; class means of that union with those
  labels), and the agreement of the NCC with S1's class means (the classifier whose
  error defines d^eps_{S1}(h)) with h's argmax on S2 and on the test set. Per-layer
  NCC predictions come from analysis.make_ncc_predictor (the analyzer's sums, means
  and scores); only the per-layer fractions and h's predictions leave the program.
  """
  predict = analysis.make_ncc_predictor(network, num_classes)

  def cut(a):
    n = a.shape[0]
    nb = -(-n // batch)
    pad = jnp.zeros((nb * batch - n, *a.shape[1:]), a.dtype)
    return jnp.concatenate([a, pad]).reshape(nb, batch, *a.shape[1:])

  def batched(x, y):
    return analysis.Batched(cut(x), cut(y), cut(jnp.ones(x.shape[0], bool)))

  def flat(pred, n):  # (..., NB, B) -> (..., n)
    return pred.reshape(*pred.shape[:-2], -1)[..., :n]

  def one_run(v, x1, y1, x2, xt, yt):
    m, nt = x1.shape[0], xt.shape[0]
    s1 = batched(x1, y1)
    ncc_s2, net_s2 = predict(v, s1, s1.y, batched(x2, jnp.zeros(m, y1.dtype)))
    ncc_te, net_te = predict(v, s1, s1.y, batched(xt, yt))
    ncc_s2, net_s2 = flat(ncc_s2, m), flat(net_s2, m).astype(y1.dtype)
    ncc_te, net_te = flat(ncc_te, nt), flat(net_te, nt)
    yu = jnp.concatenate([y1, net_s2])
    u = batched(jnp.concatenate([x1, x2]), yu)
    ncc_u, _ = predict(v, u, u.y, u)
    own_err = jnp.mean(flat(ncc_u, 2 * m) != yu[None], axis=1)
    return (own_err, jnp.mean(ncc_s2 == net_s2[None], axis=1),
            jnp.mean(ncc_te == net_te[None], axis=1), net_s2, net_te)

  return jax.jit(jax.vmap(one_run, in_axes=(0, 0, 0, 0, None, None)))


def clean_assumptions(loaded: dict) -> dict:
  """Assumption diagnostics (a) and (c) of every stored clean network, in stored run
  order: own_err / agree_s2 / agree_test (R, L), net_pred_s2 (R, m), net_pred_test
  (R, N_test) and s2_mistakes (R, m) bool (h's argmax differs from S2's clean label)."""
  samples, dmeta = loaded["data"]
  cfg = dmeta["config"]
  network = nets.build(dmeta["model"], tuple(dmeta["input_shape"]), dmeta["num_classes"])
  ct, cm = loaded["clean"]
  d = np.asarray(ct["draw"])
  prog = make_assumption_program(network, dmeta["num_classes"], cfg["analysis_batch"])
  own, a2, at, p2, pt = jax.device_get(prog(
      ct["variables"], samples["x_s1"][d], samples["y_s1"][d].astype(np.int32),
      samples["x_s2"][d], samples["x_test"], samples["y_test"].astype(np.int32)))
  return {"own_err": np.asarray(own), "agree_s2": np.asarray(a2),
          "agree_test": np.asarray(at), "net_pred_s2": np.asarray(p2),
          "net_pred_test": np.asarray(pt),
          "s2_mistakes": np.asarray(p2) != samples["y_s2"][d], "runs": cm["runs"]}


def assumptions_by_draw(diag: dict, num_draws: int, num_clean_seeds: int) -> dict:
  """The per-run arrays of ``clean_assumptions`` arranged as (K, G, ...)."""
  out = {}
  for key in ("own_err", "agree_s2", "agree_test", "s2_mistakes"):
    a = np.asarray(diag[key])
    arr = np.zeros((num_draws, num_clean_seeds, *a.shape[1:]), a.dtype)
    for r, v in zip(diag["runs"], a):
      arr[r["draw"], r["seed"]] = v
    out[key] = arr
  return out


# --------------------------------------------------------------------------- report
def _by_draw(rec: dict):
  """Arrange per-run errors as (K, G, L), (K, P, G, L) and test errors (K, G)."""
  cfg = rec["config"]
  K, P = cfg["num_draws"], len(bounds.trained_ps(cfg))
  n, nn = cfg["num_clean_seeds"], cfg["num_noisy_seeds"]
  L = rec["clean_err"].shape[1]
  clean = np.zeros((K, n, L))
  test = np.zeros((K, n))
  for r, e, t in zip(rec["clean_runs"], rec["clean_err"], rec["clean_test_err"]):
    clean[r["draw"], r["seed"]] = e
    test[r["draw"], r["seed"]] = t
  noisy = np.zeros((K, P, nn, L))
  for r, e in zip(rec["noisy_runs"], rec["noisy_err"]):
    noisy[r["draw"], r["p_index"], r["seed"]] = e
  return clean, noisy, test


def _select_p(requested, trained, workdir):
  if requested is None:
    return list(range(len(trained)))
  idx = []
  for p in requested:
    hit = [j for j, q in enumerate(trained) if abs(q - p) < 1e-9]
    if not hit:
      raise BoundError(f"p={p:g} was not trained (trained: "
                       f"{', '.join(f'{q:g}' for q in trained)}); train it with "
                       f"`jaxdepth train --config configs/bound.py --workdir NEW_DIR "
                       f"--config.p=({p:g},)`")
    idx.append(hit[0])
  return idx


def report(workdir: str, eps=None, alpha=None, p=None) -> tuple[list[dict], dict]:
  """Rows of the bound table (and the recomputed per-run errors) for ``workdir``."""
  for name, vals in (("eps", eps), ("alpha", alpha)):
    for v in vals or ():
      if not 0.0 <= v < 1.0:
        raise BoundError(f"--{name} {v:g} is outside [0, 1)")
  loaded = load(workdir)
  rec = recompute(loaded)
  cfg = rec["config"]
  rec["assumptions"] = clean_assumptions(loaded)
  clean, noisy, test = _by_draw(rec)
  ps = bounds.trained_ps(cfg)
  js = _select_p(p, ps, workdir)
  arch = f"{cfg['family']}-{cfg['depth']}-{cfg['width']}"
  extra = {"dataset": rec["dataset"], "architecture": arch, "m": cfg["m"],
           "K": cfg["num_draws"], "n_clean": cfg["num_clean_seeds"],
           "n_noisy": cfg["num_noisy_seeds"]}
  rows = bounds.bound_rows(clean, noisy[:, js], test, [ps[j] for j in js],
                           alpha or cfg["alpha"], eps or cfg["eps"],
                           num_layers=clean.shape[-1], extra=extra,
                           n_clean=cfg["m"], n_noisy=2 * cfg["m"],
                           assumptions=assumptions_by_draw(rec["assumptions"],
                                                           cfg["num_draws"],
                                                           cfg["num_clean_seeds"]))
  return rows, rec


def main(workdir: str, eps=None, alpha=None, p=None, out=None) -> list[dict]:
  """Print the bound table for ``workdir`` and write OUT.json / OUT.csv."""
  rows, rec = report(workdir, eps, alpha, p)
  out = out or os.path.join(workdir, "bound")
  cfg = rec["config"]
  head = (f"{rec['dataset']}, {rows[0]['architecture']}, m={cfg['m']}, "
          f"K={cfg['num_draws']}, n_clean={cfg['num_clean_seeds']}, "
          f"n_noisy={cfg['num_noisy_seeds']}")
  print(head)
  print(bounds.format_table(rows))
  for r in rows:
    if r["min_depth_unreached"]:
      print(f"note: eps={r['eps']:g} p={r['p']:g}: in {r['min_depth_unreached']} draw(s) "
            "no noisy run fitted S1 u S2~ (dmin_hat = L+1, first term 0 there)")
  for line in bounds.monotone_lines(rows):
    print(f"note: {line}")
  for r in rows:
    if not r["control"] and r["holds"] is False:
      print(f"note: eps={r['eps']:g} p={r['p']:g} alpha={r['alpha']:g}: the estimate "
            f"{r['bound']:.3f} is BELOW the measured test error "
            f"{r['mean_test_error']:.3f}")
  if any(r["control"] for r in rows):
    print("note: p=0 is the control (clean S1 u S2): Prop. 1 needs 0 < p < 1/2, so it "
          "has no bound; its first term shows how often a clean network is as deep as "
          "fitting 2m clean points needs")
  for c in CAVEATS:
    print(f"note: {c}")
  curve = bounds.curve_summary(rows)
  for line in bounds.curve_lines(curve):
    print(f"curve: {line}")
  eps_list = list(dict.fromkeys(r["eps"] for r in rows))
  alphas = list(dict.fromkeys(r["alpha"] for r in rows))
  warnings = bounds.grid_warnings([r["p"] for r in rows], eps_list,
                                  rows[0]["mean_test_error"], alphas)
  for w in warnings:
    print(f"warning: {w}")
  from jaxdepth.papers.minimal_depth import figures
  paths = [figures.bound_curve_figure(rows, e, f"{out}_curve_eps{e:g}.png", head)
           for e in eps_list]
  writers.write_json(f"{out}.json", {"workdir": os.path.abspath(workdir), "setting": head,
                                     "rows": rows, "curve": curve, "warnings": warnings,
                                     "figures": paths, "caveats": list(CAVEATS)})
  writers.write_csv(f"{out}.csv", rows)
  print(f"wrote {out}.json, {out}.csv and {len(paths)} figure(s) {out}_curve_eps*.png",
        file=sys.stderr)
  return rows
