"""The hidden Markov model: exact likelihood, EM, recovery, sampling, exports, distribution."""

import itertools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from scipy.optimize import linear_sum_assignment

import vidgen_tf
from tests import model_harness as harness

TINY = dict(num_frames=5, height=2, width=2, channels=1, num_states=3)


def tiny(**overrides):
    return vidgen_tf.build("hmm", **{**TINY, **overrides})


def random_parameters(rng, num_states, features, emission="gaussian"):
    params = {
        "initial_probs": rng.dirichlet(np.ones(num_states)),
        "transition_probs": rng.dirichlet(np.ones(num_states), size=num_states),
    }
    if emission == "gaussian":
        params["means"] = rng.normal(0, 0.7, (num_states, features))
        params["scales"] = rng.uniform(0.3, 0.8, (num_states, features))
    else:
        params["probs"] = rng.uniform(0.1, 0.9, (num_states, features))
    return params


def log_emission(x, params):
    """log p(x | state k) for frames x `(..., E)` -> `(..., K)` with scipy."""
    if "means" in params:
        return stats.norm.logpdf(x[..., None, :], params["means"], params["scales"]).sum(-1)
    return stats.bernoulli.logpmf(x[..., None, :], params["probs"]).sum(-1)


def numpy_forward(observations, params):
    """The scaled forward algorithm (Rabiner 1989, eq. 92), one sequence at a time."""
    result = []
    for sequence in observations:
        logb = log_emission(sequence, params)  # (T, K)
        shift = logb.max(axis=1, keepdims=True)
        b = np.exp(logb - shift)
        alpha = params["initial_probs"] * b[0]
        total = np.log(alpha.sum()) + shift[0, 0]
        alpha /= alpha.sum()
        for t in range(1, len(sequence)):
            alpha = (alpha @ params["transition_probs"]) * b[t]
            total += np.log(alpha.sum()) + shift[t, 0]
            alpha /= alpha.sum()
        result.append(total)
    return np.array(result)


def path_log_probs(sequence, params):
    """log p(z, x) of every state path z of one sequence, by enumeration."""
    logb = log_emission(sequence, params)
    num_states = len(params["initial_probs"])
    paths = list(itertools.product(range(num_states), repeat=len(sequence)))
    values = []
    for path in paths:
        value = np.log(params["initial_probs"][path[0]]) + logb[0, path[0]]
        for t in range(1, len(path)):
            value += np.log(params["transition_probs"][path[t - 1], path[t]]) + logb[t, path[t]]
        values.append(value)
    return np.array(paths), np.array(values)


def sample_hmm(rng, params, num, steps):
    """Videos drawn in numpy from a Gaussian HMM: (states (N, T), observations (N, T, E))."""
    num_states = len(params["initial_probs"])
    states = np.empty((num, steps), int)
    states[:, 0] = rng.choice(num_states, size=num, p=params["initial_probs"])
    for t in range(1, steps):
        for n in range(num):
            states[n, t] = rng.choice(num_states, p=params["transition_probs"][states[n, t - 1]])
    observations = params["means"][states] + params["scales"][states] * rng.standard_normal(
        states.shape + (params["means"].shape[1],)
    )
    return states, observations


# ------------------------------------------------------------- likelihood


@pytest.mark.parametrize("emission", ["gaussian", "bernoulli"])
def test_log_prob_equals_a_numpy_forward_algorithm(emission):
    rng = np.random.default_rng(0)
    model = tiny(emission=emission, num_frames=6)
    params = random_parameters(rng, 3, 4, emission)
    model.set_parameters(**params)
    videos = rng.uniform(-1, 1, (4, 6, 2, 2, 1)).astype("float32")
    observations = videos.reshape(4, 6, 4).astype(np.float64)
    if emission == "bernoulli":
        observations = (observations > 0).astype(np.float64)
    np.testing.assert_allclose(model.log_prob(videos).numpy(), numpy_forward(observations, params), rtol=1e-5)


@pytest.mark.parametrize("emission", ["gaussian", "bernoulli"])
def test_log_prob_and_posteriors_equal_brute_force_enumeration(emission):
    rng = np.random.default_rng(1)
    model = tiny(emission=emission, num_frames=4)
    params = random_parameters(rng, 3, 4, emission)
    model.set_parameters(**params)
    videos = rng.uniform(-1, 1, (2, 4, 2, 2, 1)).astype("float32")
    log_prob = model.log_prob(videos).numpy()
    modes = model.posterior_mode(videos).numpy()
    marginals = model.posterior_marginals(videos).numpy()
    assert marginals.shape == (2, 4, 3)
    for n in range(2):
        sequence = videos[n].reshape(4, 4).astype(np.float64)
        if emission == "bernoulli":
            sequence = (sequence > 0).astype(np.float64)
        paths, joint = path_log_probs(sequence, params)  # 81 paths
        total = np.logaddexp.reduce(joint)
        assert log_prob[n] == pytest.approx(total, rel=1e-5)
        np.testing.assert_array_equal(modes[n], paths[np.argmax(joint)])
        weights = np.exp(joint - total)
        for t in range(4):
            expected = np.bincount(paths[:, t], weights=weights, minlength=3)
            np.testing.assert_allclose(marginals[n, t], expected, atol=1e-5)


