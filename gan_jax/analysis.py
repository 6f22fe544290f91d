"""Load a trained generator for analysis: sample, interpolate, find the nearest
real images, plot. The API that notebooks/analyze_run.ipynb, scripts/sample.py
and scripts/export.py share.

    run = load_run("/tmp/mnist")              # best by eval/fid, else latest
    x = run.sample(64, seed=0)                # NHWC float32 in [-1, 1]
    strip = run.interpolate(*run.latents(2, seed=1), steps=10)
    idx, dist = run.nearest_neighbors(x[:8], run.real_images(), k=5)
    plot_grid(x); plot_curves(run.metrics)    # matplotlib Figures

Loading a workdir restores only the generator's subtrees of the checkpoint
(G's parameters and BatchNorm statistics, and its averaged parameters when a
state has them, which are then used in place of G's own; see GENERATOR_PATHS
for where each TrainState layout keeps them). The structure comes from the checkpoint's own
metadata and every array is placed on `jax.devices()[0]`, so a run trained on a
GPU or on several devices loads on one CPU, and older checkpoints still load
after TrainState gains fields. Shapes are checked against the generator built
from the saved config. `load_run(dir)` also reads an export (generator.msgpack
+ model_card.json, written by `export`), which needs no training state.

Which step: step=None means 'best' when the run has evaluation results for
`config.checkpoint.best_metric` (saved with the checkpoints, or eval rows in
metrics.jsonl at checkpoint steps), else 'latest'. An explicit 'best' without
evaluation results raises CheckpointError saying so.

Latents: sample i of a seed is drawn from fold_in(PRNGKey(seed), i), so it does
not depend on n or the batch size (gan_jax.sampling; training's sample grids
and the evaluation draw the same z for the same seed). A seed is an integer in [0, 2**32): PRNGKey
keeps 32 bits, so others would wrap onto one of those (ValueError instead).
Truncation (Brock et al. 2019, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis") resamples every component with |z| > truncation;
`jax.random.truncated_normal` draws from exactly that distribution, without a
data-dependent loop.

Importing this module has no side effects; matplotlib, pandas and the data
loaders are imported when first needed, and TensorFlow only for TFDS data.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import checkpoint, models, sampling
from gan_jax.checkpoint import CheckpointError
from gan_jax.config import ConfigError, from_dict, validate_generator
from gan_jax.files import atomic_write
from gan_jax.neighbors import SPACES, nearest_neighbors
from gan_jax.plots import plot_curves, plot_grid, plot_neighbors, plot_runs
from gan_jax.steps import make_sample_fn

__all__ = ["Run", "load_run", "load_export", "export", "resolve", "read_metrics",
           "metrics_at", "latents", "slerp", "lerp", "INTERPOLATIONS", "nearest_neighbors",
           "SPACES", "plot_grid", "plot_curves", "plot_neighbors", "plot_runs", "CheckpointError"]

METRICS_FILE = "metrics.jsonl"
CARD_FILE = "model_card.json"
PARAMS_FILE = "generator.msgpack"
EXPORT_FORMAT = "gan_jax.generator.v1"
EMA_KEY = "ema_params"   # preferred over g_params when a checkpoint has it


# ----------------------------------------------------------------- latents

def lerp(z0, z1, t):
  """Linear interpolation; t scalar or (T,) -> (z_dim,) or (T, z_dim)."""
  z0, z1, t = np.asarray(z0, np.float64), np.asarray(z1, np.float64), np.asarray(t, np.float64)
  return ((1 - t)[..., None] * z0 + t[..., None] * z1).astype(np.float32)


def slerp(z0, z1, t):
  """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents):
  sin((1-t)w)/sin(w) z0 + sin(tw)/sin(w) z1, w the angle between them; the
  great-circle path when |z0| = |z1| (the norm is not interpolated linearly
  otherwise); lerp when z0 and z1 are (anti)parallel. t scalar or (T,) ->
  (z_dim,) or (T, z_dim)."""
  z0, z1, t = np.asarray(z0, np.float64), np.asarray(z1, np.float64), np.asarray(t, np.float64)
  n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
  cos = np.clip(np.dot(z0, z1) / max(n0 * n1, 1e-12), -1.0, 1.0)
  omega = np.arccos(cos)
  if np.sin(omega) < 1e-6:
    return lerp(z0, z1, t)
  w0 = np.sin((1 - t) * omega) / np.sin(omega)
  w1 = np.sin(t * omega) / np.sin(omega)
  return (w0[..., None] * z0 + w1[..., None] * z1).astype(np.float32)


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


def latents(n: int, z_dim: int, seed: int = 0, truncation: float | None = None,
            start: int = 0) -> np.ndarray:
  """Latents start..start+n-1 of `seed` (an integer in [0, 2**32)), (n, z_dim)
  float32: `sampling.latents`, the z that training and evaluation draw too."""
  return sampling.latents(seed, n, z_dim, start, truncation)


# ----------------------------------------------------------------- metrics

def read_metrics(path: str):
  """metrics.jsonl (or a workdir holding one) -> DataFrame, one row per step
  (training and eval rows of the same step merged), sorted by step. A torn last
  line is skipped."""
  import pandas as pd
  if os.path.isdir(path):
    path = os.path.join(path, "metrics.jsonl")
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          row = json.loads(line)
        except ValueError:
          continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
          rows.append(row)
  if not rows:
    return pd.DataFrame({"step": pd.Series([], dtype=int)})
  # The newest value per column wins: a step logged twice (an older version, a
  # hand-joined log) keeps the row of the trajectory that was resumed.
  df = pd.DataFrame(rows).groupby("step", as_index=False, sort=True).last()
  return df.reset_index(drop=True)


def metrics_at(df, step: int) -> dict:
  """The non-missing values logged at `step` (without 'step')."""
  row = df[df["step"] == step]
  if row.empty:
    return {}
  return {k: float(v) for k, v in row.iloc[0].items()
          if k != "step" and v is not None and np.isfinite(v)}


def _eval_steps(workdir: str, df, metric: str) -> dict:
  """{checkpoint step: value of `metric`}, from the metrics saved with the
  checkpoints or, failing that, from metrics.jsonl."""
  out = checkpoint.scored_steps(workdir, metric)  # a NaN score is never 'best'
  if not out and metric in df.columns:
    vals = df.set_index("step")[metric].dropna()
    finite = checkpoint.finite_metric
    out = {s: v for s in checkpoint.existing_steps(workdir)
           if s in vals.index and (v := finite({metric: float(vals[s])}, metric)) is not None}
  return out


def resolve(workdir: str, step=None, df=None) -> int:
  """None | 'best' | 'latest' | N -> an existing checkpoint step (see module doc)."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir!r} is not a folder")
  steps = checkpoint.existing_steps(workdir)
  if not steps:
    raise CheckpointError(f"no checkpoints in {checkpoint.checkpoint_dir(workdir)}")
  cfg = checkpoint.saved_config(workdir) or {}
  metric = cfg.get("checkpoint", {}).get("best_metric", "eval/fid")
  mode = cfg.get("checkpoint", {}).get("best_mode", "min")
  df = read_metrics(os.path.join(workdir, METRICS_FILE)) if df is None else df
  scored = _eval_steps(workdir, df, metric)
  if step is None:
    step = "best" if scored else "latest"
  if step != "best":
    return checkpoint.resolve_step(workdir, step)
  if not scored:
    raise CheckpointError(
        f"step='best': no checkpoint in {checkpoint.checkpoint_dir(workdir)} has an "
        f"evaluation of {metric!r} (train with eval.every > 0); use 'latest' or one of "
        f"{', '.join(map(str, steps))}")
  return checkpoint.best_step(scored, mode)


