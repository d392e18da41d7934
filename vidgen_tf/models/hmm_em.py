"""Baum-Welch EM for the video HMM, in float64 numpy.

Rabiner, "A tutorial on hidden Markov models and selected applications in
speech recognition", Proc. IEEE 77(2), 1989, section III.C.

The maths of `VideoHMM.fit_em` (`vidgen_tf.models.hmm`), as functions of
plain arrays so that they can be read and tested without the model:

- `forward_backward`: the E step, posteriors `p(z_t | x)` and expected
  transition counts in log space;
- `m_step`: the closed-form maximiser of the expected complete
  log-likelihood over the constraint set (scales >= 1.01 `min_scale`,
  Bernoulli probabilities in [1e-6, 1 - 1e-6]);
- `kmeans_start`: initial parameters from k-means on every frame;
- `viterbi`: the most likely state paths;
- `baum_welch`: the loop, stopping when the mean log-likelihood gains less
  than `tol`.

Parameters are dicts of float64 arrays: `initial_probs` `(K,)`,
`transition_probs` `(K, K)` (rows = from) and either `means`, `scales`
`(K, E)` (Gaussian emission) or `probs` `(K, E)` (Bernoulli emission).
"""

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

# EM keeps scales at least this factor above `min_scale`, so that
# `min_scale + softplus(raw)` represents them with a finite `raw`.
SCALE_MARGIN = 1.01
# EM keeps Bernoulli probabilities in [eps, 1 - eps], so logits stay finite.
PROB_EPS = 1e-6


def _logsumexp(values, axis):
    """log sum exp over `axis`, exact for -inf entries (numpy, float64)."""
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - peak), axis=axis))
    return total + np.squeeze(peak, axis=axis)


def forward_backward(log_initial, log_transition, log_emission):
    """Forward-backward in log space (numpy, float64).

    Args:
        log_initial: `(K,)` log initial probabilities.
        log_transition: `(K, K)` log transition probabilities, rows = from.
        log_emission: `(N, T, K)` log p(x_t | z_t = k) of N sequences.

    Returns:
        `(log_likelihood (N,), posteriors (N, T, K), expected_transitions (K, K))`,
        the last summed over sequences and time.
    """
    num, steps, _ = log_emission.shape
    log_alpha = np.empty_like(log_emission)
    log_alpha[:, 0] = log_initial + log_emission[:, 0]
    for t in range(1, steps):
        log_alpha[:, t] = (
            _logsumexp(log_alpha[:, t - 1, :, None] + log_transition[None], axis=1) + log_emission[:, t]
        )
    log_likelihood = _logsumexp(log_alpha[:, -1], axis=1)  # (N,)
    log_beta = np.zeros_like(log_emission)
    for t in range(steps - 2, -1, -1):
        ahead = log_emission[:, t + 1] + log_beta[:, t + 1]  # (N, K)
        log_beta[:, t] = _logsumexp(log_transition[None] + ahead[:, None, :], axis=2)
    posteriors = np.exp(log_alpha + log_beta - log_likelihood[:, None, None])
    expected = np.zeros_like(log_transition)
    # One step at a time: the (N, T-1, K, K) array of all steps can be gigabytes.
    for t in range(steps - 1):
        ahead = log_emission[:, t + 1] + log_beta[:, t + 1]  # (N, K)
        log_xi = (
            log_alpha[:, t, :, None] + log_transition[None] + ahead[:, None, :]
            - log_likelihood[:, None, None]
        )  # (N, K, K)
        expected += np.exp(log_xi).sum(axis=0)
    return log_likelihood, posteriors, expected


def viterbi(log_initial, log_transition, log_emission):
    """The most likely state paths (numpy, float64).

    Args:
        log_initial: `(K,)`; log_transition: `(K, K)`, rows = from;
        log_emission: `(N, T, K)` as for `forward_backward`.

    Returns:
        `(log_probability (N,), paths (N, T) int)`: each sequence's best path
        and its joint log-probability with the sequence.
    """
    num, steps, states = log_emission.shape
    score = log_initial + log_emission[:, 0]  # (N, K)
    back = np.zeros((num, steps, states), np.int64)
    for t in range(1, steps):
        candidates = score[:, :, None] + log_transition[None]  # (N, from, to)
        back[:, t] = np.argmax(candidates, axis=1)
        score = np.max(candidates, axis=1) + log_emission[:, t]
    paths = np.zeros((num, steps), np.int64)
    paths[:, -1] = np.argmax(score, axis=1)
    for t in range(steps - 1, 0, -1):
        paths[:, t - 1] = np.take_along_axis(back[:, t], paths[:, t, None], axis=1)[:, 0]
    return np.max(score, axis=1), paths


