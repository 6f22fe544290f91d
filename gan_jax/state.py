"""TrainState: everything training needs to continue exactly, as one pytree.

Each network is a `Net`: its parameters, every other (mutable) Flax
collection it keeps, e.g. {"batch_stats": ...} for BatchNorm statistics or a
spectral norm's vectors ({} when it keeps none), and its optimiser state,
which holds the optimiser's learning rate (`optax.inject_hyperparams`).

LAYOUT_VERSION numbers this layout; checkpoints carry it (checkpoint.py).
1: (step, rng, g_params, g_stats, d_params, d_stats, g_opt, d_opt), plain Adam.
2: (step, rng, g: Net, d: Net, g_ema), Adam with injected hyperparameters.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

LAYOUT_VERSION = 2


@struct.dataclass
class Net:
  params: Any
  collections: Any         # {collection name: tree} for every non-parameter collection
  opt_state: Any

  def variables(self) -> dict:
    """What `module.apply` takes."""
    return {"params": self.params, **self.collections}


@struct.dataclass
class TrainState:
  step: jax.Array          # int32 scalar: number of completed G updates
  rng: jax.Array           # raw uint32 PRNG key; step keys are fold_in(rng, step)
  g: Net
  d: Net
  g_ema: Any = None        # G's parameters averaged over training, when kept (None)


def make_optimizers(config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """Adam for G and D, with its learning rate (and eps) in the optimiser state
  (`opt_state.hyperparams`), where a schedule's current value is too.
  train.lr_decay='linear' decays each learning rate linearly to 0 over
  train.num_steps updates of that network (as in SNGAN, Miyato et al. 2018);
  'none' keeps it constant."""
  t = config.train

  def adam(base, updates):
    lr = optax.linear_schedule(base, 0.0, updates) if t.lr_decay == "linear" else base
    # b1, b2 stay Python floats: stored as float32 they would round 1 - b2
    # (1 - float32(0.999) is 1.3e-5 off 0.001) and change every trajectory
    return optax.inject_hyperparams(optax.adam, static_args=("b1", "b2"))(
        learning_rate=lr, b1=t.b1, b2=t.b2)

  return adam(t.g_lr, t.num_steps), adam(t.d_lr, t.num_steps * t.d_steps)


def init_inputs(config, with_labels: bool = False) -> tuple[tuple, tuple]:
  """Example inputs (G's, D's) that initialise the networks: (z, y), (x, y)."""
  d, pack = config.data, config.model.get("d_pack", 1)
  y = (lambda n: jnp.zeros((n,), jnp.int32)) if with_labels else (lambda n: None)
  z = jnp.zeros((1, config.model.z_dim), jnp.float32)
  x = jnp.zeros((pack, d.image_size, d.image_size, d.channels), jnp.float32)
  return (z, y(1)), (x, y(pack))


def _net(module, key, inputs, tx) -> Net:
  variables = dict(module.init(key, *inputs, train=False))
  params = variables.pop("params")
  return Net(params=params, collections=variables, opt_state=tx.init(params))


def create_state(config, G, D, g_tx, d_tx, with_labels: bool = False) -> TrainState:
  """Initialises G and D from config.seed; pure and deterministic.
  `with_labels`: initialise with labels (the data has them), so that a
  class-conditional model creates its label parameters."""
  key = jax.random.PRNGKey(config.seed)
  k_g, k_d, k_run = jax.random.split(key, 3)
  g_in, d_in = init_inputs(config, with_labels)
  return TrainState(step=jnp.zeros((), jnp.int32), rng=k_run,
                    g=_net(G, k_g, g_in, g_tx), d=_net(D, k_d, d_in, d_tx))


def with_config_hyperparams(state: TrainState, fresh: TrainState) -> TrainState:
  """A restored state with the optimiser hyperparameters of `fresh` (a state
  created from the config being run), so that a run resumed with a new
  learning rate (--force_resume) continues with it. A schedule's value is
  recomputed from the update count at every update either way."""
  def put(net: Net, new: Net) -> Net:
    return net.replace(opt_state=net.opt_state._replace(hyperparams=new.opt_state.hyperparams))
  return state.replace(g=put(state.g, fresh.g), d=put(state.d, fresh.d))


def count_params(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))
