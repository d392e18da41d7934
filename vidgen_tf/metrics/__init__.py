"""Measures of generated video: distances between feature distributions.

Pure functions of feature arrays (numpy, float64) come first; the video-level
metrics (FVD, KVD, FID, KID, IS), which run a feature network over videos, build
on them.

- `GaussianStatistics`: mean and unbiased covariance of features, accumulated
  batch by batch, so thousands of clips never sit in memory at once.
- `frechet_distance`: the Frechet distance of two Gaussians (FID / FVD).
- `polynomial_mmd`: the unbiased polynomial-kernel MMD estimator (KID / KVD).
- `inception_score`: the Inception Score of class probabilities (IS).
"""

from vidgen_tf.metrics.motion import motion_distance, motion_statistics
from vidgen_tf.metrics.statistics import (
    GaussianStatistics,
    frechet_distance,
    inception_score,
    polynomial_mmd,
)

__all__ = [
    "GaussianStatistics",
    "frechet_distance",
    "inception_score",
    "motion_distance",
    "motion_statistics",
    "polynomial_mmd",
]
