"""Metrics vs plain full-matrix NumPy/SciPy references and closed forms."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.special
import scipy.stats

from gan_jax import metrics


def _feats(seed=0, n_real=300, n_fake=250, d=16, shift=0.5, scale=1.3):
  rng = np.random.default_rng(seed)
  mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features
  real = rng.normal(size=(n_real, d)) @ mix
  fake = (rng.normal(size=(n_fake, d)) * scale + shift) @ mix
  return real.astype(np.float32), fake.astype(np.float32)


def _f64(x):
  return np.asarray(x, np.float64)


def _rel(a, b):
  return abs(a - b) / max(abs(b), 1e-300)


# ----------------------------------------------------------------- references

def ref_fid(x, y):
  x, y = _f64(x), _f64(y)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  diff = x.mean(0) - y.mean(0)
  return diff @ diff + np.trace(s1 + s2 - 2 * covmean)


def ref_mmd2_u(x, y):
  x, y = _f64(x), _f64(y)
  k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
  m, n = len(x), len(y)
  kxx, kyy = k(x, x), k(y, y)
  np.fill_diagonal(kxx, 0)
  np.fill_diagonal(kyy, 0)
  return kxx.sum() / (m * (m - 1)) + kyy.sum() / (n * (n - 1)) - 2 * k(x, y).sum() / (m * n)


def ref_is(logits, splits):
  p = scipy.special.softmax(_f64(logits), axis=1)
  scores = []
  for part in np.array_split(p, splits):
    py = part.mean(0)
    kl = [scipy.stats.entropy(row, py) for row in part]  # KL(row || py)
    scores.append(np.exp(np.mean(kl)))
  return np.mean(scores), np.std(scores)


def ref_prdc(real, fake, k_pr=3, k_dc=5):
  real, fake = _f64(real), _f64(fake)
  d_rr = scipy.spatial.distance.cdist(real, real)
  d_ff = scipy.spatial.distance.cdist(fake, fake)
  d_rf = scipy.spatial.distance.cdist(real, fake)
  # k-th neighbour: index k of the sorted row (index 0 is the point itself).
  r_pr, r_dc = np.sort(d_rr, 1)[:, k_pr], np.sort(d_rr, 1)[:, k_dc]
  f_pr = np.sort(d_ff, 1)[:, k_pr]
  return dict(
      precision=(d_rf <= r_pr[:, None]).any(0).mean(),
      recall=(d_rf <= f_pr[None, :]).any(1).mean(),
      density=(d_rf < r_dc[:, None]).sum() / (k_dc * len(fake)),
      coverage=(d_rf.min(1) < r_dc).mean())


# ------------------------------------------------------------------------ FID

def test_feature_stats_match_numpy():
  x, _ = _feats()
  mu, sig = metrics.feature_stats(x, batch_size=37)
  assert mu.dtype == sig.dtype == np.float64
  np.testing.assert_allclose(mu, _f64(x).mean(0), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(sig, np.cov(_f64(x), rowvar=False), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["eigvals", "sqrtm"])
def test_fid_matches_reference(method):
  real, fake = _feats()
  ref = ref_fid(real, fake)
  assert ref > 1.0
  assert _rel(metrics.fid(real, fake, method=method), ref) <= 1e-5


def _random_orthogonal(d, seed):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


@pytest.mark.parametrize("method", ["eigvals", "sqrtm"])
def test_frechet_closed_form_commuting(method):
  d = 12
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  a, b = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
  want = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
  got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
  assert _rel(got, want) <= 1e-10
  q = _random_orthogonal(d, 2)  # Q diag(a) Q^T, Q diag(b) Q^T commute
  got = metrics.frechet_distance(mu1, q * a @ q.T, mu2, q * b @ q.T, method=method)
  assert _rel(got, want) <= 1e-8


@pytest.mark.parametrize("method", ["eigvals", "sqrtm"])
def test_frechet_closed_form_2d_noncommuting(method):
  # 2x2: eigenvalues l1, l2 >= 0 of S1 S2 give Tr sqrt = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
  s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
  s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
  assert not np.allclose(s1 @ s2, s2 @ s1)
  mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
  tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
  want = 0.25 + 6.25 + np.trace(s1 + s2) - 2 * tr_sqrt
  assert _rel(metrics.frechet_distance(mu1, s1, mu2, s2, method=method), want) <= 1e-12


def test_frechet_singular_covariances():
  a = np.array([1.0, 2.0, 0.0, 0.0, 3.0])
  b = np.array([0.0, 3.0, 4.0, 0.0, 3.0])
  want = np.sum(a + b - 2 * np.sqrt(a * b))
  z = np.zeros(5)
  q = _random_orthogonal(5, 3)
  for s1, s2 in [(np.diag(a), np.diag(b)), (q * a @ q.T, q * b @ q.T)]:
    assert abs(metrics.frechet_distance(z, s1, z, s2) - want) <= 1e-10
    with warnings.catch_warnings():  # sqrtm warns about the singular product
      warnings.simplefilter("ignore")
      assert abs(metrics.frechet_distance(z, s1, z, s2, method="sqrtm") - want) <= 1e-3


def test_fid_identical_is_zero():
  x, _ = _feats()
  scale = np.trace(np.cov(_f64(x), rowvar=False))
  for method in ["eigvals", "sqrtm"]:
    assert abs(metrics.fid(x, x, method=method)) <= 1e-8 * scale
  # fewer samples than dimensions: rank-deficient covariance
  y = np.random.default_rng(4).normal(size=(20, 50))
  assert abs(metrics.fid(y, y)) <= 1e-10 * 50
  assert abs(metrics.fid(y, y, method="sqrtm")) <= 1e-5 * 50


def test_fid_sanity_ladder_strictly_increasing():
  x, _ = _feats(n_real=500)
  noise = np.random.default_rng(5).normal(size=x.shape)
  vals = [metrics.fid(x, x + s * noise) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
  assert abs(vals[0]) < 1e-8
  assert all(b > a for a, b in zip(vals, vals[1:])), vals


def test_fid_batching_invariance_and_jax_input():
  real, fake = _feats()
  vals = [metrics.fid(real, fake, batch_size=b) for b in (1, 17, 300, 10_000)]
  assert max(vals) - min(vals) <= 1e-10
  jnp = pytest.importorskip("jax.numpy")
  assert abs(metrics.fid(jnp.asarray(real), jnp.asarray(fake)) - vals[0]) <= 1e-10


def test_frechet_rejects_bad_input():
  with pytest.raises(ValueError, match="shape"):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match="NaN"):
    metrics.frechet_distance(np.zeros(2), np.diag([1.0, np.nan]), np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match="method"):
    metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="x")


# ------------------------------------------------------------------------ KID

def test_mmd2_unbiased_matches_reference():
  real, fake = _feats()
  ref = ref_mmd2_u(real, fake)
  assert ref > 0.01
  assert _rel(metrics.mmd2_unbiased(real, fake), ref) <= 1e-10


def test_kid_matches_reference_subsets():
  real, fake = _feats()
  gen = np.random.default_rng(7)  # documented sampling order: real then fake, per subset
  vals = [ref_mmd2_u(real[gen.choice(300, 100, replace=False)],
                     fake[gen.choice(250, 100, replace=False)]) for _ in range(20)]
  mean, std = metrics.kid(real, fake, num_subsets=20, subset_size=100, rng=7)
  assert _rel(mean, np.mean(vals)) <= 1e-5 and _rel(std, np.std(vals)) <= 1e-5
  assert metrics.kid(real, fake, num_subsets=20, subset_size=100, rng=7) == (mean, std)
  assert metrics.kid(real, fake, num_subsets=20, subset_size=100, rng=8) != (mean, std)


def test_kid_subset_size_clipped():
  real, fake = _feats(n_real=250)
  # subset = all 250 samples of each set, permuted: every subset gives the full MMD^2_u
  mean, std = metrics.kid(real, fake, num_subsets=3, subset_size=1000)
  assert _rel(mean, ref_mmd2_u(real, fake)) <= 1e-10 and std <= 1e-12


def test_kid_unbiased_for_identical_distributions():
  rng = np.random.default_rng(9)
  vals = np.array([metrics.mmd2_unbiased(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)))
                   for _ in range(400)])
  se = vals.std() / np.sqrt(len(vals))
  assert abs(vals.mean()) < 4 * se, (vals.mean(), se)
  # the test has power: a shift of 0.3 std is far outside the band
  shifted = np.mean([metrics.mmd2_unbiased(rng.normal(size=(40, 8)),
                                           rng.normal(size=(40, 8)) + 0.3) for _ in range(100)])
  assert shifted > 20 * se
  x = rng.normal(size=(1000, 8))
  mean, std = metrics.kid(x[:500], x[500:], num_subsets=50, subset_size=200)
  assert abs(mean) < 0.01 and abs(mean) < 3 * std


# ------------------------------------------------------------------------- IS

@pytest.mark.parametrize("n,splits", [(500, 10), (503, 10), (64, 1)])
def test_inception_score_matches_reference(n, splits):
  logits = np.random.default_rng(n).normal(size=(n, 10)) * 3
  mean, std = metrics.inception_score(logits, splits=splits)
  ref_mean, ref_std = ref_is(logits, splits)
  assert _rel(mean, ref_mean) <= 1e-10
  assert abs(std - ref_std) <= 1e-10 * ref_mean
  probs = scipy.special.softmax(logits, axis=1)
  pm, ps = metrics.inception_score(probs=probs, splits=splits)
  assert _rel(pm, mean) <= 1e-8 and abs(ps - std) <= 1e-8 * mean


def test_inception_score_closed_forms_and_stability():
  # confident one-hot predictions spread evenly over C classes: IS = C exactly
  c = 7
  onehot = np.eye(c)[np.arange(70) % c]
  assert _rel(metrics.inception_score(probs=onehot, splits=1)[0], c) <= 1e-12
  assert _rel(metrics.inception_score(onehot * 1e4, splits=2)[0], c) <= 1e-12  # saturated logits
  # identical predictions: p(y|x) = p(y), IS = 1
  assert _rel(metrics.inception_score(np.tile([1.0, 2.0, 3.0], (20, 1)))[0], 1.0) <= 1e-12
  # splits clipped to N: one sample per split, IS = 1 in each
  mean, std = metrics.inception_score(np.random.default_rng(0).normal(size=(3, 5)), splits=10)
  assert _rel(mean, 1.0) <= 1e-12 and std <= 1e-12
  with pytest.raises(ValueError):
    metrics.inception_score()


def test_inception_score_refuses_nan_and_empty_rows():
  # an all-NaN split used to score exactly 1 (its NaN terms dropped as 0 log 0)
  logits = np.random.default_rng(0).normal(size=(20, 5))
  for bad in (np.full((20, 5), np.nan), np.where(np.arange(20)[:, None] < 10, np.nan, logits),
              np.where(np.arange(20)[:, None] == 3, np.inf, logits)):
    with pytest.raises(ValueError, match="logits contain NaN or inf"):
      metrics.inception_score(bad, splits=2)
  probs = np.eye(5)[np.arange(20) % 5]
  probs[:10] = 0.0
  with pytest.raises(ValueError, match="every row of probs needs a positive sum"):
    metrics.inception_score(probs=probs, splits=2)
  with pytest.raises(ValueError, match="probs contain NaN"):
    metrics.inception_score(probs=np.full((4, 5), np.nan))


# ----------------------------------------------------------------------- PRDC

def test_prdc_matches_reference():
  real, fake = _feats()
  ref = ref_prdc(real, fake)
  got = metrics.prdc(real, fake)
  assert 0 < ref["precision"] < 1 and 0 < ref["recall"] < 1 and 0 < ref["coverage"] < 1
  for key in ref:
    assert _rel(got[key], ref[key]) <= 1e-5, (key, got[key], ref[key])
  assert metrics.precision_recall(real, fake) == (got["precision"], got["recall"])
  assert metrics.density_coverage(real, fake) == (got["density"], got["coverage"])


def test_knn_radii_matches_reference():
  real, _ = _feats()
  ref = np.sort(scipy.spatial.distance.cdist(_f64(real), _f64(real)), 1)[:, 4]
  np.testing.assert_allclose(metrics.knn_radii(real, 4, batch_size=64), ref, rtol=1e-9)


def test_prdc_hand_example_with_ties():
  # 1-D, k=1, integer distances (exact in float64). Real {0, 1, 3}: radii 1, 1, 2.
  # Fake {2, 5, 6}: radii 3, 1, 1. Ties decide: 5 is precise since |5-3| = 2 <= 2,
  # while density/coverage use strict "<", so (2, 1) and (5, 3) do not count.
  real, fake = np.array([[0.0], [1.0], [3.0]]), np.array([[2.0], [5.0], [6.0]])
  got = metrics.prdc(real, fake, k_pr=1, k_dc=1)
  assert got == dict(precision=2 / 3, recall=1.0, density=1 / 3, coverage=1 / 3)
  assert got == {k: float(v) for k, v in ref_prdc(real, fake, 1, 1).items()}


def test_prdc_identical_sets():
  real, _ = _feats()
  got = metrics.prdc(real, real.copy())
  assert got["precision"] == got["recall"] == got["coverage"] == 1.0
  assert 0.5 < got["density"] < 1.5


@pytest.mark.parametrize("batch_size", [512, 37])
def test_prdc_fakes_equal_to_reals_in_another_order_tie_exactly(batch_size):
  """A fake point equal to a real one lies exactly on the k-NN radius of the
  real points whose k-th neighbour it is: a tie, which density's and
  coverage's strict < leave out. So the real set, shuffled, has density 1."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(600, 128))
  got = metrics.prdc(x, x[rng.permutation(600)], batch_size=batch_size)
  assert got == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_prdc_batching_invariance():
  real, fake = _feats()
  base = metrics.prdc(real, fake, batch_size=1000)
  for b in (1, 7, 128):
    got = metrics.prdc(real, fake, batch_size=b)
    assert all(abs(got[k] - base[k]) <= 1e-10 for k in base), (b, got, base)


