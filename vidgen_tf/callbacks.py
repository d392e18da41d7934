"""Keras callbacks for video models: samples, rolling and best checkpoints, TensorBoard video, sample metrics,
progress, divergence."""

import json
import logging
import math
import os
import re
import time
from pathlib import Path

import keras
import numpy as np

from vidgen_tf import atomic
from vidgen_tf.atomic import atomic_file
from vidgen_tf.base import check_positive_int

logger = logging.getLogger(__name__)


def _sample_labels(model, num, labels):
    """The given labels, or classes cycling 0, 1, 2, ... for a conditional model, else None."""
    if labels is None and getattr(model, "num_classes", 0):
        labels = [i % model.num_classes for i in range(num)]
    return labels


class SampleWriter(keras.callbacks.Callback):
    """Writes a grid of generated videos every `every_steps` training steps.

    The noise is fixed (`seed`), so successive files show the same latent
    points as training moves the generator.

    Args:
        directory: str or Path. Where `step_000100.gif` etc. are written.
        every_steps: int. Steps between samples; 0 writes only at the end.
        num: int. Videos in the grid. Defaults to 8.
        seed: int. Seed of the fixed noise. Defaults to 0.
        formats: tuple of str. File types, from "gif", "mp4", "npz".
            Defaults to ("gif", "mp4").
        fps: int. Frames per second. Defaults to 8.
        labels: int array `(num,)` for conditional models; by default classes
            cycle 0, 1, 2, ...
        initial_step: int. Steps done before this `fit` (when resuming).
    """

    def __init__(self, directory, every_steps, num=8, seed=0, formats=("gif", "mp4"), fps=8, labels=None,
                 initial_step=0):
        super().__init__()
        self.directory = Path(directory)
        self.every_steps = int(every_steps)
        self.num = int(num)
        self.seed = int(seed)
        self.formats = tuple(formats)
        self.fps = int(fps)
        self.labels = labels
        self.written = []
        self._step = int(initial_step)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every_steps and self._step % self.every_steps == 0:
            self.write(f"step_{self._step:06d}")

    def on_train_end(self, logs=None):
        self.write("final")

    def write(self, stem):
        from vidgen_tf import video_io

        labels = _sample_labels(self.model, self.num, self.labels)
        videos = self.model.generate(self.num, seed=self.seed, labels=labels)
        self.directory.mkdir(parents=True, exist_ok=True)
        for extension in self.formats:
            path = video_io.write_video(self.directory / f"{stem}.{extension}", videos.numpy(), fps=self.fps)
            self.written.append(Path(path))
        logger.info("Wrote samples %s.*", self.directory / stem)


