"""The Kalman VAE: Kalman filter/smoother against TFP, ELBO, training, imputation, generation, exports."""

import math

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness
from vidgen_tf.models import kalman
from vidgen_tf.models.kalman import rts_smoother

TINY = dict(num_frames=6, height=8, width=8, channels=1, base_filters=4, dynamics_units=8)


def tiny(**overrides):
    return vidgen_tf.build("kvae", **{**TINY, **overrides})


def balls(num, seed=0, binary=True, **shape):
    shape = {**dict(num_frames=6, height=8, width=8, channels=1), **shape}
    radius = min(shape["height"], shape["width"]) / 8
    videos = vidgen_tf.data.make_videos("bouncing_balls", num, seed=seed, num_balls=1, radius=max(radius, 1.5),
                                        **shape)
    videos = videos / 127.5 - 1
    return np.where(videos > 0, 1.0, -1.0).astype("float32") if binary else videos.astype("float32")


def tfp_lgssm(model, num_steps, transition_matrices=None, observation_matrices=None):
    """TFP's LGSSM of `model`'s noise, with per-example time-varying matrices when given.

    Our `transition_matrices[:, t]` maps z_{t-1} to z_t; TFP's
    `transition_matrix(t)` maps z_t to z_{t+1}.
    """
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    linop = tf.linalg.LinearOperatorFullMatrix
    n, p = model.state_dim, model.observation_dim
    if transition_matrices is None:
        transition = linop(model.transition_bank[0])
        observation = linop(model.observation_bank[0])
    else:
        last = num_steps - 1

        def transition(t):
            return linop(tf.gather(transition_matrices, tf.minimum(t + 1, last), axis=1))

        def observation(t):
            return linop(tf.gather(observation_matrices, t, axis=1))

    return tfd.LinearGaussianStateSpaceModel(
        num_timesteps=num_steps,
        transition_matrix=transition,
        transition_noise=tfd.MultivariateNormalDiag(scale_diag=tf.fill([n], math.sqrt(model.transition_noise))),
        observation_matrix=observation,
        observation_noise=tfd.MultivariateNormalDiag(scale_diag=tf.fill([p], math.sqrt(model.observation_noise))),
        initial_state_prior=tfd.MultivariateNormalDiag(
            scale_diag=tf.fill([n], math.sqrt(model.initial_state_variance))),
    )


def random_dynamics(model, seed=0):
    """Non-trivial matrices (rotation-like A, random C), so the filter's test is not of identities."""
    rng = np.random.default_rng(seed)
    k, n, p = model.num_dynamics, model.state_dim, model.observation_dim
    banks = np.eye(n)[None] * 0.9 + 0.2 * rng.standard_normal((k, n, n))
    model.transition_bank.assign(banks.astype("float32"))
    model.observation_bank.assign(rng.standard_normal((k, p, n)).astype("float32"))


MASK = np.array([[True, True, False, True, False, False, True],
                 [True, False, False, False, True, True, True],
                 [False, True, True, True, True, True, True]])


# ------------------------------------------------------------- Kalman filter


def test_defaults_are_the_authors_configuration():
    """The LGSSM defaults of simonkamronn/kvae's `kvae/utils/config.py` (dim_a, dim_z, K,
    alpha_units, noise_transition, noise_emission)."""
    model = vidgen_tf.build("kvae", num_frames=4, height=8, width=8, base_filters=4)
    assert (model.observation_dim, model.state_dim, model.num_dynamics) == (2, 4, 3)
    assert model.dynamics_units == 50
    assert model.dynamics_cell.units == 50
    assert (model.transition_noise, model.observation_noise) == (0.08, 0.03)
    # A starts at the identity for every dynamics, as the authors' initialisation.
    np.testing.assert_array_equal(model.transition_bank.numpy(), np.stack([np.eye(4)] * 3))


