"""FVD, KVD, FID, KID and the video Inception Score of sets of videos.

Each metric takes two sets of videos (numpy arrays or tensors `(N, T, H, W, C)`
of uint8 or float in [-1, 1], or `tf.data` datasets yielding such batches or
`(videos, labels)` pairs), extracts features with a `FeatureNetwork` batch by
batch, and compares the two feature distributions with the pure functions of
`vidgen_tf.metrics.statistics`. Every result is a `Score`: a float that also
carries its sample counts, the feature network's description and, where the
estimator has one, a standard deviation, so that a figure is never printed
without its recipe.

The real set's features can be cached on disk (`cache_dir=`), keyed by what
determines them: the caller's `cache_key` (e.g. dataset name and options), the
clip count, the seed and the feature network.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf.atomic import atomic_file
from vidgen_tf.metrics.features import load_feature_network, prepare_clips, to_uint8
from vidgen_tf.metrics.statistics import GaussianStatistics, frechet_distance, inception_score, polynomial_mmd

DEFAULT_NUM_VIDEOS = 2048


class Score(float):
    """A metric's value with its recipe: `name`, `num_real`, `num_fake`, `feature_network`, `std`."""

    def __new__(cls, value, name, num_real, num_fake, feature_network, std=None):
        score = super().__new__(cls, value)
        score.name, score.num_real, score.num_fake = name, num_real, num_fake
        score.feature_network, score.std = feature_network, std
        return score

    def describe(self):
        spread = "" if self.std is None else f" +- {self.std:.4g}"
        counts = f"{self.num_fake} generated" if self.num_real is None else f"{self.num_real} real, {self.num_fake} generated"
        return f"{self.name} {float(self):.4g}{spread} ({counts}; features: {self.feature_network})"

    def to_dict(self):
        return {"metric": self.name, "value": float(self), "std": self.std, "num_real": self.num_real,
                "num_fake": self.num_fake, "feature_network": self.feature_network}


def iterate_videos(source, batch_size, num_videos=None):
    """Yields uint8 batches `(b, T, H, W, C)` of `source`, `num_videos` in all (None: every video).

    Args:
        source: array or tensor `(N, T, H, W, C)`, or a `tf.data.Dataset` of
            batches (videos, or tuples whose first element is videos).
        batch_size: int. Rows per batch for arrays (datasets keep theirs).
        num_videos: int or None. Stop after this many videos; a source with
            fewer is an error naming both counts.
    """
    seen = 0
    if isinstance(source, tf.data.Dataset):
        for batch in source:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            batch = to_uint8(batch)
            if num_videos is not None:
                batch = batch[: num_videos - seen]
            seen += len(batch)
            yield batch
            if num_videos is not None and seen >= num_videos:
                return
    else:
        array = source.numpy() if hasattr(source, "numpy") else np.asarray(source)
        to_uint8(array[:1])  # checks rank, channels and dtype before any work
        total = len(array) if num_videos is None else min(num_videos, len(array))
        for start in range(0, total, batch_size):
            batch = to_uint8(array[start : min(start + batch_size, total)])
            seen += len(batch)
            yield batch
    if num_videos is not None and seen < num_videos:
        raise ValueError(f"Asked for {num_videos} videos, but the source holds only {seen}.")


def extract_features(source, feature_net, num_videos=None, batch_size=16, seed=0):
    """Features `(N, D)` float64 of the videos of `source` (per clip, or per frame for an image network)."""
    network = load_feature_network(feature_net)
    rng = np.random.default_rng(seed)
    parts = [network(prepare_clips(batch, network, rng)) for batch in iterate_videos(source, batch_size, num_videos)]
    if not parts:
        raise ValueError("The video source is empty.")
    return np.concatenate(parts)


def _cache_path(cache_dir, cache_key, network, num_videos, seed):
    key = {"data": cache_key, "num_videos": num_videos, "seed": seed, "network": network.cache_key()}
    text = json.dumps(key, sort_keys=True, default=str)
    return Path(cache_dir) / f"real_features_{hashlib.sha1(text.encode()).hexdigest()[:16]}.npz", text


def real_features(source, network, num_videos, batch_size, seed, cache_dir=None, cache_key=None):
    """Features of the real set, read from / written to `cache_dir` when given."""
    if cache_dir is None:
        return extract_features(source, network, num_videos, batch_size, seed)
    if cache_key is None:
        raise ValueError("`cache_dir` needs a `cache_key` naming the real data (e.g. dataset name and options).")
    path, text = _cache_path(cache_dir, cache_key, network, num_videos, seed)
    if path.is_file():
        try:
            with np.load(path) as stored:
                if str(stored["key"]) == text:
                    return stored["features"]
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"The cached real features '{path}' are unreadable ({error}); delete the file.") from error
    features = extract_features(source, network, num_videos, batch_size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temporary:
        np.savez(temporary, features=features, key=np.array(text))
    return features


def _network(feature_net, kind="video"):
    """`feature_net` as a `FeatureNetwork`; None gives the built-in network's `kind` tap.

    The built-in network (`vidgen_tf.metrics.builtin`, "vidgen synthetic
    features") is a small classifier of the zoo's synthetic sets: its figures,
    labelled as such in every `Score.describe()`, are never comparable with
    papers' I3D figures.
    """
    if feature_net is None:
        from vidgen_tf.metrics.builtin import builtin_feature_network

        return builtin_feature_network(kind)
    return load_feature_network(feature_net)


def _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir, cache_key, kind):
    network = _network(feature_net, kind)
    real = real_features(real_videos, network, num_videos, batch_size, seed, cache_dir, cache_key)
    fake = extract_features(fake_videos, network, num_videos, batch_size, seed + 1)
    return network, real, fake


