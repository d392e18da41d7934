"""Keras callbacks for video models: sample videos and resumable checkpoints."""

import logging
import os
import re
import tempfile
from pathlib import Path

import keras

logger = logging.getLogger(__name__)


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

        labels = self.labels
        if labels is None and self.model.num_classes:
            labels = [i % self.model.num_classes for i in range(self.num)]
        videos = self.model.generate(self.num, seed=self.seed, labels=labels)
        self.directory.mkdir(parents=True, exist_ok=True)
        for extension in self.formats:
            path = video_io.write_video(self.directory / f"{stem}.{extension}", videos.numpy(), fps=self.fps)
            self.written.append(Path(path))
        logger.info("Wrote samples %s.*", self.directory / stem)


_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.weights\.h5$")


class StepCheckpoint(keras.callbacks.Callback):
    """Saves the full training state at every epoch end and at the end, atomically.

    The state is `model.save_weights` of the compiled model: every weight,
    the optimizers' slots and step counters, the noise step (so the noise
    sequence continues where it stopped) and the generator EMA. A file is
    written under a temporary name and renamed into place, so a kill leaves
    either the old or the new checkpoint, never half of one. `keep` files are
    kept; when the newest cannot be read, `restore` uses the one before, with a
    warning.

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
        """Loads the newest readable checkpoint into `model`; returns its step (0 if none)."""
        for step, path in reversed(self.checkpoints()):
            try:
                model.load_weights(path)
            except Exception as error:  # a truncated or corrupt file
                logger.warning("Checkpoint %s could not be read (%s); trying the previous one.", path, error)
                continue
            logger.info("Resumed from %s (step %d).", path, step)
            self.step = step
            return step
        return 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def on_train_end(self, logs=None):
        if not any(step == self.step for step, _ in self.checkpoints()):
            self.save()

    def save(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"ckpt-{self.step}.weights.h5"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".weights.h5")
        os.close(fd)
        try:
            self.model.save_weights(tmp)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        for _, old in self.checkpoints()[: -self.keep]:
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
