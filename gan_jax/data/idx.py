"""MNIST-format IDX files (LeCun et al.): `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

Whichever train/t10k pairs are present in the folder are used (concatenated).
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from gan_jax.data.common import DataError, Dataset, conform

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
    raise DataError(f"{path} is not an IDX file (bad magic number)")
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  arr = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=4 + 4 * ndim)
  if arr.size != int(np.prod(shape)):
    raise DataError(f"{path} is truncated: header says {shape}, found {arr.size} values")
  return arr.reshape(shape)


def _find(folder: str, prefix: str, kind: str) -> str | None:
  for suffix in (".gz", ""):
    p = os.path.join(folder, f"{prefix}-{kind}-ubyte{suffix}")
    if os.path.exists(p):
      return p
  return None


def load_idx(cfg) -> Dataset:
  folder = cfg.path
  if not folder or not os.path.isdir(folder):
    raise DataError(f"config.data.path={folder!r} is not a folder; idx needs a folder "
                    "of MNIST IDX files such as t10k-images-idx3-ubyte.gz")
  images, labels, used = [], [], []
  for prefix in ("train", "t10k"):
    ip = _find(folder, prefix, "images-idx3")
    if ip is None:
      continue
    images.append(read_idx(ip))
    lp = _find(folder, prefix, "labels-idx1")
    labels.append(read_idx(lp).astype(np.int32) if lp else None)
    used.append(os.path.basename(ip))
  if not images:
    raise DataError(f"config.data.path={folder!r} holds no IDX image files "
                    "(expected train-images-idx3-ubyte[.gz] and/or t10k-images-idx3-ubyte[.gz])")
  x = np.concatenate(images)
  y = None if any(l is None for l in labels) else np.concatenate(labels)
  return Dataset(conform(x, cfg.image_size, cfg.channels), y, f"idx: {', '.join(used)}")