# Whether a metric reads clip features (True) or frame features (False).
_READS_CLIPS = {"fvd": True, "fid": False, "kid": False}
_COUNTERPART = {"fvd": "fid", "fid": "fvd", "kid": "kvd"}


def score_features(metric, network, real, fake, seed=0, num_subsets=100, subset_size=1000, splits=10):
    """The `Score` of `metric` from features already extracted by `network`.

    Args:
        metric: str. "fvd", "kvd", "fid", "kid" or "is".
        network: `FeatureNetwork` that made the features (checked against the metric, described in the result).
        real: features `(N, D)` of the real set (unused for "is").
        fake: features `(M, D)` of the generated set (class outputs for "is").
        seed: int. Seed of the KVD / KID subsets. Defaults to 0.
        num_subsets, subset_size: of the KVD / KID estimator.
        splits: int. Groups of the Inception Score (at most M).
    """
    name = metric.upper()
    if metric in _READS_CLIPS and network.per_frame == _READS_CLIPS[metric]:
        wanted = "video" if _READS_CLIPS[metric] else "per-frame"
        reads = "single frames" if network.per_frame else "clips"
        raise ValueError(f"{name} needs a {wanted} feature network; {network.describe()} reads {reads} "
                         f"(use {_COUNTERPART[metric]}).")
    if metric in ("fvd", "fid"):
        value = frechet_distance(GaussianStatistics.from_features(real), GaussianStatistics.from_features(fake))
        return Score(value, name, len(real), len(fake), network.describe())
    if metric in ("kvd", "kid"):
        mean, std = polynomial_mmd(real, fake, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
        return Score(mean, name, len(real), len(fake), network.describe(), std)
    if metric == "is":
        outputs = fake
        if network.kind == "logits":
            outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
            outputs /= outputs.sum(axis=1, keepdims=True)
        mean, std = inception_score(outputs, splits=min(splits, len(outputs)))
        return Score(mean, "IS", None, len(outputs), network.describe(), std)
    raise ValueError(f"Unknown metric {metric!r}: one of fvd, kvd, fid, kid, is.")


def fvd(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None):
    """Frechet Video Distance (Unterthiner et al. 2018) between two sets of videos.

    The reference recipe: `num_videos` clips of each set (2048 by default),
    `feature_net.num_frames` consecutive frames from a random offset (16 for
    I3D), each frame resized bilinearly to the network's input size and scaled
    to its range, one feature vector per clip, then the Frechet distance of
    the two Gaussians (float64, unbiased covariances). Figures are comparable
    only between runs of one recipe: the result says which network and how
    many clips.

    Args:
        real_videos: videos or dataset (see `iterate_videos`).
        fake_videos: videos or dataset.
        feature_net: `FeatureNetwork`, Keras model, callable or SavedModel path
            of a video network, or None for the built-in network
            (`builtin_feature_network("video")`, labelled "vidgen synthetic
            features"; not comparable with I3D figures). Defaults to None.
        num_videos: int or None. Clips of each set; None takes every clip.
            Defaults to 2048.
        batch_size: int. Clips per feature-network call. Defaults to 16.
        seed: int. Seed of the frame offsets. Defaults to 0.
        cache_dir: str or None. Where the real set's features are cached.
        cache_key: any JSON-able value naming the real data (needed with `cache_dir`).

    Returns:
        `Score` (a float) with `num_real`, `num_fake` and `feature_network`.
    """
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "video")
    return score_features("fvd", network, real, fake)


def kvd(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_subsets=100, subset_size=1000):
    """Kernel Video Distance: the unbiased polynomial MMD of video features (mean and std over subsets)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "video")
    return score_features("kvd", network, real, fake, seed, num_subsets, subset_size)


def fid(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None):
    """Frechet Inception Distance of the frames of two sets of videos (a per-frame network; every frame counts)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "frame")
    return score_features("fid", network, real, fake)


def kid(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_subsets=100, subset_size=1000):
    """Kernel Inception Distance of the frames of two sets of videos (a per-frame network)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "frame")
    return score_features("kid", network, real, fake, seed, num_subsets, subset_size)


def video_inception_score(fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
                          splits=10):
    """Inception Score of generated videos under a video classifier (`kind` "probabilities" or "logits")."""
    network = _network(feature_net, "logits")
    if network.kind == "features":
        raise ValueError(
            f"The Inception Score needs class probabilities or logits; {network.describe()} is declared to give "
            "features (load it with kind='logits' or kind='probabilities')."
        )
    outputs = extract_features(fake_videos, network, num_videos, batch_size, seed)
    return score_features("is", network, None, outputs, splits=splits)
