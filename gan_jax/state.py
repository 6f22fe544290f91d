"""TrainState: everything training needs to continue exactly, as one pytree."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
  step: jax.Array          # int32 scalar: number of completed G updates
  rng: jax.Array           # raw uint32 PRNG key; step keys are fold_in(rng, step)
  g_params: Any
  g_stats: Any             # G BatchNorm running statistics ({} for the MLP)
  d_params: Any
  d_stats: Any
  g_opt: Any
  d_opt: Any


def make_optimizers(config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """Adam for G and D. train.lr_decay='linear' decays each learning rate
  linearly to 0 over train.num_steps updates of that network (as in SNGAN,
  Miyato et al. 2018); 'none' keeps it constant."""
  t = config.train

  def lr(base, updates):
    if t.lr_decay == "linear":
      return optax.linear_schedule(base, 0.0, updates)
    return base

  return (optax.adam(lr(t.g_lr, t.num_steps), b1=t.b1, b2=t.b2),
          optax.adam(lr(t.d_lr, t.num_steps * t.d_steps), b1=t.b1, b2=t.b2))


def create_state(config, G, D, g_tx, d_tx) -> TrainState:
  """Initialises G and D from config.seed; pure and deterministic."""
  key = jax.random.PRNGKey(config.seed)
  k_g, k_d, k_run = jax.random.split(key, 3)
  d = config.data
  z = jnp.zeros((1, config.model.z_dim), jnp.float32)
  x = jnp.zeros((config.model.get("d_pack", 1), d.image_size, d.image_size, d.channels),
                jnp.float32)
  g_vars = G.init(k_g, z, train=False)
  d_vars = D.init(k_d, x, train=False)
  g_params, d_params = g_vars["params"], d_vars["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), rng=k_run,
                    g_params=g_params, g_stats=g_vars.get("batch_stats", {}),
                    d_params=d_params, d_stats=d_vars.get("batch_stats", {}),
                    g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params))


def count_params(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))
