"""The MLP GAN of Goodfellow et al. 2014 on MNIST, with the non-saturating loss.

  python -m gan_jax.main --config=experiments/mnist_mlp.py --workdir=/tmp/mlp \
    --config.data.source=idx --config.data.split=test --config.data.path=../shared/data/mnist

MLP G and D, no convolutions. G: 100 -> 256 -> 512 -> 1024 -> 784, each hidden
layer Dense + BatchNorm + LeakyReLU(0.2), tanh out. D: 784 -> 512 -> 256 -> 1,
LeakyReLU(0.2). This is the vanilla GAN of PyTorch-GAN (eriklindernoren,
implementations/gan/gan.py). Expected: RESULTS_PENDING
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
