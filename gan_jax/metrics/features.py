"""Feature extractors for the metrics, selected by name.

An extractor is `fn(images) -> (features, logits)` on NHWC float images in
[-1, 1] (or uint8 images in [0, 255], scaled to that); `EXTRACTORS[name]()`
builds one, and fails with one message saying how to get its weights when they
are missing. The metrics do not know which extractor made their features.

* `lenet_mnist`: a LeNet-style classifier (LeCun et al. 1998) for 28x28
  grayscale digits, trained by `scripts/train_classifier.py`; its weights ship
  in `gan_jax/metrics/weights/lenet_mnist.msgpack` (flax.serialization msgpack:
  raw arrays, no pickle, no code). Features: its 128-d penultimate activations;
  logits: its 10 classes (for the Inception Score), as TF-GAN's `mnist_score` /
  `mnist_frechet_distance` do with their MNIST classifier. Other image sizes
  and RGB are resized and averaged to 28x28x1.
* `inception_v3`: the InceptionV3 of the TensorFlow FID graph
  (metrics/inception.py), whose 2048-d pool_3 features give FIDs comparable
  with published ones. Any image size (resized to 299 as the reference does),
  1 or 3 channels. Its weights are not shipped: `scripts/convert_inception.py`
  writes them once into $GAN_JAX_CACHE (default ~/.cache/gan_jax). It gives no
  logits (None), so no Inception Score. About 3 images/s on 2 CPU cores.
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
from gan_jax.metrics import inception

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


def inception_v3(weights: str | None = None, batch_size: int = 50):
  """Weights: `weights`, else inception.weights_path() (the cache folder's)."""
  path = weights or inception.weights_path()
  if not os.path.isfile(path):
    raise FileNotFoundError(inception.missing_weights_message(path))
  return inception.make_extractor(load_params(path), batch_size)


EXTRACTORS = {"lenet_mnist": lenet_mnist, "inception_v3": inception_v3}
# Extractors whose logits are None (hence no Inception Score).
NO_LOGITS = ("inception_v3",)
# Extractors whose logits are the classes of the data they score (the ten
# digits), so the evaluation also reports the class spread (metrics/classes.py).
CLASSIFIERS = ("lenet_mnist",)


def check_weights(name: str) -> None:
  """FileNotFoundError, saying how to get them, when the default weights of
  extractor `name` are missing: for a check before any model is built."""
  if name == "inception_v3" and not os.path.isfile(inception.weights_path()):
    raise FileNotFoundError(inception.missing_weights_message(inception.weights_path()))
  if name == "lenet_mnist" and not os.path.isfile(LENET_WEIGHTS):
    raise FileNotFoundError(f"{LENET_WEIGHTS} is missing; train it with "
                            "scripts/train_classifier.py")


@functools.lru_cache(maxsize=None)
def get_extractor(name: str):
  if name not in EXTRACTORS:
    raise ValueError(f"unknown feature extractor {name!r}; valid: {', '.join(sorted(EXTRACTORS))}")
  return EXTRACTORS[name]()