def own_filter(model, observations, mask=None):
    """The own batched filter (`kalman.switching_filter`) with the model's matrices, for any K."""
    observations = tf.convert_to_tensor(observations, tf.float32)
    if mask is None:
        mask = tf.ones(tf.shape(observations)[:2], tf.bool)
    q, r, p0 = model._covariances()
    return kalman.switching_filter(observations, tf.convert_to_tensor(mask), model._matrices, model._advance_rnn,
                                   model._initial_rnn_state(tf.shape(observations)[0]), q, r, p0)


def test_fixed_dynamics_filter_equals_tfp_lgssm_log_prob_and_log_prob_uses_tfp():
    """The own filter, run on one fixed dynamics, against TFP's LGSSM; the model then uses TFP's."""
    model = tiny(num_dynamics=1, state_dim=3, observation_dim=2)
    random_dynamics(model)
    observations = tf.random.stateless_normal([3, 7, 2], [1, 2])
    reference = tfp_lgssm(model, 7)
    ours = own_filter(model, observations)
    np.testing.assert_allclose(ours["log_likelihood"].numpy(), reference.log_prob(observations).numpy(),
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(model.dynamics_log_prob(observations).numpy(),
                                  reference.log_prob(observations).numpy())
    # Missing observations: TFP's mask is True where *missing*, ours where observed.
    masked = own_filter(model, observations, MASK)["log_likelihood"].numpy()
    np.testing.assert_allclose(masked, reference.log_prob(observations, mask=~MASK).numpy(), rtol=1e-5, atol=1e-3)
    _, filtered_means, filtered_covs, predicted_means, _, _, _ = reference.forward_filter(observations, mask=~MASK)
    masked = own_filter(model, observations, MASK)
    np.testing.assert_allclose(masked["filtered_means"].numpy(), filtered_means.numpy(), atol=2e-4)
    np.testing.assert_allclose(masked["filtered_covs"].numpy(), filtered_covs.numpy(), atol=2e-4)
    # TFP's predicted_means[t] is p(z_{t+1} | a_1..a_t); ours is indexed by the predicted step.
    np.testing.assert_allclose(masked["predicted_means"].numpy()[:, 1:], predicted_means.numpy()[:, :-1], atol=2e-4)
    # With K = 1 the model's filter and smoother are TFP's, in the own filter's layout.
    tfp_layout = model.filter(observations, MASK)
    assert set(tfp_layout) == set(masked)
    for key in masked:
        np.testing.assert_allclose(tfp_layout[key].numpy(), masked[key].numpy(), atol=3e-4, err_msg=key)
    smoothed = model.smooth(observations, MASK)
    ref_means, ref_covs = reference.posterior_marginals(observations, mask=~MASK)
    np.testing.assert_array_equal(smoothed["means"].numpy(), ref_means.numpy())
    np.testing.assert_array_equal(smoothed["covs"].numpy(), ref_covs.numpy())
    own_means, _ = rts_smoother(masked["filtered_means"], masked["filtered_covs"], masked["predicted_means"],
                                masked["predicted_covs"], masked["transition_matrices"])
    np.testing.assert_allclose(smoothed["means"].numpy(), own_means.numpy(), atol=5e-4)


def test_switching_filter_equals_tfp_given_the_same_time_varying_matrices():
    model = tiny(num_dynamics=3, state_dim=4, observation_dim=2)
    random_dynamics(model, seed=1)
    observations = tf.random.stateless_normal([3, 7, 2], [3, 4])
    ours = model.filter(observations, MASK)
    # The LSTM's weights vary over time and across the batch.
    assert np.std(ours["transition_matrices"].numpy()[:, 1:], axis=(0, 1)).max() > 1e-3
    reference = tfp_lgssm(model, 7, ours["transition_matrices"], ours["observation_matrices"])
    np.testing.assert_allclose(ours["log_likelihood"].numpy(),
                               reference.log_prob(observations, mask=~MASK).numpy(), rtol=1e-5, atol=1e-3)
    # ...and the RTS smoother equals TFP's posterior marginals with the same mask.
    means, covs = rts_smoother(ours["filtered_means"], ours["filtered_covs"], ours["predicted_means"],
                               ours["predicted_covs"], ours["transition_matrices"])
    ref_means, ref_covs = reference.posterior_marginals(observations, mask=~MASK)
    np.testing.assert_allclose(means.numpy(), ref_means.numpy(), atol=5e-4)
    np.testing.assert_allclose(covs.numpy(), ref_covs.numpy(), atol=5e-4)
    # All-observed filtering is what log_prob scores.
    np.testing.assert_allclose(model.dynamics_log_prob(observations).numpy(),
                               model.filter(observations)["log_likelihood"].numpy())


def test_missing_steps_rnn_reads_the_prediction():
    """A missing a_t is replaced, for the LSTM, by its prediction C_t E[z_t | a_<t]: the
    matrices after a gap are those of a filter that saw the predicted value."""
    model = tiny()
    random_dynamics(model, seed=2)
    observations = tf.random.stateless_normal([1, 4, 2], [5, 6]).numpy()
    mask = np.array([[True, False, True, True]])
    gapped = model.filter(observations, mask)
    predicted = tf.linalg.matvec(gapped["observation_matrices"][:, 1], gapped["predicted_means"][:, 1]).numpy()
    filled = observations.copy()
    filled[:, 1] = predicted
    full = model.filter(filled, mask)
    np.testing.assert_allclose(full["transition_matrices"].numpy(), gapped["transition_matrices"].numpy())
    other = observations.copy()
    other[:, 1] += 5.0  # the missing value itself is never read
    np.testing.assert_allclose(model.filter(other, mask)["log_likelihood"].numpy(),
                               gapped["log_likelihood"].numpy(), rtol=1e-6)


# ------------------------------------------------------------------- ELBO


def test_log_prob_is_the_sum_of_the_three_elbo_terms():
    model = tiny()
    videos = balls(3)
    terms = model.elbo_terms(videos)
    np.testing.assert_allclose(model.log_prob(videos).numpy(),
                               (terms["reconstruction"] + terms["entropy"] + terms["dynamics"]).numpy(), rtol=1e-6)
    # -log q(a | x) at the inference sample, rebuilt from the encoder's Gaussian.
    mean, scale = (t.numpy().astype(np.float64) for t in model.encode(videos))
    epsilon = tf.random.stateless_normal([3, 6, 2], tf.constant([0, 2], tf.int64)).numpy()
    a = mean + scale * epsilon
    log_q = np.sum(-0.5 * ((a - mean) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi), axis=(1, 2))
    np.testing.assert_allclose(terms["entropy"].numpy(), -log_q, rtol=1e-4)
    np.testing.assert_allclose(terms["dynamics"].numpy(),
                               model.filter(a.astype("float32"))["log_likelihood"].numpy(), rtol=1e-5)
    assert model.log_prob_is_bound is True and model.likelihood_is_discrete is True


def test_log_prob_is_deterministic_outside_training_and_seeded_inside():
    model = tiny()
    videos = balls(2)
    first = model.log_prob(videos).numpy()
    np.testing.assert_array_equal(first, model(videos).numpy())
    assert not np.allclose(first, model.log_prob(videos, seed=tf.constant([5, 5], tf.int64)).numpy())
    model.compile(seed=3)
    step0 = model.log_prob(videos, training=True).numpy()
    np.testing.assert_array_equal(step0, model.log_prob(videos, training=True).numpy())
    model.noise_step.assign(1)
    assert not np.allclose(step0, model.log_prob(videos, training=True).numpy())
    with pytest.raises(ValueError, match="dequantize"):
        model.compile(dequantize=True)
    # Any length is scored.
    assert model.log_prob(balls(2, num_frames=9)).shape == (2,)


def test_discretized_logistic_pixels_for_8_bit_data():
    model = tiny(likelihood="discretized_logistic")
    videos = balls(2, binary=False)
    assert set(model.decoder_parameters(tf.zeros([2, 6, 2]))) == {"mean", "log_scale"}
    assert np.all(np.isfinite(model.log_prob(videos).numpy()))
    harness.check_fit(model, ["nll", "bits_per_dim"])


def test_fit_lowers_the_negative_elbo():
    train, held_out = balls(64, seed=0), balls(16, seed=1)
    tf.keras.utils.set_random_seed(0)
    model = tiny(base_filters=8)
    before = -float(np.mean(model.log_prob(held_out)))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), seed=0)
    history = model.fit(train, batch_size=16, epochs=4, verbose=0)
    after = -float(np.mean(model.log_prob(held_out)))
    print(f"negative ELBO: held-out {before:.1f} -> {after:.1f}; train epochs {history.history['nll']}")
    assert history.history["nll"][-1] < 0.8 * history.history["nll"][0]
    assert after < 0.7 * before, (before, after)


