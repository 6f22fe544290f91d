import functools

import numpy as np
import pytest
from PIL import Image

from gan_jax import data
from gan_jax.data.common import DataError, convert_image
from gan_jax.data.idx import read_idx
from conftest import MNIST_DIR, POKEMON_DIR, needs, tiny_config

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _cfg(**kw):
  return tiny_config(**{f"data.{k}": v for k, v in kw.items()}).data


@needs(MNIST_DIR)
def test_idx_reads_the_real_mnist_test_set():
  ds = data.load(_cfg(source="idx", split="test", path=str(MNIST_DIR), image_size=28,
                      channels=1))
  assert ds.images.shape == (10000, 28, 28, 1) and ds.images.dtype == np.uint8
  assert np.bincount(ds.labels).tolist() == MNIST_TEST_COUNTS
  assert ds.images.max() == 255 and ds.images.min() == 0
  assert "t10k-images-idx3-ubyte.gz" in ds.description


def test_idx_writes_and_reads_both_pairs(tmp_path):
  import gzip
  def write(name, arr, code):
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(tmp_path / name, "wb") as f:
      f.write(header + arr.tobytes())
  imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
  write("train-images-idx3-ubyte.gz", imgs[:3], 0x08)
  write("train-labels-idx1-ubyte.gz", np.array([1, 2, 3], np.uint8), 0x08)
  write("t10k-images-idx3-ubyte.gz", imgs[3:], 0x08)
  write("t10k-labels-idx1-ubyte.gz", np.array([4, 5], np.uint8), 0x08)
  def load(split):
    return data.load(_cfg(source="idx", split=split, path=str(tmp_path), image_size=28,
                          channels=1))
  ds = load("all")
  np.testing.assert_array_equal(ds.images[..., 0], imgs)
  assert ds.labels.tolist() == [1, 2, 3, 4, 5]
  # each split reads only its own files: test digits never leak into 'train'
  assert load("train").labels.tolist() == [1, 2, 3]
  np.testing.assert_array_equal(load("test").images[..., 0], imgs[3:])
  with pytest.raises(DataError, match="config.data.split='validation' is not an idx split"):
    load("validation")
  # a label file that does not match its images is an error, not a shifted label
  write("t10k-labels-idx1-ubyte.gz", np.array([4], np.uint8), 0x08)
  with pytest.raises(DataError, match="holds 1 labels for the 2 images"):
    load("test")
  # a missing split names the files that are there and the split to use
  for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    (tmp_path / f).unlink()
  with pytest.raises(DataError, match="has only the t10k files; use config.data.split='test'"):
    load("train")
  with pytest.raises(DataError, match="needs train-images-idx3-ubyte"):
    load("all")
  # a truncated file is reported, not silently read
  (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
      __import__("gzip").compress(bytes([0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 28, 0, 0, 0, 28])))
  with pytest.raises(DataError, match="truncated"):
    read_idx(str(tmp_path / "t10k-images-idx3-ubyte.gz"))


@needs(POKEMON_DIR)
def test_folder_reads_the_819_pokemon_at_64px_rgb():
  ds = data.load(_cfg(source="folder", path=str(POKEMON_DIR), image_size=64, channels=3))
  assert ds.images.shape == (819, 64, 64, 3) and ds.images.dtype == np.uint8
  # white backgrounds: the corner pixels are (nearly) white in most images
  assert np.median(ds.images[:, 0, 0, :]) >= 250
  assert ds.labels is None


def test_folder_any_mode_and_size_and_skips_non_images(tmp_path):
  Image.new("RGBA", (40, 20), (255, 0, 0, 0)).save(tmp_path / "transparent.png")
  Image.new("L", (10, 30), 0).save(tmp_path / "gray.jpg")
  Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / "blue.png")
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / "sub").mkdir()
  Image.new("P", (16, 16), 0).save(tmp_path / "sub" / "palette.gif")
  (tmp_path / ".ipynb_checkpoints").mkdir()  # Jupyter's copies: hidden, not read
  Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / ".ipynb_checkpoints" / "b-checkpoint.png")
  Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / ".hidden.png")
  ds = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=3))
  assert ds.images.shape == (4, 8, 8, 3)
  assert "1 non-image files skipped" in ds.description
  by_name = dict(zip(["blue", "gray", "transparent", "sub/palette"], ds.images))
  assert (by_name["transparent"] == 255).all()          # alpha composited on white
  assert (by_name["blue"][..., 2] == 255).all() and (by_name["blue"][..., 0] == 0).all()
  gray = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1))
  assert gray.images.shape == (4, 8, 8, 1)


