"""VGAN: the model contract, the two-stream composition, the mask sparsity term, and that it learns."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness
from vidgen_tf.models.vgan import _time_schedule

TINY = dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, generator_width=8,
            discriminator_width=8)


def tiny(**overrides):
    return vidgen_tf.build("vgan", **{**TINY, **overrides})


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.large
def test_paper_setting_has_the_papers_layers():
    """64x64x32 RGB, z 100-d, widths 64: counts derived from the paper's layer shapes
    (no conv bias before batch norm, so fewer weights than the Torch code's biases)."""
    model = vidgen_tf.build("vgan")
    assert model.video_shape == (32, 64, 64, 3) and model.mask_l1_weight == 0.1
    k3, k2 = 4 * 4 * 4, 4 * 4
    foreground = (100 * 2 * 4 * 4 * 512 + 2 * 512  # z -> 2x4x4x512, BN
                  + k3 * 512 * 256 + 2 * 256 + k3 * 256 * 128 + 2 * 128 + k3 * 128 * 64 + 2 * 64
                  + (k3 * 64 * 3 + 3) + (k3 * 64 * 1 + 1))  # video and mask heads
    background = (100 * 4 * 4 * 512 + 2 * 512 + k2 * 512 * 256 + 2 * 256 + k2 * 256 * 128 + 2 * 128
                  + k2 * 128 * 64 + 2 * 64 + k2 * 64 * 3 + 3)
    assert _trainable(model.generator) == foreground + background
    discriminator = (k3 * 3 * 64 + 64 + k3 * 64 * 128 + 2 * 128 + k3 * 128 * 256 + 2 * 256
                     + k3 * 256 * 512 + 2 * 512 + 2 * 4 * 4 * 512 + 1)  # full-extent 2x4x4 head
    assert _trainable(model.discriminators["video"]) == discriminator


def test_adam_has_the_authors_settings():
    # main.lua: optim.adam with learningRate 2e-4, beta1 0.5 and Torch's epsilon 1e-8.
    model = tiny()
    model.compile()
    for optimizer in (model.g_optimizer, model.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert optimizer.epsilon == pytest.approx(1e-8) and optimizer.beta_1 == pytest.approx(0.5)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)


def test_time_doubles_in_as_many_stages_as_the_frame_count_allows():
    assert _time_schedule(32, 4) == (2, [2, 2, 2, 2])  # the paper: 2 frames at 4x4 -> 32
    assert _time_schedule(8, 3) == (1, [2, 2, 2])
    assert _time_schedule(4, 3) == (1, [2, 2, 1])
    assert _time_schedule(6, 2) == (3, [2, 1])
    assert _time_schedule(7, 2) == (7, [1, 1])
    assert tiny(num_frames=6).generate(1, seed=0).shape == (1, 6, 16, 16, 1)


def test_builds_and_generates_at_32x32x8():
    model = tiny(num_frames=8, height=32, width=32)
    assert model.generate(2, seed=0).shape == (2, 8, 32, 32, 1)


@pytest.mark.large
def test_builds_and_generates_at_64x64x16():
    model = tiny(num_frames=16, height=64, width=64, channels=3)
    assert model.generate(2, seed=0).shape == (2, 16, 64, 64, 3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="VGAN needs frames"):
        tiny(height=20, width=20)
    with pytest.raises(ValueError, match="`mask_l1_weight`"):
        tiny(mask_l1_weight=-1.0)
    with pytest.raises(ValueError, match="generates exactly 4 frames"):
        tiny().generate(1, num_frames=8)


def test_config_and_keras_round_trips(tmp_path):
    model = tiny(num_classes=3, mask_l1_weight=0.0)
    harness.check_config_round_trip(model)
    harness.check_keras_round_trip(model, tmp_path)
    assert model.get_config()["mask_l1_weight"] == 0.0


def test_fit_reports_metrics():
    history = harness.check_fit(tiny(), ["d_loss", "g_loss", "d_real", "d_fake"])
    assert history.history["g_loss"][-1] > 0  # non-saturating loss + a positive sparsity term


def test_generates_deterministically():
    harness.check_generate(tiny())


def test_video_is_the_mask_blend_of_a_moving_foreground_and_a_static_background():
    model = tiny()
    parts = model.decompose(harness.fixed_noise(model, batch_size=2))
    video, mask = parts["video"].numpy(), parts["mask"].numpy()
    foreground, background = parts["foreground"].numpy(), parts["background"].numpy()
    assert mask.shape == (2, 4, 16, 16, 1) and background.shape == (2, 16, 16, 1)
    assert mask.min() >= 0 and mask.max() <= 1
    np.testing.assert_allclose(video, mask * foreground + (1 - mask) * background[:, None], atol=1e-6)
    np.testing.assert_array_equal(video, model.generate_from_noise(harness.fixed_noise(model)).numpy())


def test_mask_sparsity_term_reuses_the_generated_mask_and_reaches_the_mask_head():
    model = tiny(mask_l1_weight=0.5)
    calls = []
    original = model._generator_parts

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    model._generator_parts = counting
    noise = harness.fixed_noise(model, batch_size=3)
    with tf.GradientTape() as tape:
        model.generate_from_noise(noise, training=True)
        term = model.generator_regularizer(noise, None)  # (B,)
        total = tf.reduce_sum(term)
    assert len(calls) == 1, "the sparsity term ran the generator again"
    mask = original(noise, None, True, None)["mask"].numpy()
    np.testing.assert_allclose(term.numpy(), 0.5 * mask.mean(axis=(1, 2, 3, 4)), rtol=1e-5)
    # The head's kernel is (4, 4, 4, C + 1, F): the last output channel is the mask's.
    gradient = tape.gradient(total, model.generator.output_head.kernel).numpy()
    assert np.abs(gradient[..., -1, :]).max() > 0
    np.testing.assert_array_equal(gradient[..., :-1, :], 0.0)  # the foreground is not penalised
    # Other noise than the last generation's: the mask is computed afresh, not reused.
    other = {"latent": noise["latent"] + 1.0}
    fresh = model.generator_regularizer(other, None).numpy()
    expected = 0.5 * original(other, None, True, None)["mask"].numpy().mean(axis=(1, 2, 3, 4))
    np.testing.assert_allclose(fresh, expected, rtol=1e-5)
    assert not np.allclose(fresh, term.numpy())
    model.mask_l1_weight = 0.0
    assert model.generator_regularizer(noise, None) == 0.0


def test_generator_loss_adds_the_weighted_mean_mask():
    model = tiny(mask_l1_weight=0.25)
    model.compile(seed=0)
    noise = harness.fixed_noise(model, batch_size=4)
    seed = tf.constant([1, 2], tf.int64)
    with_term = float(model._generator_loss(noise, None, seed, 4))
    mask = model._generator_parts(noise, None, True, None)["mask"].numpy()
    model.mask_l1_weight = 0.0
    without = float(model._generator_loss(noise, None, seed, 4))
    np.testing.assert_allclose(with_term - without, 0.25 * mask.mean(), rtol=1e-4)


def test_mixed_precision_keeps_float32_outputs():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny(num_classes=2)
        videos = model.generate(2, seed=0, labels=[0, 1])
        logits, _ = model.discriminate(videos, tf.constant([0, 1]), tf.constant([0, 0], tf.int64))["video"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert videos.dtype == tf.float32 and logits.dtype == tf.float32
    assert model.generator.foreground_stream.layers[0].compute_dtype == "float16"


def test_conditional_variant_takes_labels(tmp_path):
    model = tiny(num_classes=3)
    assert model.generate(3, seed=0, labels=[0, 1, 2]).shape == (3, 4, 16, 16, 1)
    a = model.generate(1, seed=0, labels=[0]).numpy()
    b = model.generate(1, seed=0, labels=[2]).numpy()
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="labels are required"):
        model.generate(1, seed=0)
    harness.check_fit(model, ["d_loss", "g_loss"])
    harness.check_exports(model, tmp_path)
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "vgan" / "3"))
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert set(inputs) == {"latent", "label"}