def test_any_length_is_scored_and_length_one_is_the_initial_mixture():
    rng = np.random.default_rng(2)
    model = tiny()
    params = random_parameters(rng, 3, 4)
    model.set_parameters(**params)
    one = rng.uniform(-1, 1, (3, 1, 2, 2, 1)).astype("float32")
    expected = np.logaddexp.reduce(np.log(params["initial_probs"]) + log_emission(one.reshape(3, 4), params), axis=1)
    np.testing.assert_allclose(model.log_prob(one).numpy(), expected, rtol=1e-5)
    assert model.log_prob(np.zeros((2, 11, 2, 2, 1), "float32")).shape == (2,)


def test_shared_scale_is_one_vector_for_every_state():
    model = tiny(scale="shared")
    assert model.emission_scale_raw.shape == (1, 4)
    scales = model.emission_scales().numpy()
    np.testing.assert_array_equal(scales, np.broadcast_to(scales[:1], (3, 4)))
    assert np.all(scales > model.min_scale)


# ------------------------------------------------------------------- EM


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(scale="shared"), dict(emission="bernoulli"), dict(feature_dim=3, height=4, width=4)],
    ids=["gaussian", "shared", "bernoulli", "pca"],
)
def test_em_never_decreases_the_likelihood(overrides):
    model = tiny(num_states=4, **overrides)
    rng = np.random.default_rng(3)
    # Data with structure but not from any 4-state HMM, so EM has work to do.
    base = rng.uniform(-1, 1, (40, 1, model.height, model.width, 1))
    videos = np.clip(base + 0.3 * rng.standard_normal((40, 5, model.height, model.width, 1)), -1, 1)
    videos = videos.astype("float32")
    history = model.fit_em(videos, iterations=15, tol=0.0)
    assert len(history) == 16
    steps = np.diff(history)
    assert np.all(steps >= -1e-9 * np.abs(history[1:])), steps
    assert history[-1] > history[0]
    # The history's last value is the fitted model's likelihood.
    assert float(tf.reduce_mean(model.log_prob(videos))) == pytest.approx(history[-1], rel=1e-5, abs=1e-3)


def test_em_stops_at_tolerance_and_fits_the_projection():
    model = tiny(feature_dim=2, height=4, width=4)
    videos = np.random.default_rng(4).uniform(-1, 1, (20, 5, 4, 4, 1)).astype("float32")
    history = model.fit_em(videos, iterations=200, tol=1e-2)
    assert len(history) < 201 and history[-1] - history[-2] < 1e-2
    assert int(model.projection_fitted.numpy()) == 1
    components = model.projection_components.numpy()
    np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-5)  # orthonormal rows
    np.testing.assert_allclose(model.projection_mean.numpy(), videos.reshape(-1, 16).mean(0), atol=1e-5)
    assert model.likelihood_space == "pca_features"
    assert tiny().likelihood_space == "pixels"


