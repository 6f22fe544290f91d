"""The base experiment config, and its validation in one place.

`validate` runs before anything is compiled, loaded or written, and raises
`ConfigError` with one line naming the setting and what would be valid.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import socket
import threading

import ml_collections

from gan_jax import data, losses, models, penalties
from gan_jax.models.layers import PATCH_DOTS, UPSAMPLE_METHODS
from gan_jax.models.mlp import ACTIVATIONS, NORMS as MLP_NORMS
from gan_jax.models.norm import BATCHNORM


class ConfigError(ValueError):
  """An invalid setting; the message is one line, naming the setting."""


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by every experiment; experiments override what differs."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = dict(name="dcgan", z_dim=100, g_features=64, d_features=64, upsample="auto",
                 patch_dots="auto", batchnorm="auto", g_hidden=(256, 512, 1024),
                 d_hidden=(1024, 512, 256), g_output="tanh", d_pack=1,
                 g_norm="none", g_activation="relu")
  c.data = dict(source="tfds", name="mnist", split="train", image_key="image", path="",
                data_dir="", manual_dir="", image_size=28, channels=1, max_examples=0,
                labels="none")
  c.train = dict(loss="non_saturating", batch_size=64, num_steps=10_000, d_steps=1,
                 g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999, steps_per_call=1,
                 lr_decay="none", compute_dtype="float32", log_every=100, sample_every=500)
  # A penalty on D (penalties.py), added every `every` D updates with weight x every.
  c.penalty = dict(name="none", weight=10.0, every=1)
  # eval.every=0 turns evaluation off; num_real=0 means "as many as num_samples".
  c.eval = dict(every=0, num_samples=1000, num_real=0, extractor="lenet_mnist", seed=0)
  c.checkpoint = dict(every=1000, keep=3, best_metric="eval/fid", best_mode="min")
  return ml_collections.ConfigDict(c)


def _choice(name: str, value, valid) -> None:
  if value not in valid:
    raise ConfigError(f"config.{name}={value!r} is unknown; valid: {', '.join(sorted(valid))}")


def _positive(config, *names: str) -> None:
  for name in names:
    value = config
    for part in name.split("."):
      value = value[part]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
        or not math.isfinite(value) or value <= 0):
      raise ConfigError(f"config.{name}={value!r} must be a positive number")


def _nonnegative_int(config, *names: str) -> None:
  for name in names:
    section, key = name.split(".")
    value = config[section][key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ConfigError(f"config.{name}={value!r} must be an integer >= 0 (0: all / default)")


# The largest k-NN the image metrics use is density/coverage's k=5, which needs
# at least k+1 points on each side.
MIN_EVAL_SAMPLES = 6


def validate(config, num_devices: int = 1, data_files: bool = True) -> None:
  """Checks every setting that can be checked without loading data or compiling.
  `data_files=False` skips the checks of the data's files (data.split, data.path),
  for a caller that trains on synthetic images (scripts/benchmark.py)."""
  validate_generator(config)
  _choice("train.loss", config.train.loss, losses.LOSSES)
  _choice("data.source", config.data.source, data.SOURCES)
  _positive(config, "model.z_dim", "model.g_features", "model.d_features",
            "data.image_size", "train.batch_size", "train.num_steps", "train.d_steps",
            "train.g_lr", "train.d_lr", "train.steps_per_call", "train.log_every",
            "train.sample_every", "checkpoint.every", "checkpoint.keep")
  for name in ("model.g_hidden", "model.d_hidden"):
    sizes = config.model[name.split(".")[1]]
    # a boolean is an int to Python: (True, 8) built a 1-unit layer silently
    if not sizes or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in sizes):
      raise ConfigError(f"config.{name}={sizes!r} must be a non-empty list of positive ints")
  for b in ("b1", "b2"):
    value = config.train[b]
    if not isinstance(value, (int, float)) or not 0 <= value < 1:  # None: not a TypeError
      raise ConfigError(f"config.train.{b}={config.train[b]!r} must be in [0, 1)")
  _choice("train.lr_decay", config.train.lr_decay, ("none", "linear"))
  _validate_penalty(config.penalty)
  _choice("data.labels", config.data.labels, data.LABELS)
  if config.data.labels != "none" and config.data.source != "folder":
    raise ConfigError(f"config.data.labels={config.data.labels!r} is for data.source='folder' "
                      "(the other sources give their own labels); leave it 'none'")
  _choice("checkpoint.best_mode", config.checkpoint.best_mode, ("min", "max"))
  _positive(config, "model.d_pack", "eval.num_samples")
  _nonnegative_int(config, "data.max_examples", "eval.num_real")
  for name in ("seed", "eval.seed"):
    value = config.seed if name == "seed" else config.eval.seed
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
      # PRNGKey keeps 32 bits without jax_enable_x64: 2**32 + 5 would replay seed 5
      raise ConfigError(f"config.{name}={value!r} must be an integer in [0, 2**32)")
  if config.data.source == "toy":
    if (config.data.image_size, config.data.channels, config.model.name) != (1, 2, "mlp"):
      raise ConfigError("data.source='toy' needs config.data.image_size=1, "
                        "config.data.channels=2 and config.model.name='mlp' (2-D points)")
    if config.model.g_output != "linear":
      raise ConfigError(f"config.model.g_output={config.model.g_output!r} cannot reach the toy "
                        "modes, which lie outside (-1, 1); use 'linear'")
  elif config.data.channels not in (1, 3):
    raise ConfigError(f"config.data.channels={config.data.channels!r} must be 1 or 3")
  local = config.train.batch_size // num_devices
  if config.model.d_pack > 1 and (config.model.name != "mlp" or local % config.model.d_pack):
    raise ConfigError(f"config.model.d_pack={config.model.d_pack} needs model.name='mlp' and "
                      f"a per-device batch ({local}) divisible by it")
  every = config.eval.every
  if not isinstance(every, int) or every < 0 or every % config.train.steps_per_call:
    raise ConfigError(f"config.eval.every={config.eval.every} must be 0 (off) or a positive "
                      f"multiple of config.train.steps_per_call={config.train.steps_per_call}")
  if config.eval.every:
    _validate_eval(config)
  if config.train.batch_size % num_devices:
    raise ConfigError(
        f"config.train.batch_size={config.train.batch_size} is not divisible by the "
        f"{num_devices} devices; use a multiple of {num_devices}")
  k = config.train.steps_per_call
  for name in ("checkpoint.every", "train.sample_every"):
    section, key = name.split(".")
    if config[section][key] % k:
      raise ConfigError(f"config.{name}={config[section][key]} must be a multiple of "
                        f"config.train.steps_per_call={k} (resumed runs stay exact)")
  if config.model.name == "dcgan":
    try:
      models.dcgan_plan(config.data.image_size)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  try:
    data.check_split(config.data)
  except data.DataError as e:
    raise ConfigError(str(e)) from None
  if data_files and config.data.source == "idx":
    from gan_jax.data.idx import SPLITS
    _choice("data.split", config.data.split, SPLITS)
  if data_files and config.data.source in ("idx", "folder"):
    path = config.data.path
    if not path or not os.path.isdir(path):
      raise ConfigError(f"config.data.path={path!r} is not an existing folder; "
                        f"data.source={config.data.source!r} reads its files from one")
    if not os.listdir(path):
      raise ConfigError(f"config.data.path={path!r} is an empty folder")


def _validate_eval(config) -> None:
  """The settings of an evaluating run (eval.every > 0)."""
  from gan_jax.evaluate import check_sizes, eval_keys  # no TensorFlow, no weights loaded
  from gan_jax.metrics.features import EXTRACTORS, check_weights
  if config.data.source != "toy":
    _choice("eval.extractor", config.eval.extractor, EXTRACTORS)
    try:  # before training, not at its first evaluation
      check_weights(config.eval.extractor)
    except FileNotFoundError as e:
      raise ConfigError(f"config.eval.extractor={config.eval.extractor!r}: {e}") from None
    check_sizes(config)
  if config.checkpoint.best_metric:
    _choice("checkpoint.best_metric", config.checkpoint.best_metric, eval_keys(config))


def _validate_penalty(p) -> None:
  _choice("penalty.name", p.name, (penalties.NONE, *penalties.PENALTIES))
  w = p.weight
  if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
    raise ConfigError(f"config.penalty.weight={w!r} must be a number >= 0")
  if isinstance(p.every, bool) or not isinstance(p.every, int) or p.every < 1:
    raise ConfigError(f"config.penalty.every={p.every!r} must be an integer >= 1 (1: every "
                      "D update; N: every N-th, weighted N times, as in StyleGAN2)")


def validate_generator(config) -> None:
  """The settings that building a saved run's generator reads, for the tools
  that load a run without training it (gan_jax.analysis, scripts/sample.py,
  scripts/export.py): a run saved by another version of gan_jax, or a config
  edited by hand, fails here with one line naming the setting, not a KeyError
  from a registry."""
  _choice("model.name", config.model.name, models.MODELS)
  _choice("train.compute_dtype", config.train.compute_dtype, models.DTYPES)
  _choice("model.upsample", config.model.upsample, UPSAMPLE_METHODS)
  _choice("model.patch_dots", config.model.get("patch_dots", "auto"), PATCH_DOTS)
  _choice("model.batchnorm", config.model.get("batchnorm", "auto"), BATCHNORM)
  _choice("model.g_output", config.model.g_output, ("tanh", "linear"))
  _choice("model.g_norm", config.model.get("g_norm", "none"), MLP_NORMS)
  _choice("model.g_activation", config.model.get("g_activation", "relu"), ACTIVATIONS)


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
  """Whether `host` accepts a connection, known within 2 x timeout seconds. The
  socket timeout does not bound the DNS lookup before it, which can hang for
  tens of seconds on a machine whose resolver is unreachable, so the probe runs
  in a daemon thread that is abandoned after that."""
  reached = []

  def probe():
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
      reached.append(True)
    except OSError:
      pass

  thread = threading.Thread(target=probe, daemon=True, name="gan_jax-online-probe")
  thread.start()
  thread.join(2 * timeout)
  return bool(reached)


def check_tfds_available(data_cfg) -> None:
  """For data.source='tfds': fails in seconds, not minutes, when the dataset
  cannot be had. TFDS retries a failed download with backoff for ~3.5 minutes,
  so without a network we refuse unless the dataset is already prepared in
  data_dir or manual_dir holds every source file. Writes nothing."""
  if data_cfg.source != "tfds":
    return
  try:  # without TensorFlow: these checks need none, and importing it takes seconds
    import tensorflow_datasets as tfds
  except ImportError:
    from gan_jax.data.tfds import import_tfds
    import_tfds()  # raises DataError saying what to install
    raise
  from absl import logging as absl_logging
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)  # "... has no dataset_info.json"
  try:
    _check_tfds(tfds, data_cfg)
  finally:
    absl_logging.set_verbosity(verbosity)


def _check_tfds(tfds, d) -> None:
  try:
    builder = tfds.builder(d.name, data_dir=d.data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    close = difflib.get_close_matches(
        d.name, tfds.list_builders(with_community_datasets=False), n=3)
    hint = (f"did you mean {', '.join(close)}?" if close
            else "see https://www.tensorflow.org/datasets/catalog/overview")
    raise ConfigError(f"config.data.name={d.name!r} is not a TFDS dataset; {hint}") from None
  if builder.is_prepared():
    return
  try:
    files = sorted({info.filename or url.rsplit("/", 1)[-1]
                    for url, info in (builder.url_infos or {}).items()})
  except Exception:  # datasets without a checksum list
    files = []
  missing = [f for f in files if not (d.manual_dir and
                                      os.path.exists(os.path.join(d.manual_dir, f)))]
  if (files and not missing) or _online():
    return
  where = getattr(builder, "data_dir_root", builder.data_dir)
  need = f"({', '.join(missing)})" if missing else "(see the dataset's TFDS page)"
  raise data.DataError(
      f"TFDS dataset {d.name!r} is not prepared in {where} and cannot be downloaded "
      "(no network). Either prepare it once where the internet is reachable and pass "
      f"--config.data.data_dir=DIR, or put its source files {need} in a folder and pass "
      "--config.data.manual_dir=DIR")


# Saved configs (config.json, checkpoints, export cards) carry this number, so
# that a setting whose meaning changed is read as it was meant when saved.
# 1 (no number; before 2026-11-26): the idx source ignored data.split and read
#   every train/t10k pair present; DCGAN ignored model.g_output (always tanh).
# 2: both settings are honoured.
CONFIG_VERSION = 2
VERSION_KEY = "config_version"


def saved_dict(config) -> dict:
  """to_dict(config) with the config version, for writing beside a run."""
  return {**to_dict(config), VERSION_KEY: CONFIG_VERSION}


def upgrade(saved: dict) -> dict:
  """A saved config dict (without its version) in today's meaning."""
  saved = json.loads(json.dumps(saved))  # a deep copy
  if saved.pop(VERSION_KEY, 1) >= 2:
    return saved
  d, m = saved.get("data", {}), saved.get("model", {})
  if m.get("name") == "dcgan":
    m["g_output"] = "tanh"
  if d.get("source") == "idx" and d.get("path") and os.path.isdir(d["path"]):
    from gan_jax.data.idx import present
    d["split"] = {("train",): "train", ("t10k",): "test"}.get(tuple(present(d["path"])), "all")
  return saved


def from_dict(saved: dict) -> ml_collections.ConfigDict:
  """A saved (JSON) config on top of today's defaults, so runs saved before a
  setting existed load with that setting's default, and runs saved before a
  setting changed meaning load with the meaning they had (see upgrade)."""
  saved = upgrade(saved)

  def merge(base, new):
    for k, v in new.items():
      if isinstance(v, dict) and isinstance(base.get(k), ml_collections.ConfigDict):
        merge(base[k], v)
      else:
        base[k] = tuple(v) if isinstance(v, list) else v
  c = base_config()
  merge(c, saved)
  return c


def to_dict(config) -> dict:
  """A JSON-round-trippable plain dict (tuples become lists)."""
  return json.loads(config.to_json())
