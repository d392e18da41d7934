"""Sample-metric callbacks: the metric names (`SAMPLE_METRICS`), their feature networks, scoring generated
sets against one fixed real set (`SampleScorer`), and the figures of fixed-noise samples during training
(`MetricsCallback`: JSON lines, TensorBoard scalars, the figure `StepCheckpoint` keeps the best of)."""

import json
import logging
import os
from pathlib import Path

import keras
import numpy as np

from vidgen_tf.callbacks._common import append_line, sample_labels

logger = logging.getLogger(__name__)

# Metric name -> the kind of built-in feature network it reads (None: no network).
SAMPLE_METRICS = {"fvd": "video", "kvd": "video", "fid": "frame", "kid": "frame", "is": "logits", "motion": None}
# Metrics for which a higher value is better; every other one is a distance.
HIGHER_IS_BETTER = frozenset({"is"})


def check_metric_names(names, kind="metric"):
    """The metric names as a tuple, lower-cased and without repeats; an unknown name is an error naming it.

    Args:
        names: iterable of str. Names of `SAMPLE_METRICS`.
        kind: str. What the names are called in the error. Defaults to "metric".
    """
    from vidgen_tf.registry import unknown_name_error

    checked = []
    for name in names:
        name = name.strip().lower()
        if name not in SAMPLE_METRICS:
            raise unknown_name_error(kind, name, sorted(SAMPLE_METRICS))
        if name not in checked:
            checked.append(name)
    if not checked:
        raise ValueError(f"No metric given; choose from {', '.join(sorted(SAMPLE_METRICS))}.")
    return tuple(checked)


def feature_network_for(metric, feature_net=None):
    """The `FeatureNetwork` that `metric` reads: `feature_net`, else the built-in one of its kind.

    A network serves a metric as it is declared, never reinterpreted: the
    Inception Score needs one declared to give class outputs (`kind="logits"`,
    as the reference I3D's Kinetics-400 logits, which are FVD's features too).
    `vidgen_tf.metrics.check_network` refuses one that cannot serve `metric`.
    Without a network and without `vidgen_tf.metrics.builtin_feature_network`,
    the error says to pass one.

    Args:
        metric: str. A name of `SAMPLE_METRICS` other than "motion".
        feature_net: `FeatureNetwork`, Keras model, callable or SavedModel path, or None.
    """
    from vidgen_tf import metrics as vmetrics
    from vidgen_tf.metrics.video import check_network

    kind = SAMPLE_METRICS[metric]
    if feature_net is None:
        builtin = getattr(vmetrics, "builtin_feature_network", None)
        if builtin is None:
            raise ValueError(
                f"No feature network given for {metric}: pass a feature network (--feature-net DIR on the command "
                "line; a SavedModel such as an I3D Kinetics-400 export); this vidgen_tf has no built-in one."
            )
        network = vmetrics.load_feature_network(builtin(kind=kind))
    else:
        network = vmetrics.load_feature_network(feature_net)
    if metric == "is" and network.kind == "features":
        check_network(metric, network)  # raises: IS needs declared class outputs
    return network


def sample_networks(metrics, feature_net=None):
    """`{metric: FeatureNetwork}` for the feature metrics among `metrics`, each network loaded once.

    Args:
        metrics: sequence of str. Names of `SAMPLE_METRICS` ("motion" needs no network).
        feature_net: feature network for all of them, None for the built-in ones, or a dict
            `{metric: network}` (a metric missing from it gets the built-in one).
    """
    from vidgen_tf.metrics.video import check_network

    loaded, networks = {}, {}
    for name in check_metric_names(metrics):
        if name == "motion":
            continue
        given = feature_net.get(name) if isinstance(feature_net, dict) else feature_net
        key = (SAMPLE_METRICS[name], str(given) if isinstance(given, (str, os.PathLike)) else id(given))
        if key not in loaded:
            loaded[key] = feature_network_for(name, given)
        networks[name] = loaded[key]
        if name != "is":  # IS's dataset block is checked where the dataset is known (SampleScorer)
            check_network(name, networks[name])
    return networks


def _same_network(a, b):
    """Whether two `FeatureNetwork`s give the same outputs for the same clips (their kinds may differ)."""
    return a is b or (a.fn is b.fn and a.cache_key() == b.cache_key())


