"""GAN losses, computed from discriminator logits with log-sigmoid.

D(x) = sigmoid(l). Using log sigmoid(l) = -softplus(-l) and
log(1 - sigmoid(l)) = -softplus(l), no loss can evaluate log(0).

* minimax (Goodfellow et al. 2014, Eq. 1): D maximises
  log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))).
* non_saturating (same paper, Sec. 3): G maximises log D(G(z)) instead, which
  has strong gradients early in training when D rejects every fake.

Each entry is (d_loss(real_logits, fake_logits), g_loss(fake_logits)); both
return scalar means in float32.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax.nn import softplus


def d_loss_bce(real_logits, fake_logits):
  """-[log D(x) + log(1 - D(G(z)))], shared by both games."""
  return jnp.mean(softplus(-real_logits)) + jnp.mean(softplus(fake_logits))


def g_loss_minimax(fake_logits):
  """log(1 - D(G(z))), minimised by G."""
  return -jnp.mean(softplus(fake_logits))


def g_loss_non_saturating(fake_logits):
  """-log D(G(z)), minimised by G."""
  return jnp.mean(softplus(-fake_logits))


LOSSES = {
    "minimax": (d_loss_bce, g_loss_minimax),
    "non_saturating": (d_loss_bce, g_loss_non_saturating),
}
