"""Any folder of images (JPEG/PNG/..., any size, RGB/RGBA/grayscale), searched
recursively (symlinked folders too), e.g. the 819 Pokemon images. Unreadable
files, and images whose header claims more than twice PIL's MAX_IMAGE_PIXELS
(a decompression bomb), are skipped and counted.
Hidden files and folders (names starting with '.', e.g. Jupyter's
.ipynb_checkpoints copies or thumbnail caches) are not read.

With data.labels='folders' each image's class is its top-level sub-folder,
as torchvision's ImageFolder reads it: the sorted sub-folder names are classes
0, 1, ...; images directly in the top folder are an error. The default,
'none', reads no labels."""
from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_jax.data.common import DataError, Dataset, convert_image


def list_files(folder: str) -> list[str]:
  """Every non-hidden file below `folder`, sorted, following symlinked folders
  (each real folder is read once, so a link cycle ends)."""
  out, seen = [], set()
  for root, dirs, files in os.walk(folder, followlinks=True):
    real = os.path.realpath(root)
    if real in seen:
      dirs[:] = []
      continue
    seen.add(real)
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # walked in this order
    out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
  return out


def folder_classes(folder: str, files: list[str]) -> tuple[list[str], np.ndarray]:
  """(class names, each file's class index) from the top-level sub-folders."""
  tops = [os.path.relpath(f, folder).split(os.sep)[0] for f in files]
  loose = [f for f, top in zip(files, tops) if top == os.path.basename(f)]
  if loose:
    raise DataError(f"config.data.labels='folders' reads each image's class from its sub-folder "
                    f"of config.data.path, but {loose[0]} is in the top folder "
                    f"({len(loose)} files are); move them into class folders")
  names = sorted(set(tops))
  index = {n: i for i, n in enumerate(names)}
  return names, np.array([index[t] for t in tops], np.int32)


def load_folder(cfg) -> Dataset:
  folder = cfg.path
  if not folder or not os.path.isdir(folder):
    raise DataError(f"config.data.path={folder!r} is not a folder; the folder source "
                    "needs a directory of image files")
  files = list_files(folder)
  if not files:
    raise DataError(f"config.data.path={folder!r} is empty; put JPEG/PNG images in it")
  by_folder = cfg.get("labels", "none") == "folders"
  names, classes = folder_classes(folder, files) if by_folder else ([], None)
  images, labels, skipped = [], [], 0
  for path, label in zip(files, classes if by_folder else [None] * len(files)):
    try:
      with Image.open(path) as im:
        # the camera's orientation tag, as image viewers apply it
        images.append(convert_image(ImageOps.exif_transpose(im), cfg.image_size,
                                    cfg.channels))
        labels.append(label)
    except DataError as e:  # readable, but not as an image of a known range
      raise DataError(f"{path}: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
      skipped += 1  # (a bomb: a header claiming > 2 x PIL's MAX_IMAGE_PIXELS pixels)
  if not images:
    raise DataError(f"config.data.path={folder!r}: none of its {len(files)} files is a "
                    "readable image (JPEG/PNG/GIF/BMP/WebP)")
  if skipped:
    logging.warning("folder source: skipped %d of %d files that are not readable images",
                    skipped, len(files))
  return Dataset(np.stack(images), np.array(labels, np.int32) if by_folder else None,
                 f"folder: {len(images)} images from {folder}" +
                 (f" in {len(names)} classes (its sub-folders)" if by_folder else "") +
                 (f" ({skipped} non-image files skipped)" if skipped else ""))
