"""The training callbacks: divergence guard, TensorBoard video summaries, progress line."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from vidgen_tf.callbacks import DivergenceGuard, ProgressPrinter, StepCheckpoint, TrainingDivergedError, VideoSummary

TINY_MOCOGAN = dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                    generator_width=4, discriminator_width=4)


LEARNING_RATE = 0.3


def _overshooting_model():
    """A model whose training reaches NaN at step 5 by itself.

    The prediction is sqrt(w * x) with w = 1 at the start, x = 1 and target 0, so the
    loss is w and its gradient exactly 1: plain SGD lowers w by the learning rate,
    0.3, at every step (1, 0.7, 0.4, 0.1, -0.2). Step 5 evaluates sqrt(-0.2): the
    loss is NaN, while the weights after step 4 are finite.
    """
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
                              keras.layers.Lambda(keras.ops.sqrt)])
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones((4, 1)), tf.zeros((4, 1)))).repeat()
    return model, data


def test_the_overshooting_model_really_diverges_at_step_5():
    model, data = _overshooting_model()
    losses = model.fit(data, epochs=6, steps_per_epoch=1, verbose=0).history["loss"]
    np.testing.assert_allclose(losses[:4], [1.0, 0.7, 0.4, 0.1], atol=1e-6)
    assert np.isnan(losses[4])


def test_divergence_stops_at_the_bad_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model, data = _overshooting_model()
    checkpoint = StepCheckpoint(tmp_path / "ckpt")
    guard = DivergenceGuard(checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(TrainingDivergedError, match=r"^Training diverged at step 5: loss = nan") as info:
        model.fit(data, epochs=8, steps_per_epoch=1, callbacks=[guard, checkpoint], verbose=0)
    assert f"checkpoint (step 4) is kept in {tmp_path / 'ckpt'}" in str(info.value)
    assert model.stop_training
    # The epoch-end checkpoints of steps 3 and 4 are there; nothing was saved after the bad step.
    assert [step for step, _ in checkpoint.checkpoints()] == [3, 4]
    good = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False), keras.layers.Lambda(keras.ops.sqrt)])
    good.load_weights(checkpoint.checkpoints()[-1][1])
    np.testing.assert_allclose(good.get_weights()[0], [[1.0 - 4 * LEARNING_RATE]], atol=1e-6)


def test_divergence_guard_counts_from_the_resumed_step():
    model, data = _overshooting_model()
    with pytest.raises(TrainingDivergedError, match="step 15: loss = nan"):
        model.fit(data, epochs=1, steps_per_epoch=8, callbacks=[DivergenceGuard(initial_step=10)], verbose=0)


def test_finite_training_passes_the_guard():
    model, data = _overshooting_model()
    model.fit(data, epochs=1, steps_per_epoch=4, callbacks=[DivergenceGuard()], verbose=0)


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
