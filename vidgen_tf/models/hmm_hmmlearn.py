"""hmmlearn's verbs for the video HMM: `fit(X, lengths)`, `score`, `predict`, `decode`, `sample`, ...

hmmlearn (https://hmmlearn.readthedocs.io) is what HMM users know. Its estimators take `X`, the
frames of several sequences laid end to end, `(n_frames, n_features)`, with `lengths`, the
length of each sequence (None: one sequence). `VideoHMM` speaks the same verbs on video:

- `X` is frames `(n, H, W, C)` (or flattened `(n, H * W * C)`) of videos laid end to end, with
  `lengths` (None: one video); or videos `(N, T, H, W, C)`, when `lengths` must be None (each
  video is a sequence). Frames are float in [-1, 1], as everywhere in the zoo.
- `fit(X, lengths)` runs Baum-Welch EM for at most `n_iter` iterations, stopping when the summed
  log-likelihood gains less than `tol` (hmmlearn's `ConvergenceMonitor`, kept as `monitor_`, with
  its `history` and `converged`); `init_params` names what is initialised from k-means first and
  `params` what EM updates: `s` start probabilities, `t` transitions, and for Gaussian emissions
  `m` means and `c` scales (covariances), for Bernoulli ones `e` the pixels' probabilities.
- `score` is the summed log-likelihood (nats) of every sequence, `score_samples` adds the
  posteriors of every frame, `predict` / `decode(algorithm="viterbi" | "map")` the states,
  `predict_proba` the posteriors, `sample(n, currstate=None)` frames and their states, `aic` /
  `bic` the information criteria.

Given the same parameters every verb equals hmmlearn's `GaussianHMM(covariance_type="diag")`
(tested); so does `fit` with hmmlearn's priors turned off (`covars_prior=0`, `min_covar=0`): the
zoo's M step has no prior, only its floor on the scales (`hmm_em.floored_scales`). The maths is
`vidgen_tf.models.hmm_em`'s, in float64 numpy.

Free parameters of `aic` / `bic`, summed over the letters in `params` (as hmmlearn), with `K`
states and `E` emission dimensions per frame (pixels, or `feature_dim`): `s` K - 1, `t` K (K - 1);
Gaussian `m` K E and `c` K E per-state scales (E when one scale vector is shared); Bernoulli `e` K E.
"""

import math

import numpy as np

from vidgen_tf.models import hmm_em

# Letter -> the parameter it names in hmm_em's parameter dicts.
LETTERS = {"s": "initial_probs", "t": "transition_probs", "m": "means", "c": "scales", "e": "probs"}


class ConvergenceMonitor:
    """hmmlearn's monitor of EM: the log-likelihood after each iteration, and whether EM stopped.

    `history` holds the summed log-likelihood of the parameters each iteration started from;
    EM has `converged` when `iter == n_iter` or the last gain is below `tol`.
    """

    def __init__(self, tol, n_iter):
        self.tol, self.n_iter = tol, n_iter
        self.history, self.iter = [], 0

    def report(self, log_prob):
        self.history.append(float(log_prob))
        self.iter += 1

    @property
    def converged(self):
        return self.iter == self.n_iter or (
            len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol
        )

    def __repr__(self):
        return f"ConvergenceMonitor(tol={self.tol}, n_iter={self.n_iter}, iter={self.iter}, history={self.history})"