def test_prdc_refuses_nan_features():
  # NaN distances compare False: NaN fakes scored 0 on all four, silently
  real, fake = _feats(n_real=20, n_fake=20, d=4)
  for r, f, name in ((real, np.full_like(fake, np.nan), "fake"),
                     (np.where(real > 1, np.inf, real), fake, "real")):
    with pytest.raises(ValueError, match=f"{name} features contain NaN or inf"):
      metrics.prdc(r, f)


def test_bad_k_subset_size_and_splits_name_the_argument():
  real, fake = _feats(n_real=20, n_fake=3, d=4)
  with pytest.raises(ValueError, match=r"^k_pr=3 must be between 1 and 2: .* real and fake "
                                       r"features \(20, 3\)$"):
    metrics.prdc(real, fake)
  with pytest.raises(ValueError, match=r"^k_dc=5 must be between 1 and 4: .* real features "
                                       r"\(5\)$"):
    metrics.prdc(real[:5], real, k_pr=None)
  with pytest.raises(ValueError, match="^subset_size must be >= 2, got 1$"):
    metrics.kid(real, real, subset_size=1)
  for splits in (0, -2):  # used to be clipped to 1 silently
    with pytest.raises(ValueError, match=f"^splits must be >= 1, got {splits}$"):
      metrics.inception_score(fake, splits=splits)


