"""Progress callbacks: the losses as JSON lines (`LossLog`), the whole run's progress line
(`ProgressPrinter`), and the stop on a NaN or infinite figure (`DivergenceGuard`, `TrainingDivergedError`)."""

import math
import time
from pathlib import Path

import keras
import numpy as np

from vidgen_tf.base import check_positive_int
from vidgen_tf.callbacks._common import append_line
from vidgen_tf.callbacks.checkpoints import StepCheckpoint


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
        append_line(self.path, record)



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
