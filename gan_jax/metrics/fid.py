"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium", arXiv:1706.08500).

Gaussians N(mu1, S1), N(mu2, S2) fitted to two feature sets are compared with
the Fréchet / 2-Wasserstein distance (Dowson & Landau 1982):

  d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).

Tr((S1 S2)^{1/2}) is the sum of square roots of the eigenvalues of S1 S2,
which are real and >= 0 (S1 S2 is similar to the PSD matrix L^T S2 L, where
S1 = L L^T). The default method uses that symmetric form (no complex
arithmetic, about 3x faster than sqrtm at D=2048); method="sqrtm" is the
customary scipy.linalg.sqrtm(S1 @ S2) route with its eps*I / imaginary-part
fallbacks.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg


def feature_stats(feats, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Mean and unbiased covariance (ddof=1, like np.cov) of (N, D) features, in float64.

  Two passes over row batches (mean, then sum_i (x_i - mu)(x_i - mu)^T), so
  only one (batch_size, D) float64 block exists at a time and the centred sum
  avoids the cancellation of E[x x^T] - mu mu^T.
  """
  x = np.asarray(feats)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"features must be (N >= 2, D), got shape {x.shape}")
  n, d = x.shape
  mu = np.zeros(d)
  for s in range(0, n, batch_size):
    mu += x[s:s + batch_size].sum(axis=0, dtype=np.float64)
  mu /= n
  sigma = np.zeros((d, d))
  for s in range(0, n, batch_size):
    b = x[s:s + batch_size].astype(np.float64) - mu
    sigma += b.T @ b
  sigma /= n - 1
  return mu, sigma


def _psd_factor(s: np.ndarray) -> np.ndarray:
  """F with F F^T = s: Cholesky, or the symmetric square root if s is singular."""
  try:
    return np.linalg.cholesky(s)
  except np.linalg.LinAlgError:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_eigvals(s1: np.ndarray, s2: np.ndarray) -> float:
  f = _psd_factor(s1)
  m = f.T @ s2 @ f
  ev = np.linalg.eigvalsh((m + m.T) / 2)
  # Eigenvalues within rounding noise of 0 (singular S1 S2) are set to 0: the
  # square root would otherwise amplify noise eps*|M| to sqrt(eps*|M|) each.
  ev[ev < len(ev) * np.finfo(np.float64).eps * max(ev.max(), 0.0)] = 0.0
  return float(np.sqrt(ev).sum())


def _trace_sqrt_sqrtm(s1: np.ndarray, s2: np.ndarray, eps: float) -> float:
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    offset = eps * np.eye(s1.shape[0])
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
      raise ValueError(f"sqrtm(S1 S2) has imaginary part {np.abs(covmean.imag).max():.3g}")
    covmean = covmean.real
  return float(np.trace(covmean))


def frechet_distance(mu1, sigma1, mu2, sigma2, *, method: str = "eigvals",
                     eps: float = 1e-6) -> float:
  """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2}) in float64.

  method: "eigvals" (default; exact for singular PSD covariances) or "sqrtm"
  (adds eps*I to both covariances if sqrtm is non-finite; drops an imaginary
  part if its diagonal is below 1e-3, else raises ValueError).
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
  d = mu1.shape[0]
  if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
    raise ValueError(f"shape mismatch: {mu1.shape} {s1.shape} vs {mu2.shape} {s2.shape}")
  if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
    raise ValueError("means/covariances contain NaN or inf")
  if method == "eigvals":
    tr_covmean = _trace_sqrt_eigvals(s1, s2)
  elif method == "sqrtm":
    tr_covmean = _trace_sqrt_sqrtm(s1, s2, eps)
  else:
    raise ValueError(f"unknown method {method!r}; valid: eigvals, sqrtm")
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid(real_feats, fake_feats, *, batch_size: int = 4096, method: str = "eigvals") -> float:
  """Fréchet distance between Gaussians fitted to (N, D) real and fake features."""
  mu1, s1 = feature_stats(real_feats, batch_size)
  mu2, s2 = feature_stats(fake_feats, batch_size)
  return frechet_distance(mu1, s1, mu2, s2, method=method)
