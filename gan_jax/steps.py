"""Pure, per-device D and G updates, and their data-parallel mapping.

Programming model (pmap-style, written with `jax.shard_map`): every device runs
`train_steps` on its slice of the global batch; gradients, losses and every
non-parameter collection a step updates (BatchNorm statistics, spectral-norm
vectors) are averaged over the named axis ``'batch'`` with `lax.pmean`.
Random numbers are drawn for the *global* batch from keys that do not depend
on the device, and each device keeps its slice, so the training trajectory is
the same on 1 or N devices (up to float reassociation).

Batches are dicts drawn on the device (data/sampler.py), so no host->device
copy happens per step, and `steps_per_call` steps run inside one call (a
`lax.scan`, except for conv models on CPU, which unroll them: see
`train_steps`), with the state donated. The networks are called as
`G(z, y, train=...)` and `D(x, y, train=...)`, y the labels or None.
"""
from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.data import sampler
from gan_jax.losses import LOSSES
from gan_jax.penalties import NONE, PENALTIES
from gan_jax.state import Net, TrainState

AXIS = "batch"
CONV_MODELS = ("dcgan",)


def _per_device(params):
  """Marks replicated parameters as per-device values before differentiating.

  Under shard_map, the gradient of a replicated (device-invariant) input is
  already summed over the axis by autodiff, so a following pmean would leave
  N x the mean gradient. Differentiating a per-device copy instead gives each
  device its local gradient, which the explicit pmean then averages: the
  pmap programming model."""
  return jax.tree.map(lambda p: jax.lax.pcast(p, AXIS, to="varying"), params)


def apply(module, params, collections, *inputs, train: bool):
  """(output, updated collections): every collection is mutable in training."""
  if not collections:
    return module.apply({"params": params}, *inputs, train=train), collections
  out, updated = module.apply({"params": params, **collections}, *inputs, train=train,
                              mutable=list(collections))
  return out, {**collections, **updated}


def _update(net: Net, grads, tx, collections) -> Net:
  """Applies the device-averaged gradients; keeps the averaged collections."""
  grads = jax.lax.pmean(grads, AXIS)
  updates, opt_state = tx.update(grads, net.opt_state, net.params)
  return Net(params=optax.apply_updates(net.params, updates),
             collections=jax.lax.pmean(collections, AXIS), opt_state=opt_state), grads


def _penalty(penalty, d_fn, batch, fake, key, due):
  """(weighted penalty, its value): weight * every * value on due updates."""
  fn = PENALTIES[penalty.name]
  value = lambda: fn(d_fn, batch["image"], fake, key)  # noqa: E731
  if penalty.every == 1:
    v = value()
  else:  # lazy: computed only on every `every`-th D update
    v = jax.lax.cond(due, value, lambda: jax.lax.pcast(jnp.float32(0.0), AXIS, to="varying"))
  return penalty.weight * penalty.every * v, v


def d_step(state: TrainState, batch, z, y_fake, key, *, G, D, d_tx, loss: str, penalty,
           due=True):
  """One discriminator update on a real batch and G(z, y_fake). Pure; per
  device. `penalty` (config.penalty) is added to the loss when `due`."""
  d_loss_fn = LOSSES[loss][0]
  fake, _ = apply(G, state.g.params, state.g.collections, z, y_fake, train=True)
  fake = jax.lax.stop_gradient(fake)
  y_real = batch.get("label")

  def loss_fn(params):
    real_logits, cols = apply(D, params, state.d.collections, batch["image"], y_real, train=True)
    fake_logits, cols = apply(D, params, cols, fake, y_fake, train=True)
    l, metrics = d_loss_fn(real_logits, fake_logits)
    if penalty.name != NONE:
      d_fn = lambda x: apply(D, params, cols, x, y_real, train=True)[0]  # noqa: E731
      weighted, metrics[penalty.name] = _penalty(penalty, d_fn, batch, fake, key, due)
      l = l + weighted
    return l, (metrics, cols)

  (l, (metrics, cols)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      _per_device(state.d.params))
  d, grads = _update(state.d, grads, d_tx, cols)
  metrics = {"d_loss": l, **metrics, "d_grad_norm": optax.global_norm(grads)}
  return state.replace(d=d), jax.lax.pmean(metrics, AXIS)


