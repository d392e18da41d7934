"""The adversarial training core, exercised through a tiny MoCoGAN."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness

TINY = dict(num_frames=4, height=16, width=16, channels=1, content_dim=8, motion_dim=4,
            generator_width=8, discriminator_width=8)


def tiny(**overrides):
    return vidgen_tf.build("mocogan", **{**TINY, **overrides})


def weights_of(model):
    return [w.numpy() for w in model.generator.weights + model.discriminator_trainable_variables]


def test_compile_alone_works_and_defaults_follow_the_loss():
    model = tiny()
    model.compile()
    assert model.gan_loss.name == "non_saturating" and model.n_critic == 1
    model.compile(loss="wgan_gp")
    assert model.n_critic == 5 and model.gan_loss.penalty == "gradient_penalty"


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "lsgan", "wasserstein", "hinge", "wgan_gp"])
def test_every_loss_trains_and_reports_its_metrics(loss):
    model = tiny()
    expected = ["d_loss", "g_loss", "d_real", "d_fake"] + (["gradient_penalty"] if loss == "wgan_gp" else [])
    harness.check_fit(model, expected, steps=1, loss=loss, n_critic=1)


def test_r1_penalty_is_reported_when_weighted():
    harness.check_fit(tiny(), ["r1_penalty"], steps=1, r1_weight=1.0)


def test_n_critic_discriminator_updates_per_generator_update():
    model = tiny()
    model.compile(n_critic=3, seed=0)
    model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations) == 6
    assert int(model.g_optimizer.iterations) == 2
    assert int(model.noise_step) == 2


def test_same_seed_repeats_a_run_exactly_and_another_seed_does_not():
    def run(seed):
        keras.utils.set_random_seed(1)  # same initial weights
        model = tiny()
        model.compile(seed=seed)
        model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
        return weights_of(model)

    first, again, other = run(5), run(5), run(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_ema_generator_is_used_for_generation_and_presets(tmp_path):
    model = tiny()
    model.compile(ema_decay=0.5, seed=0)
    model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
    ema, raw = model.ema_generator.get_weights(), model.generator.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(ema, raw))
    noise = harness.fixed_noise(model)
    expected = model.ema_generator(noise).numpy()
    np.testing.assert_allclose(model(noise).numpy(), expected, atol=1e-6)
    vidgen_tf.save_preset(model, tmp_path / "preset")
    restored = vidgen_tf.from_preset(tmp_path / "preset")
    np.testing.assert_allclose(restored.generator(noise).numpy(), expected, atol=1e-6)


def test_bad_compile_arguments_are_named():
    with pytest.raises(KeyError, match="Unknown loss 'hinj'.*Did you mean 'hinge'"):
        tiny().compile(loss="hinj")
    with pytest.raises(ValueError, match="n_critic"):
        tiny().compile(n_critic=0)
    with pytest.raises(ValueError, match="ema_decay"):
        tiny().compile(ema_decay=1.5)


def test_fit_before_compile_says_so():
    model = tiny()
    with pytest.raises(RuntimeError, match="compile"):
        model.train_step(tf.zeros((2,) + model.video_shape))


def test_wrong_video_shape_is_named():
    model = tiny()
    model.compile()
    wrong = tf.data.Dataset.from_tensor_slices(np.zeros((4, 4, 32, 32, 1), "float32")).batch(2)
    with pytest.raises(ValueError, match=r"expects videos shaped \(batch, 4, 16, 16, 1\).*got \(None, 4, 32, 32, 1\)"):
        model.fit(wrong, verbose=0)


def test_labels_and_conditioning_mismatches_are_named():
    model = tiny()
    model.compile()
    labelled = harness.video_dataset(tiny(num_classes=2))
    with pytest.raises(ValueError, match="unconditional"):
        model.fit(labelled, verbose=0)
    with pytest.raises(ValueError, match="unconditional"):
        model.generate(2, labels=[0, 1])
    conditional = tiny(num_classes=2)
    with pytest.raises(ValueError, match="labels are required"):
        conditional.generate(2)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 2\)"):
        conditional.generate(2, labels=[0, 5])
    with pytest.raises(ValueError, match="Got 3 labels for 2 videos"):
        conditional.generate(2, labels=[0, 1, 1])


def test_standard_callbacks_work(tmp_path):
    model = tiny()
    model.compile(seed=0)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.h5"), save_weights_only=True),
        keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        # No later epoch beats the first by 1e9: EarlyStopping reads g_loss and stops after epoch 2.
        keras.callbacks.EarlyStopping(monitor="g_loss", patience=1, mode="min", min_delta=1e9),
    ]
    history = model.fit(harness.video_dataset(model, num_batches=1).repeat(), steps_per_epoch=1, epochs=3,
                        callbacks=callbacks, verbose=0)
    assert (tmp_path / "ckpt.weights.h5").is_file()
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert len(history.history["g_loss"]) == 2
    # The weights checkpoint holds the optimizers' state and loads back into a compiled twin.
    twin = tiny()
    twin.compile(seed=0)
    twin.load_weights(tmp_path / "ckpt.weights.h5")
    assert int(twin.noise_step) == int(model.noise_step)


def test_mirrored_strategy_equals_one_device():
    """Two replicas with the global batch split give the same weights after a
    step as one device with the whole batch (same seed and initial weights).
    Tolerance 1e-5: only the order of floating-point sums differs."""
    data = harness.video_dataset(tiny(), batch_size=4, num_batches=1)

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            model = tiny()
            model.compile(seed=11, loss="wgan_gp", n_critic=2)
        model.fit(data, epochs=1, verbose=0)
        return weights_of(model)

    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_mixed_bfloat16_step_is_finite_and_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny()
        history = harness.check_fit(model, ["d_loss", "g_loss"], steps=1)
        assert model.generator.frame_generator.layers[0].compute_dtype == "bfloat16"
        assert model.generate(2, seed=0).dtype == tf.float32
        assert all(np.isfinite(v[-1]) for v in history.history.values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_wraps_both_optimizers_for_loss_scaling():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny()
        model.compile()
        assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")
