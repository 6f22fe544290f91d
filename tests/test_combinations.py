"""One training step for every model x loss x penalty, with and without the
data's labels, on 1 and 2 devices: each combination compiles, runs and logs
finite metrics, with the keys its loss and penalty report. Each model x loss
x penalty runs once with labels and once without, one of the two on 2
devices (alternating), so every pair of (labels, devices) is covered at half
the compilations of the full product."""
import itertools

import jax
import numpy as np
import pytest

from gan_jax import data, losses, models, penalties, steps
from gan_jax.config import validate
from gan_jax.data import sampler
from gan_jax.state import create_state, make_optimizers
from conftest import tiny_config

CASES = [(*case, labels, 1 + (i + labels) % 2)
         for i, case in enumerate(itertools.product(
             sorted(models.MODELS), sorted(losses.LOSSES), ["none", *sorted(penalties.PENALTIES)]))
         for labels in (False, True)]


@pytest.fixture(scope="module")
def digits():
  return data.load(tiny_config().data)


@pytest.mark.parametrize("model, loss, penalty, labels, devices", CASES)
def test_one_step(digits, model, loss, penalty, labels, devices):
  config = tiny_config(**{"model.name": model, "train.loss": loss, "penalty.name": penalty,
                          "model.z_dim": 4, "model.g_features": 4, "model.d_features": 4,
                          "train.batch_size": 4})
  validate(config, devices)
  mesh = steps.make_mesh(jax.devices()[:devices])
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx, with_labels=labels), mesh)
  dataset = data.common.Dataset(digits.images, digits.labels if labels else None)
  arrays = sampler.device_arrays(dataset, mesh)
  assert ("label" in arrays) == labels
  state, m = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)(state, arrays, 1)
  m = jax.device_get(m)
  assert int(state.step) == 1
  want = {"d_loss", "g_loss", "d_grad_norm", "g_grad_norm"}
  want |= set(losses.LOSSES[loss][0](np.zeros(2), np.zeros(2))[1])
  want |= {penalty} if penalty != "none" else set()
  assert set(m) == want
  assert all(np.isfinite(v).all() for v in m.values()), m