def _write_idx(path, arr, code, raw=b""):
  import gzip
  header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
  with gzip.open(path, "wb") as f:
    f.write(raw or header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


@pytest.mark.parametrize("case,pattern", [
    ("float32 images", r"holds 3-D float32 values; an IDX image file holds unsigned bytes"),
    ("labels as images", r"holds 1-D uint8 values; an IDX image file holds unsigned bytes"),
    ("float labels", r"labels-idx1-ubyte.gz holds 1-D float32 values; an IDX label file"),
    ("cut short", r"images-idx3-ubyte.gz cannot be read as gzip: EOFError"),
    ("not gzip", r"images-idx3-ubyte.gz cannot be read as gzip: BadGzipFile"),
    ("corrupt gzip", r"images-idx3-ubyte.gz cannot be read as gzip: error: Error -3"),
    ("header only", r"images-idx3-ubyte.gz is truncated: its header announces 3 dimensions"),
    ("int32 labels cut mid-value",
     r"labels-idx1-ubyte.gz is truncated: header says \(4,\) \(16 bytes\), found 15 bytes"),
    ("trailing bytes", r"images-idx3-ubyte.gz has trailing data: header says \(4, 8, 8\) "
                       r"\(256 bytes\), found 257 bytes"),
])
def test_idx_bad_files_get_one_line_errors(tmp_path, case, pattern):
  """Every malformed IDX file is a DataError naming it, never a traceback or a
  silent cast (float pixels in [0, 1] would all but vanish as uint8)."""
  imgs = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
  images, labels = tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
  _write_idx(images, imgs, 0x08)
  if case == "float32 images":
    _write_idx(images, imgs.astype(np.float32) / 255, 0x0D)
  elif case == "labels as images":
    _write_idx(images, np.arange(4, dtype=np.uint8), 0x08)
  elif case == "float labels":
    _write_idx(labels, np.arange(4, dtype=np.float32), 0x0D)
  elif case == "cut short":
    images.write_bytes(images.read_bytes()[:30])
  elif case == "corrupt gzip":  # a valid gzip header, then damaged deflate data
    raw = bytearray(images.read_bytes())
    raw[20:40] = bytes(b ^ 0xFF for b in raw[20:40])
    images.write_bytes(bytes(raw))
  elif case == "not gzip":
    images.write_bytes(bytes([0, 0, 8, 3]) + imgs.tobytes())
  elif case == "header only":
    _write_idx(images, imgs, 0x08, raw=bytes([0, 0, 8, 3, 0, 0]))
  elif case == "int32 labels cut mid-value":  # a partial last value, not a whole one
    lbl = np.arange(4, dtype=">i4")
    _write_idx(labels, lbl, 0x0C, raw=bytes([0, 0, 0x0C, 1, 0, 0, 0, 4]) + lbl.tobytes()[:-1])
  elif case == "trailing bytes":
    _write_idx(images, imgs, 0x08, raw=bytes([0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 8])
               + imgs.tobytes() + b"\0")
  with pytest.raises(DataError, match=pattern) as e:
    data.load(_cfg(source="idx", split="test", path=str(tmp_path), image_size=8, channels=1))
  assert "\n" not in str(e.value)


def test_folder_follows_symlinked_folders_once_and_skips_decompression_bombs(tmp_path):
  real = tmp_path / "real"
  (real / "inner").mkdir(parents=True)
  Image.new("RGB", (16, 16), (0, 0, 255)).save(real / "inner" / "blue.png")
  root = tmp_path / "root"
  root.mkdir()
  Image.new("RGB", (16, 16), (255, 0, 0)).save(root / "red.png")
  (root / "linked").symlink_to(real)
  (real / "inner" / "loop").symlink_to(real)  # a cycle: each real folder is read once
  # a PNG whose header claims 20000 x 20000 pixels (> 2 x PIL's MAX_IMAGE_PIXELS)
  import zlib
  png = (root / "red.png").read_bytes()  # IHDR: length, b"IHDR", width, height, ... CRC
  ihdr = b"IHDR" + (20000).to_bytes(4, "big") * 2 + png[24:29]
  bomb = png[:8] + png[8:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + png[33:]
  (root / "zbomb.png").write_bytes(bomb)
  with pytest.raises(Image.DecompressionBombError):  # a valid header, as PIL reads it
    Image.open(root / "zbomb.png")
  ds = data.load(_cfg(source="folder", path=str(root), image_size=8, channels=3))
  assert ds.images.shape == (2, 8, 8, 3)
  assert [tuple(x[0, 0]) for x in ds.images] == [(255, 0, 0), (0, 0, 255)]  # red, linked/
  assert "(1 non-image files skipped)" in ds.description


def test_max_examples_keeps_the_first_n_and_says_so(tmp_path):
  for i in range(5):
    Image.new("L", (8, 8), 40 * i).save(tmp_path / f"{i}.png")
  ds = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1,
                      max_examples=3))
  assert [int(x[0, 0, 0]) for x in ds.images] == [0, 40, 80]
  assert ds.description.endswith("; the first 3 of its 5 kept (data.max_examples)")
  whole = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1,
                         max_examples=9))
  assert len(whole.images) == 5 and "kept (data.max_examples)" not in whole.description


