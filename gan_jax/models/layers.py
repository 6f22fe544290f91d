"""Shared layers: the DCGAN 2x up-sampling convolution in two exact formulations.

`Upsample2x` is the transposed convolution of DCGAN (Radford et al. 2015) with
kernel 4, stride 2, padding 1, i.e. PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``:

    out[o] = sum_{i, k : o = 2 i - 1 + k} x[i] * w[k],   k in {0, 1, 2, 3}

It owns one kernel of shape (4, 4, C_in, C_out) and can evaluate it two ways that
give the same function (tested to float precision):

* ``"transpose"``: the textbook form, a stride-1 convolution over the input
  dilated by 2 (``lhs_dilation``) with the flipped kernel.
* ``"subpixel"``: the same map written as a 3x3 stride-1 convolution to
  4 * C_out channels followed by depth-to-space (Shi et al. 2016). Output phase
  a in {0, 1} of each axis only sees 2 of the 3 taps; the other tap is a
  structural zero, so the function class and parameter count are exactly those
  of the transposed convolution. On XLA:CPU its weight gradient is ~20x faster
  (see BENCHMARKS.md); it spends 9/4 the multiply-adds, so accelerators keep
  ``"transpose"`` under ``"auto"``.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

DCGAN_INIT = nn.initializers.normal(0.02)  # Radford et al. 2015, Sec. 4

# For output phase a (rows) and input offset d in (-1, 0, +1) (columns): which of
# the 4 kernel taps connects them; 4 marks "no tap" (a zero row is padded in).
_PHASE_TAPS = np.array([[3, 1, 4], [4, 2, 0]])
UPSAMPLE_METHODS = ("auto", "subpixel", "transpose")


def resolve_upsample(method: str) -> str:
  """'auto' -> 'subpixel' on CPU, 'transpose' on GPU/TPU."""
  if method == "auto":
    return "subpixel" if jax.default_backend() == "cpu" else "transpose"
  return method


def subpixel_kernel(w: jax.Array) -> jax.Array:
  """(4, 4, Ci, Co) transposed-conv kernel -> equivalent (3, 3, Ci, 4 * Co)."""
  ci, co = w.shape[2], w.shape[3]
  wp = jnp.pad(w, ((0, 1), (0, 1), (0, 0), (0, 0)))
  k = wp[_PHASE_TAPS[:, :, None, None], _PHASE_TAPS[None, None, :, :]]
  # k: (a, dy, b, dx, Ci, Co) -> (dy, dx, Ci, a, b, Co)
  return k.transpose(1, 3, 4, 0, 2, 5).reshape(3, 3, ci, 4 * co)


def depth_to_space(x: jax.Array) -> jax.Array:
  n, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, 2 * h, 2 * w, c)


_DN = ("NHWC", "HWIO", "NHWC")


def upsample2x(x: jax.Array, w: jax.Array, method: str) -> jax.Array:
  """Applies the k4-s2-p1 transposed convolution `w` to NHWC `x`."""
  if method == "subpixel":
    y = jax.lax.conv_general_dilated(x, subpixel_kernel(w), (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=_DN)
    return depth_to_space(y)
  if method == "transpose":
    return jax.lax.conv_general_dilated(x, w[::-1, ::-1], (1, 1), ((2, 2), (2, 2)),
                                        lhs_dilation=(2, 2), dimension_numbers=_DN)
  raise ValueError(f"unknown upsample method {method!r}; valid: subpixel, transpose")


class Upsample2x(nn.Module):
  """DCGAN's stride-2 transposed convolution (kernel 4): H x W -> 2H x 2W."""
  features: int
  method: str = "subpixel"
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", DCGAN_INIT, (4, 4, x.shape[-1], self.features), jnp.float32)
    y = upsample2x(x.astype(self.dtype), w.astype(self.dtype), self.method)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y
