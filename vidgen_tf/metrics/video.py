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
real data's shape, dtype and clip count, the seed, and the feature network
with the fingerprint of its weights.

`check_network` is the one check of whether a network serves a metric: FVD and
KVD read clips, FID and KID single frames, IS declared class outputs.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf.atomic import atomic_file
from vidgen_tf.metrics.features import REFERENCE_NETWORKS, load_feature_network, prepare_clips, to_uint8
from vidgen_tf.metrics.statistics import GaussianStatistics, frechet_distance, inception_score, polynomial_mmd

DEFAULT_NUM_VIDEOS = 2048
# Clips per Inception Score split at least (below, fewer splits): a split's marginal p(y) is estimated from
# its own clips, and 10 splits of 6 clips cap a perfect 10-class generator's score near 6.
MIN_SPLIT_SIZE = 100
MAX_SPLITS = 10


def default_splits(num_clips):
    """Inception Score splits for `num_clips`: 10 (the reference) when each holds >= 100 clips, else fewer."""
    return max(1, min(MAX_SPLITS, int(num_clips) // MIN_SPLIT_SIZE))


class Score(float):
    """A metric's value with its recipe: `name`, `num_real`, `num_fake`, `feature_network`, `std`, `splits` (IS)."""

    def __new__(cls, value, name, num_real, num_fake, feature_network, std=None, splits=None):
        score = super().__new__(cls, value)
        score.name, score.num_real, score.num_fake = name, num_real, num_fake
        score.feature_network, score.std, score.splits = feature_network, std, splits
        return score

    def describe(self):
        spread = "" if self.std is None else f" +- {self.std:.4g}"
        counts = f"{self.num_fake} generated" if self.num_real is None else f"{self.num_real} real, {self.num_fake} generated"
        if self.splits is not None:
            counts += f" in {self.splits} split{'s' if self.splits != 1 else ''}"
        return f"{self.name} {float(self):.4g}{spread} ({counts}; features: {self.feature_network})"

    def to_dict(self):
        record = {"metric": self.name, "value": float(self), "std": self.std, "num_real": self.num_real,
                  "num_fake": self.num_fake, "feature_network": self.feature_network}
        if self.splits is not None:
            record["splits"] = self.splits
        return record


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


def _data_fingerprint(source, num_videos):
    """What the real set's key holds besides the caller's: its shape, dtype and the clips taken."""
    if isinstance(source, tf.data.Dataset):
        spec = source.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        return {"dataset": True, "shape": str(spec.shape), "dtype": spec.dtype.name, "num_videos": num_videos}
    shape = tuple(int(n) for n in (source.shape if hasattr(source, "shape") else np.shape(source)))
    dtype = str(getattr(source, "dtype", np.asarray(source[:1]).dtype))
    dtype = dtype.name if hasattr(dtype, "name") else dtype
    count = shape[0] if num_videos is None else min(int(num_videos), shape[0])
    return {"shape": list(shape), "dtype": str(dtype), "count": count}


def _cache_path(cache_dir, cache_key, network, num_videos, seed, source=None):
    if network.fingerprint is None:
        raise ValueError(
            f"Feature network '{network.name}' has no fingerprint of its weights (a plain callable), so its cached "
            "features could be another network's: pass `fingerprint=` to FeatureNetwork / load_feature_network "
            "(e.g. a hash of its weights), or no `cache_dir`."
        )
    key = {"data": cache_key, "num_videos": num_videos, "seed": seed, "network": network.cache_key(),
           "real_data": None if source is None else _data_fingerprint(source, num_videos)}
    text = json.dumps(key, sort_keys=True, default=str)
    return Path(cache_dir) / f"real_features_{hashlib.sha1(text.encode()).hexdigest()[:16]}.npz", text


def real_features(source, network, num_videos, batch_size, seed, cache_dir=None, cache_key=None):
    """Features of the real set, read from / written to `cache_dir` when given."""
    if cache_dir is None:
        return extract_features(source, network, num_videos, batch_size, seed)
    if cache_key is None:
        raise ValueError("`cache_dir` needs a `cache_key` naming the real data (e.g. dataset name and options).")
    path, text = _cache_path(cache_dir, cache_key, network, num_videos, seed, source)
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


def _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir, cache_key, kind, metric):
    network = _network(feature_net, kind)
    check_network(metric, network)  # before any clip is read
    real = real_features(real_videos, network, num_videos, batch_size, seed, cache_dir, cache_key)
    fake = extract_features(fake_videos, network, num_videos, batch_size, seed + 1)
    return network, real, fake


# Whether a metric reads clip features (True) or frame features (False).
_READS_CLIPS = {"fvd": True, "kvd": True, "fid": False, "kid": False}
_COUNTERPART = {"fvd": "fid", "kvd": "kid", "fid": "fvd", "kid": "kvd"}
METRICS = ("fvd", "kvd", "fid", "kid", "is")


def check_network(metric, network, dataset=None):
    """Refuses, naming why, a `FeatureNetwork` that cannot serve `metric`: the one check of every metric.

    FVD and KVD read clips (a network with `num_frames`), FID and KID single
    frames (`num_frames` None); the Inception Score reads declared class
    outputs (`kind` "logits" or "probabilities") and, for a classifier of
    several datasets (the built-in network), the block of `dataset`, which
    must have at least two classes.

    Args:
        metric: str. "fvd", "kvd", "fid", "kid" or "is".
        network: `FeatureNetwork`.
        dataset: str or None. The dataset whose classes IS scores (networks with `class_blocks`).

    Returns:
        For "is", the `(first, end)` class block to read (None: every output); else None.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}: one of {', '.join(METRICS)}.")
    name = metric.upper()
    if metric in _READS_CLIPS and network.per_frame == _READS_CLIPS[metric]:
        wanted = "video" if _READS_CLIPS[metric] else "per-frame"
        reads = "single frames" if network.per_frame else "clips"
        raise ValueError(f"{name} needs a {wanted} feature network; {network.describe()} reads {reads} "
                         f"(use {_COUNTERPART[metric]}).")
    if metric != "is":
        return None
    if network.kind == "features":
        raise ValueError(
            f"The Inception Score needs class probabilities or logits; {network.describe()} is declared to give "
            "features (load it with kind='logits' or kind='probabilities', --feature-kind on the command line)."
        )
    blocks = getattr(network, "class_blocks", None)
    if not blocks:
        return None
    if dataset is None:
        raise ValueError(
            f"{network.name} classifies the clips of {len(blocks)} datasets ({', '.join(blocks)}): its Inception "
            "Score scores one dataset's classes; pass `dataset=` (a generator drifting into another dataset's "
            "classes must not score higher)."
        )
    if dataset not in blocks:
        raise ValueError(f"{network.name} has no classes of {dataset!r}; its datasets: {', '.join(blocks)}. Score "
                         "IS with a classifier of that data (--feature-net ... --feature-kind logits).")
    first, end = blocks[dataset]
    if end - first < 2:
        raise ValueError(
            f"{dataset} has a single class in {network.name}: every clip's class is certain, so its Inception Score "
            "is 1 whatever the generator makes; it measures nothing here (use fvd, kvd or motion)."
        )
    return first, end


def score_features(metric, network, real, fake, seed=0, num_subsets=100, subset_size=1000, splits=None,
                   dataset=None):
    """The `Score` of `metric` from features already extracted by `network`.

    Args:
        metric: str. "fvd", "kvd", "fid", "kid" or "is".
        network: `FeatureNetwork` that made the features (checked by `check_network`, described in the result).
        real: features `(N, D)` of the real set (unused for "is").
        fake: features `(M, D)` of the generated set (class outputs for "is").
        seed: int. Seed of the KVD / KID subsets. Defaults to 0.
        num_subsets, subset_size: of the KVD / KID estimator.
        splits: int or None. Groups of the Inception Score (at most M); None
            takes `default_splits(M)`. Defaults to None.
        dataset: str or None. Whose classes IS reads (see `check_network`).
    """
    block = check_network(metric, network, dataset)
    name = metric.upper()
    label = network.describe(feature_dim=np.shape(fake)[1])
    recipe = REFERENCE_NETWORKS.get(getattr(network, "reference", None))
    if recipe is not None:
        counts = [len(fake)] if real is None or metric == "is" else [len(real), len(fake)]
        if any(count != recipe["num_videos"] for count in counts):
            label += f"; not the {network.reference} recipe's {recipe['num_videos']} clips per set"
    if metric in ("fvd", "fid"):
        value = frechet_distance(GaussianStatistics.from_features(real), GaussianStatistics.from_features(fake))
        return Score(value, name, len(real), len(fake), label)
    if metric in ("kvd", "kid"):
        mean, std = polynomial_mmd(real, fake, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
        return Score(mean, name, len(real), len(fake), label, std)
    outputs = np.asarray(fake, np.float64)
    if block is not None:
        first, end = block
        if network.kind == "probabilities":
            outputs = outputs[:, first:end] / np.maximum(outputs[:, first:end].sum(axis=1, keepdims=True), 1e-12)
        else:
            outputs = outputs[:, first:end]
        label = f"{label}; IS over the {end - first} classes of {dataset}"
    if network.kind == "logits":
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    splits = default_splits(len(outputs)) if splits is None else min(int(splits), len(outputs))
    mean, std = inception_score(outputs, splits=splits)
    return Score(mean, "IS", None, len(outputs), label, std if splits > 1 else None, splits=splits)


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
                                cache_key, "video", "fvd")
    return score_features("fvd", network, real, fake)


def kvd(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_subsets=100, subset_size=1000):
    """Kernel Video Distance: the unbiased polynomial MMD of video features (mean and std over subsets)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "video", "kvd")
    return score_features("kvd", network, real, fake, seed, num_subsets, subset_size)


