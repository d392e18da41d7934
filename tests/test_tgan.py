"""TGAN: the model contract, the temporal generator, singular value clipping, and that it learns."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness
from vidgen_tf.models.tgan import TemporalGenerator, clip_singular_values

TINY = dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, frame_code_dim=6,
            generator_width=8, temporal_width=16, discriminator_width=8)


def tiny(**overrides):
    return vidgen_tf.build("tgan", **{**TINY, **overrides})


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def _matrices(critic):
    """name -> the critic's weight matrices (last axis against the rest)."""
    return {v.path: v.numpy().reshape(-1, v.shape[-1]) for v in critic.trainable_variables if len(v.shape) >= 2}


@pytest.mark.large
def test_paper_setting_has_the_papers_layers():
    """16x64x64 RGB, z0 and z1(t) 100-d: counts derived from the paper's layer shapes."""
    model = vidgen_tf.build("tgan")
    assert model.video_shape == (16, 64, 64, 3)
    temporal = (100 * 512 + 2 * 512  # z0 -> 1 x 512, BN
                + 4 * 512 * 256 + 2 * 256 + 4 * 256 * 128 + 2 * 128 + 4 * 128 * 128 + 2 * 128
                + 4 * 128 * 100 + 100)  # -> 16 x 100, tanh
    assert _trainable(model.generator.temporal_generator) == temporal
    k2 = 4 * 4
    image = (2 * (100 * 4 * 4 * 256 + 2 * 4 * 4 * 256)  # z0 and z1(t) -> 4x4x256 each, BN per unit
             + k2 * 512 * 256 + 2 * 256 + k2 * 256 * 128 + 2 * 128 + k2 * 128 * 64 + 2 * 64
             + k2 * 64 * 32 + 2 * 32 + 3 * 3 * 32 * 3 + 3)
    assert _trainable(model.generator) == temporal + image
    k3 = 4 * 4 * 4
    critic = (k3 * 3 * 64 + 64 + k3 * 64 * 128 + 2 * 128 + k3 * 128 * 256 + 2 * 256
              + k3 * 256 * 512 + 2 * 512 + 1 * 4 * 4 * 512 + 1)
    assert _trainable(model.discriminators["video"]) == critic


def test_kernels_start_uniform_in_plus_minus_0_01_as_the_authors_configuration():
    # configs/moving_mnist/*svd*: Uniform(0.01) for every layer of G0, G1 and the critic.
    model = tiny(generator_width=16, temporal_width=32, discriminator_width=16)
    kernels = [w.numpy().ravel() for m in (model.generator, model.discriminators["video"])
               for w in m.weights if w.path.endswith("kernel")]
    assert len(kernels) >= 10
    for kernel in kernels:
        assert np.abs(kernel).max() <= 0.01
        assert abs(kernel.std() - 0.01 / np.sqrt(3)) < 0.0015
    first = min(len(k) for k in kernels)
    assert len({tuple(np.round(k[:first], 8)) for k in kernels}) == len(kernels)


def test_temporal_generator_doubles_time_from_the_start_length():
    for frames, first in ((16, 1), (4, 1), (6, 3), (5, 5)):
        temporal = TemporalGenerator(frames, 3, 16)
        codes = temporal(tf.random.stateless_uniform([2, 8], [0, 1], -1, 1))
        assert codes.shape == (2, frames, 3)
        assert np.abs(codes.numpy()).max() <= 1.0
        assert temporal.stack.layers[1].target_shape[0] == first


def test_builds_and_generates_at_32x32x8():
    model = tiny(num_frames=8, height=32, width=32)
    assert model.generate(2, seed=0).shape == (2, 8, 32, 32, 1)


