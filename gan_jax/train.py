"""The training loop: build, restore, step, log, sample, save. It orchestrates
and computes nothing itself; the maths lives in steps.py."""
from __future__ import annotations

import json
import os
import signal
import time

import jax
import numpy as np

from gan_jax import checkpoint, data, models, steps
from gan_jax.config import ConfigError, to_dict, validate
from gan_jax.state import count_params, create_state, make_optimizers
from gan_jax.writers import Progress, Writer, truncate_jsonl

# Settings that may change between a run and its resumption.
RESUMABLE_KEYS = ("train.num_steps", "train.log_every", "train.sample_every",
                  "checkpoint.every", "checkpoint.keep", "eval.every")
NUM_SAMPLES = 64


class NonFiniteError(RuntimeError):
  """Training diverged; raised before the bad state reaches a checkpoint."""


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_drift(saved: dict, requested: dict) -> list[str]:
  """'key: saved -> requested' for every differing key not in RESUMABLE_KEYS."""
  a, b = _flatten(saved), _flatten(requested)
  return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(set(a) | set(b))
          if k not in RESUMABLE_KEYS and a.get(k, "<absent>") != b.get(k, "<absent>")]


def check_resume(config, workdir: str, force_resume: bool) -> None:
  """Refuses to resume a workdir whose saved config differs (reads only)."""
  path = os.path.join(workdir, "config.json")
  if not checkpoint.existing_steps(workdir) or not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  diffs = config_drift(saved, to_dict(config))
  if diffs and not force_resume:
    raise ConfigError(
        f"workdir {workdir} was trained with a different config ({'; '.join(diffs)}); "
        "use a new --workdir, or pass --force_resume to continue with the new values")


def _write_json_atomic(path: str, obj) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)


def _validate_steps_per_call(config) -> None:
  k = config.train.steps_per_call
  for name in ("checkpoint.every", "train.sample_every"):
    section, key = name.split(".")
    if config[section][key] % k:
      raise ConfigError(f"config.{name}={config[section][key]} must be a multiple of "
                        f"config.train.steps_per_call={k}")


class _StopFlag:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each call."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def __enter__(self):
    for s in (signal.SIGTERM, signal.SIGINT):
      self._old[s] = signal.signal(s, self._handle)
    return self

  def _handle(self, signum, frame):
    self.signal = signal.Signals(signum).name

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


def train_and_evaluate(config, workdir: str, *, force_resume: bool = False) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Returns the last logged metrics. Raises ConfigError/DataError on bad input
  (before anything is written) and NonFiniteError on divergence.
  """
  validate(config, jax.device_count())
  _validate_steps_per_call(config)
  check_resume(config, workdir, force_resume)
  dataset = data.load(config.data)
  print(f"data: {dataset.description}; {dataset.images.shape[0]} images of "
        f"{dataset.images.shape[1:]}", flush=True)

  os.makedirs(workdir, exist_ok=True)
  cfg_dict = to_dict(config)
  mesh = steps.make_mesh()
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  state = steps.replicate(create_state(config, G, D, g_tx, d_tx), mesh)
  print(f"model: {config.model.name}, G {count_params(state.g_params):,} params, "
        f"D {count_params(state.d_params):,} params; {mesh.size} device(s) "
        f"({jax.devices()[0].platform})", flush=True)

  manager = checkpoint.make_manager(workdir, config.checkpoint.keep)
  restored = checkpoint.restore_latest(manager, state)
  if restored is not None:
    start, state, _ = restored
    print(f"resumed from checkpoint at step {start}", flush=True)
  else:
    start = 0
  last_good = start if restored is not None else None
  _write_json_atomic(os.path.join(workdir, "config.json"), cfg_dict)
  truncate_jsonl(os.path.join(workdir, "metrics.jsonl"), start)

  writer = Writer(workdir)
  images = steps.replicate(dataset.images, mesh)
  train_fn = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)
  sample_fn = steps.make_sample_fn(G)
  fixed_z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(config.seed), 7),
                              (NUM_SAMPLES, config.model.z_dim))

  def write_samples(step):
    writer.samples(step, np.asarray(sample_fn(state.g_params, state.g_stats, fixed_z)))

  def guard(step, what):
    if not bool(steps.all_finite(what)):
      where = (f"last good checkpoint: step {last_good} in {checkpoint.checkpoint_dir(workdir)}"
               if last_good is not None else "no checkpoint was saved")
      raise NonFiniteError(f"non-finite loss or parameters at step {step}; {where}")

  t = config.train
  total, k_max = t.num_steps, t.steps_per_call
  progress = Progress(total)
  if start == 0:
    write_samples(0)
  step, last = start, {}
  t_mark, s_mark = None, start
  with _StopFlag() as stop:
    try:
      while step < total and stop.signal is None:
        k = min(k_max, total - step)
        state, metrics = train_fn(state, images, k)
        prev, step = step, step + k
        log_steps = [s for s in range(prev + 1, step + 1) if s % t.log_every == 0 or s == total]
        if t_mark is None:  # exclude compilation from the first throughput figure
          jax.block_until_ready(state)
          t_mark, s_mark = time.time(), step
        if log_steps:
          metrics = jax.device_get(metrics)
          now = time.time()
          sps = (step - s_mark) / (now - t_mark) if step > s_mark else float("nan")
          t_mark, s_mark = now, step
          for s in log_steps:
            last = {name: float(v[s - prev - 1]) for name, v in metrics.items()}
            if not np.all(np.isfinite(list(last.values()))):
              guard(s, {"loss": np.float32(np.nan)})
            last.update(steps_per_sec=sps, images_per_sec=sps * t.batch_size)
            writer.scalars(s, last)
          guard(step, state)
          progress.line(step, last, sps)
        if step % t.sample_every == 0 or step == total:
          write_samples(step)
        if step % config.checkpoint.every == 0 or step == total or stop.signal:
          guard(step, state)
          checkpoint.save(manager, step, state, cfg_dict)
          last_good = step
      manager.wait_until_finished()
    finally:
      writer.close()
  if stop.signal:
    print(f"{stop.signal}: stopped at step {step}; checkpoint saved to "
          f"{os.path.join(checkpoint.checkpoint_dir(workdir), str(step))}", flush=True)
  manager.close()
  return last
