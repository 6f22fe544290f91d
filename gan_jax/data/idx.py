"""MNIST-format IDX files (LeCun et al.): `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

`config.data.split` picks the files, as TFDS names MNIST's splits: 'train' reads
`train-*`, 'test' reads `t10k-*`, and 'all' concatenates both (train first).
A split whose image file is missing is an error, never a silent substitute, so
test digits cannot leak into a training set unnoticed.
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
    what = "is truncated" if arr.size < int(np.prod(shape)) else "has trailing data"
    raise DataError(f"{path} {what}: header says {shape}, found {arr.size} values")
  return arr.reshape(shape)


def _find(folder: str, prefix: str, kind: str) -> str | None:
  for suffix in (".gz", ""):
    p = os.path.join(folder, f"{prefix}-{kind}-ubyte{suffix}")
    if os.path.exists(p):
      return p
  return None


SPLITS = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}


def present(folder: str) -> list[str]:
  """The file prefixes ('train', 't10k') whose image file is in `folder`."""
  return [p for p in ("train", "t10k") if _find(folder, p, "images-idx3")]


def load_idx(cfg) -> Dataset:
  folder = cfg.path
  if not folder or not os.path.isdir(folder):
    raise DataError(f"config.data.path={folder!r} is not a folder; idx needs a folder "
                    "of MNIST IDX files such as t10k-images-idx3-ubyte.gz")
  split = cfg.get("split", "train")
  if split not in SPLITS:
    raise DataError(f"config.data.split={split!r} is not an idx split; valid: "
                    f"{', '.join(map(repr, SPLITS))}")
  have = present(folder)
  images, labels, used = [], [], []
  for prefix in SPLITS[split]:
    ip = _find(folder, prefix, "images-idx3")
    if ip is None:
      why = (f"it has only the {' and '.join(have)} files; use config.data.split="
             f"{'test' if have == ['t10k'] else 'train'!r}" if have
             else "it holds no IDX image files")
      raise DataError(f"config.data.split={split!r} needs {prefix}-images-idx3-ubyte[.gz] "
                      f"in config.data.path={folder!r}, but {why}")
    img = read_idx(ip)
    lp = _find(folder, prefix, "labels-idx1")
    lbl = read_idx(lp).astype(np.int32) if lp else None
    if lbl is not None and len(lbl) != len(img):
      raise DataError(f"{lp} holds {len(lbl)} labels for the {len(img)} images of {ip}")
    images.append(img)
    labels.append(lbl)
    used.append(os.path.basename(ip))
  x = np.concatenate(images)
  y = None if any(l is None for l in labels) else np.concatenate(labels)
  return Dataset(conform(x, cfg.image_size, cfg.channels), y, f"idx: {', '.join(used)}")