def fid(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None):
    """Frechet Inception Distance of the frames of two sets of videos (a per-frame network; every frame counts)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "frame", "fid")
    return score_features("fid", network, real, fake)


def kid(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_subsets=100, subset_size=1000):
    """Kernel Inception Distance of the frames of two sets of videos (a per-frame network)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "frame", "kid")
    return score_features("kid", network, real, fake, seed, num_subsets, subset_size)


def video_inception_score(fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
                          splits=None, dataset=None):
    """Inception Score of generated videos under a video classifier (declared `kind` "probabilities" or "logits").

    Args:
        fake_videos: videos or dataset (see `iterate_videos`).
        feature_net: a classifier (`FeatureNetwork` etc. declared with
            `kind="logits"` or "probabilities"), or None for the built-in
            network's class logits. Defaults to None.
        num_videos, batch_size, seed: as for `fvd`.
        splits: int or None. Groups of clips, each scored with its own
            marginal; None takes `default_splits` (10 when each split holds at
            least 100 clips, fewer below). Recorded in the `Score`.
        dataset: str or None. With the built-in network (18 classes over four
            datasets) the dataset whose classes are scored: needed, so that
            clips of another dataset's classes do not score higher; a
            single-class dataset (`bouncing_balls`) is refused.
    """
    network = _network(feature_net, "logits")
    check_network("is", network, dataset)
    outputs = extract_features(fake_videos, network, num_videos, batch_size, seed)
    return score_features("is", network, None, outputs, splits=splits, dataset=dataset)
