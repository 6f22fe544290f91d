"""The base experiment config, and its validation in one place.

`validate` runs before anything is compiled, loaded or written, and raises
`ConfigError` with one line naming the setting and what would be valid.
"""
from __future__ import annotations

import json
import os

import ml_collections

from gan_jax import data, losses, models
from gan_jax.models.layers import UPSAMPLE_METHODS


class ConfigError(ValueError):
  """An invalid setting; the message is one line, naming the setting."""


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by every experiment; experiments override what differs."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = dict(name="dcgan", z_dim=100, g_features=64, d_features=64, upsample="auto",
                 g_hidden=(256, 512, 1024), d_hidden=(1024, 512, 256))
  c.data = dict(source="tfds", name="mnist", split="train", image_key="image", path="",
                data_dir="", manual_dir="", image_size=28, channels=1, max_examples=0)
  c.train = dict(loss="non_saturating", batch_size=64, num_steps=10_000, d_steps=1,
                 g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999, steps_per_call=1,
                 compute_dtype="float32", log_every=100, sample_every=500)
  c.checkpoint = dict(every=1000, keep=3)
  return ml_collections.ConfigDict(c)


def _choice(name: str, value, valid) -> None:
  if value not in valid:
    raise ConfigError(f"config.{name}={value!r} is unknown; valid: {', '.join(sorted(valid))}")


def _positive(config, *names: str) -> None:
  for name in names:
    value = config
    for part in name.split("."):
      value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
      raise ConfigError(f"config.{name}={value!r} must be a positive number")


def validate(config, num_devices: int = 1) -> None:
  """Checks every setting that can be checked without loading data or compiling."""
  _choice("model.name", config.model.name, models.MODELS)
  _choice("train.loss", config.train.loss, losses.LOSSES)
  _choice("data.source", config.data.source, data.SOURCES)
  _choice("train.compute_dtype", config.train.compute_dtype, models.DTYPES)
  _choice("model.upsample", config.model.upsample, UPSAMPLE_METHODS)
  _positive(config, "model.z_dim", "model.g_features", "model.d_features",
            "data.image_size", "train.batch_size", "train.num_steps", "train.d_steps",
            "train.g_lr", "train.d_lr", "train.steps_per_call", "train.log_every",
            "train.sample_every", "checkpoint.every", "checkpoint.keep")
  for name in ("model.g_hidden", "model.d_hidden"):
    sizes = config.model[name.split(".")[1]]
    if not sizes or any(not isinstance(h, int) or h <= 0 for h in sizes):
      raise ConfigError(f"config.{name}={sizes!r} must be a non-empty list of positive ints")
  for b in ("b1", "b2"):
    if not 0 <= config.train[b] < 1:
      raise ConfigError(f"config.train.{b}={config.train[b]!r} must be in [0, 1)")
  if config.data.channels not in (1, 3):
    raise ConfigError(f"config.data.channels={config.data.channels!r} must be 1 or 3")
  if config.train.batch_size % num_devices:
    raise ConfigError(
        f"config.train.batch_size={config.train.batch_size} is not divisible by the "
        f"{num_devices} devices; use a multiple of {num_devices}")
  if config.model.name == "dcgan":
    try:
      models.dcgan_plan(config.data.image_size)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  if config.data.source in ("idx", "folder"):
    path = config.data.path
    if not path or not os.path.isdir(path):
      raise ConfigError(f"config.data.path={path!r} is not an existing folder; "
                        f"data.source={config.data.source!r} reads its files from one")
    if not os.listdir(path):
      raise ConfigError(f"config.data.path={path!r} is an empty folder")


def to_dict(config) -> dict:
  """A JSON-round-trippable plain dict (tuples become lists)."""
  return json.loads(config.to_json())
