"""LikelihoodModel: the training core every density model in the zoo shares.

A subclass says how likely a video is (`log_prob`, nats per video), how to
draw generation noise and how to turn that noise into video. This class owns
training: `compile` takes one optimizer, `train_step` minimises the negative
log-likelihood (or the negative evidence lower bound, for models without an
exact likelihood) averaged over the global batch, and both `train_step` and
`test_step` report `nll` (nats per video) and `bits_per_dim`.

Bits per dimension on 8-bit video
---------------------------------
Videos enter models as `y = x / 127.5 - 1` from uint8 `x` in {0, ..., 255}.
A continuous density on `y` is made comparable with published likelihoods of
8-bit video by uniform dequantisation (Theis et al., 2016, "A note on the
evaluation of generative models"; Dinh et al., 2017; Ho et al., 2019): the
model is trained and evaluated on `y + u / 127.5`, `u ~ U[0, 1)^D`, i.e. on
the 8-bit value plus uniform noise over its bin, rescaled. A density `p_y` on
`y` is a density on `v = x + u` of `p_v(v) = p_y(y) / 127.5^D` (the change of
variables `y = v / 127.5 - 1` has Jacobian `1 / 127.5` per dimension), and
by Jensen's inequality `-E_u[log2 p_v(x + u)]` bounds the discrete model's
`-log2 P(x)` from above. Hence, with `nll = -log p_y` in nats per video and
`D = frames * height * width * channels` dimensions,

    bits_per_dim = nll / (D * ln 2) + log2(127.5)     (continuous, dequantised)
    bits_per_dim = nll / (D * ln 2)                   (everything else)

`log2(127.5) = 6.9944`. A density uniform on `[-1, 1 + 1/127.5)` has
`nll = D * ln(256 / 127.5)` and so exactly 8 bits/dim, the cost of storing
raw bytes. The correction belongs to dequantised data only: a continuous
density evaluated on the 8-bit grid itself (`compile(dequantize=False)`) can
put unbounded density on the grid points, so its figure is reported without
the correction and is not comparable with 8-bit figures. Discrete
likelihoods are probabilities already and need no correction: a Bernoulli
likelihood's figure is bits per binary pixel, a likelihood over the 256
values (e.g. discretised logistic) bits per 8-bit value. A model whose
likelihood lives in a feature space (see `likelihood_space`) reports bits per
feature dimension; such figures are not comparable with pixel figures.
`LikelihoodModel.bits_per_dim_kind` says in words which figure a model gives.
"""

import math
import random

import keras
import tensorflow as tf

from vidgen_tf.distribute import fold_seed, num_replicas, replica_slice
from vidgen_tf.base import VideoModel, check_positive_int

# The change of variables from [-1, 1] space to 8-bit units, in bits per dimension.
EIGHT_BIT_CORRECTION_BITS = math.log2(127.5)


def bits_per_dim(nll, num_dims, dequantized=False):
    """Bits per dimension of a negative log-likelihood in nats per video.

    Args:
        nll: float or tensor. Negative log-likelihood (or negative ELBO) in
            nats per video.
        num_dims: int or tensor. Dimensions per video (frames * height *
            width * channels, or frames * features).
        dequantized: bool. Whether `nll` is of a continuous density on
            `y = x / 127.5 - 1` evaluated on dequantised 8-bit data; then
            `log2(127.5)` converts it to bits per 8-bit value (see the module
            docstring). Defaults to False: `nll` is converted as it is (a
            probability mass, or a density not evaluated on dequantised data).

    Returns:
        `nll / (num_dims * ln 2)`, plus `log2(127.5)` when `dequantized`.
    """
    nll = tf.cast(nll, tf.float32)
    bits = nll / (tf.cast(num_dims, tf.float32) * math.log(2.0))
    return bits + EIGHT_BIT_CORRECTION_BITS if dequantized else bits


# How far float videos may leave [-1, 1] before `log_prob` refuses them: the
# dequantisation noise adds up to 1 / 127.5, and rounding a little more.
VIDEO_RANGE_TOLERANCE = 0.01


