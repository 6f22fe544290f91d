"""BatchNorm with two-stage sums (gan_jax/models/norm.py) against flax's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from gan_jax import models, steps
from gan_jax.models.dcgan import DCGANGenerator
from gan_jax.models.norm import (TWO_STAGE_MAX_ROWS, BatchNorm, batchnorm_train, channel_sums,
                                 resolve_batchnorm)
from gan_jax.state import create_state, make_optimizers
from conftest import tiny_config


@pytest.mark.parametrize("shape", [(6, 5, 5, 8), (3, 4, 6, 2, 5), (12, 7)])
def test_channel_sums_are_the_sums_over_all_but_the_last_axis(shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  np.testing.assert_allclose(channel_sums(x), np.asarray(x).reshape(-1, shape[-1]).sum(0),
                             rtol=1e-5, atol=1e-5)


def _reference(x, scale, bias, eps=1e-5):
  """Train-mode BatchNorm written out with jnp, differentiated by autodiff."""
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  var = jnp.maximum(0.0, jnp.mean(x * x, axes) - mean * mean)
  return (x - mean) * (jax.lax.rsqrt(var + eps) * scale) + bias, mean, var


@pytest.mark.parametrize("shape", [(6, 5, 5, 8), (12, 7)])
def test_two_stage_vjp_is_the_autodiff_gradient_including_mean_and_var(shape):
  k = jax.random.split(jax.random.PRNGKey(1), 6)
  x = 2 * jax.random.normal(k[0], shape) + 0.5
  scale = 1 + 0.2 * jax.random.normal(k[1], shape[-1:])
  bias = 0.1 * jax.random.normal(k[2], shape[-1:])
  ty, tm, tv = (jax.random.normal(k[3], shape), jax.random.normal(k[4], shape[-1:]),
                jax.random.normal(k[5], shape[-1:]))

  def loss(fn, x, scale, bias):  # every output carries a cotangent
    y, mean, var = fn(x, scale, bias)
    return jnp.sum(jnp.sin(y) * ty) + jnp.sum(mean * tm) + jnp.sum(var * tv)

  got = jax.value_and_grad(lambda *a: loss(batchnorm_train, *a), (0, 1, 2))(x, scale, bias)
  ref = jax.value_and_grad(lambda *a: loss(_reference, *a), (0, 1, 2))(x, scale, bias)
  np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
  for g, r in zip(got[1], ref[1]):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(r))))


def _reference_pmean(x, scale, bias, eps, axis_name):
  """flax's statistics (float32, averaged over axis_name) and normalisation."""
  axes = tuple(range(x.ndim - 1))
  x32 = x.astype(jnp.float32)
  mean, mean2 = lax.pmean(jnp.stack([x32.mean(axes), (x32 * x32).mean(axes)]), axis_name)
  var = jnp.maximum(0.0, mean2 - mean * mean)
  return (x32 - mean) * (lax.rsqrt(var + eps) * scale) + bias, mean, var


@pytest.mark.parametrize("shape,dtype,per_device_params", [
    ((8, 3, 3, 5), jnp.float32, False), ((8, 3, 3, 5), jnp.float32, True),
    ((8, 5), jnp.float32, True), ((8, 3, 3, 5), jnp.bfloat16, True)])
