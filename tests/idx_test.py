"""IDX reader and the Fashion-MNIST fallback, on small IDX files written here.

Never touches the system package: every call passes an empty tfds ``data_dir`` and an
explicit ``idx_dir`` (or sets $JAXDEPTH_IDX_DIR).
"""

import gzip
import struct

import numpy as np
import pytest

from jaxdepth import data
from jaxdepth.data import idx
from jaxdepth.data import tfds as tfds_data

N_TRAIN, N_TEST = 7, 5


def _idx_bytes(a: np.ndarray, code: int, be_dtype: str) -> bytes:
  """Reference encoder, written from the format description (not idx.write_idx)."""
  head = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
  return head + a.astype(be_dtype).tobytes()


def _write(path, a, code=0x08, be_dtype="u1", gz=True):
  body = _idx_bytes(a, code, be_dtype)
  with open(path, "wb") as f:
    f.write(gzip.compress(body) if gz else body)


def _fake_fashion(directory, gz=True, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {
      "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
      "train-labels-idx1-ubyte": rng.integers(0, 10, (N_TRAIN,), dtype=np.uint8),
      "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
      "t10k-labels-idx1-ubyte": rng.integers(0, 10, (N_TEST,), dtype=np.uint8),
  }
  arrays["train-images-idx3-ubyte"][0] = 255  # extremes survive the round trip
  arrays["train-images-idx3-ubyte"][1] = 0
  directory.mkdir(parents=True, exist_ok=True)
  for stem, a in arrays.items():
    _write(directory / (stem + (".gz" if gz else "")), a, gz=gz)
  return arrays


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("code,be,dt", [(0x08, "u1", np.uint8), (0x09, "i1", np.int8),
                                        (0x0B, ">i2", np.int16), (0x0C, ">i4", np.int32),
                                        (0x0D, ">f4", np.float32),
                                        (0x0E, ">f8", np.float64)])
def test_read_idx_round_trip(tmp_path, gz, code, be, dt):
  rng = np.random.default_rng(1)
  a = (rng.normal(size=(3, 4, 5)) * 100).astype(dt)
  path = tmp_path / "a.idx"
  _write(path, a, code, be, gz)
  got = idx.read_idx(str(path))
  assert got.shape == (3, 4, 5) and got.dtype == np.dtype(dt)
  np.testing.assert_array_equal(got, a)
  # write_idx produces bytes the reference decoder agrees with (both ways).
  idx.write_idx(str(tmp_path / "b.idx"), a, compress=gz)
  raw = (tmp_path / "b.idx").read_bytes()
  assert (gzip.decompress(raw) if gz else raw) == _idx_bytes(a, code, be)


def test_read_idx_rejects_bad_files(tmp_path):
  a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  body = _idx_bytes(a, 0x08, "u1")
  (tmp_path / "short").write_bytes(body[:-1])
  (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04" + body[4:])
  with pytest.raises(ValueError, match="header says"):
    idx.read_idx(str(tmp_path / "short"))
  with pytest.raises(ValueError, match="not an IDX file"):
    idx.read_idx(str(tmp_path / "junk"))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("normalization", ["dataset", "reference", "computed"])
def test_fashion_mnist_from_idx_when_tfds_absent(tmp_path, gz, normalization):
  arrays = _fake_fashion(tmp_path / "idx", gz=gz)
  empty_tfds = str(tmp_path / "tfds")
  assert tfds_data.source("fashion_mnist", empty_tfds, idx_dir=str(tmp_path / "idx")) == (
      "idx", str(tmp_path / "idx"))
  d = data.load({"dataset": "fashion_mnist",
                 "data": {"data_dir": empty_tfds, "idx_dir": str(tmp_path / "idx"),
                          "normalization": normalization}})
  assert d.name == "fashion_mnist" and d.num_classes == 10
  assert d.x_train.shape == (N_TRAIN, 32, 32, 1) and d.x_test.shape == (N_TEST, 32, 32, 1)
  assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
  np.testing.assert_array_equal(d.y_train, arrays["train-labels-idx1-ubyte"])
  np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
  # numpy float64 reference: pixels / 255, zero-pad 2 on every side, then normalize.
  pix_tr = np.pad(arrays["train-images-idx3-ubyte"] / 255.0, ((0, 0), (2, 2), (2, 2)))
  pix_te = np.pad(arrays["t10k-images-idx3-ubyte"] / 255.0, ((0, 0), (2, 2), (2, 2)))
  if normalization == "computed":
    mean, std = pix_tr.mean(), pix_tr.std()
  elif normalization == "dataset":
    mean, std = 0.2860, 0.3530
  else:  # the authors' code uses MNIST's statistics for Fashion-MNIST
    mean, std = 0.1307, 0.3081
  np.testing.assert_allclose(d.x_train[..., 0], (pix_tr - mean) / std, atol=2e-5)
  np.testing.assert_allclose(d.x_test[..., 0], (pix_te - mean) / std, atol=2e-5)
  # the padded border is exactly a black pixel in normalized units
  np.testing.assert_allclose(d.x_train[:, :2], -mean / std, atol=2e-6)


def test_no_padding_keeps_28(tmp_path):
  arrays = _fake_fashion(tmp_path / "idx")
  d = tfds_data.load_images("fashion_mnist", str(tmp_path / "tfds"), pad_to_32=False,
                            idx_dir=str(tmp_path / "idx"))
  assert d.x_train.shape == (N_TRAIN, 28, 28, 1)
  np.testing.assert_allclose(
      d.x_train[..., 0], (arrays["train-images-idx3-ubyte"] / 255.0 - 0.2860) / 0.3530,
      atol=2e-5)


def test_env_var_dir(tmp_path, monkeypatch):
  _fake_fashion(tmp_path / "env_idx", gz=False)
  monkeypatch.setenv(idx.ENV_DIR, str(tmp_path / "env_idx"))
  assert tfds_data.source("fashion_mnist", str(tmp_path / "tfds")) == (
      "idx", str(tmp_path / "env_idx"))
  tfds_data.check_available("fashion_mnist", str(tmp_path / "tfds"))  # no raise


def test_neither_present_names_the_debian_package(tmp_path):
  (tmp_path / "idx").mkdir()
  (tmp_path / "idx" / "train-images-idx3-ubyte.gz").write_bytes(b"")  # 3 files missing
  for call in (
      lambda: tfds_data.check_available("fashion_mnist", str(tmp_path / "tfds"),
                                        idx_dir=str(tmp_path / "idx")),
      lambda: data.load({"dataset": "fashion_mnist",
                         "data": {"data_dir": str(tmp_path / "tfds"),
                                  "idx_dir": str(tmp_path / "idx")}})):
    with pytest.raises(tfds_data.DatasetUnavailable) as e:
      call()
    msg = str(e.value)
    assert e.value.field == "dataset" and "\n" not in msg
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "python -m jaxdepth.data.tfds fashion_mnist" in msg  # the tfds route too
    assert str(tmp_path / "idx") in msg


def test_other_datasets_have_no_idx_route(tmp_path):
  _fake_fashion(tmp_path / "idx")
  with pytest.raises(tfds_data.DatasetUnavailable) as e:
    tfds_data.check_available("mnist", str(tmp_path / "tfds"), idx_dir=str(tmp_path / "idx"))
  assert "apt-get" not in str(e.value)


@pytest.mark.parametrize("normalization", ["dataset", "computed"])
def test_first_examples_only_equal_subsample_of_all(tmp_path, normalization):
  """num_train/num_test convert only the first examples: bit for bit what subsampling
  the whole converted set gives ('computed' statistics still from the whole split)."""
  _fake_fashion(tmp_path / "idx")
  kw = dict(normalization=normalization, idx_dir=str(tmp_path / "idx"))
  full = tfds_data.load_images("fashion_mnist", str(tmp_path / "tfds"), **kw)
  part = tfds_data.load_images("fashion_mnist", str(tmp_path / "tfds"), num_train=5,
                               num_test=3, **kw)
  want = data.subsample(full, 5, 3)
  assert part.x_train.shape[0] == 5 and part.x_test.shape[0] == 3
  for field in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(part, field), getattr(want, field))
  everything = tfds_data.load_images("fashion_mnist", str(tmp_path / "tfds"), num_train=0,
                                     num_test=None, **kw)
  np.testing.assert_array_equal(everything.x_train, full.x_train)
