"""Kalman filtering and smoothing for the Kalman VAE (`vidgen_tf.models.kvae`).

A linear-Gaussian state space model (LGSSM) over states `z_t` (`n`
numbers) and observations `a_t` (`p` numbers):

    z_1 ~ N(0, P0),   z_t = A_t z_{t-1} + e_t,  e_t ~ N(0, Q)
                      a_t = C_t z_t + d_t,      d_t ~ N(0, R)

Two implementations, each used where it fits:

- One fixed `A`, `C` (the KVAE's `num_dynamics=1`): TFP's
  `tfp.distributions.LinearGaussianStateSpaceModel` (`fixed_lgssm`), whose
  `log_prob`, `forward_filter` and `posterior_marginals` give the marginal
  likelihood, the filter and the smoother. `fixed_filter` returns its filter
  in the layout of `switching_filter`.
- Matrices chosen step by step from the past observations (a mixture of
  dynamics weighted by an LSTM that reads `a_1..a_{t-1}`, and, where `a_t`
  is missing, the prediction `C_t E[z_t | a_{<t}]`): TFP's LGSSM takes
  matrices as functions of `t` only, so the recurrent state that feeds back
  the filter's own predictions has no place there. `switching_filter` is a
  batched Kalman filter whose step also advances that recurrent state;
  `rts_smoother` smooths any filter's output. The tests check both against
  TFP given the same matrices.

Shapes: `B` batch, `T` steps. Our `transition_matrices[:, t]` maps
`z_{t-1}` to `z_t` (`[:, 0]` unused) and `predicted_means[:, t]` is
`E[z_t | a_{<t}]`; TFP's `transition_matrix(t)` maps `z_t` to `z_{t+1}` and
its `predicted_means[t]` is `E[z_{t+1} | a_{1..t}]`.
"""

import math

import tensorflow as tf

from vidgen_tf.models import _latent

_LOG_2PI = math.log(2.0 * math.pi)


def _transpose(matrix):
    return tf.linalg.matrix_transpose(matrix)


def kalman_update(mean, covariance, observation, observation_matrix, observation_covariance):
    """One Kalman measurement update, batched.

    Args:
        mean: `(B, n)` predicted state mean.
        covariance: `(B, n, n)` predicted state covariance.
        observation: `(B, p)`.
        observation_matrix: `(B, p, n)`.
        observation_covariance: `(p, p)`.

    Returns:
        `(mean, covariance, log_likelihood)`: the filtered state `(B, n)`,
        `(B, n, n)` and `log N(observation; C mean, C P C' + R)` `(B,)`.
    """
    c = observation_matrix
    innovation_cov = c @ covariance @ _transpose(c) + observation_covariance  # (B, p, p)
    innovation_cov = 0.5 * (innovation_cov + _transpose(innovation_cov))
    chol = tf.linalg.cholesky(innovation_cov)
    residual = observation - tf.linalg.matvec(c, mean)  # (B, p)
    cross = covariance @ _transpose(c)  # (B, n, p)
    gain = _transpose(tf.linalg.cholesky_solve(chol, _transpose(cross)))  # (B, n, p)
    new_mean = mean + tf.linalg.matvec(gain, residual)
    # Joseph form: stays symmetric positive definite in float32.
    eye = tf.eye(tf.shape(mean)[-1], dtype=mean.dtype)
    factor = eye - gain @ c
    new_cov = factor @ covariance @ _transpose(factor) + gain @ observation_covariance @ _transpose(gain)
    new_cov = 0.5 * (new_cov + _transpose(new_cov))
    whitened = tf.linalg.triangular_solve(chol, residual[..., None], lower=True)[..., 0]
    log_likelihood = (
        -0.5 * tf.reduce_sum(whitened**2, axis=-1)
        - tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=-1)
        - 0.5 * float(observation.shape[-1]) * _LOG_2PI
    )
    return new_mean, new_cov, log_likelihood


