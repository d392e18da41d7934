"""Distances between feature distributions: Frechet distance, polynomial MMD, Inception Score.

All arithmetic is float64 numpy: the covariances of 400- or 2048-d features
lose the Frechet distance's small differences in float32.
"""

import numpy as np


def _features(name, features):
    """`features` as a float64 array `(N, D)`, with errors that name the argument."""
    if hasattr(features, "numpy"):
        features = features.numpy()
    array = np.asarray(features)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"`{name}` must be a numeric array (N, D), got dtype {array.dtype}.")
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (num_samples, feature_dim), got shape {array.shape}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or Inf.")
    return array


class GaussianStatistics:
    """Mean and unbiased covariance of feature vectors, accumulated batch by batch.

    Batches are merged with the pairwise update of Chan, Golub and LeVeque
    (1979): each batch's own mean and centred scatter matrix are combined with
    the running ones, which keeps float64 precision for any number of batches
    (no sum of squares of uncentred values). Memory is `O(D^2)`, whatever the
    number of samples.

    Args:
        feature_dim: int or None. Size of the feature vectors; None takes it
            from the first batch. Defaults to None.

    Example:

    ```python
    stats = GaussianStatistics()
    for batch in batches:          # each (B, D)
        stats.update(batch)
    mean, covariance = stats.mean, stats.covariance
    ```
    """

    def __init__(self, feature_dim=None):
        self.feature_dim = feature_dim
        self.count = 0
        self._mean = None
        self._scatter = None  # sum of outer products of deviations from the mean

    def update(self, features):
        """Adds a batch of feature vectors `(B, D)`; returns self."""
        batch = _features("features", features)
        if self.feature_dim is None:
            self.feature_dim = batch.shape[1]
        if batch.shape[1] != self.feature_dim:
            raise ValueError(
                f"Feature size mismatch: these statistics hold {self.feature_dim}-d features, "
                f"the batch has {batch.shape[1]}-d ones."
            )
        n_b = batch.shape[0]
        if n_b == 0:
            return self
        mean_b = batch.mean(axis=0)
        centred = batch - mean_b
        scatter_b = centred.T @ centred
        if self.count == 0:
            self._mean, self._scatter, self.count = mean_b, scatter_b, n_b
            return self
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._scatter = self._scatter + scatter_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n
        return self

    @property
    def mean(self):
        """The sample mean `(D,)`."""
        self._check_count(1)
        return self._mean

    @property
    def covariance(self):
        """The unbiased sample covariance `(D, D)` (divided by N - 1)."""
        self._check_count(2)
        return self._scatter / (self.count - 1)

    def _check_count(self, minimum):
        if self.count < minimum:
            raise ValueError(
                f"These statistics hold {self.count} sample(s); a covariance needs at least 2 samples "
                "(a mean at least 1)."
            )

    @classmethod
    def from_features(cls, features):
        """Statistics of a whole feature array `(N, D)` at once."""
        return cls().update(features)

    def to_dict(self):
        """`{"count", "mean", "covariance"}` as numpy arrays (e.g. for `np.savez`)."""
        return {"count": np.asarray(self.count), "mean": self.mean, "covariance": self.covariance}

    @classmethod
    def from_dict(cls, data):
        """Statistics from `to_dict()`'s arrays (e.g. a loaded `.npz`)."""
        count = int(np.asarray(data["count"]))
        mean = np.asarray(data["mean"], np.float64)
        covariance = np.asarray(data["covariance"], np.float64)
        if mean.ndim != 1 or covariance.shape != (mean.size, mean.size):
            raise ValueError(
                f"Stored statistics are inconsistent: mean {mean.shape}, covariance {covariance.shape}."
            )
        if count < 2:
            raise ValueError(f"Stored statistics hold {count} sample(s); at least 2 are needed.")
        stats = cls(mean.size)
        stats.count, stats._mean, stats._scatter = count, mean, covariance * (count - 1)
        return stats


def _as_statistics(name, value):
    if isinstance(value, GaussianStatistics):
        value._check_count(2)
        return value
    features = _features(name, value)
    if features.shape[0] < 2:
        raise ValueError(f"`{name}` needs at least 2 samples for a covariance, got {features.shape[0]}.")
    return GaussianStatistics.from_features(features)


def _sqrt_psd(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a, b):
    """Frechet distance between two Gaussians fitted to features (FID, FVD).

    `d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`. The trace of
    the matrix square root is computed in its symmetric form,
    `Tr (S_a^(1/2) S_b S_a^(1/2))^(1/2)` (equal, since `S_a S_b` is similar to
    that symmetric PSD matrix), from eigenvalues, with negative round-off
    clipped to zero: no complex parts to discard, unlike `scipy.linalg.sqrtm`
    of the non-symmetric product.

    Args:
        a: features `(N, D)` (array or tensor) or `GaussianStatistics`.
        b: features `(M, D)` or `GaussianStatistics`, of the same `D`.

    Returns:
        float, >= 0 (round-off below 0 is clipped).
    """
    stats_a, stats_b = _as_statistics("a", a), _as_statistics("b", b)
    if stats_a.feature_dim != stats_b.feature_dim:
        raise ValueError(
            f"Feature size mismatch: `a` has {stats_a.feature_dim}-d features, `b` {stats_b.feature_dim}-d."
        )
    mean_term = float(np.sum((stats_a.mean - stats_b.mean) ** 2))
    cov_a, cov_b = stats_a.covariance, stats_b.covariance
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None))))
    distance = mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_root
    return max(distance, 0.0)


