"""The MLP GAN of Goodfellow et al. 2014 on MNIST, non-saturating loss (the paper's Sec. 3).

  python -m gan_jax.main --config=experiments/mnist_mlp.py --workdir=/tmp/mlp \
    --config.data.source=idx --config.data.split=test --config.data.path=../shared/data/mnist \
    --config.eval.every=2500

MLP G and D, no convolutions: G 100-256-512-1024-784 with BatchNorm and
LeakyReLU(0.2), tanh out; D 784-512-256-1 with LeakyReLU(0.2), as PyTorch-GAN's
vanilla GAN (gan_jax/models/mlp.py says why: without BatchNorm in G, D wins
and G collapses). Expected, measured on the 10,000 MNIST test digits, seeds
0/1: LeNet FID 30.5/34.9 at 10,000 steps (1,000 vs 1,000; real-vs-real floor
7.1; about 80 at 5,000); every digit class holds 7-15% of samples
(eval/class_min, eval/class_max). The grid at 10,000 steps: varied digits,
most legible, with salt-noise speckles and some malformed strokes. 10,000 steps
took 7-9 min on 2 CPU cores shared with other jobs (22-37 steps/s).
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.model.name = "mlp"
  c.model.g_norm = "batchnorm"      # without it D wins and G collapses (model docstring)
  c.model.g_activation = "leaky_relu"
  c.model.d_hidden = (512, 256)
  c.train.loss = "non_saturating"
  c.data.source = "tfds"
  c.data.name = "mnist"
  c.train.num_steps = 10_000
  return c
