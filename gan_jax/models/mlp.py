"""The original MLP GAN of Goodfellow et al. 2014 ("Generative Adversarial Nets").

G: z -> ReLU MLP -> tanh image. D: LeakyReLU(0.2) MLP -> one logit, so that
D(x) = sigmoid(logit). (The paper used maxout and dropout in D; LeakyReLU is the
common modern substitute.)
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
