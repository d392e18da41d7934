"""MoCoGAN: the model contract, its own behaviours, and that it learns."""

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


def test_paper_setting_matches_the_original_parameter_counts():
    # The authors' modules at 64x64 RGB, widths 64, content 50, motion 10:
    # about 3.25M (generator), 0.66M (patch image D), 11.06M (video D).
    model = vidgen_tf.build("mocogan", num_frames=16, height=64, width=64, channels=3)
    assert round(model.generator.count_params() / 1e6, 2) == 3.25
    assert round(model.discriminators["image"].count_params() / 1e6, 2) == 0.66
    assert round(model.discriminators["video"].count_params() / 1e6, 2) == 11.06


# The authors' VideoDiscriminator at 64x64x16 RGB, width 64, layer by layer:
# (frames, side, channels out, products per output = kernel volume x channels in).
AUTHORS_VIDEO_LAYERS = [
    (13, 32, 64, 4 * 4 * 4 * 3),
    (10, 16, 128, 4 * 4 * 4 * 64),
    (7, 8, 256, 4 * 4 * 4 * 128),
    (4, 4, 512, 4 * 4 * 4 * 256),
    (1, 1, 1, 4 * 4 * 4 * 512),
]


def test_paper_setting_video_discriminator_is_the_authors_arithmetic():
    from vidgen_tf.layers.cost import multiply_adds, multiply_adds_by_layer

    model = vidgen_tf.build("mocogan", num_frames=16, height=64, width=64, channels=3)
    video = model.discriminators["video"]
    hand = sum(frames * side * side * out * products for frames, side, out, products in AUTHORS_VIDEO_LAYERS)
    assert hand == 2_982_182_912
    assert multiply_adds(video, (16, 64, 64, 3)) == hand
    shapes = [shape for _, count, shape in multiply_adds_by_layer(video, (16, 64, 64, 3)) if count]
    assert shapes == [(f, side, side, out) for f, side, out, _ in AUTHORS_VIDEO_LAYERS]
    # One logit per clip (the 'same'-padded stack gave 16 x 2 x 2 = 64 patch logits).
    logits, classes = model.call_discriminator("video", video, tf.zeros((2, 16, 64, 64, 3)), None, training=False)
    assert logits.shape == (2, 1) and classes is None


def test_paper_video_discriminator_takes_the_fast_paths_with_keras_s_function(monkeypatch):
    # At 64x64x16 RGB the measured rule (vidgen_tf.layers.conv3d.choose_path, oneDNN kernels) puts
    # the video discriminator's layers on space-to-depth blocks, the native op, blocks, and the
    # windows' matrix product. The same stack of plain keras.layers.Conv3D on the same weights
    # gives the same logits, weight gradients and input gradient (the generator's). Compared in
    # float64: in float32 both stacks differ from the exact values by up to ~1% here, where a
    # rounding error flips a LeakyReLU unit near zero (the paths' float32 error, layer by layer,
    # is in tests/test_conv3d.py).
    from vidgen_tf.layers import conv3d

    monkeypatch.setattr(conv3d, "onednn_enabled", lambda: True)
    keras.utils.set_random_seed(0)
    model = vidgen_tf.build("mocogan", num_frames=16, height=64, width=64, channels=3)

    def clone(plain):
        layers = []
        for layer in model.discriminators["video"].layers:
            config = {k: v for k, v in layer.get_config().items() if not (plain and k in ("conv_path", "fast_path"))}
            config["dtype"] = "float64"
            cls = keras.layers.Conv3D if plain and isinstance(layer, conv3d.Conv3D) else layer.__class__
            layers.append(cls.from_config(config))
        network = keras.Sequential(layers)
        network.build((None, None, 64, 64, 3))
        network.set_weights(model.discriminators["video"].get_weights())
        return network

    fast, plain = clone(plain=False), clone(plain=True)
    x = tf.random.stateless_uniform((2, 16, 64, 64, 3), [3, 4], -1.0, 1.0, dtype="float64")
    taken, h = [], x
    for layer in fast.layers:
        if isinstance(layer, conv3d.Conv3D):
            taken.append(conv3d.layer_path(layer, h))
        h = layer(h)
    assert taken == ["space_to_depth", "native", "space_to_depth", "patches", "native"]

    def logits_and_gradients(network):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = network(x, training=True)
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits))
        return [t.numpy() for t in [logits] + tape.gradient(loss, [x] + network.trainable_variables)]

    names = ["logits", "input"] + [v.path for v in fast.trainable_variables]
    for name, got, want in zip(names, logits_and_gradients(fast), logits_and_gradients(plain), strict=True):
        assert np.abs(want).max() > 0, name
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max(), err_msg=name)


