"""Schedules and samplers of vidgen_tf.diffusion against hand-computed values and exact denoisers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.diffusion import samplers, schedules

SHAPE = (2, 3, 4, 4, 1)


def videos(seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, SHAPE).astype("float32")
    return tf.constant(x0), tf.constant(rng.standard_normal(SHAPE).astype("float32"))


def test_cosine_rates_are_keras_io_s_signal_rates_and_variance_preserving():
    alpha, sigma = schedules.signal_and_noise_rates(tf.constant([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(alpha.numpy()[[0, 2]], [0.95, 0.02], atol=1e-6)
    np.testing.assert_allclose(alpha.numpy() ** 2 + sigma.numpy() ** 2, 1.0, atol=1e-6)
    middle = (math.acos(0.95) + math.acos(0.02)) / 2  # the angle is linear in t
    assert float(alpha[1]) == pytest.approx(math.cos(middle), abs=1e-6)
    alpha, sigma = schedules.signal_and_noise_rates(tf.constant([0.25]), "flow")
    assert (float(alpha[0]), float(sigma[0])) == (0.75, 0.25)


@pytest.mark.parametrize("objective", schedules.OBJECTIVES)
def test_targets_and_predictions_round_trip(objective):
    x0, eps = videos()
    t = schedules.broadcast_time(tf.constant([0.3, 0.8]), x0)
    alpha, sigma = schedules.signal_and_noise_rates(t, schedules.schedule_for(objective))
    x_t = schedules.add_noise(x0, eps, alpha, sigma)
    prediction = schedules.target(objective, x0, eps, alpha, sigma)
    x0_hat, eps_hat = schedules.predicted_x0_and_eps(objective, x_t, prediction, alpha, sigma)
    np.testing.assert_allclose(x0_hat.numpy(), x0.numpy(), atol=2e-5)
    np.testing.assert_allclose(eps_hat.numpy(), eps.numpy(), atol=2e-5)


def test_v_and_eps_convert_into_each_other_by_hand():
    # alpha = 0.6, sigma = 0.8: v = 0.6 eps - 0.8 x0; x0 = 0.6 x_t - 0.8 v; eps = 0.8 x_t + 0.6 v.
    x0, eps = 0.5, -1.0
    x_t = 0.6 * x0 + 0.8 * eps
    v = float(schedules.target("v", x0, eps, 0.6, 0.8))
    assert v == pytest.approx(0.6 * -1.0 - 0.8 * 0.5)
    x0_hat, eps_hat = schedules.predicted_x0_and_eps("v", x_t, v, 0.6, 0.8)
    assert (float(x0_hat), float(eps_hat)) == (pytest.approx(0.5), pytest.approx(-1.0))
    assert float(schedules.target("flow", x0, eps, 0.6, 0.4)) == -1.5  # eps - x0


def test_time_grid_and_times():
    np.testing.assert_allclose(schedules.time_grid(4).numpy(), [1.0, 0.75, 0.5, 0.25, 0.0])
    seed = tf.constant([1, 2], tf.int64)
    uniform = schedules.sample_times([4000], seed).numpy()
    logit_normal = schedules.sample_times([4000], seed, "logit_normal").numpy()
    assert 0 <= uniform.min() and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.02
    # sigmoid(N(0, 1)) piles up in the middle: P(|n| < 0.24) = 19% of the draws within 0.44-0.56 (uniform: 12%).
    assert np.mean(np.abs(logit_normal - 0.5) < 0.06) > 0.17 > 0.14 > np.mean(np.abs(uniform - 0.5) < 0.06)
    np.testing.assert_array_equal(logit_normal, schedules.sample_times([4000], seed, "logit_normal").numpy())
    with pytest.raises(ValueError, match="time_distribution"):
        schedules.sample_times([2], seed, "beta")


def perfect(objective, x0, eps):
    """The exact network of one known clean video (and, for flow, one straight path)."""
    schedule = schedules.schedule_for(objective)

    def predict(x_t, t):
        alpha, sigma = schedules.signal_and_noise_rates(t, schedule)
        if objective == "flow":
            return eps - x0
        # The noise that makes x_t from this x0: exact for any x_t.
        noise = (x_t - alpha * x0) / sigma
        return schedules.target(objective, x0, noise, alpha, sigma)

    return predict


@pytest.mark.parametrize("objective,sampler", [("eps", "ddim"), ("v", "ddim"), ("v", "ancestral"),
                                               ("flow", "euler"), ("flow", "heun")])
@pytest.mark.parametrize("num_steps", [1, 4])
def test_a_perfect_denoiser_returns_x0(objective, sampler, num_steps):
    x0, eps = videos()
    predict = perfect(objective, x0, eps)
    seed = tf.constant([3, 4], tf.int64)

    def one(x, t, s, i):
        return samplers.step(predict, objective, sampler, x, t, s, tf.random.stateless_normal(tf.shape(x), seed))

    start = eps if objective == "flow" else schedules.add_noise(x0, eps, *schedules.signal_and_noise_rates(1.0))
    np.testing.assert_allclose(samplers.sample_loop(one, start, num_steps).numpy(), x0.numpy(), atol=1e-5)


def test_one_euler_step_of_the_exact_velocity_lands_on_x0():
    x0, eps = videos(1)
    x_t = 0.3 * x0 + 0.7 * eps  # t = 0.7 on the straight path
    landed = samplers.euler_step(x_t, eps - x0, 0.7, 0.0)
    np.testing.assert_allclose(landed.numpy(), x0.numpy(), atol=1e-6)
    # Half-way from t = 0.7 to 0.2 it is on the path at t = 0.2.
    np.testing.assert_allclose(samplers.euler_step(x_t, eps - x0, 0.7, 0.2).numpy(),
                               (0.8 * x0 + 0.2 * eps).numpy(), atol=1e-6)


def test_ddim_eta_0_is_deterministic_and_by_hand():
    # x0 = 0.5, eps = 1 at alpha_t = 0.6, sigma_t = 0.8; to alpha_s = 0.8, sigma_s = 0.6.
    x_s = samplers.ddim_step(0.5, 1.0, 0.6, 0.8, 0.8, 0.6)
    assert float(x_s) == pytest.approx(0.8 * 0.5 + 0.6 * 1.0)
    # eta = 1: c = (0.6 / 0.8) sqrt(1 - (0.6 / 0.8)^2); the noise weight is c and eps's sqrt(0.36 - c^2).
    c = 0.75 * math.sqrt(1 - 0.75**2)
    x_s = samplers.ddim_step(0.5, 1.0, 0.6, 0.8, 0.8, 0.6, eta=1.0, noise=2.0)
    assert float(x_s) == pytest.approx(0.4 + math.sqrt(0.36 - c * c) + 2 * c, rel=1e-6)


def test_ancestral_is_ddim_with_eta_1():
    x0, eps = videos(2)
    noise = tf.random.stateless_normal(SHAPE, [5, 6])
    alpha_t, sigma_t = schedules.signal_and_noise_rates(0.7)
    alpha_s, sigma_s = schedules.signal_and_noise_rates(0.4)
    x_t = alpha_t * x0 + sigma_t * eps
    ancestral = samplers.ancestral_step(x_t, x0, alpha_t, sigma_t, alpha_s, sigma_s, noise)
    ddim = samplers.ddim_step(x0, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta=1.0, noise=noise)
    np.testing.assert_allclose(ancestral.numpy(), ddim.numpy(), atol=1e-5)


def test_ddim_on_the_flow_schedule_would_be_euler():
    # A check of the conversions: (1 - s) x0_hat + s eps_hat = x_t + (s - t) u.
    x0, eps = videos(3)
    u = tf.random.stateless_normal(SHAPE, [1, 1])
    x_t = 0.4 * x0 + 0.6 * eps
    x0_hat, eps_hat = schedules.predicted_x0_and_eps("flow", x_t, u, 0.4, 0.6)
    np.testing.assert_allclose((0.75 * x0_hat + 0.25 * eps_hat).numpy(),
                               samplers.euler_step(x_t, u, 0.6, 0.25).numpy(), atol=1e-5)


def test_the_loop_takes_a_tensor_trip_count_in_a_graph():
    calls = []

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def run(num_steps):
        def one(x, t, s, i):
            calls.append(1)
            return x + (t - s)  # adds the time travelled: 1 in total
        return samplers.sample_loop(one, tf.zeros([1, 1, 1, 1, 1]), num_steps)

    assert float(tf.squeeze(run(tf.constant(3)))) == pytest.approx(1.0)
    assert float(tf.squeeze(run(tf.constant(7)))) == pytest.approx(1.0)
    assert len(calls) == 1  # one trace: the body is a while_loop's


def test_samplers_are_checked_by_name():
    assert samplers.default_sampler("v") == "ddim" and samplers.default_sampler("flow") == "euler"
    with pytest.raises(ValueError, match="`sampler` must be one of \\('euler', 'heun'\\) for objective='flow'"):
        samplers.check_sampler("flow", "ddim")
    with pytest.raises(ValueError, match="`eta` must be in"):
        samplers.check_sampler("v", "ddim", 2.0)
    with pytest.raises(ValueError, match="`eta` is DDIM's"):
        samplers.check_sampler("v", "ancestral", 1.0)
    with pytest.raises(ValueError, match="`objective` must be one of"):
        schedules.schedule_for("x0")
