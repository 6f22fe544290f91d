"""gan_jax/state.py: the optimizers make_optimizers builds from config.train,
their learning-rate schedule (train.lr_decay) and Adam's betas (train.b1, train.b2), measured
through the optax transforms themselves on a few known gradients."""
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.state import make_optimizers
from conftest import tiny_config


def _step_sizes(tx, n, grad=(1.0, -2.0, 0.5)):
  """The step sizes of `n` Adam updates under a constant gradient. Then Adam's
  bias-corrected moments are exactly g and g**2, so each update is
  lr_t * sign(g): its size is that update's learning rate."""
  g = jnp.asarray(grad, jnp.float32)
  params = jnp.zeros_like(g)
  opt = tx.init(params)
  sizes = []
  for _ in range(n):
    u, opt = tx.update(g, opt, params)
    lr = -np.asarray(u) * np.sign(grad)  # the update is -lr * sign(g) in every coordinate
    np.testing.assert_allclose(lr, lr[0], rtol=1e-6, atol=1e-12)
    sizes.append(float(lr[0]))
  return np.array(sizes)


def test_linear_decay_reaches_zero_after_num_steps_g_and_num_steps_times_d_steps_d_updates():
  # G's rate falls to 0 over num_steps G updates; D makes d_steps updates per G
  # update, so its horizon is num_steps * d_steps (else D stops learning half-way)
  c = tiny_config(**{"train.lr_decay": "linear", "train.num_steps": 4, "train.d_steps": 2,
                     "train.g_lr": 2e-3, "train.d_lr": 1e-3})
  g_tx, d_tx = make_optimizers(c)
  np.testing.assert_allclose(_step_sizes(g_tx, 6), 2e-3 * np.array([1, .75, .5, .25, 0, 0]),
                             rtol=1e-4, atol=1e-12)
  np.testing.assert_allclose(_step_sizes(d_tx, 10),
                             1e-3 * np.array([8, 7, 6, 5, 4, 3, 2, 1, 0, 0]) / 8,
                             rtol=1e-4, atol=1e-12)


def test_no_decay_keeps_each_learning_rate_constant():
  c = tiny_config(**{"train.lr_decay": "none", "train.num_steps": 4, "train.d_steps": 2,
                     "train.g_lr": 2e-3, "train.d_lr": 1e-3})
  g_tx, d_tx = make_optimizers(c)
  np.testing.assert_allclose(_step_sizes(g_tx, 6), np.full(6, 2e-3), rtol=1e-4)
  np.testing.assert_allclose(_step_sizes(d_tx, 10), np.full(10, 1e-3), rtol=1e-4)


# (0.5, 0.999): the DCGAN setting (Radford et al.); the second pair differs from
# optax's defaults (0.9, 0.999) in both betas, so dropping either one fails.
@pytest.mark.parametrize("b1,b2", [(0.5, 0.999), (0.3, 0.95)])
def test_adam_uses_the_configured_betas(b1, b2):
  c = tiny_config(**{"train.b1": b1, "train.b2": b2, "train.g_lr": 2e-3, "train.d_lr": 1e-3})
  g1, g2 = np.array([1.0, -2.0, 0.5]), np.array([3.0, 1.0, -1.0])
  for tx, lr in zip(make_optimizers(c), (2e-3, 1e-3)):
    params = jnp.zeros(3)
    opt = tx.init(params)
    _, opt = tx.update(jnp.asarray(g1, jnp.float32), opt, params)
    adam = opt.inner_state[0]
    np.testing.assert_allclose(adam.mu, (1 - b1) * g1, rtol=1e-6)
    np.testing.assert_allclose(adam.nu, (1 - b2) * g1 ** 2, rtol=1e-6)
    u, opt = tx.update(jnp.asarray(g2, jnp.float32), opt, params)
    mu = b1 * (1 - b1) * g1 + (1 - b1) * g2
    nu = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
    np.testing.assert_allclose(opt.inner_state[0].mu, mu, rtol=1e-5)
    np.testing.assert_allclose(opt.inner_state[0].nu, nu, rtol=1e-5)
    # the second update, bias-corrected (eps=1e-8, optax's default)
    want = -lr * (mu / (1 - b1 ** 2)) / (np.sqrt(nu / (1 - b2 ** 2)) + 1e-8)
    np.testing.assert_allclose(np.asarray(u), want, rtol=1e-5)


def test_the_optimiser_hyperparameters_live_in_the_state():
  # optax.inject_hyperparams: a learning rate set in the state is the one used
  c = tiny_config(**{"train.g_lr": 2e-3, "train.b1": 0.3})
  g_tx, _ = make_optimizers(c)
  opt = g_tx.init(jnp.zeros(3))
  assert float(opt.hyperparams["learning_rate"]) == pytest.approx(2e-3)
  assert set(opt.hyperparams) == {"learning_rate", "eps", "eps_root"}
  opt.hyperparams["learning_rate"] = jnp.asarray(5e-3)
  u, _ = g_tx.update(jnp.ones(3), opt, jnp.zeros(3))
  np.testing.assert_allclose(np.asarray(u), -5e-3, rtol=1e-4)


def test_the_state_holds_one_net_per_network_with_every_collection(tiny):
  from gan_jax import models
  from gan_jax.state import create_state
  import jax
  c = tiny(**{"model.name": "mlp", "model.g_norm": "batchnorm"})
  G, D = models.build(c)
  s = jax.eval_shape(lambda: create_state(c, G, D, *make_optimizers(c)))
  assert set(s.g.collections) == {"batch_stats"} and s.d.collections == {}
  assert s.g_ema is None and int(s.step.size) == 1


def test_a_resumed_state_takes_the_config_s_learning_rates(tiny):
  # --force_resume with a new train.g_lr/d_lr continues with the new rates,
  # not the ones the checkpoint's optimiser state holds
  from gan_jax import models
  from gan_jax.state import create_state, with_config_hyperparams
  old_c, new_c = tiny(**{"model.name": "mlp"}), tiny(**{"model.name": "mlp", "train.d_lr": 0.5})
  G, D = models.build(old_c)
  old = create_state(old_c, G, D, *make_optimizers(old_c))
  new = with_config_hyperparams(old, create_state(new_c, G, D, *make_optimizers(new_c)))
  assert float(new.d.opt_state.hyperparams["learning_rate"]) == 0.5
  assert float(new.g.opt_state.hyperparams["learning_rate"]) == pytest.approx(2e-4)
  np.testing.assert_array_equal(new.d.opt_state.inner_state[0].mu["Dense_0"]["kernel"],
                                old.d.opt_state.inner_state[0].mu["Dense_0"]["kernel"])