def rts_smoother(filtered_means, filtered_covs, predicted_means, predicted_covs, transition_matrices):
    """Rauch-Tung-Striebel smoothing of a Kalman filter's output.

    Args:
        filtered_means: `(B, T, n)`, `E[z_t | a_{1..t}]`.
        filtered_covs: `(B, T, n, n)`.
        predicted_means: `(B, T, n)`, `E[z_t | a_{1..t-1}]`.
        predicted_covs: `(B, T, n, n)`.
        transition_matrices: `(B, T, n, n)`; `[:, t]` maps `z_{t-1}` to
            `z_t` (`[:, 0]` unused).

    Returns:
        `(means, covs)`, `(B, T, n)` and `(B, T, n, n)`: `p(z_t | a_{1..T})`.
    """
    time_major = [tf.einsum("bt...->tb...", x) for x in
                  (filtered_means, filtered_covs, predicted_means, predicted_covs, transition_matrices)]
    f_mean, f_cov, p_mean, p_cov, trans = time_major
    # Step t (backwards from T-2) needs t's filter and t+1's prediction and matrix.
    elems = (f_mean[:-1], f_cov[:-1], p_mean[1:], p_cov[1:], trans[1:])

    def step(carry, inputs):
        next_mean, next_cov = carry
        mean, cov, pred_mean, pred_cov, matrix = inputs
        # J = P_t A' P_{t+1|t}^{-1}, by a Cholesky solve of the symmetric P_{t+1|t}.
        chol = tf.linalg.cholesky(pred_cov)
        gain = _transpose(tf.linalg.cholesky_solve(chol, matrix @ cov))  # (B, n, n)
        new_mean = mean + tf.linalg.matvec(gain, next_mean - pred_mean)
        new_cov = cov + gain @ (next_cov - pred_cov) @ _transpose(gain)
        return new_mean, 0.5 * (new_cov + _transpose(new_cov))

    last = (f_mean[-1], f_cov[-1])
    means, covs = tf.scan(step, elems, initializer=last, reverse=True)
    means = tf.concat([means, f_mean[-1:]], axis=0)
    covs = tf.concat([covs, f_cov[-1:]], axis=0)
    return tf.einsum("tb...->bt...", means), tf.einsum("tb...->bt...", covs)


