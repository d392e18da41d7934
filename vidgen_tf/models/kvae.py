"""Kalman VAE: a per-frame VAE whose latents follow a switching linear-Gaussian model.

Fraccaro, Kamronn, Paquet and Winther, "A Disentangled Recognition and
Nonlinear Dynamics Model for Unsupervised Learning", NeurIPS 2017,
https://arxiv.org/abs/1710.05741.

The idea: split what a frame looks like from how things move. A convolutional
VAE maps every frame `x_t` to a small pseudo-observation `a_t` (2 numbers for
a bouncing ball: roughly its position), and the sequence `a_1..a_T` is
modelled by a linear-Gaussian state space model (LGSSM) over a state `z_t`:

    z_1 ~ N(0, s0 I),   z_t = A_t z_{t-1} + e_t,  e_t ~ N(0, Q),  Q = q I
                        a_t = C_t z_t + d_t,      d_t ~ N(0, R),  R = r I
                        x_t ~ p(x_t | a_t)        (Bernoulli pixels, decoder)

The matrices are a mixture of `K` learned linear dynamics,
`A_t = sum_k alpha_t^k A^(k)`, `C_t = sum_k alpha_t^k C^(k)`, whose weights
`alpha_t = softmax(W h_t)` come from an LSTM `h_t` over the past
pseudo-observations `a_1..a_{t-1}` (the "dynamics parameter network"): the
model switches, smoothly, between linear regimes (e.g. free flight and
bouncing off a wall). With `num_dynamics=1` the dynamics are one fixed
learned linear model and no LSTM is built.

Training maximises the evidence lower bound, with `q(a | x) = prod_t
N(a_t; mu(x_t), sigma(x_t)^2)` from the encoder:

    ELBO(x) = E_q(a|x)[ log p(x | a) - log q(a | x) + log p(a) ] <= log p(x)

estimated with one reparameterised sample of `a` per video. `log p(a)` is the
LGSSM's exact marginal likelihood of the sampled pseudo-observations,
integrating the state out with the Kalman filter (equal to the paper's
smoothed-posterior form `E_p(z|a)[log p(a, z) - log p(z | a)]`). Because
`alpha_t` depends only on `a_{<t}`, `prod_t p(a_t | a_{<t})` is a proper
density. For one fixed dynamics the term is
`tfp.distributions.LinearGaussianStateSpaceModel.log_prob` (and filtering
and smoothing are TFP's too); for a mixture a Kalman filter whose step also
advances the LSTM computes it (`vidgen_tf.models.kalman`, tested against
TFP's filter and smoother given the same matrices).

The same filter, with missing observations, gives prediction (filter a
prefix, then keep stepping with every later frame missing: the state is
rolled forward by the dynamics and the LSTM reads the predicted `C_t z_t`)
and imputation (filter with the missing frames masked, then
Rauch-Tung-Striebel smoothing). Generation samples the state space model
from Gaussian noise inputs and decodes the sampled `a_t` (the decoder's mean
frames), a deterministic function of the noise.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from vidgen_tf.base import check_positive_int, frame_noise
from vidgen_tf.layers import LeakyReLU, doubling_stages
from vidgen_tf.likelihood import LikelihoodModel
from vidgen_tf.models import kalman
from vidgen_tf.models.kalman import rts_smoother
from vidgen_tf.models._latent import INFERENCE_SEED, MIN_POSTERIOR_SCALE, posterior_noise  # noqa: F401
from vidgen_tf.models.video_vae import discretized_logistic_log_prob
from vidgen_tf.registry import register

LIKELIHOODS = ("bernoulli", "discretized_logistic")
_LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------ networks


def _encoder(frame_shape, stages, base_filters, observation_dim):
    """Frames `(N, H, W, C)` -> parameters of q(a_t | x_t) `(N, 2 * observation_dim)`."""
    stack = [keras.Input(frame_shape)]
    for stage in range(stages):
        stack += [layers.Conv2D(base_filters * 2**stage, 4, strides=2, padding="same"), LeakyReLU(0.2)]
    stack += [
        layers.Flatten(),
        layers.Dense(8 * base_filters),
        LeakyReLU(0.2),
        layers.Dense(2 * observation_dim, dtype="float32", name="posterior"),
    ]
    return keras.Sequential(stack, name="encoder")


def _decoder(frame_shape, stages, base_filters, observation_dim, outputs):
    """Pseudo-observations `(N, observation_dim)` -> pixel parameters `(N, H, W, outputs)`."""
    height, width, _ = frame_shape
    grid = (height // 2**stages, width // 2**stages)
    filters = base_filters * 2 ** (stages - 1)
    stack = [
        keras.Input((observation_dim,)),
        layers.Dense(8 * base_filters),
        LeakyReLU(0.2),
        layers.Dense(grid[0] * grid[1] * filters),
        LeakyReLU(0.2),
        layers.Reshape(grid + (filters,)),
    ]
    for stage in reversed(range(stages)):
        stack += [
            layers.Conv2DTranspose(base_filters * 2**stage, 4, strides=2, padding="same"),
            LeakyReLU(0.2),
        ]
    stack.append(layers.Conv2D(outputs, 3, padding="same", dtype="float32", name="pixel_parameters"))
    return keras.Sequential(stack, name="decoder")


def _num_steps(observations):
    """The number of steps of `(B, T, p)` observations: static when known."""
    steps = observations.shape[1]
    return tf.shape(observations)[1] if steps is None else steps


@register("kvae")
class KalmanVAE(LikelihoodModel):
    """Kalman VAE (Fraccaro et al., NeurIPS 2017): frame VAE + switching LGSSM dynamics.

    Differences from the authors' code (github.com/simonkamronn/kvae,
    TensorFlow 1, the defaults of `kvae/utils/config.py`). The same: `a_t`
    2-d, `z_t` 4-d, `K = 3`, fixed `Q = 0.08 I` and `R = 0.03 I`, every
    `A^(k)` starting at the identity, one LSTM of 50 units whose softmax
    weights mix both `A` and `C` and that reads the prediction `C_t E[z_t |
    a_{<t}]` at missing steps, Bernoulli pixels. Different:

    - Networks. Theirs: three 3x3 stride-2 ReLU convolutions of 32 filters
      and linear heads; a decoder of one linear layer to that grid, then per
      stage a 3x3 ReLU convolution to 4x the filters and a depth-to-space x2,
      then a 1x1 sigmoid convolution. Here the zoo's 4x4 stride-2 LeakyReLU
      stacks (filters doubling to a 4-pixel grid, one hidden dense layer),
      as `video_vae`: the published preset was trained with them.
    - Posterior scale. Theirs is bounded, `var = R sigmoid(.)`, never wider
      than the observation noise; here `softplus(.) + 1e-4`, as `video_vae`.
      Changing it changes what trained weights mean (the preset would need
      retraining).
    - First mixture weights. Their LSTM first reads a learned `a_0`, so
      `alpha_1` is a learned constant; here `alpha_1 = softmax(b)` from the
      LSTM's zero state (the output layer's bias). A new weight would not
      load into the preset.
    - Initial state. Theirs `z_1 ~ N(0, 20 I)`, and their code never samples
      the prior (generation starts from the smoothed state of observed
      frames); here `generate` samples `z_1` from the prior, so its variance
      also sets the spread of the first generated frames:
      `initial_state_variance` defaults to 1, as the preset was trained.
    - `C^(k)` start from `N(0, 1/n)`, theirs from `N(0, 0.05^2)`; kept as the
      preset was trained (not re-measured). No control inputs `B u_t`
      (theirs are zero on their ball data).
    - ELBO. They estimate the LGSSM term with one sample of `z` from the
      smoothed posterior, `log p(z) + log p(a | z) - log q(z | a)`; here
      `log p(a)` is exact (the Kalman filter): the same expectation without
      that sampling noise. They average the terms per frame and weight
      `log p(x | a)` by `scale_reconstruction = 0.3` in training; here
      training minimises the unweighted bound summed over each video, so
      that the reported `nll` and bits/dim are the bound's.
    - Schedule. Theirs: Adam at 0.007, times 0.85 every 20 epochs
      (staircase), gradients clipped to global norm 150 (of their per-frame
      loss), batch 32, 80 epochs, the LSTM frozen for the first 10 epochs.
      Here `compile` defaults to Adam(1e-3) on every weight from the start.
      Their optimizer is `keras.optimizers.Adam(
      keras.optimizers.schedules.ExponentialDecay(7e-3, 20 * steps_per_epoch,
      0.85, staircase=True), global_clipnorm=150 * num_frames)` (the loss
      here is per video, `num_frames` times theirs) and their frozen-LSTM
      phase `compile(dynamics_warmup_steps=10 * steps_per_epoch)`; there the
      encoder also gets no gradient through the frozen mixture weights
      (theirs only leaves the LSTM's variables out of the update).

    Args:
        num_frames: int. Frames per training video; the model scores,
            generates, predicts and imputes any length. Defaults to 16.
        height: int. Frame height, `4 * 2**k` with `k >= 1`. Defaults to 32.
        width: int. Frame width, a multiple of `2**k`. Defaults to 32.
        channels: int. Colour channels. Defaults to 1.
        num_classes: int. Must be 0: the model is unconditional. Defaults to 0.
        observation_dim: int. Size of the pseudo-observation `a_t` (2 for
            one bouncing ball, as in the paper). Defaults to 2.
        state_dim: int. Size of the LGSSM state `z_t`. Defaults to 4.
        num_dynamics: int. Number `K` of linear dynamics mixed by the
            LSTM's weights; 1 means one fixed learned linear model (no
            LSTM). Defaults to 3.
        dynamics_units: int. Units of the LSTM over past pseudo-observations
            that weights the dynamics. Defaults to 50 (the authors'
            `alpha_units`).
        base_filters: int. Filters of the first encoder convolution, doubled
            at each stride-2 stage down to a 4-pixel grid (the decoder
            mirrors it). Defaults to 32.
        likelihood: str. `"bernoulli"` (binary pixels, on when > 0, as the
            paper) or `"discretized_logistic"` (8-bit pixels, one learned
            log-scale per channel, as `video_vae`). Defaults to `"bernoulli"`.
        transition_noise: float. Variance `q` of the state noise, `Q = q I`
            (fixed). Defaults to 0.08.
        observation_noise: float. Variance `r` of the pseudo-observation
            noise, `R = r I` (fixed). Defaults to 0.03.
        initial_state_variance: float. Variance `s0` of `z_1 ~ N(0, s0 I)`.
            Defaults to 1.0.

    Example:
        >>> model = vidgen_tf.build("kvae", num_frames=12, height=16, width=16,
        ...                         base_filters=8)
        >>> videos = vidgen_tf.data.make_videos("bouncing_balls", 256, num_frames=12,
        ...     height=16, width=16, num_balls=1) / 127.5 - 1
        >>> model.compile(seed=0)
        >>> model.fit(videos.astype("float32"), batch_size=32, epochs=10)
        >>> model.log_prob(videos[:2])                 # (2,) ELBO, nats per video
        >>> model.predict_frames(videos[:2, :6], 6)    # (2, 6, 16, 16, 1) continuation
        >>> mask = np.array([[1] * 4 + [0] * 4 + [1] * 4] * 2, bool)
        >>> model.impute(videos[:2], mask)             # missing frames filled in
        >>> model.generate(4, seed=0, num_frames=20)
        >>> model = vidgen_tf.from_preset("kvae_bouncing_balls")
    """

    log_prob_is_bound = True
    variable_length = True
    xla_by_default = True  # measured: see LikelihoodModel.xla_by_default

    def __init__(
        self,
        num_frames=16,
        height=32,
        width=32,
        channels=1,
        num_classes=0,
        observation_dim=2,
        state_dim=4,
        num_dynamics=3,
        dynamics_units=50,
        base_filters=32,
        likelihood="bernoulli",
        transition_noise=0.08,
        observation_noise=0.03,
        initial_state_variance=1.0,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        # ---- configuration
        if self.num_classes:
            raise ValueError(f"The kvae model is unconditional: `num_classes` must be 0, got {num_classes}.")
        self.observation_dim = check_positive_int("observation_dim", observation_dim)
        self.state_dim = check_positive_int("state_dim", state_dim)
        self.num_dynamics = check_positive_int("num_dynamics", num_dynamics)
        self.dynamics_units = check_positive_int("dynamics_units", dynamics_units)
        self.base_filters = check_positive_int("base_filters", base_filters)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"`likelihood` must be one of {LIKELIHOODS}, got {likelihood!r}.")
        self.likelihood = likelihood
        for name, value in (("transition_noise", transition_noise), ("observation_noise", observation_noise),
                            ("initial_state_variance", initial_state_variance)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(f"`{name}` must be a finite float > 0 (a variance), got {value!r}.")
        self.transition_noise = float(transition_noise)
        self.observation_noise = float(observation_noise)
        self.initial_state_variance = float(initial_state_variance)
        stages = doubling_stages(self.height, self.width, model="kvae")

        # ---- layers: frame VAE
        frame_shape = (self.height, self.width, self.channels)
        self.encoder = _encoder(frame_shape, stages, self.base_filters, self.observation_dim)
        self.decoder = _decoder(frame_shape, stages, self.base_filters, self.observation_dim, self.channels)
        if likelihood == "discretized_logistic":
            self.log_scale = self.add_weight(
                shape=(self.channels,), initializer=keras.initializers.Constant(-2.0),
                dtype="float32", name="log_scale",
            )
        # ---- layers: K linear dynamics (A near identity, as the paper) and their weighting LSTM
        n, p, k = self.state_dim, self.observation_dim, self.num_dynamics
        self.transition_bank = self.add_weight(
            shape=(k, n, n), dtype="float32", name="transition_matrices",
            initializer=lambda shape, dtype=None: tf.eye(n, batch_shape=[k], dtype="float32"),
        )
        self.observation_bank = self.add_weight(
            shape=(k, p, n), dtype="float32", name="observation_matrices",
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(n)),
        )
        if k > 1:
            self.dynamics_cell = layers.LSTMCell(self.dynamics_units, dtype="float32", name="dynamics_lstm")
            self.dynamics_cell.build((None, p))
            self.dynamics_weights = layers.Dense(k, dtype="float32", name="dynamics_weights")
            self.dynamics_weights.build((None, self.dynamics_units))
        self.built = True

    # ------------------------------------------------------------- properties
    @property
    def likelihood_is_discrete(self):
        """True: Bernoulli and discretised logistic pixels are probability masses."""
        return True

    def _covariances(self):
        n, p = self.state_dim, self.observation_dim
        return (
            self.transition_noise * tf.eye(n),
            self.observation_noise * tf.eye(p),
            self.initial_state_variance * tf.eye(n),
        )

    # ----------------------------------------------------------------- frames
    def _checked(self, videos):
        self.check_videos(videos, allow_any_length=True)
        videos = tf.cast(videos, tf.float32)
        return tf.debugging.assert_all_finite(videos, "kvae: the videos contain NaN or Inf.")

    def encode(self, videos, training=False):
        """`q(a_t | x_t)` of every frame: `(mean, scale)`, each float32 `(B, T, observation_dim)`.

        Args:
            videos: float `(B, T, H, W, C)` in [-1, 1], any `T`.
            training: bool. Passed to the encoder. Defaults to False.
        """
        videos = self._checked(videos)
        shape = tf.shape(videos)
        frames = tf.reshape(videos, [-1, self.height, self.width, self.channels])
        parameters = tf.cast(self.encoder(frames, training=training), tf.float32)
        parameters = tf.reshape(parameters, [shape[0], shape[1], 2 * self.observation_dim])
        mean, raw_scale = tf.split(parameters, 2, axis=-1)
        return mean, tf.nn.softplus(raw_scale) + MIN_POSTERIOR_SCALE

    def decoder_parameters(self, observations, training=False):
        """Pixel parameters of `p(x_t | a_t)` for `observations` `(B, T, observation_dim)`.

        Returns:
            dict of float32 `(B, T, H, W, C)`: `logits` (Bernoulli) or `mean`
            and `log_scale` (discretised logistic).
        """
        observations = tf.cast(observations, tf.float32)
        shape = tf.shape(observations)
        flat = tf.reshape(observations, [-1, self.observation_dim])
        outputs = tf.cast(self.decoder(flat, training=training), tf.float32)
        outputs = tf.reshape(outputs, [shape[0], shape[1], self.height, self.width, self.channels])
        if self.likelihood == "bernoulli":
            return {"logits": outputs}
        return {"mean": outputs, "log_scale": tf.broadcast_to(self.log_scale, tf.shape(outputs))}

    def decode(self, observations, training=False):
        """Mean frames `(B, T, H, W, C)` in [-1, 1] of pseudo-observations `(B, T, observation_dim)`."""
        parameters = self.decoder_parameters(observations, training=training)
        if self.likelihood == "bernoulli":
            return 2.0 * tf.sigmoid(parameters["logits"]) - 1.0
        return tf.clip_by_value(parameters["mean"], -1.0, 1.0)

    def pixel_log_prob(self, videos, parameters):
        """`log p(x | a)` summed over each video's frames and pixels, `(B,)` nats."""
        if self.likelihood == "bernoulli":
            targets = tf.cast(videos > 0.0, tf.float32)
            logits = parameters["logits"]
            pixels = -tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        else:
            pixels = discretized_logistic_log_prob(videos, parameters["mean"], parameters["log_scale"])
        return tf.reduce_sum(pixels, axis=[1, 2, 3, 4])

    # --------------------------------------------------------------- dynamics
    def _initial_rnn_state(self, batch_size):
        if self.num_dynamics == 1:
            return ()
        zeros = tf.zeros([batch_size, self.dynamics_units])
        return (zeros, zeros)

    def _matrices(self, rnn_state, batch_size, frozen_mixture=None):
        """`A_t` `(B, n, n)` and `C_t` `(B, p, n)` from the LSTM's state (mixture weights).

        Where the scalar bool `frozen_mixture` is True no gradient passes
        the mixture logits: the LSTM and its output layer stay as they are.
        """
        n, p, k = self.state_dim, self.observation_dim, self.num_dynamics
        if k == 1:
            return (tf.broadcast_to(self.transition_bank[0], [batch_size, n, n]),
                    tf.broadcast_to(self.observation_bank[0], [batch_size, p, n]))
        logits = self.dynamics_weights(rnn_state[0])  # (B, K)
        if frozen_mixture is not None:
            logits = tf.where(frozen_mixture, tf.stop_gradient(logits), logits)
        alpha = tf.nn.softmax(logits, axis=-1)
        # Matmuls of reshaped banks, not einsum: plain ops for every exporter.
        transition = tf.reshape(alpha @ tf.reshape(self.transition_bank, [k, n * n]), [-1, n, n])
        observation = tf.reshape(alpha @ tf.reshape(self.observation_bank, [k, p * n]), [-1, p, n])
        return transition, observation

    def _advance_rnn(self, rnn_state, observation):
        if self.num_dynamics == 1:
            return ()
        _, (h, c) = self.dynamics_cell(observation, list(rnn_state))
        return (h, c)

    def filter(self, observations, mask=None):
        """Kalman filter of pseudo-observations, the LSTM stepping with it.

        At step t the LSTM, having read `a_1..a_{t-1}`, gives `A_t`, `C_t`;
        the state is predicted and, if `a_t` is observed, updated. The LSTM
        then reads `a_t`, or the predicted `C_t E[z_t | a_{<t}]` if `a_t`
        is missing (as the paper does for missing data). This is
        `kalman.switching_filter`; with `num_dynamics=1` (no LSTM) it is TFP's
        `LinearGaussianStateSpaceModel.forward_filter` (`kalman.fixed_filter`).

        Args:
            observations: float `(B, T, observation_dim)`.
            mask: bool `(B, T)`, True where `a_t` is observed, or None (all).

        Returns:
            dict of float32: `log_likelihood` `(B,)` (`log p(observed a)`),
            `filtered_means` `(B, T, n)`, `filtered_covs` `(B, T, n, n)`,
            `predicted_means`, `predicted_covs` (`p(z_t | a_{<t})`),
            `transition_matrices` `(B, T, n, n)` and `observation_matrices`
            `(B, T, p, n)`.
        """
        observations = tf.cast(observations, tf.float32)
        if mask is None:
            mask = tf.ones(tf.shape(observations)[:2], tf.bool)
        mask = tf.cast(mask, tf.bool)
        if self.num_dynamics == 1:
            return kalman.fixed_filter(self.state_space_model(_num_steps(observations)), observations, mask)
        return self._switching_filter(observations, mask)

    def _switching_filter(self, observations, mask, frozen_mixture=None):
        q, r, p0 = self._covariances()

        def matrices(rnn_state, batch_size):
            return self._matrices(rnn_state, batch_size, frozen_mixture)

        return kalman.switching_filter(
            observations, mask, matrices, self._advance_rnn,
            self._initial_rnn_state(tf.shape(observations)[0]), q, r, p0,
        )

    def state_space_model(self, num_frames):
        """The fixed-dynamics LGSSM as `tfp.distributions.LinearGaussianStateSpaceModel`.

        Only for `num_dynamics=1`, where the matrices do not depend on the data.
        """
        if self.num_dynamics != 1:
            raise ValueError(
                "state_space_model() is the fixed-dynamics LGSSM of num_dynamics=1; with "
                f"num_dynamics={self.num_dynamics} the matrices depend on the data: use filter()."
            )
        return kalman.fixed_lgssm(
            num_frames, self.transition_bank[0], self.observation_bank[0], self.transition_noise,
            self.observation_noise, self.initial_state_variance,
        )

    def dynamics_log_prob(self, observations, frozen_mixture=None):
        """`log p(a_1..a_T)` under the LGSSM, `(B,)` nats, the state integrated out exactly.

        Args:
            observations: float `(B, T, observation_dim)`.
            frozen_mixture: scalar bool tensor or None. Where True, no
                gradient reaches the LSTM and its mixture weights (the
                warm-up of `compile(dynamics_warmup_steps=...)`). Defaults
                to None.
        """
        observations = tf.cast(observations, tf.float32)
        if self.num_dynamics == 1:
            return self.state_space_model(_num_steps(observations)).log_prob(observations)
        mask = tf.ones(tf.shape(observations)[:2], tf.bool)
        return self._switching_filter(observations, mask, frozen_mixture)["log_likelihood"]

    # ------------------------------------------------------------ likelihood
    def elbo_terms(self, videos, training=False, seed=None):
        """The three terms of the ELBO, each float32 `(B,)` in nats per video.

        Args:
            videos: float `(B, T, H, W, C)` in [-1, 1].
            training: bool. Draws the sample of `a` from the training step's
                seed when True. Defaults to False.
            seed: shape-[2] int seed of the sample, or None: the training
                step's seed when training, else the fixed `INFERENCE_SEED`.

        Returns:
            dict with `reconstruction` (`log p(x | a)`), `entropy`
            (`-log q(a | x)`) and `dynamics` (`log p(a)`, Kalman filter), all
            at one reparameterised sample `a ~ q(a | x)`.
        """
        videos = self._checked(videos)
        mean, scale = self.encode(videos, training=training)  # (B, T, p) each
        shape = tf.shape(mean)
        epsilon = posterior_noise(self, shape[0], [shape[1], self.observation_dim], training, seed)
        observations = mean + scale * epsilon  # reparameterised
        entropy = tf.reduce_sum(
            0.5 * epsilon**2 + tf.math.log(scale) + 0.5 * _LOG_2PI, axis=[1, 2]
        )
        parameters = self.decoder_parameters(observations, training=training)
        frozen = None
        if training and getattr(self, "dynamics_warmup_steps", 0):
            frozen = self.noise_step < self.dynamics_warmup_steps
        return {
            "reconstruction": self.pixel_log_prob(videos, parameters),
            "entropy": entropy,
            "dynamics": self.dynamics_log_prob(observations, frozen_mixture=frozen),
        }

    def log_prob(self, videos, training=False, seed=None):
        """The evidence lower bound `(B,)` in nats per video (<= log p(x)).

        One reparameterised sample of `a` per video; outside training it is
        drawn from the fixed `INFERENCE_SEED`, so scores are deterministic.
        See `elbo_terms` for the arguments.
        `videos` may be float in [-1, 1] or uint8 in [0, 255] (scored as
        x / 127.5 - 1; see `as_float_videos`).
        """
        terms = self.elbo_terms(self.as_float_videos(videos), training=training, seed=seed)
        return terms["reconstruction"] + terms["entropy"] + terms["dynamics"]

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer=None, dequantize=False, seed=None, dynamics_warmup_steps=0, **kwargs):
        """Configures ELBO training; see `LikelihoodModel.compile`.

        Args:
            optimizer: optimizer or its name. Defaults to Adam(1e-3).
            dequantize: bool. Must stay False: the pixel likelihoods are
                probability masses. Defaults to False.
            seed: int or None. Seed of the posterior samples. Defaults to a
                random seed.
            dynamics_warmup_steps: int. Training steps during which the LSTM
                and its mixture weights get no gradient (the VAE and the
                matrices `A^(k)`, `C^(k)` train), as the authors' first
                `kf_update_steps` epochs; counted by the model's step
                counter, so a resumed run continues the count. 0 trains
                every weight from the start. Defaults to 0.
            **kwargs: passed to `LikelihoodModel.compile`.
        """
        if isinstance(dynamics_warmup_steps, bool) or not isinstance(dynamics_warmup_steps, int) or (
            dynamics_warmup_steps < 0
        ):
            raise ValueError(f"`dynamics_warmup_steps` must be an int >= 0, got {dynamics_warmup_steps!r}.")
        super().compile(optimizer=optimizer, dequantize=dequantize, seed=seed, **kwargs)
        self.dynamics_warmup_steps = dynamics_warmup_steps

    # ---------------------------------------------------- prediction, imputation
    def predict_frames(self, prefix, num_frames):
        """Continues videos: filter the prefix, roll the dynamics forward, decode the means.

        (`model.predict` is Keras's: it returns `call`'s log-probabilities.)

        Args:
            prefix: float `(B, P, H, W, C)` in [-1, 1], `P >= 1` frames.
            num_frames: int. Frames to predict after the prefix.

        Returns:
            float32 `(B, num_frames, H, W, C)` in [-1, 1]: the decoded
            `C_t E[z_t | a_1..a_P]` of the frames after the prefix.
        """
        check_positive_int("num_frames", num_frames)
        prefix = self._checked(prefix)
        mean, _ = self.encode(prefix)
        batch, known = tf.shape(mean)[0], tf.shape(mean)[1]
        # Future steps are missing observations: the filter only predicts there.
        padded = tf.concat([mean, tf.zeros([batch, num_frames, self.observation_dim])], axis=1)
        mask = tf.concat([tf.ones([batch, known], tf.bool), tf.zeros([batch, num_frames], tf.bool)], axis=1)
        filtered = self.filter(padded, mask)
        predicted = tf.linalg.matvec(filtered["observation_matrices"], filtered["filtered_means"])
        return self.decode(predicted[:, known:])

    def smooth(self, observations, mask=None):
        """`p(z_t | observed a)` by Kalman filtering then RTS smoothing.

        With `num_dynamics=1` the smoother is TFP's `posterior_marginals`;
        otherwise `kalman.rts_smoother` of `filter`'s output.

        Args:
            observations: float `(B, T, observation_dim)`.
            mask: bool `(B, T)`, True where `a_t` is observed, or None (all).

        Returns:
            dict with `means` `(B, T, n)`, `covs` `(B, T, n, n)` and
            `observation_matrices` `(B, T, p, n)` (the filter's `C_t`).
        """
        if self.num_dynamics == 1:
            observations = tf.cast(observations, tf.float32)
            shape = tf.shape(observations)
            missing = None if mask is None else tf.logical_not(tf.cast(mask, tf.bool))
            means, covs = self.state_space_model(_num_steps(observations)).posterior_marginals(
                observations, mask=missing)
            observation = tf.broadcast_to(
                self.observation_bank[0], tf.stack([shape[0], shape[1], self.observation_dim, self.state_dim]))
            return {"means": means, "covs": covs, "observation_matrices": observation}
        filtered = self.filter(observations, mask)
        means, covs = rts_smoother(
            filtered["filtered_means"], filtered["filtered_covs"], filtered["predicted_means"],
            filtered["predicted_covs"], filtered["transition_matrices"],
        )
        return {"means": means, "covs": covs, "observation_matrices": filtered["observation_matrices"]}

    def impute(self, videos, mask):
        """Fills in missing frames by Kalman smoothing of the observed frames' codes.

        Args:
            videos: float `(B, T, H, W, C)` in [-1, 1]; missing frames may hold anything finite.
            mask: bool `(B, T)`, True where a frame is observed.

        Returns:
            float32 `(B, T, H, W, C)`: observed frames as given, missing ones
            the decoded smoothed means `C_t E[z_t | observed a]`.
        """
        videos = self._checked(videos)
        mask = tf.convert_to_tensor(mask)
        if mask.dtype != tf.bool:
            raise ValueError(f"`mask` must be bool (True = observed frame), got dtype {mask.dtype.name}.")
        expected = tuple(videos.shape[:2])
        if mask.shape.rank != 2 or not mask.shape.is_compatible_with(expected):
            raise ValueError(f"`mask` must be shaped (batch, time) = {expected}, got {tuple(mask.shape)}.")
        mean, _ = self.encode(videos)
        smoothed = self.smooth(mean, mask)
        codes = tf.linalg.matvec(smoothed["observation_matrices"], smoothed["means"])
        filled = self.decode(codes)
        return tf.where(mask[:, :, None, None, None], videos, filled)

    # ------------------------------------------------------------------ cost
    def layers_counted_in_closed_form(self):
        """The dynamics LSTM and its output layer: stepped inside `tf.scan`, counted by `extra_multiply_adds`."""
        return (self.dynamics_cell, self.dynamics_weights) if self.num_dynamics > 1 else ()

    def extra_multiply_adds(self, num_frames):
        """Multiply-adds outside the frame encoder and decoder, per clip of `num_frames` frames.

        Per step with `K = num_dynamics > 1`: the LSTM cell (`4 (p + u) u`
        for `p = observation_dim`, `u = dynamics_units`), its output layer
        (`u K`) and the mixing of the `K` matrices (`K (n^2 + p n)`); then the
        Kalman filter step of `kalman.filter_step_multiply_adds` for
        `log_prob`, or the sampled state and observation (`n^2 + p n`) for
        generation. See `vidgen_tf.cost`.

        Args:
            num_frames: int. Frames of the clip.

        Returns:
            dict with `log_prob` and `generation`, ints.
        """
        n, p, k, u = self.state_dim, self.observation_dim, self.num_dynamics, self.dynamics_units
        mixture = 4 * (p + u) * u + u * k + k * (n * n + p * n) if k > 1 else 0
        return {
            "log_prob": num_frames * (mixture + kalman.filter_step_multiply_adds(n, p)),
            "generation": num_frames * (mixture + n * n + p * n),
        }

    # ------------------------------------------------------------ generation
    def noise_spec(self, num_frames=None):
        """`state_noise` `(B, T, state_dim)`, `observation_noise` `(B, T, observation_dim)`: N(0, 1)."""
        return {
            "state_noise": tf.TensorSpec([None, num_frames, self.state_dim], tf.float32, name="state_noise"),
            "observation_noise": tf.TensorSpec(
                [None, num_frames, self.observation_dim], tf.float32, name="observation_noise"
            ),
        }

    def sample_noise(self, batch_size, seed, num_frames=None, start_frame=0):
        """Both noises N(0, 1), per frame: frames `start_frame..start_frame + T - 1` (see `frame_noise`)."""
        num_frames = self.num_frames if num_frames is None else num_frames
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        return {
            "state_noise": frame_noise(seeds[0], batch_size, num_frames, [self.state_dim], start_frame),
            "observation_noise": frame_noise(seeds[1], batch_size, num_frames, [self.observation_dim], start_frame),
        }

    def sample_observations(self, noise):
        """Pseudo-observations `(B, T, observation_dim)` sampled from the LGSSM by its noise.

        `z_1 = sqrt(s0) e_1`, `z_t = A_t z_{t-1} + sqrt(q) e_t`, `a_t = C_t
        z_t + sqrt(r) d_t`, the LSTM reading each sampled `a_t`.
        """
        shape = noise["state_noise"].shape
        batch = shape[0] if shape[0] is not None else tf.shape(noise["state_noise"])[0]
        return self._sample_chunk(self.initial_state(batch), noise)[0]

    def _sample_chunk(self, state, noise):
        """`(a, next_state)`: `K` more steps of the LGSSM from `state` (see `initial_state`)."""
        state_noise = tf.cast(noise["state_noise"], tf.float32)
        observation_noise = tf.cast(noise["observation_noise"], tf.float32)
        # A static batch where known: the scan's carry (the broadcast fixed matrices of
        # num_dynamics=1) must keep the shape it entered with.
        batch = state_noise.shape[0] if state_noise.shape[0] is not None else tf.shape(state_noise)[0]
        elems = (tf.transpose(state_noise, [1, 0, 2]), tf.transpose(observation_noise, [1, 0, 2]))
        q_std, r_std = math.sqrt(self.transition_noise), math.sqrt(self.observation_noise)
        s0_std = math.sqrt(self.initial_state_variance)

        def step(carry, inputs):
            latent, rnn_state, started = carry[0], carry[1], carry[2]
            e_t, d_t = inputs
            transition, observation = self._matrices(rnn_state, batch)
            latent = tf.where(started[:, None] > 0, tf.linalg.matvec(transition, latent) + q_std * e_t, s0_std * e_t)
            a_t = tf.linalg.matvec(observation, latent) + r_std * d_t
            return (latent, self._advance_rnn(rnn_state, a_t), tf.ones_like(started), a_t)

        rnn_state = () if self.num_dynamics == 1 else (state["lstm_hidden"], state["lstm_cell"])
        initial = (tf.cast(state["latent_state"], tf.float32), rnn_state, tf.cast(state["started"], tf.float32),
                   tf.zeros([batch, self.observation_dim]))
        latent, rnn_state, started, outputs = tf.scan(step, elems, initializer=initial)
        next_state = {"latent_state": latent[-1], "started": started[-1]}
        if self.num_dynamics > 1:
            next_state.update(lstm_hidden=rnn_state[0][-1], lstm_cell=rnn_state[1][-1])
        return tf.transpose(outputs, [1, 0, 2]), next_state

    def generate_from_noise(self, noise, labels=None, training=False, generator=None):
        """Decoded mean frames `(B, T, H, W, C)` in [-1, 1] of the LGSSM sample given by `noise`."""
        self.check_labels(labels)
        return self.decode(self.sample_observations(noise), training=training)

    # ------------------------------------------------------------- streaming
    # The state is what the sampler carries from step to step: `z_{t-1}`, the
    # LSTM's state after reading `a_1..a_{t-1}` and whether `z_1` is drawn yet.
    streaming_unavailable = None
    frame_noise_names = ("state_noise", "observation_noise")

    def initial_state(self, batch_size, noise=None, labels=None):
        """`latent_state` `(B, state_dim)` (`z_{t-1}`), `started` `(B,)` (0 before the first
        frame, else 1) and, with `num_dynamics > 1`, `lstm_hidden`, `lstm_cell` `(B, dynamics_units)`."""
        self.check_labels(labels)
        batch = tf.cast(batch_size, tf.int32)
        state = {"latent_state": tf.zeros(tf.stack([batch, self.state_dim])), "started": tf.zeros(tf.reshape(batch, [1]))}
        if self.num_dynamics > 1:
            hidden, cell = self._initial_rnn_state(batch)
            state.update(lstm_hidden=hidden, lstm_cell=cell)
        return state

    def generate_chunk(self, state, noise):
        observations, state = self._sample_chunk(state, noise)
        return self.decode(observations), state

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            observation_dim=self.observation_dim,
            state_dim=self.state_dim,
            num_dynamics=self.num_dynamics,
            dynamics_units=self.dynamics_units,
            base_filters=self.base_filters,
            likelihood=self.likelihood,
            transition_noise=self.transition_noise,
            observation_noise=self.observation_noise,
            initial_state_variance=self.initial_state_variance,
        )
        return config
