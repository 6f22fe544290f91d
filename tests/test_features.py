"""The shipped LeNet extractor and image-level metric sanity checks on real MNIST."""
import numpy as np
import pytest

from gan_jax import data, metrics
from gan_jax.metrics.features import LENET_WEIGHTS, get_extractor, load_params
from conftest import MNIST_DIR, needs, tiny_config


@pytest.fixture(scope="module")
def mnist():
  c = tiny_config(**{"data.source": "idx", "data.split": "test", "data.path": str(MNIST_DIR),
                     "data.image_size": 28})
  ds = data.load(c.data)
  return ds.images.astype(np.float32) / 127.5 - 1, ds.labels


def test_weights_are_plain_msgpack_arrays():
  with open(LENET_WEIGHTS, "rb") as f:
    head = f.read(2)
  # a msgpack fixmap whose first key is a fixstr ("Conv_0"); a pickle would
  # start with the PROTO opcode 0x80 followed by a small protocol number
  assert head[0] & 0xF0 == 0x80 and head[1] & 0xE0 == 0xA0
  params = load_params(LENET_WEIGHTS)
  assert params["Dense_1"]["kernel"].shape == (128, 10)


@needs(MNIST_DIR)
def test_lenet_held_out_accuracy(mnist):
  x, y = mnist
  held_out = np.random.default_rng(0).permutation(len(x))[:1000]  # as train_classifier.py
  feats, logits = get_extractor("lenet_mnist")(x[held_out])
  assert feats.shape == (1000, 128) and logits.shape == (1000, 10)
  assert np.mean(np.argmax(logits, -1) == y[held_out]) >= 0.98


@needs(MNIST_DIR)
def test_fid_ladder_on_noisy_real_images(mnist):
  x, _ = mnist
  extract = get_extractor("lenet_mnist")
  ref, _ = extract(x[:1000])
  rng = np.random.default_rng(0)
  fids = []
  for std in (0.0, 0.1, 0.25, 0.5, 1.0):
    noisy = np.clip(x[1000:2000] + rng.normal(0, std, x[1000:2000].shape), -1, 1)
    fids.append(metrics.fid(ref, extract(noisy)[0]))
  assert all(a < b for a, b in zip(fids, fids[1:])), fids


@needs(MNIST_DIR)
def test_inception_score_of_real_digits_is_near_ten(mnist):
  x, _ = mnist
  _, logits = get_extractor("lenet_mnist")(x[:2000])
  is_mean, _ = metrics.inception_score(logits)
  assert 8.5 < is_mean <= 10.0


def test_unknown_extractor():
  with pytest.raises(ValueError, match="valid: lenet_mnist"):
    get_extractor("inception_v3")


@pytest.mark.parametrize("flags, message", [
    (["--split=test", "--eval_split=all"],
     "error: --eval_split='all' overlaps --split='test'; held-out data must be disjoint"),
    (["--split=train", "--eval_split=train", "--source=tfds"],
     "error: --eval_split='train' overlaps --split='train'"),
    (["--holdout=0"], "error: --holdout=0 must be positive without --eval_split"),
    (["--eval_split=test", "--source=digits"], "error: --eval_split needs --source=tfds or idx"),
])
def test_train_classifier_refuses_held_out_data_that_is_not_held_out(flags, message, tmp_path):
  import subprocess
  import sys
  from conftest import REPO
  out = subprocess.run([sys.executable, "scripts/train_classifier.py", *flags,
                        f"--out={tmp_path}/w.msgpack"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
  assert not (tmp_path / "w.msgpack").exists()
