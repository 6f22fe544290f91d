import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from gan_jax import data, models, steps
from gan_jax.data import sampler
from gan_jax.losses import LOSSES
from gan_jax.state import create_state, make_optimizers
from conftest import tiny_config


def _setup(config, devices=None):
  mesh = steps.make_mesh(devices)
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx), mesh)
  images = steps.replicate(data.load(config.data).images, mesh)
  return mesh, G, D, g_tx, d_tx, state, images


def test_one_d_update_lowers_d_loss_on_fixed_batch():
  config = tiny_config(**{"train.d_lr": 1e-3})
  mesh, G, D, _, d_tx, state, images = _setup(config, jax.devices()[:1])
  real = jnp.asarray(np.asarray(images[:16]), jnp.float32) / 127.5 - 1
  z = jax.random.normal(jax.random.PRNGKey(3), (16, config.model.z_dim))
  step = functools.partial(steps.d_step, G=G, D=D, d_tx=d_tx, loss="non_saturating",
                           penalty=config.penalty)
  fn = jax.jit(jax.shard_map(lambda s, x, z: step(s, {"image": x}, z, None, None),
                             mesh=mesh, in_specs=(P(), P(), P()), out_specs=(P(), P())))
  s1, m1 = fn(state, real, z)
  s2, m2 = fn(s1, real, z)
  assert float(m2["d_loss"]) < float(m1["d_loss"])
  # G and its statistics are untouched by a D update
  assert jax.tree.all(jax.tree.map(jnp.array_equal, s1.g.params, state.g.params))


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_train_loss_is_the_loss_the_step_logs(loss):
  """train.loss reaches the train step: one step's logged d_loss and g_loss are
  the named losses recomputed here on the same draws, D's from the pre-step
  state, G's through the D it was trained against (after the D update). The
  minimax G loss is negative, the non-saturating one positive."""
  config = tiny_config(**{"model.name": "mlp", "train.loss": loss})
  mesh, G, D, g_tx, d_tx, state, images = _setup(config, jax.devices()[:1])
  s0 = jax.device_get(state)  # the call donates state
  gb, zd = config.train.batch_size, config.model.z_dim
  key = jax.random.fold_in(s0.rng, 0)
  k_real, k_z = jax.random.split(jax.random.fold_in(key, 0))
  # one device: its slice of each draw is the whole draw (see steps.draw_real)
  idx = jax.random.randint(k_real, (gb,), 0, images.shape[0])
  real = np.asarray(images)[np.asarray(idx)].astype(np.float32) * (2 / 255) - 1
  z_d = jax.random.normal(k_z, (gb, zd))
  z_g = jax.random.normal(jax.random.fold_in(key, 1), (gb, zd))
  s1, m = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)(state, images, 1)
  d_loss_fn, g_loss_fn = LOSSES[loss]
  g = lambda p, z: G.apply({"params": p}, z)
  d = lambda p, x: D.apply({"params": p}, x)
  want_d, want_dm = d_loss_fn(d(s0.d.params, real), d(s0.d.params, g(s0.g.params, z_d)))
  want_g, _ = g_loss_fn(d(s1.d.params, g(s0.g.params, z_g)))
  np.testing.assert_allclose(m["d_loss"][0], want_d, rtol=1e-5)
  np.testing.assert_allclose(m["g_loss"][0], want_g, rtol=1e-5)
  for k, v in want_dm.items():  # what the loss reports of D's outputs, logged as it is
    np.testing.assert_allclose(m[k][0], v, rtol=1e-5)
  if loss in ("minimax", "non_saturating"):
    assert (float(m["g_loss"][0]) < 0) == (loss == "minimax")


def test_d_steps_makes_that_many_d_updates_per_g_update():
  config = tiny_config(**{"train.d_steps": 3})
  mesh, G, D, g_tx, d_tx, state, images = _setup(config, jax.devices()[:1])
  fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  state, metrics = fn(state, images, 2)
  assert int(state.step) == 2
  assert int(state.d.opt_state.inner_state[0].count) == 6
  assert int(state.g.opt_state.inner_state[0].count) == 2
  assert metrics["d_loss"].shape == (2,)


