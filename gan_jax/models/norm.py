"""BatchNorm whose per-channel sums XLA:GPU spreads over the whole chip.

`model.batchnorm` picks how DCGAN's train-mode BatchNorm (Ioffe & Szegedy 2015)
computes its statistics and their gradients:

* ``"flax"``: `flax.linen.BatchNorm`, differentiated by autodiff. Its forward
  and backward reduce N*H*W rows to C per-channel sums in one XLA reduction
  each. XLA:GPU emits a column reduction with few kept columns on a grid of
  C / 64 blocks while the rows fit its race-free bound (32 x 128 = 4,096 rows,
  `ReductionDimensionRaceFreeBound` in openxla/xla's reduction_utils.cc). For
  the DCGAN's 7x7x128 BatchNorms at batch 64 (3,136 rows) that is 2 of an
  H100's 132 SMs.
* ``"two_stage"``: the same function and parameters with every per-channel
  sum taken in two passes, first per example over its pixels (N x C results,
  many blocks), then over the batch, with an `optimization_barrier` between so
  that XLA does not merge them back into one reduction. The gradients come from
  a custom VJP written with the same sums: d bias = sum(dy),
  d scale = sum(dy * xhat), and
  dx = scale * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
  plus the terms from any cotangent of the returned mean and variance.
* ``"auto"``: on GPUs, ``"two_stage"`` for the layers whose per-device row
  count N*H*W is at most TWO_STAGE_MAX_ROWS (XLA's race-free bound, where it
  reduces in one pass on C / 64 blocks) and ``"flax"`` for the others, whose
  sums XLA already splits; ``"flax"`` on CPUs (where two stages made the step
  about 6% slower) and TPUs (not measured). At batch 64 on a GPU, ``"two_stage"`` at every layer is
  faster still: two stages also pay at G's 14x14x64 layer (12,544 rows), above
  the bound, which stays until a higher one is timed at batch 256. Timings:
  BENCHMARKS.md, "Why the defaults are what they are".

Both compute the biased batch variance as E[x^2] - E[x]^2 in float32 (flax's
``use_fast_variance``), average the statistics over ``axis_name`` with
`lax.pmean` under shard_map, and keep flax's parameter and statistics names
(``scale``, ``bias``; ``mean``, ``var``), so checkpoints are interchangeable.
In inference mode (running statistics) no sums are taken, and both layers
compute (x - mean) * (rsqrt(var + epsilon) * scale) + bias in the same order.
"""
from __future__ import annotations

import functools
import sys
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax import lax

from gan_jax.models.layers import all_varying

BATCHNORM = ("auto", "flax", "two_stage")
# XLA:GPU's ReductionDimensionRaceFreeBound for column reductions, 32 x 128 rows.
TWO_STAGE_MAX_ROWS = 4096


def resolve_batchnorm(setting: str, backend: str | None = None) -> int:
  """The largest per-device row count (N*H*W) of a BatchNorm layer that takes
  the two-stage sums: 0 (none) for 'flax', every layer for 'two_stage', and
  under 'auto' TWO_STAGE_MAX_ROWS on GPUs, 0 on CPUs and TPUs."""
  if setting == "auto":
    return TWO_STAGE_MAX_ROWS if (backend or jax.default_backend()) == "gpu" else 0
  return sys.maxsize if setting == "two_stage" else 0


def channel_sums(x: jax.Array) -> jax.Array:
  """Sum over every axis but the last, (N, ..., C) -> (C,): per example over
  its other axes, then over the batch (see the module docstring)."""
  if x.ndim <= 2:
    return jnp.sum(x, axis=0)
  per_example = jnp.sum(x, axis=tuple(range(1, x.ndim - 1)))
  return jnp.sum(lax.optimization_barrier(per_example), axis=0)


def _rows(x: jax.Array, axis_name) -> tuple[int, Any]:
  """(rows on this device, rows over every device on axis_name)."""
  local = x.size // x.shape[-1]
  return local, (local * lax.axis_size(axis_name) if axis_name else local)


def _device_mean(local_means: jax.Array, axis_name) -> jax.Array:
  """Per-device means averaged over axis_name (equal row counts per device)."""
  return lax.pmean(local_means, axis_name) if axis_name else local_means


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batchnorm_train(x, scale, bias, epsilon: float, axis_name):
  return _bn_fwd(x, scale, bias, epsilon, axis_name)[0]


def _bn_fwd(x, scale, bias, epsilon, axis_name):
  x32 = x.astype(jnp.float32)
  c = x.shape[-1]
  both = jnp.concatenate([x32, x32 * x32], axis=-1)
  m = _device_mean(channel_sums(both) / _rows(x, axis_name)[0], axis_name)
  mean = m[:c]
  var = jnp.maximum(0.0, m[c:] - mean * mean)
  rstd = lax.rsqrt(var + epsilon)
  y = (x32 - mean) * (rstd * scale) + bias  # flax's order of operations
  return (y, mean, var), (x, mean, rstd, scale)


def _bn_bwd(epsilon, axis_name, res, cts):
  x, mean, rstd, scale = res
  dy, dmean, dvar = cts
  c = x.shape[-1]
  xhat = (x.astype(jnp.float32) - mean) * rstd
  dy = dy.astype(jnp.float32)
  both = jnp.concatenate([dy, dy * xhat], axis=-1)
  sums = channel_sums(both)
  dbias, dscale = sums[:c], sums[c:]
  local, total = _rows(x, axis_name)
  g = _device_mean(sums / local, axis_name)  # means of dy and dy * xhat over the batch
  dx = (scale * rstd) * (dy - g[:c] - xhat * g[c:])
  # mean = sum(x) / total and var = sum(x^2) / total - mean^2
  dx = dx + (dmean + 2.0 * dvar * xhat / rstd) / total
  return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias


_batchnorm_train.defvjp(_bn_fwd, _bn_bwd)


def batchnorm_train(x, scale, bias, epsilon: float = 1e-5, axis_name=None):
  """Train-mode BatchNorm over every axis but the last: (y in float32, batch
  mean, biased batch variance), with the two-stage sums and their custom VJP."""
  return _batchnorm_train(*all_varying(x, scale, bias), epsilon, axis_name)


class BatchNorm(nn.Module):
  """`flax.linen.BatchNorm` over the last axis with `model.batchnorm`'s sums.

  Named like flax's layer, so the parameter tree (``BatchNorm_0/scale``...) and
  the statistics tree are the same under either setting."""
  use_running_average: bool
  momentum: float = 0.99
  epsilon: float = 1e-5
  axis_name: str | None = None
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    if x.ndim < 2:
      raise ValueError(f"BatchNorm needs an input of shape (batch, ..., channels), got "
                       f"shape {x.shape}")
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
      y = (x - mean) * (lax.rsqrt(var + self.epsilon) * scale) + bias
    else:
      # flax leaves the cross-device average out at init, outside shard_map
      axis = None if self.is_initializing() else self.axis_name
      y, mean, var = batchnorm_train(x, scale, bias, self.epsilon, axis)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.astype(self.dtype or jnp.result_type(x, jnp.float32))
