"""Sample-quality metrics on precomputed features / classifier logits.

Registry: METRICS[name](real_feats, fake_feats, *, real_logits, fake_logits,
rng) -> dict[str, float]. Features are (N, D) arrays (NumPy or JAX); all math
is NumPy/SciPy in float64.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from gan_jax.metrics.classes import class_fractions, class_spread
from gan_jax.metrics.fid import feature_stats, fid, frechet_distance
from gan_jax.metrics.inception_score import inception_score
from gan_jax.metrics.kid import kid, mmd2_unbiased
from gan_jax.metrics.prdc import density_coverage, knn_radii, prdc, precision_recall

MetricFn = Callable[..., dict[str, float]]


def _fid(real_feats, fake_feats, **_) -> dict[str, float]:
  return {"fid": fid(real_feats, fake_feats)}


def _kid(real_feats, fake_feats, *, rng=0, **_) -> dict[str, float]:
  mean, std = kid(real_feats, fake_feats, rng=rng)
  return {"kid": mean, "kid_std": std}


def _is(real_feats, fake_feats, *, fake_logits=None, **_) -> dict[str, float]:
  if fake_logits is None:
    raise ValueError("metric 'is' needs fake_logits")
  mean, std = inception_score(fake_logits)
  return {"is": mean, "is_std": std}


def _classes(real_feats, fake_feats, *, fake_logits=None, **_) -> dict[str, float]:
  if fake_logits is None:
    raise ValueError("metric 'class_spread' needs fake_logits")
  return class_spread(fake_logits)


def _pr(real_feats, fake_feats, **_) -> dict[str, float]:
  return prdc(real_feats, fake_feats, k_dc=None)


def _dc(real_feats, fake_feats, **_) -> dict[str, float]:
  return prdc(real_feats, fake_feats, k_pr=None)


def _prdc(real_feats, fake_feats, **_) -> dict[str, float]:
  return prdc(real_feats, fake_feats)


METRICS: dict[str, MetricFn] = {
    "fid": _fid,
    "kid": _kid,
    "is": _is,
    "class_spread": _classes,
    "precision_recall": _pr,
    "density_coverage": _dc,
    "prdc": _prdc,
}


def get(name: str) -> MetricFn:
  """The registry entry for `name`; ValueError listing valid names otherwise."""
  if name not in METRICS:
    raise ValueError(f"unknown metric {name!r}; valid: {', '.join(sorted(METRICS))}")
  return METRICS[name]


def compute(names: str | Iterable[str], real_feats=None, fake_feats=None, *,
            real_logits=None, fake_logits=None, rng: int = 0) -> dict[str, float]:
  """Runs several registry metrics and merges their result dicts.

  All names are validated before anything is computed; inputs are converted
  to NumPy once. "precision_recall" + "density_coverage" share one "prdc" pass.
  """
  names = [names] if isinstance(names, str) else list(names)
  fns = {n: get(n) for n in names}
  if "precision_recall" in fns and "density_coverage" in fns:
    del fns["precision_recall"], fns["density_coverage"]
    fns["prdc"] = METRICS["prdc"]
  real, fake, fake_logits, real_logits = (None if a is None else np.asarray(a) for a in
                                          (real_feats, fake_feats, fake_logits, real_logits))
  out: dict[str, float] = {}
  for fn in fns.values():
    out.update(fn(real, fake, real_logits=real_logits, fake_logits=fake_logits, rng=rng))
  return out


__all__ = ["METRICS", "compute", "get", "class_fractions", "class_spread", "feature_stats",
           "frechet_distance", "fid", "kid",
           "mmd2_unbiased", "inception_score", "prdc", "precision_recall",
           "density_coverage", "knn_radii"]
