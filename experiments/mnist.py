"""DCGAN (Radford et al. 2015) on MNIST, non-saturating loss, 28x28.

With TFDS (needs the dataset prepared once, or --config.data.data_dir):

  python -m gan_jax.main --config=experiments/mnist.py --workdir=/tmp/mnist

Offline, on the 10,000-digit MNIST test set in IDX files:

  python -m gan_jax.main --config=experiments/mnist.py --workdir=/tmp/m \
    --config.data.source=idx --config.data.path=../shared/data/mnist \
    --config.train.num_steps=2000

Expect ~8 steps/s on a 2-core CPU (batch 64), so 2,000 steps in about 4-5
minutes; digits are recognisable in the samples from ~1,000 steps on.
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.data.source = "tfds"
  c.data.name = "mnist"
  c.data.image_size = 28
  c.data.channels = 1
  c.model.name = "dcgan"
  c.train.loss = "non_saturating"
  c.train.num_steps = 10_000
  return c