def test_categorical_video_discriminator_gives_one_logit_and_class_logits_per_clip():
    model = tiny(num_classes=3, num_frames=4)
    video = model.discriminators["video"]
    logits, classes = model.call_discriminator("video", video, tf.zeros((2, 4, 16, 16, 1)), None, training=False)
    assert logits.shape == (2, 1) and classes.shape == (2, 3)


@pytest.mark.parametrize("num_frames,layers,kernels", [
    (16, 5, (4, 4, 4, 4, 4)), (13, 4, (4, 4, 4, 4)), (20, 5, (4, 4, 4, 4, 4)),
    (8, 4, (3, 3, 3, 2)), (4, 3, (2, 2, 2)), (1, 3, (1, 1, 1)),
])
def test_temporal_kernels_are_the_authors_when_the_clip_allows(num_frames, layers, kernels):
    from vidgen_tf.models.mocogan import video_temporal_kernels

    assert video_temporal_kernels(num_frames, layers) == kernels


@pytest.mark.parametrize("num_frames,height,logits", [(8, 32, 1), (4, 16, 1), (13, 32, 1), (16, 32, 4)])
def test_small_settings_give_one_logit_per_clip_up_to_the_authors_window(num_frames, height, logits):
    model = tiny(num_frames=num_frames, height=height, width=height)
    video = model.discriminators["video"]
    clip = tf.zeros((1, num_frames, height, height, 1))
    assert model.call_discriminator("video", video, clip, None, training=False)[0].shape == (1, logits)


def test_preset_loads_with_its_kernels():
    model = vidgen_tf.from_preset("mocogan_moving_digits")
    assert model.video_temporal_kernels == (3, 3, 3, 2)
    assert model.discriminators["video"].compute_output_shape((2, 8, 32, 32, 1)) == (2, 1, 1, 1, 1)


def test_clips_too_short_for_the_temporal_kernels_are_named():
    model = tiny(num_frames=8)  # 16x16: kernels (4, 3, 3) take at least 8 frames
    with pytest.raises(ValueError, match=r"at least 8 frames.*\(4, 3, 3\).*num_frames=8.*clip of 5 frames"):
        model.call_discriminator("video", model.discriminators["video"], tf.zeros((1, 5, 16, 16, 1)), None, False)


def test_batch_norm_and_adam_are_the_authors_pytorch_settings():
    from vidgen_tf.layers import BatchNormalization

    model = tiny()
    norms = [layer for stack in (model.generator.frame_generator, *model.discriminators.values())
             for layer in stack.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2 + 2 + 1  # 16x16: generator 2, image D 2, video D 1
    for norm in norms:
        assert type(norm) is BatchNormalization and norm.synchronized
        assert norm.momentum == pytest.approx(0.9) and norm.epsilon == pytest.approx(1e-5)
    optimizer = model.make_optimizer()
    assert optimizer.epsilon == pytest.approx(1e-8) and optimizer.beta_1 == pytest.approx(0.5)


def test_frame_code_is_content_then_class_then_motion():
    model = tiny(num_classes=3)
    project = model.generator.frame_generator.layers[0]
    kernel = project.kernel.numpy()
    # Zero the rows that follow the content code: if they are the class's, the label no longer matters.
    kernel[TINY["content_dim"] : TINY["content_dim"] + 3] = 0.0
    project.kernel.assign(kernel)
    a = model.generate(1, seed=0, labels=[0]).numpy()
    b = model.generate(1, seed=0, labels=[2]).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("height,width", [(32, 32), (64, 64), (32, 64)])
def test_builds_at_several_sizes(height, width):
    model = tiny(height=height, width=width, num_frames=8)
    assert model.generate(2, seed=0).shape == (2, 8, height, width, 1)


def test_bad_frame_size_is_named():
    with pytest.raises(ValueError, match=r"MoCoGAN needs frames.*got height=20, width=20"):
        tiny(height=20, width=20)


def test_config_and_keras_round_trips(tmp_path):
    model = tiny(num_classes=3)
    harness.check_config_round_trip(model)
    harness.check_keras_round_trip(model, tmp_path)


@pytest.mark.oldest
def test_fit_reports_metrics():
    harness.check_fit(tiny(), ["d_loss", "g_loss", "d_real", "d_fake"])


def test_generates_any_length_deterministically():
    model = tiny()
    harness.check_generate(model, num_frames_options=(1, 9, 32))


def test_content_is_shared_across_frames_and_motion_varies():
    model = tiny()
    noise = harness.fixed_noise(model, batch_size=2, num_frames=6)
    videos = model.generate_from_noise(noise).numpy()
    # Frames of one video differ (motion), but changing only the content code changes every frame.
    assert np.abs(videos[:, 1:] - videos[:, :-1]).mean() > 0
    other = dict(noise, content=noise["content"] + 1.0)
    changed = model.generate_from_noise(other).numpy()
    assert np.all(np.abs(changed - videos).mean(axis=(2, 3, 4)) > 0)


def test_categorical_variant_takes_labels_and_classifies():
    model = tiny(num_classes=3)
    videos = model.generate(3, seed=0, labels=[0, 1, 2])
    assert videos.shape == (3, 4, 16, 16, 1)
    a = model.generate(1, seed=0, labels=[0]).numpy()
    b = model.generate(1, seed=0, labels=[2]).numpy()
    assert not np.allclose(a, b)
    history = harness.check_fit(model, ["d_loss", "g_loss", "class_loss"])
    assert history.history["class_loss"][-1] > 0


@pytest.mark.oldest
def test_exports_agree(tmp_path):
    report = harness.check_exports(tiny(), tmp_path)
    assert report["max_abs_diff_float"] < 1e-5


def test_conditional_exports_take_labels(tmp_path):
    model = tiny(num_classes=2)
    harness.check_exports(model, tmp_path)
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "mocogan" / "3"))
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert set(inputs) == {"content", "motion_noise", "motion_init", "label"}


