"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training
GANs", arXiv:1606.03498, Sec. 4):

  IS = exp(E_x KL(p(y|x) || p(y))),  p(y) = E_x p(y|x),

evaluated on `splits` disjoint splits of the samples (p(y) is the marginal of
each split); the mean and std (ddof=0) over splits are reported, as in the
paper's protocol (10 splits of 5k samples).

Everything is done in log space: log p(y|x) = log_softmax(logits) and
log p(y) = logsumexp_x log p(y|x) - log n, so saturated logits stay finite.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def _log_softmax(logits: np.ndarray) -> np.ndarray:
  return logits - logsumexp(logits, axis=1, keepdims=True)


def _log_probs(probs: np.ndarray) -> np.ndarray:
  if (probs < 0).any():
    raise ValueError("probabilities must be non-negative")
  with np.errstate(divide="ignore"):
    return np.log(probs) - np.log(probs.sum(axis=1, keepdims=True))


def _split_score(logp: np.ndarray) -> float:
  """exp(mean_x KL(p(y|x) || p(y))) for one split; 0 * log 0 terms count as 0."""
  log_py = logsumexp(logp, axis=0) - np.log(len(logp))
  p = np.exp(logp)
  with np.errstate(invalid="ignore"):
    terms = np.where(p > 0, p * (logp - log_py), 0.0)
  return float(np.exp(terms.sum(axis=1).mean()))


def inception_score(logits=None, *, probs=None, splits: int = 10) -> tuple[float, float]:
  """(mean, std) of the IS over splits from (N, C) classifier logits or probs.

  Give exactly one of `logits` or `probs` (rows of probs are renormalised);
  NaN or inf in either, or a row of probs that sums to 0, raises ValueError.
  Samples are cut into min(splits, N) (splits >= 1) contiguous, near-equal parts
  (np.array_split), so every split is non-empty and all samples are used.
  """
  if (logits is None) == (probs is None):
    raise ValueError("give exactly one of logits or probs")
  x = np.asarray(logits if probs is None else probs)
  if x.ndim != 2 or len(x) == 0:
    raise ValueError(f"expected (N >= 1, C) array, got shape {x.shape}")
  # a NaN row would drop out of the score (its 0 * log 0 terms count as 0):
  # all-NaN logits (a diverged G) would score IS = 1 instead of failing
  if not np.isfinite(x).all():
    raise ValueError(f"{'logits' if probs is None else 'probs'} contain NaN or inf "
                     f"({np.count_nonzero(~np.isfinite(x).all(axis=1))} of {len(x)} rows)")
  if probs is not None and not (x.sum(axis=1) > 0).all():
    raise ValueError("every row of probs needs a positive sum")
  if int(splits) < 1:
    raise ValueError(f"splits must be >= 1, got {splits}")
  to_logp = _log_softmax if probs is None else _log_probs
  splits = max(1, min(int(splits), len(x)))
  scores = np.array([_split_score(to_logp(part.astype(np.float64))) for part in np.array_split(x, splits)])
  return float(scores.mean()), float(scores.std())
