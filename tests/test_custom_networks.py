"""Networks that gan_jax.models does not ship, trained by the real step: a D
with flax.linen.SpectralNorm (its u/sigma statistics are a non-parameter
collection the step must average over the devices) and a class-conditional
G/D pair (labels from the data reach both networks)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data, steps
from gan_jax.data import sampler
from gan_jax.state import create_state, make_optimizers
from conftest import tiny_config

NUM_CLASSES = 10  # the digits


class SpectralNormD(nn.Module):
  @nn.compact
  def __call__(self, x, y=None, *, train=True):
    x = x.reshape(x.shape[0], -1)
    x = nn.leaky_relu(nn.SpectralNorm(nn.Dense(32))(x, update_stats=train), 0.2)
    return nn.SpectralNorm(nn.Dense(1))(x, update_stats=train)[:, 0]


class ConditionalG(nn.Module):
  shape: tuple = (8, 8, 1)

  @nn.compact
  def __call__(self, z, y=None, *, train=True):
    h = jnp.concatenate([z, jax.nn.one_hot(y, NUM_CLASSES)], axis=-1)
    h = nn.relu(nn.Dense(32)(h))
    return jnp.tanh(nn.Dense(int(np.prod(self.shape)))(h)).reshape((-1, *self.shape))


class ConditionalD(nn.Module):
  @nn.compact
  def __call__(self, x, y=None, *, train=True):
    h = jnp.concatenate([x.reshape(x.shape[0], -1), jax.nn.one_hot(y, NUM_CLASSES)], axis=-1)
    return nn.Dense(1)(nn.leaky_relu(nn.Dense(32)(h), 0.2))[:, 0]


def _train(G, D, devices, n=20, labels=False, **overrides):
  config = tiny_config(**{"model.name": "mlp", **overrides})
  mesh = steps.make_mesh(devices)
  g_tx, d_tx = make_optimizers(config)
  dataset = data.load(config.data)
  if not labels:
    dataset.labels = None
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx, with_labels=labels), mesh)
  fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  state, metrics = fn(state, sampler.device_arrays(dataset, mesh), n)
  return jax.device_get(state), jax.device_get(metrics)


def _assert_same_run(a, b):
  (s1, m1), (s4, m4) = a, b
  assert set(m1) == set(m4)
  for k in m1:
    np.testing.assert_allclose(m1[k], m4[k], rtol=2e-4, atol=2e-5, err_msg=k)
  for x, y in zip(jax.tree.leaves(s1), jax.tree.leaves(s4)):
    np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)


def test_a_spectrally_normalised_d_trains_alike_on_1_and_4_devices():
  from gan_jax.models.mlp import MLPGenerator
  G = MLPGenerator((8, 8, 1), (32,))
  runs = [_train(G, SpectralNormD(), devices) for devices in (jax.devices()[:1], jax.devices())]
  _assert_same_run(*runs)
  state, _ = runs[0]
  stats = state.d.collections["batch_stats"]
  for i in (0, 1):
    kernel = state.d.params[f"Dense_{i}"]["kernel"]
    sigma = stats[f"SpectralNorm_{i}"][f"Dense_{i}/kernel/sigma"]
    # the layer D applies, kernel / sigma, has largest singular value ~1
    top = np.linalg.svd(np.asarray(kernel) / np.asarray(sigma), compute_uv=False)[0]
    assert abs(top - 1.0) < 0.05, (i, top)


def test_a_conditional_gan_gets_the_data_s_labels_on_1_and_4_devices():
  G, D = ConditionalG(), ConditionalD()
  runs = [_train(G, D, devices, labels=True) for devices in (jax.devices()[:1], jax.devices())]
  _assert_same_run(*runs)
  state, metrics = runs[0]
  assert np.all(np.isfinite(metrics["d_loss"]))
  # the label's parameters were trained: G's one-hot rows moved from their init
  config = tiny_config(**{"model.name": "mlp"})
  init = create_state(config, G, D, *make_optimizers(config), with_labels=True)
  rows = slice(config.model.z_dim, config.model.z_dim + NUM_CLASSES)
  moved = np.abs(state.g.params["Dense_0"]["kernel"][rows]
                 - np.asarray(init.g.params["Dense_0"]["kernel"][rows]))
  assert np.all(moved.max(axis=1) > 0)  # every class's row
  # and a sample depends on its label
  sample = steps.make_sample_fn(G)
  z = np.zeros((2, config.model.z_dim), np.float32)
  x = np.asarray(sample(state.g.params, state.g.collections, z, np.array([1, 7])))
  assert not np.allclose(x[0], x[1])
