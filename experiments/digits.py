"""Offline quickstart: DCGAN on scikit-learn's 1,797 real 8x8 handwritten digits.

Needs no download (the digits ship inside scikit-learn):

  python -m gan_jax.main --config=experiments/digits.py --workdir=/tmp/gan_digits

Expect 15-40 s on a 2-core CPU for 3,000 steps (17 s idle, 2026-11-26).
`samples/step_00003000.png` shows 64 coarse 8x8 digits, many legible (0, 2, 4,
6, 7), some smudged; D(x) and D(G(z)) settle near 0.50 and 0.49.
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.data.source = "digits"
  c.data.image_size = 8
  c.model.g_features = 64
  c.model.d_features = 64
  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.sample_every = 500
  c.checkpoint.every = 1000
  return c