# mlp_batchnorm: the MNIST MLP GAN's generator, BatchNorm statistics over the devices
@pytest.mark.parametrize("model", ["dcgan", "mlp", "mlp_batchnorm"])
def test_one_device_and_four_devices_give_the_same_trajectory(model):
  assert jax.device_count() == 4, "conftest sets JAX_NUM_CPU_DEVICES=4"
  config = tiny_config(**{"model.name": model.split("_")[0], "train.d_steps": 2})
  if model == "mlp_batchnorm":
    config.model.g_norm, config.model.g_activation = "batchnorm", "leaky_relu"
  runs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh, G, D, g_tx, d_tx, state, images = _setup(config, devices)
    fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
    history = []
    for _ in range(3):
      state, metrics = fn(state, images, 2)
      history.append(jax.device_get(metrics))
    runs.append((jax.device_get(state), history))
  (s1, h1), (s4, h4) = runs
  for a, b in zip(h1, h4):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-5)
  leaves1 = jax.tree.leaves((s1.g.params, s1.d.params, s1.g.collections, s1.d.collections))
  leaves4 = jax.tree.leaves((s4.g.params, s4.d.params, s4.g.collections, s4.d.collections))
  for a, b in zip(leaves1, leaves4):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  # and the params did move: the comparison is not trivially between initial states
  init = create_state(config, *models.build(config), *make_optimizers(config))
  assert not np.allclose(jax.tree.leaves(init.g.params)[0], jax.tree.leaves(s1.g.params)[0])


# dcgan unrolls the K steps on CPU, mlp runs them in lax.scan (the accelerator path)
@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_steps_per_call_is_the_same_trajectory(model):
  config = tiny_config(**{"model.name": model})
  out, params = [], []
  for k, calls in ((1, 4), (4, 1), (2, 2)):
    mesh, G, D, g_tx, d_tx, state, images = _setup(config, jax.devices()[:1])
    fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
    losses = []
    for _ in range(calls):
      state, m = fn(state, images, k)
      losses.extend(np.asarray(m["g_loss"]).tolist())
    assert int(state.step) == 4
    out.append(losses)
    params.append(jax.tree.leaves(jax.device_get((state.g.params, state.d.params))))
  for i in (1, 2):
    np.testing.assert_allclose(out[0], out[i], rtol=1e-5)
    for a, b in zip(params[0], params[i]):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_batch_draws_are_in_range_and_global():
  images = jnp.arange(10, dtype=jnp.uint8)[:, None, None, None] * 25
  mesh = steps.make_mesh()
  f = jax.jit(jax.shard_map(
      lambda im, k: sampler.draw_batch({"image": im}, k, 8, 2, steps.AXIS)["image"], mesh=mesh,
                            in_specs=(P(), P()), out_specs=P("batch")))
  x = f(images, jax.random.PRNGKey(0))
  assert x.shape == (8, 1, 1, 1) and float(x.min()) >= -1 and float(x.max()) <= 1
  idx = jax.random.randint(jax.random.PRNGKey(0), (8,), 0, 10)
  np.testing.assert_allclose(np.asarray(x).ravel(), np.asarray(idx) * 25 * 2 / 255 - 1, atol=1e-6)


def test_all_finite():
  assert bool(steps.all_finite({"a": jnp.ones(3), "n": jnp.arange(3)}))
  assert not bool(steps.all_finite({"a": jnp.array([1.0, jnp.nan])}))
  assert not bool(steps.all_finite({"a": jnp.array([jnp.inf])}))


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_gradient_scale_is_independent_of_device_count(model):
  """With plain SGD (not scale-invariant like Adam) one D and one G update on
  1 and 4 devices must move the parameters by the same amount: gradients are
  the global-batch mean, not the sum over devices."""
  import optax
  config = tiny_config(**{"model.name": model})
  G, D = models.build(config)
  tx = optax.sgd(0.1)
  out = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = steps.make_mesh(devices)
    state = steps.replicate(create_state(config, G, D, tx, tx), mesh)
    images = steps.replicate(data.load(config.data).images, mesh)
    state, _ = steps.make_train_fn(config, G, D, tx, tx, mesh)(state, images, 1)
    out.append(jax.device_get(state))
  init = create_state(config, G, D, tx, tx)
  for part in ("g", "d"):
    params = lambda s: getattr(s, part).params  # noqa: E731
    d1 = jax.tree.leaves(jax.tree.map(lambda a, b: a - b, params(out[0]), params(init)))
    d4 = jax.tree.leaves(jax.tree.map(lambda a, b: a - b, params(out[1]), params(init)))
    for a, b in zip(d1, d4):
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)


def test_multi_device_cpu_calls_return_finished_results():
  """Calls on several CPU devices wait for their results: letting the next
  call's all-reduce start early can deadlock XLA:CPU (see make_train_fn)."""
  config = tiny_config()
  mesh, G, D, g_tx, d_tx, state, images = _setup(config)
  assert mesh.size == 4
  fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  for _ in range(5):
    state, metrics = fn(state, images, 2)
    assert all(x.is_ready() for x in jax.tree.leaves((state, metrics)))


