"""The video VAE: discretised logistic likelihood, ELBO, bits/dim, training, generation, exports."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import vidgen_tf
from tests import model_harness as harness
from vidgen_tf.models.video_vae import discretized_logistic_log_prob

TINY = dict(num_frames=4, height=8, width=8, channels=1, latent_dim=4, base_filters=4)
GRID = np.arange(256) / 127.5 - 1.0  # every 8-bit value in [-1, 1] units


def tiny(**overrides):
    return vidgen_tf.build("video_vae", **{**TINY, **overrides})


def numpy_discretized_logistic(x, mean, scale):
    """log P(x) by differences of scipy's logistic CDF (float64), tails in the edge bins.

    Above the mean the bin's mass is taken from survival functions, below it
    from CDFs, so that neither difference cancels to zero in a far tail.
    """
    x, mean, scale = np.broadcast_arrays(x, mean, scale)
    upper, lower = x + 1 / 255, x - 1 / 255
    below = np.where(x > 0.999, 1.0, stats.logistic.cdf(upper, mean, scale)) - np.where(
        x < -0.999, 0.0, stats.logistic.cdf(lower, mean, scale)
    )
    above = np.where(x < -0.999, 1.0, stats.logistic.sf(lower, mean, scale)) - np.where(
        x > 0.999, 0.0, stats.logistic.sf(upper, mean, scale)
    )
    return np.log(np.where(x > mean, above, below))


def squares(num, seed=0, **shape):
    shape = {**dict(num_frames=4, height=8, width=8, channels=1), **shape}
    videos = vidgen_tf.data.make_videos("moving_square", num, seed=seed, **shape)
    return (videos / 127.5 - 1).astype("float32")


# ------------------------------------------------------ discretised logistic


@pytest.mark.parametrize("mean", [-1.0, -0.3, 0.0, 0.55, 1.0, 1.7])
@pytest.mark.parametrize("log_scale", [-7.0, -4.0, -1.5, 0.0, 3.0])
def test_discretized_logistic_sums_to_one_over_the_256_bins(mean, log_scale):
    log_p = discretized_logistic_log_prob(GRID.astype("float32"), mean, log_scale).numpy()
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= 0)
    assert math.fsum(np.exp(log_p.astype(np.float64))) == pytest.approx(1.0, abs=2e-5)


def test_discretized_logistic_matches_scipy():
    rng = np.random.default_rng(0)
    x = GRID[rng.integers(0, 256, 40)]
    x[:3] = [-1.0, 1.0, GRID[128]]  # both edge bins and the middle
    mean = rng.uniform(-1.2, 1.2, 40)
    log_scale = rng.uniform(-4, 0.5, 40)
    expected = numpy_discretized_logistic(x, mean, np.exp(log_scale))
    got = discretized_logistic_log_prob(x.astype("float32"), mean.astype("float32"), log_scale.astype("float32"))
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=1e-5)


def test_discretized_logistic_is_stable_in_the_tails():
    # A bin 300 scales from the mean: scipy's CDF difference is 0 there, the
    # logistic's tail gives log P ~ -300 - log(1 + e^{...}) + log(bin width).
    x = np.float32(GRID[128])
    got = float(discretized_logistic_log_prob(x, -0.9, math.log(0.003)))
    s, x = 0.003, float(x)
    upper, lower = (x + 1 / 255 + 0.9) / s, (x - 1 / 255 + 0.9) / s
    expected = -lower + math.log(-math.expm1(lower - upper))  # log(e^-b - e^-a) for large a, b
    assert got == pytest.approx(expected, rel=1e-4)
    # The gradient stays finite where the probability underflows float32.
    mean = tf.Variable([-0.9, 0.9, 0.0])
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(discretized_logistic_log_prob(tf.constant([0.9, -0.9, 1.0]), mean, -7.0))
    assert np.isfinite(value.numpy()) and np.all(np.isfinite(tape.gradient(value, mean).numpy()))


def test_discretized_logistic_rounds_inputs_to_the_8_bit_grid():
    on_grid = discretized_logistic_log_prob(np.float32(GRID[100]), 0.1, -3.0)
    nearby = discretized_logistic_log_prob(np.float32(GRID[100] + 0.3 / 127.5), 0.1, -3.0)
    assert float(on_grid) == float(nearby)


# ------------------------------------------------------------------- ELBO


@pytest.mark.parametrize("likelihood", ["discretized_logistic", "bernoulli"])
def test_log_prob_is_reconstruction_minus_analytic_kl(likelihood):
    model = tiny(likelihood=likelihood)
    videos = squares(3)
    terms = model.elbo_terms(videos)
    mean, scale = (t.numpy().astype(np.float64) for t in model.encode(videos))
    kl = 0.5 * np.sum(mean**2 + scale**2 - 1.0 - 2.0 * np.log(scale), axis=1)
    np.testing.assert_allclose(terms["kl"].numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(
        model.log_prob(videos).numpy(), terms["reconstruction"].numpy() - kl, rtol=1e-5
    )
    # The reconstruction term, rebuilt from the same posterior sample with numpy.
    epsilon = tf.random.stateless_normal([3, 4], tf.constant([0, 2], tf.int64)).numpy()
    parameters = model.decoder_parameters((mean + scale * epsilon).astype("float32"))
    x = videos.astype(np.float64)
    if likelihood == "bernoulli":
        logits = parameters["logits"].numpy().astype(np.float64)
        pixels = stats.bernoulli.logpmf((x > 0).astype(int), 1 / (1 + np.exp(-logits)))
    else:
        pixels = numpy_discretized_logistic(
            x, parameters["mean"].numpy(), np.exp(parameters["log_scale"].numpy().astype(np.float64))
        )
    np.testing.assert_allclose(terms["reconstruction"].numpy(), pixels.sum(axis=(1, 2, 3, 4)), rtol=1e-4)


def test_log_prob_is_deterministic_outside_training_and_seeded_inside():
    model = tiny()
    videos = squares(2)
    first = model.log_prob(videos).numpy()
    np.testing.assert_array_equal(first, model.log_prob(videos).numpy())
    np.testing.assert_array_equal(first, model(videos).numpy())
    other = model.log_prob(videos, seed=tf.constant([5, 5], tf.int64)).numpy()
    assert not np.allclose(first, other)
    # Training draws each step's sample from (training_seed, step).
    model.compile(seed=3)
    step0 = model.log_prob(videos, training=True).numpy()
    np.testing.assert_array_equal(step0, model.log_prob(videos, training=True).numpy())
    model.noise_step.assign(1)
    assert not np.allclose(step0, model.log_prob(videos, training=True).numpy())


def test_bits_per_dim_are_discrete_bounds_of_the_reported_nll():
    model = tiny()
    assert model.log_prob_is_bound is True and model.likelihood_is_discrete is True
    with pytest.raises(ValueError, match="dequantize"):
        model.compile(dequantize=True)
    videos = squares(8)
    model.compile(seed=0)
    result = model.evaluate(videos, batch_size=4, return_dict=True, verbose=0)
    # Each batch of 4 is scored with the inference seed's first 4 posterior draws.
    nll = -float(np.mean([model.log_prob(videos[i : i + 4]).numpy() for i in (0, 4)]))
    assert result["nll"] == pytest.approx(nll, rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(nll / (4 * 8 * 8 * math.log(2)), rel=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [dict(), pytest.param(dict(likelihood="bernoulli"), marks=pytest.mark.large)],
    ids=["discretized_logistic", "bernoulli"],
)
def test_fit_lowers_the_negative_elbo(overrides):
    train = squares(64, seed=0)
    held_out = squares(32, seed=1)
    model = tiny(latent_dim=8, base_filters=8, **overrides)
    before = -float(np.mean(model.log_prob(held_out)))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), seed=0)
    history = model.fit(train, batch_size=16, epochs=6, verbose=0)
    after = -float(np.mean(model.log_prob(held_out)))
    assert history.history["nll"][-1] < 0.5 * history.history["nll"][0]
    assert after < 0.5 * before, (before, after)


def test_bernoulli_scores_binary_frames_only_by_sign():
    model = tiny(likelihood="bernoulli")
    videos = squares(2)
    # Grey levels do not matter to Bernoulli pixels, only whether a pixel is > 0 (and
    # the encoder sees the same input here, so the sample and KL are the same).
    terms = model.elbo_terms(videos)
    parameters = model.decoder_parameters(model.encode(videos)[0])
    assert set(parameters) == {"logits"}
    signs = model.pixel_log_prob(videos, parameters).numpy()
    greys = model.pixel_log_prob(np.where(videos > 0, 0.2, -0.7).astype("float32"), parameters).numpy()
    np.testing.assert_array_equal(signs, greys)
    # A binary pixel costs at most -log sigmoid(-|logit|): finite, and bits/dim are per pixel.
    assert np.all(np.isfinite(terms["reconstruction"].numpy()))
    assert float(model.bits_per_dim(256 * math.log(2))) == pytest.approx(1.0)


def test_per_pixel_log_scale_comes_from_the_decoder():
    model = tiny(logistic_scale="per_pixel", initial_log_scale=-3.0)
    assert not hasattr(model, "log_scale")
    assert model.decoder.output_shape == (None, 4, 8, 8, 2)
    parameters = model.decoder_parameters(tf.random.stateless_normal([2, 4], [0, 1]))
    assert parameters["log_scale"].shape == (2, 4, 8, 8, 1)
    assert len(np.unique(parameters["log_scale"].numpy())) > 1
    channel = tiny(channels=3)
    np.testing.assert_array_equal(channel.log_scale.numpy(), [-2.0, -2.0, -2.0])


# ------------------------------------------------------------- generation


def test_generate_and_reconstruct():
    model = tiny()
    harness.check_generate(model)
    videos = squares(3)
    reconstruction = model.reconstruct(videos)
    assert reconstruction.shape == videos.shape
    mean, _ = model.encode(videos)
    np.testing.assert_array_equal(reconstruction.numpy(), model.decode(mean).numpy())
    # generate(seed) decodes the prior draws of sample_noise([seed, 1]).
    noise = model.sample_noise(2, tf.constant([9, 1], tf.int64))
    np.testing.assert_array_equal(model.generate(2, seed=9).numpy(), model.decode(noise["latent"]).numpy())
    with pytest.raises(ValueError, match="exactly 4 frames"):
        model.generate(2, seed=0, num_frames=6)
    with pytest.raises(ValueError, match="unconditional"):
        model.generate(2, seed=0, labels=[0, 1])


def test_bernoulli_generation_is_the_pixel_mean():
    model = tiny(likelihood="bernoulli")
    latent = tf.random.stateless_normal([2, 4], [1, 2])
    logits = model.decoder_parameters(latent)["logits"]
    np.testing.assert_allclose(
        model.generate_from_noise({"latent": latent}).numpy(), 2 * tf.sigmoid(logits).numpy() - 1, atol=1e-6
    )


# --------------------------------------------------------------- harness


def test_config_and_keras_round_trips(tmp_path):
    model = tiny(likelihood="bernoulli", latent_dim=5)
    harness.check_config_round_trip(model)
    harness.check_fit(model, ["nll", "bits_per_dim"])
    harness.check_keras_round_trip(model, tmp_path)
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    videos = squares(2)
    np.testing.assert_allclose(loaded.log_prob(videos).numpy(), model.log_prob(videos).numpy(), rtol=1e-6)


def test_preset_round_trip(tmp_path):
    model = tiny(logistic_scale="per_pixel")
    harness.check_fit(model, ["nll", "bits_per_dim"])
    vidgen_tf.save_preset(model, tmp_path / "preset", dataset="moving_square", training_steps=2)
    loaded = vidgen_tf.from_preset(tmp_path / "preset")
    videos = squares(2)
    np.testing.assert_allclose(loaded.log_prob(videos).numpy(), model.log_prob(videos).numpy(), rtol=1e-6)


@pytest.mark.large
def test_exports_agree(tmp_path):
    model = tiny()
    harness.check_exports(model, tmp_path)
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "video_vae" / "3"))
    videos = squares(3)
    exported = loaded.signatures["log_prob"](videos=tf.constant(videos))["log_prob"].numpy()
    np.testing.assert_allclose(exported, model.log_prob(videos).numpy(), rtol=1e-5)


def test_zoo_preset_builds_from_its_config():
    model = vidgen_tf.from_preset("video_vae_moving_digits")
    assert model.video_shape == (8, 16, 16, 1)
    assert model.likelihood == "discretized_logistic"
    assert model.generate(1, seed=0).shape == (1, 8, 16, 16, 1)


# ------------------------------------------------------------- bad inputs


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="likelihood"):
        tiny(likelihood="gaussian")
    with pytest.raises(ValueError, match="logistic_scale"):
        tiny(logistic_scale="shared")
    with pytest.raises(ValueError, match="latent_dim"):
        tiny(latent_dim=0)
    with pytest.raises(ValueError, match="base_filters"):
        tiny(base_filters=0)
    with pytest.raises(ValueError, match="initial_log_scale"):
        tiny(initial_log_scale=-9.0)
    with pytest.raises(ValueError, match="num_classes"):
        tiny(num_classes=3)
    with pytest.raises(ValueError, match="height=12"):
        tiny(height=12, width=12)


def test_bad_videos_are_named():
    model = tiny()
    with pytest.raises(ValueError, match=r"expects videos shaped \(batch, 4, 8, 8, 1\)"):
        model.log_prob(np.zeros((2, 4, 16, 16, 1), "float32"))
    with pytest.raises(ValueError, match=r"expects videos shaped \(batch, 4, 8, 8, 1\)"):
        model.log_prob(np.zeros((2, 5, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="dtype"):
        model.encode(np.zeros((2, 4, 8, 8, 1), "uint8"))
    bad = squares(2)
    bad[1, 2, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="videos: expected floats in \\[-1, 1\\], got NaN or Inf"):
        model.log_prob(bad)  # eager: LikelihoodModel.as_float_videos names it
    model.compile(seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model.fit(bad, batch_size=2, verbose=0)
