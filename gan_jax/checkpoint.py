"""Orbax checkpoints of the whole TrainState plus the resolved config.

* Saves are asynchronous and keep the latest `config.checkpoint.keep` steps.
  Orbax writes each step into `<step>.orbax-checkpoint-tmp*` and renames
  it to `<step>` only when complete, so a process killed mid-save leaves the
  previous checkpoints intact; leftover temporary folders are ignored by
  restore and deleted when the next manager opens the folder.
* A save that fails on an OS error (a full disk) raises `SaveError`, one line
  naming the step, the error and the last good checkpoint. As saves are
  asynchronous it fails in Orbax's threads and is raised at the next `save`
  or at `close`. The failed step stays a temporary folder (above); Orbax
  deletes old steps only once a save is complete, so all earlier ones remain.
* Restores go through an abstract target (`ShapeDtypeStruct`s with shardings),
  so optax states come back as their own types, not dicts.
* If the newest checkpoint cannot be read (truncated, corrupt), it is moved to
  `workdir/checkpoints_corrupt/` (kept for inspection, out of Orbax's way) and
  the one before it is restored, with a warning naming both. If none is
  readable, `CheckpointError` stops the run rather than silently starting over.
* The eval metrics saved beside a step (``<step>/metrics/metrics``, JSON) are
  read by Orbax whenever a manager opens the folder. One that does not parse
  (torn by a crash or a full disk) is renamed ``metrics.corrupt`` with a
  warning: the step keeps its arrays and ranks last for the best checkpoint,
  and the run resumes instead of failing on the JSON. Read-only restores
  (`restore_step`) open the step folder alone and never read those files.
* Each checkpoint carries the layout version of its TrainState
  (state.LAYOUT_VERSION) in `<step>/layout` (JSON). A checkpoint of another
  layout (those without the file are layout 1) is refused with one line
  naming both versions and what to do, never restored into the wrong fields.
* Orbax stores arrays with TensorStore and the config as JSON: nothing is
  pickled, and restoring executes no code from the checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import time

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, BestN, LatestN

from gan_jax.state import LAYOUT_VERSION

ITEMS = ("state", "config", "layout")


class CheckpointError(RuntimeError):
  """The workdir has checkpoints but none of them can be restored."""


class SaveError(CheckpointError):
  """A checkpoint could not be written (e.g. the disk is full); the ones saved
  before it are intact."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def corrupt_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints_corrupt")


def make_manager(workdir: str, keep: int, *, best_metric: str | None = None,
                 best_mode: str = "min", read_only: bool = False) -> ocp.CheckpointManager:
  """Keeps the latest `keep` steps, plus the best one by `best_metric` (from
  the metrics passed to `save`) when given."""
  policy = LatestN(keep)
  score = None
  if best_metric:
    worst = math.inf if best_mode == "min" else -math.inf

    def score(m):  # a missing or non-finite metric ranks last, never first
      v = finite_metric(m, best_metric)
      return worst if v is None else v

    policy = AnyPreservationPolicy([policy, BestN(
        get_metric_fn=score, reverse=best_mode == "min", n=1,
        keep_checkpoints_without_metrics=False)])
  if not read_only:
    _set_aside_torn_metrics(workdir)
  options = ocp.CheckpointManagerOptions(
      preservation_policy=policy, enable_async_checkpointing=not read_only,
      # best_fn also makes Orbax write the metrics beside each step (<step>/metrics)
      best_fn=score, best_mode=best_mode,
      create=not read_only, read_only=read_only, cleanup_tmp_directories=not read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=ITEMS)


def _metrics_path(workdir: str, step: int) -> str:
  """Where Orbax keeps the metrics saved with a step (the best_fn's input)."""
  return os.path.join(checkpoint_dir(workdir), str(step), "metrics", "metrics")


def _set_aside_torn_metrics(workdir: str) -> None:
  """Renames each step's metrics file that is not valid JSON (see the module
  docstring), so that opening the folder cannot fail on it."""
  for step in existing_steps(workdir):
    path = _metrics_path(workdir, step)
    try:
      with open(path) as f:
        json.load(f)
    except FileNotFoundError:
      continue
    except (OSError, ValueError) as e:
      os.replace(path, path + ".corrupt")
      print(f"warning: the eval metrics saved with checkpoint {step} are unreadable "
            f"({type(e).__name__}); renamed them to {path}.corrupt, so this step no longer "
            "counts for the best checkpoint", flush=True)


def existing_steps(workdir: str) -> list[int]:
  """Completed checkpoint steps, without creating anything."""
  return _steps_in(checkpoint_dir(workdir))


