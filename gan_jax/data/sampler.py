"""Batches drawn on the device, inside the jitted step, from the dataset held
on every device: `{"image": float32 NHWC in [-1, 1], "label": int32}`, with
no "label" when the data has none. No host->device copy happens per step.

Indices are drawn for the *global* batch from keys that do not depend on the
device, and each device keeps its own slice, so a run draws the same batches
on 1 or N devices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.data.common import Dataset, to_signed


def device_arrays(dataset: Dataset, mesh: Mesh) -> dict:
  """The dataset's arrays ({"image", "label"?}), each replicated over `mesh`."""
  arrays = {"image": dataset.images}
  if dataset.labels is not None:
    arrays["label"] = jnp.asarray(dataset.labels, jnp.int32)
  return jax.device_put(arrays, NamedSharding(mesh, P()))


def as_arrays(data) -> dict:
  """A dict of dataset arrays as it is; a bare image array as {"image": it}."""
  return data if isinstance(data, dict) else {"image": data}


def local_slice(x, local: int, axis: str):
  """This device's rows of a globally drawn array."""
  return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(axis) * local, local)


def draw_batch(arrays: dict, key, global_batch: int, local: int, axis: str) -> dict:
  """A uniformly drawn batch (with replacement) of every array, this device's
  rows; images scaled to [-1, 1] (see `to_signed`)."""
  images = arrays["image"]
  idx = local_slice(jax.random.randint(key, (global_batch,), 0, images.shape[0]), local, axis)
  batch = {"image": to_signed(images[idx])}
  if "label" in arrays:
    batch["label"] = arrays["label"][idx]
  return batch


def draw_labels(arrays: dict, key, global_batch: int, local: int, axis: str):
  """Labels for generated samples, drawn from the data's own labels (so the
  classes come as often as in the data); None when the data has none."""
  if "label" not in arrays:
    return None
  labels = arrays["label"]
  idx = jax.random.randint(key, (global_batch,), 0, labels.shape[0])
  return local_slice(labels[idx], local, axis)


def draw_z(key, global_batch: int, local: int, z_dim: int, axis: str):
  return local_slice(jax.random.normal(key, (global_batch, z_dim)), local, axis)
