"""The training callbacks: divergence guard, TensorBoard video summaries, progress line."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from vidgen_tf.callbacks import DivergenceGuard, ProgressPrinter, StepCheckpoint, TrainingDivergedError, VideoSummary

TINY_MOCOGAN = dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                    generator_width=4, discriminator_width=4)


def _regression(nan_from_batch):
    """A linear model and 6 batches of 4 examples; batches from `nan_from_batch` (0-based) hold NaN."""
    x = np.random.default_rng(0).normal(size=(24, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    x[4 * nan_from_batch:] = np.nan
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4)


def test_divergence_stops_at_the_bad_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model, data = _regression(nan_from_batch=2)  # step 3 sees NaN
    checkpoint = StepCheckpoint(tmp_path / "ckpt")
    guard = DivergenceGuard(checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(TrainingDivergedError, match=r"step 3: loss = nan") as info:
        model.fit(data, epochs=3, steps_per_epoch=2, callbacks=[guard, checkpoint], verbose=0)
    assert f"checkpoint (step 2) is kept in {tmp_path / 'ckpt'}" in str(info.value)
    # The epoch-end checkpoint of step 2 is there; nothing was saved after the bad step.
    assert [step for step, _ in checkpoint.checkpoints()] == [2]
    good = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    good.load_weights(checkpoint.checkpoints()[-1][1])
    assert all(np.all(np.isfinite(w)) for w in good.get_weights())


def test_divergence_guard_counts_from_the_resumed_step():
    model, data = _regression(nan_from_batch=0)
    with pytest.raises(TrainingDivergedError, match="step 11:"):
        model.fit(data, epochs=1, callbacks=[DivergenceGuard(initial_step=10)], verbose=0)


def test_finite_training_passes_the_guard():
    model, data = _regression(nan_from_batch=6)
    model.fit(data, epochs=2, callbacks=[DivergenceGuard()], verbose=0)


def _events(log_dir):
    events = {}
    for path in sorted((log_dir / "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                events.setdefault(value.tag, []).append((event.step, value))
    return events


def test_video_summary_writes_metrics_and_animated_gifs(tmp_path):
    model = vidgen_tf.build("mocogan", **TINY_MOCOGAN)
    model.compile(seed=0)
    videos = tf.data.Dataset.from_tensors(tf.zeros((2, 4, 16, 16, 1))).repeat(3)
    model.fit(videos, epochs=1, verbose=0, callbacks=[VideoSummary(tmp_path / "tb", every_steps=2, num=3,
                                                                  initial_step=10)])
    events = _events(tmp_path / "tb")
    assert [step for step, _ in events["d_loss"]] == [11, 12, 13]
    assert [step for step, _ in events["samples"]] == [12, 13]  # every 2 steps, and at the end
    _, value = events["samples"][-1]
    assert value.metadata.plugin_data.plugin_name == "images"
    width, height, gif = tf.make_ndarray(value.tensor)
    assert gif[:6] == b"GIF89a"
    # TensorBoard's image dashboard serves these bytes as image/gif, which browsers animate.
    from tensorboard.util import img_mime_type_detector

    assert img_mime_type_detector.from_bytes(gif) == "image/gif"
    grid = vidgen_tf.video_io.read_video(_write(tmp_path / "s.gif", gif))
    assert grid.shape[0] == 4 and (int(width), int(height)) == (grid.shape[2], grid.shape[1])


def _write(path, data):
    path.write_bytes(data)
    return path


def test_progress_line_gives_rate_and_time_left():
    lines = []
    progress = ProgressPrinter(total_steps=10, initial_step=4, print_fn=lines.append)
    progress.on_train_begin()
    for batch in range(3):
        progress.on_train_batch_end(batch)
    assert progress.step == 7 and progress.rate() > 0
    progress.on_epoch_end(0)
    assert lines[-1].startswith("step 7/10 (70%), ") and "steps/s" in lines[-1] and lines[-1].endswith(" left")
    progress.on_train_end()
    assert lines[-1].startswith("trained to step 7 in ")
