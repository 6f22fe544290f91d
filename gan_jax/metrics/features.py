"""Feature extractors for the metrics, selected by name.

`lenet_mnist` is a LeNet-style classifier (LeCun et al. 1998) for 28x28
grayscale digits, trained by `scripts/train_classifier.py`; its weights ship in
`gan_jax/metrics/weights/lenet_mnist.msgpack` (flax.serialization msgpack: raw
arrays, no pickle, no code). The metrics use its penultimate activations as
features and its logits for the Inception Score, as TF-GAN's `mnist_score` /
`mnist_frechet_distance` do with their MNIST classifier.

An extractor is `fn(images) -> (features, logits)` on NHWC float images in
[-1, 1] (or uint8 images in [0, 255], scaled to that); `EXTRACTORS[name]()`
builds one. Adding an Inception extractor means adding an entry here; the
metrics do not change.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from flax import serialization

from gan_jax.data.common import to_signed
from gan_jax.files import atomic_write

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
LENET_WEIGHTS = os.path.join(WEIGHTS_DIR, "lenet_mnist.msgpack")


class LeNet(nn.Module):
  """conv5-32, pool, conv5-64, pool, dense-128 (features), dense-10 (logits)."""
  num_classes: int = 10
  feature_dim: int = 128

  @nn.compact
  def __call__(self, x):
    x = nn.max_pool(nn.relu(nn.Conv(32, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
    x = nn.max_pool(nn.relu(nn.Conv(64, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
    feats = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
    return feats, nn.Dense(self.num_classes)(feats)


def to_lenet_input(images) -> jax.Array:
  """Any NHWC [-1, 1] images -> 28x28x1 (channel mean, bilinear resize).
  uint8 images (what gan_jax.data.load returns) are scaled from [0, 255] first."""
  x = jnp.asarray(images)
  # fed unscaled, the data's own uint8 images gave features ~100x too large
  # (LeNet FID 4.9e7 between two MNIST halves, against 5.3 when scaled)
  x = to_signed(x)
  if x.shape[-1] != 1:
    x = jnp.mean(x, axis=-1, keepdims=True)
  if x.shape[1:3] != (28, 28):
    x = jax.image.resize(x, (x.shape[0], 28, 28, 1), "bilinear")
  return x


def save_params(params, path: str) -> None:
  """Writes `path` atomically (via path + ".tmp"): a failure or Ctrl-C leaves
  the file that was there, such as the shipped weights, as it was."""
  blob = serialization.msgpack_serialize(jax.device_get(params))
  if os.path.dirname(path):  # a bare file name is written in the current folder
    os.makedirs(os.path.dirname(path), exist_ok=True)
  with atomic_write(path, "wb") as f:
    f.write(blob)


def load_params(path: str):
  with open(path, "rb") as f:
    return serialization.msgpack_restore(f.read())


def lenet_mnist(weights: str = LENET_WEIGHTS, batch_size: int = 1000):
  if not os.path.exists(weights):
    raise FileNotFoundError(f"{weights} is missing; train it with scripts/train_classifier.py")
  params = load_params(weights)
  model = LeNet()
  apply = jax.jit(lambda p, x: model.apply({"params": p}, to_lenet_input(x)))

  def extract(images):
    images = np.asarray(images)
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
      f, l = apply(params, images[i:i + batch_size])
      feats.append(np.asarray(f))
      logits.append(np.asarray(l))
    return np.concatenate(feats), np.concatenate(logits)

  return extract


EXTRACTORS = {"lenet_mnist": lenet_mnist}
# Extractors whose logits are the classes of the data they score (the ten
# digits), so the evaluation also reports the class spread (metrics/classes.py).
CLASSIFIERS = ("lenet_mnist",)


@functools.lru_cache(maxsize=None)
def get_extractor(name: str):
  if name not in EXTRACTORS:
    raise ValueError(f"unknown feature extractor {name!r}; valid: {', '.join(sorted(EXTRACTORS))}")
  return EXTRACTORS[name]()
