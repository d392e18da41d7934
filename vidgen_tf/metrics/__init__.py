"""Measures of generated video: distances between feature distributions.

Pure functions of feature arrays (numpy, float64) come first; the video-level
metrics (FVD, KVD, FID, KID, IS), which run a feature network over videos, build
on them.

- `GaussianStatistics`: mean and unbiased covariance of features, accumulated
  batch by batch, so thousands of clips never sit in memory at once.
- `frechet_distance`: the Frechet distance of two Gaussians (FID / FVD).
- `polynomial_mmd`: the unbiased polynomial-kernel MMD estimator (KID / KVD).
- `inception_score`: the Inception Score of class probabilities (IS).
- `feature_precision_recall`: improved precision and recall (k-NN balls),
  density and coverage; `feature_memorisation`: nearest-training-sample
  distances of generated samples against held-out ones.

Video-level metrics run a pluggable `FeatureNetwork` (a Keras model, a
callable or a SavedModel directory the user brings) over clips prepared by the
reference FVD recipe: `fvd`, `kvd`, `fid`, `kid`, `video_inception_score`,
each returning a `Score` (a float carrying its sample counts, network,
`num_trials`, `std` and `protocol` record); `precision_recall` and
`memorisation` read the same clip features, and `replay_ladder` scores held-out
real clips and replayers of k = 64, 16, 4, 1 of them, the reference figures.
Without a `feature_net` they use `builtin_feature_network`, a small classifier
of the zoo's synthetic sets shipped with the package, whose figures are
labelled "vidgen synthetic features" (not comparable with I3D figures).

On the synthetic datasets, whose true motion is known, `motion_distance`
compares generated with real clips directly: objects per frame, their speed,
straight-line motion, wall bounces, positions covered, track continuity and appearance kept.
"""

from vidgen_tf.metrics.motion import motion_distance, motion_statistics
from vidgen_tf.metrics.statistics import (
    GaussianStatistics,
    frechet_distance,
    feature_memorisation,
    feature_precision_recall,
    inception_score,
    polynomial_mmd,
)
from vidgen_tf.metrics.features import (
    REFERENCE_NETWORKS,
    FeatureNetwork,
    load_feature_network,
    prepare_clips,
    resize_frames,
)
from vidgen_tf.metrics.builtin import builtin_feature_network
from vidgen_tf.metrics.video import (
    Score,
    check_network,
    default_splits,
    extract_features,
    fid,
    fvd,
    kid,
    kvd,
    memorisation,
    precision_recall,
    protocol_record,
    replay_ladder,
    replay_videos,
    video_inception_score,
)

__all__ = [
    "REFERENCE_NETWORKS",
    "FeatureNetwork",
    "GaussianStatistics",
    "Score",
    "builtin_feature_network",
    "check_network",
    "default_splits",
    "extract_features",
    "feature_memorisation",
    "feature_precision_recall",
    "fid",
    "frechet_distance",
    "fvd",
    "inception_score",
    "kid",
    "kvd",
    "load_feature_network",
    "memorisation",
    "motion_distance",
    "motion_statistics",
    "polynomial_mmd",
    "precision_recall",
    "prepare_clips",
    "resize_frames",
    "protocol_record",
    "replay_ladder",
    "replay_videos",
    "video_inception_score",
]