def _steps_in(directory: str) -> list[int]:
  # Orbax names a step's folder `<step>` only once it is complete
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def find_saved_config(workdir: str, step: int | None = None) -> tuple[dict | None, str | None]:
  """(config dict, the file it was read from) of a run: the JSON stored in
  checkpoint `step` (None: in the newest checkpoint that has a readable one),
  else workdir/config.json; (None, None) if none is readable. Reads only.
  The one reader of a run's saved config: training's resume check,
  gan_jax.analysis and the scripts all call it."""
  steps = reversed(existing_steps(workdir)) if step is None else [int(step)]
  candidates = [os.path.join(checkpoint_dir(workdir), str(s), "config", "metadata")
                for s in steps]
  for path in candidates + [os.path.join(workdir, "config.json")]:
    try:
      with open(path) as f:
        return json.load(f), path
    except (OSError, ValueError):
      continue
  return None, None


def saved_config(workdir: str) -> dict | None:
  """The newest saved config of a run (see find_saved_config), or None."""
  return find_saved_config(workdir)[0]


def save(manager: ocp.CheckpointManager, step: int, state, config_dict: dict,
         metrics: dict | None = None) -> None:
  """Starts an asynchronous save; device arrays are copied before it returns.
  `metrics` (eval results at this step) are stored beside it for best-N; a
  save without them ranks last there (and Orbax has nothing to warn about).

  Raises SaveError if the save still in flight (see `wait`) or this one fails
  on an OS error."""
  wait(manager)
  with _as_save_error(manager, int(step)):
    manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict),
        layout=ocp.args.JsonSave({"version": LAYOUT_VERSION})),
        metrics=metrics if metrics is not None else {}, force=True)


def wait(manager: ocp.CheckpointManager) -> None:
  """Blocks until the save in flight, if any, is complete. If it failed on an
  OS error (a full disk), raises SaveError naming its step, the error and the
  last good checkpoint. Orbax raises a background failure once, in the first
  call to wait after it: here, the next `save`, or `close`."""
  with _as_save_error(manager, manager.latest_step()):  # the step in flight, if any
    manager.wait_until_finished()


def close(manager: ocp.CheckpointManager, *, failing: bool = False) -> None:
  """`wait`, then closes the manager, also when that save failed. Orbax can
  report a failed save a second time on closing (its metadata store and its
  checkpointer each hold the failure); that is not raised again once one
  SaveError was raised, here or (`failing`: the caller is raising an error)
  earlier."""
  step = manager.latest_step()
  try:
    wait(manager)
  except SaveError:
    failing = True
    raise
  finally:
    try:
      with _as_save_error(manager, step):
        manager.close()
    except SaveError:
      if not failing:
        raise


def last_good(directory: str, before: int | None = None) -> str:
  """'last good checkpoint: step N in <path>' for the newest complete step in
  the checkpoints `directory` (before step `before`), or that there is none."""
  steps = [s for s in _steps_in(directory) if before is None or s < before]
  if not steps:
    return "no checkpoint was saved yet"
  return (f"last good checkpoint: step {steps[-1]} in {os.path.join(directory, str(steps[-1]))} "
          "(rerun the same command to resume from it)")


@contextlib.contextmanager
def _as_save_error(manager: ocp.CheckpointManager, step: int | None):
  """Turns an OS error (see `_os_error`) raised inside into a one-line
  SaveError for `step`; other errors (bugs) pass through unchanged."""
  try:
    yield
  except Exception as e:
    err = _os_error(e)
    if err is None:
      raise
    directory = str(manager.directory)
    where = "" if err.filename else f" (writing in {directory})"
    raise SaveError(f"checkpoint save at step {step} failed: {err}{where}; "
                    f"{last_good(directory, before=step)}") from e


