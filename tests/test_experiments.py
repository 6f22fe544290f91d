"""Every experiment config loads, validates, and documents its own command."""
import importlib.util
import pathlib

import pytest

from gan_jax.config import validate
from conftest import REPO

EXPERIMENTS = sorted((REPO / "experiments").glob("*.py"))


def _load(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_documented_configs_exist():
  names = {p.stem for p in EXPERIMENTS}
  assert {"mnist", "mnist_mlp", "mnist_mlp_minimax", "fashion_mnist", "pokemon", "digits", "toy_ring",
          "toy_grid"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_config(path, tmp_path):
  module = _load(path)
  assert f"--config=experiments/{path.name}" in module.__doc__
  config = module.get_config()
  if config.data.source in ("folder", "idx"):
    (tmp_path / "x.png").write_bytes(b"")  # validation only checks the folder
    config.data.path = str(tmp_path)
  validate(config, num_devices=1)
  validate(config, num_devices=4)  # every batch size splits over 4 devices


# The settings that make each experiment what its docstring and the README say
# it is; a config that loaded and validated but trained something else (e.g.
# the 2014 baseline with the non-saturating loss, the toy runs without PacGAN)
# fails here.
DEFINING = {
    "digits": {"data.source": "digits", "data.image_size": 8, "model.name": "dcgan"},
    "mnist": {"data.source": "tfds", "data.name": "mnist", "data.image_size": 28,
              "data.channels": 1, "model.name": "dcgan", "train.loss": "non_saturating",
              "train.b1": 0.5, "train.batch_size": 64},
    "mnist_mlp": {"model.name": "mlp", "train.loss": "non_saturating", "data.name": "mnist",
                  "model.g_norm": "batchnorm", "model.d_hidden": (512, 256)},
    "mnist_mlp_minimax": {"model.name": "mlp", "train.loss": "minimax", "data.name": "mnist",
                          "model.g_norm": "batchnorm", "model.d_hidden": (512, 256)},
    "fashion_mnist": {"data.source": "tfds", "data.name": "fashion_mnist",
                      "model.name": "dcgan"},
    "pokemon": {"data.source": "folder", "data.image_size": 64, "data.channels": 3,
                "model.name": "dcgan"},
    "toy_ring": {"data.source": "toy", "data.name": "ring8", "model.name": "mlp",
                 "model.d_pack": 2, "model.g_output": "linear", "train.lr_decay": "linear",
                 "train.b1": 0.0, "train.b2": 0.9, "eval.num_samples": 2500,
                 "checkpoint.best_metric": "eval/hq_fraction", "checkpoint.best_mode": "max"},
    "toy_grid": {"data.source": "toy", "data.name": "grid25", "model.d_pack": 2,
                 "train.lr_decay": "linear", "checkpoint.best_mode": "max"},
}


@pytest.mark.parametrize("name", sorted(DEFINING))
def test_experiment_defining_settings(name):
  config = _load(REPO / "experiments" / f"{name}.py").get_config()
  got = {k: config[k.split(".")[0]][k.split(".")[1]] for k in DEFINING[name]}
  assert got == DEFINING[name]

