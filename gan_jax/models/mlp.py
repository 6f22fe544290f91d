"""The MLP GAN of Goodfellow et al. 2014 ("Generative Adversarial Nets").

G: z -> Dense MLP -> tanh image (`output="linear"` for the 2-D toy points).
D: LeakyReLU(0.2) MLP -> one logit, D(x) = sigmoid(logit). (The paper used
maxout and dropout in D; LeakyReLU is the common modern substitute.)

`norm="batchnorm"` puts BatchNorm (Ioffe & Szegedy 2015) after each hidden
Dense of G (its bias dropped), as PyTorch-GAN's vanilla GAN does
(eriklindernoren, implementations/gan/gan.py, with LeakyReLU(0.2)); the MNIST
experiments use it, with `activation="leaky_relu"` and a 512-256 D.

Why (measured on the 10,000 MNIST test digits, seed 0; LeNet FID of 1,000
samples against 1,000 digits, floor 7.1; class shares by the LeNet;
docs/mlp_gan_curves.png plots the curves):
* A ReLU G without normalisation against a 1024-512-256 D loses. With the
  minimax loss D wins by step 1,000 (D(x) 0.998, D(G(z)) 0.0035), G's gradient
  norm falls from 1.1 to 0.06 (2e-4 by step 3,500), and G emits one speckled
  blob: FID 1,273 at 5,000 steps. With the non-saturating loss G keeps its
  gradient (norm 4 to 18) but chases D: 97.6% of samples in one class, FID
  1,124 at 5,000 steps.
* BatchNorm + LeakyReLU in G alone (same D, non-saturating): digits, but D
  still gains (D(x) 0.74, D(G(z)) 0.26 at 5,000 steps): FID 133 at 5,000
  steps, digit 0 at 0.8% of samples.
* With the 512-256 D as well, D(x) and D(G(z)) stay near 0.55 and 0.45 and
  both losses learn: FID 30.5 (non-saturating) and 29.2 (minimax) at 10,000
  steps, seed 1 34.9 and 30.8, every class between 7% and 15% of samples.
At 1,000 samples the FID of one generator moves by about 6 either way between
latent sets (29.1 to 41.2 for the first run over five seeds of z).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import flax.linen as nn


ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2)}
NORMS = ("none", "batchnorm")


class MLPGenerator(nn.Module):
  image_shape: tuple[int, int, int]
  hidden: Sequence[int] = (256, 512, 1024)
  output: str = "tanh"   # "linear" for unbounded data such as the 2-D toy points
  norm: str = "none"     # "batchnorm": BatchNorm after each hidden Dense
  activation: str = "relu"
  axis_name: str | None = "batch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, y=None, *, train: bool = True):
    x = z.astype(self.dtype)
    act = ACTIVATIONS[self.activation]
    for h in self.hidden:
      # no bias before BatchNorm, which removes it (and Adam would amplify its
      # float-noise gradient into arbitrary steps)
      x = nn.Dense(h, use_bias=self.norm == "none", dtype=self.dtype)(x)
      if self.norm == "batchnorm":
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         axis_name=self.axis_name if train else None, dtype=self.dtype)(x)
      x = act(x)
    size = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
    x = nn.Dense(size, dtype=self.dtype)(x).astype(jnp.float32)
    x = jnp.tanh(x) if self.output == "tanh" else x
    return x.reshape((z.shape[0],) + tuple(self.image_shape))


class MLPDiscriminator(nn.Module):
  """With pack=m, D judges m samples at once, concatenated (PacGAN, Lin et al.
  2018), and returns N/m logits; packing penalises mode collapse."""
  hidden: Sequence[int] = (1024, 512, 256)
  pack: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, y=None, *, train: bool = True):
    x = x.reshape(x.shape[0] // self.pack, -1).astype(self.dtype)
    for h in self.hidden:
      x = nn.leaky_relu(nn.Dense(h, dtype=self.dtype)(x), 0.2)
    return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