def test_em_recovers_a_known_hmm_and_its_held_out_likelihood():
    rng = np.random.default_rng(5)
    truth = {
        "initial_probs": np.array([0.6, 0.3, 0.1]),
        "transition_probs": np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7]]),
        "means": rng.choice([-0.6, 0.6], size=(3, 16)),
        "scales": rng.uniform(0.3, 0.6, (3, 16)),
    }
    _, train = sample_hmm(rng, truth, 300, 10)
    _, test = sample_hmm(rng, truth, 300, 10)
    # Videos are scored in [-1, 1] (`as_float_videos` refuses floats beyond): the samples, up to
    # |x| ~ 2.8, are divided by 4, which divides the means and scales by 4 and moves every
    # video's log-likelihood by D * T * log(4) (D = 16 pixels, T = 10 frames), for both models.
    scale, shift = 4.0, 16 * 10 * np.log(4.0)
    to_video = lambda x: (x / scale).reshape(len(x), 10, 4, 4, 1).astype("float32")  # noqa: E731
    assert np.abs(to_video(train)).max() <= 1 and np.abs(to_video(test)).max() <= 1
    model = vidgen_tf.build("hmm", num_frames=10, height=4, width=4, channels=1, num_states=3)
    model.fit_em(to_video(train), iterations=100, tol=1e-4)
    true_model = vidgen_tf.build("hmm", num_frames=10, height=4, width=4, channels=1, num_states=3)
    true_model.set_parameters(**dict(truth, means=truth["means"] / scale, scales=truth["scales"] / scale))

    # The NLLs of the unscaled data: positive, so "within 2%" means something.
    fitted_nll = -float(tf.reduce_mean(model.log_prob(to_video(test)))) + shift
    true_nll = -float(tf.reduce_mean(true_model.log_prob(to_video(test)))) + shift
    assert true_nll > 100
    assert abs(fitted_nll - true_nll) < 0.02 * true_nll, (fitted_nll, true_nll)

    fitted = dict(model.parameters())
    fitted["means"], fitted["scales"] = fitted["means"] * scale, fitted["scales"] * scale
    cost = ((fitted["means"][:, None] - truth["means"][None]) ** 2).sum(-1)
    rows, order = linear_sum_assignment(cost)  # fitted state rows[i] is true state order[i]
    perm = np.empty(3, int)
    perm[order] = rows  # true state k is fitted state perm[k]
    np.testing.assert_allclose(fitted["means"][perm], truth["means"], atol=0.06)
    np.testing.assert_allclose(fitted["scales"][perm], truth["scales"], atol=0.06)
    # Averaged over the 48 scales the estimate is unbiased to about 0.3% (one standard error).
    assert np.mean(fitted["scales"][perm] / truth["scales"]) == pytest.approx(1.0, abs=0.015)
    np.testing.assert_allclose(fitted["transition_probs"][np.ix_(perm, perm)], truth["transition_probs"], atol=0.05)
    np.testing.assert_allclose(fitted["initial_probs"][perm], truth["initial_probs"], atol=0.08)


# --------------------------------------------------------------- gradient


def test_gradient_fit_lowers_the_nll():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(6)
    truth = random_parameters(rng, 3, 4)
    _, observations = sample_hmm(rng, truth, 64, 5)
    data = tf.data.Dataset.from_tensor_slices(observations.reshape(64, 5, 2, 2, 1).astype("float32")).batch(16)
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(0.05), seed=0)
    before = model.evaluate(data, verbose=0, return_dict=True)["nll"]
    history = model.fit(data, epochs=10, verbose=0).history
    after = model.evaluate(data, verbose=0, return_dict=True)["nll"]
    assert after < before - 5.0, (before, after)
    assert history["nll"][-1] < history["nll"][0]
    assert history["bits_per_dim"][-1] == pytest.approx(
        float(model.bits_per_dim(history["nll"][-1])), rel=1e-5
    )


def test_bernoulli_bits_per_dim_have_no_correction():
    model = tiny(emission="bernoulli")
    model.compile(seed=0)
    assert model.likelihood_is_discrete
    assert float(model.bits_per_dim(20 * np.log(2))) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="discrete"):
        model.compile(dequantize=True)


def test_mirrored_strategy_matches_one_device():
    """Two replicas with global batch 8 (4 each) make the same update as one
    device with batch 8, dequantisation noise included: weights agree to 1e-6."""
    videos = np.random.default_rng(7).uniform(-1, 1, (16, 5, 2, 2, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    start = tiny().get_weights()

    def run(strategy):
        with strategy.scope():
            model = tiny()
            model.set_weights(start)
            # XLA off on both sides (on one replica it is the HMM's default):
            # this compares replicas, not compilers.
            model.compile(optimizer=keras.optimizers.SGD(0.05), dequantize=True, seed=3, jit_compile=False)
        data = tf.data.Dataset.from_tensor_slices(videos).batch(8)
        history = model.fit(data, epochs=1, verbose=0).history
        return model, history

    one, one_history = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    # Reduction through one device: collective all-reduce keys collide with the
    # other MirroredStrategy instances this pytest process made in earlier tests
    # ('Shape mismatch in the collective instance'); the sums are the same.
    two, two_history = run(tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()))
    assert int(two.noise_step.numpy()) == int(one.noise_step.numpy()) == 2
    for a, b, variable in zip(one.get_weights(), two.get_weights(), one.weights):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=variable.path)
    assert not np.allclose(one.get_weights()[2], start[2])  # the step moved the means
    assert two_history["nll"][0] == pytest.approx(one_history["nll"][0], rel=1e-6)