def _polynomial_kernel(x, y, degree, gamma, coef0):
    return (x @ y.T * gamma + coef0) ** degree


def polynomial_mmd(a, b, num_subsets=100, subset_size=1000, degree=3, gamma=None, coef0=1.0, seed=0):
    """Unbiased squared MMD with a polynomial kernel, over random subsets (KID, KVD).

    The kernel is `k(x, y) = (gamma x.y + coef0)^degree`, by default
    `(x.y / D + 1)^3` (Binkowski et al. 2018, "Demystifying MMD GANs"). For
    each subset, `m` rows of each set are drawn without replacement and the
    unbiased estimator

        sum_{i != j} k(a_i, a_j) / (m (m-1)) + sum_{i != j} k(b_i, b_j) / (m (m-1))
            - 2 sum_{i, j} k(a_i, b_j) / m^2

    is evaluated; the result is the mean and standard deviation over subsets.
    Being unbiased, it can be slightly negative for two samples of one
    distribution.

    Args:
        a: features `(N, D)`.
        b: features `(M, D)`.
        num_subsets: int. Number of random subsets. Defaults to 100.
        subset_size: int. Rows per subset, capped at `min(N, M)`. Defaults to 1000.
        degree: int. Kernel degree. Defaults to 3.
        gamma: float or None. Kernel scale; None means `1 / D`. Defaults to None.
        coef0: float. Kernel offset. Defaults to 1.
        seed: int. Seed of the subset draws. Defaults to 0.

    Returns:
        `(mean, std)` over the subsets. When both sets have at most
        `subset_size` rows and the same count, every subset is the whole of
        both sets: the estimator is computed once and `std` is None (there is
        no spread to report, rather than a rounding-level 0).
    """
    x, y = _features("a", a), _features("b", b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Feature size mismatch: `a` has {x.shape[1]}-d features, `b` {y.shape[1]}-d.")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"polynomial_mmd needs at least 2 samples in each set, got {x.shape[0]} and {y.shape[0]}.")
    if int(num_subsets) < 1:
        raise ValueError(f"`num_subsets` must be >= 1, got {num_subsets}.")
    gamma = 1.0 / x.shape[1] if gamma is None else float(gamma)
    rng = np.random.default_rng(seed)
    whole = m == x.shape[0] == y.shape[0]
    values = []
    for _ in range(1 if whole else int(num_subsets)):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        k_xx = _polynomial_kernel(xs, xs, degree, gamma, coef0)
        k_yy = _polynomial_kernel(ys, ys, degree, gamma, coef0)
        k_xy = _polynomial_kernel(xs, ys, degree, gamma, coef0)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2.0 * k_xy.mean())
    values = np.asarray(values)
    return float(values.mean()), (None if whole else float(values.std()))


def inception_score(probabilities, splits=10):
    """Inception Score of class probabilities `(N, K)`: `exp E_x KL(p(y|x) || p(y))`.

    Salimans et al. 2016. The samples are cut into `splits` consecutive
    groups; each group's score uses its own marginal `p(y)`; the result is the
    mean and standard deviation over groups. It lies in `[1, K]`: 1 when every
    sample gets the same distribution, K when each is confidently one class
    and the classes are used equally.

    Args:
        probabilities: array `(N, K)`: rows of non-negative numbers summing to 1.
        splits: int. Number of groups, at most N. Defaults to 10.

    Returns:
        `(mean, std)` floats over the groups.
    """
    p = _features("probabilities", probabilities)
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("`probabilities` must be rows of non-negative numbers summing to 1 (apply a softmax first).")
    splits = int(splits)
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"`splits` must be in [1, {p.shape[0]}] (the number of samples), got {splits}.")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())


def _pairwise_distances(x, y):
    """Euclidean distances `(N, M)` between the rows of `x` and `y` (float64; round-off below 0 clipped)."""
    squared = (x * x).sum(axis=1)[:, None] + (y * y).sum(axis=1)[None, :] - 2.0 * (x @ y.T)
    return np.sqrt(np.clip(squared, 0.0, None))


def _knn_radii(x, k):
    """Distance of each row of `x` to its k-th nearest other row `(N,)` (itself excluded)."""
    distances = _pairwise_distances(x, x)
    np.fill_diagonal(distances, np.inf)
    return np.partition(distances, k - 1, axis=1)[:, k - 1]