# ----------------------------------------------------------------- loading

def _expected_variables(G, config):
  z = jax.ShapeDtypeStruct((1, config.model.z_dim), jnp.float32)
  return jax.eval_shape(lambda z: G.init(jax.random.PRNGKey(0), z, train=False), z)


def _check_shapes(G, config, params, stats, where: str) -> None:
  want = _expected_variables(G, config)
  got = {"params": params, **({"batch_stats": stats} if stats else {})}
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)  # noqa: E731
  if shapes(dict(want)) != shapes(got):
    raise ValueError(f"{where}: the generator parameters do not match the generator "
                     f"built from its config ({config.model.name}); was the config edited?")


# Where a checkpoint keeps G's parameters, its BatchNorm statistics and its
# averaged (EMA) parameters, by TrainState layout (state.LAYOUT_VERSION).
GENERATOR_PATHS = {1: (("g_params",), ("g_stats",), (EMA_KEY,)),
                   2: (("g", "params"), ("g", "collections", "batch_stats"), ("g_ema",))}


def _subtree(tree, path):
  for k in path:
    if not isinstance(tree, dict) or k not in tree:
      return None
    tree = tree[k]
  return tree if jax.tree.leaves(tree) else None


def _nest(path, value) -> dict:
  for k in reversed(path):
    value = {k: value}
  return value