class SampleScorer:
    """Scores sets of generated videos against one fixed real set, with the real features computed once.

    FVD / KVD / FID / KID compare feature distributions (the real set's
    features are extracted on the first `score` and kept in memory); IS
    scores the generated set alone; `motion` compares motion statistics
    with `vidgen_tf.metrics.motion_distance` (synthetic datasets only). The
    figures equal those of `vidgen_tf.metrics.fvd` etc. called with the same
    sets, `num_videos` and `seed` (real clips' frame offsets from `seed`,
    generated ones' from `seed + 1`). Every network is checked and probed on
    two real clips when the scorer is made (`vidgen_tf.metrics.check_network`,
    its frame count, one call at its input size), so one that cannot serve its
    metric fails before any training or generation.

    Args:
        real_videos: uint8 or float array `(N, T, H, W, C)`. The real set.
        metrics: sequence of str. Names of `SAMPLE_METRICS`.
        dataset: str or None. The dataset of the real set (needed by "motion", and by "is" with the
            built-in network, which scores only that dataset's classes).
        dataset_options: dict or None. Its options, as given to `make_videos`.
        feature_net: feature network for the feature metrics, None for the built-in ones, or
            a dict `{metric: FeatureNetwork}` of `sample_networks`.
        batch_size: int. Clips per feature-network call. Defaults to 16.
        seed: int. Seed of the clips' frame offsets and of KVD / KID subsets. Defaults to 0.
        num_trials: int. Independent draws the feature metrics average (each set cut into this many
            equal parts; see `vidgen_tf.metrics.video.score_features`). Defaults to 1.
        window: str. "random" or "start": the generated clips' frames (see `prepare_clips`). Defaults to "random".
        stride: int. Every `stride`-th frame of every clip. Defaults to 1.
    """

    def __init__(self, real_videos, metrics, dataset=None, dataset_options=None, feature_net=None, batch_size=16,
                 seed=0, num_trials=1, window="random", stride=1):
        from vidgen_tf.data import synthetic
        from vidgen_tf.metrics.features import to_uint8

        self.metrics = check_metric_names(metrics)
        self.real_videos = to_uint8(real_videos)
        self.dataset = dataset
        self.dataset_options = dict(dataset_options or {})
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.num_trials, self.window, self.stride = int(num_trials), window, int(stride)
        if "motion" in self.metrics and dataset not in synthetic.GENERATORS:
            raise ValueError(
                f"The motion metric needs a synthetic dataset whose motion is known "
                f"({', '.join(sorted(synthetic.GENERATORS))}); got {dataset!r}."
            )
        # Networks are loaded and checked now, so a missing or unfit one fails before any training or generation.
        if isinstance(feature_net, dict):
            missing = [name for name in self.metrics if name != "motion" and name not in feature_net]
            if missing:
                raise ValueError(f"No feature network given for {', '.join(missing)}.")
            self.networks = {name: feature_net[name] for name in self.metrics if name != "motion"}
        else:
            self.networks = sample_networks(self.metrics, feature_net)
        self._check_networks()
        self._real_features = {}

    def _check_networks(self):
        """Each network can serve its metric on these clips: kind, frames, and one probe call at its input size."""
        from vidgen_tf.metrics.features import load_feature_network, prepare_clips
        from vidgen_tf.metrics.video import check_network

        probed = []
        for name, network in list(self.networks.items()):
            network = self.networks[name] = load_feature_network(network)
            block = check_network(name, network, self.dataset)
            frames = self.real_videos.shape[1]
            if not network.per_frame and network.num_frames > frames:
                raise ValueError(f"{name.upper()}: feature network {network.describe()} reads {network.num_frames} "
                                 f"consecutive frames, but the clips have {frames}.")
            if not any(network is other for other in probed):
                probed.append(network)
                clips = prepare_clips(self.real_videos[:2], network, np.random.default_rng(0))
                try:
                    network(clips)
                except Exception as error:
                    raise ValueError(f"{name.upper()}: feature network {network.describe()} fails on clips "
                                     f"{tuple(clips.shape)} of its declared input ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''}).") from error
            if block is not None and network.feature_dim < block[1]:
                raise ValueError(f"IS: feature network {network.describe()} gives {network.feature_dim} outputs; the "
                                 f"classes of {self.dataset} are outputs {block[0]}-{block[1] - 1}.")

    @property
    def num_real(self):
        return len(self.real_videos)

    def real_features(self):
        """`{metric: features (N, D)}` of the real set for the metrics that compare with it (computed once)."""
        from vidgen_tf.metrics import extract_features

        for name, network in self.networks.items():
            if name != "is" and name not in self._real_features:
                same = [k for k in self._real_features if _same_network(self.networks[k], network)]
                self._real_features[name] = (self._real_features[same[0]] if same else
                                             extract_features(self.real_videos, network, None, self.batch_size,
                                                              self.seed, stride=self.stride))
        return self._real_features

    def fake_features(self, fake_videos):
        """`{metric: features or class outputs}` of generated videos, one extraction per network."""
        from vidgen_tf.metrics import extract_features

        found = {}
        for name, network in self.networks.items():
            same = [k for k in found if _same_network(self.networks[k], network)]
            found[name] = (found[same[0]] if same else
                           extract_features(fake_videos, network, None, self.batch_size, self.seed + 1,
                                            window=self.window, stride=self.stride))
        return found

    def score(self, fake_videos, fake_features=None):
        """`{metric: Score}` for the feature metrics and `{"motion": {statistic: distance, "total": ...}}`.

        Args:
            fake_videos: uint8 or float array `(M, T, H, W, C)` of generated videos.
            fake_features: dict or None. `fake_features(fake_videos)`, when already computed.
        """
        from vidgen_tf.metrics import motion_distance
        from vidgen_tf.metrics.video import score_features

        real = self.real_features()
        fake = fake_features if fake_features is not None else self.fake_features(fake_videos)
        results = {}
        for name in self.metrics:
            if name == "motion":
                results[name] = motion_distance(self.real_videos, fake_videos, dataset=self.dataset,
                                                **self.dataset_options)
            else:
                results[name] = score_features(name, self.networks[name], real.get(name), fake[name], seed=self.seed,
                                               dataset=self.dataset, num_trials=self.num_trials, window=self.window,
                                               stride=self.stride)
        return results