def _os_error(e: BaseException | None) -> OSError | None:
  """The OS error behind a failed save, or None: an OSError in the chain of
  causes, or TensorStore's error status naming one. TensorStore raises
  ValueError('RESOURCE_EXHAUSTED: Error writing local file "<path>": ... No
  space left on device [os_error_code='28'] ...'), rebuilt here as
  OSError(28, 'No space left on device', '<path>')."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e
    code = re.search(r"os_error_code='(\d+)'", str(e))
    if code:
      path = re.search(r'local file "([^"]+)"', str(e))
      errno = int(code.group(1))
      return OSError(errno, os.strerror(errno), *([path.group(1)] if path else []))
    e = e.__cause__ or e.__context__
  return None


def finite_metric(metrics, name: str) -> float | None:
  """metrics[name] when it is a finite number, else None (never ranked best)."""
  v = metrics.get(name) if isinstance(metrics, dict) else None
  return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def step_metrics(workdir: str, step: int) -> dict | None:
  """The eval metrics saved with a checkpoint (JSON), or None."""
  try:
    with open(_metrics_path(workdir, step)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def scored_steps(workdir: str, metric: str) -> dict:
  """{checkpoint step: its finite `metric`}, from the metrics saved with each
  checkpoint; steps without one (or with NaN/inf) are left out."""
  return {s: v for s in existing_steps(workdir)
          if (v := finite_metric(step_metrics(workdir, s), metric)) is not None}


def best_step(scored: dict, mode: str) -> int:
  """The step with the lowest (mode 'min') or highest ('max') score in
  {step: score}. Ties go to the earlier step under 'min' and to the later one
  under 'max', as (score, step) pairs compare."""
  pick = min if mode == "min" else max
  return pick(scored, key=lambda s: (scored[s], s))


def resolve_step(workdir: str, which="latest", metric: str = "eval/fid",
                 mode: str = "min") -> int:
  """'latest', 'best' (by `metric` saved with the checkpoints) or a step number
  -> an existing checkpoint step; CheckpointError naming the choices otherwise."""
  steps = existing_steps(workdir)
  if not steps:
    raise CheckpointError(f"no checkpoints in {checkpoint_dir(workdir)}")
  if which == "latest":
    return steps[-1]
  if which == "best":
    scored = scored_steps(workdir, metric)
    if not scored:
      raise CheckpointError(f"no checkpoint in {checkpoint_dir(workdir)} has {metric!r} "
                            "(was eval.every > 0?); use 'latest' or a step")
    return best_step(scored, mode)
  try:
    step = int(which)
  except (TypeError, ValueError):
    raise CheckpointError(f"step={which!r} is not 'best', 'latest' or a number") from None
  if step not in steps:
    raise CheckpointError(f"no checkpoint at step {step}; available: "
                          f"{', '.join(map(str, steps))}")
  return step


def restore_step(workdir: str, step: int, target_state):
  """(state, config_dict) of one checkpoint, read-only. `target_state` (real
  or abstract arrays) gives structure, dtypes and shardings."""
  # The step folder alone, not a CheckpointManager, which would read (and fail
  # on) every step's metrics file and could not set a torn one aside here.
  check_layout(os.path.join(checkpoint_dir(workdir), str(int(step))), int(step))
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
    out = checkpointer.restore(
        os.path.join(checkpoint_dir(workdir), str(int(step))), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract(target_state)),
            config=ocp.args.JsonRestore()))
  return out.state, out.config


def abstract(state):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def _short(e: Exception) -> str:
  msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
  msg = msg.split(" See full TensorStore details")[0]
  return f"{type(e).__name__}: {msg[:160]}" if msg else type(e).__name__


def _quarantine(manager: ocp.CheckpointManager, step: int) -> str:
  """Moves an unreadable step folder out of the checkpoints folder."""
  src = os.path.join(str(manager.directory), str(step))
  dst_root = os.path.join(os.path.dirname(str(manager.directory)), "checkpoints_corrupt")
  os.makedirs(dst_root, exist_ok=True)
  dst = os.path.join(dst_root, str(step))
  if os.path.exists(dst):
    dst = f"{dst}-{int(time.time())}"
  shutil.move(src, dst)
  return dst


def layout_version(step_dir: str) -> int | None:
  """The TrainState layout a checkpoint folder holds: its `layout` record, 1
  for one saved before checkpoints carried it, None if unreadable."""
  try:
    with open(os.path.join(step_dir, "layout", "metadata")) as f:
      return int(json.load(f)["version"])
  except FileNotFoundError:
    return 1 if os.path.isdir(os.path.join(step_dir, "state")) else None
  except (OSError, ValueError, KeyError, TypeError):
    return None


def check_layout(step_dir: str, step: int) -> None:
  """CheckpointError (one line) when the checkpoint holds another layout."""
  version = layout_version(step_dir)
  if version is not None and version != LAYOUT_VERSION:
    raise CheckpointError(
        f"checkpoint at step {step} ({step_dir}) holds training-state layout {version}, and "
        f"this gan_jax resumes layout {LAYOUT_VERSION} only: continue that run with the "
        "gan_jax that wrote it, or train in a new --workdir (gan_jax.analysis and the "
        "scripts still load its generator)")


def restore_latest(manager: ocp.CheckpointManager, target_state):
  """(step, state, config_dict) of the newest readable checkpoint, or None if
  there is none. `target_state` supplies structure, dtypes and shardings.

  Unreadable newer checkpoints are moved aside once an older one restores; if
  none restores, raises CheckpointError and moves nothing."""
  target = abstract(target_state)
  steps = sorted(manager.all_steps(), reverse=True)
  bad = []
  for step in steps:
    check_layout(os.path.join(str(manager.directory), str(step)), step)
    try:
      out = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()))
      if int(out.state.step) != step:
        raise ValueError(f"it holds the state of step {int(out.state.step)}")
    except Exception as e:  # corrupt or truncated files surface as many error types
      logging.debug("checkpoint %d unreadable", step, exc_info=True)
      bad.append((step, _short(e)))
      continue
    for s, why in bad:
      moved = _quarantine(manager, s)
      print(f"warning: checkpoint at step {s} is unreadable ({why}); moved it to {moved} "
            f"and restored step {step} instead", flush=True)
    if bad:
      manager.reload()
    return step, out.state, out.config
  if bad:
    raise CheckpointError(
        f"none of the checkpoints in {manager.directory} can be read (step {bad[0][0]}: "
        f"{bad[0][1]}); fix or remove them, or use a new --workdir")
  return None