class LikelihoodModel(VideoModel):
    """Base of the density models: compile with one optimizer, train with `fit`.

    Subclasses build their weights in `__init__` (then set `self.built =
    True`) and implement:

    - `log_prob(videos, training=False)`: `(B,)` log-likelihood in nats per
      video of float videos `(B, T, H, W, C)` in [-1, 1] (an evidence lower
      bound when `log_prob_is_bound`).
    - `noise_spec(num_frames=None)`: dict name -> `tf.TensorSpec` of the
      generation noise (batch axis None).
    - `sample_noise(batch_size, seed, num_frames=None)`: dict of noise drawn
      with `tf.random.stateless_*` from `seed` (shape [2] int).
      A model that streams (see `VideoModel.generate_stream`) also takes
      `start_frame` and draws its per-frame entries with `base.frame_noise`.
    - `generate_from_noise(noise, labels=None, training=False,
      generator=None)`: float videos `(B, T, H, W, C)` in [-1, 1], a pure
      deterministic function of the noise (uniform noise for discrete
      choices, by inverse CDF; Gaussian noise for continuous ones).

    and may override `likelihood_is_discrete` (True for probability masses,
    e.g. Bernoulli pixels) and `dims_per_frame` (for a feature space).

    Args:
        **kwargs: the common video configuration of `VideoModel`.
    """

    # Whether the exported SavedModel has a `log_prob` signature.
    has_log_prob = True
    # Whether `log_prob` is an evidence lower bound rather than the likelihood.
    log_prob_is_bound = False
    # Whether `compile` turns XLA on by default: chosen per model by
    # measurement (`bench/train_throughput.py` on a 2-core CPU: XLA trained
    # hmm 2.7x and kvae 3.2x faster, video_vae 0.44x as fast).
    xla_by_default = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Counts training steps; with the compile seed it gives each step's
        # dequantisation noise.
        self.noise_step = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            name="noise_step", aggregation="only_first_replica",
        )

    # ------------------------------------------------------------- likelihood
    @property
    def likelihood_space(self):
        """What `log_prob` is a likelihood of: "pixels" unless a subclass says otherwise."""
        return "pixels"

    @property
    def likelihood_is_discrete(self):
        """Whether `log_prob` is a log-probability mass (no dequantisation correction)."""
        return False

    @property
    def dims_per_frame(self):
        """Dimensions of one frame in the likelihood's space."""
        return self.height * self.width * self.channels

    def log_prob(self, videos, training=False):
        """Log-likelihood `(B,)` in nats per video of videos `(B, T, H, W, C)`.

        Subclasses start with `videos = self.as_float_videos(videos)`, so
        every model scores uint8 videos in [0, 255] (as `x / 127.5 - 1`) and
        float videos in [-1, 1] alike.
        """
        raise NotImplementedError

    def as_float_videos(self, videos):
        """Videos to score as float32 in [-1, 1]: uint8 `x` becomes `x / 127.5 - 1`.

        Float videos must lie in [-1, 1] up to `VIDEO_RANGE_TOLERANCE`
        (dequantisation adds up to 1 / 127.5); in eager mode values beyond it,
        NaN or Inf raise a ValueError naming the range found (inside a traced
        training step the check is left out: it would cost a reduction per
        step). Other dtypes raise a ValueError.

        Args:
            videos: uint8 in [0, 255] or float in [-1, 1], `(B, T, H, W, C)`.

        Returns:
            float32 tensor, same shape.
        """
        videos = tf.convert_to_tensor(videos)
        if videos.dtype == tf.uint8:
            return tf.cast(videos, tf.float32) / 127.5 - 1.0
        if not videos.dtype.is_floating:
            raise ValueError(
                f"videos: expected float in [-1, 1] or uint8 in [0, 255], got dtype {videos.dtype.name}."
            )
        if tf.executing_eagerly() and tf.size(videos) > 0:
            values = tf.cast(videos, tf.float32)
            if not bool(tf.reduce_all(tf.math.is_finite(values))):
                raise ValueError(f"videos: expected floats in [-1, 1], got NaN or Inf (shape {tuple(videos.shape)}).")
            low, high = float(tf.reduce_min(values)), float(tf.reduce_max(values))
            if low < -1.0 - VIDEO_RANGE_TOLERANCE or high > 1.0 + VIDEO_RANGE_TOLERANCE:
                raise ValueError(
                    f"videos: expected floats in [-1, 1], got values in [{low:.4g}, {high:.4g}] "
                    "(pass uint8 videos in [0, 255] as uint8, or scale floats with x / 127.5 - 1)."
                )
        return videos

    @property
    def binary_pixels(self):
        """Whether the likelihood is of binarised pixels: a Bernoulli one (`likelihood="bernoulli"` of
        kvae and video_vae, `emission="bernoulli"` of hmm), whose bits/dim are per binary pixel."""
        return self.likelihood_is_discrete and "bernoulli" in (
            getattr(self, "likelihood", None), getattr(self, "emission", None)
        )

    @property
    def bits_per_dim_kind(self):
        """What `bits_per_dim` measures, in words, to print and record beside every figure.

        Continuous densities count as dequantised once compiled with
        `dequantize=True` (see the module docstring).
        """
        dequantized = getattr(self, "dequantize", False)
        if self.likelihood_space != "pixels":
            space = f"bits per dimension of the {self.likelihood_space} space"
            if self.likelihood_is_discrete:
                return f"{space} (probability mass): not comparable with pixel figures"
            if dequantized:
                return f"{space}, dequantised 8-bit units: not comparable with pixel figures"
            return f"{space}, continuous density, not dequantised: not comparable with pixel or 8-bit figures"
        if self.binary_pixels:
            return "bits per binary pixel"
        if self.likelihood_is_discrete:
            return "bits per 8-bit value (probability mass)"
        if dequantized:
            return "bits per 8-bit value, dequantised"
        return "continuous density, not dequantised: not comparable with 8-bit figures"

    def bits_per_dim(self, nll, num_frames=None):
        """`nll` (nats per video) in bits per dimension, as `bits_per_dim_kind` says.

        The 8-bit correction `log2(127.5)` is added when the model is compiled
        with `dequantize=True` (continuous densities only), never otherwise;
        see the module docstring.
        """
        num_frames = self.num_frames if num_frames is None else num_frames
        return bits_per_dim(nll, num_frames * self.dims_per_frame, getattr(self, "dequantize", False))

    def call(self, videos, training=False):
        """The log-likelihood `(B,)` of `videos`, so `model(videos)` scores them."""
        return self.log_prob(videos, training=training)

    # ----------------------------------------------------------------- compile
    def make_optimizer(self, learning_rate=None):
        """A new optimizer of this model's default setting: Adam(1e-3); `learning_rate` replaces the rate."""
        return keras.optimizers.Adam(1e-3 if learning_rate is None else learning_rate)

    def compile(self, optimizer=None, dequantize=False, seed=None, **kwargs):
        """Configures maximum-likelihood training.

        Args:
            optimizer: optimizer or its name. Defaults to Adam(1e-3).
            dequantize: bool. Add uniform noise `u / 127.5`, `u ~ U[0, 1)`,
                to every pixel of 8-bit-derived data during training and
                evaluation, so that `bits_per_dim` (which then carries the
                `log2(127.5)` correction) bounds the 8-bit data's bits per
                dimension (see the module docstring). Only for continuous
                likelihoods. Defaults to False: a continuous density's
                bits/dim then have no correction and are not comparable with
                8-bit figures.
            seed: int or None. Seed of the dequantisation noise; the same seed,
                data and weights repeat a run exactly. Defaults to a random seed.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
                `jit_compile` defaults to the model's `xla_by_default` on one
                replica, and to False under a strategy with several replicas
                (XLA compiles the whole distributed step as one unit, which
                could not reach the second device's variables in
                `bench/scaling.py`).
        """
        if dequantize and self.likelihood_is_discrete:
            raise ValueError(
                f"`dequantize=True` is for continuous likelihoods, but {type(self).__name__}'s "
                "likelihood is discrete (a probability mass): it needs no dequantisation."
            )
        if optimizer is None:
            optimizer = self.make_optimizer()
        if "jit_compile" not in kwargs:
            kwargs["jit_compile"] = (
                self.xla_by_default and tf.distribute.get_strategy().num_replicas_in_sync == 1
            )
        super().compile(optimizer=optimizer, **kwargs)
        self.dequantize = bool(dequantize)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        self.training_seed = int(seed)
        # Build the slots now: under MirroredStrategy, slots made lazily inside
        # the replica step fail ('You must feed a value for placeholder').
        self.optimizer.build(self.trainable_variables)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("nll", "bits_per_dim")}

    def get_compile_config(self):
        """What `compile_from_config` needs to compile a loaded model as this one.

        `model.save("model.keras")` stores this dict beside the model's config;
        `keras.models.load_model` calls `compile_from_config` with it and only
        then loads the saved variables, the optimizer's state (iterations,
        moments) among them, under `optimizer/`. The seed is the one in use,
        also when `compile` drew it, so that the dequantisation noise continues
        from the restored `noise_step`.

        Returns:
            A JSON-serialisable dict of `compile` arguments, or None before
            `compile`.
        """
        if not hasattr(self, "trackers"):
            return None
        keras_config = super().get_compile_config() or {}
        return {
            "optimizer": keras.optimizers.serialize(self.optimizer),
            "dequantize": self.dequantize,
            "seed": self.training_seed,
            "jit_compile": bool(self.jit_compile),
            **{key: keras_config[key] for key in ("run_eagerly", "steps_per_execution") if key in keras_config},
        }

    def compile_from_config(self, config):
        """Compiles the model as `get_compile_config` recorded (see there).

        Args:
            config: dict. The output of `get_compile_config`.
        """
        config = dict(config)
        config["optimizer"] = keras.optimizers.deserialize(config["optimizer"])
        self.compile(**config)

    @property
    def metrics(self):
        return list(getattr(self, "trackers", {}).values())

    # ---------------------------------------------------------------- training
    def _unpack(self, data):
        if isinstance(data, (tuple, list)):
            if len(data) > 1 and data[1] is not None:
                raise ValueError(
                    f"{type(self).__name__} is unconditional but the data yields labels; "
                    "load it without labels."
                )
            data = data[0]
        self.check_videos(data, allow_any_length=self.variable_length)
        videos = tf.cast(data, tf.float32)
        return tf.debugging.assert_all_finite(
            videos, f"{type(self).__name__}: the training videos contain NaN or Inf."
        )

    def _dequantize(self, videos, seed):
        """Adds `u / 127.5`, `u ~ U[0, 1)`, drawn for the global batch and sliced."""
        if not getattr(self, "dequantize", False):
            return videos
        local_batch = tf.shape(videos)[0]
        shape = tf.concat([[local_batch * num_replicas()], tf.shape(videos)[1:]], axis=0)
        noise = tf.random.stateless_uniform(shape, seed)
        return videos + replica_slice(noise, local_batch) / 127.5

    def _update_trackers(self, nll, num_frames):
        # Per-example values: the Mean trackers then hold the mean over every
        # example of every replica (exact also for a short last batch).
        self.trackers["nll"].update_state(nll)
        self.trackers["bits_per_dim"].update_state(self.bits_per_dim(nll, num_frames))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        if not hasattr(self, "trackers"):
            raise RuntimeError(f"Call {type(self).__name__}.compile() before fit().")
        videos = self._unpack(data)  # (B, T, H, W, C)
        local_batch = tf.shape(videos)[0]
        global_batch = local_batch * num_replicas()
        step_seed = fold_seed(tf.constant([self.training_seed, 0], tf.int64), self.noise_step)
        videos = self._dequantize(videos, step_seed)

        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            nll = -tf.cast(self.log_prob(videos, training=True), tf.float32)  # (B,)
            # Gradients are summed over replicas: divide by the global batch.
            loss = tf.nn.compute_average_loss(nll, global_batch_size=global_batch)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        self.noise_step.assign_add(1)
        return self._update_trackers(nll, tf.shape(videos)[1])

    def test_step(self, data):
        if not hasattr(self, "trackers"):
            raise RuntimeError(f"Call {type(self).__name__}.compile() before evaluate().")
        videos = self._unpack(data)
        # Evaluation noise has its own stream (fold 1), never training's. It
        # depends on the training step only, so one `evaluate` scores every
        # batch with the same noise pattern and repeated evaluations agree.
        videos = self._dequantize(
            videos, fold_seed(tf.constant([self.training_seed, 1], tf.int64), self.noise_step)
        )
        nll = -tf.cast(self.log_prob(videos, training=False), tf.float32)
        return self._update_trackers(nll, tf.shape(videos)[1])

    # -------------------------------------------------------------- generation
    @property
    def inference_generator(self):
        """Likelihood models generate with their own weights: no separate generator."""
        return None

    def generate(self, num, seed=None, num_frames=None, labels=None):
        """Generates `num` videos, float32 `(num, T, H, W, C)` in [-1, 1].

        Equals `generate_from_noise(sample_noise(num, [seed, 1], num_frames))`,
        as the exported `generate` signature does.

        Args:
            num: int. Number of videos.
            seed: int or None. The same seed gives the same videos.
            num_frames: int or None. Length of the videos; models with
                `variable_length` make any length, others only `num_frames`.
            labels: must be None: the likelihood models are unconditional. It
                is accepted so that code written for any zoo model (callbacks,
                the CLI) can pass it.
        """
        check_positive_int("num", num)
        self.check_labels(labels)
        num_frames = self._check_num_frames(num_frames)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        noise = self.sample_noise(num, tf.constant([int(seed), 1], tf.int64), num_frames=num_frames)
        return tf.cast(self.generate_from_noise(noise, training=False), tf.float32)

    def preset_model(self):
        """The model a preset stores: an uncompiled copy holding the weights.

        The copy leaves out optimizer state and metrics (a checkpoint's
        business, not a preset's).
        """
        config = self.get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        copy = type(self)(**config)
        copy.set_weights(self.get_weights())
        return copy