def test_dynamics_warmup_holds_the_lstm_then_trains_it():
    """compile(dynamics_warmup_steps=2): the authors' first phase (the VAE and the matrices
    train, the LSTM and its mixture weights do not), then every weight trains."""
    model = tiny()
    model.compile(optimizer="adam", seed=0, dynamics_warmup_steps=2)
    videos = balls(8)
    mixture = model.dynamics_cell.trainable_weights + model.dynamics_weights.trainable_weights

    def values(weights):
        return [w.numpy().copy() for w in weights]

    start, banks, encoder = values(mixture), values([model.transition_bank]), values(model.encoder.weights)
    model.fit(videos, batch_size=4, epochs=1, shuffle=False, verbose=0)  # steps 0 and 1
    for before, after in zip(start, values(mixture)):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(banks[0], model.transition_bank.numpy())
    assert any(not np.array_equal(b, a) for b, a in zip(encoder, values(model.encoder.weights)))
    model.fit(videos, batch_size=4, epochs=1, shuffle=False, verbose=0)  # steps 2 and 3
    assert all(not np.array_equal(b, a) for b, a in zip(start, values(mixture)))
    with pytest.raises(ValueError, match="dynamics_warmup_steps"):
        model.compile(dynamics_warmup_steps=-1)


# ----------------------------------------------- prediction and imputation