def metric_value(results, metric):
    """The one float of `metric` in `SampleScorer.score` results (motion: its total)."""
    value = results[metric]
    return float(value["total"] if metric == "motion" else value)


def generate_videos(model, num, seed, batch_size=16, labels=None):
    """`num` generated videos, uint8 `(num, T, H, W, C)`, in batches: batch k from seed `seed + k`.

    A conditional model gets `labels`, by default classes cycling 0, 1, 2, ...
    """
    from vidgen_tf.metrics.features import to_uint8

    labels = sample_labels(model, num, labels)
    parts = []
    for k, start in enumerate(range(0, num, batch_size)):
        size = min(batch_size, num - start)
        batch_labels = None if labels is None else np.asarray(labels[start : start + size])
        parts.append(to_uint8(np.asarray(model.generate(size, seed=seed + k, labels=batch_labels))))
    return np.concatenate(parts)



class MetricsCallback(keras.callbacks.Callback):
    """Scores fixed-noise samples every `every_steps` training steps: JSON lines, TensorBoard, `latest`.

    Each evaluation generates `num_videos` videos with `model.generate` from
    fixed seeds (the same latent points every time; conditional models get
    fixed classes cycling 0, 1, 2, ...), scores them against the fixed real
    set with a `SampleScorer` (the real features computed once), appends a
    line `{"step", "num_videos", "num_real", "feature_network", "<metric>":
    value, ..., "is_splits", "motion_total", "motion": {...}}` to `jsonl_path`, and writes
    `metrics/<metric>` scalars to TensorBoard under `log_dir/train`. On
    `moving_digits` every record also says which digits the samples draw, read
    frame by frame by `vidgen_tf.metrics.digits` (so a generator collapsing onto
    a few digits, or changing digit within a clip, shows as it happens):
    `digit_consistency`, `digit_class_bits`, `digit_classes` (the share of
    clips drawing each of 0-9) and, for a conditional model, `digit_label_match`
    (the share of clips whose digit is their label). These are diagnostics:
    `StepCheckpoint` keeps the best by `metrics` only. The
    latest figures are in `latest` (`{metric: float}`, motion as its total)
    and `latest_step`, which `StepCheckpoint(best_metric=...)` reads: place
    this callback before the checkpoint in the callback list.

    Args:
        real_videos: uint8 or float array `(N, T, H, W, C)`. The fixed real set.
        metrics: sequence of str. Names of `SAMPLE_METRICS`. Defaults to ("fvd", "motion").
        every_steps: int. Steps between evaluations (>= 1).
        num_videos: int. Generated videos per evaluation. Defaults to 64.
        seed: int. Seed of the fixed noise and of the metrics. Defaults to 0.
        dataset: str or None. The real set's synthetic dataset (needed by "motion").
        dataset_options: dict or None. Its options.
        feature_net: feature network, None for the built-in ones, or a dict of `sample_networks`.
        jsonl_path: str, Path or None. The JSON-lines file (`DIR/metrics.jsonl`).
        log_dir: str, Path or None. The TensorBoard log directory.
        initial_step: int. Steps done before this `fit` (when resuming). Defaults to 0.
        batch_size: int. Videos per `generate` and feature-network call. Defaults to 16.
    """

    def __init__(self, real_videos, metrics=("fvd", "motion"), every_steps=100, num_videos=64, seed=0, dataset=None,
                 dataset_options=None, feature_net=None, jsonl_path=None, log_dir=None, initial_step=0,
                 batch_size=16):
        super().__init__()
        if int(every_steps) < 1:
            raise ValueError(f"`every_steps` must be >= 1, got {every_steps}.")
        if int(num_videos) < 2:
            raise ValueError(f"`num_videos` must be >= 2, got {num_videos}.")
        self.scorer = SampleScorer(real_videos, metrics, dataset, dataset_options, feature_net, batch_size, seed)
        self.every_steps = int(every_steps)
        self.num_videos = int(num_videos)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.jsonl_path = None if jsonl_path is None else Path(jsonl_path)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.step = int(initial_step)
        self.latest = {}
        self.latest_step = None
        self.records = []
        self._writer = None

    @property
    def metrics(self):
        return self.scorer.metrics

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every_steps == 0:
            self.evaluate()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def evaluate(self):
        """Scores the fixed-noise samples at the current step; returns the JSON record."""
        import tensorflow as tf

        videos = generate_videos(self.model, self.num_videos, self.seed, self.batch_size)
        results = self.scorer.score(videos)
        networks = sorted({n.describe() for n in self.scorer.networks.values()})
        record = {"step": self.step, "num_videos": self.num_videos, "num_real": self.scorer.num_real,
                  "feature_network": networks[0] if len(networks) == 1 else (networks or None)}
        latest = {}
        for name, value in results.items():
            latest[name] = metric_value(results, name)
            if name == "motion":
                record["motion_total"] = latest[name]
                record["motion"] = {k: float(v) for k, v in value.items()}
            else:
                record[name] = latest[name]
                if value.std is not None:
                    record[f"{name}_std"] = float(value.std)
                if getattr(value, "splits", None) is not None:
                    record[f"{name}_splits"] = value.splits
        if self.scorer.dataset == "moving_digits":
            record.update(self._digit_readings(videos))
        self.latest, self.latest_step = latest, self.step
        self.records.append(record)
        if self.jsonl_path is not None:
            append_line(self.jsonl_path, record)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(str(self.log_dir / "train"))
            with self._writer.as_default(step=self.step):
                for name, value in latest.items():
                    tf.summary.scalar(f"metrics/{name}", value)
                for name in ("digit_consistency", "digit_class_bits", "digit_label_match"):
                    if name in record:
                        tf.summary.scalar(f"diagnostics/{name}", record[name])
            self._writer.flush()
        logger.info("Sample metrics at step %d: %s", self.step, json.dumps(latest))
        return record

    def _digit_readings(self, videos):
        """The digit reader's figures of these samples (see the class docstring)."""
        from vidgen_tf.metrics import digits

        readings = digits.read_digits(videos)
        summary = digits.summarise_readings(readings)
        found = {"digit_consistency": summary["consistency"], "digit_class_bits": summary["class_bits"],
                 "digit_classes": summary["class_fractions"]}
        labels = sample_labels(self.model, len(videos), None)
        if labels is not None:
            read = digits.modal_digits(readings)
            found["digit_label_match"] = float(np.mean(read == np.asarray(labels)))
        return found