def test_two_stage_vjp_under_shard_map_on_four_devices(shape, dtype, per_device_params):
  """Statistics averaged over 4 devices: the gradient, including the terms of
  the returned mean and variance (which divide by the global row count), is
  autodiff's through lax.pmean; parameters replicated or per-device."""
  assert jax.device_count() == 4, "conftest sets JAX_NUM_CPU_DEVICES=4"
  mesh = jax.make_mesh((4,), ("batch",))
  k = jax.random.split(jax.random.PRNGKey(7), 6)
  x = (2 * jax.random.normal(k[0], shape) + 0.5).astype(dtype)
  scale = 1 + 0.2 * jax.random.normal(k[1], shape[-1:])
  bias = 0.1 * jax.random.normal(k[2], shape[-1:])
  ty, tm, tv = (jax.random.normal(k[3], shape), jax.random.normal(k[4], shape[-1:]),
                jax.random.normal(k[5], shape[-1:]))

  def grads(fn):
    def per_device(x, scale, bias, ty):
      def loss(x, scale, bias):
        y, mean, var = fn(x, scale, bias, 1e-5, "batch")
        return jnp.sum(jnp.sin(y) * ty) + jnp.sum(mean * tm) + jnp.sum(var * tv)
      if per_device_params:
        scale, bias = (lax.pcast(a, "batch", to="varying") for a in (scale, bias))
      gx, gs, gb = jax.grad(loss, (0, 1, 2))(x, scale, bias)
      if per_device_params:
        gs, gb = lax.psum(gs, "batch"), lax.psum(gb, "batch")
      return gx, gs, gb
    f = jax.shard_map(per_device, mesh=mesh, in_specs=(P("batch"), P(), P(), P("batch")),
                      out_specs=(P("batch"), P(), P()))
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    return jax.block_until_ready(jax.jit(f)(put(x, P("batch")), put(scale, P()),
                                            put(bias, P()), put(ty, P("batch"))))

  got, ref = grads(batchnorm_train), grads(_reference_pmean)
  assert got[0].dtype == ref[0].dtype == dtype
  tol = 1e-5 if dtype == jnp.float32 else 1e-2
  for g, r in zip(got, ref):
    g, r = np.asarray(g, np.float32), np.asarray(r, np.float32)
    np.testing.assert_allclose(g, r, rtol=tol, atol=tol * float(np.max(np.abs(r))))


def test_init_with_axis_name_outside_shard_map_is_flax():
  """Like flax, the layer leaves the cross-device average and the statistics
  update out while initialising, so init works outside shard_map."""
  x = 2 * jax.random.normal(jax.random.PRNGKey(8), (4, 3, 3, 6)) + 1
  vs = [cls(use_running_average=False, axis_name="batch").init(jax.random.PRNGKey(0), x)
        for cls in (nn.BatchNorm, BatchNorm)]
  assert jax.tree.all(jax.tree.map(lambda a, b: a.dtype == b.dtype and np.array_equal(a, b),
                                   *vs))


def test_one_dimensional_input_is_refused():
  with pytest.raises(ValueError, match=r"shape \(batch, \.\.\., channels\), got shape \(5,\)"):
    BatchNorm(use_running_average=False).init(jax.random.PRNGKey(0), jnp.ones(5))


def test_module_equals_flax_batchnorm_in_both_modes():
  """Same variables, outputs, running statistics and parameter gradients."""
  x = 2 * jax.random.normal(jax.random.PRNGKey(2), (8, 7, 7, 16)) + 0.5
  t = jax.random.normal(jax.random.PRNGKey(3), x.shape)
  out = []
  for cls in (nn.BatchNorm, BatchNorm):
    layer = cls(use_running_average=False, momentum=0.9, epsilon=1e-5)
    v = layer.init(jax.random.PRNGKey(4), x)
    params = {"scale": 1 + 0.1 * jnp.arange(16.0), "bias": 0.01 * jnp.arange(16.0)}

    def loss(params, x, layer=layer, v=v):
      y, upd = layer.apply({"params": params, **v}, x, mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y) * t), upd

    (l, upd), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(params, x)
    infer = cls(use_running_average=True, epsilon=1e-5).apply({"params": params, **upd}, x)
    out.append((jax.tree.map(jnp.shape, v), l, upd, grads, infer))
  (shapes_f, *flax_out), (shapes_t, *two_out) = out
  assert shapes_f == shapes_t == {"batch_stats": {"mean": (16,), "var": (16,)},
                                  "params": {"bias": (16,), "scale": (16,)}}
  for a, b in zip(jax.tree.leaves(flax_out), jax.tree.leaves(two_out)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(a))))


