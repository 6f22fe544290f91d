"""DCGAN on Fashion-MNIST (Xiao et al. 2017) through TFDS, 28x28 grayscale.

  python -m gan_jax.main --config=experiments/fashion_mnist.py --workdir=/tmp/fmnist

TFDS must be able to prepare `fashion_mnist` (internet once, or
--config.data.data_dir=DIR pointing at a prepared copy). The model and step are those
of mnist.py, so the step runs at its speed (~15 steps/s on 2 idle CPU cores). The
10,000-step run, its time and its FID are not measured.
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.data.source = "tfds"
  c.data.name = "fashion_mnist"
  c.data.image_size = 28
  c.data.channels = 1
  c.train.num_steps = 10_000
  return c
