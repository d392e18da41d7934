"""Hidden Markov model of videos: one discrete state per frame.

Rabiner, "A tutorial on hidden Markov models and selected applications in
speech recognition", Proc. IEEE 77(2), 1989.

A video `x_1..x_T` is explained by a chain of hidden states `z_1..z_T` in
{0, ..., K-1}:

    p(x_1..x_T) = sum_z p(z_1) prod_{t>1} p(z_t | z_{t-1}) prod_t p(x_t | z_t)

with initial probabilities `softmax(initial_logits)`, transition
probabilities `softmax(transition_logits)` row by row, and a per-state
emission over the whole frame:

- `"gaussian"`: `p(x_t | z_t = k) = prod_d N(x_td; mean_kd, scale_kd)`, a
  diagonal Gaussian on the frame in [-1, 1] space (scales `"per_state"` or
  one `"shared"` vector), `scale = min_scale + softplus(raw)`. A continuous
  density: its bits/dim take the 8-bit dequantisation correction (see
  `vidgen_tf.likelihood`).
- `"bernoulli"`: binary frames (a pixel is on when its value is > 0),
  `p(x_td = 1 | z_t = k) = sigmoid(logit_kd)`. A probability mass: bits/dim
  are bits per binary pixel, with no correction.

The sum over the `K^T` state paths is the forward algorithm, done by
`tfp.distributions.HiddenMarkovModel`; `log_prob` is exact (not a bound).
For large frames a fixed linear projection to `feature_dim` dimensions (PCA
fitted on the data by `fit_projection`, stored as non-trainable weights so
presets and exports keep it) replaces the pixels: the Gaussian emission and
so the likelihood are then of the features `W (x - mean)`, not of the
pixels (`likelihood_space == "pca_features"`), and generated frames are the
sampled features mapped back, `mean + W^T f`, clipped to [-1, 1].

Training is by gradient (`compile` then `fit`) or by Baum-Welch EM
(`fit_em`, k-means initialisation; the float64 numpy maths is in
`vidgen_tf.models.hmm_em`), whose log-likelihood never decreases.

The model also speaks hmmlearn's verbs (`fit(X, lengths)`, `score`,
`score_samples`, `predict`, `predict_proba`, `decode`, `sample`, `aic`,
`bic`, `monitor_`), equal to its `GaussianHMM(covariance_type="diag")` given
the same parameters: see `vidgen_tf.models.hmm_hmmlearn`.
"""

import logging
import math

import keras
import numpy as np
import tensorflow as tf

from vidgen_tf.base import check_positive_int, frame_noise
from vidgen_tf.likelihood import LikelihoodModel
from vidgen_tf.models import _latent, hmm_em
from vidgen_tf.models.hmm_hmmlearn import HmmlearnVerbs
from vidgen_tf.registry import register

logger = logging.getLogger(__name__)

EMISSIONS = ("gaussian", "bernoulli")
SCALES = ("per_state", "shared")
# Probabilities written as logits get this floor, so no logit is -inf.
_LOGIT_FLOOR = 1e-30


def _inverse_softplus(value):
    value = np.asarray(value, np.float64)
    # log(expm1(v)), written to stay finite for large v.
    return value + np.log(-np.expm1(-value))


