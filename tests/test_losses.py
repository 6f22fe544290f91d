import math

import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.losses import LOSSES, d_loss_bce, g_loss_minimax, g_loss_non_saturating


def sig(x):
  return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("r,f", [(0.0, 0.0), (2.0, -1.0), (-3.0, 4.0)])
def test_d_loss_closed_form(r, f):
  expected = -(math.log(sig(r)) + math.log(1 - sig(f)))
  got, _ = d_loss_bce(jnp.array([r]), jnp.array([f]))
  assert float(got) == pytest.approx(expected, rel=1e-6)


def test_at_zero_logits_d_loss_is_2_log_2():
  loss, _ = d_loss_bce(jnp.zeros(8), jnp.zeros(8))
  assert float(loss) == pytest.approx(2 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("f", [-5.0, 0.0, 1.5])
def test_g_losses_closed_form(f):
  assert float(g_loss_minimax(jnp.array([f]))[0]) == pytest.approx(math.log(1 - sig(f)), rel=1e-6)
  ns, _ = g_loss_non_saturating(jnp.array([f]))
  assert float(ns) == pytest.approx(-math.log(sig(f)), rel=1e-6)


def test_extreme_logits_stay_finite():
  big = jnp.array([1e4, -1e4])
  for d_fn, g_fn in LOSSES.values():
    assert np.isfinite(float(d_fn(big, -big)[0])) and np.isfinite(float(d_fn(-big, big)[0]))
    assert np.isfinite(float(g_fn(big)[0])) and np.isfinite(float(g_fn(-big)[0]))
  # a confidently rejected fake: non-saturating keeps a large loss, minimax saturates at 0
  assert float(g_loss_non_saturating(jnp.array([-1e4]))[0]) == pytest.approx(1e4)
  assert float(g_loss_minimax(jnp.array([-1e4]))[0]) == pytest.approx(0.0, abs=1e-6)




def test_registry_names():
  assert set(LOSSES) == {"minimax", "non_saturating", "hinge", "wasserstein"}


def test_the_sigmoid_losses_report_mean_probabilities():
  _, m = d_loss_bce(jnp.array([0.0, 2.0]), jnp.array([-1.0, -3.0]))
  assert float(m["d_real"]) == pytest.approx((0.5 + sig(2.0)) / 2, rel=1e-6)
  assert float(m["d_fake"]) == pytest.approx((sig(-1.0) + sig(-3.0)) / 2, rel=1e-6)


def test_hinge_closed_form_and_logit_report():
  d_fn, g_fn = LOSSES["hinge"]
  loss, m = d_fn(jnp.array([0.5, 2.0]), jnp.array([-2.0, 0.0]))
  assert float(loss) == pytest.approx((0.5 + 0.0) / 2 + (0.0 + 1.0) / 2)
  assert set(m) == {"d_real_logit", "d_fake_logit"} and float(m["d_fake_logit"]) == -1.0
  assert float(g_fn(jnp.array([1.0, 3.0]))[0]) == -2.0


def test_wasserstein_reports_the_critic_gap():
  d_fn, g_fn = LOSSES["wasserstein"]
  loss, m = d_fn(jnp.array([3.0, 1.0]), jnp.array([0.0, -1.0]))
  assert float(m["wasserstein"]) == 2.5 and float(loss) == -2.5
  assert set(m) == {"wasserstein"}  # no probability reading for a critic's score