# ------------------------------------------------------------------- registry

def test_registry_compute_and_unknown_name():
  real, fake = _feats()
  logits = np.random.default_rng(0).normal(size=(250, 10))
  names = ["fid", "kid", "is", "precision_recall", "density_coverage"]
  assert set(names) <= set(metrics.METRICS)
  out = metrics.compute(names, real, fake, fake_logits=logits, rng=3)
  assert set(out) == {"fid", "kid", "kid_std", "is", "is_std",
                      "precision", "recall", "density", "coverage"}
  assert all(isinstance(v, float) for v in out.values())
  assert out["fid"] == metrics.fid(real, fake)
  assert (out["kid"], out["kid_std"]) == metrics.kid(real, fake, rng=3)
  assert out["is"] == metrics.inception_score(logits)[0]
  assert metrics.compute("precision_recall", real, fake) == {
      k: out[k] for k in ("precision", "recall")}
  with pytest.raises(ValueError) as e:
    metrics.compute(["fid", "fidd"], real, fake)
  assert str(e.value) == f"unknown metric 'fidd'; valid: {', '.join(sorted(metrics.METRICS))}"
  assert "fid, is, kid" in str(e.value)
  with pytest.raises(ValueError, match="unknown metric 'x'"):
    metrics.get("x")
  with pytest.raises(ValueError, match="fake_logits"):
    metrics.compute("is", real, fake)


def test_class_spread_counts_arg_max_classes():
  logits = np.full((8, 4), -1.0)
  logits[np.arange(8), [0, 0, 0, 0, 1, 1, 3, 3]] = 2.0  # class 2 never wins
  np.testing.assert_allclose(metrics.class_fractions(logits), [0.5, 0.25, 0.0, 0.25])
  assert metrics.class_spread(logits) == {"class_min": 0.0, "class_max": 0.5}
  out = metrics.compute("class_spread", fake_logits=logits)
  assert out == {"class_min": 0.0, "class_max": 0.5}


def test_class_spread_refuses_bad_logits():
  with pytest.raises(ValueError, match="needs fake_logits"):
    metrics.compute("class_spread", np.zeros((4, 2)), np.zeros((4, 2)))
  with pytest.raises(ValueError, match="NaN"):
    metrics.class_spread(np.array([[0.0, np.nan]]))
  with pytest.raises(ValueError, match="shape"):
    metrics.class_spread(np.zeros((0, 10)))
