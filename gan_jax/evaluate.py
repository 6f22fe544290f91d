"""Evaluation of a generator against real data, used during training and by
scripts/evaluate.py.

* Images: features and logits from a named extractor (metrics/features.py),
  then FID, KID, IS, precision/recall and density/coverage (metrics/), and
  the class spread when the extractor classifies the data's own classes. The
  real features are computed once per Evaluator and reused.
* 2-D toy mixtures: modes captured, high-quality fraction and reverse KL
  (metrics/modes.py), plus a scatter plot of samples against the modes.

Generated samples always come from the same latent seed (`config.eval.seed`,
drawn by `sampling.latents`), so differences between evaluation steps are not
sampling noise in z.
"""
from __future__ import annotations

import os

import numpy as np

from gan_jax import metrics, sampling
from gan_jax.data.common import to_signed
from gan_jax.data.toy import mixture
from gan_jax.files import atomic_write
from gan_jax.metrics.features import CLASSIFIERS, NO_LOGITS, get_extractor
from gan_jax.metrics.modes import mode_metrics

IMAGE_METRICS = ("fid", "kid", "is", "precision_recall", "density_coverage")
# What an evaluation logs, per kind of data (checkpoint.best_metric must be one).
IMAGE_KEYS = tuple(f"eval/{k}" for k in ("fid", "kid", "kid_std", "is", "is_std", "precision",
                                         "recall", "density", "coverage"))
TOY_KEYS = ("eval/modes", "eval/hq_fraction", "eval/reverse_kl")
# With an extractor that classifies the data's own classes, also the class spread.
CLASS_KEYS = ("eval/class_min", "eval/class_max")


def image_metrics(config) -> tuple[str, ...]:
  """The metrics of an image evaluation: no Inception Score when eval.extractor
  gives no logits (features.NO_LOGITS), and the class spread too when it is a
  classifier of the data's classes (features.CLASSIFIERS)."""
  names = IMAGE_METRICS
  if config.eval.extractor in NO_LOGITS:
    names = tuple(m for m in names if m != "is")
  return names + (("class_spread",) if config.eval.extractor in CLASSIFIERS else ())


def eval_keys(config) -> tuple[str, ...]:
  if config.data.source == "toy":
    return TOY_KEYS
  keys = IMAGE_KEYS
  if config.eval.extractor in NO_LOGITS:  # no Inception Score
    keys = tuple(k for k in keys if k not in ("eval/is", "eval/is_std"))
  return keys + (CLASS_KEYS if "class_spread" in image_metrics(config) else ())


def generate(sample_fn, n: int, z_dim: int, seed: int, batch_size: int = 500,
             num_classes: int | None = None) -> np.ndarray:
  """n samples from `sample_fn(z)` in batches: latents 0..n-1 of `seed`
  (sampling.latents, the z that gan_jax.analysis gives for the seed). With
  `num_classes`, `sample_fn(z, y)` with the classes in turn."""
  out = []
  for i in range(0, n, batch_size):
    z = sampling.latents(seed, batch_size, z_dim, start=i)
    y = sampling.grid_labels(batch_size, num_classes, start=i)
    out.append(np.asarray(sample_fn(z) if y is None else sample_fn(z, y)))
  return np.concatenate(out)[:n]


