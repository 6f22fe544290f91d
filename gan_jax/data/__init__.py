"""Data sources: name -> loader(config.data) -> Dataset (uint8 NHWC + labels)."""
from __future__ import annotations

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


def load(data_cfg) -> Dataset:
  ds = SOURCES[data_cfg.source](data_cfg)
  if data_cfg.get("max_examples", 0):
    ds.images = ds.images[: data_cfg.max_examples]
    ds.labels = None if ds.labels is None else ds.labels[: data_cfg.max_examples]
  return ds


__all__ = ["SOURCES", "DataError", "Dataset", "load"]