def g_step(state: TrainState, z, y, *, G, D, g_tx, loss: str):
  """One generator update through the current D. Pure; per device."""
  g_loss_fn = LOSSES[loss][1]

  def loss_fn(params):
    fake, cols = apply(G, params, state.g.collections, z, y, train=True)
    fake_logits, _ = apply(D, state.d.params, state.d.collections, fake, y, train=True)
    l, metrics = g_loss_fn(fake_logits)
    return l, (metrics, cols)

  (l, (metrics, cols)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      _per_device(state.g.params))
  g, grads = _update(state.g, grads, g_tx, cols)
  # the norm of the averaged gradient, as the update sees it: a saturating loss
  # shows here first (the minimax G gets almost none while D wins)
  metrics = {"g_loss": l, **metrics, "g_grad_norm": optax.global_norm(grads)}
  return state.replace(g=g), jax.lax.pmean(metrics, AXIS)


def _one_step(state: TrainState, arrays, *, config, G, D, g_tx, d_tx, local: int):
  """train.d_steps D updates, then one G update. Keys: D update i draws the
  real batch and z from split(fold_in(key, i)), its fake labels and penalty
  from fold_in(fold_in(key, i), 1) and 2; G's z from fold_in(key, d_steps)."""
  t, gb, zd = config.train, config.train.batch_size, config.model.z_dim
  key = jax.random.fold_in(state.rng, state.step)
  metrics = {}
  for i in range(t.d_steps):
    k_i = jax.random.fold_in(key, i)
    k_real, k_z = jax.random.split(k_i)
    due = (state.step * t.d_steps + i) % config.penalty.every == 0
    state, metrics = d_step(
        state, sampler.draw_batch(arrays, k_real, gb, local, AXIS),
        sampler.draw_z(k_z, gb, local, zd, AXIS),
        sampler.draw_labels(arrays, jax.random.fold_in(k_i, 1), gb, local, AXIS),
        jax.random.fold_in(k_i, 2), G=G, D=D, d_tx=d_tx, loss=t.loss,
        penalty=config.penalty, due=due)
  k_g = jax.random.fold_in(key, t.d_steps)
  state, g_metrics = g_step(
      state, sampler.draw_z(k_g, gb, local, zd, AXIS),
      sampler.draw_labels(arrays, jax.random.fold_in(k_g, 1), gb, local, AXIS),
      G=G, D=D, g_tx=g_tx, loss=t.loss)
  return state.replace(step=state.step + 1), {**metrics, **g_metrics}