def _restore_generator(workdir: str, step: int) -> tuple[Any, Any, bool]:
  """(params, batch_stats, uses_ema) of one checkpoint, on jax.devices()[0]."""
  import orbax.checkpoint as ocp
  from etils import epath
  path = epath.Path(checkpoint.checkpoint_dir(workdir)) / str(step) / "state"
  handler = ocp.PyTreeCheckpointHandler()
  try:
    tree = handler.metadata(path).tree
    paths = GENERATOR_PATHS[1 if "g_params" in tree else 2]
    found = [p for p in (("step",), *paths) if _subtree(tree, p) is not None]
    want = {}
    for p in found:
      want = _merge(want, _nest(p, _subtree(tree, p)))
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    item = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                        want)
    restore_args = jax.tree.map(lambda m: ocp.ArrayRestoreArgs(sharding=sharding), want)
    out = handler.restore(path, args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True))
  except Exception as e:  # missing, truncated or corrupt files surface as many types
    raise CheckpointError(f"checkpoint at step {step} ({path}) cannot be read: "
                          f"{checkpoint._short(e)}") from e
  finally:
    handler.close()
  if "step" in out and int(out["step"]) != step:
    raise CheckpointError(f"checkpoint folder {path} holds step {int(out['step'])}")
  params, stats, ema = (_subtree(out, p) for p in paths)
  return ema if ema is not None else params, stats or {}, ema is not None


def _merge(a: dict, b: dict) -> dict:
  out = dict(a)
  for k, v in b.items():
    out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def _generator_config(saved, where: str):
  """A saved config dict -> ConfigDict, checked for what building the
  generator needs; ConfigError (one line, naming `where`) otherwise."""
  try:
    config = from_dict(saved)
    validate_generator(config)
  except ConfigError as e:
    raise ConfigError(f"{where}: {e}") from None
  except (TypeError, AttributeError) as e:  # a value of the wrong type, or not a dict
    raise ConfigError(f"{where}: not a usable gan_jax config ({e})") from None
  return config


def _config_at(workdir: str, step: int | None = None):
  saved, path = checkpoint.find_saved_config(workdir, step)
  if saved is None:
    raise FileNotFoundError(f"no readable config for step {step} in {workdir}")
  return _generator_config(saved, path)


def run_config(path: str):
  """The config a workdir (its newest saved config) or an export (its model
  card) was trained with, as a ConfigDict checked for building its generator."""
  card_path = os.path.join(path, CARD_FILE)
  if os.path.isfile(card_path) and not checkpoint.existing_steps(path):
    try:
      with open(card_path) as f:
        return _generator_config(json.load(f)["config"], card_path)
    except (OSError, ValueError, KeyError) as e:
      raise FileNotFoundError(f"{card_path} is not a readable model card ({e})") from e
  try:
    return _config_at(path)
  except FileNotFoundError:
    raise FileNotFoundError(f"{path} has no config.json, checkpoint or {CARD_FILE}") from None


def load_run(path: str, step=None) -> "Run":
  """A workdir at `step` (None, 'best', 'latest' or N; see the module doc), or
  an export folder (`step` must then be None, 'latest' or the exported step)."""
  if os.path.isfile(os.path.join(path, CARD_FILE)):
    run = load_export(path)
    if step not in (None, "latest", run.step, str(run.step)):
      raise ValueError(f"{path} is an export of step {run.step} alone; step={step!r} "
                       "is not in it")
    return run
  df = read_metrics(os.path.join(path, METRICS_FILE))
  step = resolve(path, step, df)
  config = _config_at(path, step)
  G = models.build(config)[0]
  params, stats, uses_ema = _restore_generator(path, step)
  _check_shapes(G, config, params, stats, f"checkpoint {step} in {path}")
  return Run(config=config, step=step, generator=G, params=params, batch_stats=stats,
             metrics=df, path=os.path.abspath(path), source="checkpoint", uses_ema=uses_ema)


