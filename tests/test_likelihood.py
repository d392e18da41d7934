"""LikelihoodModel: bits/dim arithmetic, the training and evaluation steps, generation.

The core is exercised through a toy density (one independent Gaussian per
pixel) whose log-likelihood and gradients are known in closed form.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.likelihood import EIGHT_BIT_CORRECTION_BITS, LikelihoodModel, bits_per_dim

SHAPE = (4, 4, 4, 1)  # (T, H, W, C)
D = int(np.prod(SHAPE))


class PixelGaussian(LikelihoodModel):
    """Every pixel an independent N(loc_d, exp(log_scale_d)): the simplest density."""

    def __init__(self, discrete=False, **kwargs):
        for key, value in zip(("num_frames", "height", "width", "channels"), SHAPE):
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)
        self.discrete = discrete
        pixels = SHAPE[1] * SHAPE[2] * SHAPE[3]
        self.loc = self.add_weight(shape=(pixels,), initializer="zeros", name="loc")
        self.log_scale = self.add_weight(shape=(pixels,), initializer="zeros", name="log_scale")
        self.built = True

    @property
    def likelihood_is_discrete(self):
        return self.discrete

    def log_prob(self, videos, training=False):
        y = tf.reshape(tf.cast(videos, tf.float32), [tf.shape(videos)[0], tf.shape(videos)[1], -1])
        z = (y - self.loc) / tf.exp(self.log_scale)
        per_pixel = -0.5 * z**2 - self.log_scale - 0.5 * math.log(2 * math.pi)
        return tf.reduce_sum(per_pixel, axis=[1, 2])

    def noise_spec(self, num_frames=None):
        return {"pixels": tf.TensorSpec([None, num_frames, SHAPE[1] * SHAPE[2]], tf.float32)}

    def sample_noise(self, batch_size, seed, num_frames=None):
        num_frames = self.num_frames if num_frames is None else num_frames
        return {"pixels": tf.random.stateless_normal([batch_size, num_frames, SHAPE[1] * SHAPE[2]], seed)}

    def generate_from_noise(self, noise, labels=None, training=False, generator=None):
        y = self.loc + tf.exp(self.log_scale) * noise["pixels"]
        return tf.clip_by_value(tf.reshape(y, [tf.shape(y)[0], tf.shape(y)[1]] + list(SHAPE[1:])), -1.0, 1.0)


def eight_bit_videos(num, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (num,) + SHAPE)
    return (x / 127.5 - 1.0).astype("float32")


def numpy_nll(videos, loc=0.0, scale=1.0):
    y = videos.reshape(len(videos), -1).astype(np.float64)
    return np.sum(0.5 * ((y - loc) / scale) ** 2 + np.log(scale) + 0.5 * np.log(2 * np.pi), axis=1)


def test_bits_per_dim_arithmetic_by_hand():
    assert EIGHT_BIT_CORRECTION_BITS == pytest.approx(6.994353436858858, abs=1e-12)
    # One nat-per-dim-of-ln2 is one bit; on dequantised data the change of variables adds log2(127.5).
    assert float(bits_per_dim(100 * math.log(2), 100, dequantized=True)) == pytest.approx(
        1 + math.log2(127.5), abs=1e-5)
    assert float(bits_per_dim(100 * math.log(2), 100, dequantized=True)) == pytest.approx(math.log2(255), abs=1e-5)
    # A density uniform over the dequantised range [-1, 1 + 1/127.5) costs raw bytes: 8 bits.
    uniform_nll = D * math.log(256 / 127.5)
    assert float(bits_per_dim(uniform_nll, D, dequantized=True)) == pytest.approx(8.0, abs=1e-5)
    # Anything else takes no correction: 1 bit per binary pixel for a fair coin.
    assert float(bits_per_dim(D * math.log(2), D)) == pytest.approx(1.0, abs=1e-6)
    model = PixelGaussian()
    model.compile(dequantize=True, seed=0)
    assert float(model.bits_per_dim(D * math.log(2))) == pytest.approx(1 + math.log2(127.5), abs=1e-5)
    assert float(model.bits_per_dim(D * math.log(2) / 2, num_frames=2)) == pytest.approx(
        1 + math.log2(127.5), abs=1e-5
    )
    assert float(PixelGaussian(discrete=True).bits_per_dim(D * math.log(2))) == pytest.approx(1.0, abs=1e-6)


def test_a_continuous_density_without_dequantisation_carries_no_8_bit_correction():
    model = PixelGaussian()
    model.compile(seed=0)  # dequantize=False: evaluated on the 8-bit grid itself
    assert float(model.bits_per_dim(D * math.log(2))) == pytest.approx(1.0, abs=1e-6)
    assert float(PixelGaussian().bits_per_dim(D * math.log(2))) == pytest.approx(1.0, abs=1e-6)  # uncompiled
    videos = eight_bit_videos(4)
    result = model.evaluate(tf.data.Dataset.from_tensor_slices(videos).batch(4), verbose=0, return_dict=True)
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (D * math.log(2)), rel=1e-5)
    assert model.bits_per_dim_kind == "continuous density, not dequantised: not comparable with 8-bit figures"
    model.compile(dequantize=True, seed=0)
    assert model.bits_per_dim_kind == "bits per 8-bit value, dequantised"
    assert PixelGaussian(discrete=True).bits_per_dim_kind == "bits per 8-bit value (probability mass)"


@pytest.mark.parametrize("name,config,kind", [
    ("hmm", dict(num_states=2, emission="bernoulli"), "bits per binary pixel"),
    ("hmm", dict(num_states=2), "continuous density, not dequantised: not comparable with 8-bit figures"),
    ("hmm", dict(num_states=2, feature_dim=4), "bits per dimension of the pca_features space, continuous density, "
                                                "not dequantised: not comparable with pixel or 8-bit figures"),
    ("kvae", dict(base_filters=4, dynamics_units=8, likelihood="bernoulli"), "bits per binary pixel"),
    ("video_vae", dict(base_filters=4, latent_dim=4), "bits per 8-bit value (probability mass)"),
    ("video_vae", dict(base_filters=4, latent_dim=4, likelihood="bernoulli"), "bits per binary pixel"),
])
def test_every_zoo_likelihood_model_names_its_kind_of_bits_per_dim(name, config, kind):
    import vidgen_tf

    model = vidgen_tf.build(name, num_frames=4, height=8, width=8, channels=1, **config)
    assert model.bits_per_dim_kind == kind


def test_compile_defaults_and_built_optimizer():
    model = PixelGaussian()
    model.compile(seed=0)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.jit_compile is False
    # Slots exist before the first step (needed under MirroredStrategy).
    assert len(model.optimizer.variables) > 2
    assert [m.name for m in model.metrics] == ["nll", "bits_per_dim"]


def test_train_step_averages_the_gradient_over_the_batch_and_reports_metrics():
    videos = eight_bit_videos(8)
    model = PixelGaussian()
    model.compile(optimizer=keras.optimizers.SGD(0.5), seed=0)
    history = model.fit(tf.data.Dataset.from_tensor_slices(videos).batch(8), epochs=1, verbose=0)
    # The metrics are of the weights before the step: loc 0, scale 1.
    expected_nll = numpy_nll(videos).mean()
    assert history.history["nll"][0] == pytest.approx(expected_nll, rel=1e-5)
    assert history.history["bits_per_dim"][0] == pytest.approx(expected_nll / (D * math.log(2)), rel=1e-5)
    # d mean(nll) / d loc_d = -mean over videos and frames of y_d (summed over frames):
    # one SGD step moves loc by 0.5 * sum_t mean_b y.
    y = videos.reshape(8, SHAPE[0], -1)
    np.testing.assert_allclose(model.loc.numpy(), 0.5 * y.sum(axis=1).mean(axis=0), rtol=1e-5, atol=1e-6)
    assert int(model.noise_step.numpy()) == 1


def test_test_step_reports_without_updating():
    videos = eight_bit_videos(6)
    model = PixelGaussian()
    model.loc.assign(np.full(16, 0.1, "float32"))
    model.compile(optimizer=keras.optimizers.SGD(0.5), seed=0)
    # A short last batch (4 + 2): the per-example mean is still exact.
    result = model.evaluate(tf.data.Dataset.from_tensor_slices(videos).batch(4), verbose=0, return_dict=True)
    assert result["nll"] == pytest.approx(numpy_nll(videos, loc=0.1).mean(), rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(float(bits_per_dim(result["nll"], D)), rel=1e-6)
    np.testing.assert_array_equal(model.loc.numpy(), np.full(16, 0.1, "float32"))
    assert int(model.noise_step.numpy()) == 0


def test_dequantisation_adds_uniform_noise_over_one_8bit_bin():
    # All-zero videos and a standard normal density: the NLL rises by
    # 0.5 * sum (u / 127.5)^2, whose mean over u ~ U[0, 1) is D / (6 * 127.5^2).
    videos = np.zeros((16,) + SHAPE, "float32")
    data = tf.data.Dataset.from_tensor_slices(videos).batch(16)
    base = numpy_nll(videos).mean()
    rises = []
    for seed in (0, 0, 1):
        model = PixelGaussian()
        model.compile(optimizer=keras.optimizers.SGD(0.0), dequantize=True, seed=seed)
        rises.append(model.fit(data, epochs=1, verbose=0).history["nll"][0] - base)
    expected = D / (6 * 127.5**2)
    assert rises[0] == pytest.approx(expected, rel=0.1)
    assert rises[0] == rises[1]  # same seed, same noise
    assert rises[0] != rises[2]


def test_discrete_likelihoods_refuse_dequantisation():
    with pytest.raises(ValueError, match="discrete"):
        PixelGaussian(discrete=True).compile(dequantize=True)


def test_fit_before_compile_and_labelled_data_are_named():
    model = PixelGaussian()
    data = tf.data.Dataset.from_tensor_slices(eight_bit_videos(4)).batch(2)
    with pytest.raises(RuntimeError, match="compile"):
        model.train_step(next(iter(data)))
    model.compile(seed=0)
    labelled = tf.data.Dataset.from_tensor_slices((eight_bit_videos(4), np.zeros(4, "int32"))).batch(2)
    with pytest.raises(ValueError, match="labels"):
        model.fit(labelled, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="expects videos shaped"):
        model.fit(tf.data.Dataset.from_tensor_slices(np.zeros((4, 4, 8, 8, 1), "float32")).batch(2), verbose=0)


def test_nan_in_training_data_is_named():
    model = PixelGaussian()
    model.compile(seed=0)
    videos = eight_bit_videos(4)
    videos[1, 2, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model.fit(tf.data.Dataset.from_tensor_slices(videos).batch(4), epochs=1, verbose=0)


def test_generate_is_generate_from_noise_of_sample_noise():
    model = PixelGaussian()
    model.log_scale.assign(np.full(16, -1.0, "float32"))
    videos = model.generate(3, seed=11)
    expected = model.generate_from_noise(model.sample_noise(3, tf.constant([11, 1], tf.int64)))
    np.testing.assert_array_equal(videos.numpy(), expected.numpy())
    assert videos.shape == (3,) + SHAPE
    with pytest.raises(ValueError, match="num_frames"):
        model.generate(2, seed=0, num_frames=7)
    with pytest.raises(ValueError, match="num"):
        model.generate(0)
    assert model.inference_generator is None


def test_preset_model_is_an_uncompiled_copy_of_the_weights():
    model = PixelGaussian()
    model.compile(seed=0)
    model.fit(tf.data.Dataset.from_tensor_slices(eight_bit_videos(4)).batch(4), epochs=1, verbose=0)
    copy = model.preset_model()
    assert copy is not model and getattr(copy, "optimizer", None) is None
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    videos = eight_bit_videos(2, seed=3)
    np.testing.assert_allclose(copy.log_prob(videos).numpy(), model.log_prob(videos).numpy())


def test_xla_is_on_by_default_where_it_was_measured_faster_and_only_on_one_replica():
    import vidgen_tf

    small = dict(num_frames=4, height=8, width=8, channels=1)
    hmm = vidgen_tf.build("hmm", num_states=2, **small)
    hmm.compile()
    assert hmm.jit_compile is True
    hmm.compile(jit_compile=False)
    assert hmm.jit_compile is False
    vae = vidgen_tf.build("video_vae", base_filters=4, latent_dim=4, **small)
    vae.compile()
    assert vae.jit_compile is False
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        mirrored = vidgen_tf.build("hmm", num_states=2, **small)
        mirrored.compile()
    assert mirrored.jit_compile is False
