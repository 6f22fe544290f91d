"""scikit-learn's bundled handwritten digits (UCI ML hand-written digits, 1,797
real 8x8 images with 17 grey levels): the offline default for the quickstart.
Ships inside the scikit-learn wheel, so it needs no download."""
from __future__ import annotations

import numpy as np

from gan_jax.data.common import Dataset, conform


def load_digits(cfg) -> Dataset:
  from sklearn.datasets import load_digits as sk_load_digits
  d = sk_load_digits()
  images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return Dataset(conform(images, cfg.image_size, cfg.channels), d.target.astype(np.int32),
                 "digits: scikit-learn 8x8 handwritten digits (1,797 images)")