def test_two_stage_bfloat16_keeps_dtypes_and_equals_flax():
  x = (2 * jax.random.normal(jax.random.PRNGKey(5), (4, 3, 3, 8)) + 0.5).astype(jnp.bfloat16)
  t = jax.random.normal(jax.random.PRNGKey(9), x.shape)
  out = []
  for cls in (nn.BatchNorm, BatchNorm):
    layer = cls(use_running_average=False, momentum=0.9, dtype=jnp.bfloat16)
    v = layer.init(jax.random.PRNGKey(6), x)
    params = {"scale": 1 + 0.1 * jnp.arange(8.0), "bias": 0.05 * jnp.arange(8.0)}

    def f(p, x, layer=layer, v=v):
      y, upd = layer.apply({"params": p, **v}, x, mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y.astype(jnp.float32)) * t), (y, upd)

    (_, (y, upd)), (gp, gx) = jax.value_and_grad(f, (0, 1), has_aux=True)(params, x)
    assert y.dtype == gx.dtype == jnp.bfloat16
    assert gp["scale"].dtype == gp["bias"].dtype == jnp.float32
    out.append((y, upd, gp, gx))
  for a, b in zip(*(jax.tree.leaves(o) for o in out)):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-2 * float(np.max(np.abs(a))))


def _barriers(batchnorm: str, backend: str, batch: int) -> int:
  """Two-stage sums in G's train-mode forward at 28 px (one barrier per layer)."""
  G = DCGANGenerator(28, 1, 8, "transpose_wgrad",
                     bn_two_stage_rows=resolve_batchnorm(batchnorm, backend), axis_name=None)
  z = jnp.zeros((batch, 4))
  v = jax.eval_shape(G.init, jax.random.PRNGKey(0), z)
  return str(jax.make_jaxpr(lambda v: G.apply(v, z, mutable=["batch_stats"]))(v)).count(
      "optimization_barrier")


def test_auto_takes_two_stage_sums_on_gpus_for_layers_within_xla_bound():
  assert resolve_batchnorm("auto", "gpu") == TWO_STAGE_MAX_ROWS == 4096
  assert resolve_batchnorm("auto", "cpu") == resolve_batchnorm("auto", "tpu") == 0
  assert resolve_batchnorm("flax", "gpu") == 0 and resolve_batchnorm("two_stage", "cpu") > 10**9
  # G's BatchNorms at batch 64 have 64*7*7 = 3,136 and 64*14*14 = 12,544 rows
  assert _barriers("auto", "gpu", 64) == 1
  assert _barriers("auto", "gpu", 256) == 0   # 12,544 and 50,176 rows: flax's sums
  assert _barriers("two_stage", "cpu", 256) == 2
  assert _barriers("auto", "cpu", 64) == _barriers("flax", "gpu", 64) == 0


def _trajectory(batchnorm: str, devices):
  config = tiny_config(**{"data.image_size": 16, "train.d_steps": 2,
                          "model.batchnorm": batchnorm})
  mesh = steps.make_mesh(devices)
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  from gan_jax import data
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx), mesh)
  images = steps.replicate(data.load(config.data).images, mesh)
  fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  losses = []
  for _ in range(2):
    state, m = fn(state, images, 2)
    losses.append(jax.device_get(m))
  state = jax.device_get(state)
  g, d = state.g, state.d
  return losses, jax.tree.leaves((g.params, d.params, g.collections, d.collections))


@pytest.mark.parametrize("n", [1, 4])
def test_two_stage_training_equals_flax_on_one_and_four_devices(n):
  """Whole D and G updates (D's BatchNorm in both, G's per-device and
  replicated parameters) under shard_map: two-stage sums, whose gradients
  average the statistics' terms over devices by hand, equal flax's autodiff."""
  assert jax.device_count() == 4, "conftest sets JAX_NUM_CPU_DEVICES=4"
  (lf, pf), (lt, pt) = (_trajectory(bn, jax.devices()[:n]) for bn in ("flax", "two_stage"))
  for a, b in zip(lf, lt):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-5)
  assert len(pf) == len(pt)
  for a, b in zip(pf, pt):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
