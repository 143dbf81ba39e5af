"""The engine moved every experiment's loop; outputs must equal those recorded before.

tests/data/reference_outputs.json holds summary.json of `configs/tiny.py` (collapse)
and `configs/incremental/matrix_sensing.py:tiny`, written by the pre-engine code
(commit 60f3c97, `jaxdepth train ...`, one CPU device). Here they run on the test
session's 4 simulated devices, so this also checks that sharding leaves results alone.
"""

import json
import math
import os

import numpy as np
import pytest

from jaxdepth import cli

REF = json.load(open(os.path.join(os.path.dirname(__file__), "data",
                                  "reference_outputs.json")))


def _close(a, b, path, rtol, atol):
  if isinstance(a, dict):
    keys = lambda d: {k for k in d if "wall" not in k}
    # Every recorded output is still there and equal; outputs added since (the NC
    # metrics) are not in the recording.
    assert keys(a) <= keys(b), (path, keys(a) - keys(b))
    for k in keys(a):
      _close(a[k], b[k], f"{path}.{k}", rtol, atol)
  elif isinstance(a, list):
    assert len(a) == len(b), path
    for i, (x, y) in enumerate(zip(a, b)):
      _close(x, y, f"{path}[{i}]", rtol, atol)
  elif isinstance(a, float) or isinstance(b, float):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
      assert a == b or (a is None and b is None) or (math.isnan(a) and math.isnan(b)), path
    else:
      np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=path)
  else:
    assert a == b, f"{path}: {a!r} != {b!r}"


def _run(tmp_path, config, *extra):
  wd = str(tmp_path / "run")
  assert cli.main(["train", "--config", config, "--workdir", wd,
                   "--config.progress=False", *extra]) == 0
  return json.load(open(os.path.join(wd, "summary.json")))


def test_collapse_tiny_unchanged(tmp_path):
  got = _run(tmp_path, "configs/tiny.py")
  got.pop("wall_time_s", None)
  # CDNV/rank are ratios of float32 sums: allow float32 rounding, counts exact.
  _close(REF["collapse_tiny"], got, "collapse", rtol=2e-4, atol=1e-6)


@pytest.mark.slow
def test_incremental_matrix_sensing_tiny_unchanged(tmp_path):
  got = _run(tmp_path, "configs/incremental/matrix_sensing.py:tiny")
  _close(REF["matrix_sensing_tiny"], {k: v for k, v in got.items() if "wall" not in k},
         "matrix_sensing", rtol=1e-9, atol=1e-12)
