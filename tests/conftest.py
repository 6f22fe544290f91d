"""Test setup: 4 fake CPU devices and one persistent compilation cache (both set
before JAX initialises), tiny configs."""
import os
import pathlib
import tempfile

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One persistent compilation cache for this process and every subprocess the
# tests start (they inherit os.environ): a program compiled once in a test run,
# in-process or by a script, is read back after that instead of compiled again.
# Tests recompile the same programs often (each make_train_fn is a new jit;
# scripts rerun on the same tiny configs), so a fresh CI run, whose cache
# starts empty, gains too.
JAX_CACHE = os.path.join(tempfile.gettempdir(), "gan_jax_tests_jax_cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", JAX_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
POKEMON_DIR = SHARED / "pokemon"


def edit_saved_configs(workdir, edit):
  """Applies `edit(dict)` to a run's config.json and every checkpoint's saved config."""
  import json
  for path in [workdir / "config.json", *workdir.glob("checkpoints/*/config/metadata")]:
    saved = json.loads(path.read_text())
    edit(saved)
    path.write_text(json.dumps(saved))


def tiny_config(**overrides):
  """A DCGAN small enough to compile and train in seconds."""
  from gan_jax.config import base_config
  c = base_config()
  c.data.source = "digits"
  c.data.image_size = 8
  c.model.z_dim = 16
  c.model.g_features = 8
  c.model.d_features = 8
  c.model.g_hidden = (32,)
  c.model.d_hidden = (32,)
  c.train.batch_size = 16
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.sample_every = 4
  c.checkpoint.every = 4
  for key, value in overrides.items():
    if "." not in key:  # a top-level setting, e.g. seed
      c[key] = value
      continue
    section, name = key.split(".")
    c[section][name] = value
  return c


@pytest.fixture
def tiny():
  return tiny_config


def needs(path):
  return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")