def feature_precision_recall(real, fake, k=3):
    """Improved precision and recall, density and coverage of two feature sets.

    Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing
    Generative Models", NeurIPS 2019: each sample's k-NN ball (radius: the
    distance to its k-th nearest neighbour in its own set) approximates the
    support of its distribution's manifold.

    - precision: the fraction of generated samples inside at least one real
      ball (fidelity: how many generated samples look real);
    - recall: the fraction of real samples inside at least one generated
      ball (diversity: how much of the real data the model covers);
    - density (Naeem et al., "Reliable Fidelity and Diversity Metrics for
      Generative Models", ICML 2020): the number of real balls holding each
      generated sample, summed over samples, divided by `k M` (about 1 for
      one distribution; above 1 when samples crowd dense real regions);
    - coverage (Naeem et al.): the fraction of real balls holding at least
      one generated sample (real radii only: robust to generated outliers).

    Args:
        real: features `(N, D)`, N > k.
        fake: features `(M, D)`, M > k.
        k: int. The neighbour whose distance is a ball's radius. Defaults to 3.

    Returns:
        dict `{"precision", "recall", "density", "coverage"}` of floats
        (precision, recall and coverage in [0, 1]).
    """
    x, y = _features("real", real), _features("fake", fake)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Feature size mismatch: `real` has {x.shape[1]}-d features, `fake` {y.shape[1]}-d.")
    k = int(k)
    if k < 1:
        raise ValueError(f"`k` must be >= 1, got {k}.")
    if min(len(x), len(y)) <= k:
        raise ValueError(f"precision_recall with k={k} needs more than {k} samples in each set, got "
                         f"{len(x)} real and {len(y)} generated.")
    real_radii, fake_radii = _knn_radii(x, k), _knn_radii(y, k)
    between = _pairwise_distances(x, y)  # (N real, M fake)
    in_real_balls = between <= real_radii[:, None]  # [i, j]: fake j inside real i's ball
    in_fake_balls = between <= fake_radii[None, :]  # [i, j]: real i inside fake j's ball
    return {
        "precision": float(in_real_balls.any(axis=0).mean()),
        "recall": float(in_fake_balls.any(axis=1).mean()),
        "density": float(in_real_balls.sum() / (k * len(y))),
        "coverage": float(in_real_balls.any(axis=1).mean()),
    }


def nearest_distances(queries, references):
    """Distance of each row of `queries` to its nearest row of `references` `(N,)` (Euclidean, float64)."""
    q, r = _features("queries", queries), _features("references", references)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"Feature size mismatch: `queries` have {q.shape[1]}-d features, `references` "
                         f"{r.shape[1]}-d.")
    out = np.empty(len(q))
    for start in range(0, len(q), 1024):  # bounded memory for large sets
        out[start : start + 1024] = _pairwise_distances(q[start : start + 1024], r).min(axis=1)
    return out


def feature_memorisation(train, fake, held_out):
    """How close generated samples sit to their nearest training sample, against held-out real ones.

    A model that generalises makes samples no nearer the training set than
    fresh real samples are; one that copies makes samples at (or near)
    distance 0 from some training sample. The figure to read is `ratio`, the
    median nearest-training distance of the generated samples over that of
    the held-out ones: about 1 for a model as novel as the data, far below 1
    for a copier (0 for an exact one). `copied_fraction` is the share of
    generated samples nearer a training sample than the 5th percentile of
    held-out samples' distances (about 0.05 for novel samples).

    On data with few distinct samples (one square moving in one of four
    directions) held-out samples repeat training samples exactly, and no
    distance can tell copying from the data: `held_out_repeats` is the share
    of held-out samples at distance 0 (below 1e-6 of the training features'
    median norm) from a training sample, and when it is half or more (the
    held-out median is 0) the check is refused with an error saying so.

    Args:
        train: features `(N, D)` of training samples.
        fake: features `(M, D)` of generated samples.
        held_out: features `(L, D)` of real samples not used for training.

    Returns:
        dict: `fake_distances` `(M,)` and `held_out_distances` `(L,)` (each
        sample's distance to its nearest training sample), their medians
        `fake_median`, `held_out_median`, `ratio`, `copied_fraction`,
        `fake_repeats` and `held_out_repeats` (the shares at distance 0).
    """
    fake_distances = nearest_distances(fake, train)
    held_out_distances = nearest_distances(held_out, train)
    zero = 1e-6 * float(np.median(np.linalg.norm(_features("train", train), axis=1)))
    fake_median, held_median = float(np.median(fake_distances)), float(np.median(held_out_distances))
    if held_median <= zero:
        share = float((held_out_distances <= zero).mean())
        raise ValueError(f"The held-out samples' median distance to the training set is 0 ({share:.0%} of them "
                         "equal a training sample): `held_out` overlaps `train`, or the data has so few distinct "
                         "samples that no distance can tell copying from it (pass real samples that were not "
                         "trained on, of data with more variety).")
    threshold = np.percentile(held_out_distances, 5)
    return {
        "fake_distances": fake_distances, "held_out_distances": held_out_distances,
        "fake_median": fake_median, "held_out_median": held_median, "ratio": fake_median / held_median,
        "copied_fraction": float((fake_distances < threshold).mean()),
        "fake_repeats": float((fake_distances <= zero).mean()),
        "held_out_repeats": float((held_out_distances <= zero).mean()),
    }
