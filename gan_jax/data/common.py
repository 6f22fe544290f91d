"""Shared image preparation: every source returns uint8 NHWC at the configured
size and channel count; scaling to [-1, 1] happens on the device."""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image


class DataError(ValueError):
  """A data setting points at nothing usable."""


@dataclasses.dataclass
class Dataset:
  images: np.ndarray             # uint8, (N, H, W, C)
  labels: np.ndarray | None      # int32, (N,), when the source has them
  description: str = ""


def to_pil(img: np.ndarray) -> Image.Image:
  return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def convert_image(im: Image.Image, size: int, channels: int) -> np.ndarray:
  """Any PIL image -> (size, size, channels) uint8: alpha composited on white,
  shorter side resized to `size` (bicubic/area), then centre-cropped."""
  if im.mode in ("RGBA", "LA", "P", "PA"):
    im = im.convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(bg, im)
  im = im.convert("L" if channels == 1 else "RGB")
  w, h = im.size
  if (w, h) != (size, size):
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    im = im.crop((left, top, left + size, top + size))
  arr = np.asarray(im, dtype=np.uint8)
  return arr[..., None] if channels == 1 else arr


def conform(images: np.ndarray, size: int, channels: int) -> np.ndarray:
  """Resizes/converts a uint8 NHWC array only where it differs from the target."""
  images = np.asarray(images, np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  if images.shape[1:] == (size, size, channels):
    return images
  if images.shape[-1] == 1 and channels == 3 and images.shape[1:3] == (size, size):
    return np.repeat(images, 3, axis=-1)
  return np.stack([convert_image(to_pil(x), size, channels) for x in images])