def test_mixed_precision_keeps_float32_likelihood():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny()
        history = harness.check_fit(model, ["nll", "bits_per_dim"])
        assert model.emission_loc.dtype == "float32"
        assert model.log_prob(np.zeros((2, 5, 2, 2, 1), "float32")).dtype == tf.float32
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert np.isfinite(history.history["nll"][-1])
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------- sampling


def test_generate_any_length_deterministically():
    model = tiny(height=4, width=4)
    harness.check_generate(model, num_frames_options=(1, 2, 9))


def test_samples_follow_the_chain():
    """Near-deterministic emissions let Viterbi read back the sampled states,
    whose counts must match the initial and transition probabilities."""
    model = vidgen_tf.build("hmm", num_frames=30, height=2, width=2, channels=1, num_states=3,
                            emission="bernoulli")
    truth = {
        "initial_probs": np.array([0.5, 0.3, 0.2]),
        "transition_probs": np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]]),
        "probs": np.array([[0.999] * 2 + [0.001] * 2, [0.001] * 2 + [0.999] * 2, [0.999] * 4]),
    }
    model.set_parameters(**truth)
    videos = model.generate(400, seed=0)
    assert set(np.unique(videos.numpy())) == {-1.0, 1.0}
    states = model.posterior_mode(videos).numpy()
    np.testing.assert_allclose(np.bincount(states[:, 0], minlength=3) / 400, truth["initial_probs"], atol=0.06)
    counts = np.zeros((3, 3))
    np.add.at(counts, (states[:, :-1].ravel(), states[:, 1:].ravel()), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), truth["transition_probs"], atol=0.03)


def test_gaussian_samples_use_means_and_scales():
    model = tiny(num_states=1, num_frames=50)
    model.set_parameters([1.0], [[1.0]], means=[[0.1, -0.2, 0.3, 0.0]], scales=[[0.05, 0.1, 0.2, 0.1]])
    frames = model.generate(200, seed=1).numpy().reshape(-1, 4)
    np.testing.assert_allclose(frames.mean(0), [0.1, -0.2, 0.3, 0.0], atol=0.01)
    np.testing.assert_allclose(frames.std(0), [0.05, 0.1, 0.2, 0.1], rtol=0.05)


# ------------------------------------------------------ contract and exports