_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.weights\.h5$")
# The HDF5 attribute of a checkpoint holding the JSON of the model's configuration.
_CONFIG_ATTRIBUTE = "vidgen_model"


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a model of another configuration than the one resuming."""


def model_configuration(model):
    """`{"model": name, "config": {...}}` of a registered vidgen_tf model as JSON data, else None.

    The entries Keras adds for every layer (`name`, `trainable`, `dtype`) are left
    out, as in a preset's `config.json`.
    """
    name = getattr(model, "registered_name", None)
    if name is None:
        return None
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")}
    try:
        return json.loads(json.dumps({"model": name, "config": config}, sort_keys=True))
    except TypeError:  # a value JSON cannot hold: the configuration is not recorded
        return None


def _recorded_configuration(path):
    """The configuration stored in checkpoint `path` (None if it holds none).

    Raises OSError when the file is not a readable HDF5 file (truncated, corrupt).
    """
    import h5py

    with h5py.File(path, "r") as f:
        text = f.attrs.get(_CONFIG_ATTRIBUTE)
    return None if text is None else json.loads(text)


def _describe_differences(recorded, current):
    """`key: checkpoint value != model value` for the entries that differ."""
    if recorded.get("model") != current.get("model"):
        return f"model: {recorded.get('model')!r} != {current.get('model')!r}"
    old, new = recorded.get("config", {}), current.get("config", {})

    def shown(config, key):
        return repr(config[key]) if key in config else "(absent)"

    return ", ".join(f"{key}: {shown(old, key)} != {shown(new, key)}"
                     for key in sorted(set(old) | set(new)) if shown(old, key) != shown(new, key))


class StepCheckpoint(keras.callbacks.Callback):
    """Saves the full training state at every epoch end and at the end, atomically.

    The state is `model.save_weights` of the compiled model: every weight,
    the optimizers' slots and step counters, the noise step (so the noise
    sequence continues where it stopped) and the generator EMA. For a
    registered vidgen_tf model the file also records the model's configuration
    (an HDF5 attribute), so that resuming with another configuration fails
    with an error naming both. Files are written through `vidgen_tf.atomic`, so
    a kill leaves either the old or the new checkpoint, never half of one.
    `keep` files are kept.

    `restore` loads the newest checkpoint. One that cannot be read at all (a
    truncated or corrupt file) is renamed to `<name>.unreadable`, with a
    warning, and the one before is tried; one that can be read but does not fit
    the model raises `CheckpointMismatchError`; when checkpoints exist and none
    can be read, `restore` raises instead of starting again at step 0.

    With `best_metric` and a `MetricsCallback` as `metrics`, the state at the
    step of the best figure so far is kept beside the rolling checkpoints as
    `best.weights.h5`, with `best.json` (`{"metric", "step", "value",
    "higher_is_better"}`), both written atomically; lower is better except for
    "is". A `best.json` already in `directory` (a resumed run) is the figure to
    beat. `restore` never reads the best checkpoint.

    Args:
        directory: str or Path. Where `ckpt-<step>.weights.h5` files go.
        keep: int. Checkpoints to keep. Defaults to 2.
        best_metric: str or None. The metric whose best checkpoint is kept, one
            of `metrics.metrics`. Defaults to None (no best checkpoint).
        metrics: `MetricsCallback` or None. Where the figures come from (placed
            before this callback in the callback list); needed with `best_metric`.
    """

    BEST_WEIGHTS = "best.weights.h5"
    BEST_RECORD = "best.json"

    def __init__(self, directory, keep=2, best_metric=None, metrics=None):
        super().__init__()
        self.directory = Path(directory)
        self.keep = max(1, int(keep))
        self.step = 0
        self.best_metric = best_metric
        self.metrics = metrics
        if best_metric is not None:
            if metrics is None:
                raise ValueError("`best_metric` needs the `metrics` callback that computes it.")
            if best_metric not in metrics.metrics:
                raise ValueError(f"`best_metric` {best_metric!r} is not among the metrics computed "
                                 f"({', '.join(metrics.metrics)}).")
        self._best_seen_step = None

    @property
    def best(self):
        """The record of `best.json` (`{"metric", "step", "value", "higher_is_better"}`), or None."""
        path = self.directory / self.BEST_RECORD
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def checkpoints(self):
        """`[(step, path)]` of the checkpoints present, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _CHECKPOINT.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def restore(self, model):
        """Loads the newest readable checkpoint into `model`; returns its step (0 if there is none).

        Raises:
            CheckpointMismatchError: the newest readable checkpoint was written by
                a model of another configuration, or does not load into `model`.
            OSError: checkpoints exist but none of them can be read.
        """
        unreadable = []
        current = model_configuration(model)
        for step, path in reversed(self.checkpoints()):
            try:
                recorded = _recorded_configuration(path)
            except (OSError, ValueError) as error:  # a truncated or corrupt file
                unreadable.append(self._set_aside(path, error))
                continue
            if recorded is not None and current is not None and recorded != current:
                raise CheckpointMismatchError(
                    f"Checkpoint {path} was written by another configuration than the model "
                    f"resuming from it ({_describe_differences(recorded, current)}).\n"
                    f"  checkpoint: {json.dumps(recorded, sort_keys=True)}\n"
                    f"  model:      {json.dumps(current, sort_keys=True)}\n"
                    f"Resume with the checkpoint's configuration, or train into another directory."
                )
            try:
                model.load_weights(path)
            except Exception as error:
                described = "" if current is None else f" (model: {json.dumps(current, sort_keys=True)})"
                raise CheckpointMismatchError(
                    f"Checkpoint {path} does not load into this model{described}: {error}"
                ) from error
            logger.info("Resumed from %s (step %d).", path, step)
            self.step = step
            return step
        if unreadable:
            raise OSError(
                f"None of the checkpoints in {self.directory} can be read ({'; '.join(unreadable)}). "
                "Remove the directory to train again from step 0."
            )
        return 0

    def _set_aside(self, path, error):
        """Renames an unreadable checkpoint out of the `ckpt-<step>` pattern; returns a description.

        Left in place, a newer unreadable file would outrank the checkpoints written
        after resuming, and `keep` would delete those instead of it.
        """
        aside = path.with_name(path.name + ".unreadable")
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another process (a worker resuming too) moved it first
            pass
        logger.warning("Checkpoint %s could not be read (%s); renamed it to %s and trying the previous one.",
                       path, error, aside.name)
        return f"{path.name}: {error}"

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.best_metric is not None and self.metrics.latest_step == self.step \
                and self._best_seen_step != self.step:
            self._best_seen_step = self.step
            self.consider_best(self.metrics.latest[self.best_metric])

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def consider_best(self, value):
        """Writes `best.weights.h5` and `best.json` at the current step if `value` beats the best so far.

        Returns whether it did. A NaN never beats anything.
        """
        import math

        value = float(value)
        higher = self.best_metric in HIGHER_IS_BETTER
        best = self.best
        if math.isnan(value):
            return False
        if best is not None and best.get("metric") == self.best_metric:
            if (value <= best["value"]) if higher else (value >= best["value"]):
                return False
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic.save_weights(self.model, self.directory / self.BEST_WEIGHTS)
        record = {"metric": self.best_metric, "step": self.step, "value": value, "higher_is_better": higher}
        # The record comes second: it never names a step whose weights are not on disk.
        with atomic_file(self.directory / self.BEST_RECORD) as temporary:
            Path(temporary).write_text(json.dumps(record, sort_keys=True) + "\n")
        logger.info("Best %s so far (%.6g) at step %d: kept %s.", self.best_metric, value, self.step,
                    self.directory / self.BEST_WEIGHTS)
        return True

    def on_train_end(self, logs=None):
        if not any(step == self.step for step, _ in self.checkpoints()):
            self.save()

    def save(self):
        """Writes `ckpt-<step>.weights.h5` and deletes all but the `keep` newest checkpoints."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"ckpt-{self.step}.weights.h5"
        configuration = model_configuration(self.model)
        # Through `atomic.save_weights`: a full disk is a `NoSpaceError` naming the file, not an HDF5 crash.
        atomic.save_weights(self.model, final, attributes=None if configuration is None else
                            {_CONFIG_ATTRIBUTE: json.dumps(configuration, sort_keys=True)})
        older = [path for step, path in self.checkpoints() if step != self.step]
        for old in older[: max(len(older) - (self.keep - 1), 0)]:
            old.unlink(missing_ok=True)


class StopAtStep(keras.callbacks.Callback):
    """Ends training once `steps` steps are done in all, counting from `initial_step`."""

    def __init__(self, steps, initial_step=0):
        super().__init__()
        self.steps = int(steps)
        self.step = int(initial_step)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.steps:
            self.model.stop_training = True


class LossLog(keras.callbacks.Callback):
    """Appends the training losses to a JSON-lines file every `every_steps` steps (`DIR/losses.jsonl`).

    Each line is `{"step": global step, <name>: value, ...}` with the figures
    Keras reports at that batch end (for the zoo's models the running means
    of the losses since the epoch began, as `fit` prints them). Lines are
    flushed and synced one by one, so a killed run leaves whole lines; a
    resumed run appends after its checkpoint's step, and readers keep the last
    line of a step (`vidgen_tf.report.read_metrics_jsonl`). `vidgen train`
    always writes it: the report's loss curves come from it when no
    TensorBoard logs were asked for.

    Args:
        path: str or Path. The JSON-lines file.
        every_steps: int. Steps between lines. Defaults to 10.
        initial_step: int. The global step training starts from (a resumed run). Defaults to 0.
    """

    def __init__(self, path, every_steps=10, initial_step=0):
        super().__init__()
        self.path = Path(path)
        self.every_steps = check_positive_int("every_steps", every_steps)
        self.step = int(initial_step)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every_steps:
            return
        record = {"step": self.step}
        for name, value in (logs or {}).items():
            value = float(np.asarray(value))
            record[name] = value if math.isfinite(value) else None
        _append_line(self.path, record)


class VideoSummary(keras.callbacks.Callback):
    """Scalar metrics and animated sample videos for TensorBoard.

    Every training step's metrics go in as scalars; every `every_steps` steps
    (and at the end) a grid of videos generated from fixed noise goes in as an
    image summary whose bytes are an animated GIF, which TensorBoard's image
    dashboard plays. Steps count from `initial_step`, so a resumed run
    continues its curves instead of starting them again at 0.

    Args:
        log_dir: str or Path. The TensorBoard log directory (`train/` inside).
        every_steps: int. Steps between video summaries; 0 writes one at the end only.
        num: int. Videos in the grid. Defaults to 8.
        seed: int. Seed of the fixed noise. Defaults to 0.
        fps: int. Frames per second of the GIF. Defaults to 8.
        labels: int array `(num,)` for conditional models; by default classes
            cycle 0, 1, 2, ...
        initial_step: int. Steps done before this `fit` (when resuming).
    """

    def __init__(self, log_dir, every_steps, num=8, seed=0, fps=8, labels=None, initial_step=0):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.every_steps = int(every_steps)
        self.num = int(num)
        self.seed = int(seed)
        self.fps = int(fps)
        self.labels = labels
        self.step = int(initial_step)
        self._writer = None
        self._last_video_step = None

    @property
    def writer(self):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "train"))
        return self._writer

    def on_train_batch_end(self, batch, logs=None):
        import tensorflow as tf

        self.step += 1
        with self.writer.as_default(step=self.step):
            for name, value in (logs or {}).items():
                value = np.asarray(value)
                if value.size == 1:
                    tf.summary.scalar(name, float(value))
        if self.every_steps and self.step % self.every_steps == 0:
            self.write_video()

    def on_train_end(self, logs=None):
        if self._last_video_step != self.step:
            self.write_video()
        self.writer.flush()

    def write_video(self):
        """Writes the fixed-noise sample grid at the current step."""
        import tensorflow as tf
        from tensorboard.plugins.image import metadata as image_metadata

        from vidgen_tf import video_io

        videos = self.model.generate(self.num, seed=self.seed, labels=_sample_labels(self.model, self.num, self.labels))
        grid = video_io.video_grid(np.asarray(videos))  # (T, H', W', 3), the grid the sample files show
        gif = video_io.gif_bytes(grid, fps=self.fps)
        # The image plugin's tensor layout: [width, height, encoded image...].
        tensor = tf.constant([str(grid.shape[2]), str(grid.shape[1]), gif])
        summary_metadata = image_metadata.create_summary_metadata(
            display_name="samples", description="Generated from fixed noise (animated GIF).",
            converted_to_tensor=True,
        )
        with self.writer.as_default(step=self.step):
            tf.summary.write("samples", tensor, metadata=summary_metadata.SerializeToString())
        self.writer.flush()
        self._last_video_step = self.step


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


class ProgressPrinter(keras.callbacks.Callback):
    """Prints the step, steps per second and the time left, at every epoch end and at the end.

    Keras's own progress bar shows one epoch; this line shows the whole run
    (`total_steps`, counting from `initial_step` when resuming). The rate is
    measured over this run's steps, after the first one (which includes
    tracing).

    Args:
        total_steps: int. The step training ends at.
        initial_step: int. Steps done before this `fit`. Defaults to 0.
        print_fn: callable taking one string. Defaults to `print` (flushed).
    """

    def __init__(self, total_steps, initial_step=0, print_fn=None):
        super().__init__()
        self.total_steps = int(total_steps)
        self.step = int(initial_step)
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self._start = None
        self._first_step_end = None
        self._steps_timed = 0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        now = time.perf_counter()
        if self._first_step_end is None:
            self._first_step_end = now
        else:
            self._steps_timed += 1

    def rate(self):
        """Steps per second after the first step, or None before two steps."""
        if not self._steps_timed:
            return None
        return self._steps_timed / max(time.perf_counter() - self._first_step_end, 1e-9)

    def line(self):
        rate = self.rate()
        text = f"step {self.step}/{self.total_steps} ({100.0 * self.step / self.total_steps:.0f}%)"
        if rate:
            left = max(self.total_steps - self.step, 0) / rate
            text += f", {rate:.2f} steps/s, {_duration(left)} left"
        return text

    def on_epoch_end(self, epoch, logs=None):
        self.print_fn(self.line())

    def on_train_end(self, logs=None):
        elapsed = time.perf_counter() - (self._start or time.perf_counter())
        rate = self.rate()
        self.print_fn(f"trained to step {self.step} in {_duration(elapsed)}"
                      + (f" ({rate:.2f} steps/s after the first step)" if rate else ""))


class TrainingDivergedError(RuntimeError):
    """A loss or metric became NaN or infinite during training."""


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training with `TrainingDivergedError` as soon as a metric is NaN or infinite.

    The error names the step and the metric. It is raised from the step's
    `on_train_batch_end`, before any epoch-end checkpoint, so the checkpoints
    on disk are the last good ones. Place it before checkpointing callbacks
    that save at batch ends.

    Args:
        initial_step: int. Steps done before this `fit` (when resuming).
        checkpoint_dir: str, Path or None. Named in the error, for the user.
    """

    def __init__(self, initial_step=0, checkpoint_dir=None):
        super().__init__()
        self.step = int(initial_step)
        self.checkpoint_dir = checkpoint_dir

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        for name, value in (logs or {}).items():
            value = np.asarray(value, dtype="float64")
            if not np.all(np.isfinite(value)):
                self.model.stop_training = True
                raise TrainingDivergedError(
                    f"Training diverged at step {self.step}: {name} = {value.tolist()}{self._kept()}."
                )

    def _kept(self):
        if self.checkpoint_dir is None:
            return ""
        saved = StepCheckpoint(self.checkpoint_dir).checkpoints()
        if not saved:
            return f"; no checkpoint had been written yet in {self.checkpoint_dir}"
        return f"; the last good checkpoint (step {saved[-1][0]}) is kept in {self.checkpoint_dir}"


