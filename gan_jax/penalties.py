"""Regularisers of the discriminator, added to its loss.

Each entry of PENALTIES is `fn(d_fn, real, fake, key) -> scalar`, where
`d_fn(x) -> logits` applies D with its current parameters and collections
(and the batch's labels) and is differentiable in both x and D's parameters;
`real` and `fake` are this device's batches, `key` a PRNG key for penalties
that draw (e.g. WGAN-GP's interpolation points). The step adds
`weight * every * fn(...)` to D's loss on every `every`-th D update (lazy
regularisation, StyleGAN2, Karras et al. 2020, Sec. B) and logs the
penalty's value (unweighted) under its name.

* r1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually
  Converge?"): (1/2) E_real ||grad_x D(x)||^2; with weight = gamma this is
  the paper's (gamma/2) E ||grad_x D(x)||^2.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def r1(d_fn, real, fake, key):
  """(1/2) E_x ||grad_x D(x)||^2 over the real batch."""
  del fake, key
  grad = jax.grad(lambda x: jnp.sum(d_fn(x)))(real)
  return 0.5 * jnp.mean(jnp.sum(jnp.square(grad), axis=tuple(range(1, grad.ndim))))


PENALTIES = {"r1": r1}
NONE = "none"