@register("hmm")
class VideoHMM(HmmlearnVerbs, LikelihoodModel):
    """Hidden Markov model of videos (one hidden state per frame).

    Differences from Rabiner's tutorial (there is no authors' code; `bench/
    hmm_vs_hmmlearn.py` cross-checks the EM against hmmlearn's GaussianHMM):

    - Emissions. Rabiner's continuous densities are mixtures of full-
      covariance Gaussians per state, his discrete ones a table over
      symbols; a frame has thousands of dimensions, so here one diagonal
      Gaussian per state (or one scale vector shared by every state), or
      independent Bernoulli pixels, optionally on a fixed PCA projection.
    - Forward-backward in log space (`hmm_em.forward_backward`) instead of
      his scaled variables (section V.A): the same posteriors, without
      underflow over thousands of pixels.
    - Many sequences (his section V.B, eqs. 109-110): each video's
      posteriors already carry its `1 / P(x)`; `initial_probs` are the mean
      first-frame posteriors.
    - Floors (his section V.C on insufficient data): scales stay at least
      1.01 `min_scale`, Bernoulli probabilities within [1e-6, 1 - 1e-6],
      and zero probabilities are stored as 1e-30 (finite logits).
      hmmlearn's GaussianHMM instead adds a prior to each M step's variance
      (`covars_prior = 1e-2`) and `min_covar = 1e-3` to its starting one.
    - Initialisation by k-means over every frame with one pseudo-count per
      initial and transition probability, not his segmental k-means; and,
      beside EM, training by gradient on the exact log-likelihood.

    Args:
        num_frames: int. Frames per training video (any length can be scored
            and generated). Defaults to 16.
        height: int. Frame height. Defaults to 64.
        width: int. Frame width. Defaults to 64.
        channels: int. Colour channels. Defaults to 1.
        num_classes: int. Must be 0: the model is unconditional. Defaults to 0.
        num_states: int. Number of hidden states K >= 1. Defaults to 8.
        emission: str. `"gaussian"` (diagonal Gaussian on the frame) or
            `"bernoulli"` (binary frames, a pixel is on when > 0). Defaults to
            `"gaussian"`.
        scale: str. Gaussian scales `"per_state"` (K x D) or `"shared"` (one
            D-vector for every state). Defaults to `"per_state"`.
        feature_dim: int or None. If set, Gaussian emissions are over a fixed
            PCA projection of each frame to `feature_dim` dimensions (fitted
            by `fit_projection`; `fit_em` fits it when needed), and the
            likelihood is of those features. Defaults to None (pixels).
        min_scale: float. Floor of the Gaussian scales, in [-1, 1] units.
            Defaults to 0.01.
        n_iter: int. hmmlearn's: EM iterations of `fit(X, lengths)` at most.
            Defaults to 10.
        tol: float. hmmlearn's: `fit(X, lengths)` stops when the summed
            log-likelihood gains less (nats). Defaults to 1e-2.
        params: str or None. hmmlearn's letters of what `fit(X, lengths)`
            updates: `s` start, `t` transitions, `m` means and `c` scales
            (Gaussian) or `e` pixel probabilities (Bernoulli). Defaults to
            None (all: "stmc" or "ste").
        init_params: str or None. Letters `fit(X, lengths)` first initialises
            (k-means for `m`, `c`, `e`; cluster counts for `s`, `t`); "" keeps
            the current parameters. Defaults to None (all).

    Example:
        >>> model = vidgen_tf.build("hmm", num_frames=8, height=16, width=16,
        ...                         num_states=4, emission="bernoulli")
        >>> videos = vidgen_tf.data.make_videos("moving_square", 64, num_frames=8,
        ...                                     height=16, width=16) / 127.5 - 1
        >>> history = model.fit_em(videos, iterations=20)  # mean log-lik per video
        >>> model.posterior_mode(videos[:2])  # (2, 8) Viterbi state paths
        >>> model.generate(4, seed=0, num_frames=20)  # any length
        >>> frames = videos.reshape(-1, 16, 16, 1)   # hmmlearn's way: frames end to end
        >>> model.fit(frames, lengths=[8] * 64).score(frames, lengths=[8] * 64)
        >>> model = vidgen_tf.from_preset("hmm_moving_square")
    """

    variable_length = True
    xla_by_default = True  # measured: see LikelihoodModel.xla_by_default

    def __init__(
        self,
        num_frames=16,
        height=64,
        width=64,
        channels=1,
        num_classes=0,
        num_states=8,
        emission="gaussian",
        scale="per_state",
        feature_dim=None,
        min_scale=0.01,
        n_iter=10,
        tol=1e-2,
        params=None,
        init_params=None,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        if self.num_classes:
            raise ValueError(f"The hmm model is unconditional: `num_classes` must be 0, got {num_classes}.")
        self.num_states = check_positive_int("num_states", num_states)
        if emission not in EMISSIONS:
            raise ValueError(f"`emission` must be one of {EMISSIONS}, got {emission!r}.")
        if scale not in SCALES:
            raise ValueError(f"`scale` must be one of {SCALES}, got {scale!r}.")
        pixels = self.height * self.width * self.channels
        if feature_dim is not None:
            check_positive_int("feature_dim", feature_dim)
            if emission != "gaussian":
                raise ValueError(
                    f"`feature_dim` (a PCA projection) needs emission='gaussian', got emission={emission!r}."
                )
            if feature_dim > pixels:
                raise ValueError(
                    f"`feature_dim` must be <= height * width * channels = {pixels}, got {feature_dim}."
                )
        min_scale = float(min_scale)
        if not (math.isfinite(min_scale) and min_scale > 0):
            raise ValueError(f"`min_scale` must be a positive float, got {min_scale!r}.")
        self.emission = emission
        self.scale = scale
        self.feature_dim = feature_dim
        self.min_scale = min_scale
        self.n_iter = check_positive_int("n_iter", n_iter)
        self.tol = float(tol)
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"`tol` must be a float >= 0, got {tol!r}.")
        self.params = self._check_letters("params", params)
        self.init_params = self._check_letters("init_params", init_params)

        num_states, features = self.num_states, self.dims_per_frame
        self.initial_logits = self.add_weight(
            shape=(num_states,), initializer="zeros", dtype="float32", name="initial_logits"
        )
        self.transition_logits = self.add_weight(
            shape=(num_states, num_states), initializer="zeros", dtype="float32", name="transition_logits"
        )
        if emission == "gaussian":
            self.emission_loc = self.add_weight(
                shape=(num_states, features), initializer=keras.initializers.RandomNormal(stddev=0.5),
                dtype="float32", name="emission_loc",
            )
            start = float(_inverse_softplus(max(1.0 - min_scale, 1e-3)))
            self.emission_scale_raw = self.add_weight(
                shape=(num_states if scale == "per_state" else 1, features),
                initializer=keras.initializers.Constant(start), dtype="float32", name="emission_scale_raw",
            )
        else:
            self.emission_logits = self.add_weight(
                shape=(num_states, features), initializer=keras.initializers.RandomNormal(stddev=0.5),
                dtype="float32", name="emission_logits",
            )
        if feature_dim is not None:
            # Until fitted, the projection keeps the first `feature_dim` pixels.
            self.projection_components = self.add_weight(
                shape=(feature_dim, pixels), initializer="identity", dtype="float32",
                trainable=False, name="projection_components",
            )
            self.projection_mean = self.add_weight(
                shape=(pixels,), initializer="zeros", dtype="float32", trainable=False, name="projection_mean",
            )
            self.projection_fitted = self.add_weight(
                shape=(), initializer="zeros", dtype="int32", trainable=False, name="projection_fitted",
            )
        self.built = True

    # ------------------------------------------------------------- properties
    @property
    def likelihood_space(self):
        """`"pixels"`, or `"pca_features"` when frames are projected to `feature_dim`."""
        return "pixels" if self.feature_dim is None else "pca_features"

    @property
    def likelihood_is_discrete(self):
        return self.emission == "bernoulli"

    @property
    def dims_per_frame(self):
        if self.feature_dim is not None:
            return self.feature_dim
        return self.height * self.width * self.channels

    def emission_scales(self):
        """Gaussian scales `(K, E)` (a shared vector broadcast to every state)."""
        scales = self.min_scale + tf.nn.softplus(self.emission_scale_raw)
        return tf.broadcast_to(scales, [self.num_states, self.dims_per_frame])

    # ------------------------------------------------------------ likelihood
    def _observations(self, videos):
        """Videos `(B, T, H, W, C)` -> per-frame observations `(B, T, E)` float32."""
        self.check_videos(videos, allow_any_length=True)
        videos = tf.cast(videos, tf.float32)
        batch, frames = tf.shape(videos)[0], tf.shape(videos)[1]
        flat = tf.reshape(videos, [batch, frames, self.height * self.width * self.channels])
        if self.emission == "bernoulli":
            return tf.cast(flat > 0.0, tf.float32)
        if self.feature_dim is not None:
            return tf.matmul(flat - self.projection_mean, self.projection_components, transpose_b=True)
        return flat

    def distribution(self, num_steps):
        """The `tfd.HiddenMarkovModel` over `num_steps` frames' observations `(T, E)`."""
        tfd = _latent.tfd()
        if self.emission == "gaussian":
            frame = tfd.Normal(loc=tf.convert_to_tensor(self.emission_loc), scale=self.emission_scales())
        else:
            frame = tfd.Bernoulli(logits=tf.convert_to_tensor(self.emission_logits), dtype=tf.float32)
        return tfd.HiddenMarkovModel(
            initial_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.initial_logits)),
            transition_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.transition_logits)),
            observation_distribution=tfd.Independent(frame, reinterpreted_batch_ndims=1),
            num_steps=num_steps,
        )

    def _checked(self, videos):
        observations = self._observations(videos)
        observations = tf.debugging.assert_all_finite(
            observations, "hmm: the videos contain NaN or Inf."
        )
        return observations, self.distribution(tf.shape(observations)[1])

    def log_prob(self, videos, training=False):
        """Exact log-likelihood `(B,)` in nats per video (forward algorithm).

        Of the frames in [-1, 1] for Gaussian emissions without projection, of
        the binarised frames for Bernoulli emissions, of the PCA features when
        `feature_dim` is set (see `likelihood_space`).

        Args:
            videos: `(B, T, H, W, C)`, any T >= 1: float in [-1, 1] or uint8
                in [0, 255] (scored as x / 127.5 - 1; see `as_float_videos`).
            training: bool. Unused (the model has no dropout or noise).
        """
        observations, hmm = self._checked(self.as_float_videos(videos))
        return hmm.log_prob(observations)

    def posterior_mode(self, videos):
        """The most likely state path (Viterbi), int32 `(B, T)`."""
        observations, hmm = self._checked(videos)
        return tf.cast(hmm.posterior_mode(observations), tf.int32)

    def posterior_marginals(self, videos):
        """p(z_t = k | video), float32 `(B, T, K)` (forward-backward)."""
        observations, hmm = self._checked(videos)
        return hmm.posterior_marginals(observations).probs_parameter()

    # ------------------------------------------------------ gradient training
    def fit(self, x=None, lengths=None, **kwargs):
        """hmmlearn's `fit(X, lengths)` (EM), or `keras.Model.fit` (gradient).

        `fit(X)` / `fit(X, lengths)` with an array X and nothing else is
        hmmlearn's EM (`fit_hmmlearn`; returns the model) when `lengths` is
        given or the model is not compiled (Keras could not fit it). Otherwise
        it is `keras.Model.fit` on the negative log-likelihood (a compiled model,
        a `tf.data` dataset, Keras's arguments); with `feature_dim`, only once
        the PCA projection is fitted (unfitted, it would keep each frame's
        first `feature_dim` pixels).
        """
        if not kwargs and isinstance(x, (np.ndarray, list)) and (lengths is not None or not self.compiled):
            return self.fit_hmmlearn(x, lengths)
        if lengths is not None:
            raise ValueError("`lengths` goes with hmmlearn's fit(X, lengths) alone; Keras's fit takes no lengths.")
        if self.feature_dim is not None and not int(self.projection_fitted.numpy()):
            raise ValueError(
                f"hmm with feature_dim={self.feature_dim} has no fitted PCA projection: call "
                "fit_projection(videos) (or fit_em(videos), which fits it) before gradient fit()."
            )
        return super().fit(x, **kwargs)

    # ------------------------------------------------------------------ cost
    def extra_multiply_adds(self, num_frames):
        """Multiply-adds of scoring and of generating one clip of `num_frames` frames, in closed form.

        The HMM has no layers: with `K` states, `D` pixels and `E` emission
        dimensions per frame (`feature_dim`, else `D`), scoring is the PCA
        projection (`D E` per frame, with `feature_dim`), the emission
        log-densities of every frame under every state (`2 K E` per frame for
        Gaussians: scale the difference, square and sum; `K E` for
        Bernoulli pixels) and the forward algorithm (`K^2` per transition,
        `(T - 1) K^2`). Generation draws each frame's emission (`E` per frame
        for Gaussians, `loc + scale * noise`, plus the projection back, `E D`;
        Bernoulli pixels are comparisons, 0) and walks the state chain by
        comparisons (0). See `vidgen_tf.cost`.

        Args:
            num_frames: int. `T`.

        Returns:
            dict with `log_prob` and `generation`, ints.
        """
        k, features = self.num_states, self.dims_per_frame
        pixels = self.height * self.width * self.channels
        projection = pixels * features if self.feature_dim is not None else 0
        gaussian = self.emission == "gaussian"
        emission = (2 if gaussian else 1) * k * features
        return {
            "log_prob": num_frames * (projection + emission) + (num_frames - 1) * k * k,
            "generation": num_frames * (features + projection) if gaussian else 0,
        }

    # ------------------------------------------------------------ generation
    def noise_spec(self, num_frames=None):
        return {
            "state_noise": tf.TensorSpec([None, num_frames], tf.float32, name="state_noise"),
            "emission_noise": tf.TensorSpec(
                [None, num_frames, self.dims_per_frame], tf.float32, name="emission_noise"
            ),
        }

    def sample_noise(self, batch_size, seed, num_frames=None, start_frame=0):
        """`state_noise` U[0, 1) `(B, T)`; `emission_noise` `(B, T, E)`, N(0, 1)
        for Gaussian emissions and U[0, 1) for Bernoulli ones; both per frame,
        frames `start_frame..start_frame + T - 1` (see `frame_noise`)."""
        num_frames = self.num_frames if num_frames is None else num_frames
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        kind = "normal" if self.emission == "gaussian" else "uniform"
        return {
            "state_noise": frame_noise(seeds[0], batch_size, num_frames, (), start_frame, "uniform"),
            "emission_noise": frame_noise(seeds[1], batch_size, num_frames, [self.dims_per_frame], start_frame, kind),
        }

    def noise_distributions(self):
        """`state_noise` U[0, 1) (read by inverse CDF in `sample_states`); `emission_noise`
        N(0, 1) for Gaussian emissions, U[0, 1) for Bernoulli ones (compared with the pixel's
        probability)."""
        uniform = {"kind": "uniform", "low": 0.0, "high": 1.0}
        emission = {"kind": "normal", "mean": 0.0, "stddev": 1.0} if self.emission == "gaussian" else uniform
        return {"state_noise": dict(uniform), "emission_noise": dict(emission)}

    def sample_states(self, state_noise, previous=None):
        """State paths int32 `(B, T)` from uniform noise `(B, T)` by inverse CDF.

        `z_1` is the first k whose cumulative initial probability exceeds
        `u_1`, `z_t` likewise in the row `z_{t-1}` of the transition matrix.

        Args:
            state_noise: float `(B, T)` in [0, 1).
            previous: int32 `(B,)`, the state of the frame before the first
                one, -1 where there is none (the chain starts); None: -1.
        """
        u = tf.cast(state_noise, tf.float32)  # (B, T)
        # Only the first K-1 cumulative sums: the last state takes what is left,
        # so rounding in the sums can never give an index K.
        initial_cdf = tf.cumsum(tf.nn.softmax(self.initial_logits))[:-1]  # (K-1,)
        transition_cdf = tf.cumsum(tf.nn.softmax(self.transition_logits, axis=-1), axis=-1)[:, :-1]  # (K, K-1)
        if previous is None:
            previous = -tf.ones(tf.shape(u)[:1], tf.int32)

        def step(previous, values):  # (B,), (B,) -> (B,)
            cdf = tf.where(
                (previous >= 0)[:, None], tf.gather(transition_cdf, tf.maximum(previous, 0)), initial_cdf[None]
            )  # (B, K-1)
            return tf.reduce_sum(tf.cast(values[:, None] >= cdf, tf.int32), axis=-1)

        states = tf.scan(step, tf.transpose(u), initializer=tf.cast(previous, tf.int32))  # (T, B)
        return tf.transpose(states)  # (B, T)

    def generate_from_noise(self, noise, labels=None, training=False, generator=None):
        """Videos `(B, T, H, W, C)` in [-1, 1], a deterministic function of the noise.

        Args:
            noise: dict with `state_noise` `(B, T)` and `emission_noise`
                `(B, T, E)` (see `sample_noise`).
            labels: must be None (unconditional).
            training: bool. Unused.
            generator: unused (kept for the export contract).
        """
        self.check_labels(labels)
        return self._emit(self.sample_states(noise["state_noise"]), noise["emission_noise"])

    def _emit(self, states, emission_noise):
        """Frames `(B, T, H, W, C)` in [-1, 1] of state paths `(B, T)` and their emission noise."""
        eps = tf.cast(emission_noise, tf.float32)  # (B, T, E)
        if self.emission == "gaussian":
            frames = tf.gather(self.emission_loc, states) + tf.gather(self.emission_scales(), states) * eps
            if self.feature_dim is not None:
                frames = tf.matmul(frames, self.projection_components) + self.projection_mean
        else:
            on = eps < tf.sigmoid(tf.gather(self.emission_logits, states))
            frames = tf.where(on, 1.0, -1.0)
        batch, steps = tf.shape(states)[0], tf.shape(states)[1]
        videos = tf.reshape(frames, [batch, steps, self.height, self.width, self.channels])
        return tf.clip_by_value(videos, -1.0, 1.0)

    # ------------------------------------------------------------- streaming
    # Given the hidden states, frames are independent: the state is the last
    # frame's hidden state.
    streaming_unavailable = None
    frame_noise_names = ("state_noise", "emission_noise")

    def initial_state(self, batch_size, noise=None, labels=None):
        """`hidden_state` int32 `(B,)`: the last frame's state, -1 before the first frame."""
        self.check_labels(labels)
        return {"hidden_state": -tf.ones(tf.reshape(tf.cast(batch_size, tf.int32), [1]), tf.int32)}

    def generate_chunk(self, state, noise):
        states = self.sample_states(noise["state_noise"], previous=state["hidden_state"])  # (B, K)
        frames = self._emit(states, noise["emission_noise"])
        return frames, {"hidden_state": states[:, -1]}

    # ------------------------------------------------------------ parameters
    def parameters(self):
        """The model's probabilities and emission parameters as numpy arrays.

        Returns:
            dict with `initial_probs` `(K,)`, `transition_probs` `(K, K)` and
            either `means`, `scales` `(K, E)` (Gaussian) or `probs` `(K, E)`
            (Bernoulli: probability that a pixel is on).
        """
        result = {
            "initial_probs": tf.nn.softmax(self.initial_logits).numpy(),
            "transition_probs": tf.nn.softmax(self.transition_logits, axis=-1).numpy(),
        }
        if self.emission == "gaussian":
            result["means"] = self.emission_loc.numpy()
            result["scales"] = self.emission_scales().numpy()
        else:
            result["probs"] = tf.sigmoid(self.emission_logits).numpy()
        return result

    def set_parameters(self, initial_probs, transition_probs, means=None, scales=None, probs=None):
        """Sets the model from probabilities and emission parameters.

        Args:
            initial_probs: `(K,)` probabilities of the first state.
            transition_probs: `(K, K)` rows p(z_t | z_{t-1}).
            means: `(K, E)` Gaussian means (Gaussian emission).
            scales: `(K, E)` Gaussian scales, each > `min_scale`; with
                `scale="shared"` every row must be the same (or pass `(1, E)`).
            probs: `(K, E)` probabilities that a pixel is on (Bernoulli).

        Zero initial or transition probabilities are stored as 1e-30 so that
        every logit is finite (gradients stay defined): a path through them
        then costs about 69 nats instead of being impossible.
        """
        num_states, features = self.num_states, self.dims_per_frame
        initial = self._checked_array("initial_probs", initial_probs, (num_states,))
        transition = self._checked_array("transition_probs", transition_probs, (num_states, num_states))
        for name, value, axis in (("initial_probs", initial, None), ("transition_probs", transition, -1)):
            if np.any(value < 0) or not np.allclose(value.sum(axis=axis), 1.0, atol=1e-5):
                raise ValueError(f"`{name}` must be non-negative and sum to 1 (per row), got {value}.")
        self.initial_logits.assign(np.log(np.maximum(initial, _LOGIT_FLOOR)))
        self.transition_logits.assign(np.log(np.maximum(transition, _LOGIT_FLOOR)))
        if self.emission == "gaussian":
            if means is None or scales is None:
                raise ValueError("Gaussian emissions need `means` and `scales`.")
            self.emission_loc.assign(self._checked_array("means", means, (num_states, features)))
            scales = np.asarray(scales, np.float64)
            if self.scale == "shared":
                scales = scales.reshape(-1, features)
                if not np.allclose(scales, scales[:1]):
                    raise ValueError("`scales` must be the same for every state when scale='shared'.")
                scales = scales[:1]
            else:
                scales = self._checked_array("scales", scales, (num_states, features))
            if np.any(scales <= self.min_scale):
                raise ValueError(f"`scales` must all be > min_scale={self.min_scale}, got min {scales.min()}.")
            self.emission_scale_raw.assign(_inverse_softplus(scales - self.min_scale))
        else:
            if probs is None:
                raise ValueError("Bernoulli emissions need `probs`.")
            probs = self._checked_array("probs", probs, (num_states, features))
            if np.any(probs <= 0) or np.any(probs >= 1):
                raise ValueError("`probs` must be in the open interval (0, 1).")
            self.emission_logits.assign(np.log(probs) - np.log1p(-probs))

    @staticmethod
    def _checked_array(name, value, shape):
        value = np.asarray(value, np.float64)
        if value.shape != tuple(shape):
            raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {value.shape}.")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"`{name}` contains NaN or Inf.")
        return value

    # ------------------------------------------------------------ EM fitting
    def _numpy_videos(self, videos, name="videos"):
        videos = np.asarray(videos)
        if videos.dtype.kind not in "f":
            raise ValueError(f"`{name}` must be float in [-1, 1], got dtype {videos.dtype}.")
        self.check_videos(tf.TensorSpec(videos.shape, tf.float32), allow_any_length=True)
        if not np.all(np.isfinite(videos)):
            raise ValueError(f"`{name}` contain NaN or Inf (shape {videos.shape}).")
        return videos

    def fit_projection(self, videos):
        """Fits the PCA projection on the frames of `videos` `(N, T, H, W, C)`.

        Stores the top `feature_dim` principal directions and the mean frame
        as non-trainable weights. Call it before gradient training a model
        with `feature_dim`; `fit_em` calls it when the projection is unfitted.
        """
        from sklearn.decomposition import PCA

        if self.feature_dim is None:
            raise ValueError("fit_projection needs a model built with `feature_dim`.")
        videos = self._numpy_videos(videos)
        frames = videos.reshape(-1, self.height * self.width * self.channels).astype(np.float64)
        if frames.shape[0] < self.feature_dim:
            raise ValueError(
                f"fit_projection needs at least feature_dim={self.feature_dim} frames, got {frames.shape[0]}."
            )
        pca = PCA(n_components=self.feature_dim, svd_solver="full").fit(frames)
        self.projection_components.assign(pca.components_.astype(np.float32))
        self.projection_mean.assign(pca.mean_.astype(np.float32))
        self.projection_fitted.assign(1)
        logger.info(
            "PCA to %d features keeps %.1f%% of the frame variance.",
            self.feature_dim, 100 * float(np.sum(pca.explained_variance_ratio_)),
        )

    def _numpy_observations(self, videos):
        flat = videos.reshape(videos.shape[0], videos.shape[1], -1).astype(np.float64)
        if self.emission == "bernoulli":
            return (flat > 0).astype(np.float64)
        if self.feature_dim is not None:
            components = self.projection_components.numpy().astype(np.float64)
            return (flat - self.projection_mean.numpy().astype(np.float64)) @ components.T
        return flat

    def fit_em(self, videos, iterations=100, tol=1e-3, seed=0, initialize=True):
        """Fits the model by Baum-Welch expectation-maximisation.

        Starts from k-means on every frame (state means/probabilities from the
        clusters, initial and transition probabilities from cluster counts),
        then alternates forward-backward (E) and closed-form updates (M) in
        float64 numpy until the mean log-likelihood gains less than `tol` or
        `iterations` are done. The log-likelihood never decreases. Fits the
        PCA projection first when the model has an unfitted one.

        Args:
            videos: float array `(N, T, H, W, C)` in [-1, 1] (any T >= 1).
            iterations: int. Maximum EM iterations. Defaults to 100.
            tol: float. Stop when the mean log-likelihood per video rises by
                less than this (nats). Defaults to 1e-3.
            seed: int. Seed of the k-means initialisation. Defaults to 0.
            initialize: bool. Start from k-means (True) or from the model's
                current parameters (False). Defaults to True.

        Returns:
            float64 array: the mean log-likelihood per video (nats) at the
            start and after each iteration, so `history[-1]` is the fitted
            model's (equal to `mean(log_prob(videos))` up to float32 rounding;
            zero probabilities are stored as 1e-30, see `set_parameters`).
        """
        iterations = check_positive_int("iterations", iterations)
        tol = float(tol)
        if not tol >= 0:
            raise ValueError(f"`tol` must be >= 0, got {tol!r}.")
        videos = self._numpy_videos(videos)
        if self.feature_dim is not None and not int(self.projection_fitted.numpy()):
            self.fit_projection(videos)
        observations = self._numpy_observations(videos)  # (N, T, E)
        if initialize:
            params = hmm_em.kmeans_start(
                observations, self.num_states, self.emission, self.scale, self.min_scale, seed
            )
        else:
            params = {k: np.asarray(v, np.float64) for k, v in self.parameters().items()}
        params, history = hmm_em.baum_welch(
            observations, params, self.emission, self.scale, self.min_scale, iterations, tol
        )
        self.set_parameters(**params)
        return np.asarray(history)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            num_states=self.num_states,
            emission=self.emission,
            scale=self.scale,
            feature_dim=self.feature_dim,
            min_scale=self.min_scale,
            n_iter=self.n_iter,
            tol=self.tol,
            params=self.params,
            init_params=self.init_params,
        )
        return config
