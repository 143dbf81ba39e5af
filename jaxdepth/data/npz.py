"""A user's dataset given as arrays: one ``.npz`` file (``dataset = "npz"``).

  np.savez("my_data.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
  c.dataset = "npz"
  c.data.path = "my_data.npz"
  c.data.num_classes = 0        # 0: 1 + the largest label of either split

``x_*``: (N, ...) real numbers (any numeric dtype; used as float32, as given: no
normalization is applied), the same per-example shape in both splits, finite.
``y_*``: (N,) integers in [0, num_classes). Every problem is a ConfigError naming the
field (``data.path`` with the array's key, or ``data.num_classes``), raised by
:func:`check` before any compute.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from jaxdepth.data.base import Dataset
from jaxdepth.errors import ConfigError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read(path) -> dict[str, np.ndarray]:
  field = "data.path"
  if not isinstance(path, str) or not path:
    raise ConfigError(field, "must name an .npz file holding x_train, y_train, x_test, "
                      f"y_test; got {path!r}")
  if not os.path.isfile(path):
    raise ConfigError(field, f"no file {path!r} (in {os.getcwd()})")
  try:
    with np.load(path, allow_pickle=False) as f:
      if not isinstance(f, np.lib.npyio.NpzFile):
        raise ConfigError(field, f"{path} is a single .npy array, not an .npz holding "
                          f"{', '.join(KEYS)}")
      missing = [k for k in KEYS if k not in f.files]
      if missing:
        raise ConfigError(field, f"{path} has no array {missing[0]!r}; it holds "
                          f"{', '.join(f.files) or 'nothing'}, needs {', '.join(KEYS)}")
      return {k: f[k] for k in KEYS}
  except ConfigError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise ConfigError(field, f"cannot read {path} as .npz: {e}") from None


def _checked(arrays: dict, path: str, num_classes) -> tuple[dict, int]:
  field = "data.path"
  for split in ("train", "test"):
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.dtype.kind not in "biuf" or x.ndim < 2:
      raise ConfigError(field, f"{path}: x_{split} must be a numeric array (N, ...) with "
                        f"N >= 1 examples, got dtype {x.dtype}, shape {x.shape}")
    if y.dtype.kind not in "iu" or y.ndim != 1:
      raise ConfigError(field, f"{path}: y_{split} must be a 1-D integer array of labels, "
                        f"got dtype {y.dtype}, shape {y.shape}")
    if y.shape[0] != x.shape[0] or x.shape[0] == 0:
      raise ConfigError(field, f"{path}: x_{split} has {x.shape[0]} examples, y_{split} "
                        f"has {y.shape[0]}; they must be equal and non-zero")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
      raise ConfigError(field, f"{path}: x_{split} holds NaN or infinite values")
    if y.min() < 0:
      raise ConfigError(field, f"{path}: y_{split} holds a negative label {y.min()}")
  if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
    raise ConfigError(field, f"{path}: x_train examples have shape "
                      f"{arrays['x_train'].shape[1:]}, x_test examples "
                      f"{arrays['x_test'].shape[1:]}; they must be equal")
  top = int(max(arrays["y_train"].max(), arrays["y_test"].max()))
  if num_classes in (None, 0):
    num_classes = top + 1
  elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
    raise ConfigError("data.num_classes", f"must be an integer >= 2 (0: 1 + the largest "
                      f"label), got {num_classes!r}")
  elif top >= num_classes:
    raise ConfigError("data.num_classes", f"is {num_classes} but {path} holds label "
                      f"{top}; labels must be in [0, num_classes)")
  if num_classes < 2:
    raise ConfigError(field, f"{path}: the labels name {num_classes} class; at least 2 "
                      "are needed")
  return arrays, num_classes


def check(cfg_data) -> tuple[tuple[int, ...], int]:
  """Validate ``data.path`` (and ``data.num_classes``) without compute: returns the
  per-example input shape and the number of classes."""
  d = cfg_data or {}
  path = d.get("path", None)
  arrays, c = _checked(_read(path), path, d.get("num_classes", 0))
  return tuple(arrays["x_train"].shape[1:]), c


def load_npz(path: str, num_classes: int = 0) -> Dataset:
  """The Dataset in ``path`` (module docstring); ConfigError for a bad file."""
  arrays, c = _checked(_read(path), path, num_classes)
  f32 = lambda a: np.ascontiguousarray(a, np.float32)
  i32 = lambda a: np.ascontiguousarray(a, np.int32)
  return Dataset(f32(arrays["x_train"]), i32(arrays["y_train"]), f32(arrays["x_test"]),
                 i32(arrays["y_test"]), c, "npz")
