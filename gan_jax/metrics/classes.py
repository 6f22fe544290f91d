"""Class spread: how a classifier of the data's own classes (the LeNet for
digits) distributes generated samples over them.

A generator that drops modes piles its samples into a few classes long before
FID says why; the share of the rarest and of the commonest class says it
directly. On the MNIST test set itself the shares run from 8.9% (digit 5) to
11.4% (digit 1); a collapsed MLP GAN put 97% of its samples in one class.
"""
from __future__ import annotations

import numpy as np


def class_fractions(logits) -> np.ndarray:
  """(C,) fraction of the samples whose arg-max class is each of the C classes."""
  logits = np.asarray(logits)
  if logits.ndim != 2 or not len(logits):
    raise ValueError(f"need (N, C) logits with N >= 1, got shape {logits.shape}")
  if not np.isfinite(logits).all():
    raise ValueError("logits hold NaN or infinite values")
  return np.bincount(np.argmax(logits, axis=1), minlength=logits.shape[1]) / len(logits)


def class_spread(logits) -> dict[str, float]:
  """{'class_min', 'class_max'}: the rarest and the commonest class's share."""
  f = class_fractions(logits)
  return {"class_min": float(f.min()), "class_max": float(f.max())}
