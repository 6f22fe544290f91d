"""Data sources: name -> loader(config.data) -> Dataset (uint8 NHWC + labels)."""
from __future__ import annotations

import numpy as np

from gan_jax.data.common import DataError, Dataset
from gan_jax.data.digits import load_digits
from gan_jax.data.folder import load_folder
from gan_jax.data.idx import load_idx
from gan_jax.data.toy import load_toy


def _tfds(cfg):
  from gan_jax.data.tfds import load_tfds  # lazy: TensorFlow only when asked for
  return load_tfds(cfg)


SOURCES = {"tfds": _tfds, "idx": load_idx, "folder": load_folder, "digits": load_digits,
           "toy": load_toy}


# config.data.labels: where the folder source reads class labels from (the
# other sources give the labels their data has).
LABELS = ("none", "folders")

# Sources without splits: one set of images, read whole.
WHOLE_SOURCES = ("folder", "digits", "toy")


def check_split(data_cfg) -> None:
  """A split asked of a source that has none is an error, not a silent read of
  the whole set as if it were that split."""
  split = data_cfg.get("split", "train")
  if data_cfg.source in WHOLE_SOURCES and split != "train":
    raise DataError(f"config.data.split={split!r}, but data.source={data_cfg.source!r} has "
                    "no splits: it reads one set of images whole; leave data.split='train' "
                    "(the default)")


def load(data_cfg) -> Dataset:
  """The source's images; with data.max_examples=N > 0, its first N in the
  source's own order (like TFDS's split='train[:N]'), not a random subset: a
  folder sorted by class keeps its first classes. Images whose pixels are all
  0 or 1 are binary and are scaled to 0 or 255, with a note in the
  description."""
  check_split(data_cfg)
  ds = SOURCES[data_cfg.source](data_cfg)
  if ds.images.dtype == np.uint8 and ds.images.size and int(ds.images.max()) == 1:
    # Binary sets stored as 0/1 bytes (TFDS's binarized_mnist, dsprites and
    # binary_alpha_digits, by their builders' code; binarised IDX files) would
    # otherwise train as [-1, -0.992]: nearly black.
    ds.images = ds.images * np.uint8(255)
    ds.description += "; its pixels are 0 or 1, scaled to 0 or 255"
  n = data_cfg.get("max_examples", 0)
  if n and n < len(ds.images):
    ds.description += f"; the first {n} of its {len(ds.images)} kept (data.max_examples)"
    ds.images = ds.images[:n]
    ds.labels = None if ds.labels is None else ds.labels[:n]
  return ds


__all__ = ["LABELS", "SOURCES", "WHOLE_SOURCES", "DataError", "Dataset", "check_split", "load"]