def test_binary_images_stored_as_0_or_1_are_scaled_to_0_or_255(tmp_path):
  rng = np.random.default_rng(0)
  bits = rng.integers(0, 2, (3, 8, 8), dtype=np.uint8)
  for i, b in enumerate(bits):
    Image.fromarray(b, "L").save(tmp_path / f"{i}.png")
  ds = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1))
  np.testing.assert_array_equal(ds.images[..., 0], bits * 255)
  assert ds.description.endswith("; its pixels are 0 or 1, scaled to 0 or 255")
  Image.fromarray(np.full((8, 8), 2, np.uint8), "L").save(tmp_path / "3.png")  # not binary
  ds = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1))
  assert ds.images.max() == 2 and "scaled to 0 or 255" not in ds.description


def test_folder_errors(tmp_path):
  with pytest.raises(DataError, match="config.data.path"):
    data.load(_cfg(source="folder", path=str(tmp_path / "missing")))
  with pytest.raises(DataError, match="is empty"):
    data.load(_cfg(source="folder", path=str(tmp_path)))
  (tmp_path / "a.txt").write_text("x")
  with pytest.raises(DataError, match="none of its 1 files"):
    data.load(_cfg(source="folder", path=str(tmp_path)))


def test_lab_and_premultiplied_alpha_images_convert_to_both_channel_counts():
  lab = Image.new("RGB", (8, 8), (200, 100, 50)).convert("LAB")  # a TIFF's LAB, say
  assert abs(int(convert_image(lab, 8, 1)[0, 0, 0]) - 124) <= 2  # ITU-R 601 luma
  assert np.abs(convert_image(lab, 8, 3)[0, 0].astype(int) - [200, 100, 50]).max() <= 2
  clear = Image.new("RGBA", (8, 8), (200, 100, 50, 0))
  for im in (clear.convert("RGBa"), clear.convert("LA").convert("La")):
    for channels in (1, 3):  # transparent: composited on white, like RGBA and LA
      assert (convert_image(im, 8, channels) == 255).all(), (im.mode, channels)


def test_idx_split_all_conforms_train_and_test_files_of_different_sizes(tmp_path):
  _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.full((3, 8, 8), 255, np.uint8), 0x08)
  _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 10, 10), np.uint8), 0x08)
  ds = data.load(_cfg(source="idx", split="all", path=str(tmp_path), image_size=8,
                      channels=1))
  assert ds.images.shape == (5, 8, 8, 1) and ds.labels is None
  assert (ds.images[:3] == 255).all() and (ds.images[3:] == 0).all()