def filter_step_multiply_adds(state_dim, observation_dim):
    """Multiply-adds of one batched Kalman filter step for one sequence (predict and update).

    The matrix products of `switching_filter`'s step with `n = state_dim`,
    `p = observation_dim`: the prediction `A m` (`n^2`) and `A P A'`
    (`2 n^3`), the predicted observation `C m` (`p n`); the update's `C P C'`
    (`p n^2 + p^2 n`), residual (`p n`), `P C'` (`n^2 p`), Cholesky factor
    (`p^3 / 3`, rounded up) and solve for the gain (`2 n p^2`), `K r` (`n p`),
    the Joseph form `(I - K C) P (I - K C)' + K R K'` (`n^2 p + 2 n^3 + n p^2 +
    n^2 p`) and the whitened residual (`p^2`). TFP's filter (`fixed_filter`)
    does the same products in another order; the count serves for both.

    Args:
        state_dim: int. `n`.
        observation_dim: int. `p`.

    Returns:
        int.
    """
    n, p = state_dim, observation_dim
    predict = n * n + 2 * n**3 + p * n
    update = (p * n * n + p * p * n) + p * n + n * n * p + -(-p**3 // 3) + 2 * n * p * p + n * p
    update += n * n * p + 2 * n**3 + n * p * p + n * n * p + p * p
    return predict + update


def switching_filter(observations, mask, matrices, advance, initial_rnn_state, transition_covariance,
                     observation_covariance, initial_covariance):
    """Batched Kalman filter whose matrices come from a recurrent state it advances.

    At step t, `matrices(rnn_state, batch)` gives `A_t`, `C_t` from the state
    that has read `a_1..a_{t-1}`; the state `z_t` is predicted and, where
    `a_t` is observed, updated; then `advance(rnn_state, a_t)` reads `a_t`,
    or the predicted `C_t E[z_t | a_{<t}]` where it is missing.

    Args:
        observations: float32 `(B, T, p)`.
        mask: bool `(B, T)`, True where `a_t` is observed.
        matrices: callable `(rnn_state, batch) -> (A_t (B, n, n), C_t (B, p, n))`.
        advance: callable `(rnn_state, a_t (B, p)) -> rnn_state`.
        initial_rnn_state: nested tensors, the recurrent state before step 1
            (`()` for none).
        transition_covariance: `(n, n)` Q.
        observation_covariance: `(p, p)` R.
        initial_covariance: `(n, n)` P0 of `z_1 ~ N(0, P0)`.

    Returns:
        dict of float32: `log_likelihood` `(B,)` (`log p(observed a)`),
        `filtered_means` `(B, T, n)`, `filtered_covs` `(B, T, n, n)`,
        `predicted_means`, `predicted_covs` (`p(z_t | a_{<t})`),
        `transition_matrices` `(B, T, n, n)` and `observation_matrices`
        `(B, T, p, n)`.
    """
    batch = tf.shape(observations)[0]
    steps = tf.shape(observations)[1]
    n = initial_covariance.shape[-1]
    p = observation_covariance.shape[-1]
    q, r, p0 = transition_covariance, observation_covariance, initial_covariance
    first = tf.equal(tf.range(steps), 0)
    elems = (tf.transpose(observations, [1, 0, 2]), tf.transpose(mask), first)

    def step(carry, inputs):
        mean, cov, rnn_state = carry[0], carry[1], carry[2]
        a_t, observed, is_first = inputs
        transition, observation = matrices(rnn_state, batch)
        pred_mean = tf.linalg.matvec(transition, mean)
        pred_cov = transition @ cov @ _transpose(transition) + q
        pred_mean = tf.where(is_first, tf.zeros_like(pred_mean), pred_mean)
        pred_cov = tf.where(is_first, tf.broadcast_to(p0, tf.shape(pred_cov)), pred_cov)
        # Missing a_t: fill with the prediction so the update stays finite.
        predicted_a = tf.linalg.matvec(observation, pred_mean)
        a_t = tf.where(observed[:, None], a_t, predicted_a)
        new_mean, new_cov, log_lik = kalman_update(pred_mean, pred_cov, a_t, observation, r)
        new_mean = tf.where(observed[:, None], new_mean, pred_mean)
        new_cov = tf.where(observed[:, None, None], new_cov, pred_cov)
        log_lik = tf.where(observed, log_lik, tf.zeros_like(log_lik))
        rnn_state = advance(rnn_state, a_t)
        return (new_mean, new_cov, rnn_state, pred_mean, pred_cov, log_lik, transition, observation)

    initial = (
        tf.zeros([batch, n]), tf.zeros([batch, n, n]), initial_rnn_state,
        tf.zeros([batch, n]), tf.zeros([batch, n, n]), tf.zeros([batch]),
        tf.zeros([batch, n, n]), tf.zeros([batch, p, n]),
    )
    outputs = tf.scan(step, elems, initializer=initial)
    batch_major = lambda x: tf.einsum("tb...->bt...", x)  # noqa: E731
    return {
        "log_likelihood": tf.reduce_sum(outputs[5], axis=0),
        "filtered_means": batch_major(outputs[0]),
        "filtered_covs": batch_major(outputs[1]),
        "predicted_means": batch_major(outputs[3]),
        "predicted_covs": batch_major(outputs[4]),
        "transition_matrices": batch_major(outputs[6]),
        "observation_matrices": batch_major(outputs[7]),
    }


def fixed_lgssm(num_steps, transition_matrix, observation_matrix, transition_noise, observation_noise,
                initial_state_variance):
    """`tfp.distributions.LinearGaussianStateSpaceModel` with fixed matrices and isotropic noise.

    Args:
        num_steps: int or scalar int32 tensor. `T`.
        transition_matrix: `(n, n)` A.
        observation_matrix: `(p, n)` C.
        transition_noise: float. Variance q of `Q = q I`.
        observation_noise: float. Variance r of `R = r I`.
        initial_state_variance: float. Variance s0 of `z_1 ~ N(0, s0 I)`.
    """
    tfd = _latent.tfd()
    linop = tf.linalg.LinearOperatorFullMatrix
    p, n = observation_matrix.shape
    return tfd.LinearGaussianStateSpaceModel(
        num_timesteps=num_steps,
        transition_matrix=linop(tf.convert_to_tensor(transition_matrix)),
        transition_noise=tfd.MultivariateNormalDiag(scale_diag=tf.fill([n], math.sqrt(transition_noise))),
        observation_matrix=linop(tf.convert_to_tensor(observation_matrix)),
        observation_noise=tfd.MultivariateNormalDiag(scale_diag=tf.fill([p], math.sqrt(observation_noise))),
        initial_state_prior=tfd.MultivariateNormalDiag(
            scale_diag=tf.fill([n], math.sqrt(initial_state_variance))),
    )


def fixed_filter(lgssm, observations, mask):
    """TFP's `forward_filter` of a fixed-matrix `lgssm`, in the layout of `switching_filter`.

    Args:
        lgssm: a `fixed_lgssm`.
        observations: float32 `(B, T, p)`.
        mask: bool `(B, T)`, True where `a_t` is observed (TFP's own mask is
            True where missing).

    Returns:
        the dict of `switching_filter`, the matrices broadcast over batch and time.
    """
    log_likelihoods, filtered_means, filtered_covs, predicted_means, predicted_covs, _, _ = (
        lgssm.forward_filter(observations, mask=tf.logical_not(mask))
    )
    batch, steps = tf.shape(observations)[0], tf.shape(observations)[1]
    prior = lgssm.initial_state_prior
    # TFP predicts z_{t+1} after step t; ours predicts z_t before it: shift by one, the prior first.
    first_mean = tf.broadcast_to(prior.mean(), tf.shape(filtered_means[:, :1]))
    first_cov = tf.broadcast_to(prior.covariance(), tf.shape(filtered_covs[:, :1]))
    transition = lgssm.transition_matrix.to_dense()
    observation = lgssm.observation_matrix.to_dense()
    return {
        "log_likelihood": tf.reduce_sum(log_likelihoods, axis=-1),
        "filtered_means": filtered_means,
        "filtered_covs": filtered_covs,
        "predicted_means": tf.concat([first_mean, predicted_means[:, :-1]], axis=1),
        "predicted_covs": tf.concat([first_cov, predicted_covs[:, :-1]], axis=1),
        "transition_matrices": tf.broadcast_to(transition, tf.concat([[batch, steps], tf.shape(transition)], 0)),
        "observation_matrices": tf.broadcast_to(
            observation, tf.concat([[batch, steps], tf.shape(observation)], 0)),
    }