def groups(observations):
    """Observations as a list of `(N_g, T_g, E)` arrays: sequences of equal length stacked together.

    Every function of this module that takes `observations` takes either one
    `(N, T, E)` array or such a list (sequences of several lengths).
    """
    return list(observations) if isinstance(observations, (list, tuple)) else [observations]


def expectation(observations, params, emission):
    """The E step over every group of sequences.

    Returns:
        `(log_likelihoods [(N_g,)], posteriors [(N_g, T_g, K)], expected_transitions (K, K))`.
    """
    with np.errstate(divide="ignore"):
        log_initial = np.log(params["initial_probs"])
        log_transition = np.log(params["transition_probs"])
    log_likelihoods, posteriors, expected = [], [], 0.0
    for group in groups(observations):
        ll, post, counts = forward_backward(log_initial, log_transition, log_emission(group, params, emission))
        log_likelihoods.append(ll)
        posteriors.append(post)
        expected = expected + counts
    return log_likelihoods, posteriors, expected


def log_emission(observations, params, emission):
    """log p(x_t | z_t = k) `(N, T, K)` of observations `(N, T, E)` (numpy, float64).

    Args:
        observations: `(N, T, E)` float64: binary for `"bernoulli"`.
        params: the parameter dict (see the module docstring).
        emission: str. `"gaussian"` or `"bernoulli"`.
    """
    if emission == "bernoulli":
        probs = params["probs"]
        return observations @ np.log(probs).T + (1.0 - observations) @ np.log1p(-probs).T
    means, variances = params["means"], params["scales"] ** 2
    quadratic = (
        (observations**2) @ (1.0 / variances).T
        - 2.0 * observations @ (means / variances).T
        + np.sum(means**2 / variances, axis=1)
    )
    return (
        -0.5 * quadratic
        - np.sum(np.log(params["scales"]), axis=1)
        - 0.5 * observations.shape[-1] * math.log(2 * math.pi)
    )


def floored_scales(variances, min_scale):
    """Standard deviations of `variances`, at least `SCALE_MARGIN * min_scale`."""
    floor = SCALE_MARGIN * min_scale
    return np.sqrt(np.maximum(variances, floor**2))


def kmeans_start(observations, num_states, emission, scale, min_scale, seed):
    """Initial parameters from k-means on every frame (numpy, float64).

    Args:
        observations: `(N, T, E)` float64.
        num_states: int. Number of states K.
        emission: str. `"gaussian"` or `"bernoulli"`.
        scale: str. `"per_state"` or `"shared"` Gaussian scales.
        min_scale: float. Floor of the Gaussian scales.
        seed: int. Seed of k-means.
    """
    from sklearn.cluster import KMeans

    parts = groups(observations)
    features = parts[0].shape[-1]
    frames = np.concatenate([group.reshape(-1, features) for group in parts])
    flat = KMeans(n_clusters=num_states, n_init=3, random_state=seed).fit_predict(frames)
    sizes = np.cumsum([0] + [group.shape[0] * group.shape[1] for group in parts])
    labels = [flat[a:b].reshape(group.shape[:2]) for a, b, group in zip(sizes[:-1], sizes[1:], parts)]
    # Counts with one pseudo-observation each, so no probability starts at 0.
    initial = np.bincount(np.concatenate([group[:, 0] for group in labels]), minlength=num_states) + 1.0
    transitions = np.ones((num_states, num_states))
    for group in labels:
        np.add.at(transitions, (group[:, :-1].ravel(), group[:, 1:].ravel()), 1.0)
    params = {
        "initial_probs": initial / initial.sum(),
        "transition_probs": transitions / transitions.sum(axis=1, keepdims=True),
    }
    flat_labels = flat
    centres = np.stack([
        frames[flat_labels == k].mean(axis=0) if np.any(flat_labels == k) else frames.mean(axis=0)
        for k in range(num_states)
    ])
    if emission == "bernoulli":
        params["probs"] = np.clip(centres, 1e-3, 1 - 1e-3)
        return params
    params["means"] = centres
    residual = (frames - centres[flat_labels]) ** 2
    if scale == "shared":
        variances = np.broadcast_to(residual.mean(axis=0), (num_states, features))
    else:
        variances = np.stack([
            residual[flat_labels == k].mean(axis=0) if np.sum(flat_labels == k) > 1 else frames.var(axis=0)
            for k in range(num_states)
        ])
    params["scales"] = floored_scales(variances, min_scale)
    return params