# ------------------------------------------------------------ sample metrics
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

    labels = _sample_labels(model, num, labels)
    parts = []
    for k, start in enumerate(range(0, num, batch_size)):
        size = min(batch_size, num - start)
        batch_labels = None if labels is None else np.asarray(labels[start : start + size])
        parts.append(to_uint8(np.asarray(model.generate(size, seed=seed + k, labels=batch_labels))))
    return np.concatenate(parts)


def _append_line(path, record):
    """Appends one JSON line to `path`, flushed and synced, so a kill never leaves half a line before it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


class MetricsCallback(keras.callbacks.Callback):
    """Scores fixed-noise samples every `every_steps` training steps: JSON lines, TensorBoard, `latest`.

    Each evaluation generates `num_videos` videos with `model.generate` from
    fixed seeds (the same latent points every time; conditional models get
    fixed classes cycling 0, 1, 2, ...), scores them against the fixed real
    set with a `SampleScorer` (the real features computed once), appends a
    line `{"step", "num_videos", "num_real", "feature_network", "<metric>":
    value, ..., "is_splits", "motion_total", "motion": {...}}` to `jsonl_path`, and writes
    `metrics/<metric>` scalars to TensorBoard under `log_dir/train`. The
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
        self.latest, self.latest_step = latest, self.step
        self.records.append(record)
        if self.jsonl_path is not None:
            _append_line(self.jsonl_path, record)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(str(self.log_dir / "train"))
            with self._writer.as_default(step=self.step):
                for name, value in latest.items():
                    tf.summary.scalar(f"metrics/{name}", value)
            self._writer.flush()
        logger.info("Sample metrics at step %d: %s", self.step, json.dumps(latest))
        return record
