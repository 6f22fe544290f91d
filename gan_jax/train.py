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

import dataclasses
import json
import os
import time

import jax
import numpy as np

from gan_jax import checkpoint, data, models, sampling, signals, steps
from gan_jax.data import sampler
from gan_jax.config import (VERSION_KEY, ConfigError, check_tfds_available,
                            from_dict, saved_dict, to_dict, validate)
from gan_jax.files import atomic_write
from gan_jax.state import (count_params, create_state, make_optimizers,
                           with_config_hyperparams)
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
  with signals.StopFlag() as stop:
    return _train(config, workdir, stop)


def _load_data(config):
  """The dataset, checked for an evaluation before anything is compiled or written."""
  dataset = data.load(config.data)
  print(f"data: {dataset.description}; {dataset.images.shape[0]} images of "
        f"{dataset.images.shape[1:]}", flush=True)
  if config.eval.every:
    from gan_jax.evaluate import check_sizes
    check_sizes(config, dataset.images.shape[0])
  if config.eval.every and config.data.source != "toy" and config.data.channels == 3 \
      and config.eval.extractor == "lenet_mnist":
    print("note: eval.extractor='lenet_mnist' is an MNIST digit classifier; on RGB data its "
          "FID/KID/IS rank runs of this data only (eval.extractor='inception_v3' gives FIDs "
          "comparable with published ones)", flush=True)
  return dataset


def _build(config, dataset):
  """(mesh, (G, D, g_tx, d_tx), initial state on the mesh)."""
  mesh = steps.make_mesh()
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx,
                                       with_labels=dataset.labels is not None), mesh)
  print(f"model: {config.model.name}, G {count_params(state.g.params):,} params, "
        f"D {count_params(state.d.params):,} params; {mesh.size} device(s) "
        f"({jax.devices()[0].platform})", flush=True)
  return mesh, (G, D, g_tx, d_tx), state


def _train(config, workdir: str, stop: signals.StopFlag) -> dict:
  dataset = _load_data(config)
  os.makedirs(workdir, exist_ok=True)
  cfg_dict = saved_dict(config)
  mesh, parts, state = _build(config, dataset)
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
        start, restored_state, _ = restored
        state = with_config_hyperparams(restored_state, state)  # the config's learning rates
        print(f"resumed from checkpoint at step {start}", flush=True)
      _write_json_atomic(os.path.join(workdir, "config.json"), cfg_dict)
      truncate_jsonl(os.path.join(workdir, "metrics.jsonl"), start)
      writer = Writer(workdir, resume_step=start)
      loop = _Loop.build(config, workdir, dataset, mesh, parts, cfg_dict,
                         manager, writer, stop, state, start, restored is not None)
      last, step = loop.run()
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


@dataclasses.dataclass
class _Clock:
  """Training time only: compilation, logging, samples, evaluation and saves
  are left out of steps/s (the first call's rate includes its compilation)."""
  start_step: int
  t_loop: float                 # when the loop began (after the step-0 grid)
  t_mark: float | None = None   # None until the first call has finished
  s_mark: int = 0

  def first_call_done(self, state, step: int) -> None:
    if self.t_mark is None:
      jax.block_until_ready(state)
      self.t_mark, self.s_mark = time.time(), step

  def rate(self, step: int) -> float:
    now = time.time()
    sps = ((step - self.s_mark) / (now - self.t_mark) if step > self.s_mark
           else (step - self.start_step) / max(now - self.t_loop, 1e-9))
    self.t_mark, self.s_mark = now, step
    return sps

  def exclude(self, since: float) -> None:
    if self.t_mark is not None:
      self.t_mark += time.time() - since


