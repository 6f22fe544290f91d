"""k-NN manifold metrics between real and fake feature sets.

* precision / recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
  Metric for Assessing Generative Models", arXiv:1904.06991): with
  r_k(x) = distance from x to its k-th nearest neighbour in its own set,
    precision = 1/M sum_j 1[exists i: ||y_j - x_i|| <= r_k(x_i)],
    recall    = 1/N sum_i 1[exists j: ||x_i - y_j|| <= r_k(y_j)].
* density / coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity
  Metrics for Generative Models", arXiv:2002.09797):
    density  = 1/(k M) sum_j sum_i 1[||y_j - x_i|| < r_k(x_i)],
    coverage = 1/N sum_i 1[min_j ||x_i - y_j|| < r_k(x_i)]
  (strict inequalities as in the authors' reference code).

x: N real, y: M fake features. Distances are Euclidean, computed pair by pair
(scipy's cdist) in row blocks of `batch_size`, so at most a (batch_size,
max(N, M)) matrix is held: no N x M matrix is materialised. Pair by pair, a
fake point equal to a real one has exactly that point's distances to the real
set, so ties at a k-NN radius are decided by the definition, not by rounding:
with sqrt(|a|^2 + |b|^2 - 2 a.b), a fake set equal to the real set in another
order gave density 1.003-1.004 instead of 1.
k-NN radii come from np.partition on each block, the point itself excluded.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy.spatial.distance import cdist


def _pairwise_blocks(x: np.ndarray, y: np.ndarray,
                     batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (start, D) with D[i, j] = ||x[start + i] - y[j]||."""
  for s in range(0, len(x), batch_size):
    yield s, cdist(x[s:s + batch_size], y)


def _radii(x: np.ndarray, ks: Sequence[int], batch_size: int) -> np.ndarray:
  """(len(ks), N): distance of each row of x to its k-th nearest other row."""
  if not all(1 <= k < len(x) for k in ks):
    raise ValueError(f"need 1 <= k < N, got k={list(ks)} with N={len(x)}")
  kth = [k - 1 for k in ks]
  out = np.empty((len(ks), len(x)))
  for s, d in _pairwise_blocks(x, x, batch_size):
    rows = np.arange(len(d))
    d[rows, s + rows] = np.inf  # exclude the point itself
    out[:, s:s + len(d)] = np.partition(d, kth, axis=1)[:, kth].T
  return out


def knn_radii(feats, k: int, *, batch_size: int = 512, dtype=np.float64) -> np.ndarray:
  """r_k(x_i) for every row x_i of (N, D) `feats` (self excluded)."""
  return _radii(np.asarray(feats, dtype), [k], batch_size)[0]


def prdc(real_feats, fake_feats, *, k_pr: int | None = 3, k_dc: int | None = 5,
         batch_size: int = 512, dtype=np.float64) -> dict[str, float]:
  """precision, recall (k=k_pr) and density, coverage (k=k_dc) in one fake-vs-real pass.

  Set k_pr or k_dc to None to skip that pair. Cost: one N x N, one M x M
  (if k_pr) and one M x N blockwise distance pass. Inputs are converted to
  `dtype` once (float64 by default). scipy's cdist computes in float64 whatever
  `dtype` is, so float32 only rounds the features first: it saves no time, and
  each block then converts the whole other set back to float64. NaN or inf
  features raise ValueError.
  """
  real, fake = np.asarray(real_feats, dtype), np.asarray(fake_feats, dtype)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f"features must be (N, D) with equal D, got {real.shape} {fake.shape}")
  # NaN distances compare False everywhere: NaN features would give 0s, not an error
  for name, a in (("real", real), ("fake", fake)):
    if not np.isfinite(a).all():
      raise ValueError(f"{name} features contain NaN or inf")
  ks = [k for k in (k_pr, k_dc) if k is not None]
  if not ks:
    raise ValueError("nothing to compute: k_pr and k_dc are both None")
  # k-NN radii exist for 1 <= k < set size; k_pr's are taken in both sets
  for name, k, sets in (("k_pr", k_pr, (real, fake)), ("k_dc", k_dc, (real,))):
    n = min(len(x) for x in sets)
    if k is not None and not 1 <= k < n:
      raise ValueError(f"{name}={k} must be between 1 and {n - 1}: the k-NN radius needs "
                       f"k < the number of {' and '.join(('real', 'fake')[:len(sets)])} "
                       f"features ({', '.join(str(len(x)) for x in sets)})")
  r_rad = dict(zip(ks, _radii(real, ks, batch_size)))
  f_rad = _radii(fake, [k_pr], batch_size)[0] if k_pr is not None else None
  precise = inside = 0
  recalled = np.zeros(len(real), bool)
  nn_dist = np.full(len(real), np.inf)
  for s, d in _pairwise_blocks(fake, real, batch_size):  # d: (block of fake, N)
    if k_pr is not None:
      precise += np.count_nonzero((d <= r_rad[k_pr]).any(axis=1))
      recalled |= (d <= f_rad[s:s + len(d), None]).any(axis=0)
    if k_dc is not None:
      inside += np.count_nonzero(d < r_rad[k_dc])
      np.minimum(nn_dist, d.min(axis=0), out=nn_dist)
  out = {}
  if k_pr is not None:
    out.update(precision=precise / len(fake), recall=recalled.mean())
  if k_dc is not None:
    out.update(density=inside / (k_dc * len(fake)), coverage=(nn_dist < r_rad[k_dc]).mean())
  return {key: float(v) for key, v in out.items()}


def precision_recall(real_feats, fake_feats, *, k: int = 3, batch_size: int = 512,
                     dtype=np.float64) -> tuple[float, float]:
  """(precision, recall) of Kynkäänniemi et al. 2019 with k-NN radius k."""
  r = prdc(real_feats, fake_feats, k_pr=k, k_dc=None, batch_size=batch_size, dtype=dtype)
  return r["precision"], r["recall"]


def density_coverage(real_feats, fake_feats, *, k: int = 5, batch_size: int = 512,
                     dtype=np.float64) -> tuple[float, float]:
  """(density, coverage) of Naeem et al. 2020 with k-NN radius k."""
  r = prdc(real_feats, fake_feats, k_pr=None, k_dc=k, batch_size=batch_size, dtype=dtype)
  return r["density"], r["coverage"]
