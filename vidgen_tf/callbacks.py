"""Keras callbacks for video models: samples, checkpoints, TensorBoard video, progress, divergence."""

import json
import logging
import os
import re
import time
from pathlib import Path

import keras
import numpy as np

from vidgen_tf.atomic import atomic_file

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

    Args:
        directory: str or Path. Where `ckpt-<step>.weights.h5` files go.
        keep: int. Checkpoints to keep. Defaults to 2.
    """

    def __init__(self, directory, keep=2):
        super().__init__()
        self.directory = Path(directory)
        self.keep = max(1, int(keep))
        self.step = 0

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

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def on_train_end(self, logs=None):
        if not any(step == self.step for step, _ in self.checkpoints()):
            self.save()

    def save(self):
        """Writes `ckpt-<step>.weights.h5` and deletes all but the `keep` newest checkpoints."""
        import h5py

        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"ckpt-{self.step}.weights.h5"
        configuration = model_configuration(self.model)
        with atomic_file(final) as temporary:
            self.model.save_weights(temporary)
            if configuration is not None:
                with h5py.File(temporary, "a") as f:
                    f.attrs[_CONFIG_ATTRIBUTE] = json.dumps(configuration, sort_keys=True)
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
        grid = video_io.tile_videos(video_io.to_uint8(np.asarray(videos)))  # (T, H', W', C)
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
