"""Shared layers: the DCGAN 2x up-sampling convolution in several exact formulations.

`Upsample2x` is the transposed convolution of DCGAN (Radford et al. 2015) with
kernel 4, stride 2, padding 1, i.e. PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``:

    out[o] = sum_{i, k : o = 2 i - 1 + k} x[i] * w[k],   k in {0, 1, 2, 3}

It owns one kernel of shape (4, 4, C_in, C_out) and can evaluate it in ways that
give the same function and the same gradients (tested to float precision):

* ``"transpose"``: the textbook form, a stride-1 convolution over the input
  dilated by 2 (``lhs_dilation``) with the flipped kernel, differentiated by
  autodiff. Its kernel gradient is a convolution XLA runs badly: ~265 ms per
  call on XLA:CPU, and on 1-8 of an H100's 132 SMs in cuDNN.
* ``"transpose_wgrad"`` (CPU and GPU default): the same forward, with a custom VJP that
  writes both gradients through the stride-2 convolution the layer transposes,
  conv_s2(u, v)[i] = sum_k u[2i - 1 + k] v[k]: the input gradient is
  conv_s2(dy, w) and the kernel gradient is conv_s2's weight gradient at
  input dy and output cotangent x, dw[k] = sum_i x[i] dy[2i - 1 + k] (channel
  axes swapped). Those are the two convolutions of an ordinary strided conv
  layer's backward pass, which libraries run well.
* ``"subpixel"``: the same map written as a stride-1 convolution to
  4 * C_out channels followed by depth-to-space (Shi et al. 2016); on XLA:CPU
  its weight gradient is ~20x faster than that of ``"transpose"``, and the
  whole step 8-10% slower than under ``"transpose_wgrad"``. Two kernels:

  - 2x2 window (layers with C_out >= WINDOW_MIN_FEATURES): output rows 2p - 1
    and 2p both depend on exactly the inputs x[p - 1] and x[p], so a 2x2 VALID
    convolution over x padded by 1 px computes every output 2x2 block from one
    window; depth-to-space then gives 2H + 2 rows, of which the outer two are
    cropped. The 2x2 x C_in x 4 C_out kernel is a permutation of the 4x4 one
    (every tap used once, no zeros). It spends (H + 1)^2 / H^2 the
    multiply-adds of the transposed convolution (1.31x at 7 px). Its kernel
    gradient is computed as 4 dots (`conv_valid_dot_wgrad`), which XLA:CPU
    runs ~2x faster than its convolution weight gradient for this shape.
  - 3x3 (narrow layers, e.g. the 1- or 3-channel image output; every layer
    under ``"subpixel3x3"``, kept to measure against): each output phase sees
    2 of the 3 taps, the third is a structural zero; 9/4 the multiply-adds,
    but cheaper than the 2x2 window when C_out is tiny.

  In every form the parameters are the one (4, 4, C_in, C_out) kernel, so the
  function class and parameter count are exactly those of the transposed
  convolution.

Separately, ``model.patch_dots`` (on under ``"auto"`` on CPU) computes parts of
DCGAN's k4-s2-p1 layers as dots over gathered 4x4 patches (see "Patch dots"
below): every strided convolution's input gradient, and the forward and input
gradient of the image layers (D's first, G's last, at most IMAGE_MAX_CHANNELS
channels on the image side; G's last layer then ignores ``model.upsample``).

``"auto"`` picks ``"transpose_wgrad"`` on CPU and GPU: on XLA:CPU the step ran
~9% faster than under ``"subpixel"``, on an H100 1.4x (batch 64) and 2.0x
(batch 256) faster than under ``"transpose"``. TPUs keep ``"transpose"`` until
``"transpose_wgrad"`` is measured there. Timings: BENCHMARKS.md, "Why the
defaults are what they are".
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from jax import lax

DCGAN_INIT = nn.initializers.normal(0.02)  # Radford et al. 2015, Sec. 4

# For output phase a (rows) and input offset d in (-1, 0, +1) (columns): which of
# the 4 kernel taps connects them; 4 marks "no tap" (a zero row is padded in).
_PHASE_TAPS = np.array([[3, 1, 4], [4, 2, 0]])
# 2x2 window at padded position p (inputs x[p-1], x[p] in columns): phase 0 is
# output 2p - 1 (taps 2, 0), phase 1 is output 2p (taps 3, 1).
_WINDOW_TAPS = np.array([[2, 0], [3, 1]])
# Up-convolutions with at least this many output channels use the 2x2 window
# (measured on XLA:CPU; BENCHMARKS.md); narrower ones the 3x3 kernel.
WINDOW_MIN_FEATURES = 16
UPSAMPLE_METHODS = ("auto", "subpixel", "subpixel3x3", "transpose", "transpose_wgrad")


def resolve_upsample(method: str, backend: str | None = None) -> str:
  """'auto' -> 'transpose_wgrad' on CPU and GPU (measured faster on both),
  'transpose' on any other backend (TPU: not measured)."""
  if method == "auto":
    backend = backend or jax.default_backend()
    return "transpose_wgrad" if backend in ("cpu", "gpu") else "transpose"
  return method


def subpixel_kernel(w: jax.Array) -> jax.Array:
  """(4, 4, Ci, Co) transposed-conv kernel -> equivalent (3, 3, Ci, 4 * Co)."""
  ci, co = w.shape[2], w.shape[3]
  wp = jnp.pad(w, ((0, 1), (0, 1), (0, 0), (0, 0)))
  k = wp[_PHASE_TAPS[:, :, None, None], _PHASE_TAPS[None, None, :, :]]
  # k: (a, dy, b, dx, Ci, Co) -> (dy, dx, Ci, a, b, Co)
  return k.transpose(1, 3, 4, 0, 2, 5).reshape(3, 3, ci, 4 * co)


def window_kernel(w: jax.Array) -> jax.Array:
  """(4, 4, Ci, Co) transposed-conv kernel -> equivalent (2, 2, Ci, 4 * Co)."""
  ci, co = w.shape[2], w.shape[3]
  k = w[_WINDOW_TAPS[:, :, None, None], _WINDOW_TAPS[None, None, :, :]]
  # k: (a, dy, b, dx, Ci, Co) -> (dy, dx, Ci, a, b, Co)
  return k.transpose(1, 3, 4, 0, 2, 5).reshape(2, 2, ci, 4 * co)


def depth_to_space(x: jax.Array) -> jax.Array:
  n, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, 2 * h, 2 * w, c)


_DN = ("NHWC", "HWIO", "NHWC")


def _conv_valid(x, k):
  return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=_DN)


@jax.custom_vjp
def _conv_valid_dot_wgrad(x, k):
  return _conv_valid(x, k)


def _cvdw_fwd(x, k):
  return _conv_valid(x, k), (x, k)


def _cvdw_bwd(res, dy):
  x, k = res
  kh, kw = k.shape[:2]
  ho, wo = dy.shape[1], dy.shape[2]
  dk = jnp.stack([jnp.einsum("nhwi,nhwo->io", x[:, i:i + ho, j:j + wo], dy)
                  for i in range(kh) for j in range(kw)])
  dx = jax.vjp(lambda x: _conv_valid(x, k), x)[1](dy)[0]
  return dx, dk.reshape(k.shape).astype(k.dtype)


_conv_valid_dot_wgrad.defvjp(_cvdw_fwd, _cvdw_bwd)


def _varying_axes(x) -> frozenset:
  aval = jax.typeof(x)
  mat = getattr(aval, "manual_axis_type", None)  # jax >= 0.10
  return frozenset(mat.varying if mat is not None else (getattr(aval, "vma", None) or ()))


def all_varying(*arrays: jax.Array) -> list[jax.Array]:
  """The arrays cast to per-device along every shard_map axis any of them
  varies over.

  Under shard_map autodiff marks a replicated value that meets a per-device one
  as per-device (a replicated kernel meeting per-device data, or a replicated
  batch meeting D's per-device parameters); the transpose of that cast sums
  the gradient over devices. A custom_vjp has to make the cast itself so that
  its cotangent types agree."""
  axes = frozenset().union(*(_varying_axes(a) for a in arrays))
  out = []
  for a in arrays:
    extra = tuple(sorted(axes - _varying_axes(a)))
    out.append(lax.pcast(a, extra, to="varying") if extra else a)
  return out


def _both_varying(x: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`x` and `k` cast to per-device along every axis either varies over."""
  return tuple(all_varying(x, k))


def conv_valid_dot_wgrad(x: jax.Array, k: jax.Array) -> jax.Array:
  """Stride-1 VALID NHWC convolution whose kernel gradient is a sum over the
  kh * kw taps of dots contracting batch and space (the same numbers as the
  autodiff gradient, computed the way XLA:CPU runs fastest)."""
  return _conv_valid_dot_wgrad(*_both_varying(x, k))


def _conv_transpose(x, w):
  return lax.conv_general_dilated(x, w[::-1, ::-1], (1, 1), ((2, 2), (2, 2)),
                                  lhs_dilation=(2, 2), dimension_numbers=_DN)


def _conv_s2(u, v):
  """The stride-2, padding-1, kernel-4 convolution whose transpose `w` is."""
  return lax.conv_general_dilated(u, v, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


@jax.custom_vjp
def _conv_transpose_wgrad(x, w):
  return _conv_transpose(x, w)


def _ctw_fwd(x, w):
  return _conv_transpose(x, w), (x, w)


def _ctw_bwd(res, dy):
  x, w = res
  # dw[k, ci, co] = sum_i x[i, ci] dy[2i - 1 + k, co]: the weight gradient of the
  # strided convolution z = conv_s2(dy, v) at cotangent dz = x, with v's channel
  # axes swapped. dx is that strided convolution applied to dy with w itself.
  # (The weight gradient of a convolution does not depend on its kernel's value;
  # w itself is passed so that the kernel keeps w's per-device type under
  # shard_map. XLA drops the unused forward.)
  swap = (0, 1, 3, 2)
  wt = w.transpose(swap)
  dx, vjp = jax.vjp(lambda v: _conv_s2(dy, v), wt)
  dv = vjp(x.astype(dx.dtype))[0]
  return dx.astype(x.dtype), dv.transpose(swap).astype(w.dtype)


_conv_transpose_wgrad.defvjp(_ctw_fwd, _ctw_bwd)


def conv_transpose_wgrad(x: jax.Array, w: jax.Array) -> jax.Array:
  """The k4-s2-p1 transposed convolution with its two gradients written as the
  strided convolution it transposes: the input gradient as its forward, the
  kernel gradient as its weight gradient (same numbers as autodiff). See the
  module docstring for the derivation."""
  return _conv_transpose_wgrad(*_both_varying(x, w))


# ---------------------------------------------------------------------------
# Patch dots: parts of the k4-s2-p1 convolutions as dots over gathered 4x4
# patches, where XLA:CPU's own convolution is slower:
# * the transposed convolution that is a strided convolution's input gradient
#   (lhs-dilated in XLA): one dot gives each pixel of dy its 4x4 window of
#   input-gradient contributions, which are then overlap-added;
# * layers with 1 or 3 image channels (D's first, G's last), whose forward and
#   input gradient have only 16 or 48 taps x channels, which XLA:CPU's
#   convolution runs at a fraction of its usual rate.
# Weight gradients stay XLA's convolutions, which beat the patch form; so do
# the forwards of the wide layers. Timings: BENCHMARKS.md, "Why the defaults
# are what they are".

PATCH_DOTS = ("auto", "on", "off")
# A layer whose image side has at most this many channels is an image layer.
IMAGE_MAX_CHANNELS = 4


def resolve_patch_dots(setting: str, backend: str | None = None) -> bool:
  """'auto' -> on for CPU (measured faster there), off elsewhere (on an H100
  they lost 5% at batch 256; TPUs are not measured)."""
  if setting == "auto":
    return (backend or jax.default_backend()) == "cpu"
  return setting == "on"


def _s2_kernel_matrix(w):
  """(4, 4, C, Co) -> (16 C, Co), rows in the (a, b, p, q, c) order of
  `_s2_patches` (kernel tap (2a + p, 2b + q))."""
  c, co = w.shape[2], w.shape[3]
  return w.reshape(2, 2, 2, 2, c, co).transpose(0, 2, 1, 3, 4, 5).reshape(16 * c, co)


def _s2_patches(x):
  """(N, H, W, C) -> (N, H/2, W/2, 16 C): the 4x4 window of the k4-s2-p1
  convolution at every output pixel. The input padded by 1 px is cut into 2x2
  blocks (space-to-depth), and output pixel (i, j) sees blocks i..i+1 x j..j+1."""
  n, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(f"the patch form of the k4-s2-p1 convolution needs an even height and "
                     f"width, got {h}x{w}; use model.patch_dots='off'")
  hb, wb = h // 2 + 1, w // 2 + 1
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  s = xp.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, 4 * c)
  return jnp.concatenate([s[:, a:a + hb - 1, b:b + wb - 1] for a in (0, 1) for b in (0, 1)],
                         axis=-1)


def _patch_dot(x, w):
  """conv_s2(x, w) as one dot over the gathered patches."""
  return jnp.einsum("nhwk,ko->nhwo", _s2_patches(x), _s2_kernel_matrix(w))


def _transpose_patch_dot(x, w):
  """The k4-s2-p1 transposed convolution (kernel (4, 4, Ci, Co)), the transpose
  of `_patch_dot` with the kernel's channel axes swapped: one dot gives each
  input pixel its 4x4 output window (16 Co channels), and the windows are
  overlap-added. In the output padded by 1 px, kernel tap (2a + p, 2b + q) of
  input pixel (i, j) lands in 2x2 block (i + a, j + b), at phase (p, q)."""
  n, h, wd, ci = x.shape
  co = w.shape[3]
  k = w.reshape(2, 2, 2, 2, ci, co).transpose(4, 0, 2, 1, 3, 5).reshape(ci, 16 * co)
  y = jnp.einsum("nhwi,ik->nhwk", x, k).reshape(n, h, wd, 2, 2, 4 * co)
  blocks = sum(jnp.pad(y[:, :, :, a, b], ((0, 0), (a, 1 - a), (b, 1 - b), (0, 0)))
               for a in (0, 1) for b in (0, 1))
  out = blocks.reshape(n, h + 1, wd + 1, 2, 2, co).transpose(0, 1, 3, 2, 4, 5)
  return out.reshape(n, 2 * h + 2, 2 * wd + 2, co)[:, 1:-1, 1:-1]


_SWAP = (0, 1, 3, 2)  # a kernel's channel axes swapped: (4, 4, Ci, Co) -> (4, 4, Co, Ci)


def _s2_weight_grad(x, w, dy):
  """XLA's weight gradient of conv_s2 at input x and output cotangent dy.
  (It does not depend on w's value; w is passed so that the kernel keeps its
  per-device type under shard_map. XLA drops the unused forward.)"""
  return jax.vjp(lambda v: _conv_s2(x, v), w)[1](dy)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_s2_pd(x, w, patch_forward: bool):
  return _patch_dot(x, w) if patch_forward else _conv_s2(x, w)


def _cs2pd_fwd(x, w, patch_forward):
  return _conv_s2_pd(x, w, patch_forward), (x, w)


def _cs2pd_bwd(patch_forward, res, dy):
  x, w = res
  # The input gradient conv_s2^T(dy) is the transposed convolution with the
  # kernel's channel axes swapped.
  dx = _transpose_patch_dot(dy, w.transpose(_SWAP))
  return dx.astype(x.dtype), _s2_weight_grad(x, w, dy).astype(w.dtype)


_conv_s2_pd.defvjp(_cs2pd_fwd, _cs2pd_bwd)


def conv_s2_patch_dots(x: jax.Array, w: jax.Array, patch_forward: bool = False) -> jax.Array:
  """The k4-s2-p1 convolution `_conv_s2(x, w)` with its input gradient as a
  patch dot, and with the forward too if `patch_forward` (for inputs with few
  channels); the weight gradient is XLA's. Same numbers as autodiff."""
  return _conv_s2_pd(*_both_varying(x, w), patch_forward)


@jax.custom_vjp
def _conv_transpose_pd(x, w):
  return _transpose_patch_dot(x, w)


def _ctpd_fwd(x, w):
  return _transpose_patch_dot(x, w), (x, w)


def _ctpd_bwd(res, dy):
  x, w = res
  # As in _ctw_bwd: the input gradient is the strided convolution of dy with
  # w (here as a patch dot: dy has few channels), the kernel gradient that
  # convolution's weight gradient at cotangent x, channel axes swapped.
  wt = w.transpose(_SWAP)
  dx = _patch_dot(dy, wt)
  dv = _s2_weight_grad(dy, wt, x.astype(dx.dtype))
  return dx.astype(x.dtype), dv.transpose(_SWAP).astype(w.dtype)


_conv_transpose_pd.defvjp(_ctpd_fwd, _ctpd_bwd)


def conv_transpose_patch_dots(x: jax.Array, w: jax.Array) -> jax.Array:
  """The k4-s2-p1 transposed convolution with the forward and the input
  gradient as patch dots (for outputs with few channels) and XLA's weight
  gradient; same numbers as autodiff of `_conv_transpose(x, w)`."""
  return _conv_transpose_pd(*_both_varying(x, w))


def upsample2x(x: jax.Array, w: jax.Array, method: str) -> jax.Array:
  """Applies the k4-s2-p1 transposed convolution `w` to NHWC `x`."""
  if method == "patches":
    return conv_transpose_patch_dots(x, w)
  if method == "subpixel" and w.shape[-1] >= WINDOW_MIN_FEATURES:
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return depth_to_space(conv_valid_dot_wgrad(xp, window_kernel(w)))[:, 1:-1, 1:-1]
  if method in ("subpixel", "subpixel3x3"):
    y = jax.lax.conv_general_dilated(x, subpixel_kernel(w), (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=_DN)
    return depth_to_space(y)
  if method == "transpose":
    return _conv_transpose(x, w)
  if method == "transpose_wgrad":
    return conv_transpose_wgrad(x, w)
  raise ValueError(f"unknown upsample method {method!r}; valid: patches, subpixel, "
                   "subpixel3x3, transpose, transpose_wgrad")


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
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(self.dtype)
    return y


class Conv4x4s2(nn.Module):
  """DCGAN's 4x4 stride-2 convolution with padding 1 and patch-dot gradients:
  the parameters of ``nn.Conv(features, (4, 4), (2, 2), ((1, 1), (1, 1)))``,
  the input gradient as a patch dot, and the forward as one too if
  `patch_forward` (image layers)."""
  features: int
  patch_forward: bool = False
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", DCGAN_INIT, (4, 4, x.shape[-1], self.features), jnp.float32)
    y = conv_s2_patch_dots(x.astype(self.dtype), w.astype(self.dtype), self.patch_forward)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(self.dtype)
    return y
