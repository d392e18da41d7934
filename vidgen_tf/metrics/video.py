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
from vidgen_tf.metrics.statistics import (
    GaussianStatistics,
    feature_memorisation,
    feature_precision_recall,
    frechet_distance,
    inception_score,
    polynomial_mmd,
)

DEFAULT_NUM_VIDEOS = 2048
# Clips per Inception Score split at least (below, fewer splits): a split's marginal p(y) is estimated from
# its own clips, and 10 splits of 6 clips cap a perfect 10-class generator's score near 6.
MIN_SPLIT_SIZE = 100
MAX_SPLITS = 10


def default_splits(num_clips):
    """Inception Score splits for `num_clips`: 10 (the reference) when each holds >= 100 clips, else fewer."""
    return max(1, min(MAX_SPLITS, int(num_clips) // MIN_SPLIT_SIZE))


class Score(float):
    """A metric's value with its recipe: `name`, `num_real`, `num_fake`, `feature_network`, `std`, `splits` (IS).

    `num_trials` is the number of independent draws the value is the mean of
    (its `std` then the standard deviation over them); `protocol` is the
    record of how it was measured (see `protocol_record`), or None.
    """

    def __new__(cls, value, name, num_real, num_fake, feature_network, std=None, num_trials=1, protocol=None,
                splits=None):
        score = super().__new__(cls, value)
        score.name, score.num_real, score.num_fake = name, num_real, num_fake
        score.feature_network, score.std, score.splits = feature_network, std, splits
        score.num_trials, score.protocol = int(num_trials), protocol
        return score

    def describe(self):
        spread = "" if self.std is None else f" +- {self.std:.4g}"
        counts = f"{self.num_fake} generated" if self.num_real is None else f"{self.num_real} real, {self.num_fake} generated"
        if self.splits is not None:
            counts += f" in {self.splits} split{'s' if self.splits != 1 else ''}"
        trials = "" if self.num_trials == 1 else f"; mean of {self.num_trials} trials"
        return f"{self.name} {float(self):.4g}{spread} ({counts}{trials}; features: {self.feature_network})"

    def to_dict(self):
        record = {"metric": self.name, "value": float(self), "std": self.std, "num_trials": self.num_trials,
                  "num_real": self.num_real, "num_fake": self.num_fake, "feature_network": self.feature_network}
        if self.splits is not None:
            record["splits"] = self.splits
        if self.protocol is not None:
            record["protocol"] = dict(self.protocol)
        return record


def network_fingerprint(network):
    """A short hash of what identifies a `FeatureNetwork`'s features (its `cache_key()`)."""
    text = json.dumps(network.cache_key(), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def protocol_record(network, num_real, num_fake, seed, num_trials=1, window="random", stride=1, k=None):
    """How a figure was measured: counts, frames, window, stride, resize, seed, trials, network, fingerprint.

    Printed and stored beside every figure: two figures are comparable only when
    their records agree (apart from the figure's own counts when those are the
    point). A published `fvd2048_16f` is 2048 real and 2048 generated clips,
    16 frames, stride 1 (the real clips' from a random offset, the generated
    clips' from t = 0: `window="start"`, as StyleGAN-V's loaders), bilinear
    resize to 224x224, I3D Kinetics-400 features; `fvd2048_128f_subsample8f`
    takes every 8th of 128.
    """
    record = {
        "num_real": num_real, "num_fake": num_fake,
        "num_frames": network.num_frames, "window": window, "stride": int(stride),
        "resize": f"{getattr(network, 'resize', 'bilinear')} to {network.input_size[0]}x{network.input_size[1]}",
        "seed": int(seed),
        "num_trials": int(num_trials), "network": network.describe(), "fingerprint": network_fingerprint(network),
    }
    if k is not None:
        record["k"] = int(k)
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


def extract_features(source, feature_net, num_videos=None, batch_size=16, seed=0, window="random", stride=1):
    """Features `(N, D)` float64 of the videos of `source` (per clip, or per frame for an image network).

    `window` and `stride` choose each clip's frames (see `prepare_clips`).
    """
    network = load_feature_network(feature_net)
    rng = np.random.default_rng(seed)
    parts = [network(prepare_clips(batch, network, rng, window=window, stride=stride))
             for batch in iterate_videos(source, batch_size, num_videos)]
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


def _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir, cache_key, kind, metric,
          num_trials=1, window="random", stride=1):
    network = _network(feature_net, kind)
    check_network(metric, network)  # before any clip is read
    total = _trial_count(num_videos, num_trials)
    # Real clips always take a random offset (`window` is the generated clips'); the cache key holds no
    # stride, so strided real features are not cached.
    if stride == 1:
        real = real_features(real_videos, network, total, batch_size, seed, cache_dir, cache_key)
    else:
        real = extract_features(real_videos, network, total, batch_size, seed, stride=stride)
    fake = extract_features(fake_videos, network, total, batch_size, seed + 1, window=window, stride=stride)
    return network, real, fake


def _trial_count(num_videos, num_trials):
    """Clips to read from each set for `num_trials` independent draws of `num_videos` (None: every clip)."""
    if isinstance(num_trials, bool) or int(num_trials) != num_trials or num_trials < 1:
        raise ValueError(f"`num_trials` must be an int >= 1, got {num_trials!r}.")
    return None if num_videos is None else int(num_videos) * int(num_trials)


# Whether a metric reads clip features (True) or frame features (False).
_READS_CLIPS = {"fvd": True, "kvd": True, "fid": False, "kid": False, "precision": True}
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
    if metric not in METRICS and metric not in _READS_CLIPS:
        raise ValueError(f"Unknown metric {metric!r}: one of {', '.join(METRICS)}, precision.")
    name = "precision/recall" if metric == "precision" else metric.upper()
    if metric in _READS_CLIPS and network.per_frame == _READS_CLIPS[metric]:
        wanted = "video" if _READS_CLIPS[metric] else "per-frame"
        reads = "single frames" if network.per_frame else "clips"
        instead = f" (use {_COUNTERPART[metric]})" if metric in _COUNTERPART else ""
        raise ValueError(f"{name} needs a {wanted} feature network; {network.describe()} reads {reads}{instead}.")
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
                   dataset=None, num_trials=1, window="random", stride=1):
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
        num_trials: int. Independent draws: each set is cut into `num_trials`
            equal consecutive parts, part t of the real set is scored against
            part t of the generated one, and the result is their mean, with
            the standard deviation over the trials as its `std`. Defaults to 1.
        window, stride: how the generated clips' frames were chosen (recorded in the protocol).
    """
    _trial_count(1, num_trials)
    num_trials = int(num_trials)
    if num_trials > 1:
        real_parts = None if real is None else np.array_split(np.asarray(real), num_trials)
        fake_parts = np.array_split(np.asarray(fake), num_trials)
        if real_parts is not None and len(real) != len(fake) or len(fake) < 2 * num_trials:
            raise ValueError(f"{num_trials} trials need as many real as generated clips, at least 2 per trial; got "
                             f"{None if real is None else len(real)} real and {len(fake)} generated.")
        trials = [score_features(metric, network, None if real_parts is None else real_parts[t], fake_parts[t],
                                 seed + t, num_subsets, subset_size, splits, dataset) for t in range(num_trials)]
        values = np.array([float(t) for t in trials])
        first = trials[0]
        return Score(values.mean(), first.name, first.num_real, first.num_fake, first.feature_network,
                     float(values.std(ddof=1)), num_trials,
                     protocol_record(network, first.num_real, first.num_fake, seed, num_trials, window, stride),
                     splits=first.splits)
    score = _score_once(metric, network, real, fake, seed, num_subsets, subset_size, splits, dataset)
    score.protocol = protocol_record(network, score.num_real, score.num_fake, seed, 1, window, stride)
    return score


def _score_once(metric, network, real, fake, seed, num_subsets, subset_size, splits, dataset):
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
        cache_dir=None, cache_key=None, num_trials=1, window="random", stride=1):
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
        num_trials: int. Independent draws of `num_videos` clips of each set
            (the sets must hold `num_trials * num_videos`); the result is the
            mean, its `std` the standard deviation over trials. Defaults to 1.
        window: str. The generated clips' frames: "random" (a random offset,
            the reference recipe) or "start" (frames from t = 0, StyleGAN-V's
            choice). Real clips always take a random offset. Defaults to "random".
        stride: int. Every `stride`-th frame (8 with 128-frame clips:
            `fvd2048_128f_subsample8f`). Defaults to 1.

    Returns:
        `Score` (a float) with `num_real`, `num_fake`, `feature_network`,
        `num_trials`, `std` and its `protocol` record.
    """
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "video", "fvd", num_trials, window, stride)
    return score_features("fvd", network, real, fake, seed, num_trials=num_trials, window=window, stride=stride)


