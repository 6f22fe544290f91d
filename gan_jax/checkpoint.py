"""Orbax checkpoints of the whole TrainState plus the resolved config.

* Saves are asynchronous and keep the latest `config.checkpoint.keep` steps.
  Orbax writes each step into a temporary folder and renames it when complete,
  so a process killed mid-save leaves the previous checkpoint intact.
* Restores go through an abstract target (`ShapeDtypeStruct`s with shardings),
  so optax states come back as their own types, not dicts.
* If the newest checkpoint cannot be read (truncated, corrupt), the one before
  it is restored instead, with a warning naming both.
* Orbax stores arrays with TensorStore and the config as JSON: nothing is
  pickled, and restoring executes no code from the checkpoint.
"""
from __future__ import annotations

import logging
import os

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import LatestN


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, keep: int, *, read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      preservation_policy=LatestN(keep), enable_async_checkpointing=not read_only,
      create=not read_only, read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=("state", "config"))


def existing_steps(workdir: str) -> list[int]:
  """Completed checkpoint steps, without creating anything."""
  d = checkpoint_dir(workdir)
  if not os.path.isdir(d):
    return []
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


def save(manager: ocp.CheckpointManager, step: int, state, config_dict: dict) -> None:
  manager.save(int(step), args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict)), force=True)


def abstract(state):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def restore_latest(manager: ocp.CheckpointManager, target_state):
  """(step, state, config_dict) of the newest readable checkpoint, or None.

  `target_state` supplies structure, dtypes and shardings."""
  target = abstract(target_state)
  steps = sorted(manager.all_steps(), reverse=True)
  for i, step in enumerate(steps):
    try:
      out = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()))
    except Exception as e:  # corrupt or truncated files surface as many error types
      nxt = f"trying step {steps[i + 1]}" if i + 1 < len(steps) else "no older checkpoint"
      logging.warning("checkpoint at step %d is unreadable (%s: %s); %s", step,
                      type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "", nxt)
      print(f"warning: checkpoint at step {step} is unreadable ({type(e).__name__}); {nxt}",
            flush=True)
      continue
    return step, out.state, out.config
  return None
