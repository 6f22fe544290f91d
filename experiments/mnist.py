"""DCGAN (Radford et al. 2015) on MNIST, 28x28, non-saturating loss.

With TFDS (the dataset prepared once, or --config.data.data_dir):

  python -m gan_jax.main --config=experiments/mnist.py --workdir=/tmp/mnist

Offline, 2,000 steps on the 10,000-digit MNIST test set in IDX files, evaluated twice:

  python -m gan_jax.main --config=experiments/mnist.py --workdir=/tmp/m \
    --config.data.source=idx --config.data.split=test \
    --config.data.path=../shared/data/mnist --config.train.num_steps=2000 \
    --config.eval.every=1000 --config.train.log_every=50

The offline run takes 144-262 s on 2 CPU cores (the step alone: 8-15 steps/s, as busy
as the machine is) and 30-34 s on an H100. FID on LeNet features: 148.2 at step 1,000
and 90.5 at 2,000 (seed 0; real-vs-real floor 7.1; 86.8-104.3 at 2,000 over the other
seeds and convolution forms measured). Digits are recognisable from ~1,000
steps; at 2,000 about half the 64 samples are clear digits. The 10,000-step TFDS run is
not measured; BENCHMARKS.md has the step's speed on each device.
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
