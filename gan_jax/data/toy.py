"""2-D Gaussian mixtures for the mode-collapse benchmark (see metrics/modes.py).

* ring8: 8 modes evenly spaced on a circle of radius 2, std 0.02
  (Metz et al. 2017, Unrolled GANs, Sec. 3.1; also VEEGAN and PacGAN).
* grid25: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05 (the PacGAN setting;
  VEEGAN used the same grid).

`config.data.name` picks the mixture; `config.data.max_examples` (default
100,000 when 0) is how many points are pre-sampled and kept on the device.
Points are stored as float32 of shape (N, 1, 1, 2) so the rest of the pipeline
treats them as 1x1 two-channel "images", unscaled.
"""
from __future__ import annotations

import numpy as np

from gan_jax.data.common import DataError, Dataset


def ring8():
  t = np.arange(8) * (2 * np.pi / 8)
  return 2.0 * np.stack([np.cos(t), np.sin(t)], axis=1), 0.02


def grid25():
  g = np.arange(-4.0, 5.0, 2.0)
  return np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2), 0.05


MIXTURES = {"ring8": ring8, "grid25": grid25}


def mixture(name: str):
  """(modes (M, 2), sigma) of a named mixture."""
  if name not in MIXTURES:
    raise DataError(f"config.data.name={name!r} is not a toy mixture; valid: "
                    f"{', '.join(sorted(MIXTURES))}")
  return MIXTURES[name]()


def load_toy(cfg) -> Dataset:
  modes, sigma = mixture(cfg.name)
  n = cfg.get("max_examples", 0) or 100_000
  rng = np.random.default_rng(1234)
  labels = rng.integers(0, len(modes), n)
  points = modes[labels] + rng.normal(0.0, sigma, (n, 2))
  return Dataset(points.astype(np.float32).reshape(n, 1, 1, 2), labels.astype(np.int32),
                 f"toy: {cfg.name} ({len(modes)} modes, std {sigma})")