@pytest.mark.parametrize("source", ["folder", "digits", "toy"])
def test_a_split_of_a_source_without_splits_is_an_error(tmp_path, source):
  Image.new("L", (8, 8), 0).save(tmp_path / "a.png")
  with pytest.raises(DataError, match=rf"config.data.split='test', but data.source="
                                      rf"'{source}' has no splits"):
    data.load(_cfg(source=source, split="test", path=str(tmp_path), name="ring8"))


def test_convert_image_centre_crops():
  im = Image.new("L", (30, 10), 0)
  im.paste(255, (10, 0, 20, 10))  # bright middle third
  out = convert_image(im, 10, 1)
  assert out.shape == (10, 10, 1) and out.min() >= 250  # only the middle survives


def test_digits():
  ds = data.load(_cfg(source="digits", image_size=8, channels=1))
  assert ds.images.shape == (1797, 8, 8, 1) and ds.images.max() == 255
  assert np.bincount(ds.labels).sum() == 1797
  big = data.load(_cfg(source="digits", image_size=16, channels=3, max_examples=100))
  assert big.images.shape == (100, 16, 16, 3)


def test_tfds_through_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load(_cfg(source="tfds", name="mnist", split="train", image_size=28, channels=1))
  assert ds.images.shape == (20, 28, 28, 1) and ds.images.dtype == np.uint8
  assert ds.labels.shape == (20,)
  import tensorflow as tf
  assert tf.config.get_visible_devices("GPU") == []


def test_tfds_images_of_varying_size_and_a_wrong_image_key():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    flowers = data.load(_cfg(source="tfds", name="tf_flowers", split="train", image_size=16,
                             channels=3))
    for key in ("img", "label"):  # absent, and present but not an image
      with pytest.raises(DataError, match=f"config.data.image_key='{key}' is not an image "
                                          "feature of 'mnist'; its image features: image"):
        data.load(_cfg(source="tfds", name="mnist", split="train", image_key=key))
  assert flowers.images.shape == (6, 16, 16, 3) and flowers.images.dtype == np.uint8
  assert flowers.labels.shape == (6,)


def test_tfds_fixed_size_images_beside_variable_length_features():
  """cifar10_h: 32x32 images with per-example lists of human labels, which
  cannot be batched; only the image and the class label are read."""
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load(_cfg(source="tfds", name="cifar10_h", split="test", image_size=32,
                        channels=3))
  assert ds.images.shape == (12, 32, 32, 3) and ds.images.dtype == np.uint8
  assert ds.labels.shape == (12,) and ds.labels.dtype == np.int32


@functools.cache
def _prepared_tfds_name() -> str:
  """A registered TFDS builder that prepares offline (20 random 28x28 digits
  in 'train' and 'test'): the real TFDS code path, splits included, which
  mock_data does not check."""
  from tensorflow_datasets import testing

  class GanJaxDummyDigits(testing.DummyMnist, skip_registration=False):
    pass
  return GanJaxDummyDigits.name


def test_tfds_bad_split_names_the_setting_and_the_valid_splits(tmp_path):
  """A mistyped TFDS split is a split error naming data.split and the
  dataset's splits, not a 'could not prepare (offline?)' download error."""
  pytest.importorskip("tensorflow_datasets")
  name = _prepared_tfds_name()
  def load(split):
    return data.load(_cfg(source="tfds", name=name, split=split, data_dir=str(tmp_path),
                          image_size=28, channels=1))
  assert load("train[:3]").images.shape == (3, 28, 28, 1)  # prepares it, offline
  for split, why in (("tran", "Unknown split 'tran'"), ("train[:0]", "corresponds to no data")):
    with pytest.raises(DataError) as e:
      load(split)
    msg = str(e.value)
    assert msg.startswith(f"config.data.split={split!r} cannot be read from {name!r}: ")
    assert why in msg and msg.endswith("its splits: 'test', 'train' (slices such as "
                                       "'train[:1000]' and sums such as 'train+test' work too)")
    assert "offline" not in msg and "\n" not in msg