def load_export(path: str) -> "Run":
  """An export folder written by `export` (no training state needed)."""
  import pandas as pd
  from flax import serialization
  card_path = os.path.join(path, CARD_FILE)
  try:
    with open(card_path) as f:
      card = json.load(f)
    with open(os.path.join(path, card.get("params_file", PARAMS_FILE)), "rb") as f:
      blob = f.read()
  except (OSError, ValueError) as e:
    raise FileNotFoundError(f"{path} is not a readable export ({type(e).__name__}: {e})") from e
  if card.get("format") != EXPORT_FORMAT:
    raise ValueError(f"{card_path}: format {card.get('format')!r} is not {EXPORT_FORMAT!r}")
  if card.get("params_sha256") and hashlib.sha256(blob).hexdigest() != card["params_sha256"]:
    raise ValueError(f"{path}/{card.get('params_file', PARAMS_FILE)} does not match the "
                     "checksum in its model card (corrupt or replaced)")
  missing = [k for k in ("config", "step") if k not in card]
  if missing:
    raise ValueError(f"{card_path}: missing {', '.join(map(repr, missing))}")
  variables = serialization.msgpack_restore(blob)
  config = _generator_config(card["config"], card_path)
  G = models.build(config)[0]
  params, stats = variables["params"], variables.get("batch_stats", {})
  _check_shapes(G, config, params, stats, f"export {path}")
  metrics = pd.DataFrame([{"step": card["step"], **card.get("metrics", {})}])
  return Run(config=config, step=int(card["step"]), generator=G, params=params,
             batch_stats=stats, metrics=metrics, path=os.path.abspath(path), source="export",
             uses_ema=bool(card.get("uses_ema", False)))


# ----------------------------------------------------------------- the run

