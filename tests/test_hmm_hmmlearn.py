"""The HMM speaks hmmlearn: every verb equals hmmlearn's GaussianHMM(covariance_type="diag")."""

import numpy as np
import pytest

import vidgen_tf

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm", reason="hmmlearn is in the test extra")

K, H, W = 3, 2, 3  # 6 pixels per frame
LENGTHS = [5, 7, 5, 4]  # sequences of several lengths, laid end to end


def _model_and_reference(seed=0, **config):
    rng = np.random.default_rng(seed)
    model = vidgen_tf.build("hmm", num_frames=5, height=H, width=W, channels=1, num_states=K, **config)
    start = rng.dirichlet(np.ones(K))
    transitions = rng.dirichlet(np.ones(K) * 2, size=K)
    means = rng.uniform(-0.8, 0.8, (K, H * W))
    scales = rng.uniform(0.2, 0.5, (K, H * W))
    model.set_parameters(start, transitions, means=means, scales=scales)
    reference = hmmlearn_hmm.GaussianHMM(n_components=K, covariance_type="diag", init_params="",
                                         covars_prior=0.0, min_covar=0.0)
    reference.startprob_, reference.transmat_, reference.means_ = start, transitions, means
    reference.covars_ = scales**2
    return model, reference


def _frames(model, lengths=LENGTHS, seed=1):
    """Frames of several sampled sequences laid end to end, `(n, H, W, 1)`, and flattened."""
    parts = [model.sample(n, random_state=seed + i)[0] for i, n in enumerate(lengths)]
    frames = np.concatenate(parts).astype(np.float64)
    return frames, frames.reshape(len(frames), -1)


def test_scores_posteriors_and_states_equal_hmmlearn_s():
    model, reference = _model_and_reference()
    frames, flat = _frames(model)
    np.testing.assert_allclose(model.score(frames, LENGTHS), reference.score(flat, LENGTHS), rtol=1e-5)
    log_prob, posteriors = model.score_samples(frames, LENGTHS)
    ref_log_prob, ref_posteriors = reference.score_samples(flat, LENGTHS)
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=1e-5)
    np.testing.assert_allclose(posteriors, ref_posteriors, atol=1e-5)
    np.testing.assert_allclose(model.predict_proba(flat, LENGTHS), ref_posteriors, atol=1e-5)
    np.testing.assert_array_equal(model.predict(frames, LENGTHS), reference.predict(flat, LENGTHS))
    for algorithm in ("viterbi", "map"):
        value, states = model.decode(frames, LENGTHS, algorithm=algorithm)
        ref_value, ref_states = reference.decode(flat, LENGTHS, algorithm=algorithm)
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
        np.testing.assert_array_equal(states, ref_states)
    np.testing.assert_allclose(model.aic(frames, LENGTHS), reference.aic(flat, LENGTHS), rtol=1e-5)
    np.testing.assert_allclose(model.bic(frames, LENGTHS), reference.bic(flat, LENGTHS), rtol=1e-5)


def test_score_is_the_sum_of_log_prob_over_videos():
    model, _ = _model_and_reference()
    videos = model.generate(4, seed=3).numpy()  # (4, 5, 2, 3, 1)
    assert model.score(videos) == pytest.approx(float(np.sum(model.log_prob(videos))), rel=1e-5)
    # The same videos laid end to end with their lengths score the same.
    assert model.score(videos.reshape(-1, H, W, 1), [5] * 4) == pytest.approx(model.score(videos), rel=1e-9)


def test_fit_equals_hmmlearn_s_em_step_for_step():
    model, reference = _model_and_reference(seed=2)
    frames, flat = _frames(model, lengths=[12, 9, 15], seed=5)
    # Both start from the same other parameters and run four EM iterations.
    model, reference = _model_and_reference(seed=4)
    model.n_iter, model.tol, model.init_params = 4, 0.0, ""
    reference.n_iter, reference.tol = 4, 0.0
    assert model.fit(frames, [12, 9, 15]) is model
    reference.fit(flat, [12, 9, 15])
    np.testing.assert_allclose(model.monitor_.history, list(reference.monitor_.history), rtol=1e-6)
    assert model.monitor_.converged and model.monitor_.iter == 4
    fitted = model.parameters()
    np.testing.assert_allclose(fitted["initial_probs"], reference.startprob_, atol=1e-5)
    np.testing.assert_allclose(fitted["transition_probs"], reference.transmat_, atol=1e-5)
    np.testing.assert_allclose(fitted["means"], reference.means_, atol=1e-5)
    np.testing.assert_allclose(fitted["scales"] ** 2, reference._covars_, rtol=1e-4)


