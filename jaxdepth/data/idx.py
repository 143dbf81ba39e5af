"""IDX files (the MNIST file format), gzipped or not: Fashion-MNIST with no network.

Debian's package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``,
about 30 MB) installs the four gzipped IDX files of Fashion-MNIST in
``/usr/share/datasets/fashion-mnist``:

  train-images-idx3-ubyte.gz  (60000, 28, 28) uint8
  train-labels-idx1-ubyte.gz  (60000,) uint8
  t10k-images-idx3-ubyte.gz   (10000, 28, 28) uint8
  t10k-labels-idx1-ubyte.gz   (10000,) uint8

jaxdepth.data.tfds falls back to them when tfds has not prepared ``fashion_mnist``,
and preprocesses them exactly like the tfds arrays (28 -> 32 zero padding, the same
normalizations). The directory searched is, in this order: ``data.idx_dir`` when set
(then only that one), ``$JAXDEPTH_IDX_DIR``, the package's directory.

IDX format (LeCun et al.): two zero bytes, a type byte (0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), a byte giving the number of
dimensions, then each dimension as a big-endian uint32, then the data, big-endian, in
C order.
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple

import numpy as np

ENV_DIR = "JAXDEPTH_IDX_DIR"
DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class IdxSource(NamedTuple):
  default_dir: str  # where the Debian package installs the files
  package: str      # Debian package name


KNOWN_IDX: dict[str, IdxSource] = {
    "fashion_mnist": IdxSource("/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist"),
}


def read_idx(path: str) -> np.ndarray:
  """The array stored in one IDX file (gzip detected from its magic bytes)."""
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] == b"\x1f\x8b":
    raw = gzip.decompress(raw)
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
    raise ValueError(f"{path}: not an IDX file (header {raw[:4]!r})")
  dtype, ndim = DTYPES[raw[2]], raw[3]
  head = 4 + 4 * ndim
  if len(raw) < head:
    raise ValueError(f"{path}: truncated IDX header")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
  size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(raw) - head != size:
    raise ValueError(f"{path}: IDX header says {shape} x {dtype.itemsize} bytes = {size}, "
                     f"file holds {len(raw) - head} data bytes")
  return np.frombuffer(raw, dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray, compress: bool | None = None) -> None:
  """Write ``array`` as an IDX file (gzipped if ``compress`` or the name ends in .gz)."""
  a = np.asarray(array)
  code = next((c for c, d in DTYPES.items() if d.kind == a.dtype.kind
               and d.itemsize == a.dtype.itemsize), None)
  if code is None:
    raise ValueError(f"dtype {a.dtype} has no IDX type code")
  body = (bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
          + np.ascontiguousarray(a, DTYPES[code]).tobytes())
  if compress if compress is not None else path.endswith(".gz"):
    body = gzip.compress(body)
  with open(path, "wb") as f:
    f.write(body)


def _file(directory: str, stem: str) -> str | None:
  for name in (stem + ".gz", stem):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def missing(directory: str) -> list[str]:
  """The IDX files (stems) absent from ``directory``."""
  return [s for s in FILES if _file(directory, s) is None]


def candidates(name: str, idx_dir: str | None = None) -> list[str]:
  """Directories searched for ``name``'s IDX files, in order."""
  if idx_dir:
    return [idx_dir]
  dirs = [os.environ[ENV_DIR]] if os.environ.get(ENV_DIR) else []
  return dirs + ([KNOWN_IDX[name].default_dir] if name in KNOWN_IDX else [])


def find(name: str, idx_dir: str | None = None) -> str | None:
  """First candidate directory that holds all four IDX files of ``name``, or None."""
  if name not in KNOWN_IDX:
    return None
  return next((d for d in candidates(name, idx_dir) if not missing(d)), None)


def hint(name: str, idx_dir: str | None = None) -> str:
  """One-line advice naming the Debian package and the directories searched."""
  src = KNOWN_IDX[name]
  where = " or ".join(candidates(name, idx_dir))
  return (f"or install Debian's IDX files with `apt-get install -y {src.package}` "
          f"(searched {where}; set data.idx_dir or ${ENV_DIR} to another directory)")


def read_splits(directory: str):
  """((train images (N,H,W,1) uint8, labels (N,) int64), (test images, labels))."""
  absent = missing(directory)
  if absent:
    raise FileNotFoundError(f"{directory} lacks IDX files {', '.join(absent)}")
  out = []
  for img_stem, lab_stem in ((FILES[0], FILES[1]), (FILES[2], FILES[3])):
    images = read_idx(_file(directory, img_stem))
    labels = read_idx(_file(directory, lab_stem))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
      raise ValueError(f"{directory}: {img_stem} {images.shape} and {lab_stem} "
                       f"{labels.shape} do not pair up as (N, H, W) images and (N,) labels")
    out.append((images.astype(np.uint8)[..., None], labels.astype(np.int64)))
  return tuple(out)
