"""GAN losses and penalties against values worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf import losses
from vidgen_tf.registry import UnknownNameError

LN2, LN3, LN4, LN5 = math.log(2), math.log(3), math.log(4), math.log(5)

# Logits with rational probabilities p = sigmoid(l) = 1 / (1 + e^-l), so that
# softplus(l) = -log(1 - p) and softplus(-l) = -log(p) are logs of fractions:
#   l = 0     -> p = 1/2   l = ln 3 -> p = 3/4
#   l = -ln 3 -> p = 1/4   l = -ln 4 -> p = 1/5
PROB_REAL = np.array([0.0, LN3, -LN3, -LN4])  # p = 1/2, 3/4, 1/4, 1/5
PROB_FAKE = np.array([LN3, -LN4, 0.0, -LN3])  # p = 3/4, 1/5, 1/2, 1/4

# Plain numbers for the losses on raw scores (exact in bfloat16 as well).
REAL = np.array([-2.0, -0.5, 0.5, 3.0])
FAKE = np.array([1.0, -1.0, 0.0, 2.5])

FAMILIES = ("minimax", "non_saturating", "lsgan", "wasserstein", "hinge")


def _generator_loss(family):
    return getattr(losses, f"{family}_generator_loss")


def _discriminator_loss(family):
    return getattr(losses, f"{family}_discriminator_loss")


def test_minimax_losses_by_hand():
    # Generator: log(1 - p_fake) with p_fake = 3/4, 1/5, 1/2, 1/4
    #   = ln(1/4), ln(4/5), ln(1/2), ln(3/4)
    expected_g = [-LN4, LN4 - LN5, -LN2, LN3 - LN4]
    # Discriminator: -ln p_real - ln(1 - p_fake)
    #   ex0: -ln(1/2) - ln(1/4) = ln 2 + ln 4 = ln 8
    #   ex1: -ln(3/4) - ln(4/5) = ln(4/3) + ln(5/4) = ln(5/3)
    #   ex2: -ln(1/4) - ln(1/2) = ln 4 + ln 2 = ln 8
    #   ex3: -ln(1/5) - ln(3/4) = ln 5 + ln(4/3) = ln(20/3)
    expected_d = [3 * LN2, LN5 - LN3, 3 * LN2, LN4 + LN5 - LN3]
    np.testing.assert_allclose(losses.minimax_generator_loss(PROB_FAKE), expected_g, atol=1e-6)
    np.testing.assert_allclose(
        losses.minimax_discriminator_loss(PROB_REAL, PROB_FAKE), expected_d, atol=1e-6
    )


def test_non_saturating_losses_by_hand():
    # Generator: -ln p_fake with p_fake = 3/4, 1/5, 1/2, 1/4 -> ln(4/3), ln 5, ln 2, ln 4
    expected_g = [LN4 - LN3, LN5, LN2, LN4]
    # Discriminator: the same cross-entropy as minimax (see above).
    expected_d = [3 * LN2, LN5 - LN3, 3 * LN2, LN4 + LN5 - LN3]
    np.testing.assert_allclose(
        losses.non_saturating_generator_loss(PROB_FAKE), expected_g, atol=1e-6
    )
    np.testing.assert_allclose(
        losses.non_saturating_discriminator_loss(PROB_REAL, PROB_FAKE), expected_d, atol=1e-6
    )


def test_lsgan_losses_by_hand():
    # Generator: 1/2 (f - 1)^2, f - 1 = 0, -2, -1, 1.5 -> 0, 2, 0.5, 1.125
    expected_g = [0.0, 2.0, 0.5, 1.125]
    # Discriminator: 1/2 (r - 1)^2 + 1/2 f^2
    #   r - 1 = -3, -1.5, -0.5, 2  -> halves of 9, 2.25, 0.25, 4 = 4.5, 1.125, 0.125, 2
    #   f     =  1, -1,   0, 2.5  -> halves of 1, 1, 0, 6.25     = 0.5, 0.5, 0, 3.125
    expected_d = [5.0, 1.625, 0.125, 5.125]
    np.testing.assert_allclose(losses.lsgan_generator_loss(FAKE), expected_g, atol=1e-6)
    np.testing.assert_allclose(losses.lsgan_discriminator_loss(REAL, FAKE), expected_d, atol=1e-6)


def test_wasserstein_losses_by_hand():
    # Generator: -f
    expected_g = [-1.0, 1.0, 0.0, -2.5]
    # Critic: f - r = 1 + 2, -1 + 0.5, 0 - 0.5, 2.5 - 3
    expected_d = [3.0, -0.5, -0.5, -0.5]
    np.testing.assert_allclose(losses.wasserstein_generator_loss(FAKE), expected_g, atol=1e-6)
    np.testing.assert_allclose(
        losses.wasserstein_discriminator_loss(REAL, FAKE), expected_d, atol=1e-6
    )


def test_hinge_losses_by_hand():
    # Generator: -f
    expected_g = [-1.0, 1.0, 0.0, -2.5]
    # Discriminator: max(0, 1 - r) + max(0, 1 + f)
    #   max(0, 1 - r) = 3, 1.5, 0.5, 0     (r = 3 is past the margin)
    #   max(0, 1 + f) = 2, 0,   1,   3.5   (f = -1 sits on the margin)
    expected_d = [5.0, 1.5, 1.5, 3.5]
    np.testing.assert_allclose(losses.hinge_generator_loss(FAKE), expected_g, atol=1e-6)
    np.testing.assert_allclose(losses.hinge_discriminator_loss(REAL, FAKE), expected_d, atol=1e-6)


def test_sigmoid_losses_are_stable_for_large_logits():
    # log(sigmoid(-100)) underflows to -inf in float32; softplus gives -100 exactly
    # (up to e^-100). Generator: -ln sigmoid(-100) = softplus(100) = 100.
    big = np.array([100.0, -100.0])
    np.testing.assert_allclose(losses.non_saturating_generator_loss(-big), [100.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(losses.minimax_generator_loss(big), [-100.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(
        losses.minimax_discriminator_loss(-big, big), [200.0, 0.0], atol=1e-6
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_losses_are_rank_agnostic(family):
    real, fake = REAL.astype(np.float32), FAKE.astype(np.float32)
    g_expected = _generator_loss(family)(fake).numpy()
    d_expected = _discriminator_loss(family)(real, fake).numpy()
    # Same per-example value for one score per video, per frame (T=3), per patch (T=3, 2x2).
    for shape in [(4, 1), (4, 3), (4, 3, 2, 2)]:
        tile = [1] + list(shape[1:])
        real_n = np.tile(real.reshape([4] + [1] * (len(shape) - 1)), tile)
        fake_n = np.tile(fake.reshape([4] + [1] * (len(shape) - 1)), tile)
        g = _generator_loss(family)(fake_n)
        d = _discriminator_loss(family)(real_n, fake_n)
        assert g.shape == (4,) and d.shape == (4,), shape
        np.testing.assert_allclose(g, g_expected, atol=1e-6)
        np.testing.assert_allclose(d, d_expected, atol=1e-6)


def test_patch_loss_is_mean_of_patch_losses_not_loss_of_mean():
    # One example, two frames with real scores -1 and 3:
    #   hinge per frame: max(0, 1 + 1) = 2 and max(0, 1 - 3) = 0 -> mean 1
    #   (the loss of the mean score 1 would be 0).
    # Fake scores -3 and 1: max(0, 1 - 3) = 0, max(0, 1 + 1) = 2 -> mean 1. Total 2.
    d = losses.hinge_discriminator_loss([[-1.0, 3.0]], [[-3.0, 1.0]])
    np.testing.assert_allclose(d, [2.0], atol=1e-6)
    # LSGAN generator: 1/2 (f - 1)^2 = 1/2 * 16 = 8 and 0 -> mean 4.
    np.testing.assert_allclose(losses.lsgan_generator_loss([[-3.0, 1.0]]), [4.0], atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("family", FAMILIES)
def test_low_precision_inputs_give_float32(family, dtype):
    real = tf.constant(REAL, dtype=dtype)
    fake = tf.constant(FAKE, dtype=dtype)
    g = _generator_loss(family)(fake)
    d = _discriminator_loss(family)(real, fake)
    assert g.dtype == tf.float32 and d.dtype == tf.float32
    # REAL and FAKE are exact in both dtypes, so the float32 results agree exactly.
    np.testing.assert_allclose(g, _generator_loss(family)(FAKE.astype(np.float32)), atol=1e-6)
    np.testing.assert_allclose(
        d, _discriminator_loss(family)(REAL.astype(np.float32), FAKE.astype(np.float32)), atol=1e-6
    )
    assert losses.mean_logit(real).dtype == tf.float32


def test_mean_logit():
    logits = tf.constant([[1.0, 3.0], [-2.0, 0.0]], dtype=tf.bfloat16)
    out = losses.mean_logit(logits)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out, [2.0, -1.0])


def test_bad_logits_are_rejected():
    with pytest.raises(ValueError, match="same batch size.*\\(4,\\) and \\(3,\\)"):
        losses.hinge_discriminator_loss(REAL, FAKE[:3])
    with pytest.raises(ValueError, match="`fake_logits` must have a leading batch axis"):
        losses.hinge_generator_loss(1.0)
    with pytest.raises(TypeError, match="`real_logits` must be a real-valued tensor"):
        losses.hinge_discriminator_loss(tf.constant(["a"]), FAKE[:1])


def test_losses_run_inside_tf_function_with_unknown_rank():
    fn = tf.function(
        losses.lsgan_discriminator_loss,
        input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.float32)],
    )
    np.testing.assert_allclose(
        fn(REAL.astype(np.float32).reshape(4, 1, 1), FAKE.astype(np.float32)),
        [5.0, 1.625, 0.125, 5.125],
        atol=1e-6,
    )


# --- gradient penalty -----------------------------------------------------------

VIDEO_SHAPE = (2, 4, 8, 8, 3)  # (B, T, H, W, C)
NUM_ELEMENTS = 4 * 8 * 8 * 3  # per example: 768


def _videos(seed=0):
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, VIDEO_SHAPE).astype(np.float32)
    fake = rng.uniform(-1, 1, VIDEO_SHAPE).astype(np.float32)
    return real, fake


def _sum_per_example(x):
    return tf.reduce_sum(x, axis=list(range(1, len(x.shape))))


def test_gradient_penalty_linear_critic_on_video():
    # D(x) = 2 * sum(x): every gradient entry is 2 over all T*H*W*C = 768 entries,
    # so ||grad|| = sqrt(4 * 768 + eps) = 2 sqrt(768) and the penalty is (2 sqrt(768) - 1)^2
    # whatever alpha is. Summing over only some axes (e.g. [1, 2, 3]) would not give (B,).
    real, fake = _videos()
    penalty = losses.gradient_penalty(
        lambda x: 2.0 * _sum_per_example(x), real, fake, alpha=[0.3, 0.9]
    )
    assert penalty.shape == (2,) and penalty.dtype == tf.float32
    expected = (math.sqrt(4 * NUM_ELEMENTS + 1e-10) - 1.0) ** 2  # ~2963.3
    np.testing.assert_allclose(penalty, [expected, expected], rtol=1e-6)


def test_gradient_penalty_target():
    # Same linear critic on (B, 2): norm = 2 sqrt(2); target 2 sqrt(2) gives ~0,
    # target 0 gives norm^2 = 8.
    real = np.ones((3, 2), np.float32)
    critic = lambda x: 2.0 * _sum_per_example(x)  # noqa: E731
    alpha = [0.0, 0.5, 1.0]
    np.testing.assert_allclose(
        losses.gradient_penalty(critic, real, -real, alpha, target=2 * math.sqrt(2)),
        [0.0] * 3,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        losses.gradient_penalty(critic, real, -real, alpha, target=0.0), [8.0] * 3, rtol=1e-6
    )


def test_gradient_penalty_uses_alpha_per_example():
    # D(x) = sum(x^2): grad = 2 x_hat, so the penalty is (2 ||x_hat|| - 1)^2 with
    # x_hat = alpha * real + (1 - alpha) * fake, alpha broadcast per example.
    real, fake = _videos(1)
    real, fake = np.concatenate([real, real[:1]]), np.concatenate([fake, fake[:1]])  # B = 3
    alpha = np.array([0.0, 1.0, 0.25], np.float32)
    penalty = losses.gradient_penalty(
        lambda x: _sum_per_example(tf.square(x)), real, fake, alpha, epsilon=0.0
    )
    a = alpha.reshape(3, 1, 1, 1, 1).astype(np.float64)
    x_hat = a * real + (1 - a) * fake
    expected = (2 * np.sqrt((x_hat**2).sum(axis=(1, 2, 3, 4))) - 1) ** 2
    # alpha = 0 -> fake[0]; alpha = 1 -> real[1]; alpha = 1/4 -> mix of example 0.
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)


def test_gradient_penalty_patch_critic_uses_mean_of_outputs():
    # D(x) = 2x per element (one output per "patch"): the per-example score is the
    # mean of the N = 768 outputs, whose gradient entries are 2 / N, so
    # ||grad|| = sqrt(N * 4 / N^2) = 2 / sqrt(N).
    real, fake = _videos()
    penalty = losses.gradient_penalty(lambda x: 2.0 * x, real, fake, [0.5, 0.5], epsilon=0.0)
    expected = (2.0 / math.sqrt(NUM_ELEMENTS) - 1.0) ** 2
    np.testing.assert_allclose(penalty, [expected, expected], rtol=1e-6)


def test_gradient_penalty_epsilon_inside_square_root():
    real, fake = _videos()
    # A constant critic has gradient zero: norm = sqrt(0 + eps).
    # eps = 0.25 -> norm 0.5 -> penalty 0.25 (eps outside the root would give 0.5625).
    constant = lambda x: tf.zeros(tf.shape(x)[:1])  # noqa: E731
    np.testing.assert_allclose(
        losses.gradient_penalty(constant, real, fake, [0.5, 0.5], epsilon=0.25), [0.25, 0.25]
    )
    penalty = losses.gradient_penalty(constant, real, fake, [0.5, 0.5])
    np.testing.assert_allclose(penalty, [(1e-5 - 1.0) ** 2] * 2, rtol=1e-6)


def test_gradient_penalty_gradient_is_finite_at_zero_critic_gradient():
    # D(x) = w * sum(x) with w = 0: penalty = (sqrt(w^2 N + eps) - 1)^2 and
    # d/dw = 2 (norm - 1) * w N / norm = 0. With eps outside the root, d sqrt(0) = inf
    # times 0 gives NaN.
    real, fake = _videos()
    w = tf.Variable(0.0)
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(
            lambda x: w * _sum_per_example(x), real, fake, [0.2, 0.7]
        )
        total = tf.reduce_sum(penalty)
    grad = tape.gradient(total, w)
    assert np.isfinite(total.numpy())
    assert grad is not None and np.isfinite(grad.numpy())
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)


def test_gradient_penalty_is_differentiable_wrt_critic_weights():
    # D(x) = w * sum(x^2): norm = 2 w ||x_hat||, penalty = (2 w ||x_hat|| - 1)^2,
    # d/dw = 2 (2 w ||x_hat|| - 1) * 2 ||x_hat||. Inside tf.function too.
    real, fake = _videos(2)
    alpha = tf.constant([0.1, 0.6])
    w = tf.Variable(0.5)

    @tf.function
    def penalty_and_grad():
        with tf.GradientTape() as tape:
            penalty = losses.gradient_penalty(
                lambda x: w * _sum_per_example(tf.square(x)), real, fake, alpha, epsilon=0.0
            )
            total = tf.reduce_sum(penalty)
        return penalty, tape.gradient(total, w)

    penalty, grad = penalty_and_grad()
    a = alpha.numpy().reshape(2, 1, 1, 1, 1).astype(np.float64)
    x_norm = np.sqrt(((a * real + (1 - a) * fake) ** 2).sum(axis=(1, 2, 3, 4)))
    np.testing.assert_allclose(penalty, (2 * 0.5 * x_norm - 1) ** 2, rtol=1e-5)
    np.testing.assert_allclose(grad, np.sum(2 * (2 * 0.5 * x_norm - 1) * 2 * x_norm), rtol=1e-5)


def test_gradient_penalty_alpha_shape_checks():
    real, fake = _videos()
    critic = lambda x: _sum_per_example(x)  # noqa: E731
    with pytest.raises(ValueError, match="`alpha` must have shape \\(B,\\); got shape \\(2, 1\\)"):
        losses.gradient_penalty(critic, real, fake, [[0.5], [0.5]])
    with pytest.raises(ValueError, match="one weight per example.*got shape \\(3,\\)"):
        losses.gradient_penalty(critic, real, fake, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="`real` and `fake` must have the same shape"):
        losses.gradient_penalty(critic, real, fake[:, :2], [0.1, 0.2])
    # Images (B, H, W, C): alpha broadcasts to rank 4.
    images = real[:, 0]
    critic = lambda x: 2.0 * _sum_per_example(x)  # noqa: E731
    penalty = losses.gradient_penalty(critic, images, -images, [0.1, 0.9])
    np.testing.assert_allclose(penalty, [(2 * math.sqrt(8 * 8 * 3) - 1) ** 2] * 2, rtol=1e-6)


# --- R1 ------------------------------------------------------------------------


def test_r1_penalty_linear_critic():
    # D(x) = sum(3x): every gradient entry is 3 -> 1/2 * 9 * 768 = 3456 per example.
    real, _ = _videos()
    penalty = losses.r1_penalty(lambda x: _sum_per_example(3.0 * x), real)
    assert penalty.shape == (2,) and penalty.dtype == tf.float32
    np.testing.assert_allclose(penalty, [0.5 * 9 * NUM_ELEMENTS] * 2, rtol=1e-6)


def test_r1_penalty_quadratic_critic_per_example():
    # D(x) = sum(x^2): grad = 2x -> 1/2 * 4 ||x||^2 = 2 ||x||^2 for each example.
    real, _ = _videos(3)
    penalty = losses.r1_penalty(lambda x: _sum_per_example(tf.square(x)), real)
    expected = 2 * (real.astype(np.float64) ** 2).sum(axis=(1, 2, 3, 4))
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)


# --- interpolation weights --------------------------------------------------------


def test_interpolation_weights_deterministic_uniform_in_unit_interval():
    a = losses.interpolation_weights(8, [1, 2])
    b = losses.interpolation_weights(8, tf.constant([1, 2]))
    c = losses.interpolation_weights(8, [1, 3])
    assert a.shape == (8,) and a.dtype == tf.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    many = losses.interpolation_weights(tf.constant(20000), [7, 7]).numpy()
    # Uniform on [0, 1): inside the interval, mean 1/2, a quarter below 1/4 (a normal
    # draw would go negative).
    assert many.min() >= 0.0 and many.max() < 1.0
    assert abs(many.mean() - 0.5) < 0.01
    assert abs((many < 0.25).mean() - 0.25) < 0.01


def test_interpolation_weights_in_tf_function_with_dynamic_batch():
    fn = tf.function(lambda x, seed: losses.interpolation_weights(tf.shape(x)[0], seed))
    out = fn(tf.zeros([5, 3]), tf.constant([4, 5]))
    np.testing.assert_array_equal(out, losses.interpolation_weights(5, [4, 5]))


def test_interpolation_weights_bad_arguments():
    with pytest.raises(ValueError, match="`seed` must have shape \\[2\\]; got shape \\(3,\\)"):
        losses.interpolation_weights(4, [1, 2, 3])
    with pytest.raises(TypeError, match="`seed` must be integers"):
        losses.interpolation_weights(4, [1.0, 2.0])
    with pytest.raises(TypeError, match="`batch_size` must be a scalar integer"):
        losses.interpolation_weights(2.5, [1, 2])
    with pytest.raises(ValueError, match="`batch_size` must be >= 0; got -1"):
        losses.interpolation_weights(-1, [1, 2])


# --- look-up by name --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, canonical, generator_loss, discriminator_loss, penalty",
    [
        ("minimax", "minimax", "minimax_generator_loss", "minimax_discriminator_loss", None),
        ("non_saturating", "non_saturating", "non_saturating_generator_loss",
         "non_saturating_discriminator_loss", None),
        ("lsgan", "lsgan", "lsgan_generator_loss", "lsgan_discriminator_loss", None),
        ("wasserstein", "wasserstein", "wasserstein_generator_loss",
         "wasserstein_discriminator_loss", None),
        ("wgan", "wasserstein", "wasserstein_generator_loss",
         "wasserstein_discriminator_loss", None),
        ("wgan_gp", "wgan_gp", "wasserstein_generator_loss", "wasserstein_discriminator_loss",
         "gradient_penalty"),
        ("hinge", "hinge", "hinge_generator_loss", "hinge_discriminator_loss", None),
    ],
)
def test_get_loss(name, canonical, generator_loss, discriminator_loss, penalty):
    loss = losses.get_loss(name)
    assert loss.name == canonical
    assert loss.generator_loss is getattr(losses, generator_loss)
    assert loss.discriminator_loss is getattr(losses, discriminator_loss)
    assert loss.penalty == penalty
    assert losses.get_loss(loss) is loss


def test_loss_names():
    assert losses.LOSS_NAMES == (
        "minimax", "non_saturating", "lsgan", "wasserstein", "wgan", "wgan_gp", "hinge"
    )
    for name in losses.LOSS_NAMES:
        losses.get_loss(name)


def test_unknown_loss_name():
    with pytest.raises(
        UnknownNameError,
        match="Unknown loss 'hinje'.*: hinge, lsgan, minimax, non_saturating, wasserstein, "
        "wgan, wgan_gp. Did you mean 'hinge'\\?",
    ):
        losses.get_loss("hinje")
    with pytest.raises(TypeError, match="`name` must be a loss name \\(str\\); got int"):
        losses.get_loss(3)