class HmmlearnVerbs:
    """The hmmlearn interface of `VideoHMM` (see the module docstring)."""

    def default_letters(self):
        return "stmc" if self.emission == "gaussian" else "ste"

    def _check_letters(self, name, letters):
        letters = self.default_letters() if letters is None else str(letters)
        unknown = sorted(set(letters) - set(self.default_letters()))
        if unknown:
            raise ValueError(f"`{name}` letters must be among '{self.default_letters()}' for {self.emission} "
                             f"emissions, got {letters!r} (unknown: {''.join(unknown)}).")
        return letters

    # ----------------------------------------------------------------- input
    def _sequences(self, X, lengths):
        """`(groups, placement)`: observations `[(N_g, T_g, E)]` of equal-length sequences, and for each
        group the frame offsets of its sequences in `X` laid end to end."""
        X = np.asarray(X)
        frame = (self.height, self.width, self.channels)
        if X.ndim == 5:
            if lengths is not None:
                raise ValueError(f"`lengths` goes with frames laid end to end (n, H, W, C); X holds videos "
                                 f"{X.shape}, each one sequence: pass lengths=None.")
            videos = self._numpy_videos(X, "X")
            return [self._numpy_observations(videos)], [np.arange(X.shape[0]) * X.shape[1]]
        if X.ndim == 2 and X.shape[1] == int(np.prod(frame)):
            X = X.reshape((X.shape[0],) + frame)
        if X.ndim != 4:
            raise ValueError(f"X must be frames (n, {', '.join(map(str, frame))}) laid end to end, flattened "
                             f"frames (n, {int(np.prod(frame))}), or videos (N, T, {', '.join(map(str, frame))}); "
                             f"got shape {X.shape}.")
        lengths = np.asarray([X.shape[0]] if lengths is None else lengths)
        if lengths.ndim != 1 or lengths.size == 0 or lengths.dtype.kind not in "iu" or np.any(lengths < 1):
            raise ValueError(f"`lengths` must be positive integers, one per sequence, got {lengths.tolist()}.")
        if int(lengths.sum()) != X.shape[0]:
            raise ValueError(f"`lengths` sum to {int(lengths.sum())} but X holds {X.shape[0]} frames.")
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        groups, placement = [], []
        for length in np.unique(lengths):
            starts = offsets[lengths == length]
            videos = np.stack([X[s:s + length] for s in starts])
            groups.append(self._numpy_observations(self._numpy_videos(videos, "X")))
            placement.append(starts)
        return groups, placement

    @staticmethod
    def _laid_end_to_end(parts, placement, total):
        """Per-frame arrays `[(N_g, T_g, ...)]` put back in the order of X: `(total, ...)`."""
        out = np.empty((total,) + parts[0].shape[2:], parts[0].dtype)
        for part, starts in zip(parts, placement):
            for sequence, start in zip(part, starts):
                out[start:start + len(sequence)] = sequence
        return out

    def _params64(self):
        return {k: np.asarray(v, np.float64) for k, v in self.parameters().items()}

    def _log_terms(self, params=None):
        params = self._params64() if params is None else params
        with np.errstate(divide="ignore"):
            return np.log(params["initial_probs"]), np.log(params["transition_probs"]), params

    # --------------------------------------------------------------- scoring
    def score_samples(self, X, lengths=None):
        """`(log_prob, posteriors)`: the summed log-likelihood (nats) and p(z_t = k | its sequence),
        `(n_frames, K)` in the order of X."""
        groups, placement = self._sequences(X, lengths)
        log_likelihoods, posteriors, _ = hmm_em.expectation(groups, self._params64(), self.emission)
        total = sum(g.shape[0] * g.shape[1] for g in groups)
        return float(sum(ll.sum() for ll in log_likelihoods)), self._laid_end_to_end(posteriors, placement, total)

    def score(self, X, lengths=None):
        """The summed log-likelihood of every sequence in X, in nats (hmmlearn's `score`)."""
        groups, _ = self._sequences(X, lengths)
        log_likelihoods, _, _ = hmm_em.expectation(groups, self._params64(), self.emission)
        return float(sum(ll.sum() for ll in log_likelihoods))

    def predict_proba(self, X, lengths=None):
        """Posteriors p(z_t = k | sequence) `(n_frames, K)`."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None, algorithm="viterbi"):
        """`(log_prob, states)`: the states `(n_frames,)` of X.

        `"viterbi"`: the most likely path of each sequence and the summed joint log-probability of
        the paths with the frames. `"map"`: each frame's most probable state, and (as hmmlearn) the
        sum over frames of the largest posterior, which is not a log-probability.
        """
        if algorithm not in ("viterbi", "map"):
            raise ValueError(f"`algorithm` must be 'viterbi' or 'map', got {algorithm!r}.")
        if algorithm == "map":
            _, posteriors = self.score_samples(X, lengths)
            return float(np.max(posteriors, axis=1).sum()), np.argmax(posteriors, axis=1)
        groups, placement = self._sequences(X, lengths)
        log_initial, log_transition, params = self._log_terms()
        log_prob, paths = 0.0, []
        for group in groups:
            best, path = hmm_em.viterbi(log_initial, log_transition, hmm_em.log_emission(group, params, self.emission))
            log_prob += float(best.sum())
            paths.append(path)
        return log_prob, self._laid_end_to_end(paths, placement, sum(g.shape[0] * g.shape[1] for g in groups))

    def predict(self, X, lengths=None):
        """The Viterbi states `(n_frames,)` of X."""
        return self.decode(X, lengths, algorithm="viterbi")[1]

    def _free_parameters(self):
        k, features = self.num_states, self.dims_per_frame
        counts = {"s": k - 1, "t": k * (k - 1), "m": k * features, "e": k * features,
                  "c": features if self.scale == "shared" else k * features}
        return sum(counts[letter] for letter in self._check_letters("params", self.params))

    def aic(self, X, lengths=None):
        """Akaike's criterion, -2 score + 2 (free parameters in `params`)."""
        return -2.0 * self.score(X, lengths) + 2.0 * self._free_parameters()

    def bic(self, X, lengths=None):
        """Schwarz's criterion, -2 score + (free parameters in `params`) log(frames)."""
        groups, _ = self._sequences(X, lengths)
        frames = sum(g.shape[0] * g.shape[1] for g in groups)
        return -2.0 * self.score(X, lengths) + self._free_parameters() * math.log(frames)

    # -------------------------------------------------------------- sampling
    def sample(self, n_samples=1, random_state=None, currstate=None):
        """`(frames, states)`: `n_samples` frames `(n, H, W, C)` in [-1, 1] of one sequence, and their
        states `(n,)`. `currstate` is the first frame's state (drawn from the start probabilities when
        None); `random_state` an int seed (None: a fresh one)."""
        import tensorflow as tf

        n_samples = int(n_samples)
        if n_samples < 1:
            raise ValueError(f"`n_samples` must be >= 1, got {n_samples}.")
        if random_state is None:
            random_state = int(np.random.default_rng().integers(2**31))
        noise = self.sample_noise(1, tf.constant([int(random_state), 0], tf.int64), num_frames=n_samples)
        if currstate is None:
            states = self.sample_states(noise["state_noise"])
        else:
            if not 0 <= int(currstate) < self.num_states:
                raise ValueError(f"`currstate` must be a state in [0, {self.num_states}), got {currstate}.")
            first = tf.constant([int(currstate)], tf.int32)
            rest = self.sample_states(noise["state_noise"][:, 1:], previous=first)
            states = tf.concat([first[:, None], rest], axis=1)
        frames = self._emit(states, noise["emission_noise"])
        return frames[0].numpy(), states[0].numpy()

    # ------------------------------------------------------------------- fit
    def fit_hmmlearn(self, X, lengths=None):
        """Baum-Welch EM on X as hmmlearn's `fit` (see the module docstring); returns the model."""
        params_letters = self._check_letters("params", self.params)
        init_letters = self._check_letters("init_params", self.init_params)
        if self.feature_dim is not None and not int(self.projection_fitted.numpy()):
            frames = np.asarray(X).reshape((1, -1, self.height, self.width, self.channels))
            self.fit_projection(self._numpy_videos(frames, "X"))
        groups, _ = self._sequences(X, lengths)
        current = self._params64()
        if init_letters:
            start = hmm_em.kmeans_start(groups, self.num_states, self.emission, self.scale, self.min_scale, seed=0)
            current.update({LETTERS[letter]: start[LETTERS[letter]] for letter in init_letters})
        self.monitor_ = ConvergenceMonitor(self.tol, self.n_iter)
        for _ in range(self.n_iter):
            log_likelihoods, posteriors, expected = hmm_em.expectation(groups, current, self.emission)
            updated = hmm_em.m_step(groups, posteriors, expected, current, self.emission, self.scale, self.min_scale)
            current = {**current, **{LETTERS[letter]: updated[LETTERS[letter]] for letter in params_letters}}
            self.monitor_.report(sum(ll.sum() for ll in log_likelihoods))
            if self.monitor_.converged:
                break
        self.set_parameters(**current)
        return self
