"""GAN losses, computed from discriminator logits.

Each entry of LOSSES is (d_loss(real_logits, fake_logits), g_loss(fake_logits)),
and each returns (scalar mean in float32, metrics dict): what the loss can say
about D's outputs, logged beside the loss.

* minimax (Goodfellow et al. 2014, Eq. 1): D maximises
  log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))).
* non_saturating (same paper, Sec. 3): G maximises log D(G(z)) instead, which
  has strong gradients early in training when D rejects every fake.
  Both read D(x) = sigmoid(l) and report the mean D(x) and D(G(z)) as
  `d_real` and `d_fake`. Using log sigmoid(l) = -softplus(-l) and
  log(1 - sigmoid(l)) = -softplus(l), no loss can evaluate log(0).
* hinge (Lim & Ye 2017; SNGAN, Miyato et al. 2018): D minimises
  E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))]. D's
  output is a score, not a probability: the mean real and fake logits are
  reported (`d_real_logit`, `d_fake_logit`).
* wasserstein (Arjovsky et al. 2017): D minimises E[D(G(z))] - E[D(x)], G
  minimises -E[D(G(z))]; `wasserstein` is the critic's estimate
  E[D(x)] - E[D(G(z))]. The critic must be kept Lipschitz by other means (a
  penalty, config.penalty, or spectral norm).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax.nn import relu, sigmoid, softplus


def d_loss_bce(real_logits, fake_logits):
  """-[log D(x) + log(1 - D(G(z)))], shared by both games."""
  loss = jnp.mean(softplus(-real_logits)) + jnp.mean(softplus(fake_logits))
  return loss, {"d_real": jnp.mean(sigmoid(real_logits)),
                "d_fake": jnp.mean(sigmoid(fake_logits))}


def g_loss_minimax(fake_logits):
  """log(1 - D(G(z))), minimised by G."""
  return -jnp.mean(softplus(fake_logits)), {}


def g_loss_non_saturating(fake_logits):
  """-log D(G(z)), minimised by G."""
  return jnp.mean(softplus(-fake_logits)), {}


def _logit_means(real_logits, fake_logits):
  return {"d_real_logit": jnp.mean(real_logits), "d_fake_logit": jnp.mean(fake_logits)}


def d_loss_hinge(real_logits, fake_logits):
  loss = jnp.mean(relu(1.0 - real_logits)) + jnp.mean(relu(1.0 + fake_logits))
  return loss, _logit_means(real_logits, fake_logits)


def d_loss_wasserstein(real_logits, fake_logits):
  gap = jnp.mean(real_logits) - jnp.mean(fake_logits)
  return -gap, {"wasserstein": gap}


def g_loss_mean_score(fake_logits):
  """-E[D(G(z))]: the generator loss of the hinge and Wasserstein games."""
  return -jnp.mean(fake_logits), {}


LOSSES = {
    "minimax": (d_loss_bce, g_loss_minimax),
    "non_saturating": (d_loss_bce, g_loss_non_saturating),
    "hinge": (d_loss_hinge, g_loss_mean_score),
    "wasserstein": (d_loss_wasserstein, g_loss_mean_score),
}
