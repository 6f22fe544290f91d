"""Model registry: name -> builder(config) -> (generator, discriminator)."""
from __future__ import annotations

import jax.numpy as jnp

from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_plan
from gan_jax.models.layers import resolve_patch_dots, resolve_upsample
from gan_jax.models.mlp import MLPDiscriminator, MLPGenerator
from gan_jax.models.norm import resolve_batchnorm

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _mlp(config):
  d, m = config.data, config.model
  dtype = DTYPES[config.train.compute_dtype]
  shape = (d.image_size, d.image_size, d.channels)
  return (MLPGenerator(shape, tuple(m.g_hidden), m.g_output, m.get("g_norm", "none"),
                       m.get("g_activation", "relu"), dtype=dtype),
          MLPDiscriminator(tuple(m.d_hidden), m.get("d_pack", 1), dtype=dtype))


def _dcgan(config):
  d, m = config.data, config.model
  dtype = DTYPES[config.train.compute_dtype]
  patch_dots = resolve_patch_dots(m.get("patch_dots", "auto"))
  two_stage_rows = resolve_batchnorm(m.get("batchnorm", "auto"))
  return (DCGANGenerator(d.image_size, d.channels, m.g_features,
                         resolve_upsample(m.upsample), m.g_output, patch_dots, two_stage_rows,
                         dtype=dtype),
          DCGANDiscriminator(d.image_size, m.d_features, patch_dots, two_stage_rows, dtype=dtype))


MODELS = {"mlp": _mlp, "dcgan": _dcgan}


def build(config):
  """Returns (G, D) linen modules for `config.model.name`."""
  return MODELS[config.model.name](config)


__all__ = ["MODELS", "DTYPES", "build", "dcgan_plan"]
