"""Nearest real images of generated samples, in pixel space or in a feature
extractor's space: the usual check that a GAN is not reproducing its training
set. Used by gan_jax.analysis."""
from __future__ import annotations

import numpy as np

from gan_jax.data.common import to_signed

SPACES = ("pixel", "feature")


def _embed(images, space: str, extractor: str, batch_size: int) -> np.ndarray:
  images = np.asarray(images)
  # uint8 (what gan_jax.data.load returns) -> the [-1, 1] scale of G's samples
  images = to_signed(images) if images.dtype == np.uint8 else images
  images = images.astype(np.float32)
  if space == "pixel":
    return images.reshape(len(images), -1)
  if images.shape[-1] != 1 and extractor == "lenet_mnist":
    raise ValueError(f"space='feature' uses the {extractor} digit classifier and needs "
                     f"grayscale images; these have {images.shape[-1]} channels "
                     "(use space='pixel')")
  from gan_jax.metrics.features import get_extractor
  return np.concatenate([get_extractor(extractor)(images[i:i + batch_size])[0]
                         for i in range(0, len(images), batch_size)])


def nearest_neighbors(samples, real, k: int = 5, space: str = "pixel",
                      batch_size: int = 256, extractor: str = "lenet_mnist",
                      block: int = 4096):
  """For each sample, the k nearest images of `real` by Euclidean distance in
  pixels or in the extractor's feature space (the features FID uses). Float
  images are taken to be in [-1, 1]; uint8 images are scaled to it.
  Returns (indices (n, k) into `real`, distances (n, k)), nearest first.
  Distances are computed in blocks of batch_size x block, so memory stays small."""
  if space not in SPACES:
    raise ValueError(f"space={space!r} is unknown; valid: {', '.join(SPACES)}")
  if not 1 <= k <= len(real):
    raise ValueError(f"k={k} must be between 1 and the number of real images ({len(real)})")
  if np.shape(samples)[1:] != np.shape(real)[1:]:
    raise ValueError(f"samples {np.shape(samples)[1:]} and real images "
                     f"{np.shape(real)[1:]} differ in shape")
  a = _embed(samples, space, extractor, batch_size).astype(np.float64)
  b = _embed(real, space, extractor, batch_size).astype(np.float64)
  b2 = np.sum(b * b, axis=1)
  idx_out, dist_out = [], []
  for i in range(0, len(a), batch_size):
    ai = a[i:i + batch_size]
    a2 = np.sum(ai * ai, axis=1, keepdims=True)
    best_d = np.full((len(ai), 0), np.inf)
    best_i = np.zeros((len(ai), 0), np.int64)
    for j in range(0, len(b), block):
      d = np.maximum(a2 + b2[None, j:j + block] - 2.0 * ai @ b[j:j + block].T, 0.0)
      cand_d = np.concatenate([best_d, d], axis=1)
      cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(j, j + d.shape[1]), d.shape)],
                              axis=1)
      order = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
      best_d = np.take_along_axis(cand_d, order, 1)
      best_i = np.take_along_axis(cand_i, order, 1)
    idx_out.append(best_i)
    dist_out.append(np.sqrt(best_d))
  return np.concatenate(idx_out), np.concatenate(dist_out).astype(np.float32)