def train_steps(state: TrainState, arrays, *, config, G, D, g_tx, d_tx,
                num_devices: int, num_steps: int):
  """`num_steps` full steps (d_steps D updates + 1 G update each); per device.
  `arrays`: the dataset's arrays ({"image", "label"?}, data/sampler.py).

  Returns the new state and a dict of per-step metrics, each of shape (num_steps,).
  """
  one = functools.partial(_one_step, arrays=arrays, config=config, G=G, D=D, g_tx=g_tx,
                          d_tx=d_tx, local=config.train.batch_size // num_devices)
  if jax.default_backend() != "cpu" or config.model.name not in CONV_MODELS:
    return jax.lax.scan(lambda s, _: one(s), state, None, length=num_steps)
  # XLA:CPU runs convolutions inside a while loop 10-20x slower than at top
  # level (measured here: a conv weight gradient took 30 ms plain and 320-660 ms
  # inside lax.scan/fori_loop), so conv models unroll the K steps on CPU.
  outs = []
  for _ in range(num_steps):
    state, m = one(state)
    outs.append(m)
  return state, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def make_mesh(devices=None) -> Mesh:
  return Mesh(jax.devices() if devices is None else devices, (AXIS,))


def replicate(tree, mesh: Mesh):
  """Places every leaf on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


# XLA:CPU compile options for the train step (jaxlib 0.10.2, measured on the
# 2-core CPU of BENCHMARKS.md, MNIST DCGAN, batch 64):
# - The memory-optimised schedule. The default one orders ops for concurrency,
#   and the thunk executor then runs independent convolutions at the same
#   time, each multi-threaded, on the same cores: the step ran 6-11% faster
#   without that, with 9-12% less CPU time per step.
# - Convolutions on XLA's own (Eigen) kernels instead of YNNPACK: the other
#   default library fusions (YNNPACK dots and reductions) are kept. Alone on 2
#   threads, Eigen ran the DCGAN's 4x4 stride-2 convolution in 4.0 ms against
#   5.1 ms and its weight gradient in 4.7 against 5.3 ms.
# Set per compiled function, for conv models only (the MLP GAN's step, all
# dots, ran ~2% slower with them), so XLA_FLAGS and other jitted code are
# untouched. A jaxlib that rejects them trains with its defaults instead.
CPU_COMPILER_OPTIONS = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
    "xla_cpu_experimental_ynn_fusion_type":
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


@functools.cache
def cpu_compiler_options() -> dict | None:
  """CPU_COMPILER_OPTIONS if this jaxlib's XLA:CPU accepts them, else None."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(
        jax.ShapeDtypeStruct((2,), jnp.float32, sharding=jax.sharding.SingleDeviceSharding(
            jax.devices("cpu")[0]))).compile()
  except Exception as e:  # XLA raises INVALID_ARGUMENT for unknown options/values
    logging.warning("XLA:CPU rejected the train step's compile options (%s); using its "
                    "defaults", str(e).splitlines()[0])
    return None
  return dict(CPU_COMPILER_OPTIONS)


def make_train_fn(config, G, D, g_tx, d_tx, mesh: Mesh):
  """Returns `fn(state, data, num_steps) -> (state, metrics)`, jitted per
  num_steps, mapped over `mesh` with shard_map, and donating `state`. `data`:
  the dataset's arrays on the mesh (sampler.device_arrays), or its images alone.

  On CPU with several devices each call waits for its result before returning.
  XLA:CPU (jaxlib 0.10.2) can deadlock when one device starts the next call's
  all-reduce while another is still in the previous call: the process aborts
  with "Termination timeout for `all reduce ...` of 40 seconds exceeded". On
  this 2-core machine 2-device runs without the wait aborted within 200-1,000
  steps under load; with it, 3,000 steps ran clean (BENCHMARKS.md). A CPU
  gains almost nothing from overlapping dispatch with execution anyway."""
  cache = {}
  cpu = mesh.devices.flat[0].platform == "cpu"
  sync = mesh.size > 1 and cpu
  options = cpu_compiler_options() if cpu and config.model.name in CONV_MODELS else None

  def jitted(num_steps: int):
    if num_steps not in cache:
      per_device = functools.partial(train_steps, config=config, G=G, D=D, g_tx=g_tx,
                                     d_tx=d_tx, num_devices=mesh.size, num_steps=num_steps)
      mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P()),
                             out_specs=(P(), P()))
      cache[num_steps] = jax.jit(mapped, donate_argnums=(0,), compiler_options=options)
    return cache[num_steps]

  def fn(state, data, num_steps: int):
    out = jitted(num_steps)(state, sampler.as_arrays(data))
    return jax.block_until_ready(out) if sync else out

  fn.lower = lambda state, data, num_steps: jitted(num_steps).lower(
      state, sampler.as_arrays(data))
  return fn


def make_sample_fn(G):
  """`fn(params, collections, z, y=None) -> images` in inference mode
  (BatchNorm's running statistics); y: labels for a class-conditional G."""
  @jax.jit
  def sample(params, collections, z, y=None):
    return G.apply({"params": params, **collections}, z, y, train=False)
  return sample


@jax.jit
def all_finite(tree) -> jax.Array:
  """One on-device reduction: True when every float leaf is finite."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves))
