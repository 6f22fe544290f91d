"""Offline quickstart: DCGAN on scikit-learn's 1,797 real 8x8 handwritten digits.

The digits ship inside scikit-learn, so nothing is downloaded:

  python -m gan_jax.main --config=experiments/digits.py --workdir=/tmp/gan_digits

Expect 3,000 steps in 15-40 s on 2 CPU cores (17-25 s when nothing else runs; not
measured on a GPU). D(x) and D(G(z)) settle near 0.5. samples/step_00003000.png shows
64 blocky white-on-black digits: a few legible (0, 2, 5, 7, 9), most digit-like
strokes (docs/digits.png is that grid).
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
