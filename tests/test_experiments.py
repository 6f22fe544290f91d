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


def test_the_issue_configs_exist():
  names = {p.stem for p in EXPERIMENTS}
  assert {"mnist", "mnist_mlp", "fashion_mnist", "pokemon", "digits", "toy_ring",
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
