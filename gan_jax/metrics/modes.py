"""Mode-collapse metrics for the 2-D Gaussian-mixture benchmark.

The benchmark of the Unrolled GAN (Metz et al. 2017), VEEGAN (Srivastava et
al. 2017) and PacGAN (Lin et al. 2018) papers: a mixture of equal-weight
isotropic Gaussians with standard deviation sigma. For generated points:

* hq_fraction: the fraction of "high-quality" samples, those within 3 sigma of
  the nearest mode;
* modes: the number of modes with at least `min_count` high-quality samples
  (PacGAN counts a mode as lost when fewer than 20 of 2,500 samples fall
  within 3 sigma of it; `min_count` defaults to that share of the samples);
* reverse_kl: KL(p_gen || p_true) between the histogram of high-quality
  samples over modes and the true uniform weights, sum_m p_m log(p_m * M).
  0 means perfectly balanced; log(M) means every sample is on one mode.
"""
from __future__ import annotations

import numpy as np


def mode_metrics(samples, modes, sigma: float, min_count: int | None = None) -> dict:
  x = np.asarray(samples, np.float64).reshape(len(samples), -1)
  modes = np.asarray(modes, np.float64)
  d2 = ((x[:, None, :] - modes[None, :, :]) ** 2).sum(-1)   # (N, M)
  nearest = np.argmin(d2, axis=1)
  hq = np.sqrt(d2[np.arange(len(x)), nearest]) <= 3 * sigma
  counts = np.bincount(nearest[hq], minlength=len(modes))
  if min_count is None:
    min_count = max(1, int(round(20 / 2500 * len(x))))
  p = counts / max(counts.sum(), 1)
  nz = p > 0
  rkl = float(np.sum(p[nz] * np.log(p[nz] * len(modes)))) if counts.sum() else float("inf")
  return {"modes": int(np.sum(counts >= min_count)), "hq_fraction": float(hq.mean()),
          "reverse_kl": rkl}
