"""Sample callbacks: grids of fixed-noise videos as files (`SampleWriter`), and TensorBoard scalars with
animated sample videos (`VideoSummary`)."""

import logging
from pathlib import Path

import keras
import numpy as np

from vidgen_tf.callbacks._common import sample_labels

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

        labels = sample_labels(self.model, self.num, self.labels)
        videos = self.model.generate(self.num, seed=self.seed, labels=labels)
        self.directory.mkdir(parents=True, exist_ok=True)
        for extension in self.formats:
            path = video_io.write_video(self.directory / f"{stem}.{extension}", videos.numpy(), fps=self.fps)
            self.written.append(Path(path))
        logger.info("Wrote samples %s.*", self.directory / stem)


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

        videos = self.model.generate(self.num, seed=self.seed, labels=sample_labels(self.model, self.num, self.labels))
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
