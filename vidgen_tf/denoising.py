"""DiffusionModel: the training core of the zoo's denoising diffusion and flow matching models.

A subclass builds the network (`make_denoiser()`: a layer called as
`denoiser(x_t, t, labels)`); this class owns training and sampling, with the
schedules and samplers of `vidgen_tf.diffusion` as pure functions.

Training (`train_step`, plain `model.fit`): for clean clips `x_0`, draw a time
`t` (uniform or logit-normal), noise `eps ~ N(0, I)`, and regress the
network's output at `x_t = alpha(t) x_0 + sigma(t) eps` on the objective's
target (`eps`, `v = alpha eps - sigma x_0`, or the flow velocity `eps - x_0`
on `x_t = (1 - t) x_0 + t eps`) with the mean squared error per example.
Conditional models replace each label by the "no label" class
`num_classes` with probability `label_dropout`, so that one network learns
both `p(x | y)` and `p(x)` and sampling can use classifier-free guidance (Ho
and Salimans, "Classifier-free diffusion guidance", 2022,
https://arxiv.org/abs/2207.12598): `pred = uncond + w (cond - uncond)`, `w =
guidance_scale`, 1 meaning no guidance. An exponential moving average of the
weights (`compile(ema_decay=...)`, 0.999 by default as keras-io's `ddim.py`)
samples, exports and fills presets.

Under `tf.distribute` one step on N replicas with global batch B gives the
update one device makes with batch B: times, noise and label dropout are
drawn for the global batch from one per-step seed and sliced by replica
(`vidgen_tf.distribute`), and the loss is averaged over the global batch.

`test_step` reports the loss at the fixed times `EVAL_TIMES` with fixed
noise: a validation curve that tracks sample quality cheaply (as Open-Sora
reports its evaluation loss at fixed timesteps).
"""

import random
import weakref

import keras
import tensorflow as tf

from vidgen_tf.base import VideoModel, check_positive_int
from vidgen_tf.diffusion import samplers, schedules
from vidgen_tf.distribute import fold_seed, num_replicas, replica_slice

EVAL_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)

# The graphs `generate` samples with, per model: {key: tf.function}. Kept outside the model so that
# Keras and SavedModel tracking never see them.
_SAMPLE_GRAPHS = weakref.WeakKeyDictionary()


