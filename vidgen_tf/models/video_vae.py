"""Video VAE: a 3-D convolutional variational autoencoder of whole clips.

Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
https://arxiv.org/abs/1312.6114. The discretised logistic likelihood is that
of Salimans, Karpathy, Chen and Kingma, "PixelCNN++", ICLR 2017,
https://arxiv.org/abs/1701.05517 (after Kingma et al., "Improved variational
inference with inverse autoregressive flow", NeurIPS 2016).

A clip `x` `(T, H, W, C)` is explained by one latent vector `z` of
`latent_dim` numbers with a standard normal prior `p(z) = N(0, I)`. A 3-D
convolutional encoder gives a diagonal Gaussian posterior `q(z | x) =
N(mu(x), sigma(x)^2)`; a 3-D transposed-convolutional decoder gives, per
pixel, the parameters of `p(x | z)`:

- `"bernoulli"`: binary frames (a pixel is on when its value is > 0),
  `p(x_d = 1 | z) = sigmoid(logit_d(z))`. Bits/dim are bits per binary pixel.
- `"discretized_logistic"`: 8-bit frames. With `x` on the grid
  `k / 127.5 - 1`, `k` in {0, ..., 255}, a logistic of mean `m_d(z)` and
  scale `s = exp(log_scale)` (one learned log-scale per channel, or one per
  pixel from the decoder) is integrated over the pixel's bin of width
  `2 / 255`; the first and last bins take the tails:

      P(x) = sigmoid((x + 1/255 - m) / s)                         x = -1
           = 1 - sigmoid((x - 1/255 - m) / s)                     x = +1
           = sigmoid((x + 1/255 - m) / s) - sigmoid((x - 1/255 - m) / s)

  so the 256 probabilities sum to one exactly. Inputs are rounded to the
  grid first. Bits/dim are bits per 8-bit value.

Both likelihoods are probability masses (`likelihood_is_discrete`), so
bits/dim take no dequantisation correction. The model is trained on the
evidence lower bound

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)) <= log p(x),

with the expectation estimated by one reparameterised sample `z = mu +
sigma * eps` and the KL divergence in closed form. `log_prob` returns this
bound (`log_prob_is_bound = True`), so the reported bits/dim are an upper
bound on the model's true bits/dim.

Generation decodes `z ~ N(0, I)` and returns the decoder's mean image
(`2 sigmoid(logit) - 1` for Bernoulli pixels, the clipped logistic mean for
discretised logistic ones), a deterministic function of the latent: the
exported `serving_default` takes `latent` as its only input.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from vidgen_tf.base import check_positive_int
from vidgen_tf.layers import Conv3D, Conv3DTranspose, LeakyReLU, doubling_stages
from vidgen_tf.likelihood import LikelihoodModel
from vidgen_tf.models import _latent
from vidgen_tf.models._latent import INFERENCE_SEED, MIN_POSTERIOR_SCALE, posterior_noise  # noqa: F401
from vidgen_tf.registry import register

LIKELIHOODS = ("bernoulli", "discretized_logistic")
LOGISTIC_SCALES = ("per_channel", "per_pixel")
# PixelCNN++'s floor on the log-scale: below it a bin already holds ~all the mass.
MIN_LOG_SCALE = -7.0


def _log_sigmoid(x):
    return -tf.nn.softplus(-x)


def discretized_logistic_log_prob(x, mean, log_scale):
    """Log-probability of 8-bit values under a discretised logistic, elementwise.

    `x` is rounded to the grid `k / 127.5 - 1`, `k` in {0, ..., 255}. The bin
    of `x` is `[x - 1/255, x + 1/255]`, except that the bin of -1 extends to
    -inf and that of +1 to +inf. For an interior bin with edges `b < a` (in
    standardised units), `sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b)
    (1 - exp(b - a))`, whose logarithm is computed from `log_sigmoid` and
    `log(-expm1(b - a))`: accurate for bins far in either tail and for
    scales much wider or narrower than a bin, without PixelCNN++'s fallback
    to the density at the bin centre.

    Args:
        x: float tensor in [-1, 1].
        mean: float tensor broadcastable to `x`. Logistic location.
        log_scale: float tensor broadcastable to `x`. Natural log of the
            logistic scale; values below -7 are raised to -7.

    Returns:
        float32 tensor of `log P(x)`, the shape of `x` broadcast with the
        parameters.
    """
    x = tf.cast(x, tf.float32)
    x = tf.round((tf.clip_by_value(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0
    mean = tf.cast(mean, tf.float32)
    log_scale = tf.maximum(tf.cast(log_scale, tf.float32), MIN_LOG_SCALE)
    inverse_scale = tf.exp(-log_scale)
    centred = x - mean
    upper = inverse_scale * (centred + 1.0 / 255.0)  # a
    lower = inverse_scale * (centred - 1.0 / 255.0)  # b
    log_below_upper = _log_sigmoid(upper)  # log P(X < x + 1/255)
    log_above_lower = _log_sigmoid(-lower)  # log P(X > x - 1/255)
    # b - a = -2 / (255 s) < 0, the same for every bin of a pixel.
    log_width = tf.math.log(-tf.math.expm1(-2.0 / 255.0 * inverse_scale))
    interior = log_below_upper + log_above_lower + log_width
    # Every branch is finite, so tf.where passes no NaN into the gradients.
    return tf.where(x < -0.999, log_below_upper, tf.where(x > 0.999, log_above_lower, interior))


def _encoder(video_shape, stages, base_filters, latent_dim):
    """Videos `(B, T, H, W, C)` -> posterior parameters `(B, 2 * latent_dim)`."""
    stack = [keras.Input(video_shape)]
    for stage in range(stages):
        # Halve the frames, keep the frames' count: the clip length is fixed and short.
        stack += [
            Conv3D(base_filters * 2**stage, (3, 4, 4), strides=(1, 2, 2), padding="same"),
            LeakyReLU(0.2),
        ]
    stack += [
        layers.Flatten(),
        # float32 at the edge under mixed precision: the posterior's parameters.
        layers.Dense(2 * latent_dim, dtype="float32", name="posterior"),
    ]
    return keras.Sequential(stack, name="encoder")


def _decoder(video_shape, stages, base_filters, latent_dim, outputs):
    """Latents `(B, latent_dim)` -> per-pixel parameters `(B, T, H, W, outputs)`."""
    frames, height, width, _ = video_shape
    grid = (frames, height // 2**stages, width // 2**stages)
    filters = base_filters * 2 ** (stages - 1)
    stack = [
        keras.Input((latent_dim,)),
        layers.Dense(grid[0] * grid[1] * grid[2] * filters, name="project"),
        LeakyReLU(0.2),
        layers.Reshape(grid + (filters,)),
    ]
    for stage in reversed(range(stages)):
        stack += [
            Conv3DTranspose(base_filters * 2**stage, (3, 4, 4), strides=(1, 2, 2), padding="same"),
            LeakyReLU(0.2),
        ]
    stack.append(Conv3D(outputs, 3, padding="same", dtype="float32", name="pixel_parameters"))
    return keras.Sequential(stack, name="decoder")


@register("video_vae")
class VideoVAE(LikelihoodModel):
    """Variational autoencoder of fixed-length clips with 3-D convolutions.

    Differences from the papers and their code (no author released a 3-D
    convolutional video VAE; the references are Kingma and Welling's VAE and
    the discretised logistic of PixelCNN++, github.com/openai/pixel-cnn,
    `pixel_cnn_pp/nn.py`):

    - Networks. Kingma and Welling use MLPs with one hidden tanh layer on
      single images; here one latent per clip, 3-D convolutions (3x4x4,
      stride 1 in time and 2 in space, LeakyReLU) down to a 4-pixel grid, the
      decoder mirroring them: the zoo's choice for short clips.
    - Posterior scale. Their encoder outputs `log sigma^2`; here `sigma =
      softplus(.) + 1e-4`, which grows linearly rather than exponentially in
      the network's output (steadier early in training) and keeps `log
      sigma` finite. The same family of posteriors.
    - Likelihood. PixelCNN++ uses a mixture of 10 logistics per pixel whose
      channel means depend on the previous channels; here one logistic per
      sub-pixel, channels independent given `z`, its log-scale one learned
      number per channel (default) or a decoder output. The bins are theirs
      (half-width 1/255 in [-1, 1], the edge bins below -0.999 and above
      0.999 taking the tails, log-scales floored at -7); the interior
      log-mass is computed stably instead of their fallback to the density
      at the bin centre (see `discretized_logistic_log_prob`), and inputs are
      rounded to the 8-bit grid first.
    - Training. Kingma and Welling use Adagrad with one sample per datapoint
      (`L = 1`) and minibatches of 100; here one sample per clip too, and
      `compile` defaults to Adam(1e-3).

    Args:
        num_frames: int. Frames per clip (fixed: the model scores and
            generates exactly this many). Defaults to 16.
        height: int. Frame height, `4 * 2**k` with `k >= 1` (8, 16, 32, 64).
            Defaults to 64.
        width: int. Frame width, a multiple of `2**k`. Defaults to 64.
        channels: int. Colour channels. Defaults to 1.
        num_classes: int. Must be 0: the model is unconditional. Defaults to 0.
        latent_dim: int. Size of the latent vector `z`. Defaults to 64.
        base_filters: int. Filters of the first encoder convolution, doubled
            at each of the `k` stride-2 stages that take the frames down to a
            4-pixel grid (the decoder mirrors it). Defaults to 32.
        likelihood: str. `"discretized_logistic"` (8-bit pixels) or
            `"bernoulli"` (binary pixels, on when > 0). Defaults to
            `"discretized_logistic"`.
        logistic_scale: str. Log-scale of the discretised logistic:
            `"per_channel"` (one learned number per channel) or
            `"per_pixel"` (a decoder output). Unused by Bernoulli pixels.
            Defaults to `"per_channel"`.
        initial_log_scale: float. Starting log-scale of the discretised
            logistic (the per-channel weights' value, or the offset added to
            the decoder's per-pixel output). Defaults to -2.0 (scale 0.135 in
            [-1, 1] units, about 17 8-bit levels).

    Example:
        >>> model = vidgen_tf.build("video_vae", num_frames=4, height=16, width=16,
        ...                         latent_dim=16, base_filters=8)
        >>> videos = vidgen_tf.data.make_videos("moving_square", 64, num_frames=4,
        ...                                     height=16, width=16) / 127.5 - 1
        >>> model.compile(seed=0)
        >>> model.fit(videos.astype("float32"), batch_size=16, epochs=5)
        >>> model.log_prob(videos[:2])  # (2,) ELBO in nats per video
        >>> model.reconstruct(videos[:2])  # (2, 4, 16, 16, 1)
        >>> model.generate(4, seed=0)  # decoder means of z ~ N(0, I)
        >>> model = vidgen_tf.from_preset("video_vae_moving_digits")
    """

    log_prob_is_bound = True
    streaming_unavailable = (
        "its 3-D convolutional decoder maps one latent to the whole clip of num_frames frames "
        "at once, so there is no state to carry into a next chunk"
    )

    def __init__(
        self,
        num_frames=16,
        height=64,
        width=64,
        channels=1,
        num_classes=0,
        latent_dim=64,
        base_filters=32,
        likelihood="discretized_logistic",
        logistic_scale="per_channel",
        initial_log_scale=-2.0,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        if self.num_classes:
            raise ValueError(f"The video_vae model is unconditional: `num_classes` must be 0, got {num_classes}.")
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.base_filters = check_positive_int("base_filters", base_filters)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"`likelihood` must be one of {LIKELIHOODS}, got {likelihood!r}.")
        if logistic_scale not in LOGISTIC_SCALES:
            raise ValueError(f"`logistic_scale` must be one of {LOGISTIC_SCALES}, got {logistic_scale!r}.")
        initial_log_scale = float(initial_log_scale)
        if not (math.isfinite(initial_log_scale) and initial_log_scale >= MIN_LOG_SCALE):
            raise ValueError(
                f"`initial_log_scale` must be a finite float >= {MIN_LOG_SCALE}, got {initial_log_scale!r}."
            )
        stages = doubling_stages(self.height, self.width, model="video_vae")
        self.likelihood = likelihood
        self.logistic_scale = logistic_scale
        self.initial_log_scale = initial_log_scale

        per_pixel = likelihood == "discretized_logistic" and logistic_scale == "per_pixel"
        outputs = self.channels * (2 if per_pixel else 1)
        self.encoder = _encoder(self.video_shape, stages, self.base_filters, self.latent_dim)
        self.decoder = _decoder(self.video_shape, stages, self.base_filters, self.latent_dim, outputs)
        if likelihood == "discretized_logistic" and logistic_scale == "per_channel":
            self.log_scale = self.add_weight(
                shape=(self.channels,), initializer=keras.initializers.Constant(initial_log_scale),
                dtype="float32", name="log_scale",
            )
        self.built = True

    # ------------------------------------------------------------- properties
    @property
    def likelihood_is_discrete(self):
        """True: Bernoulli and discretised logistic pixels are probability masses."""
        return True

    # ---------------------------------------------------------------- networks
    def encode(self, videos, training=False):
        """The posterior `q(z | x)`: `(mean, scale)`, each float32 `(B, latent_dim)`.

        Args:
            videos: float `(B, T, H, W, C)` in [-1, 1].
            training: bool. Passed to the encoder. Defaults to False.
        """
        videos = self._checked(videos)
        parameters = tf.cast(self.encoder(videos, training=training), tf.float32)  # (B, 2L)
        mean, raw_scale = tf.split(parameters, 2, axis=-1)
        return mean, tf.nn.softplus(raw_scale) + MIN_POSTERIOR_SCALE

    def decoder_parameters(self, latents, training=False):
        """Per-pixel parameters of `p(x | z)` for latents `(B, latent_dim)`.

        Returns:
            dict of float32 `(B, T, H, W, C)` tensors: `logits` (Bernoulli) or
            `mean` and `log_scale` (discretised logistic; the log-scale
            broadcast from `(C,)` when `logistic_scale="per_channel"`).
        """
        outputs = tf.cast(self.decoder(tf.cast(latents, tf.float32), training=training), tf.float32)
        if self.likelihood == "bernoulli":
            return {"logits": outputs}
        if self.logistic_scale == "per_pixel":
            mean, raw = tf.split(outputs, 2, axis=-1)
            return {"mean": mean, "log_scale": raw + self.initial_log_scale}
        return {"mean": outputs, "log_scale": tf.broadcast_to(self.log_scale, tf.shape(outputs))}

    def decode(self, latents, training=False):
        """The decoder's mean video, float32 `(B, T, H, W, C)` in [-1, 1].

        `2 sigmoid(logits) - 1` for Bernoulli pixels; the logistic mean
        clipped to [-1, 1] for discretised logistic ones (the discretised
        distribution's mean differs from it only near the edges).
        """
        parameters = self.decoder_parameters(latents, training=training)
        if self.likelihood == "bernoulli":
            return 2.0 * tf.sigmoid(parameters["logits"]) - 1.0
        return tf.clip_by_value(parameters["mean"], -1.0, 1.0)

    def reconstruct(self, videos):
        """Decodes the posterior mean of `videos`: float32 `(B, T, H, W, C)` in [-1, 1]."""
        mean, _ = self.encode(videos)
        return self.decode(mean)

    # ------------------------------------------------------------ likelihood
    def _checked(self, videos):
        self.check_videos(videos)
        videos = tf.cast(videos, tf.float32)
        return tf.debugging.assert_all_finite(videos, "video_vae: the videos contain NaN or Inf.")

    def pixel_log_prob(self, videos, parameters):
        """`log p(x | z)` summed over each video's pixels, `(B,)` nats."""
        tfd = _latent.tfd()
        if self.likelihood == "bernoulli":
            targets = tf.cast(videos > 0.0, tf.float32)
            pixels = tfd.Bernoulli(logits=parameters["logits"], dtype=tf.float32).log_prob(targets)
        else:
            pixels = discretized_logistic_log_prob(videos, parameters["mean"], parameters["log_scale"])
        return tf.reduce_sum(pixels, axis=[1, 2, 3, 4])

    def elbo_terms(self, videos, training=False, seed=None):
        """The two terms of the ELBO, each float32 `(B,)` in nats per video.

        Args:
            videos: float `(B, T, H, W, C)` in [-1, 1].
            training: bool. Draws the posterior sample from the training
                step's seed when True. Defaults to False.
            seed: shape-[2] int seed of the posterior sample, or None: the
                training step's seed when training, else the fixed
                `INFERENCE_SEED`, so that scores are deterministic.

        Returns:
            dict with `reconstruction` (`log p(x | z)`, one sample of `z`) and
            `kl` (`KL(q(z | x) || N(0, I))`, in closed form).
        """
        tfd = _latent.tfd()
        mean, scale = self.encode(videos, training=training)  # (B, L) each
        epsilon = posterior_noise(self, tf.shape(mean)[0], [self.latent_dim], training, seed)
        latents = mean + scale * epsilon  # reparameterised: gradients reach the encoder
        posterior = tfd.Independent(tfd.Normal(mean, scale), reinterpreted_batch_ndims=1)
        prior = tfd.Independent(
            tfd.Normal(tf.zeros_like(mean), tf.ones_like(scale)), reinterpreted_batch_ndims=1
        )
        parameters = self.decoder_parameters(latents, training=training)
        return {
            "reconstruction": self.pixel_log_prob(tf.cast(videos, tf.float32), parameters),
            "kl": tfd.kl_divergence(posterior, prior),
        }

    def log_prob(self, videos, training=False, seed=None):
        """The evidence lower bound `(B,)` in nats per video (<= log p(x)).

        One reparameterised posterior sample per video; outside training it
        is drawn from the fixed `INFERENCE_SEED`, so the same batch always
        gets the same score (also through the exported `log_prob`). See
        `elbo_terms` for the arguments.
        `videos` may be float in [-1, 1] or uint8 in [0, 255] (scored as
        x / 127.5 - 1; see `as_float_videos`).
        """
        terms = self.elbo_terms(self.as_float_videos(videos), training=training, seed=seed)
        return terms["reconstruction"] - terms["kl"]

    # ------------------------------------------------------------ generation
    def noise_spec(self, num_frames=None):
        """`latent`: `(B, latent_dim)` float32, `z ~ N(0, I)` (the clip length is fixed)."""
        return {"latent": tf.TensorSpec([None, self.latent_dim], tf.float32, name="latent")}

    def sample_noise(self, batch_size, seed, num_frames=None):
        """`latent` drawn from the prior N(0, I) with `tf.random.stateless_normal`."""
        return {"latent": tf.random.stateless_normal([batch_size, self.latent_dim], tf.cast(seed, tf.int64))}

    def generate_from_noise(self, noise, labels=None, training=False, generator=None):
        """The decoder's mean video `(B, T, H, W, C)` in [-1, 1] for `noise["latent"]`."""
        self.check_labels(labels)
        return self.decode(noise["latent"], training=training)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            base_filters=self.base_filters,
            likelihood=self.likelihood,
            logistic_scale=self.logistic_scale,
            initial_log_scale=self.initial_log_scale,
        )
        return config