@dataclasses.dataclass
class _Loop:
  """Trains from `start` to train.num_steps (or a stop signal). Its fields
  are the run's parts and bookkeeping; each method is one named step."""
  config: object
  workdir: str
  arrays: dict            # the dataset on the mesh (data/sampler.py)
  train_fn: object
  sample_fn: object
  evaluator: object       # None when eval.every=0
  cfg_dict: dict
  manager: object
  writer: object
  stop: signals.StopFlag
  state: object
  start: int
  saved: int | None       # newest step saved (or restored) this run
  checked: int            # newest step whose state was seen finite
  fixed_z: np.ndarray     # the sample grids' latents and labels
  fixed_y: np.ndarray | None

  @classmethod
  def build(cls, config, workdir, dataset, mesh, models_and_opts, cfg_dict, manager, writer,
            stop, state, start, have_ckpt):
    G, D, g_tx, d_tx = models_and_opts
    classes = sampling.num_classes(dataset.labels)
    evaluator = None
    if config.eval.every:
      from gan_jax.evaluate import Evaluator  # metrics and extractor only when asked for
      evaluator = Evaluator(config, dataset.images, workdir, num_classes=classes)
    return cls(config, workdir, sampler.device_arrays(dataset, mesh),
               steps.make_train_fn(config, G, D, g_tx, d_tx, mesh), steps.make_sample_fn(G),
               evaluator, cfg_dict, manager, writer, stop, state, start,
               start if have_ckpt else None, start,
               sampling.latents(config.seed, NUM_SAMPLES, config.model.z_dim),
               sampling.grid_labels(NUM_SAMPLES, classes))

  def diverged(self, step, what, note=""):
    ckpt_dir = checkpoint.checkpoint_dir(self.workdir)
    where = (f"last good checkpoint: step {self.saved} in "
             f"{os.path.join(ckpt_dir, str(self.saved))}"
             if self.saved is not None else "no checkpoint was saved yet")
    return NonFiniteError(f"training diverged: {what} at step {step}{note}; {where}")

  def guard(self, step: int) -> None:
    """Before every log line, sample grid and save: the state is finite."""
    if self.checked == step and step != self.start:
      return
    if not bool(steps.all_finite(self.state)):
      raise self.diverged(step, f"non-finite parameters (finite at step {self.checked})")
    self.checked = step

  def save(self, step: int, metrics=None) -> None:
    self.guard(step)
    self.writer.sync()  # its rows up to `step`, which a resumed run keeps
    checkpoint.save(self.manager, step, self.state, self.cfg_dict, metrics)
    self.saved = step

  def generate(self, z, y=None):
    return self.sample_fn(self.state.g.params, self.state.g.collections, z, y)

  def write_samples(self, step: int) -> None:
    if self.config.data.source == "toy":  # 2-D points: eval/scatter_<step>.png shows them
      return
    self.writer.samples(step, np.asarray(self.generate(self.fixed_z, self.fixed_y)))

  def log(self, prev: int, step: int, metrics, clock: _Clock, progress) -> dict | None:
    """Writes the rows of the logged steps in (prev, step]; their last row."""
    t = self.config.train
    log_steps = [s for s in range(prev + 1, step + 1)
                 if s % t.log_every == 0 or s == t.num_steps]
    if not log_steps:
      return None
    metrics = jax.device_get(metrics)
    self.check_metrics(prev, step - prev, metrics)
    sps = clock.rate(step)
    for s in log_steps:
      last = {name: float(v[s - prev - 1]) for name, v in metrics.items()}
      last.update(steps_per_sec=sps, images_per_sec=sps * t.batch_size)
      self.writer.scalars(s, last)
    self.guard(step)
    progress.line(log_steps[-1], last, sps)  # the step `last` is from
    clock.t_mark = time.time()  # logging (and the finite check) is not training time
    return last

  def check_metrics(self, prev: int, k: int, metrics) -> None:
    """NonFiniteError at the first of the call's steps with a non-finite metric."""
    for i in range(k):
      bad = [name for name, v in metrics.items() if not np.isfinite(v[i])]
      if bad:
        # metrics are only fetched on calls that log: the first bad step seen
        raise self.diverged(
            prev + 1 + i, f"non-finite {', '.join(sorted(bad))}",
            f" (losses are checked every train.log_every={self.config.train.log_every} steps; "
            f"parameters were finite at step {self.checked})")

  def book(self, step: int, clock: _Clock) -> None:
    """The sample grid, evaluation and save due at `step`, kept out of steps/s."""
    c = self.config
    sample_due = step % c.train.sample_every == 0 or step == c.train.num_steps
    eval_due = self.evaluator is not None and (step % c.eval.every == 0
                                               or step == c.train.num_steps)
    save_due = step % c.checkpoint.every == 0 or step == c.train.num_steps
    if not (sample_due or eval_due or save_due or self.stop.signal):
      return
    # wait for this call's training to finish (that is training time), then time them
    jax.block_until_ready(self.state)
    t_book = time.time()
    if sample_due:
      self.guard(step)
      self.write_samples(step)
    results = self.evaluate(step) if eval_due else None
    if save_due or self.stop.signal or results is not None:  # (a signal may come during eval)
      self.save(step, results)
    clock.exclude(t_book)

  def evaluate(self, step: int) -> dict:
    self.guard(step)
    results = self.evaluator(self.generate, step)
    self.writer.scalars(step, results)
    print(f"eval at step {step}: " + ", ".join(
        f"{k[5:]} {v:.4g}" for k, v in results.items()), flush=True)
    return results

  def run(self) -> tuple[dict, int]:
    """(last logged metrics, final step)."""
    t = self.config.train
    progress = Progress(t.num_steps)
    if self.start == 0:
      self.write_samples(0)
    clock = _Clock(self.start, time.time())
    step, last = self.start, {}
    while step < t.num_steps and self.stop.signal is None:
      # calls stay aligned to multiples of steps_per_call
      k = min(t.steps_per_call - step % t.steps_per_call, t.num_steps - step)
      self.state, metrics = self.train_fn(self.state, self.arrays, k)
      prev, step = step, step + k
      clock.first_call_done(self.state, step)  # compilation is not training time
      last = self.log(prev, step, metrics, clock, progress) or last
      self.book(step, clock)
    if self.stop.signal and self.saved != step:  # a signal after this call's save check
      self.save(step)
    return last, step