def _ema_decay_at(decay, step):
    """`min(decay, (1 + n) / (10 + n))` after `n` updates: `tf.train.ExponentialMovingAverage`'s
    `num_updates` rule, so that a short run's average is not its initial weights."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(decay, (1.0 + step) / (10.0 + step))


class DiffusionModel(VideoModel):
    """Base of the diffusion models: compile with one optimizer, train with `fit`, sample with a loop.

    Subclasses build `self.denoiser = self.make_denoiser()` in `__init__`
    (then `self.build_denoiser(self.denoiser)` and `self.built = True`).

    Args:
        objective: str. `"eps"`, `"v"` or `"flow"` (see
            `vidgen_tf.diffusion.schedules`). Defaults to `"v"`.
        time_distribution: str. Training times: `"uniform"` or
            `"logit_normal"`. Defaults to `"uniform"`.
        label_dropout: float in [0, 1). Conditional models: probability of
            training on the "no label" class. Defaults to 0.1.
        sampler: str or None. Sampler of `generate` and exports: `"ddim"` or
            `"ancestral"` for `eps`/`v`, `"euler"` or `"heun"` for `flow`.
            Defaults to None: `"ddim"`, or `"euler"` for `flow`.
        eta: float in [0, 1]. DDIM's eta (0 deterministic, 1 DDPM). Defaults to 0.
        sampling_steps: int. Steps of `generate` when none are given. Defaults to 50.
        guidance_scale: float >= 0. Classifier-free guidance of `generate`
            when none is given (1: none). Defaults to 1.0.
        **kwargs: the common video configuration of `VideoModel`.
    """

    is_diffusion = True
    default_ema_decay = 0.999

    def __init__(self, objective="v", time_distribution="uniform", label_dropout=0.1, sampler=None, eta=0.0,
                 sampling_steps=50, guidance_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedules.schedule_for(objective)
        self.objective = objective
        if time_distribution not in schedules.TIME_DISTRIBUTIONS:
            raise ValueError(f"`time_distribution` must be one of {schedules.TIME_DISTRIBUTIONS}, "
                             f"got {time_distribution!r}.")
        self.time_distribution = time_distribution
        label_dropout = float(label_dropout)
        if not 0.0 <= label_dropout < 1.0:
            raise ValueError(f"`label_dropout` must be in [0, 1), got {label_dropout!r}.")
        self.label_dropout = label_dropout
        self.sampler = samplers.check_sampler(objective, sampler or samplers.default_sampler(objective), eta)
        self.eta = float(eta)
        self.sampling_steps = check_positive_int("sampling_steps", sampling_steps)
        self.guidance_scale = self._check_guidance(guidance_scale)
        self.ema_denoiser = None
        self.noise_step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                          name="noise_step", aggregation="only_first_replica")

    @staticmethod
    def _check_guidance(guidance_scale):
        if isinstance(guidance_scale, (int, float)) and not isinstance(guidance_scale, bool):
            if float(guidance_scale) < 0.0:
                raise ValueError(f"`guidance_scale` must be >= 0, got {guidance_scale!r}.")
            return float(guidance_scale)
        raise ValueError(f"`guidance_scale` must be a number >= 0, got {guidance_scale!r}.")

    def make_denoiser(self):
        """A new, freshly initialised network `(x_t, t, labels) -> prediction`."""
        raise NotImplementedError

    def build_denoiser(self, denoiser):
        """Creates `denoiser`'s weights by one call on a zero batch of one clip."""
        labels = tf.zeros([1], tf.int32) if self.num_classes else None
        denoiser(tf.zeros((1,) + self.video_shape), tf.zeros([1]), labels)
        return denoiser

    @property
    def inference_generator(self):
        """The network `generate` and exports sample with: the EMA one if kept."""
        return self.ema_denoiser if self.ema_denoiser is not None else self.denoiser

    # ----------------------------------------------------------------- compile
    def make_optimizer(self, learning_rate=None):
        """A new optimizer of this model's default setting: Adam(2e-4); `learning_rate` replaces the rate."""
        return keras.optimizers.Adam(2e-4 if learning_rate is None else learning_rate)

    def compile(self, optimizer=None, ema_decay="default", seed=None, **kwargs):
        """Configures training.

        Args:
            optimizer: optimizer or its name. Defaults to `make_optimizer()`.
            ema_decay: float in (0, 1) or None. Decay of the weights' moving
                average that samples (with `_ema_decay_at`'s warm-up); None
                keeps none. Compiling again with a decay keeps the average
                made so far. Defaults to 0.999.
            seed: int or None. Seed of the training noise. Defaults to a random seed.
            **kwargs: passed to `keras.Model.compile` (`jit_compile` defaults to False).
        """
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer or self.make_optimizer(), **kwargs)
        if ema_decay == "default":
            ema_decay = self.default_ema_decay
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"`ema_decay` must be in (0, 1) or None, got {ema_decay!r}.")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.training_seed = int(random.SystemRandom().randrange(2**31) if seed is None else seed)
        # Built now: under MirroredStrategy, slots made inside the replica step fail.
        self.optimizer.build(self.denoiser.trainable_variables)
        if self.ema_decay is not None and self.ema_denoiser is None:
            self.ema_denoiser = self.build_denoiser(self.make_denoiser())
            self.ema_denoiser.set_weights(self.denoiser.get_weights())
            self.ema_denoiser.trainable = False
        elif self.ema_decay is None and self.ema_denoiser is not None:
            self._tracker.untrack(self.ema_denoiser)  # or its weights stay in checkpoints
            self.ema_denoiser = None
        self.trackers = {"loss": keras.metrics.Mean(name="loss")}

    def get_compile_config(self):
        """The `compile` arguments in use (the drawn seed too), for `.keras` files; None before `compile`."""
        if not hasattr(self, "trackers"):
            return None
        keras_config = super().get_compile_config() or {}
        return {"optimizer": keras.optimizers.serialize(self.optimizer), "ema_decay": self.ema_decay,
                "seed": self.training_seed,
                **{k: keras_config[k] for k in ("jit_compile", "run_eagerly", "steps_per_execution")
                   if k in keras_config}}

    def compile_from_config(self, config):
        config = dict(config)
        config["optimizer"] = keras.optimizers.deserialize(config["optimizer"])
        self.compile(**config)

    @property
    def metrics(self):
        return list(getattr(self, "trackers", {}).values())

    # ---------------------------------------------------------------- training
    def _unpack(self, data):
        labels = None
        if isinstance(data, (tuple, list)):
            if len(data) > 1 and data[1] is not None:
                if not self.num_classes:
                    raise ValueError(f"{type(self).__name__} is unconditional (num_classes=0) but the data "
                                     "yields labels; load it without labels or set num_classes.")
                labels = tf.cast(tf.reshape(data[1], [-1]), tf.int32)
            data = data[0]
        if self.num_classes and labels is None:
            raise ValueError(f"{type(self).__name__} is conditional (num_classes={self.num_classes}): "
                             "the data must yield (videos, labels).")
        self.check_videos(data)
        videos = tf.debugging.assert_all_finite(
            tf.cast(data, tf.float32), f"{type(self).__name__}: the training videos contain NaN or Inf.")
        return videos, labels

    def per_example_loss(self, videos, labels, t, eps, training=False):
        """Squared error `(B,)` of the network at times `t` `(B,)` with noise `eps`, averaged per video."""
        alpha, sigma = schedules.signal_and_noise_rates(schedules.broadcast_time(t, videos), self.schedule)
        x_t = schedules.add_noise(videos, eps, alpha, sigma)
        prediction = self.denoise(x_t, t, labels, training=training, network=self.denoiser)
        error = tf.square(prediction - schedules.target(self.objective, videos, eps, alpha, sigma))
        return tf.reduce_mean(error, axis=[1, 2, 3, 4])

    def train_step(self, data):
        if not hasattr(self, "trackers"):
            raise RuntimeError(f"Call {type(self).__name__}.compile() before fit().")
        videos, labels = self._unpack(data)  # (B, T, H, W, C)
        local_batch = tf.shape(videos)[0]
        global_batch = local_batch * num_replicas()
        seed = fold_seed(tf.constant([self.training_seed, 0], tf.int64), self.noise_step)
        # Drawn for the global batch and sliced: N replicas see one device's draws.
        t = replica_slice(schedules.sample_times([global_batch], fold_seed(seed, 0), self.time_distribution),
                          local_batch)
        shape = tf.concat([[global_batch], tf.shape(videos)[1:]], axis=0)
        eps = replica_slice(tf.random.stateless_normal(shape, fold_seed(seed, 1)), local_batch)
        if labels is not None and self.label_dropout > 0:
            drop = tf.random.stateless_uniform([global_batch], fold_seed(seed, 2)) < self.label_dropout
            labels = tf.where(replica_slice(drop, local_batch), self.num_classes, labels)
        variables = self.denoiser.trainable_variables
        with tf.GradientTape() as tape:
            per_example = self.per_example_loss(videos, labels, t, eps, training=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = self.optimizer.scale_loss(loss)
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self._update_ema()
        self.noise_step.assign_add(1)
        self.trackers["loss"].update_state(per_example)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _update_ema(self):
        if self.ema_denoiser is None:
            return
        decay = _ema_decay_at(self.ema_decay, self.noise_step)
        for ema_var, var in zip(self.ema_denoiser.weights, self.denoiser.weights):
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def test_step(self, data):
        if not hasattr(self, "trackers"):
            raise RuntimeError(f"Call {type(self).__name__}.compile() before evaluate().")
        videos, labels = self._unpack(data)
        local_batch = tf.shape(videos)[0]
        # Fixed noise (fold 1 of the training seed) at fixed times: comparable across training.
        seed = tf.constant([self.training_seed, 1], tf.int64)
        shape = tf.concat([[local_batch * num_replicas()], tf.shape(videos)[1:]], axis=0)
        eps = replica_slice(tf.random.stateless_normal(shape, seed), local_batch)
        losses = [self.per_example_loss(videos, labels, tf.fill([local_batch], time), eps) for time in EVAL_TIMES]
        self.trackers["loss"].update_state(tf.add_n(losses) / len(EVAL_TIMES))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # ---------------------------------------------------------------- sampling
    def denoise(self, x_t, t, labels=None, training=False, network=None):
        """The network's output (float32, shaped like `x_t`) at noisy videos `x_t` and times `t` `(B,)`.

        `labels` may hold `num_classes`, the "no label" class; `network`
        defaults to `inference_generator`.
        """
        network = network or self.inference_generator
        if self.num_classes and labels is None:
            raise ValueError(f"{type(self).__name__} is conditional: labels are required.")
        x_t = tf.cast(x_t, tf.float32)
        t = tf.broadcast_to(tf.cast(t, tf.float32), tf.shape(x_t)[:1])
        return tf.cast(network(x_t, t, labels if self.num_classes else None, training=training), tf.float32)

    def guided_prediction(self, x_t, t, labels=None, guidance_scale=1.0, network=None):
        """`uncond + w (cond - uncond)` (classifier-free guidance) for conditional models, else the prediction.

        A Python `guidance_scale` of 1 takes one network call; any other
        value (or a tensor) two, batched together.
        """
        if not self.num_classes:
            return self.denoise(x_t, t, network=network)
        if isinstance(guidance_scale, (int, float)) and float(guidance_scale) == 1.0:
            return self.denoise(x_t, t, labels, network=network)
        batch = tf.shape(x_t)[0]
        both = self.denoise(tf.concat([x_t, x_t], 0), t, tf.concat([labels, tf.fill([batch], self.num_classes)], 0),
                            network=network)
        conditional, unconditional = both[:batch], both[batch:]
        return unconditional + tf.cast(guidance_scale, tf.float32) * (conditional - unconditional)

    def step(self, x_t, t, t_next, noise=None, labels=None, guidance_scale=1.0, sampler=None, eta=None, network=None):
        """One sampler step from time `t` to `t_next` (scalars): `x_{t_next}`, float32 like `x_t`.

        `noise` N(0, 1) like `x_t` serves stochastic samplers (zeros if None).
        """
        sampler = sampler or self.sampler
        eta = self.eta if eta is None else eta

        def predict(x, time):
            return self.guided_prediction(x, time, labels, guidance_scale, network)

        return samplers.step(predict, self.objective, sampler, tf.cast(x_t, tf.float32), t, t_next, noise, eta)

    def sample(self, noise, num_steps=None, labels=None, guidance_scale=None, sampler=None, eta=None, seed=None,
               network=None):
        """Videos `(B, T, H, W, C)` float32 in [-1, 1] from `noise` at t = 1, in one `tf.while_loop`.

        Args:
            noise: float `(B, T, H, W, C)`, N(0, 1).
            num_steps: int or scalar int32 tensor. Defaults to `sampling_steps`.
            labels: int `(B,)` for conditional models.
            guidance_scale: float or scalar tensor. Defaults to the model's.
            sampler: str. Defaults to the model's.
            eta: float. DDIM's eta. Defaults to the model's.
            seed: shape-[2] int seed of a stochastic sampler's per-step noise.
            network: the denoiser. Defaults to `inference_generator`.
        """
        sampler = samplers.check_sampler(self.objective, sampler or self.sampler, self.eta if eta is None else eta)
        eta = self.eta if eta is None else float(eta)
        stochastic = samplers.is_stochastic(sampler, eta)
        if stochastic and seed is None:
            raise ValueError(f"sampler={sampler!r} (eta={eta}) draws noise at every step: give a `seed`.")
        guidance_scale = self.guidance_scale if guidance_scale is None else guidance_scale
        noise = tf.cast(noise, tf.float32)

        def one_step(x, t, s, i):
            step_noise = tf.random.stateless_normal(tf.shape(x), fold_seed(seed, i)) if stochastic else None
            return self.step(x, t, s, step_noise, labels, guidance_scale, sampler, eta, network)

        videos = samplers.sample_loop(one_step, noise, self.sampling_steps if num_steps is None else num_steps)
        return tf.clip_by_value(videos, -1.0, 1.0)

    def noise_spec(self, num_frames=None):
        """`noise`: `(B, T, H, W, C)` float32 N(0, 1), the videos at t = 1."""
        return {"noise": tf.TensorSpec([None, *self.video_shape], tf.float32, name="noise")}

    def sample_noise(self, batch_size, seed, num_frames=None):
        """`noise` drawn from N(0, 1) with `tf.random.stateless_normal`."""
        return {"noise": tf.random.stateless_normal([batch_size, *self.video_shape], tf.cast(seed, tf.int64))}

    def deterministic_sampler(self):
        """`(sampler, eta)` of the exported `sample`, whose only randomness is its input noise:
        the model's sampler, or DDIM with eta 0 when that one is stochastic."""
        return (self.sampler, self.eta) if not samplers.is_stochastic(self.sampler, self.eta) else ("ddim", 0.0)

    def generate_from_noise(self, noise, labels=None, training=False, generator=None, num_steps=None,
                            guidance_scale=None):
        """Videos from `noise["noise"]` by the deterministic sampler (see `deterministic_sampler`)."""
        labels = self.check_labels(labels)
        sampler, eta = self.deterministic_sampler()
        return self.sample(noise["noise"], num_steps, labels, guidance_scale, sampler, eta, network=generator)

    def generate(self, num, seed=None, num_frames=None, labels=None, num_steps=None, sampler=None,
                 guidance_scale=None, eta=None):
        """Generates `num` videos, float32 `(num, T, H, W, C)` in [-1, 1], deterministic in `seed`.

        Args:
            num: int. Number of videos.
            seed: int or None. The same seed gives the same videos (the
                starting noise is `sample_noise(num, [seed, 1])`; a
                stochastic sampler's step noise comes from `[seed, 2]`).
            num_frames: int or None. Must be the model's.
            labels: int array `(num,)` for conditional models, else None.
            num_steps: int or None. Defaults to `sampling_steps`.
            sampler: str or None. Defaults to the model's `sampler`.
            guidance_scale: float or None. Defaults to the model's.
            eta: float or None. DDIM's eta. Defaults to the model's.
        """
        check_positive_int("num", num)
        self._check_num_frames(num_frames)
        labels = self.check_labels(labels, batch_size=num)
        if num_steps is not None:
            check_positive_int("num_steps", num_steps)
        if guidance_scale is not None:
            guidance_scale = self._check_guidance(guidance_scale)
        seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
        noise = self.sample_noise(num, tf.constant([seed, 1], tf.int64))["noise"]
        sampler = samplers.check_sampler(self.objective, sampler or self.sampler, self.eta if eta is None else eta)
        eta = self.eta if eta is None else float(eta)
        guidance_scale = self.guidance_scale if guidance_scale is None else guidance_scale
        graph = self._sample_graph(sampler, eta, guidance_scale == 1.0)
        return graph(noise, tf.constant(self.sampling_steps if num_steps is None else num_steps, tf.int32),
                     tf.zeros([num], tf.int32) if labels is None else tf.cast(labels, tf.int32),
                     tf.constant(guidance_scale, tf.float32), tf.constant([seed, 2], tf.int64))

    def _sample_graph(self, sampler, eta, unguided):
        """`sample` as a `tf.function` (built once per sampler setting, any batch size and step count).

        The loop's steps run as one graph instead of op by op: 1.9x faster than eager sampling
        for the moving-digits preset's network (16 clips of 8x32x32, 20 steps, this CPU). Python
        settings (sampler, eta, guidance exactly 1 (one network call) or not) choose the graph;
        tensors (noise, labels, step count, guidance scale, seed) feed it.
        """
        graphs = _SAMPLE_GRAPHS.setdefault(self, {})
        network = self.inference_generator
        key = (sampler, eta, unguided, id(network))
        if key not in graphs:
            def run(noise, num_steps, labels, guidance_scale, seed):
                return self.sample(noise, num_steps, labels if self.num_classes else None,
                                   1.0 if unguided else guidance_scale, sampler, eta, seed=seed, network=network)

            graphs[key] = tf.function(run, reduce_retracing=True)
        return graphs[key]

    def call(self, inputs, training=False):
        """The network's output for a dict `{"x_t", "t"[, "label"]}`."""
        return self.denoise(inputs["x_t"], inputs["t"], inputs.get("label"), training=training)

    def preset_model(self):
        """An uncompiled copy whose network holds the sampling (EMA) weights."""
        config = {k: v for k, v in self.get_config().items() if k not in ("name", "trainable", "dtype")}
        copy = type(self)(**config)
        copy.denoiser.set_weights(self.inference_generator.get_weights())
        copy.noise_step.assign(self.noise_step)
        return copy

    def get_config(self):
        config = super().get_config()
        config.update(objective=self.objective, time_distribution=self.time_distribution,
                      label_dropout=self.label_dropout, sampler=self.sampler, eta=self.eta,
                      sampling_steps=self.sampling_steps, guidance_scale=self.guidance_scale)
        return config