def test_predict_and_impute_shapes_and_observed_frames():
    model = tiny()
    videos = balls(2, num_frames=6)
    assert model.predict_frames(videos[:, :3], 5).shape == (2, 5, 8, 8, 1)
    # predict is the decoded rolled-forward filter of the prefix's codes.
    mean, _ = model.encode(videos[:, :3])
    filtered = model.filter(tf.concat([mean, tf.zeros([2, 2, 2])], 1),
                            np.array([[True] * 3 + [False] * 2] * 2))
    codes = tf.linalg.matvec(filtered["observation_matrices"], filtered["filtered_means"])[:, 3:]
    np.testing.assert_allclose(model.predict_frames(videos[:, :3], 2).numpy(), model.decode(codes).numpy(), atol=1e-6)
    mask = np.array([[True, True, False, False, True, True], [True, False, True, False, True, False]])
    imputed = model.impute(videos, mask).numpy()
    assert imputed.shape == videos.shape
    np.testing.assert_array_equal(imputed[mask], videos[mask])
    assert np.all(np.abs(imputed) <= 1.0)


def test_fixed_dynamics_prediction_rolls_the_last_filtered_state_forward():
    """With K = 1 (TFP's filter), the frames after a prefix decode C A^j E[z_P | a_1..a_P]."""
    model = tiny(num_dynamics=1)
    random_dynamics(model, seed=4)
    videos = balls(2, num_frames=6)
    mean, _ = model.encode(videos[:, :3])
    last = own_filter(model, mean)["filtered_means"][:, -1].numpy()  # (B, n)
    a, c = model.transition_bank[0].numpy(), model.observation_bank[0].numpy()
    codes = np.stack([last @ np.linalg.matrix_power(a, j).T @ c.T for j in (1, 2, 3)], axis=1)
    np.testing.assert_allclose(model.predict_frames(videos[:, :3], 3).numpy(),
                               model.decode(codes.astype("float32")).numpy(), atol=1e-4)


