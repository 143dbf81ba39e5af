"""Loaders through tfds.testing.mock_data (same code path as real data), and digits."""

import functools
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxdepth.data import embedded
from jaxdepth.data import tfds as tfds_data
from jaxdepth.engine.validate import ConfigError

N = 12


def _mock():
  return tfds.testing.mock_data(num_examples=N, policy=tfds.testing.MockPolicy.USE_CODE)


def _raw(name, split):
  """Independent read of the mocked split: uint8 images, as tfds returns them."""
  src = tfds.data_source(name, split=split)
  return np.stack([np.asarray(src[i]["image"]) for i in range(len(src))])


@pytest.mark.parametrize("name", sorted(tfds_data.KNOWN_TFDS))
def test_loader_through_mock_data(name):
  info = tfds_data.KNOWN_TFDS[name]
  with _mock():
    d = tfds_data.load_tfds(name, download=True)
    raw_train, raw_test = _raw(name, "train"), _raw(name, "test")
  shape = tfds_data.image_shape(name)
  assert d.name == name and d.num_classes == info.num_classes == tfds_data.num_classes(name)
  assert d.x_train.shape == (N,) + shape and d.x_test.shape == (N,) + shape
  assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32
  assert d.y_train.dtype == np.int32 and d.y_test.dtype == np.int32
  for y in (d.y_train, d.y_test):
    assert y.shape == (N,) and y.min() >= 0 and y.max() < d.num_classes
  # Normalization: x * std + mean recovers the (zero-padded) pixels / 255.
  mean, std = (np.asarray(s, np.float64) for s in info.stats)
  for x, raw in ((d.x_train, raw_train), (d.x_test, raw_test)):
    pix = raw.astype(np.float64) / 255.0
    if shape[0] != raw.shape[1]:
      pad = (shape[0] - raw.shape[1]) // 2
      pix = np.pad(pix, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    np.testing.assert_allclose(x * std + mean, pix, atol=1e-5)
  assert "tensorflow" not in sys.modules  # reading never imports TensorFlow


def test_normalization_modes_and_padding():
  with _mock():
    ref = tfds_data.load_tfds("cifar10", download=True, normalization="reference")
    own = tfds_data.load_tfds("cifar10", download=True)
    comp = tfds_data.load_tfds("cifar10", download=True, normalization="computed")
    mn = tfds_data.load_tfds("mnist", download=True)
    mn28 = tfds_data.load_tfds("mnist", download=True, pad_to_32=False)
  # reference = authors' code: CIFAR-100 statistics applied to CIFAR-10
  m100, s100 = (np.asarray(s) for s in tfds_data.CIFAR100_STATS)
  m10, s10 = (np.asarray(s) for s in tfds_data.KNOWN_TFDS["cifar10"].stats)
  np.testing.assert_allclose(ref.x_train * s100 + m100, own.x_train * s10 + m10, atol=1e-5)
  # computed: per-channel mean 0 and std 1 on the (un-augmented) train split
  np.testing.assert_allclose(comp.x_train.mean((0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(comp.x_train.std((0, 1, 2)), 1.0, atol=1e-5)
  # MNIST: 28 -> 32 zero padding before normalization; the border is (0 - mean) / std
  assert mn28.x_train.shape[1:] == (28, 28, 1) and mn.x_train.shape[1:] == (32, 32, 1)
  np.testing.assert_allclose(mn.x_train[:, 2:30, 2:30], mn28.x_train, atol=1e-6)
  np.testing.assert_allclose(mn.x_train[:, :2], -0.1307 / 0.3081, rtol=1e-6)


def _one_line(err):
  msg = str(err)
  assert "\n" not in msg
  return msg


def test_offline_missing_dataset_is_one_line(tmp_path):
  # Real TFDS, empty data_dir, download off: fails before reading anything.
  with pytest.raises(tfds_data.DatasetUnavailable) as e:
    tfds_data.load_tfds("cifar10", data_dir=str(tmp_path), download=False)
  msg = _one_line(e.value)
  assert "'cifar10'" in msg and str(tmp_path) in msg
  assert f"python -m jaxdepth.data.tfds cifar10 --data_dir {tmp_path}" in msg
  assert list(tmp_path.iterdir()) == []  # nothing written
  with pytest.raises(tfds_data.DatasetUnavailable):
    tfds_data.check_available("svhn_cropped", data_dir=str(tmp_path))
  # The same check under mock_data (nothing prepared there either).
  with _mock(), pytest.raises(tfds_data.DatasetUnavailable, match="'mnist'"):
    tfds_data.load_tfds("mnist", download=False)
  tfds_data.check_available("digits")  # embedded: always available


def test_unknown_name_lists_known():
  with pytest.raises(ConfigError) as e:
    tfds_data.load_tfds("imagenet2012")
  msg = _one_line(e.value)
  assert msg.startswith("config.dataset:")
  for name in list(tfds_data.KNOWN_TFDS) + ["digits"]:
    assert name in msg
  with pytest.raises(ConfigError, match="data.normalization"):
    tfds_data.load_tfds("mnist", normalization="zscore")


def test_digits_split_fixed_by_seed():
  d = embedded.load_digits(seed=0, test_fraction=0.2)
  assert d.name == "digits" and d.num_classes == 10
  assert d.x_train.shape[1:] == (8, 8, 1) == tfds_data.image_shape("digits")
  assert d.x_train.shape[0] + d.x_test.shape[0] == 1797
  assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
  np.testing.assert_allclose(d.x_train.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(d.x_train.std(), 1.0, atol=1e-5)
  counts = np.bincount(d.y_test, minlength=10)
  assert counts.min() >= 35 and counts.max() <= 37  # stratified, 20% of ~180 per class
  again = embedded.load_digits(seed=0, test_fraction=0.2)
  np.testing.assert_array_equal(again.x_test, d.x_test)
  other = embedded.load_digits(seed=1, test_fraction=0.2)
  assert not np.array_equal(other.x_test, d.x_test)
  flat = embedded.load_digits(seed=0, test_fraction=0.2, as_image=False)
  np.testing.assert_array_equal(flat.x_train, d.x_train.reshape(-1, 64))
  # train + test is a partition of the 1,797 images: as multisets of rows, the union
  # equals sklearn's data up to the (monotone) standardization.
  from sklearn.datasets import load_digits
  raw = load_digits().data / 16.0
  both = np.concatenate([flat.x_train, flat.x_test]).astype(np.float64)
  rows = lambda a: a[np.lexsort(a.T[::-1])]
  sr, sb = rows(raw), rows(both)
  scale, shift = np.polyfit(sr.ravel(), sb.ravel(), 1)
  np.testing.assert_allclose(sb, scale * sr + shift, atol=1e-5)
  with pytest.raises(ConfigError, match="test_fraction"):
    embedded.load_digits(test_fraction=1.0)


PAPER_CONFIGS = ("mnist_conv", "fashion_mnist_conv", "cifar10_conv", "svhn_conv",
                 "cifar10_resnet18_top", "digits_conv")


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_validate_and_build(name):
  """Each config passes validation and its network fits the dataset's images."""
  import importlib

  import jax
  import jax.numpy as jnp

  from jaxdepth import nets
  from jaxdepth.papers.minimal_depth import train

  c = importlib.import_module(f"jaxdepth.configs.{name}").get_config()
  train.validate(c)
  shape = tfds_data.image_shape(c.dataset)
  for depth in sorted(set(c.sweep_depths or (c.depth,)))[::-1][:1]:  # deepest
    net = nets.build(train.model_cfg(c, depth, c.width), shape,
                     tfds_data.num_classes(c.dataset))
    v = jax.eval_shape(net.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
    logits, feats, _ = jax.eval_shape(functools.partial(net.apply, train=False), v, x)
    assert logits.shape == (2, tfds_data.num_classes(c.dataset))
    assert sum(f.shape[0] for f in feats) == net.num_layers


def test_tiny_mnist_conv_run_end_to_end_on_mock_data(tmp_path):
  """configs/mnist_conv.py, shrunk, through data.load -> tfds -> trainer -> analysis."""
  import json

  from jaxdepth.configs import mnist_conv
  from jaxdepth.papers.minimal_depth import train

  c = mnist_conv.get_config()
  c.sweep_depths, c.depth, c.width = (), 2, 4
  c.num_seeds, c.epochs, c.batch_size, c.eval_every = 1, 1, 8, 1
  c.analysis_batch, c.rank_samples, c.progress, c.plots = 8, 8, False, False
  c.augment = ("crop", "flip")
  with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
    train.run(c, str(tmp_path))
  run = json.loads((tmp_path / "summary.json").read_text())["runs"][0]
  assert len(run["ncc_train_acc"]) == 2 and run["layers"] == ["conv1", "conv2"]
