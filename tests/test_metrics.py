"""The distribution distances of vidgen_tf.metrics against direct computations and closed forms."""

import numpy as np
import pytest
import scipy.linalg

from vidgen_tf.metrics import (
    GaussianStatistics,
    feature_memorisation,
    feature_precision_recall,
    frechet_distance,
    inception_score,
    polynomial_mmd,
)


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


# Five real and four generated points on which the k=1 balls are worked by hand:
# real radii (nearest other real point) 1, 1, 1, 1, 3; generated radii 3, 3, 1, 1.
HAND_REAL = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [6, 0]], np.float64)
HAND_FAKE = np.array([[0, 0.5], [3, 0.5], [10, 0], [10, 1]], np.float64)


def test_precision_recall_density_coverage_on_points_worked_by_hand():
    found = feature_precision_recall(HAND_REAL, HAND_FAKE, k=1)
    # Precision: (0, .5) is in (0, 0)'s ball and (3, .5) in (3, 0)'s; the two at x = 10 are in none: 2 / 4.
    # Recall: (0, .5)'s ball (radius 3) holds the first three real points, (3, .5)'s holds (2, 0) and (3, 0);
    # (6, 0) is 3.04 from (3, .5) and 4 from (10, 0) (radius 1): 4 / 5.
    # Density: 2 (fake, real ball) pairs / (k=1 * 4 fakes); coverage: real balls (0, 0), (3, 0) hold a fake: 2 / 5.
    assert found == pytest.approx({"precision": 0.5, "recall": 0.8, "density": 0.5, "coverage": 0.4})
    # k = 2: the radius of (6, 0) grows to 4 (its 2nd neighbour, (2, 0)), so its ball takes (3, .5) too:
    # coverage 3 / 5; (10, 0), at exactly 4 (integer arithmetic, no round-off), counts as inside (balls are
    # closed): precision 3 / 4, density 4 pairs / (k=2 * 4).
    wider = feature_precision_recall(HAND_REAL, HAND_FAKE, k=2)
    assert (wider["coverage"], wider["density"], wider["precision"]) == pytest.approx((0.6, 4 / 8, 0.75))


def test_precision_recall_against_brute_force_loops_and_its_extremes():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 3)), rng.normal(0.7, 1.0, size=(30, 3))
    k = 3

    def radii(x):
        return np.array([sorted(np.linalg.norm(x - p, axis=1))[k] for p in x])  # [0] is the point itself

    r_real, r_fake = radii(real), radii(fake)
    inside = np.array([[np.linalg.norm(f - r) <= rad for f in fake] for r, rad in zip(real, r_real)])
    expected = {
        "precision": np.mean([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, r_real)) for f in fake]),
        "recall": np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake, r_fake)) for r in real]),
        "density": inside.sum() / (k * len(fake)),
        "coverage": inside.any(axis=1).mean(),
    }
    assert feature_precision_recall(real, fake, k) == pytest.approx(expected)
    same = feature_precision_recall(real, real, k)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # A collapsed generator (one point repeated) sits inside the data (precision 1) but covers none of it.
    collapsed = feature_precision_recall(real, np.repeat(real[:1], 10, axis=0), k)
    assert collapsed["precision"] == 1.0 and collapsed["recall"] <= 1 / 40 + 1e-12


def test_memorisation_puts_a_copier_far_below_the_held_out_level():
    # By hand: held-out (1, 0), (10, 2) are 1 and 2 from the training points: median 1.5; the generated
    # (0, 0) and (10, .3) are 0 and .3 away: median .15, ratio .1.
    train = np.array([[0.0, 0.0], [10.0, 0.0]])
    found = feature_memorisation(train, np.array([[0.0, 0.0], [10.0, 0.3]]), np.array([[1.0, 0.0], [10.0, 2.0]]))
    np.testing.assert_allclose(found["fake_distances"], [0.0, 0.3])
    np.testing.assert_allclose(found["held_out_distances"], [1.0, 2.0])
    assert (found["fake_median"], found["held_out_median"]) == pytest.approx((0.15, 1.5))
    assert found["ratio"] == pytest.approx(0.1)
    rng = np.random.default_rng(1)
    train, held_out = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
    novel = feature_memorisation(train, rng.normal(size=(100, 8)), held_out)
    copier = feature_memorisation(train, train[:100] + rng.normal(scale=0.01, size=(100, 8)), held_out)
    assert 0.8 < novel["ratio"] < 1.25 and novel["copied_fraction"] < 0.2
    assert copier["ratio"] < 0.05 and copier["copied_fraction"] == 1.0
    assert novel["held_out_repeats"] == novel["fake_repeats"] == 0.0
    # Data with few distinct samples: held-out samples repeat training ones, which the result says.
    few = np.repeat(np.eye(4), 5, axis=0)  # 4 distinct samples, 5 times each
    some = feature_memorisation(few, few[:3], np.vstack([np.eye(4)[:2], np.full((3, 4), 0.5)]))
    assert some["held_out_repeats"] == pytest.approx(2 / 5) and some["fake_repeats"] == 1.0
    with pytest.raises(ValueError, match=r"median distance to the training set is 0 \(80% of them equal"):
        feature_memorisation(few, few[:3], np.vstack([np.eye(4), [[0.0, 0.0, 0.0, 2.0]]]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: feature_precision_recall(np.zeros((3, 2)), np.zeros((5, 2)), k=3), "more than 3 samples"),
        (lambda: feature_precision_recall(np.zeros((5, 2)), np.zeros((5, 3))), "Feature size mismatch"),
        (lambda: feature_precision_recall(np.zeros((5, 2)), np.zeros((5, 2)), k=0), "`k` must be >= 1"),
        (lambda: feature_memorisation(np.zeros((3, 2)), np.ones((3, 2)), np.zeros((3, 2))), "overlaps"),
    ],
)
def test_precision_recall_and_memorisation_name_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