def real_images(dataset_images: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
  """n real images in [-1, 1] (a seeded subset), float32."""
  # Not sorted: datasets are often ordered (MNIST's test set holds its two
  # writer populations in its two halves), and real_vs_real splits this array.
  idx = np.random.default_rng(seed).permutation(len(dataset_images))[:n]
  return to_signed(dataset_images[idx])


class Evaluator:
  """`evaluator(sample_fn, step) -> {'eval/<name>': value}`."""

  def __init__(self, config, dataset_images: np.ndarray, workdir: str | None = None,
               num_classes: int | None = None):
    """`num_classes`: sample_fn takes labels too, (z, y), the classes in turn."""
    self.config, self.workdir, self.num_classes = config, workdir, num_classes
    e = config.eval
    self.toy = config.data.source == "toy"
    if self.toy:
      self.modes, self.sigma = mixture(config.data.name)
    else:
      check_sizes(config, len(dataset_images))
      self.extract = get_extractor(e.extractor)
      real = real_images(dataset_images, eval_sizes(config, len(dataset_images))[0],
                         seed=e.seed)
      self.real_feats, self.real_logits = self.extract(real)

  def __call__(self, sample_fn, step: int, scatter_path: str | None = None) -> dict:
    """Toy data also gets a scatter plot: at `scatter_path`, else (with a
    workdir) at training's <workdir>/eval/scatter_<step>.png."""
    e = self.config.eval
    fake = generate(sample_fn, e.num_samples, self.config.model.z_dim, e.seed,
                    num_classes=self.num_classes)
    if self.toy:
      out = mode_metrics(fake.reshape(len(fake), 2), self.modes, self.sigma)
      if scatter_path is None and self.workdir:
        scatter_path = os.path.join(self.workdir, "eval", f"scatter_{step:08d}.png")
      if scatter_path:
        scatter_png(fake.reshape(len(fake), 2), self.modes, self.sigma, out, scatter_path, step)
    else:
      # scored as the images G's samples are written (writers.py, sample.py):
      # clipped to [-1, 1], which a linear output (model.g_output) can leave
      feats, logits = self.extract(np.clip(fake, -1.0, 1.0))
      out = metrics.compute(image_metrics(self.config), self.real_feats, feats,
                            real_logits=self.real_logits, fake_logits=logits, rng=e.seed)
    return {f"eval/{k}": float(v) for k, v in out.items()}


def eval_sizes(config, num_images: int) -> tuple[int, int]:
  """(real, generated) set sizes of an evaluation on data of `num_images`."""
  e = config.eval
  return min(e.num_real or e.num_samples, num_images), e.num_samples


def check_sizes(config, num_images: int | None = None) -> None:
  """ConfigError naming the setting when an image evaluation's generated or
  real set (`num_images`: the data's size, when known) is smaller than the
  metrics' k-NN needs. The one check of the minimum evaluation size:
  config.validate (settings alone), training once its data is loaded, the
  Evaluator and scripts/evaluate.py call it."""
  from gan_jax.config import MIN_EVAL_SAMPLES as least, ConfigError
  if config.data.source == "toy":  # the toy metrics count modes, no k-NN
    return
  why = f"use at least {least} (density/coverage needs k=5 neighbours"
  e = config.eval
  for name in ("num_samples", "num_real"):
    if e[name] and e[name] < least:
      raise ConfigError(f"config.eval.{name}={e[name]} is too small for the image metrics; "
                        f"{why}; scripts/evaluate.py takes --num_samples)")
  if num_images is None or num_images >= least:
    return
  if e.every:
    raise ConfigError(f"config.eval.every={e.every} needs at least {least} real images for "
                      f"the image metrics, but the data holds {num_images}; add images, raise "
                      "config.data.max_examples, or set config.eval.every=0")
  raise ConfigError(f"the data holds {num_images} images, too few real images for the image "
                    f"metrics; {why}): add images or raise config.data.max_examples")


def floor_sizes(config, num_images: int) -> tuple[int, int, int, int]:
  """(real, fake) set sizes of an evaluation, and the two disjoint real sets
  of its real-vs-real floor.

  The floor compares real with real at the evaluation's own sizes, because FID
  and KID depend strongly on sample size (LeNet FID between two MNIST sets:
  18.3 at 409/409, 10.4 at 1000/1000, 2.8 at 5000/5000). When the data holds
  fewer than real + fake images, both floor sets shrink in proportion, and the
  floor is then an overestimate; the caller reports the sizes.
  """
  from gan_jax.config import MIN_EVAL_SAMPLES as least
  n_real, n_fake = eval_sizes(config, num_images)
  a, b = n_real, n_fake
  if a + b > num_images:
    if num_images < 2 * least:
      raise ValueError(f"the data holds {num_images} images; a real-vs-real floor needs at "
                       f"least {2 * least} (two disjoint sets of {least})")
    a = min(max(num_images * n_real // (n_real + n_fake), least), num_images - least)
    b = num_images - a
  return n_real, n_fake, a, b


def real_vs_real(config, dataset_images: np.ndarray) -> tuple[dict, tuple[int, int]]:
  """Every image metric between two disjoint sets of real images, sized as the
  evaluation's real and generated sets (see floor_sizes): the noise floor this
  sample size allows. Returns the metrics and the two sizes used."""
  extract = get_extractor(config.eval.extractor)
  _, _, a, b = floor_sizes(config, len(dataset_images))
  x = real_images(dataset_images, a + b, seed=config.eval.seed)
  fa, la = extract(x[:a])
  fb, lb = extract(x[a:a + b])
  out = metrics.compute(image_metrics(config), fa, fb, real_logits=la, fake_logits=lb,
                        rng=config.eval.seed)
  return {f"eval/{k}": float(v) for k, v in out.items()}, (a, b)


def scatter_png(points, modes, sigma, values: dict, path: str, step: int) -> None:
  # no pyplot: no backend switch or global state in a caller's notebook
  from matplotlib.figure import Figure
  from matplotlib.patches import Circle
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig = Figure(figsize=(5, 5), dpi=100)
  ax = fig.subplots()
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, c="tab:blue", label="generated")
  for m in modes:
    ax.add_patch(Circle(m, 3 * sigma, fill=False, color="tab:red", lw=1))
  ax.scatter(modes[:, 0], modes[:, 1], s=12, c="tab:red", marker="x", label="modes (3σ circles)")
  lim = np.abs(modes).max() + 1.0
  ax.set_xlim(-lim, lim)
  ax.set_ylim(-lim, lim)
  ax.set_aspect("equal")
  ax.set_title(f"step {step}: {values['modes']}/{len(modes)} modes, "
               f"{100 * values['hq_fraction']:.1f}% HQ, rKL {values['reverse_kl']:.3f}")
  ax.legend(loc="upper right", fontsize=7)
  fig.tight_layout()
  with atomic_write(path, "wb") as f:  # never a torn PNG
    fig.savefig(f, format="png")
