"""The distribution distances of vidgen_tf.metrics against direct computations and closed forms."""

import numpy as np
import pytest
import scipy.linalg

from vidgen_tf.metrics import GaussianStatistics, frechet_distance, inception_score, polynomial_mmd


def _random_features(seed, n=300, d=12, shift=0.0):
    """Samples of one correlated Gaussian (the mixing is fixed), moved by `shift`; `seed` draws the samples."""
    mixing = np.random.default_rng(12345).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mixing + shift


def test_frechet_distance_equals_the_direct_scipy_computation():
    a, b = _random_features(0), _random_features(1, shift=0.3)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    want = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(want, rel=1e-9)


def _stats(mean, covariance, count=1000):
    return GaussianStatistics.from_dict({"count": count, "mean": np.asarray(mean, float),
                                         "covariance": np.asarray(covariance, float)})


def test_frechet_distance_closed_form_for_known_gaussians():
    # Diagonal covariances commute: d^2 = ||mu_a - mu_b||^2 + sum (sqrt(s_a) - sqrt(s_b))^2.
    mean_a, mean_b = [0.0, 1.0, -2.0], [1.0, 1.0, 0.0]
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    want = 1.0 + 0.0 + 4.0 + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(_stats(mean_a, np.diag(var_a)), _stats(mean_b, np.diag(var_b))) == pytest.approx(want)
    # A rotation of both covariances leaves the distance as it is (non-commuting case below).
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    rotated_a, rotated_b = rotation @ np.diag(var_a) @ rotation.T, rotation @ np.diag(var_b) @ rotation.T
    got = frechet_distance(_stats(rotation @ mean_a, rotated_a), _stats(rotation @ mean_b, rotated_b))
    assert got == pytest.approx(want)
    # Non-commuting 2x2 case, worked by hand: S_a = I, S_b = [[2, 1], [1, 2]] (eigenvalues 1 and 3):
    # Tr S_a + Tr S_b - 2 Tr S_b^(1/2) = 2 + 4 - 2 (1 + sqrt 3).
    got = frechet_distance(_stats([0, 0], np.eye(2)), _stats([0, 0], [[2.0, 1.0], [1.0, 2.0]]))
    assert got == pytest.approx(6 - 2 * (1 + np.sqrt(3)))


def test_frechet_distance_is_zero_for_identical_statistics_and_never_negative():
    a = _random_features(4)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a) >= 0.0
    # A rank-deficient covariance (more dimensions than samples) stays finite and >= 0.
    few = _random_features(5, n=5, d=12)
    assert np.isfinite(frechet_distance(few, few)) and frechet_distance(few, few) >= 0.0


def test_streaming_statistics_equal_one_shot_statistics():
    features = _random_features(6, n=1001, d=9, shift=1e3)  # a large offset tests the centred update
    stats = GaussianStatistics()
    for start in range(0, len(features), 97):
        stats.update(features[start : start + 97])
    assert stats.count == 1001
    np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-9)
    restored = GaussianStatistics.from_dict(stats.to_dict())
    np.testing.assert_allclose(restored.covariance, stats.covariance)
    assert frechet_distance(stats, features) == pytest.approx(0.0, abs=1e-6)


def test_polynomial_mmd_against_a_direct_computation():
    a, b = _random_features(7, n=40, d=5), _random_features(8, n=40, d=5, shift=0.5)
    d = a.shape[1]
    kernel = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    m = len(a)
    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    want = ((k_aa.sum() - np.trace(k_aa)) + (k_bb.sum() - np.trace(k_bb))) / (m * (m - 1)) - 2 * k_ab.mean()
    mean, std = polynomial_mmd(a, b, num_subsets=3, subset_size=m)  # whole sets: every subset is the same
    assert mean == pytest.approx(want, rel=1e-10)
    assert std is None  # one subset: no spread to report (not a rounding-level 0)
    # Subsets smaller than the sets do vary.
    assert polynomial_mmd(a, b, num_subsets=3, subset_size=m - 5)[1] > 0


def test_polynomial_mmd_near_zero_for_one_distribution_and_positive_for_shifted():
    a, b, shifted = _random_features(9, n=600), _random_features(10, n=600), _random_features(10, n=600, shift=1.0)
    same_mean, _ = polynomial_mmd(a, b, num_subsets=20, subset_size=300)
    shifted_mean, shifted_std = polynomial_mmd(a, shifted, num_subsets=20, subset_size=300)
    assert abs(same_mean) < 0.02
    assert shifted_mean > 0.3
    assert shifted_mean > 10 * abs(same_mean) and shifted_mean > 5 * shifted_std


def test_inception_score_bounds():
    classes = 10
    confident = np.eye(classes)[np.arange(1000) % classes]  # one class each, all classes equally
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(classes)
    assert std == pytest.approx(0.0, abs=1e-9)
    constant = np.tile(np.full(classes, 1.0 / classes), (1000, 1))
    assert inception_score(constant)[0] == pytest.approx(1.0)
    always_one = np.tile(np.eye(classes)[3], (500, 1))
    assert inception_score(always_one)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: frechet_distance(np.zeros((1, 4)), np.zeros((5, 4))), "at least 2 samples"),
        (lambda: frechet_distance(np.zeros((5, 4)), np.zeros((5, 3))), "Feature size mismatch"),
        (lambda: frechet_distance(np.zeros((5, 4, 1)), np.zeros((5, 4))), "must be 2-D"),
        (lambda: frechet_distance(np.array([["a", "b"], ["c", "d"]]), np.zeros((2, 2))), "numeric"),
        (lambda: frechet_distance(np.full((3, 2), np.nan), np.zeros((3, 2))), "NaN"),
        (lambda: GaussianStatistics().update(np.zeros((2, 3))).update(np.zeros((2, 4))), "mismatch"),
        (lambda: GaussianStatistics().update(np.zeros((1, 3))).covariance, "at least 2"),
        (lambda: polynomial_mmd(np.zeros((1, 3)), np.zeros((4, 3))), "at least 2 samples"),
        (lambda: inception_score(np.full((4, 3), 0.5)), "summing to 1"),
        (lambda: inception_score(np.eye(3), splits=4), "splits"),
    ],
)
def test_bad_inputs_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