def test_config_and_keras_round_trips(tmp_path):
    model = tiny(feature_dim=3, height=4, width=4, scale="shared", min_scale=0.05)
    model.fit_projection(np.random.default_rng(8).uniform(-1, 1, (4, 5, 4, 4, 1)).astype("float32"))
    harness.check_config_round_trip(model)
    harness.check_keras_round_trip(model, tmp_path)
    loaded = keras.models.load_model(tmp_path / "model.keras")
    videos = np.random.default_rng(9).uniform(-1, 1, (2, 7, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(loaded.log_prob(videos).numpy(), model.log_prob(videos).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(loaded.projection_components.numpy(), model.projection_components.numpy())


def test_preset_round_trip(tmp_path):
    model = tiny(emission="bernoulli")
    model.compile(seed=0)
    harness.check_fit(model, ["nll", "bits_per_dim"])
    vidgen_tf.save_preset(model, tmp_path / "preset", dataset="random", training_steps=2)
    loaded = vidgen_tf.from_preset(tmp_path / "preset")
    videos = model.generate(3, seed=2)
    np.testing.assert_allclose(loaded.log_prob(videos).numpy(), model.log_prob(videos).numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [dict(), pytest.param(dict(emission="bernoulli"), marks=pytest.mark.large),
     pytest.param(dict(feature_dim=3), marks=pytest.mark.large)],
    ids=["gaussian", "bernoulli", "pca"],
)
def test_exports_agree(tmp_path, overrides):
    model = tiny(height=4, width=4, **overrides)
    version_dir = vidgen_tf.export_savedmodel(model, tmp_path / "serving", version=3)
    loaded = tf.saved_model.load(str(version_dir))
    assert set(loaded.signatures) == {"serving_default", "generate", "log_prob", "log_prob_uint8",
                                      "initial_state", "generate_chunk"}

    noise = {k: v.numpy() for k, v in harness.fixed_noise(model).items()}
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in noise.items()})["video"]
    expected = vidgen_tf.exporting.to_uint8_video(harness.outputs(model)).numpy()
    np.testing.assert_array_equal(served.numpy(), expected)

    generated = loaded.signatures["generate"](
        batch_size=tf.constant(2), seed=tf.constant(5, tf.int64), num_frames=tf.constant(7)
    )["video"].numpy()
    reference = vidgen_tf.exporting.to_uint8_video(model.generate(2, seed=5, num_frames=7)).numpy()
    np.testing.assert_array_equal(generated, reference)

    videos = model.generate(3, seed=4, num_frames=6)
    exported = loaded.signatures["log_prob"](videos=videos)["log_prob"].numpy()
    np.testing.assert_allclose(exported, model.log_prob(videos).numpy(), rtol=1e-6)

    vidgen_tf.export_onnx(model, tmp_path / "model.onnx", savedmodel_dir=version_dir)
    report = json.loads((tmp_path / "model.onnx.parity.json").read_text())
    assert report["max_abs_diff_float"] <= 1e-5 and report["max_abs_diff_uint8"] == 0


# ------------------------------------------------------------- bad inputs


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="num_states"):
        tiny(num_states=0)
    with pytest.raises(ValueError, match="emission"):
        tiny(emission="poisson")
    with pytest.raises(ValueError, match="scale"):
        tiny(scale="full")
    with pytest.raises(ValueError, match="feature_dim"):
        tiny(emission="bernoulli", feature_dim=2)
    with pytest.raises(ValueError, match="feature_dim"):
        tiny(feature_dim=5)
    with pytest.raises(ValueError, match="min_scale"):
        tiny(min_scale=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        tiny(num_classes=2)


def test_bad_videos_are_named():
    model = tiny()
    with pytest.raises(ValueError, match=r"expects videos shaped \(batch, 5, 2, 2, 1\)"):
        model.log_prob(np.zeros((2, 5, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match="expects videos shaped"):
        model.fit_em(np.zeros((2, 5, 3, 2, 1), "float32"))
    bad = np.zeros((4, 5, 2, 2, 1), "float32")
    bad[1, 2, 0, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit_em(bad)
    with pytest.raises(ValueError, match=r"videos: expected floats in \[-1, 1\], got NaN or Inf"):
        model.log_prob(bad)  # eager: LikelihoodModel.as_float_videos names it
    with pytest.raises(ValueError, match="dtype"):
        model.fit_em(np.zeros((4, 5, 2, 2, 1), "uint8"))
    with pytest.raises(ValueError, match="transition_probs"):
        model.set_parameters(np.ones(3) / 3, np.ones((3, 3)), means=np.zeros((3, 4)), scales=np.ones((3, 4)))
    with pytest.raises(ValueError, match="means"):
        model.set_parameters(np.ones(3) / 3, np.ones((3, 3)) / 3, means=np.zeros((2, 4)), scales=np.ones((3, 4)))


def test_zoo_preset_reproduces_its_model_card():
    """The bundled preset scores held-out moving squares as its README states
    (0.0213 bits/dim on 500 videos; here the first 64 of them)."""
    model = vidgen_tf.from_preset("hmm_moving_square")
    _, _, metadata = vidgen_tf.presets.load_preset_config("hmm_moving_square")
    test = vidgen_tf.data.make_videos("moving_square", 500, num_frames=16, height=16, width=16, seed=1)[:64]
    nll = -float(tf.reduce_mean(model.log_prob((test / 127.5 - 1).astype("float32"))))
    assert float(model.bits_per_dim(nll)) == pytest.approx(metadata["held_out_bits_per_dim"], abs=0.004)
    assert model.generate(2, seed=0, num_frames=20).shape == (2, 20, 16, 16, 1)


def test_hmm_em_forward_backward_against_enumeration():
    """The E step of `hmm_em` (its own module) gives each sequence's log-likelihood
    and state posteriors as a sum over every one of the K^T state paths."""
    from vidgen_tf.models import hmm_em

    rng = np.random.default_rng(3)
    num_states, steps = 3, 4
    initial = rng.dirichlet(np.ones(num_states))
    transition = rng.dirichlet(np.ones(num_states), size=num_states)
    log_emission = rng.normal(size=(2, steps, num_states))
    log_lik, posteriors, expected = hmm_em.forward_backward(np.log(initial), np.log(transition), log_emission)
    for n in range(2):
        joint = {}
        for path in itertools.product(range(num_states), repeat=steps):
            log_p = np.log(initial[path[0]]) + sum(np.log(transition[a, b]) for a, b in zip(path, path[1:]))
            joint[path] = log_p + sum(log_emission[n, t, k] for t, k in enumerate(path))
        total = np.logaddexp.reduce(list(joint.values()))
        np.testing.assert_allclose(log_lik[n], total, rtol=1e-10)
        marginal = np.zeros((steps, num_states))
        for path, log_p in joint.items():
            marginal[np.arange(steps), path] += np.exp(log_p - total)
        np.testing.assert_allclose(posteriors[n], marginal, atol=1e-10)
    np.testing.assert_allclose(expected.sum(), 2 * (steps - 1), rtol=1e-10)
