"""MNIST-format IDX files (LeCun et al.): `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

`config.data.split` picks the files, as TFDS names MNIST's splits: 'train' reads
`train-*`, 'test' reads `t10k-*`, and 'all' concatenates both (train first).
A split whose image file is missing is an error, never a silent substitute, so
test digits cannot leak into a training set unnoticed.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from gan_jax.data.common import DataError, Dataset, conform

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
  gz = path.endswith(".gz")
  try:
    with (gzip.open if gz else open)(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:  # not gzip, cut short, corrupt, unreadable
    raise DataError(f"{path} cannot be read{' as gzip' if gz else ''}: "
                    f"{type(e).__name__}: {e}") from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
    raise DataError(f"{path} is not an IDX file (bad magic number)")
  ndim = data[3]
  if len(data) < 4 + 4 * ndim:
    raise DataError(f"{path} is truncated: its header announces {ndim} dimensions")
  shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  dtype, offset, n = np.dtype(_DTYPES[data[2]]), 4 + 4 * ndim, int(np.prod(shape))
  # compared in bytes: a multi-byte file cut mid-value is truncated too
  if len(data) - offset != n * dtype.itemsize:
    what = "is truncated" if len(data) - offset < n * dtype.itemsize else "has trailing data"
    raise DataError(f"{path} {what}: header says {shape} ({n * dtype.itemsize} bytes), "
                    f"found {len(data) - offset} bytes")
  return np.frombuffer(data, dtype=dtype, count=n, offset=offset).reshape(shape)


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
    # IDX may hold other types, but images are bytes (0-255): a float or wider
    # integer file would need a scale this reader cannot guess
    if img.dtype != np.uint8 or img.ndim not in (3, 4):
      raise DataError(f"{ip} holds {img.ndim}-D {img.dtype.name} values; an IDX image file "
                      "holds unsigned bytes (type 0x08) shaped (N, H, W) or (N, H, W, C)")
    lp = _find(folder, prefix, "labels-idx1")
    lbl = read_idx(lp) if lp else None
    if lbl is not None and (lbl.ndim != 1 or lbl.dtype.kind not in "iu"):
      raise DataError(f"{lp} holds {lbl.ndim}-D {lbl.dtype.name} values; an IDX label file "
                      "holds one integer per image")
    lbl = None if lbl is None else lbl.astype(np.int32)
    if lbl is not None and len(lbl) != len(img):
      raise DataError(f"{lp} holds {len(lbl)} labels for the {len(img)} images of {ip}")
    images.append(conform(img, cfg.image_size, cfg.channels))  # split=all: sizes may differ
    labels.append(lbl)
    used.append(os.path.basename(ip))
  x = np.concatenate(images)
  y = None if any(l is None for l in labels) else np.concatenate(labels)
  return Dataset(x, y, f"idx: {', '.join(used)}")
