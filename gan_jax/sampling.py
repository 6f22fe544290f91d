"""Latents and labels for sampling a generator: one convention everywhere.

Latent i of a seed is drawn from fold_in(PRNGKey(seed), i), so it does not
depend on n, the batch size or the caller: training's sample grids, the
evaluation, `gan_jax.analysis` and the scripts give the same z for the same
seed. A seed is an integer in [0, 2**32): PRNGKey keeps 32 bits, so others
would wrap onto one of those (ValueError instead). Truncation (Brock et al.
2019) resamples every component with |z| > truncation;
`jax.random.truncated_normal` draws from exactly that distribution.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _latents(key, start, n: int, z_dim: int, truncation):
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(n))
  if truncation is None:
    return jax.vmap(lambda k: jax.random.normal(k, (z_dim,)))(keys)
  return jax.vmap(lambda k: jax.random.truncated_normal(
      k, -truncation, truncation, (z_dim,)))(keys)


def latents(seed: int, n: int, z_dim: int, start: int = 0,
            truncation: float | None = None) -> np.ndarray:
  """Latents start..start+n-1 of `seed`, (n, z_dim) float32."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
    # PRNGKey keeps 32 bits without jax_enable_x64: 2**32 + 5 would replay seed 5
    raise ValueError(f"seed={seed!r} must be an integer in [0, 2**32)")
  if truncation is not None and not truncation > 0:
    raise ValueError(f"truncation={truncation!r} must be a positive number (or None)")
  t = None if truncation is None else float(truncation)
  return np.asarray(_latents(jax.random.PRNGKey(seed), start, int(n), int(z_dim), t))


def grid_labels(n: int, num_classes: int | None, start: int = 0) -> np.ndarray | None:
  """Labels for n samples of a class-conditional generator: the classes in
  turn (sample i gets class (start + i) % num_classes); None without classes."""
  if not num_classes:
    return None
  return ((start + np.arange(n)) % num_classes).astype(np.int32)


def num_classes(labels) -> int | None:
  """The number of classes in a dataset's labels (max + 1), None without."""
  return None if labels is None or not len(labels) else int(np.max(labels)) + 1