def test_import_gan_jax_does_not_import_tensorflow():
  import subprocess, sys
  code = ("import sys, gan_jax, gan_jax.train, gan_jax.data, gan_jax.metrics; "
          "print('tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


def test_folder_rescales_16_bit_and_float_greyscale_and_applies_exif_orientation(tmp_path):
  Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "a_grey16.png")
  Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "b_float.tiff")
  # a tRNS transparent colour on a greyscale PNG is composited on white like alpha
  Image.new("L", (8, 8), 0).save(tmp_path / "c_trns.png", transparency=0)
  # 4x8 landscape pixels, tagged "rotate 90 CW to view": a viewer shows 8x4 portrait
  im = Image.new("L", (8, 4), 0)
  im.paste(255, (0, 0, 4, 4))  # left half white
  exif = Image.Exif()
  exif[0x0112] = 6
  im.save(tmp_path / "d_exif.jpg", exif=exif, quality=100)
  ds = data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1))
  grey16, grey_float, trns, rotated = ds.images[..., 0]
  assert abs(int(grey16.mean()) - 128) <= 1       # not clipped to 255
  assert abs(int(grey_float.mean()) - 128) <= 1   # not clipped to 0
  assert trns.min() == 255
  # after the rotation the white half is on top (rows), not on the left (columns)
  assert rotated[:4].mean() > 200 and rotated[4:].mean() < 50


def test_folder_names_a_float_image_outside_the_known_ranges(tmp_path):
  Image.new("L", (8, 8), 0).save(tmp_path / "a.png")
  Image.fromarray(np.full((8, 8), 1000.0, np.float32)).save(tmp_path / "b.tiff")
  with pytest.raises(DataError, match=r"b\.tiff: a float image holds values in \[1000, 1000\]; "
                                      r"expected \[0, 1\] or \[0, 255\]"):
    data.load(_cfg(source="folder", path=str(tmp_path), image_size=8, channels=1))


def _folder_cfg(path, labels):
  c = tiny_config(**{"data.source": "folder", "data.labels": labels})
  c.data.path = str(path)
  return c.data


def test_folder_reads_class_labels_from_sub_folder_names_when_asked(tmp_path):
  # as torchvision's ImageFolder: the sorted sub-folder names are classes 0, 1, ...
  for cls, n in (("zebra", 2), ("cat", 3)):
    (tmp_path / cls / "deeper").mkdir(parents=True)
    for i in range(n):
      Image.new("L", (8, 8), 40 * i).save(tmp_path / cls / f"{i}.png")
  Image.new("L", (8, 8), 9).save(tmp_path / "zebra" / "deeper" / "x.png")  # still a zebra
  ds = data.load(_folder_cfg(tmp_path, "folders"))
  assert ds.labels.dtype == np.int32
  assert sorted(ds.labels.tolist()) == [0, 0, 0, 1, 1, 1]  # cat: 3, zebra: 2 + 1 deeper
  assert "in 2 classes" in ds.description
  assert data.load(_folder_cfg(tmp_path, "none")).labels is None  # the default
  Image.new("L", (8, 8), 0).save(tmp_path / "loose.png")
  with pytest.raises(DataError, match=r"loose\.png is in the top folder"):
    data.load(_folder_cfg(tmp_path, "folders"))


def test_data_labels_is_validated_before_anything_loads():
  from gan_jax.config import ConfigError, validate
  with pytest.raises(ConfigError, match=r"config\.data\.labels='dirs' is unknown; valid: "
                                        r"folders, none"):
    validate(tiny_config(**{"data.labels": "dirs"}))
  with pytest.raises(ConfigError, match=r"config\.data\.labels='folders' is for "
                                        r"data\.source='folder'"):
    validate(tiny_config(**{"data.labels": "folders"}))


def test_one_scaling_from_uint8_to_signed_floats():
  from gan_jax.data.common import to_signed
  x = np.array([0, 1, 127, 128, 255], np.uint8)
  got = to_signed(x)
  assert got.dtype == np.float32 and got[0] == -1.0 and got[-1] == 1.0
  np.testing.assert_allclose(got, x / 127.5 - 1, atol=1e-6)
  import jax.numpy as jnp
  np.testing.assert_array_equal(np.asarray(to_signed(jnp.asarray(x))), got)  # same on device
  pts = np.array([[3.5, -2.0]], np.float64)  # float data (toy points) as it is
  assert to_signed(pts).dtype == np.float32 and to_signed(pts)[0, 0] == 3.5
