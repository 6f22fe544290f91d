"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs",
arXiv:1801.01401, Sec. 5 / App. D).

KID is the unbiased estimator of the squared MMD (Gretton et al. 2012, Lemma 6)
with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, d the feature dim:

  MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
            - 2/(m n) sum_{i,j} k(x_i, y_j),

averaged over random subsets of equal size (reported as mean and std).
Its expectation is exactly 0 when both sets come from one distribution, so
small or negative values are expected there.
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3,
                      coef0: float = 1.0) -> np.ndarray:
  """k(x, y) = (x.y / d + coef0)^degree for all row pairs; (len(x), len(y))."""
  return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x, y) -> float:
  """Unbiased MMD^2 estimate with the cubic polynomial kernel (float64)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  m, n = len(x), len(y)
  if m < 2 or n < 2:
    raise ValueError(f"need >= 2 samples per set, got {m} and {n}")
  kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean())


def kid(real_feats, fake_feats, *, num_subsets: int = 100, subset_size: int = 1000,
        rng: int | np.random.Generator = 0) -> tuple[float, float]:
  """(mean, std) of MMD^2_u over `num_subsets` subsets of size m.

  m = min(subset_size, N_real, N_fake). For each subset, in order, real then
  fake indices are drawn without replacement from np.random.default_rng(rng),
  so results are deterministic given an integer seed. std uses ddof=0.
  """
  real, fake = np.asarray(real_feats), np.asarray(fake_feats)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f"features must be (N, D) with equal D, got {real.shape} {fake.shape}")
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
  if subset_size < 2:  # the unbiased estimate needs pairs within each set
    raise ValueError(f"subset_size must be >= 2, got {subset_size}")
  m = min(subset_size, len(real), len(fake))
  gen = np.random.default_rng(rng)
  vals = np.empty(num_subsets)
  for i in range(num_subsets):
    r = real[gen.choice(len(real), m, replace=False)]
    f = fake[gen.choice(len(fake), m, replace=False)]
    vals[i] = mmd2_unbiased(r, f)
  return float(vals.mean()), float(vals.std())