@pytest.mark.large
def test_unconditional_exports_agree(tmp_path):
    report = harness.check_exports(tiny(), tmp_path)
    assert report["max_abs_diff_float"] < 1e-5


@pytest.mark.large
def test_fit_under_mirrored_strategy():
    """Two replicas: each traces its step in its own thread, so the mask cache must not mix them."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # keys moved by conftest
    with strategy.scope():
        model = tiny()
        model.compile(seed=0)
    history = model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
    assert np.isfinite(history.history["g_loss"][-1])


@pytest.mark.large
def test_learns_a_moving_square():
    """One training run on a 2x2 square moving one pixel per frame in 8x8 frames,
    with the paper's loss and mask term (Adam, generator 2e-3, discriminator 5e-4).

    The data's mean intensity is -0.875 and its frame-difference energy 0.375.
    Untrained, the generator gives mid-grey, nearly still clips (measured:
    intensity -0.02, energy 0.001), so (a) asserts intensity off by > 0.5 and
    energy below a tenth of the data's. Trained runs of 240, 300, 360 and 420
    steps ended at intensity -0.78, -0.71, -0.83, -0.78 and energy 0.25, 0.33,
    0.28, 0.39 (the 360-step run is this test), so (b) asserts intensity within
    0.25 and energy within a factor of 3 of the data's: margins for a GAN's
    wobble, and far outside what the untrained generator gives.
    """
    tf.keras.utils.set_random_seed(0)
    model = vidgen_tf.build("vgan", num_frames=8, height=8, width=8, channels=1, latent_dim=16,
                            generator_width=16, discriminator_width=16)
    model.compile(seed=0, g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(5e-4, beta_1=0.5))
    real = next(iter(vidgen_tf.data.load("moving_square", num_frames=8, height=8, width=8,
                                         channels=1, batch_size=64, seed=1))).numpy()
    real_intensity, real_motion = harness.video_statistics(real)
    intensity, motion = harness.video_statistics(model.generate(64, seed=0))
    assert abs(intensity - real_intensity) > 0.5 and motion < 0.1 * real_motion, (intensity, motion)

    data = vidgen_tf.data.load("moving_square", num_frames=8, height=8, width=8, channels=1,
                               batch_size=16, seed=0)
    model.fit(data, steps_per_epoch=360, epochs=1, verbose=0)
    intensity, motion = harness.video_statistics(model.generate(64, seed=0))
    assert abs(intensity - real_intensity) < 0.25 and real_motion / 3 < motion < 3 * real_motion, (
        f"intensity {intensity:.3f} vs data {real_intensity:.3f}; "
        f"frame-difference energy {motion:.4f} vs data {real_motion:.4f}"
    )


def test_transposed_same_padding_is_torchs_padding_1():
    # main.lua: VolumetricFullConvolution(..., 4,4,4, 2,2,2, 1,1,1), i.e. the full transposed
    # convolution (2n + 2 per axis) with one sample cropped from each side: TensorFlow's "same".
    model = tiny()
    head = model.generator.output_head
    hidden = tf.random.stateless_normal([2, 2, 4, 4, head.kernel.shape[-1]], [3, 4])
    full = tf.nn.conv3d_transpose(hidden, head.kernel, [2, 6, 10, 10, head.filters], strides=[1, 2, 2, 2, 1],
                                  padding="VALID") + head.bias
    np.testing.assert_allclose(head(hidden).numpy(), full[:, 1:-1, 1:-1, 1:-1].numpy(), rtol=1e-5, atol=1e-5)
