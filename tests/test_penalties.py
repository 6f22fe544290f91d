"""gan_jax/penalties.py and config.penalty: R1 against its closed form, the
lazy interval's weighting, and the penalty's metric."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import data, models, steps
from gan_jax.config import ConfigError, validate
from gan_jax.penalties import PENALTIES, r1
from gan_jax.state import create_state, make_optimizers
from conftest import tiny_config


def test_r1_of_a_linear_d_is_half_the_squared_norm_of_its_weights():
  # D(x) = <w, x> + b: grad_x D(x) = w for every x, so (1/2) E ||grad||^2 = |w|^2 / 2
  w = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 3))
  d_fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.5  # noqa: E731
  real = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 4, 3))
  got = r1(d_fn, real, None, None)
  assert float(got) == pytest.approx(0.5 * float(jnp.sum(w ** 2)), rel=1e-6)


def test_r1_averages_over_the_real_batch_and_ignores_the_fakes():
  # D(x) = sum(x^2): grad = 2x, so R1 = (1/2) mean_i 4 |x_i|^2
  d_fn = lambda x: jnp.sum(x ** 2, axis=(1, 2, 3))  # noqa: E731
  real = jnp.arange(2 * 2 * 2 * 1, dtype=jnp.float32).reshape(2, 2, 2, 1)
  want = 0.5 * np.mean([4 * np.sum(np.asarray(x) ** 2) for x in real])
  assert float(r1(d_fn, real, real + 100.0, jax.random.PRNGKey(0))) == pytest.approx(want)


def _first_steps(config, n=4):
  mesh = steps.make_mesh(jax.devices()[:1])
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx), mesh)
  images = steps.replicate(data.load(config.data).images, mesh)
  _, m = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)(state, images, n)
  return jax.device_get(m)


def test_a_lazy_penalty_is_computed_every_n_updates_and_weighted_n_times():
  base = {"model.name": "mlp", "train.d_lr": 0.0, "train.g_lr": 0.0}  # D stays as it is
  plain = _first_steps(tiny_config(**base))
  lazy = _first_steps(tiny_config(**base, **{"penalty.name": "r1", "penalty.weight": 3.0,
                                             "penalty.every": 2}))
  assert "r1" not in plain
  value = lazy["r1"]
  assert np.all(value[[0, 2]] > 0) and np.all(value[[1, 3]] == 0)  # D updates 0 and 2
  # the loss D minimises: the game's loss plus weight x every x R1 on the due updates
  np.testing.assert_allclose(lazy["d_loss"] - plain["d_loss"], 3.0 * 2 * value, rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("key, value, words", [
    ("penalty.name", "r3", "valid: none, r1"),
    ("penalty.weight", -1.0, "must be a number >= 0"),
    ("penalty.every", 0, "must be an integer >= 1")])
def test_bad_penalty_settings_are_one_line_config_errors(key, value, words):
  with pytest.raises(ConfigError, match=rf"config\.{key}=.*{words}"):
    validate(tiny_config(**{key: value}))


def test_the_registry_is_a_plain_dict_of_functions():
  assert isinstance(PENALTIES, dict) and PENALTIES["r1"] is r1
