"""Pure, per-device D and G updates, and their data-parallel mapping.

Programming model (pmap-style, written with `jax.shard_map`): every device runs
`train_steps` on its slice of the global batch; gradients, losses and BatchNorm
statistics are averaged over the named axis ``'batch'`` with `lax.pmean`.
Random numbers are drawn for the *global* batch from keys that do not depend
on the device, and each device keeps its slice, so the training trajectory is
the same on 1 or N devices (up to float reassociation).

Batches are drawn on the device from the device-resident uint8 dataset with
`jax.random`, so no host->device copy happens per step, and `steps_per_call`
steps run inside one call (a `lax.scan`, except for conv models on CPU, which
unroll them: see `train_steps`), with the state donated.
"""
from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.losses import LOSSES
from gan_jax.state import TrainState

AXIS = "batch"
CONV_MODELS = ("dcgan",)


def _local_slice(x, local: int):
  """This device's rows of a globally drawn array."""
  return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(AXIS) * local, local)


def draw_real(images, key, global_batch: int, local: int):
  """A uniformly drawn batch (with replacement); uint8 images are scaled to
  [-1, 1], float data (the 2-D toy points) is used as it is."""
  idx = _local_slice(jax.random.randint(key, (global_batch,), 0, images.shape[0]), local)
  if images.dtype == jnp.uint8:
    return images[idx].astype(jnp.float32) * (2.0 / 255.0) - 1.0
  return images[idx].astype(jnp.float32)


def draw_z(key, global_batch: int, local: int, z_dim: int):
  return _local_slice(jax.random.normal(key, (global_batch, z_dim)), local)


def _per_device(params):
  """Marks replicated parameters as per-device values before differentiating.

  Under shard_map, the gradient of a replicated (device-invariant) input is
  already summed over the axis by autodiff, so a following pmean would leave
  N x the mean gradient. Differentiating a per-device copy instead gives each
  device its local gradient, which the explicit pmean then averages: the
  pmap programming model."""
  return jax.tree.map(lambda p: jax.lax.pcast(p, AXIS, to="varying"), params)


def _apply(module, params, stats, x, train: bool):
  """Applies a module in train mode, returning (output, new BatchNorm stats)."""
  if not stats:
    return module.apply({"params": params}, x, train=train), stats
  out, upd = module.apply({"params": params, "batch_stats": stats}, x, train=train,
                          mutable=["batch_stats"])
  return out, upd["batch_stats"]


def d_step(state: TrainState, real, z, *, G, D, d_tx, loss: str):
  """One discriminator update on a real batch and G(z). Pure; per device."""
  d_loss_fn = LOSSES[loss][0]
  fake, _ = _apply(G, state.g_params, state.g_stats, z, train=True)
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(d_params):
    real_logits, stats = _apply(D, d_params, state.d_stats, real, True)
    fake_logits, stats = _apply(D, d_params, stats, fake, True)
    l, loss_metrics = d_loss_fn(real_logits, fake_logits)
    return l, (loss_metrics, stats)

  (l, (loss_metrics, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      _per_device(state.d_params))
  grads = jax.lax.pmean(grads, AXIS)
  updates, d_opt = d_tx.update(grads, state.d_opt, state.d_params)
  metrics = {"d_loss": l, **loss_metrics, "d_grad_norm": optax.global_norm(grads)}
  return (state.replace(d_params=optax.apply_updates(state.d_params, updates),
                        d_stats=stats, d_opt=d_opt), jax.lax.pmean(metrics, AXIS))


def g_step(state: TrainState, z, *, G, D, g_tx, loss: str):
  """One generator update through the current D. Pure; per device."""
  g_loss_fn = LOSSES[loss][1]

  def loss_fn(g_params):
    fake, g_stats = _apply(G, g_params, state.g_stats, z, True)
    fake_logits, _ = _apply(D, state.d_params, state.d_stats, fake, True)
    l, loss_metrics = g_loss_fn(fake_logits)
    return l, (loss_metrics, g_stats)

  (l, (loss_metrics, g_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(_per_device(state.g_params))
  grads = jax.lax.pmean(grads, AXIS)
  updates, g_opt = g_tx.update(grads, state.g_opt, state.g_params)
  # the norm of the averaged gradient, as the update sees it: a saturating loss
  # shows here first (the minimax G gets almost none while D wins)
  metrics = {"g_loss": l, **loss_metrics, "g_grad_norm": optax.global_norm(grads)}
  return (state.replace(g_params=optax.apply_updates(state.g_params, updates),
                        g_stats=g_stats, g_opt=g_opt), jax.lax.pmean(metrics, AXIS))


def train_steps(state: TrainState, images_u8, *, config, G, D, g_tx, d_tx,
                num_devices: int, num_steps: int):
  """`num_steps` full steps (d_steps D updates + 1 G update each); per device.

  Returns the new state and a dict of per-step metrics, each of shape (num_steps,).
  """
  t = config.train
  local = t.batch_size // num_devices
  gb, zd = t.batch_size, config.model.z_dim

  def one(state, _):
    key = jax.random.fold_in(state.rng, state.step)
    metrics = {}
    for i in range(t.d_steps):
      k_real, k_z = jax.random.split(jax.random.fold_in(key, i))
      state, metrics = d_step(state, draw_real(images_u8, k_real, gb, local),
                              draw_z(k_z, gb, local, zd), G=G, D=D, d_tx=d_tx, loss=t.loss)
    z = draw_z(jax.random.fold_in(key, t.d_steps), gb, local, zd)
    state, g_metrics = g_step(state, z, G=G, D=D, g_tx=g_tx, loss=t.loss)
    return state.replace(step=state.step + 1), {**metrics, **g_metrics}

  if jax.default_backend() != "cpu" or config.model.name not in CONV_MODELS:
    return jax.lax.scan(one, state, None, length=num_steps)
  # XLA:CPU runs convolutions inside a while loop 10-20x slower than at top
  # level (measured here: a conv weight gradient took 30 ms plain and 320-660 ms
  # inside lax.scan/fori_loop), so conv models unroll the K steps on CPU.
  outs = []
  for _ in range(num_steps):
    state, m = one(state, None)
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
  """Returns `fn(state, images_u8, num_steps) -> (state, metrics)`, jitted per
  num_steps, mapped over `mesh` with shard_map, and donating `state`.

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

  def fn(state, images_u8, num_steps: int):
    out = jitted(num_steps)(state, images_u8)
    return jax.block_until_ready(out) if sync else out

  fn.lower = lambda state, images_u8, num_steps: jitted(num_steps).lower(state, images_u8)
  return fn


def make_sample_fn(G):
  """`fn(g_params, g_stats, z) -> images` in inference mode (running BN stats)."""
  @jax.jit
  def sample(g_params, g_stats, z):
    variables = {"params": g_params, **({"batch_stats": g_stats} if g_stats else {})}
    return G.apply(variables, z, train=False)
  return sample


@jax.jit
def all_finite(tree) -> jax.Array:
  """One on-device reduction: True when every float leaf is finite."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves))
