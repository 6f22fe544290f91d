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


def test_extractor_scales_uint8_images_as_the_data_holds_them():
  # data.load returns uint8 in [0, 255]; the LeNet takes [-1, 1], and was fed
  # the bytes unscaled (features ~100x too large, FID of order 1e7)
  images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  extract = get_extractor("lenet_mnist")
  feats, logits = extract(images)
  want_feats, want_logits = extract(images.astype(np.float32) / 127.5 - 1)
  np.testing.assert_allclose(feats, want_feats, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)


def test_unknown_extractor():
  with pytest.raises(ValueError, match="valid: inception_v3, lenet_mnist"):
    get_extractor("inception9")


HELD_OUT_CASES = [
    (["--split=test", "--eval_split=all"],
     "error: --eval_split='all' overlaps --split='test'; held-out data must be disjoint"),
    (["--split=train", "--eval_split=train", "--source=tfds"],
     "error: --eval_split='train' overlaps --split='train'"),
    (["--holdout=0"], "error: --holdout=0 must be positive without --eval_split"),
    (["--eval_split=test", "--source=digits"], "error: --eval_split needs --source=tfds or idx"),
]


def _train_classifier(*flags, cwd=None):
  import subprocess
  import sys
  import time
  from conftest import REPO
  start = time.monotonic()
  out = subprocess.run([sys.executable, str(REPO / "scripts" / "train_classifier.py"), *flags],
                       cwd=cwd or REPO, capture_output=True, text=True, timeout=120)
  return out, time.monotonic() - start


