"""Any TFDS image dataset by name (mnist, fashion_mnist, cifar10, ...).

TensorFlow and TFDS are imported here, lazily, only when this source is used;
every GPU is hidden from TensorFlow before it initialises, so it never takes
accelerator memory from JAX.
"""
from __future__ import annotations

import os

import numpy as np

from gan_jax.data.common import DataError, Dataset, conform, convert_image, to_pil


def import_tfds():
  """Imports TFDS with TensorFlow restricted to the CPU."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  try:
    import tensorflow as tf
  except ImportError as e:
    raise DataError("config.data.source='tfds' needs tensorflow-cpu and "
                    "tensorflow-datasets (pip install tensorflow-cpu tensorflow-datasets)") from e
  tf.config.set_visible_devices([], "GPU")
  import tensorflow_datasets as tfds
  return tfds


def _first_line(e: Exception) -> str:
  return str(e).splitlines()[0] if str(e) else ""


def load_tfds(cfg) -> Dataset:
  tfds = import_tfds()
  download_config = tfds.download.DownloadConfig(manual_dir=cfg.manual_dir or None)
  try:
    builder = tfds.builder(cfg.name, data_dir=cfg.data_dir or None)
  except Exception as e:  # unknown name
    raise DataError(f"config.data.name={cfg.name!r} is not a TFDS dataset: {e}") from e
  key, features = cfg.image_key, builder.info.features  # known before any download
  image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if key not in image_keys:
    raise DataError(f"config.data.image_key={key!r} is not an image feature of "
                    f"{cfg.name!r}; its image features: {', '.join(image_keys) or 'none'}")
  try:
    builder.download_and_prepare(download_config=download_config)
  except Exception as e:
    raise DataError(
        f"TFDS could not prepare {cfg.name!r} (offline?): {type(e).__name__}: "
        f"{_first_line(e)}. Either prepare it once where the "
        "internet is reachable and pass --config.data.data_dir=DIR, or put the "
        "dataset's original files in a folder and pass --config.data.manual_dir=DIR") from e
  try:  # the splits are known only once the dataset is prepared
    ds = builder.as_dataset(split=cfg.split, shuffle_files=False)
  except Exception as e:  # unknown split, a slice that selects nothing, ...
    raise DataError(
        f"config.data.split={cfg.split!r} cannot be read from {cfg.name!r}: "
        f"{type(e).__name__}: {_first_line(e)}; its splits: "
        f"{', '.join(map(repr, sorted(builder.info.splits))) or 'none'} (slices such as "
        "'train[:1000]' and sums such as 'train+test' work too)") from e
  # Only the image and a scalar integer label are kept: other features may vary
  # in length (cifar10_h's human_labels, bigearthnet's labels) and could not be
  # batched, and a label that is not one integer per image is not a class.
  label = features["label"] if "label" in features else None
  keep = [key] + (["label"] if label is not None and getattr(label, "shape", None) == ()
                  and np.issubdtype(label.np_dtype, np.integer) else [])
  ds = ds.map(lambda ex: {k: ex[k] for k in keep})
  images, labels = [], []
  if None in features[key].shape[:2]:
    # Images of varying size (tf_flowers, ...) cannot be batched: each one is
    # resized and cropped on its own.
    for ex in tfds.as_numpy(ds):
      images.append(convert_image(to_pil(ex[key]), cfg.image_size, cfg.channels)[None])
      if "label" in ex:
        labels.append(np.asarray(ex["label"])[None])
  else:
    for batch in tfds.as_numpy(ds.batch(1024)):
      images.append(batch[key])
      if "label" in batch:
        labels.append(batch["label"])
  x = np.concatenate(images)
  y = np.concatenate(labels).astype(np.int32) if labels else None
  return Dataset(conform(x, cfg.image_size, cfg.channels), y,
                 f"tfds: {cfg.name}[{cfg.split}] ({len(x)} images)")