@pytest.mark.parametrize("model, gets_options", [("dcgan", True), ("mlp", False)])
def test_cpu_train_step_compile_options_go_to_conv_models_only(monkeypatch, model,
                                                                gets_options):
  config = tiny_config(**{"model.name": model})
  mesh, G, D, g_tx, d_tx, state, images = _setup(config, jax.devices()[:1])
  steps.cpu_compiler_options()  # its one-time probe compiles a jitted function too
  seen, jit = [], jax.jit
  monkeypatch.setattr(jax, "jit", lambda f, **kw: seen.append(kw.get("compiler_options"))
                      or jit(f, **kw))
  fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  state, _ = fn(state, images, 2)
  assert int(state.step) == 2
  assert seen == [steps.CPU_COMPILER_OPTIONS if gets_options else None]


def test_cpu_compile_options_take_convolutions_off_ynnpack():
  """On this jaxlib YNNPACK takes the DCGAN's 64->128 stride-2 convolution by
  default; under CPU_COMPILER_OPTIONS XLA's own kernel runs it (faster here,
  BENCHMARKS.md) and it gives the same numbers."""
  assert steps.cpu_compiler_options() == steps.CPU_COMPILER_OPTIONS
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)),
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 14, 14, 64))
  w = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 64, 128))
  default = jax.jit(conv).lower(x, w).compile()
  ours = jax.jit(conv, compiler_options=steps.CPU_COMPILER_OPTIONS).lower(x, w).compile()
  assert "ynn_fusion" in default.as_text() and "ynn_fusion" not in ours.as_text()
  np.testing.assert_allclose(ours(x, w), default(x, w), rtol=1e-4, atol=1e-4)


def test_rejected_cpu_compile_options_fall_back_to_defaults(monkeypatch, caplog):
  monkeypatch.setattr(steps, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option": True})
  steps.cpu_compiler_options.cache_clear()
  try:
    assert steps.cpu_compiler_options() is None
    assert "rejected the train step's compile options" in caplog.text
  finally:
    steps.cpu_compiler_options.cache_clear()


@pytest.mark.parametrize("devices", [1, 4])
def test_step_gradients_are_those_of_the_global_batch_losses(devices):
  """One train step's D and G gradients (kept by an optimiser that stores them
  and leaves the parameters alone) equal jax.grad of the named losses on the
  whole global batch, taken here outside shard_map with single-device models:
  so the per-device gradients, their pmean and the cross-device BatchNorm
  together give the global-batch gradient. At 16 px, where D has a BatchNorm
  too (the 8 px tiny config's D has none)."""
  import optax
  config = tiny_config(**{"data.image_size": 16, "train.loss": "minimax"})
  G, D = models.build(config)
  keep = optax.GradientTransformation(
      lambda p: jax.tree.map(jnp.zeros_like, p),
      lambda g, s, p=None: (jax.tree.map(jnp.zeros_like, g), g))
  s0 = jax.device_get(create_state(config, G, D, keep, keep))
  images = data.load(config.data).images
  mesh = steps.make_mesh(jax.devices()[:devices])
  out, _ = steps.make_train_fn(config, G, D, keep, keep, mesh)(
      steps.replicate(s0, mesh), steps.replicate(images, mesh), 1)
  got_d, got_g = jax.device_get((out.d.opt_state, out.g.opt_state))

  gb, zd = config.train.batch_size, config.model.z_dim
  key = jax.random.fold_in(s0.rng, 0)
  k_real, k_z = jax.random.split(jax.random.fold_in(key, 0))
  idx = np.asarray(jax.random.randint(k_real, (gb,), 0, images.shape[0]))
  real = images[idx].astype(np.float32) * (2 / 255) - 1
  z_d = jax.random.normal(k_z, (gb, zd))
  z_g = jax.random.normal(jax.random.fold_in(key, 1), (gb, zd))
  G1, D1 = G.clone(axis_name=None), D.clone(axis_name=None)  # whole batch, one device

  def apply(M, params, stats, x):
    y, _ = M.apply({"params": params, **stats}, x, train=True,
                   mutable=["batch_stats"])
    return y

  d_loss_fn, g_loss_fn = LOSSES[config.train.loss]
  fake = apply(G1, s0.g.params, s0.g.collections, z_d)
  want_d = jax.grad(lambda p: d_loss_fn(apply(D1, p, s0.d.collections, real),
                                        apply(D1, p, s0.d.collections, fake))[0])(s0.d.params)
  want_g = jax.grad(lambda p: g_loss_fn(
      apply(D1, s0.d.params, s0.d.collections,
            apply(G1, p, s0.g.collections, z_g)))[0])(s0.g.params)
  assert "BatchNorm_0" in want_d and "BatchNorm_0" in want_g
  for got, want in ((got_d, want_d), (got_g, want_g)):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.max(np.abs(b)))