def test_keras_predict_is_not_shadowed():
    """`predict` is Keras's (batch_size as its second argument, `call` per batch, a Dataset in):
    the frame continuation is `predict_frames`."""
    model = tiny()
    videos = balls(4, num_frames=6)
    # One batch of 4: the inference posterior sample is drawn per batch, so a
    # video's one-sample ELBO depends on its place in the batch.
    expected = model.log_prob(videos).numpy()
    np.testing.assert_allclose(model.predict(videos, 4, verbose=0), expected, rtol=1e-5, atol=1e-3)
    dataset = tf.data.Dataset.from_tensor_slices(videos).batch(4)
    np.testing.assert_allclose(model.predict(dataset, verbose=0), expected, rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------- generation


def test_generate_any_length_and_from_noise():
    model = tiny()
    harness.check_generate(model, num_frames_options=(3, 11))
    noise = model.sample_noise(2, tf.constant([9, 1], tf.int64), num_frames=5)
    np.testing.assert_array_equal(model.generate(2, seed=9, num_frames=5).numpy(),
                                  model.generate_from_noise(noise).numpy())
    # The sample is the LGSSM's: with zero observation noise a_t = C_t z_t exactly.
    fixed = tiny(num_dynamics=1)
    random_dynamics(fixed)
    noise = fixed.sample_noise(1, tf.constant([1, 1], tf.int64), num_frames=3)
    noise["observation_noise"] = tf.zeros_like(noise["observation_noise"])
    e = noise["state_noise"].numpy()[0]
    a_matrix, c_matrix = fixed.transition_bank.numpy()[0], fixed.observation_bank.numpy()[0]
    z = [math.sqrt(fixed.initial_state_variance) * e[0]]
    for t in (1, 2):
        z.append(a_matrix @ z[-1] + math.sqrt(fixed.transition_noise) * e[t])
    np.testing.assert_allclose(fixed.sample_observations(noise).numpy()[0], np.stack(z) @ c_matrix.T, atol=1e-5)
    with pytest.raises(ValueError, match="unconditional"):
        model.generate(2, seed=0, labels=[0, 1])


# --------------------------------------------------------------- harness


@pytest.mark.parametrize("num_dynamics", [3, 1])
def test_config_fit_and_keras_round_trips(tmp_path, num_dynamics):
    model = tiny(num_dynamics=num_dynamics, state_dim=3)
    harness.check_config_round_trip(model)
    harness.check_fit(model, ["nll", "bits_per_dim"])
    harness.check_keras_round_trip(model, tmp_path)
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    videos = balls(2)
    np.testing.assert_allclose(loaded.log_prob(videos).numpy(), model.log_prob(videos).numpy(), rtol=1e-6)
    mask = np.array([[True, False, False, True, True, True]] * 2)
    np.testing.assert_allclose(loaded.impute(videos, mask).numpy(), model.impute(videos, mask).numpy(), atol=1e-6)


def test_preset_round_trip_and_zoo_preset(tmp_path):
    model = tiny()
    harness.check_fit(model, ["nll"])
    vidgen_tf.save_preset(model, tmp_path / "preset", dataset="bouncing_balls", training_steps=2)
    loaded = vidgen_tf.from_preset(tmp_path / "preset")
    videos = balls(2)
    np.testing.assert_allclose(loaded.log_prob(videos).numpy(), model.log_prob(videos).numpy(), rtol=1e-6)
    assert "kvae_bouncing_balls" in vidgen_tf.list_presets()
    zoo = vidgen_tf.from_preset("kvae_bouncing_balls")
    assert zoo.registered_name == "kvae" and zoo.generate(1, seed=0, num_frames=4).shape[:2] == (1, 4)
    # The shipped weights impute: held-out videos of the model card, frames 4-7 missing.
    test = balls(32, seed=1, binary=False, num_frames=12, height=16, width=16)
    mask = np.ones((32, 12), bool)
    mask[:, 4:8] = False
    mse = np.mean((zoo.impute(test, mask).numpy()[:, 4:8] - test[:, 4:8]) ** 2)
    assert mse < 0.5 * np.mean((test[:, 3:4] - test[:, 4:8]) ** 2)


@pytest.mark.large
def test_exports_agree(tmp_path):
    model = tiny()
    report = harness.check_exports(model, tmp_path)
    print(f"ONNX parity: float {report['max_abs_diff_float']:.3g}, uint8 {report['max_abs_diff_uint8']}")
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "kvae" / "3"))
    videos = balls(3, num_frames=7)  # the log_prob signature takes any length
    exported = loaded.signatures["log_prob"](videos=tf.constant(videos))["log_prob"].numpy()
    np.testing.assert_allclose(exported, model.log_prob(videos).numpy(), rtol=1e-5)


