"""Shared image preparation: every source returns uint8 NHWC at the configured
size and channel count; `to_signed` scales them to [-1, 1] (on the device in
training)."""
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


def to_signed(images):
  """uint8 images in [0, 255] -> float32 in [-1, 1] (numpy or JAX arrays, as
  given); float images (the 2-D toy points, images already scaled) as float32.
  The one place this scaling is written: training, evaluation, the feature
  extractors and the plots all call it."""
  if images.dtype == np.uint8:
    return images.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
  return images.astype(np.float32)


def to_pil(img: np.ndarray) -> Image.Image:
  return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def _to_8bit(im: Image.Image) -> Image.Image:
  """16-bit, 32-bit integer and float greyscale -> 8-bit 'L', rescaled.

  PIL's own convert('L') clips these modes, so a 16-bit PNG at 50% grey would
  come out white. 16-bit modes and integer images above 255 are read as 16-bit
  (divided by 257); float images must hold [0, 1] or [0, 255].
  """
  if im.mode.startswith("I"):
    a = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16") or a.max() > 255:
      a = a / 257.0
  elif im.mode == "F":
    a = np.asarray(im, np.float64)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if not (np.isfinite(a).all() and lo >= 0 and hi <= 255):
      raise DataError(f"a float image holds values in [{lo:g}, {hi:g}]; expected [0, 1] or "
                      "[0, 255]")
    if hi <= 1:
      a = a * 255.0
  else:
    return im
  return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def convert_image(im: Image.Image, size: int, channels: int) -> np.ndarray:
  """Any PIL image -> (size, size, channels) uint8: 16-bit and float greyscale
  rescaled to 8 bits, alpha (or a transparent colour) composited on white,
  shorter side resized to `size` (bicubic/area), then centre-cropped."""
  im = _to_8bit(im)
  if im.mode == "La":  # premultiplied: PIL converts it to LA only
    im = im.convert("LA")
  if im.mode in ("RGBA", "RGBa", "LA", "P", "PA") or "transparency" in im.info:
    im = im.convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(bg, im)
  target = "L" if channels == 1 else "RGB"
  try:
    im = im.convert(target)
  except ValueError:  # modes PIL converts to RGB only, e.g. a TIFF's LAB
    im = im.convert("RGB").convert(target)
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
