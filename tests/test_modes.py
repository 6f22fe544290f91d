import numpy as np
import pytest

from gan_jax.metrics.modes import mode_metrics

RING = np.stack([2 * np.cos(np.arange(8) * np.pi / 4), 2 * np.sin(np.arange(8) * np.pi / 4)], 1)


def test_perfect_samples_cover_every_mode():
  rng = np.random.default_rng(0)
  x = np.repeat(RING, 300, axis=0) + rng.normal(0, 0.02, (2400, 2))
  m = mode_metrics(x, RING, 0.02)
  assert m["modes"] == 8
  assert m["hq_fraction"] > 0.98            # 3 sigma in 2-D holds ~98.9%
  assert 0 <= m["reverse_kl"] < 1e-3      # counts within a few samples of 300 each


def test_collapse_to_one_mode():
  x = np.repeat(RING[:1], 1000, axis=0)
  m = mode_metrics(x, RING, 0.02)
  assert m == {"modes": 1, "hq_fraction": 1.0, "reverse_kl": pytest.approx(np.log(8))}


def test_off_manifold_samples_are_low_quality_and_min_count():
  x = np.concatenate([np.repeat(RING[:2], 500, axis=0), np.zeros((1000, 2)),
                      RING[2:3] + 0.01])      # one stray sample on mode 2
  m = mode_metrics(x, RING, 0.02)
  assert m["hq_fraction"] == pytest.approx(1001 / 2001)
  assert m["modes"] == 2                    # a single sample does not capture mode 2
  p = np.array([500, 500, 1]) / 1001
  assert m["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(p * 8))))