# ------------------------------------------------------------- bad inputs


def test_bad_configurations_are_named():
    for name, value in [("observation_dim", 0), ("state_dim", 0), ("num_dynamics", 0),
                        ("dynamics_units", 0), ("base_filters", 0)]:
        with pytest.raises(ValueError, match=name):
            tiny(**{name: value})
    with pytest.raises(ValueError, match="likelihood"):
        tiny(likelihood="gaussian")
    for name in ("transition_noise", "observation_noise", "initial_state_variance"):
        with pytest.raises(ValueError, match=name):
            tiny(**{name: 0.0})
    with pytest.raises(ValueError, match="num_classes"):
        tiny(num_classes=3)
    with pytest.raises(ValueError, match="height=12"):
        tiny(height=12, width=12)
    with pytest.raises(ValueError, match="num_dynamics=1"):
        tiny().state_space_model(4)


def test_bad_videos_and_masks_are_named():
    model = tiny()
    with pytest.raises(ValueError, match=r"expects videos shaped \(batch, 6, 8, 8, 1\)"):
        model.log_prob(np.zeros((2, 6, 16, 16, 1), "float32"))
    with pytest.raises(ValueError, match="dtype"):
        model.encode(np.zeros((2, 6, 8, 8, 1), "uint8"))
    bad = balls(2)
    bad[1, 2, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"videos: expected floats in \[-1, 1\], got NaN or Inf"):
        model.log_prob(bad)  # eager: LikelihoodModel.as_float_videos names it
    videos = balls(2)
    with pytest.raises(ValueError, match="`mask` must be bool"):
        model.impute(videos, np.ones((2, 6), "int32"))
    with pytest.raises(ValueError, match=r"`mask` must be shaped \(batch, time\)"):
        model.impute(videos, np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="num_frames"):
        model.predict_frames(videos[:, :3], 0)


# ----------------------------------------------------------- it learns


@pytest.mark.large
def test_imputing_missing_middle_frames_beats_repeating_the_last_seen_frame():
    """One bouncing ball, 16x16, 12 frames; frames 4-7 missing. After a short run the
    smoothed LGSSM codes put the ball back: lower MSE than repeating frame 3, and also
    lower than blank frames (which already beat repeating on a moving ball)."""
    shape = dict(num_frames=12, height=16, width=16, channels=1)
    train = balls(1024, seed=0, **shape)
    test = balls(128, seed=1, **shape)
    tf.keras.utils.set_random_seed(0)
    model = vidgen_tf.build("kvae", base_filters=8, **shape)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), seed=0)
    model.fit(train, batch_size=32, epochs=8, verbose=0, shuffle=True)
    mask = np.ones((len(test), 12), bool)
    mask[:, 4:8] = False
    imputed = model.impute(test, mask).numpy()
    mse = float(np.mean((imputed[:, 4:8] - test[:, 4:8]) ** 2))
    last_seen = float(np.mean((test[:, 3:4] - test[:, 4:8]) ** 2))
    blank = float(np.mean((-1.0 - test[:, 4:8]) ** 2))
    print(f"imputation MSE {mse:.4f}, last seen frame {last_seen:.4f}, blank {blank:.4f}")
    assert mse < 0.75 * last_seen, (mse, last_seen)
    assert mse < blank, (mse, blank)