def m_step(observations, posteriors, expected_transitions, params, emission, scale, min_scale):
    """The parameters maximising the expected complete log-likelihood.

    Each update is the exact maximiser over the constraint set (scales
    >= 1.01 * min_scale, Bernoulli probabilities in [1e-6, 1 - 1e-6]),
    which the previous parameters satisfy, so EM cannot decrease the
    likelihood. States with no posterior mass keep their parameters.

    Args:
        observations: `(N, T, E)` float64 (or a list of such groups, see `groups`).
        posteriors: `(N, T, K)` p(z_t = k | x), from `forward_backward` (a list with the groups).
        expected_transitions: `(K, K)` expected transition counts.
        params: the current parameter dict.
        emission, scale, min_scale: as in `kmeans_start`.
    """
    observations, posteriors = groups(observations), groups(posteriors)
    new = dict(params)
    new["initial_probs"] = np.concatenate([post[:, 0] for post in posteriors]).mean(axis=0)
    rows = expected_transitions.sum(axis=1, keepdims=True)
    new["transition_probs"] = np.where(
        rows > 0, expected_transitions / np.where(rows > 0, rows, 1.0), params["transition_probs"]
    )
    weights = sum(post.sum(axis=(0, 1)) for post in posteriors)  # (K,)
    alive = weights > 1e-10
    safe = np.where(alive, weights, 1.0)[:, None]
    first = sum(np.einsum("ntk,nte->ke", post, obs) for post, obs in zip(posteriors, observations)) / safe  # (K, E)
    if emission == "bernoulli":
        new["probs"] = np.where(alive[:, None], np.clip(first, PROB_EPS, 1 - PROB_EPS), params["probs"])
        return new
    means = np.where(alive[:, None], first, params["means"])
    second = sum(np.einsum("ntk,nte->ke", post, obs**2) for post, obs in zip(posteriors, observations))  # (K, E)
    if scale == "shared":
        total = sum(post.shape[0] * post.shape[1] for post in posteriors)
        pooled = (second.sum(axis=0) - np.sum(weights[:, None] * means**2, axis=0)) / total
        variances = np.broadcast_to(pooled, means.shape)
    else:
        variances = np.where(alive[:, None], second / safe - means**2, params["scales"] ** 2)
    new["means"] = means
    new["scales"] = floored_scales(variances, min_scale)
    return new


def baum_welch(observations, params, emission, scale, min_scale, iterations, tol):
    """Alternates `forward_backward` (E) and `m_step` (M) from `params`.

    Args:
        observations: `(N, T, E)` float64.
        params: the starting parameter dict.
        emission, scale, min_scale: as in `kmeans_start`.
        iterations: int. Maximum EM iterations.
        tol: float. Stop when the mean log-likelihood per video rises by less
            than this (nats).

    Returns:
        `(params, history)`: the fitted parameter dict and a list of the mean
        log-likelihood per video at the start and after each iteration.
    """

    log_likelihood, posteriors, expected = expectation(observations, params, emission)
    history = [float(np.concatenate(log_likelihood).mean())]
    for iteration in range(iterations):
        params = m_step(observations, posteriors, expected, params, emission, scale, min_scale)
        log_likelihood, posteriors, expected = expectation(observations, params, emission)
        history.append(float(np.concatenate(log_likelihood).mean()))
        logger.info("EM iteration %d: mean log-likelihood %.4f nats/video", iteration + 1, history[-1])
        if history[-1] - history[-2] < tol:
            break
    return params, history
