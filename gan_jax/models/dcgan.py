"""DCGAN (Radford et al. 2015, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks").

G: z -> Dense -> s0 x s0 x (base * 2^(n-1)) -> n stride-2 up-convolutions -> tanh,
with BatchNorm + ReLU after every layer but the last. D mirrors it: n stride-2
4x4 convolutions with LeakyReLU(0.2), BatchNorm on all but the first, then one
logit. No pooling. The start size s0 is in [4, 7], so 28 px is 7 -> 14 -> 28,
32 px is 4 -> 8 -> 16 -> 32 and 64 px is 4 -> ... -> 64.
"""
from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from gan_jax.models.layers import DCGAN_INIT, IMAGE_MAX_CHANNELS, Conv4x4s2, Upsample2x
from gan_jax.models.norm import BatchNorm


def dcgan_plan(image_size: int) -> tuple[int, int]:
  """(start size s0, number of 2x stages n) with s0 * 2**n == image_size."""
  n, s = 0, image_size
  while s > 7 and s % 2 == 0:
    n, s = n + 1, s // 2
  if n == 0 or not 4 <= s <= 7:
    raise ValueError(
        f"config.data.image_size={image_size} cannot be produced by dcgan: it must "
        "be s * 2**n with s in 4..7 and n >= 1 (e.g. 8, 16, 28, 32, 48, 56, 64, 128)")
  return s, n


def _bn(x, train: bool, axis_name, dtype, two_stage_rows: int):
  """BatchNorm of x. With axis_name='batch' the statistics are averaged across
  devices with lax.pmean under shard_map, so N devices compute what 1 device
  does. A layer of at most two_stage_rows rows (N*H*W on this device) takes its
  sums in two stages (norm.py); both layers are named BatchNorm_i."""
  rows = math.prod(x.shape[:-1])
  layer = BatchNorm if rows <= two_stage_rows else nn.BatchNorm
  return layer(use_running_average=not train, momentum=0.9, epsilon=1e-5,
               axis_name=axis_name if train else None, dtype=dtype)(x)


class DCGANGenerator(nn.Module):
  image_size: int
  channels: int
  base_features: int = 64
  upsample: str = "subpixel"
  output: str = "tanh"  # 'linear' drops the final tanh (config.model.g_output)
  patch_dots: bool = False  # the image layer as patch dots (layers.py)
  bn_two_stage_rows: int = 0  # norm.resolve_batchnorm: 0 = flax's BatchNorm everywhere
  axis_name: str | None = "batch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, y=None, *, train: bool = True):
    s0, n = dcgan_plan(self.image_size)
    feats = self.base_features * 2 ** (n - 1)
    x = nn.Dense(s0 * s0 * feats, use_bias=False, kernel_init=DCGAN_INIT,
                 dtype=self.dtype)(z.astype(self.dtype))
    x = x.reshape(z.shape[0], s0, s0, feats)
    x = nn.relu(_bn(x, train, self.axis_name, self.dtype, self.bn_two_stage_rows))
    for i in range(n - 1):
      x = Upsample2x(self.base_features * 2 ** (n - 2 - i), self.upsample,
                     dtype=self.dtype)(x)
      x = nn.relu(_bn(x, train, self.axis_name, self.dtype, self.bn_two_stage_rows))
    patches = self.patch_dots and self.channels <= IMAGE_MAX_CHANNELS
    x = Upsample2x(self.channels, "patches" if patches else self.upsample, use_bias=True,
                   dtype=self.dtype)(x)
    x = x.astype(jnp.float32)
    return jnp.tanh(x) if self.output == "tanh" else x


class DCGANDiscriminator(nn.Module):
  image_size: int
  base_features: int = 64
  patch_dots: bool = False  # input gradients (and the image layer) as patch dots (layers.py)
  bn_two_stage_rows: int = 0  # norm.resolve_batchnorm: 0 = flax's BatchNorm everywhere
  axis_name: str | None = "batch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, y=None, *, train: bool = True):
    _, n = dcgan_plan(self.image_size)
    x = x.astype(self.dtype)
    for i in range(n):
      feats, name = self.base_features * 2 ** i, f"Conv_{i}"  # the parameter tree's names
      if self.patch_dots:
        image = i == 0 and x.shape[-1] <= IMAGE_MAX_CHANNELS
        x = Conv4x4s2(feats, image, use_bias=(i == 0), dtype=self.dtype, name=name)(x)
      else:
        x = nn.Conv(feats, (4, 4), (2, 2), ((1, 1), (1, 1)), use_bias=(i == 0),
                    kernel_init=DCGAN_INIT, dtype=self.dtype, name=name)(x)
      if i > 0:
        x = _bn(x, train, self.axis_name, self.dtype, self.bn_two_stage_rows)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(1, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
