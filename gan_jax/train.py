"""The training loop: build, restore, step, log, sample, save. It orchestrates
and computes nothing itself; the maths lives in steps.py.

Running the same command on an existing workdir continues it exactly: the
state is restored from the newest readable checkpoint, metrics.jsonl is cut
back to that step, and training calls stay aligned to multiples of
`train.steps_per_call`, so a resumed run computes bit for bit what an
uninterrupted one does. SIGTERM/SIGINT finish the running call, save, print
one line and return; a second signal aborts at once.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import jax
import numpy as np

from gan_jax import checkpoint, cli, data, models, steps
from gan_jax.config import (MIN_EVAL_SAMPLES, VERSION_KEY, ConfigError, check_tfds_available,
                            from_dict, saved_dict, to_dict, validate)
from gan_jax.files import atomic_write
from gan_jax.state import count_params, create_state, make_optimizers
from gan_jax.writers import Progress, Writer, truncate_jsonl

# Settings that may change between a run and its resumption.
RESUMABLE_KEYS = ("train.num_steps", "train.log_every", "train.sample_every",
                  "checkpoint.every", "checkpoint.keep", "eval.every")
NUM_SAMPLES = 64
# config.data keys holding paths, stored absolute with the run.
DATA_PATH_KEYS = ("path", "data_dir", "manual_dir")


class NonFiniteError(RuntimeError):
  """Training diverged; raised before the bad state reaches a checkpoint."""


class WriteError(RuntimeError):
  """Writing the run's metrics, samples or events failed on an OS error (e.g.
  a full disk); the checkpoints are intact."""


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_drift(saved: dict, requested: dict) -> list[str]:
  """'key: saved -> requested' for every differing key not in RESUMABLE_KEYS.

  train.num_steps is resumable only without a learning-rate schedule: with
  train.lr_decay='linear' it is the schedule's horizon, and a new one would make
  the rate jump (e.g. from ~0 back to half the base rate when doubling it)."""
  # Read as meant when saved (config.CONFIG_VERSION), with settings added since
  # at their defaults, as analysis and the scripts read it (config.from_dict):
  # a run saved before model.patch_dots existed resumes under its default.
  a = _flatten(to_dict(from_dict(saved)))
  b = _flatten({k: v for k, v in requested.items() if k != VERSION_KEY})
  for d in (a, b):  # runs saved before paths were stored absolute compare by location
    for k in DATA_PATH_KEYS:
      if d.get(f"data.{k}"):
        d[f"data.{k}"] = os.path.abspath(d[f"data.{k}"])
  scheduled = "none" not in (a.get("train.lr_decay", "none"), b.get("train.lr_decay", "none"))
  resumable = set(RESUMABLE_KEYS) - ({"train.num_steps"} if scheduled else set())
  return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(set(a) | set(b))
          if k not in resumable and a.get(k, "<absent>") != b.get(k, "<absent>")]


def check_resume(config, workdir: str, force_resume: bool) -> None:
  """Refuses to resume a workdir whose saved config differs (reads only)."""
  if not checkpoint.existing_steps(workdir):
    return
  saved = checkpoint.saved_config(workdir)
  if saved is None:
    return
  diffs = config_drift(saved, to_dict(config))
  if diffs and not force_resume:
    raise ConfigError(
        f"workdir {workdir} was trained with a different config ({'; '.join(diffs)}); "
        "use a new --workdir, or pass --force_resume to continue with the new values")


def _with_absolute_data_path(config):
  """A copy whose data.path (and TFDS data_dir/manual_dir) is absolute, so that
  the config saved with the run finds its data from any directory (a notebook,
  scripts/evaluate.py)."""
  relative = [k for k in DATA_PATH_KEYS
              if config.data.get(k) and not os.path.isabs(config.data[k])]
  if not relative:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for k in relative:
      config.data[k] = os.path.abspath(config.data[k])
  return config


def _check_workdir(workdir) -> None:
  if not workdir:
    raise ConfigError("--workdir is required: the folder for checkpoints, metrics and samples")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir!r} is a file; give a folder (new or existing)")


def _write_json_atomic(path: str, obj) -> None:
  with atomic_write(path) as f:
    json.dump(obj, f, indent=2, sort_keys=True)


# The name of the first SIGTERM/SIGINT a _StopFlag took in this process, if
# any: main tells a second Ctrl-C from one that came before training began.
first_signal: str | None = None


class _StopFlag:
  """Turns the first SIGTERM/SIGINT into a flag the loop checks after each
  call; the original handlers come back then, so a second signal aborts."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      cli.stop_deferring()  # what the first signal gives back: a second one aborts
      for s in (signal.SIGTERM, signal.SIGINT):
        self._old[s] = signal.signal(s, self._handle)
    if cli.interrupted_early:  # a Ctrl-C that main deferred (cli.catch_early_interrupts)
      self._restore()
      raise KeyboardInterrupt
    return self

  def _handle(self, signum, frame):
    global first_signal
    self.signal = first_signal = signal.Signals(signum).name
    self._restore()

  def _restore(self):
    for s, h in self._old.items():
      signal.signal(s, h)
    self._old = {}

  def __exit__(self, *exc):
    self._restore()