@pytest.mark.large
def test_learns_a_moving_square():
    """Trained on one square moving along a path (8x8, 8 frames, 100 batches
    seen 3 times; Adam 2e-3 for the generator, 5e-4 for the discriminator, as
    VGAN's test), the generated clips come within 0.25 of the data's mean
    intensity (on [-1, 1]) and frame-to-frame change appears: the difference
    energy passes 15% of the data's, where the untrained generator's grey,
    still frames have under 2%. Without the generator update both stay at
    their untrained values and the test fails. Measured: data (-0.875, 0.375);
    untrained (-0.003, 0.0006); after 100, 200, 300, 400 steps (-0.76, 0.012),
    (-0.69, 0.147), (-0.77, 0.140), (-0.78, 0.220): steps 200 to 400 all pass,
    and 300 is this test. (At 500 steps this plain GAN swung away again, to
    (0.35, 0.42): the margin is in steps, not in more training.)"""
    keras.utils.set_random_seed(0)
    model = vidgen_tf.build("mocogan", num_frames=8, height=8, width=8, channels=1,
                            content_dim=16, motion_dim=8, generator_width=32, discriminator_width=16)
    model.compile(seed=0, g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(5e-4, beta_1=0.5))
    square = dict(num_frames=8, height=8, width=8, channels=1)
    real = next(iter(vidgen_tf.data.load("moving_square", batch_size=64, seed=1, **square))).numpy()
    real_intensity, real_motion = harness.video_statistics(real)

    def learned(videos):
        intensity, motion = harness.video_statistics(videos)
        return abs(intensity - real_intensity) < 0.25 and motion > 0.15 * real_motion, (intensity, motion)

    untrained_ok, untrained = learned(model.generate(64, seed=0))
    assert not untrained_ok and untrained[1] < 0.02 * real_motion, untrained
    data = vidgen_tf.data.load("moving_square", batch_size=16, seed=0, **square).take(100)
    model.fit(data, epochs=3, verbose=0)
    trained_ok, trained = learned(model.generate(64, seed=0))
    assert trained_ok, f"generated (intensity, motion) {trained} vs data {(real_intensity, real_motion)}"


def test_motion_codes_are_pytorch_grucell_states_and_frame_t_renders_z_c_with_h_t():
    # The authors' sample_z_m (src/models.py:217-229): h_t = GRUCell(e_t, h_{t-1}), z_M(t) = h_t for
    # t = 1..T; their frame n*T + t renders [z_C(n), h_t(n)]. PyTorch's GRUCell in numpy on the
    # Keras GRU's weights (gates z, r, n in Keras's order) gives the zoo's motion codes, and frame t
    # of clip b is the frame generator on [content_b, h_t(b)].
    model = tiny()
    noise = model.sample_noise(2, tf.constant([0, 1], tf.int64), num_frames=5)
    e, h = noise["motion_noise"].numpy(), noise["motion_init"].numpy()
    got = model.generator.rnn(noise["motion_noise"], initial_state=noise["motion_init"]).numpy()
    kernel, recurrent, bias = (w.numpy() for w in model.generator.rnn.weights)
    d = TINY["motion_dim"]
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    for t in range(e.shape[1]):
        x, r_h = e[:, t] @ kernel + bias[0], h @ recurrent + bias[1]
        z, r = sigmoid(x[:, :d] + r_h[:, :d]), sigmoid(x[:, d : 2 * d] + r_h[:, d : 2 * d])
        h = (1 - z) * np.tanh(x[:, 2 * d :] + r * r_h[:, 2 * d :]) + z * h
        np.testing.assert_allclose(got[:, t], h, atol=1e-5)
    videos = model.generator(noise).numpy()
    frame = model.generator.frame_generator(np.concatenate([noise["content"].numpy()[1], got[1, 2]])[None]).numpy()
    np.testing.assert_allclose(videos[1, 2], frame[0], atol=1e-6)
