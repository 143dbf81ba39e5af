"""Neural-collapse analysis of a user's own model (issue 22, item 1, first version).

``analyze_model`` takes a model with R runs of parameters (a leading run axis on every
parameter leaf), computes every layer's embeddings of the train (and test) set in
fixed-size batches, and returns the metrics of ``nc.collapse_metrics`` per run and per
layer, the NCC test accuracy with the train class means, CDNV, effective rank and the
eps-effective depth. One jitted program, vmapped over the run axis, cached per static
structure (see ``_program_key``): a second call on the same model compiles nothing.

Three kinds of model:

* a flax **linen** Module: ``params`` are its variables with a leading run axis R on
  every leaf (``jax.vmap(model.init)(keys, x)``). Layers are taken with linen's
  ``capture_intermediates``: the output of every submodule's ``__call__`` (the top
  module's own output is the logits), in the order the calls finish (module order).
* a flax **nnx** Module: ``model`` is the module, built with its state stacked over
  the runs, e.g. ``nnx.vmap(lambda k: MLP(nnx.Rngs(k)))(keys)``; ``params`` is then
  ``None`` (the module's own state is used) or an ``nnx.State`` of the same structure
  with a leading run axis (``nnx.split(stacked_module)[1]``, e.g. after training).
  Inside the jitted function each run's state is ``nnx.merge``'d with the module's
  graphdef (the functional pattern) and layers are captured with ``nnx.capture(...,
  method_outputs=nnx.Intermediate)``: the output of every submodule's ``__call__``,
  ordered by path with numbers in natural order (``l2`` before ``l10``; nnx does not
  record call order).
* a **plain callable** ``apply(params, x) -> (logits, [embeddings])`` for one run's
  params; ``params`` is any pytree with a leading run axis. Layer names are
  ``layer_0``, ``layer_1``, ...

``layers`` (linen and nnx) selects layers: a callable ``path_tuple -> bool`` (the
module path, e.g. ``('Dense_0',)``) or a list of names (the path joined by ``/``, e.g.
``'Dense_0'`` or ``'Block_0/Dense_1'``); with a plain callable it is a list of layer
indices or names. Embeddings of any shape are flattened to (N, D_l). Note that a
module output is what the module returns: for ``nn.Dense`` followed by ``nn.relu`` it
is the pre-activation (wrap the activation in a module, or use a plain callable, to
measure post-activations).

Streaming: the metrics come from the trainer's analyzer (``measure/analysis.py``; one
analysis path for built-in and user models): the data are cut into batches of
``batch_size`` (the tail padded and masked, never dropped), and two passes accumulate
per-class counts and sums, then within-class second moments, NCC decisions and the
C x C statistics of NC1/NC2. Memory: one batch of every selected layer's embeddings per
run, never a whole dataset's. Runs are vmapped and the whole measurement is one jitted
program; the eigenvalues of the C x C and Gram matrices are taken on the host (CPU) in
float64, as the trainer does. Each layer's metrics equal ``nc.collapse_metrics`` on that
layer's whole feature matrix, to float32 rounding (tests/model_analysis_test.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _flax_kind(model) -> str:
  try:
    from flax import linen, nnx
  except ImportError:  # pragma: no cover - flax is a dependency
    return "callable"
  if isinstance(model, linen.Module):
    return "linen"
  if isinstance(model, nnx.Module):
    return "nnx"
  return "callable"


def _natural_key(path):
  return [[int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))] for p in path]


def select_layers(layers):
  """Layer filter on module paths (a tuple of str/int): None (all), a callable, or a
  list of names or glob patterns (``*`` matches within one path part: ``'Block_*'``
  selects ``Block_0`` but not ``Block_0/Dense_0``)."""
  if layers is None:
    return lambda path: True
  if callable(layers):
    return layers
  names = {str(n) for n in layers}
  patterns = [re.compile(re.escape(n).replace(r"\*", "[^/]*")) for n in names if "*" in n]
  return lambda path: ("/".join(map(str, path)) in names
                       or any(p.fullmatch("/".join(map(str, path))) for p in patterns))


# capture_intermediates filter: every module's __call__ output (the top module's own
# output is its result: the logits).
def capture_calls(mdl, name) -> bool:
  return name == "__call__"


def linen_layers(intermediates, keep) -> list[tuple[str, jax.Array]]:
  """(name, output) of every captured submodule ``__call__`` whose path ``keep``
  accepts, in the order the calls finished; a call returning several arrays gives
  ``name:0``, ``name:1``, .... ``intermediates`` is the collection that
  ``apply(..., capture_intermediates=capture_calls, mutable=["intermediates"])``
  returned."""
  out = []

  def walk(node, path):
    for k, v in node.items():  # insertion order = the order the calls finished
      if k == "__call__":
        if path and keep(path):
          vals = [a for a in v if isinstance(a, jax.Array)]
          for i, a in enumerate(vals):
            name = "/".join(map(str, path)) + (f":{i}" if len(vals) > 1 else "")
            out.append((name, a))
      elif isinstance(v, Mapping):
        walk(v, path + (k,))

  walk(intermediates, ())
  return out


def _linen_forward(model, layers):
  keep = select_layers(layers)

  def fwd(p, x):
    logits, state = model.apply(p, x, capture_intermediates=capture_calls,
                                mutable=["intermediates"])
    return logits, linen_layers(state.get("intermediates", {}), keep)

  return fwd


def _nnx_forward(model, layers):
  from flax import nnx
  keep = select_layers(layers)
  graphdef, _ = nnx.split(model)

  def fwd(p, x):
    m = nnx.merge(graphdef, p)
    logits, inter = nnx.capture(m, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
    found = []
    for path, var in nnx.to_flat_state(inter):
      if not path or path[-1] != "__call__" or len(path) < 2:
        continue
      mpath = tuple(path[:-1])
      if not keep(mpath):
        continue
      val = var.get_value() if hasattr(var, "get_value") else var.value
      vals = [a for a in (val if isinstance(val, tuple) else (val,))
              if isinstance(a, jax.Array)]
      for i, a in enumerate(vals):
        name = "/".join(map(str, mpath)) + (f":{i}" if len(vals) > 1 else "")
        found.append((_natural_key(mpath), i, name, a))
    found.sort(key=lambda t: (t[0], t[1]))
    return logits, [(name, a) for _, _, name, a in found]

  return fwd


def _callable_forward(apply, layers):
  def fwd(p, x):
    logits, embs = apply(p, x)
    out = [(f"layer_{i}", e) for i, e in enumerate(embs)]
    if layers is not None:
      if callable(layers):
        out = [(n, e) for i, (n, e) in enumerate(out) if layers((n,))]
      else:
        want = {str(v) for v in layers}
        out = [(n, e) for i, (n, e) in enumerate(out) if str(i) in want or n in want]
    return logits, out

  return fwd


def _lookup(tree, parts):
  node = tree
  for part in parts:
    try:
      node = node[part]
    except (KeyError, TypeError, IndexError):
      if part.isdigit():
        node = node[int(part)]
      else:
        node = getattr(node, part)
  if hasattr(node, "get_value"):  # nnx Variable
    node = node.get_value()
  return jnp.asarray(node)


def _classifier_fn(classifier, kind):
  """(one run's params) -> W, and whether a square W is (D, C) (a flax kernel)."""
  if classifier is None:
    return None, False
  if callable(classifier):
    return classifier, False
  parts = str(classifier).strip("/").split("/")

  def get(p):
    if kind == "linen" and isinstance(p, Mapping) and "params" in p:
      try:
        return _lookup(p["params"], parts)
      except (KeyError, AttributeError, TypeError, IndexError):
        pass
    return _lookup(p, parts)

  return get, True


def _orient(w, C, kernel_like):
  """W as (C, D): a (D, C) matrix is transposed; a square one is transposed when it is
  a flax kernel (in, out) taken by path, kept as given from a callable."""
  if w.ndim != 2 or C not in w.shape:
    raise ValueError(f"classifier must be (C, D) or (D, C) with C = {C}; got {w.shape}")
  if w.shape[0] == C and (w.shape[1] != C or not kernel_like):
    return w
  return w.T


# Jitted analysis programs of earlier calls, keyed on everything the program is built
# from (``_program_key``); jit itself still retraces for new shapes or dtypes. Bounded:
# the oldest entry goes first.
_PROGRAMS: dict = {}
_MAX_PROGRAMS = 16


def _program_key(kind, model, layers, classifier, C, eps, rank_samples, names, nc3_layer):
  """The static structure the program is built from, or None (no caching) when a part
  is unhashable. A linen Module compares by class and fields, an nnx Module by its
  graphdef, callables (the model, ``layers``, ``classifier``) by identity, as
  ``jax.jit`` caches them."""
  if kind == "nnx":
    from flax import nnx
    model = nnx.split(model)[0]
  if isinstance(layers, (list, tuple)):
    layers = ("names",) + tuple(str(n) for n in layers)
  key = (kind, model, layers, classifier, C, eps, rank_samples, tuple(names), nc3_layer)
  try:
    hash(key)
  except TypeError:
    return None
  return key


def analyze_model(model, params, x_train, y_train, num_classes: int, *, x_test=None,
                  y_test=None, layers=None, classifier=None, batch_size: int = 1024,
                  eps: Sequence[float] = (0.01, 0.05, 0.1), rank_samples: int = 512,
                  shard: bool = True) -> dict:
  """Neural-collapse metrics of every layer of a model, per run (module docstring).

  Args:
    model: a flax linen Module, a flax nnx Module (state stacked over runs) or a plain
      ``apply(params, x) -> (logits, [embeddings])``.
    params: the parameters with a leading run axis R on every leaf (linen variables,
      an nnx.State or None for nnx, any pytree for a callable).
    x_train, y_train: (N, ...) inputs and (N,) integer labels.
    num_classes: C.
    x_test, y_test: optional test set: ``ncc_acc_test`` with the train class means.
    layers: which layers (module docstring); default all submodule outputs. Names may
      be glob patterns for linen and nnx (``'Block_*'``; ``*`` stays in one path part).
    classifier: for NC3, a parameter path (``'Dense_2/kernel'``; for linen looked up
      under ``'params'`` first) or a callable on one run's params, giving W as (C, D)
      or (D, C) (a square path-given W is read as a flax (in, out) kernel). NC3 is
      measured at the top layer: the last selected layer of width D, except that when
      D == C the last layer is skipped (it is the logits).
    batch_size: rows per forward batch (the tail batch is padded and masked).
    eps: thresholds of the eps-effective depth.
    rank_samples: the effective rank is that of the Gram matrix of the first
      ``rank_samples`` examples of each split.
    shard: shard the run axis over every device (``jax.devices()``), padding it to a
      multiple of the device count; False keeps one device.
  Returns:
    dict of numpy arrays: for every key k of ``nc.collapse_metrics``, ``k + '_train'``
    of shape (R, L) (``counts_train``: (R, L, C)); ``nc3_duality_train`` is NaN except
    at ``nc3_layer`` (an int, or None without classifier); NC4 at every layer uses the
    model's own predictions (argmax of its logits); ``acc_train`` (R,) the model's
    accuracy and ``loss_train`` (R,) its mean cross-entropy; ``rank_train`` (R, L) the
    effective rank of the embeddings; with a test set ``ncc_acc_test``, ``cdnv_test``,
    ``rank_test`` (R, L), ``acc_test`` and ``loss_test`` (R,);
    ``effective_depth`` {eps: (R,) int} from the per-layer NCC train errors
    (collapse.effective_depth with num_samples = N); ``layer_names`` (list of L str).
  """
  kind = _flax_kind(model)
  if kind == "nnx" and params is None:
    from flax import nnx
    params = nnx.split(model)[1]
  if params is None:
    raise ValueError("params is None (allowed only for an nnx Module with stacked state)")
  fwd = {"linen": _linen_forward, "nnx": _nnx_forward,
         "callable": _callable_forward}[kind](model, layers)
  C = int(num_classes)
  x_train = jnp.asarray(x_train)
  y_train = jnp.asarray(y_train).astype(jnp.int32)
  N = x_train.shape[0]
  if (x_test is None) != (y_test is None):
    raise ValueError("give both x_test and y_test, or neither")
  has_test = x_test is not None
  if has_test:
    x_test = jnp.asarray(x_test)
    y_test = jnp.asarray(y_test).astype(jnp.int32)
  leaves = jax.tree.leaves(params)
  if not leaves:
    raise ValueError("params has no leaves")
  R = leaves[0].shape[0]
  if any(l.ndim == 0 or l.shape[0] != R for l in leaves):
    raise ValueError("every params leaf needs the same leading run axis R")

  # Static structure: layer names and widths (one run, one row).
  p0 = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)
  x0 = jax.ShapeDtypeStruct((1, *x_train.shape[1:]), x_train.dtype)
  meta = {}

  def probe(p, x):
    logits, embs = fwd(p, x)
    meta["names"] = [n for n, _ in embs]
    return logits, [e.reshape(e.shape[0], -1) for _, e in embs]

  logit_s, emb_s = jax.eval_shape(probe, p0, x0)
  names = meta["names"]
  widths = [s.shape[1] for s in emb_s]
  L = len(names)
  if L == 0:
    raise ValueError("no layer selected")
  if logit_s.shape != (1, C):
    raise ValueError(f"the model's logits must be (batch, {C}); got {logit_s.shape[1:]}")

  get_w, kernel_like = _classifier_fn(classifier, kind)
  nc3_layer = None
  if get_w is not None:
    w_s = jax.eval_shape(lambda p: _orient(get_w(p), C, kernel_like), p0)
    D_w = w_s.shape[1]
    cand = [l for l in range(L) if widths[l] == D_w and not (D_w == C and l == L - 1)]
    if not cand:
      raise ValueError(f"no selected layer has the classifier's width {D_w}: {names} "
                       f"have widths {widths}")
    nc3_layer = cand[-1]

  # One analysis path: the trainer's streamed analyzer (measure/analysis.py), with
  # each selected layer as its own group of one layer.
  from jaxdepth.measure import analysis
  from jaxdepth.nets.base import Network

  def apply(variables, x, train=False):
    logits, embs = fwd(variables, x)
    return logits, [e.reshape(1, e.shape[0], -1) for _, e in embs], None

  cls = None if get_w is None else (
      nc3_layer, lambda p: _orient(get_w(p), C, kernel_like))
  eps_t = tuple(float(e) for e in eps)
  analyzer = analysis.make_analyzer(Network(None, apply, L, tuple(names)), C,
                                    eps_t, int(rank_samples),
                                    cache=False, classifier=cls)
  B = int(max(1, min(batch_size, N)))
  train = analysis.batch_pad(np.asarray(x_train), np.asarray(y_train), B)
  if has_test:
    test = analysis.batch_pad(np.asarray(x_test), np.asarray(y_test), B)
  else:  # one masked-out row: the test metrics come out NaN and are dropped
    test = analysis.Batched(np.asarray(x_train[:1])[None], np.zeros((1, 1), np.int32),
                            np.zeros((1, 1), bool))
  clean = np.zeros(train.y.shape, bool)
  key = _program_key(kind, model, layers, classifier, C, eps_t, int(rank_samples), names,
                     nc3_layer)
  program = _PROGRAMS.get(key) if key is not None else None
  if program is None:
    program = jax.jit(jax.vmap(analyzer, in_axes=(0, None, None, None, None)))
    if key is not None:
      if len(_PROGRAMS) >= _MAX_PROGRAMS:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
      _PROGRAMS[key] = program
  # The run axis padded and sharded over every device, the data replicated (as the
  # trainer does; the analyzer has no LAPACK call, so several CPU devices are safe).
  from jaxdepth.engine import devices
  place = devices.Placement(R, enabled=shard)
  train, test, clean = place.shared((train, test, clean))
  raw = place.gather(program(place.runs(params), train, train.y, clean, test))
  counts = np.asarray(raw["nc_counts_train"]).astype(np.int32)
  fin = analysis.finalize(raw)
  nan_RxL = np.full(counts.shape[:2], np.nan)
  res = {"ncc_acc_train": fin["ncc_train_acc"], "cdnv_train": fin["cdnv_train"],
         **{f"{k}_train": fin[f"{k}_train"] for k in (
             "nc1", "nc1_ratio", "nc2_equinorm", "nc2_equiangular", "nc2_maxangle",
             "nc2_etf_error")},
         "nc3_duality_train": fin.get("nc3_duality_train", nan_RxL),
         "nc4_agreement_train": fin["nc4_train"], "counts_train": counts,
         "rank_train": fin["rank_train"], "acc_train": fin["train_acc"],
         "loss_train": fin["train_loss"]}
  if has_test:
    res.update(ncc_acc_test=fin["ncc_test_acc"], cdnv_test=fin["cdnv_test"],
               rank_test=fin["rank_test"], acc_test=fin["test_acc"],
               loss_test=fin["test_loss"])
  res = {k: np.asarray(v) for k, v in res.items()}
  res["effective_depth"] = {e: np.asarray(fin["effective_depth"][:, j])
                            for j, e in enumerate(eps)}
  res["layer_names"] = list(names)
  res["nc3_layer"] = nc3_layer
  return res