BAD_FLAG_CASES = [
    (["--epochs=0"], "error: --epochs=0 must be >= 1"),
    (["--epochs=-3"], "error: --epochs=-3 must be >= 1"),
    (["--batch_size=0"], "error: --batch_size=0 must be >= 1"),
    (["--lr=0"], "error: --lr=0.0 must be a positive, finite learning rate"),
    (["--lr=nan"], "error: --lr=nan must be a positive, finite learning rate"),
    (["--source=bogus"], "error: --source='bogus' is unknown; valid: digits, folder, idx, tfds"),
    (["--source=toy"], "error: --source='toy' holds no images; valid: digits, folder, idx, tfds"),
    # known only once the data is loaded: refused then, before anything is compiled
    (["--batch_size=5000"], "error: --batch_size=5000 is larger than the training set of "
                            "1597 images; use at most 1597"),
    (["--out={tmp}/a_file/w.msgpack"], "error: --out='{tmp}/a_file/w.msgpack' cannot be "
                                       "written: {tmp}/a_file is a file, not a folder"),
    (["--out={tmp}/a_file/sub/w.msgpack"], "error: --out='{tmp}/a_file/sub/w.msgpack' cannot be "
                                           "written: {tmp}/a_file is a file, not a folder"),
    (["--out={tmp}"], "error: --out='{tmp}' is a folder; give a file path, e.g. "
                      "{tmp}/lenet.msgpack"),
    (["--out="], "error: --out is empty; give the path of the .msgpack file to write"),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
  """The script run once per case of the two tests below, every case in its own
  folder and all of them started at once on two workers (each run is about a
  second of imports on one core): (cases, index) -> (CompletedProcess, folder)."""
  import concurrent.futures
  import subprocess
  import sys
  from conftest import REPO

  def held_out(flags, tmp):
    return subprocess.run([sys.executable, "scripts/train_classifier.py", *flags,
                           f"--out={tmp}/w.msgpack"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)

  def bad_flags(flags, tmp):
    (tmp / "a_file").write_bytes(b"")
    return _train_classifier("--source=digits", "--holdout=200", "--epochs=1",
                             f"--out={tmp}/w.msgpack",  # the flags below win over it
                             *[f.format(tmp=tmp) for f in flags])[0]

  jobs = {("held_out", i): (held_out, flags, tmp_path_factory.mktemp("held_out"))
          for i, (flags, _) in enumerate(HELD_OUT_CASES)}
  jobs.update({("bad_flags", i): (bad_flags, flags, tmp_path_factory.mktemp("bad_flags"))
               for i, (flags, _) in enumerate(BAD_FLAG_CASES)})
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    futures = {key: pool.submit(fn, flags, tmp) for key, (fn, flags, tmp) in jobs.items()}
    return {key: (f.result(), jobs[key][2]) for key, f in futures.items()}


@pytest.mark.parametrize("i", range(len(HELD_OUT_CASES)),
                         ids=[m for _, m in HELD_OUT_CASES])
def test_train_classifier_refuses_held_out_data_that_is_not_held_out(refusals, i):
  out, tmp_path = refusals["held_out", i]
  message = HELD_OUT_CASES[i][1]
  assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
  assert not (tmp_path / "w.msgpack").exists()


@pytest.mark.parametrize("i", range(len(BAD_FLAG_CASES)), ids=[m for _, m in BAD_FLAG_CASES])
def test_train_classifier_refuses_bad_flags_in_one_line(refusals, i):
  out, tmp_path = refusals["bad_flags", i]
  message = BAD_FLAG_CASES[i][1]
  assert out.returncode == 1 and out.stderr == message.format(tmp=tmp_path) + "\n", out.stderr
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_train_classifier_refuses_labels_the_lenet_has_no_class_for(tmp_path):
  # labels 1..20 (EMNIST letters count from 1) gave a NaN loss: NaN weights were
  # written, by default over the shipped ones, and the script exited 0
  import struct
  folder = tmp_path / "letters"
  folder.mkdir()
  n = 20
  (folder / "t10k-images-idx3-ubyte").write_bytes(
      struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + bytes(n * 28 * 28))
  (folder / "t10k-labels-idx1-ubyte").write_bytes(
      struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(range(1, n + 1)))
  out, _ = _train_classifier("--source=idx", f"--path={folder}", "--split=test",
                             "--holdout=5", "--batch_size=5", "--epochs=1",
                             f"--out={tmp_path}/w.msgpack")
  assert out.returncode == 1 and out.stderr == (
      "error: the labels of --source=idx --split='test' run from 1 to 20; the LeNet has 10 "
      "classes and needs labels 0 to 9\n"), out.stderr[-2000:]
  assert not (tmp_path / "w.msgpack").exists()


def test_train_classifier_tfds_offline_fails_fast(tmp_path):
  # TFDS itself would retry its downloads for minutes; the data_dir it names is
  # not created, and the message names this script's flags, not config keys.
  out, seconds = _train_classifier("--source=tfds", f"--data_dir={tmp_path}/tfds_empty",
                                   f"--out={tmp_path}/w.msgpack")
  assert out.returncode == 1 and seconds < 60, out.stderr[-2000:]
  assert out.stderr == (
      f"error: TFDS dataset 'mnist' is not prepared in {tmp_path}/tfds_empty and cannot be "
      "downloaded (no network). Either prepare it once where the internet is reachable and "
      "pass --data_dir=DIR, or put its source files (t10k-images-idx3-ubyte.gz, "
      "t10k-labels-idx1-ubyte.gz, train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) "
      "in a folder and pass --manual_dir=DIR\n")
  assert list(tmp_path.iterdir()) == []


def test_train_classifier_writes_a_bare_file_name_in_the_current_folder(tmp_path):
  out, _ = _train_classifier("--source=digits", "--holdout=1500", "--epochs=1",
                             "--out=w.msgpack", cwd=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "; wrote w.msgpack (" in out.stdout
  assert [p.name for p in tmp_path.iterdir()] == ["w.msgpack"]  # no .tmp left behind
  assert load_params(str(tmp_path / "w.msgpack"))["Dense_1"]["kernel"].shape == (128, 10)


def test_save_params_is_atomic(tmp_path, monkeypatch):
  from flax import serialization
  from gan_jax.metrics import features
  params = {"Dense_0": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
  path = tmp_path / "w.msgpack"
  path.write_bytes(b"the shipped weights")

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  with monkeypatch.context() as m:  # Ctrl-C while serialising
    m.setattr(serialization, "msgpack_serialize", interrupted)
    with pytest.raises(KeyboardInterrupt):
      features.save_params(params, str(path))
  assert path.read_bytes() == b"the shipped weights"
  with monkeypatch.context() as m:  # ... or once the new file is written, before the rename
    m.setattr(features.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
      features.save_params(params, str(path))
  assert path.read_bytes() == b"the shipped weights"
  assert [p.name for p in tmp_path.iterdir()] == ["w.msgpack"]  # no .tmp left behind
  features.save_params(params, str(path))
  np.testing.assert_array_equal(load_params(str(path))["Dense_0"]["kernel"],
                                params["Dense_0"]["kernel"])
  monkeypatch.chdir(tmp_path)  # a bare file name: no folder to make
  features.save_params(params, "bare.msgpack")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.msgpack", "w.msgpack"]