def train_and_evaluate(config, workdir: str, *, force_resume: bool = False) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Returns the last logged metrics. Raises ConfigError/DataError on bad input
  (before anything is written), NonFiniteError on divergence,
  checkpoint.CheckpointError when no checkpoint in the workdir is readable and
  checkpoint.SaveError (a CheckpointError) when a save fails on an OS error,
  e.g. a full disk, and WriteError when writing the other outputs does; the
  checkpoints saved before are intact either way.
  """
  validate(config, jax.device_count())
  config = _with_absolute_data_path(config)
  _check_workdir(workdir)
  check_resume(config, workdir, force_resume)
  check_tfds_available(config.data)
  with _StopFlag() as stop:
    return _train(config, workdir, stop)


def _train(config, workdir: str, stop: _StopFlag) -> dict:
  dataset = data.load(config.data)
  print(f"data: {dataset.description}; {dataset.images.shape[0]} images of "
        f"{dataset.images.shape[1:]}", flush=True)
  if config.eval.every and config.data.source != "toy" and \
      dataset.images.shape[0] < MIN_EVAL_SAMPLES:  # before anything is compiled or written
    raise ConfigError(
        f"config.eval.every={config.eval.every} needs at least {MIN_EVAL_SAMPLES} real images "
        f"for the image metrics, but the data holds {dataset.images.shape[0]}; add images, "
        "raise config.data.max_examples, or set config.eval.every=0")
  if config.eval.every and config.data.source != "toy" and config.data.channels == 3 \
      and config.eval.extractor == "lenet_mnist":
    print("note: eval.extractor='lenet_mnist' is an MNIST digit classifier; on RGB data its "
          "FID/KID/IS rank runs of this data only (eval.extractor='inception_v3' gives FIDs "
          "comparable with published ones)", flush=True)

  os.makedirs(workdir, exist_ok=True)
  cfg_dict = saved_dict(config)
  mesh = steps.make_mesh()
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx), mesh)
  print(f"model: {config.model.name}, G {count_params(state.g_params):,} params, "
        f"D {count_params(state.d_params):,} params; {mesh.size} device(s) "
        f"({jax.devices()[0].platform})", flush=True)

  manager = checkpoint.make_manager(
      workdir, config.checkpoint.keep, best_mode=config.checkpoint.best_mode,
      # Always, even with evaluation off: a resumed run must keep the best
      # checkpoint its earlier evaluations scored.
      best_metric=config.checkpoint.best_metric)
  writer = None
  try:
    try:
      restored = checkpoint.restore_latest(manager, state)
      start = 0
      if restored is not None:
        start, state, _ = restored
        print(f"resumed from checkpoint at step {start}", flush=True)
      _write_json_atomic(os.path.join(workdir, "config.json"), cfg_dict)
      truncate_jsonl(os.path.join(workdir, "metrics.jsonl"), start)
      writer = Writer(workdir, resume_step=start)
      last, step = _loop(config, workdir, state, start, restored is not None, dataset, mesh,
                         (G, D, g_tx, d_tx), cfg_dict, manager, writer, stop)
    except BaseException:
      _close(manager, writer, failing=True)
      raise
    _close(manager, writer)
  except OSError as e:  # writing metrics.jsonl, a sample grid or events (a full disk)
    raise WriteError(f"training stopped: {e}; "
                     f"{checkpoint.last_good(checkpoint.checkpoint_dir(workdir))}") from e
  ckpt = os.path.join(checkpoint.checkpoint_dir(workdir), str(step))
  if stop.signal:
    print(f"{stop.signal}: stopped at step {step}; checkpoint saved to {ckpt}", flush=True)
  elif step == start and start:
    print(f"already trained to step {step} (config.train.num_steps); nothing to do", flush=True)
  return last


def _close(manager, writer, failing=False):
  """Completes an in-flight save: checkpoint.SaveError if it failed (a full
  disk), which replaces an error being raised (`failing`). Then closes the
  writer, whose OSError (the full disk again) replaces no error being raised."""
  try:
    checkpoint.close(manager, failing=failing)
  except checkpoint.SaveError:
    failing = True
    raise
  finally:
    if writer is not None:
      try:
        writer.close()
      except OSError:
        if not failing:
          raise


def _loop(config, workdir, state, start, have_ckpt, dataset, mesh, models_and_opts,
          cfg_dict, manager, writer, stop):
  """Trains from `start` to train.num_steps (or a stop signal); returns
  (last logged metrics, final step)."""
  G, D, g_tx, d_tx = models_and_opts
  images = steps.replicate(dataset.images, mesh)
  train_fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  sample_fn = steps.make_sample_fn(G)
  fixed_z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(config.seed), 7),
                              (NUM_SAMPLES, config.model.z_dim))
  t = config.train
  total, k_max, every = t.num_steps, t.steps_per_call, config.checkpoint.every
  ckpt_dir = checkpoint.checkpoint_dir(workdir)
  saved = start if have_ckpt else None   # newest step saved (or restored) this run
  checked = start                          # newest step whose state was seen finite

  def diverged(step, what, note=""):
    where = (f"last good checkpoint: step {saved} in {os.path.join(ckpt_dir, str(saved))}"
             if saved is not None else "no checkpoint was saved yet")
    return NonFiniteError(f"training diverged: {what} at step {step}{note}; {where}")

  def guard(step):  # before every log line, sample grid and save
    nonlocal checked
    if checked == step and step != start:
      return
    if not bool(steps.all_finite(state)):
      raise diverged(step, f"non-finite parameters (finite at step {checked})")
    checked = step

  def save(step, metrics=None):
    nonlocal saved
    guard(step)
    writer.sync()  # its rows up to `step`, which a resumed run keeps
    checkpoint.save(manager, step, state, cfg_dict, metrics)
    saved = step

  evaluator = None
  if config.eval.every:
    from gan_jax.evaluate import Evaluator  # metrics and extractor only when asked for
    evaluator = Evaluator(config, dataset.images, workdir)

  def write_samples(step):
    if config.data.source == "toy":  # 2-D points: eval/scatter_<step>.png shows them
      return
    writer.samples(step, np.asarray(sample_fn(state.g_params, state.g_stats, fixed_z)))

  progress = Progress(total)
  if start == 0:
    write_samples(0)
  step, last = start, {}
  t_loop, t_mark, s_mark = time.time(), None, start
  while step < total and stop.signal is None:
    k = min(k_max - step % k_max, total - step)  # calls stay aligned to multiples of k_max
    state, metrics = train_fn(state, images, k)
    prev, step = step, step + k
    log_steps = [s for s in range(prev + 1, step + 1) if s % t.log_every == 0 or s == total]
    if t_mark is None:  # exclude compilation from later throughput figures
      jax.block_until_ready(state)
      t_mark, s_mark = time.time(), step
    if log_steps:
      metrics = jax.device_get(metrics)
      for i in range(k):
        bad = [name for name, v in metrics.items() if not np.isfinite(v[i])]
        if bad:
          # metrics are only fetched on calls that log: the first bad step seen
          raise diverged(prev + 1 + i, f"non-finite {', '.join(sorted(bad))}",
                         f" (losses are checked every train.log_every={t.log_every} steps; "
                         f"parameters were finite at step {checked})")
      now = time.time()
      sps = ((step - s_mark) / (now - t_mark) if step > s_mark
             else (step - start) / max(now - t_loop, 1e-9))  # first call: with compilation
      t_mark, s_mark = now, step
      for s in log_steps:
        last = {name: float(v[s - prev - 1]) for name, v in metrics.items()}
        last.update(steps_per_sec=sps, images_per_sec=sps * t.batch_size)
        writer.scalars(s, last)
      guard(step)
      progress.line(log_steps[-1], last, sps)  # the step `last` is from
      t_mark = time.time()  # logging (and the finite check) is not training time
    sample_due = step % t.sample_every == 0 or step == total
    eval_due = evaluator is not None and (step % config.eval.every == 0 or step == total)
    save_due = step % every == 0 or step == total
    if not (sample_due or eval_due or save_due or stop.signal):
      continue
    # Samples, evaluation and the save are kept out of steps/s: wait for this
    # call's training to finish (that is training time), then time them.
    jax.block_until_ready(state)
    t_book = time.time()
    if sample_due:
      guard(step)
      write_samples(step)
    results = None
    if eval_due:
      guard(step)
      results = evaluator(lambda z: sample_fn(state.g_params, state.g_stats, z), step)
      writer.scalars(step, results)
      print(f"eval at step {step}: " + ", ".join(
          f"{k[5:]} {v:.4g}" for k, v in results.items()), flush=True)
    if save_due or stop.signal or results is not None:  # (a signal may come during eval)
      save(step, results)
    if t_mark is not None:
      t_mark += time.time() - t_book
  if stop.signal and saved != step:  # a signal that came after this call's save check
    save(step)
  return last, step