@dataclasses.dataclass(eq=False)
class Run:
  """A generator at one step, with the run's metrics. Images are NHWC float32
  numpy arrays in [-1, 1]."""
  config: Any            # ml_collections.ConfigDict (lists where tuples were)
  step: int
  generator: Any         # the flax.linen module; applied with train=False
  params: Any            # G params (EMA params when the checkpoint has them)
  batch_stats: Any       # G BatchNorm running statistics ({} when none)
  metrics: Any           # pandas DataFrame, one row per logged step
  path: str              # the workdir or export folder
  source: str            # 'checkpoint' or 'export'
  uses_ema: bool = False

  def __post_init__(self):
    self._apply = make_sample_fn(self.generator)
    self._real = None

  @property
  def z_dim(self) -> int:
    return int(self.config.model.z_dim)

  def generate(self, z) -> np.ndarray:
    """Images G(z) in inference mode (running BatchNorm statistics)."""
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 2 or z.shape[1] != self.z_dim:
      raise ValueError(f"z has shape {tuple(z.shape)}; expected (n, {self.z_dim})")
    collections = {"batch_stats": self.batch_stats} if self.batch_stats else {}
    return np.asarray(self._apply(self.params, collections, z))

  def latents(self, n: int, seed: int = 0, truncation: float | None = None,
              start: int = 0) -> np.ndarray:
    return latents(n, self.z_dim, seed, truncation, start)

  def _check_labels(self, labels) -> None:
    if labels is not None:
      raise ValueError(f"labels were given, but the {self.config.model.name!r} generator is "
                       "unconditional (gan_jax has no class-conditional models yet)")

  def iter_samples(self, n: int, seed: int = 0, truncation: float | None = None,
                   labels=None, batch_size: int = 256) -> Iterator[np.ndarray]:
    """Samples 0..n-1 of `seed` in batches of min(n, batch_size); the last,
    partial batch is computed at the full shape too (one compilation)."""
    self._check_labels(labels)
    if int(n) < 1 or int(batch_size) < 1:
      raise ValueError(f"n={n} and batch_size={batch_size} must be positive")
    bs = min(int(n), int(batch_size))
    for start in range(0, n, bs):
      yield self.generate(self.latents(bs, seed, truncation, start))[:n - start]

  def sample(self, n: int, seed: int = 0, truncation: float | None = None, labels=None,
             batch_size: int = 256) -> np.ndarray:
    """n samples, deterministic in `seed`; `truncation` as in the module doc;
    `labels` raises ValueError (no conditional models exist yet)."""
    return np.concatenate(list(self.iter_samples(n, seed, truncation, labels, batch_size)))

  def interpolate(self, z0, z1, steps: int = 8, mode: str = "slerp") -> np.ndarray:
    """Images along the path z0 -> z1 (both ends included), (steps, H, W, C)."""
    if mode not in INTERPOLATIONS:
      raise ValueError(f"mode={mode!r} is unknown; valid: {', '.join(INTERPOLATIONS)}")
    if int(steps) < 2:
      raise ValueError(f"steps={steps} must be at least 2")
    for z in (z0, z1):
      if np.shape(z) != (self.z_dim,):
        raise ValueError(f"z0 and z1 must have shape ({self.z_dim},); got {np.shape(z)}")
    return self.generate(INTERPOLATIONS[mode](z0, z1, np.linspace(0.0, 1.0, int(steps))))

  def real_images(self, n: int | None = None, seed: int = 0) -> np.ndarray:
    """n training images (a seeded subset; all when n is None), float in [-1, 1]."""
    if self._real is None:
      from gan_jax import data
      self._real = data.load(self.config.data).images
    from gan_jax.evaluate import real_images
    return real_images(self._real, len(self._real) if n is None else n, seed)

  def nearest_neighbors(self, samples, real=None, k: int = 5, space: str = "pixel",
                        batch_size: int = 256):
    """See `nearest_neighbors`; `real` defaults to all training images."""
    real = self.real_images() if real is None else real
    return nearest_neighbors(samples, real, k, space, batch_size,
                             extractor=self.config.eval.get("extractor", "lenet_mnist"))


# ----------------------------------------------------------------- export

def export(run: Run, out_dir: str) -> str:
  """Writes `generator.msgpack` (the generator's params and batch_stats alone,
  flax.serialization msgpack: arrays only, no pickle) and `model_card.json`
  (format, config, step, metrics at that step, parameter count, checksum,
  date) into out_dir; returns the card's path. `load_run(out_dir)` reads it."""
  from flax import serialization
  from gan_jax.config import saved_dict
  from gan_jax.state import count_params
  variables = {"params": jax.device_get(run.params)}
  if run.batch_stats:
    variables["batch_stats"] = jax.device_get(run.batch_stats)
  blob = serialization.msgpack_serialize(variables)
  h, w, c = (int(run.config.data.image_size),) * 2 + (int(run.config.data.channels),)
  card = {
      "format": EXPORT_FORMAT,
      "params_file": PARAMS_FILE,
      "params_sha256": hashlib.sha256(blob).hexdigest(),
      "model": run.config.model.name,
      "generator": type(run.generator).__name__,
      "z_dim": run.z_dim,
      "image_shape": [h, w, c],
      "num_params": int(count_params(run.params)),
      "num_batch_stats": int(count_params(run.batch_stats)),
      "uses_ema": run.uses_ema,
      "step": int(run.step),
      "metrics": metrics_at(run.metrics, run.step),
      "source": run.path,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "versions": {"jax": jax.__version__, "flax": _version("flax")},
      "config": saved_dict(run.config),
  }
  os.makedirs(out_dir, exist_ok=True)
  for name, payload in ((PARAMS_FILE, blob),
                        (CARD_FILE, (json.dumps(card, indent=2) + "\n").encode())):
    with atomic_write(os.path.join(out_dir, name), "wb") as f:
      f.write(payload)
  return os.path.join(out_dir, CARD_FILE)


def _version(pkg: str) -> str:
  from importlib.metadata import PackageNotFoundError, version
  try:
    return version(pkg)
  except PackageNotFoundError:
    return "unknown"