@pytest.mark.large
def test_builds_and_generates_at_64x64x16():
    model = tiny(num_frames=16, height=64, width=64, channels=3)
    assert model.generate(2, seed=0).shape == (2, 16, 64, 64, 3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="TGAN needs frames"):
        tiny(height=24, width=24)
    with pytest.raises(ValueError, match="`clipping_interval`"):
        tiny(clipping_interval=0)
    with pytest.raises(ValueError, match="`singular_value_clipping`"):
        tiny(singular_value_clipping="yes")
    with pytest.raises(ValueError, match="generates exactly 4 frames"):
        tiny().generate(1, num_frames=5)


def test_config_and_keras_round_trips(tmp_path):
    model = tiny(num_classes=3, clipping_interval=2)
    harness.check_config_round_trip(model)
    harness.check_keras_round_trip(model, tmp_path)


def test_generates_deterministically_from_uniform_latents():
    model = tiny()
    harness.check_generate(model)
    latent = model.sample_noise(256, tf.constant([0, 1], tf.int64))["latent"].numpy()
    assert latent.min() >= -1 and latent.max() <= 1 and latent.min() < -0.99 and latent.max() > 0.99


def test_one_latent_drives_every_frame_and_frames_differ():
    model = tiny()
    noise = harness.fixed_noise(model, batch_size=2)
    videos = model.generate_from_noise(noise).numpy()
    assert np.abs(videos[:, 1:] - videos[:, :-1]).mean() > 0
    changed = model.generate_from_noise({"latent": noise["latent"] * 0.5}).numpy()
    assert np.all(np.abs(changed - videos).mean(axis=(2, 3, 4)) > 0)


def test_clip_singular_values_matches_numpy():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(12, 5)))
    v, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    singular = np.array([3.0, 1.5, 0.9, 0.2, 0.05])  # some clipped, some kept
    matrix = ((u * singular) @ v.T).astype("float32")
    clipped = clip_singular_values(tf.constant(matrix)).numpy()
    np.testing.assert_allclose(clipped, (u * np.minimum(singular, 1.0)) @ v.T, atol=1e-5)
    np.testing.assert_allclose(np.linalg.svd(clipped, compute_uv=False), [1.0, 1.0, 0.9, 0.2, 0.05], atol=1e-5)