def kvd(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_subsets=100, subset_size=1000, num_trials=1, window="random", stride=1):
    """Kernel Video Distance: the unbiased polynomial MMD of video features (mean and std over subsets)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "video", "kvd", num_trials, window, stride)
    return score_features("kvd", network, real, fake, seed, num_subsets, subset_size, num_trials=num_trials,
                          window=window, stride=stride)


def fid(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_trials=1):
    """Frechet Inception Distance of the frames of two sets of videos (a per-frame network; every frame counts)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "frame", "fid", num_trials)
    return score_features("fid", network, real, fake, seed, num_trials=num_trials)


def kid(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
        cache_dir=None, cache_key=None, num_subsets=100, subset_size=1000, num_trials=1, window="random", stride=1):
    """Kernel Inception Distance of the frames of two sets of videos (a per-frame network)."""
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "frame", "kid", num_trials, window, stride)
    return score_features("kid", network, real, fake, seed, num_subsets, subset_size, num_trials=num_trials,
                          window=window, stride=stride)


def video_inception_score(fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, batch_size=16, seed=0,
                          splits=None, dataset=None, num_trials=1, window="random", stride=1):
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
        num_trials, window, stride: as for `fvd`.
    """
    network = _network(feature_net, "logits")
    check_network("is", network, dataset)
    outputs = extract_features(fake_videos, network, _trial_count(num_videos, num_trials), batch_size, seed,
                               window=window, stride=stride)
    return score_features("is", network, None, outputs, seed, splits=splits, dataset=dataset, num_trials=num_trials,
                          window=window, stride=stride)


PRECISION_RECALL = ("precision", "recall", "density", "coverage")


def precision_recall(real_videos, fake_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS, k=3, batch_size=16,
                     seed=0, cache_dir=None, cache_key=None, num_trials=1, window="random", stride=1):
    """Improved precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020).

    On the clip features FVD uses (the same network, clips and frames): each
    clip's ball reaches its k-th nearest neighbour in its own set; precision
    is the share of generated clips inside some real ball (do they look
    real?), recall the share of real clips inside some generated ball (is
    the data's variety covered?); see `statistics.feature_precision_recall`.
    A generator replaying a few clips has high precision and low recall;
    one making blurry averages, the reverse.

    Args:
        real_videos, fake_videos, feature_net, num_videos, batch_size, seed,
        cache_dir, cache_key, num_trials, window, stride: as for `fvd`.
        k: int. The neighbour whose distance is a ball's radius. Defaults to 3
            (the paper's choice).

    Returns:
        dict `{"precision", "recall", "density", "coverage"}` of `Score`s,
        each with its protocol (including `k`).
    """
    network, real, fake = _both(real_videos, fake_videos, feature_net, num_videos, batch_size, seed, cache_dir,
                                cache_key, "video", "precision", num_trials, window, stride)
    return precision_recall_features(network, real, fake, k, seed, num_trials, window, stride)


def precision_recall_features(network, real, fake, k=3, seed=0, num_trials=1, window="random", stride=1):
    """`precision_recall`'s dict of `Score`s from features already extracted by `network`."""
    _trial_count(1, num_trials)
    num_trials = int(num_trials)
    real_parts, fake_parts = np.array_split(np.asarray(real), num_trials), np.array_split(np.asarray(fake), num_trials)
    if num_trials > 1 and len(real) != len(fake):
        raise ValueError(f"{num_trials} trials need as many real as generated clips; got {len(real)} and {len(fake)}.")
    trials = [feature_precision_recall(r, f, k) for r, f in zip(real_parts, fake_parts)]
    num_real, num_fake = len(real_parts[0]), len(fake_parts[0])
    protocol = protocol_record(network, num_real, num_fake, seed, num_trials, window, stride, k=k)
    out = {}
    for name in PRECISION_RECALL:
        values = np.array([t[name] for t in trials])
        std = float(values.std(ddof=1)) if num_trials > 1 else None
        out[name] = Score(values.mean(), f"{name} (k={k})", num_real, num_fake, network.describe(), std, num_trials,
                          protocol)
    return out


def memorisation(train_videos, fake_videos, held_out_videos, feature_net=None, num_videos=DEFAULT_NUM_VIDEOS,
                 num_train=None, batch_size=16, seed=0, window="random", stride=1):
    """Nearest-training-clip distances of generated clips, against those of held-out real clips.

    Each generated clip's distance (in the clip features FVD uses) to its
    nearest training clip, and each held-out real clip's: a model that
    generalises sits at the held-out level (`ratio` about 1), a copier far
    below it (0 for an exact copy). Distribution metrics cannot see copying:
    a replayer of a few training clips can score a good FVD. See
    `statistics.feature_memorisation` for the figures.

    Args:
        train_videos: videos or dataset of training clips (the more, the
            nearer a copied clip's source is among them).
        fake_videos: generated videos or dataset.
        held_out_videos: real videos or dataset not trained on.
        feature_net: as for `fvd`. Defaults to None (the built-in network).
        num_videos: int or None. Generated and held-out clips. Defaults to 2048.
        num_train: int or None. Training clips; None takes every one. Defaults to None.
        batch_size, seed, window, stride: as for `fvd` (`window` and `stride`
            apply to the generated clips).

    Returns:
        dict: `ratio` (a `Score`: generated median over held-out median),
        `fake_median`, `held_out_median`, `copied_fraction` (the share of
        generated clips nearer the training set than the held-out clips' 5th
        percentile), `fake_distances`, `held_out_distances`, `protocol`.
    """
    network = _network(feature_net, "video")
    check_network("precision", network)  # clip features, as FVD's
    train = extract_features(train_videos, network, num_train, batch_size, seed + 2)
    held_out = extract_features(held_out_videos, network, num_videos, batch_size, seed)
    fake = extract_features(fake_videos, network, num_videos, batch_size, seed + 1, window=window, stride=stride)
    return memorisation_features(network, train, fake, held_out, seed, window, stride)


def memorisation_features(network, train, fake, held_out, seed=0, window="random", stride=1):
    """`memorisation`'s result from features already extracted by `network`."""
    result = feature_memorisation(train, fake, held_out)
    protocol = protocol_record(network, len(held_out), len(fake), seed, 1, window, stride)
    protocol["num_train"] = len(train)
    result["ratio"] = Score(result["ratio"], "memorisation ratio", len(held_out), len(fake), network.describe(),
                            protocol=protocol)
    result["protocol"] = protocol
    return result


REPLAY_KS = (64, 16, 4, 1)


def replay_videos(videos, k, num_videos):
    """A replayer's output: the first `k` clips of `videos` cycled to `num_videos` clips (uint8)."""
    array = to_uint8(videos)
    if not 1 <= int(k) <= len(array):
        raise ValueError(f"A replayer of k={k} clips needs 1 <= k <= {len(array)} (the clips given).")
    return array[np.arange(int(num_videos)) % int(k)]


def replay_ladder(reference_videos, held_out_videos, feature_net=None, metrics=("fvd", "precision", "recall"),
                  ks=REPLAY_KS, num_videos=None, batch_size=16, seed=0, window="random", stride=1):
    """The reference figures every model's should be read against: held-out real clips and replayers.

    Scores, under one recipe (network, counts, seeds, frames), the held-out
    real clips against the reference real clips (the floor a perfect model
    reaches), then "generators" that replay the first k held-out clips
    cycled to the same count, for each k of `ks`: a replayer of 16 clips
    beats many models on FVD while being a copier with no variety, which
    precision/recall (its recall falls with k) and memorisation reveal.

    Args:
        reference_videos: the real set models are scored against (uint8 or [-1, 1] `(N, T, H, W, C)`).
        held_out_videos: other real clips, at least `num_videos` of them (disjoint from the reference).
        feature_net: as for `fvd`. Defaults to None (the built-in network).
        metrics: sequence of "fvd", "kvd", "precision", "recall", "density", "coverage".
        ks: sequence of int. The replayers' clip counts. Defaults to (64, 16, 4, 1).
        num_videos: int or None. Clips of each set per row; None takes the reference's count.
        batch_size, seed, window, stride: as for `fvd` (the held-out and replayed clips are read as generated ones).

    Returns:
        list of dicts `{"name": "held-out real" | "replay k=K", "k": None | K, metric: Score, ...}`.
    """
    known = ("fvd", "kvd", *PRECISION_RECALL)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise ValueError(f"replay_ladder metrics must be among {', '.join(known)}; got {list(metrics)}.")
    network = _network(feature_net, "video")
    check_network("precision", network)  # clip features, as FVD's
    reference = to_uint8(reference_videos)
    held_out = to_uint8(held_out_videos)
    count = len(reference) if num_videos is None else int(num_videos)
    if len(held_out) < count or len(reference) < count:
        raise ValueError(f"The replay ladder needs {count} reference and {count} held-out clips; got "
                         f"{len(reference)} and {len(held_out)}.")
    real = extract_features(reference, network, count, batch_size, seed)
    rows = []
    for k in (None, *ks):
        fake_videos = held_out[:count] if k is None else replay_videos(held_out, k, count)
        fake = extract_features(fake_videos, network, None, batch_size, seed + 1, window=window, stride=stride)
        row = {"name": "held-out real" if k is None else f"replay k={k}", "k": k}
        if any(m in PRECISION_RECALL for m in metrics):
            found = precision_recall_features(network, real, fake, seed=seed, window=window, stride=stride)
        for metric in metrics:
            if metric in PRECISION_RECALL:
                row[metric] = found[metric]
            else:
                row[metric] = score_features(metric, network, real, fake, seed, window=window, stride=stride)
        rows.append(row)
    return rows