def test_params_letters_keep_what_they_leave_out_and_tol_stops_early():
    model, _ = _model_and_reference(seed=6)
    frames, _ = _frames(model, lengths=[10, 10])
    before = model.parameters()
    model.params, model.init_params, model.n_iter = "t", "", 3
    model.fit(frames, [10, 10])
    after = model.parameters()
    for name in ("initial_probs", "means", "scales"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-6)
    assert not np.allclose(after["transition_probs"], before["transition_probs"])
    # The default init_params start from k-means, and a large tol stops after two iterations.
    model = vidgen_tf.build("hmm", num_frames=5, height=H, width=W, channels=1, num_states=K, tol=1e9, n_iter=50)
    model.fit(frames, [10, 10])
    assert model.monitor_.iter == 2 and model.monitor_.converged
    history = model.monitor_.history
    assert history[1] >= history[0]


def test_sample_starts_from_currstate_and_is_seeded():
    model, _ = _model_and_reference()
    frames, states = model.sample(20, random_state=7, currstate=2)
    assert frames.shape == (20, H, W, 1) and states.shape == (20,) and states[0] == 2
    again, again_states = model.sample(20, random_state=7, currstate=2)
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(states, again_states)
    assert np.all((frames >= -1) & (frames <= 1))


def test_aic_bic_count_the_free_parameters_of_each_emission():
    gaussian, _ = _model_and_reference()
    frames, _ = _frames(gaussian)
    e = H * W
    assert gaussian._free_parameters() == (K - 1) + K * (K - 1) + K * e + K * e
    shared = vidgen_tf.build("hmm", num_frames=5, height=H, width=W, num_states=K, scale="shared")
    assert shared._free_parameters() == (K - 1) + K * (K - 1) + K * e + e
    bernoulli = vidgen_tf.build("hmm", num_frames=5, height=H, width=W, num_states=K, emission="bernoulli")
    assert bernoulli.params == "ste" and bernoulli._free_parameters() == (K - 1) + K * (K - 1) + K * e
    score = gaussian.score(frames, LENGTHS)
    assert gaussian.bic(frames, LENGTHS) == pytest.approx(
        -2 * score + gaussian._free_parameters() * np.log(sum(LENGTHS)))


def test_bad_input_is_named():
    model, _ = _model_and_reference()
    frames, _ = _frames(model)
    with pytest.raises(ValueError, match="`lengths` sum to 20 but X holds 21 frames"):
        model.score(frames, [5, 5, 5, 5])
    with pytest.raises(ValueError, match="pass lengths=None"):
        model.score(frames[:20].reshape(4, 5, H, W, 1), [5] * 4)
    with pytest.raises(ValueError, match="X must be frames"):
        model.score(np.zeros((4, 7)))
    with pytest.raises(ValueError, match="`algorithm` must be 'viterbi' or 'map'"):
        model.decode(frames, LENGTHS, algorithm="beam")
    with pytest.raises(ValueError, match="unknown: z"):
        vidgen_tf.build("hmm", num_frames=5, height=H, width=W, num_states=K, params="stz")
    with pytest.raises(ValueError, match="`currstate` must be a state"):
        model.sample(3, currstate=K)


def test_keras_fit_is_still_keras_s_when_compiled():
    import tensorflow as tf

    model, _ = _model_and_reference()
    model.compile()
    videos = model.generate(8, seed=0).numpy()
    history = model.fit(tf.data.Dataset.from_tensor_slices(videos).batch(4), epochs=1, verbose=0)
    assert "nll" in history.history
    # An array with Keras's own arguments goes to Keras too.
    history = model.fit(videos, batch_size=4, epochs=1, verbose=0)
    assert "nll" in history.history