def test_clip_critic_clips_every_matrix_and_bounds_batch_norm_scales():
    model = tiny(num_classes=2)
    critic = model.discriminators["video"]
    for variable in critic.trainable_variables:
        variable.assign(variable * 10.0)  # singular values and gammas well above 1
    norm = critic.blocks[1].norm
    norm.moving_variance.assign(np.full(norm.moving_variance.shape, 4.0, "float32"))
    norm.gamma.assign(np.tile([10.0, -10.0, 0.5, -0.5], norm.gamma.shape[0] // 4).astype("float32"))
    before = _matrices(critic)
    biases = {v.path: v.numpy() for v in critic.trainable_variables if v.path.endswith("bias")}
    assert any(np.linalg.svd(m, compute_uv=False).max() > 1 for m in before.values())

    model.clip_critic()

    after = _matrices(critic)
    assert set(after) >= {"video_discriminator/down0/conv/kernel", "video_discriminator/head/embedding",
                          "video_discriminator/head/psi/kernel"}
    for path, matrix in before.items():
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        np.testing.assert_allclose(after[path], (u * np.minimum(s, 1.0)) @ vt, atol=1e-4, err_msg=path)
    bound = np.sqrt(4.0 + norm.epsilon)
    np.testing.assert_allclose(norm.gamma.numpy()[:4], [bound, -bound, 0.5, -0.5], rtol=1e-6)
    for path, value in biases.items():
        np.testing.assert_array_equal(next(v for v in critic.trainable_variables if v.path == path).numpy(), value)


def test_clipping_follows_the_interval_and_the_switch():
    model = tiny(clipping_interval=2)
    kernel = model.discriminators["video"].blocks[0].conv.kernel
    kernel.assign(kernel * 100.0)
    largest = lambda: np.linalg.svd(kernel.numpy().reshape(-1, kernel.shape[-1]), compute_uv=False).max()  # noqa: E731
    model.after_discriminator_update()
    assert largest() > 1.5  # first critic update: not due
    model.after_discriminator_update()
    assert largest() == pytest.approx(1.0, abs=1e-5)
    assert int(model.critic_updates) == 2
    off = tiny(singular_value_clipping=False)
    off_kernel = off.discriminators["video"].blocks[0].conv.kernel
    off_kernel.assign(off_kernel * 100.0)
    for _ in range(3):
        off.after_discriminator_update()
    assert np.linalg.svd(off_kernel.numpy().reshape(-1, off_kernel.shape[-1]), compute_uv=False).max() > 1.5
    assert int(off.critic_updates) == 0


def test_rmsprop_steps_are_chainers_for_small_and_large_gradients():
    # Chainer: v = 0.99 v + 0.01 g^2; w -= lr g / (sqrt(v) + 1e-8). One step from v = 0, for
    # gradients from 1e-12 to 1: the Keras optimizer's step stays within sqrt(2) of Chainer's
    # (with epsilon=1e-8 under Keras's root, a 1e-6 gradient stepped 1000x too little).
    gradients = np.logspace(-12, 0, 13)
    lr = 5e-5
    chainer = lr * gradients / (np.sqrt(0.01 * gradients**2) + 1e-8)
    optimizer = tiny().make_optimizer()
    variable = keras.Variable(np.zeros(len(gradients)), dtype="float64")
    optimizer.apply([tf.constant(gradients)], [variable])
    ratio = -variable.numpy() / chainer
    assert np.all((ratio > 1 / np.sqrt(2)) & (ratio < np.sqrt(2))), ratio


def test_compile_defaults_follow_the_authors_code():
    model = tiny()
    model.compile(seed=0)
    assert model.gan_loss.name == "wasserstein" and model.n_critic == 1
    assert isinstance(model.d_optimizer, keras.optimizers.RMSprop)
    assert float(model.d_optimizer.learning_rate) == pytest.approx(5e-5)
    # Chainer's RMSprop decay (alpha=0.99), not Keras's (rho=0.9); its eps, see the next test.
    for optimizer in (model.g_optimizer, model.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.RMSprop)
        assert optimizer.rho == pytest.approx(0.99)
    model.compile(seed=0, loss="wgan_gp")
    assert model.n_critic == 5
    model.compile(seed=0, n_critic=3, g_optimizer=keras.optimizers.Adam(1e-3))
    assert model.n_critic == 3 and isinstance(model.g_optimizer, keras.optimizers.Adam)
    unclipped = tiny(singular_value_clipping=False)
    unclipped.compile(seed=0)
    assert unclipped.n_critic == 5


def test_fit_clips_inside_the_training_step():
    model = tiny(clipping_interval=1)
    # A huge critic step: without clipping the kernels' singular values would be far above 1.
    history = harness.check_fit(model, ["d_loss", "g_loss", "d_real", "d_fake"],
                                d_optimizer=keras.optimizers.SGD(10.0))
    assert int(model.critic_updates) == 2
    for path, matrix in _matrices(model.discriminators["video"]).items():
        assert np.linalg.svd(matrix, compute_uv=False).max() <= 1 + 1e-4, path
    assert np.isfinite(history.history["g_loss"][-1])


@pytest.mark.parametrize(
    "loss,penalty", [("wgan_gp", "gradient_penalty"), pytest.param("hinge", None, marks=pytest.mark.large)]
)
def test_other_losses_train(loss, penalty):
    model = tiny(singular_value_clipping=loss != "wgan_gp")
    expected = ["d_loss", "g_loss"] + ([penalty] if penalty else [])
    harness.check_fit(model, expected, loss=loss, n_critic=1)


@pytest.mark.large
def test_clipping_under_mirrored_strategy_keeps_replicas_equal():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # keys moved by conftest
    with strategy.scope():
        model = tiny(clipping_interval=1)
        model.compile(seed=0, d_optimizer=keras.optimizers.SGD(10.0))
    model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
    for variable in model.discriminators["video"].trainable_variables:
        if len(variable.shape) >= 2:
            copies = [c.numpy().reshape(-1, variable.shape[-1]) for c in variable.value.values]
            assert len(copies) == 2
            np.testing.assert_array_equal(copies[0], copies[1])
            assert np.linalg.svd(copies[0], compute_uv=False).max() <= 1 + 1e-4, variable.path


def test_mixed_precision_keeps_float32_outputs():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny(num_classes=2)
        videos = model.generate(2, seed=0, labels=[0, 1])
        logits, _ = model.discriminate(videos, tf.constant([0, 1]), tf.constant([0, 0], tf.int64))["video"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert videos.dtype == tf.float32 and logits.dtype == tf.float32


def test_conditional_variant_takes_labels(tmp_path):
    model = tiny(num_classes=3)
    assert model.generate(3, seed=0, labels=[0, 1, 2]).shape == (3, 4, 16, 16, 1)
    a = model.generate(1, seed=0, labels=[0]).numpy()
    b = model.generate(1, seed=0, labels=[2]).numpy()
    assert not np.allclose(a, b)
    harness.check_fit(model, ["d_loss", "g_loss"])
    harness.check_exports(model, tmp_path)
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "tgan" / "3"))
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert set(inputs) == {"latent", "label"}


@pytest.mark.large
def test_unconditional_exports_agree(tmp_path):
    report = harness.check_exports(tiny(), tmp_path)
    assert report["max_abs_diff_float"] < 1e-5


@pytest.mark.large
def test_learns_a_moving_square():
    """One training run on a 2x2 square moving one pixel per frame in 8x8 frames,
    with the paper's loss and critic constraint (Wasserstein, SVC every 5th
    critic update, one critic update per generator update) and RMSprop at 1e-3
    (the paper's 5e-5 is too slow for a test).

    The data's mean intensity is -0.875 and its frame-difference energy 0.375.
    Untrained (measured: intensity 1e-5, energy 2e-23: mid-grey and still), (a)
    asserts intensity off by > 0.5 and energy below a tenth of the data's.
    With the authors' initialisation (uniform in [-0.01, 0.01]), runs of 450
    steps with seeds 0, 1, 2 ended at intensity -0.93, -0.85, -0.88 and energy
    0.18, 0.43, 0.25 (at 300 steps: energy 0.13, 0.15, 0.13, too close to the
    bound), so (b) asserts intensity within 0.25 and energy within a factor of 3
    of the data's, on the seed-0 run of 450 steps.
    """
    tf.keras.utils.set_random_seed(0)
    model = vidgen_tf.build("tgan", num_frames=8, height=8, width=8, channels=1, latent_dim=16,
                            frame_code_dim=8, generator_width=16, temporal_width=32, discriminator_width=16)
    model.compile(seed=0, g_optimizer=keras.optimizers.RMSprop(1e-3), d_optimizer=keras.optimizers.RMSprop(1e-3))
    real = next(iter(vidgen_tf.data.load("moving_square", num_frames=8, height=8, width=8,
                                         channels=1, batch_size=64, seed=1))).numpy()
    real_intensity, real_motion = harness.video_statistics(real)
    intensity, motion = harness.video_statistics(model.generate(64, seed=0))
    assert abs(intensity - real_intensity) > 0.5 and motion < 0.1 * real_motion, (intensity, motion)

    data = vidgen_tf.data.load("moving_square", num_frames=8, height=8, width=8, channels=1,
                               batch_size=16, seed=0)
    model.fit(data, steps_per_epoch=450, epochs=1, verbose=0)
    intensity, motion = harness.video_statistics(model.generate(64, seed=0))
    assert abs(intensity - real_intensity) < 0.25 and real_motion / 3 < motion < 3 * real_motion, (
        f"intensity {intensity:.3f} vs data {real_intensity:.3f}; "
        f"frame-difference energy {motion:.4f} vs data {real_motion:.4f}"
    )
