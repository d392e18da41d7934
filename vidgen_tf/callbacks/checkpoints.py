"""Checkpoint callbacks: rolling and best checkpoints of the full training state (`StepCheckpoint`), the
configuration they record and check on resuming (`model_configuration`, `CheckpointMismatchError`), and the
end of training at a global step (`StopAtStep`)."""

import json
import logging
import math
import os
import re
from pathlib import Path

import keras

from vidgen_tf import atomic
from vidgen_tf.atomic import atomic_file
from vidgen_tf.callbacks.metrics import HIGHER_IS_BETTER

logger = logging.getLogger(__name__)


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
