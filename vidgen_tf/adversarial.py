"""AdversarialModel: the training core every GAN in the zoo shares.

A subclass owns its generator and discriminators (plain Keras models) and says
how to draw noise, how to turn noise into video, and what each discriminator
sees. This class owns training: `compile` takes one optimizer per player and a
loss from `vidgen_tf.losses`, and `train_step` runs `n_critic` discriminator
updates, then one generator update, then the optional generator EMA update.

The batch of one step. Arjovsky et al. 2017 (Algorithm 1) and Gulrajani et
al. 2017 draw a fresh real minibatch for every critic update, so `train_step`
takes `n_critic x B` clips per step and gives each of its `n_critic` critic
updates `B` different ones: update `i` sees rows `i, i + n_critic,
i + 2 n_critic, ...` of the batch (a strided split). The generator update then
uses `B` noise draws. Feed `fit` batches of `model.clips_per_step(B)` clips;
a batch size that `n_critic` does not divide is an error that names both.
With `n_critic = 1` the batch is `B` and nothing changes.

Under `tf.distribute` one step on N replicas with global batch B gives the same
update as one replica with batch B: every replica draws the noise of the whole
global batch from the same per-step seed and keeps its own slice, and losses
are averaged over the global batch (gradients are summed across replicas). The
strided split keeps this exact: Keras hands each replica a contiguous slice of
the global batch, and the strided rows of that slice are exactly the replica's
share of the one-device critic batch `i`.

Penalties (the WGAN-GP gradient penalty, R1) are computed with the
discriminators in inference mode: see `AdversarialModel.penalties`.
"""

import logging
import random
import warnings

import keras
import tensorflow as tf

from vidgen_tf import losses as gan_losses
from vidgen_tf.base import VideoModel, check_positive_int
from vidgen_tf.distribute import fold_seed, global_uniform_ints, num_replicas, replica_slice
from vidgen_tf.layers.spectral_norm import SpectralNorm

logger = logging.getLogger(__name__)


class AdversarialModel(VideoModel):
    """Base of the GANs: compile with two optimizers, train with `fit`.

    Subclasses build, in `__init__`, `self.generator` and the dict
    `self.discriminators` (name -> Keras model) and implement:

    - `noise_spec(num_frames=None)`: dict name -> `tf.TensorSpec` of the noise
      inputs for a batch (batch axis None).
    - `sample_noise(batch_size, seed, num_frames=None)`: dict of noise tensors
      drawn with `tf.random.stateless_*` from `seed` (shape [2] int).
      A model that streams (see `VideoModel.generate_stream`) also takes
      `start_frame` and draws its per-frame entries with `base.frame_noise`.
    - `make_generator()`: a new generator model, called on a dict of the
      noise tensors (and `"label"` for conditional models), returning float
      videos `(B, T, H, W, C)` in [-1, 1]: a pure function of its inputs.
    - `discriminate(videos, labels, seed, training)`: dict name ->
      `(logits, class_logits_or_None)`; `seed` serves any random choice (e.g.
      which frames an image discriminator sees), so that real and fake
      batches are treated alike.

    A model that keeps its critics Lipschitz by its own means (TGAN's
    singular value clipping) names that means in `lipschitz_constraint`, so
    that `compile` does not warn about an unconstrained Wasserstein critic.

    Args:
        **kwargs: the common video configuration of `VideoModel`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.generator = None
        self.discriminators = {}
        self.ema_generator = None
        # Counts training steps; with the compile seed it gives each step's noise.
        self.noise_step = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            name="noise_step", aggregation="only_first_replica",
        )

    # ----------------------------------------------------------------- compile
    def compile(
        self,
        g_optimizer=None,
        d_optimizer=None,
        loss=None,
        n_critic=None,
        gp_weight=10.0,
        r1_weight=0.0,
        ema_decay=None,
        class_weight=1.0,
        seed=None,
        **kwargs,
    ):
        """Configures adversarial training.

        Args:
            g_optimizer: optimizer for the generator. Defaults to
                `self.make_optimizer()`: Adam(2e-4, beta_1=0.5), the DCGAN
                setting most video GANs kept, unless the model's paper used another.
            d_optimizer: optimizer for the discriminators. Same default.
            loss: str. One of `vidgen_tf.losses.LOSS_NAMES`. Defaults to the
                model's `default_loss` (the paper's choice).
            n_critic: int. Discriminator updates per generator update, each
                on its own real clips: the data's batches must then hold
                `n_critic x B` clips (see `clips_per_step`), B per critic
                update and B noise draws for the generator update; a batch
                size `n_critic` does not divide raises an error. Defaults to 5
                for Wasserstein losses, else 1.
            gp_weight: float. Weight of the gradient penalty (used by
                "wgan_gp"). Defaults to 10.
            r1_weight: float. Weight of the R1 penalty on real data (any loss);
                0 disables it. Defaults to 0.
            ema_decay: float or None. If set (e.g. 0.999), keeps an exponential
                moving average of the generator that `generate` and exports
                use, updated after every step as `d * ema + (1 - d) * w`.
                Compiling again with a decay keeps the average made so far;
                compiling with None drops it. Defaults to None.
            class_weight: float. Weight of the auxiliary classification loss of
                conditional models whose discriminator classifies. Defaults to 1.
            seed: int or None. Seed of the training noise; the same seed, data
                and weights repeat a run exactly. Defaults to a random seed.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).

        A Wasserstein loss ("wasserstein") on a critic that no Lipschitz
        constraint bounds (no gradient penalty, no spectral normalisation, no
        constraint the model declares in `lipschitz_constraint`, such as
        TGAN's singular value clipping) gets a warning: its critic can grow
        without bound and the loss then estimates no distance.
        """
        # XLA is opt-in: it ran Conv3DTranspose ~250x slower on CPU (bench/).
        kwargs.setdefault("jit_compile", False)
        super().compile(**kwargs)
        self.gan_loss = gan_losses.get_loss(loss or self.default_loss)
        if n_critic is None:
            n_critic = self.default_n_critic(self.gan_loss.name)
        self.n_critic = check_positive_int("n_critic", n_critic)
        self.gp_weight = float(gp_weight)
        self.r1_weight = float(r1_weight)
        self.class_weight = float(class_weight)
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"`ema_decay` must be in (0, 1) or None, got {ema_decay!r}.")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        self.training_seed = int(seed)

        self.g_optimizer = self._prepare_optimizer(g_optimizer)
        self.d_optimizer = self._prepare_optimizer(d_optimizer)
        # Build the optimizers' slots now: under MirroredStrategy, slots made
        # lazily inside the replica step fail ('You must feed a value for
        # placeholder').
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator_trainable_variables)
        if self.ema_decay is not None and self.ema_generator is None:
            self.ema_generator = self.make_generator()
            self.ema_generator.set_weights(self.generator.get_weights())
            self.ema_generator.trainable = False
        elif self.ema_decay is None and self.ema_generator is not None:
            self._drop_ema_generator()
        self._warn_if_unconstrained()

        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake",
                         "d_grad_norm", "g_grad_norm") + self.penalty_names
        }

    default_loss = "non_saturating"

    def default_n_critic(self, loss_name):
        """Critic updates per step when `compile` is given none: 5 for Wasserstein losses, else 1.

        Args:
            loss_name: str. The name of a loss of `vidgen_tf.losses`.
        """
        return 5 if gan_losses.get_loss(loss_name).name in ("wasserstein", "wgan_gp") else 1

    # A Lipschitz constraint the model applies to its critics itself (e.g.
    # "singular value clipping" in TGAN), named for messages, or None. The core
    # sees gradient penalties and spectral normalisation on its own.
    lipschitz_constraint = None

    def clips_per_step(self, batch_size):
        """Clips one training step takes: `n_critic * batch_size`.

        Each of the `n_critic` critic updates of a step sees `batch_size` real
        clips of its own, so a data pipeline for per-update batch `B` batches
        `clips_per_step(B)` clips (the global batch under `tf.distribute`).

        Args:
            batch_size: int. `B`, the clips of one critic update (and the
                generator update's batch).

        Returns:
            int. `n_critic * batch_size`.
        """
        if not hasattr(self, "n_critic"):
            raise RuntimeError(
                f"Call {type(self).__name__}.compile() before clips_per_step(): it depends on n_critic."
            )
        return self.n_critic * check_positive_int("batch_size", batch_size)

    def _drop_ema_generator(self):
        # Keras tracks sub-models assigned as attributes; without untracking,
        # the dropped generator's weights would stay in `weights` and in saved
        # checkpoints.
        self._tracker.untrack(self.ema_generator)
        self.ema_generator = None

    def _warn_if_unconstrained(self):
        if self.gan_loss.name != "wasserstein" or self.lipschitz_constraint:
            return
        unconstrained = [
            name for name, model in self.discriminators.items()
            if not any(isinstance(layer, SpectralNorm) for layer in model._flatten_layers(include_self=True))
        ]
        if unconstrained:
            warnings.warn(
                f"{type(self).__name__} is compiled with the Wasserstein loss, but its critic(s) "
                f"{unconstrained} have no Lipschitz constraint (no weight clipping, no gradient "
                "penalty, no spectral normalisation): the critic can grow without bound and its loss "
                'estimates no distance. Use loss="wgan_gp", or a model that constrains its critic.',
                UserWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------- .keras round trip
    def get_compile_config(self):
        """What `compile_from_config` needs to compile a loaded model as this one.

        `model.save("gan.keras")` stores this dict beside the model's config;
        `keras.models.load_model` calls `compile_from_config` with it and only
        then loads the saved variables. The optimizers go in by their configs:
        their state (iterations, Adam moments, a loss scale) is saved with the
        weights, under `g_optimizer/` and `d_optimizer/`, and restored into the
        optimizers that `compile` has just built. The seed is the one in use,
        also when `compile` drew it, so that the training noise continues from
        the restored `noise_step`.

        Returns:
            A JSON-serialisable dict of `compile` arguments, or None before
            `compile`.
        """
        if not hasattr(self, "gan_loss"):
            return None
        keras_config = super().get_compile_config() or {}
        return {
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "loss": self.gan_loss.name,
            "n_critic": self.n_critic,
            "gp_weight": self.gp_weight,
            "r1_weight": self.r1_weight,
            "ema_decay": self.ema_decay,
            "class_weight": self.class_weight,
            "seed": self.training_seed,
            # The Keras `compile` arguments this model passes on.
            **{key: keras_config[key] for key in ("jit_compile", "run_eagerly", "steps_per_execution")
               if key in keras_config},
        }

    def compile_from_config(self, config):
        """Compiles the model as `get_compile_config` recorded (see there).

        Args:
            config: dict. The output of `get_compile_config`.
        """
        if "g_optimizer" not in config:
            # Files written before the GANs stored their compile arguments hold
            # Keras's generic ones, which cannot set up adversarial training.
            logger.warning(
                "%s: the saved file holds no GAN compile arguments (it predates them); the model "
                "is loaded uncompiled: call compile() before fit().", type(self).__name__,
            )
            return
        config = dict(config)
        for key in ("g_optimizer", "d_optimizer"):
            config[key] = keras.optimizers.deserialize(config[key])
        self.compile(**config)

    @property
    def penalty_names(self):
        names = ()
        if self.gan_loss.penalty == "gradient_penalty":
            names += ("gradient_penalty",)
        if self.r1_weight > 0:
            names += ("r1_penalty",)
        if self.num_classes and self.classifies:
            names += ("class_loss",)
        return names

    # Whether the discriminators output class logits (auxiliary classifier).
    classifies = False

    def make_optimizer(self, learning_rate=None):
        """A new optimizer of this model's paper setting, for either player.

        Adam(2e-4, beta_1=0.5), the DCGAN setting most video GANs kept; models
        whose authors trained otherwise override it. `learning_rate` replaces
        the rate only.
        """
        return keras.optimizers.Adam(2e-4 if learning_rate is None else learning_rate, beta_1=0.5)

    def _prepare_optimizer(self, optimizer):
        if optimizer is None:
            optimizer = self.make_optimizer()
        elif isinstance(optimizer, str):
            optimizer = keras.optimizers.get(optimizer)
        # compile() wraps only self.optimizer for mixed float16; both players
        # need loss scaling, so wrap them here.
        policy = keras.mixed_precision.global_policy()
        if policy.compute_dtype == "float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    @property
    def metrics(self):
        return list(getattr(self, "trackers", {}).values())

    @property
    def discriminator_trainable_variables(self):
        variables = []
        for model in self.discriminators.values():
            variables.extend(model.trainable_variables)
        return variables

    def make_generator(self):
        """A new, freshly initialised generator of the same architecture."""
        raise NotImplementedError

    @property
    def inference_generator(self):
        """The generator used by `generate` and exports: the EMA one if kept."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # ---------------------------------------------------------------- training
    def _unpack(self, data):
        if isinstance(data, (tuple, list)):
            videos = data[0]
            labels = data[1] if len(data) > 1 and self.num_classes else None
            if len(data) > 1 and not self.num_classes and data[1] is not None:
                raise ValueError(
                    f"{type(self).__name__} is unconditional (num_classes=0) but the data "
                    "yields labels; load it without labels or set num_classes."
                )
        else:
            videos, labels = data, None
        self.check_videos(videos)
        if self.num_classes and labels is None:
            raise ValueError(
                f"{type(self).__name__} is conditional (num_classes={self.num_classes}): "
                "the data must yield (videos, labels)."
            )
        if labels is not None:
            labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return tf.cast(videos, tf.float32), labels

    def _global_draws(self, local_batch, seed):
        """Noise and fake labels for the global batch, sliced to this replica."""
        global_batch = local_batch * num_replicas()
        noise = self.sample_noise(global_batch, fold_seed(seed, 0))
        noise = {k: replica_slice(v, local_batch) for k, v in noise.items()}
        labels = None
        if self.num_classes:
            labels = global_uniform_ints(fold_seed(seed, 1), local_batch, self.num_classes)
        return noise, labels

    def _average(self, per_example, global_batch):
        return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)

    def _discriminator_loss(self, real, real_labels, noise, fake_labels, seed, global_batch):
        fake = self.generate_from_noise(noise, fake_labels, training=True)
        fake = tf.stop_gradient(tf.cast(fake, tf.float32))
        view_seed = fold_seed(seed, 2)
        real_out = self.discriminate(real, real_labels, view_seed, training=True)
        fake_out = self.discriminate(fake, fake_labels, view_seed, training=True)
        per_example = 0.0
        terms = {"d_real": 0.0, "d_fake": 0.0, "d_acc_real": 0.0, "d_acc_fake": 0.0}
        for name in self.discriminators:
            real_logits, real_classes = real_out[name]
            fake_logits, _ = fake_out[name]
            per_example += self.gan_loss.discriminator_loss(real_logits, fake_logits)
            terms["d_real"] += gan_losses.mean_logit(real_logits)
            terms["d_fake"] += gan_losses.mean_logit(fake_logits)
            acc_real, acc_fake = gan_losses.discriminator_accuracy(self.gan_loss.name, real_logits, fake_logits)
            terms["d_acc_real"] += acc_real
            terms["d_acc_fake"] += acc_fake
            if real_classes is not None:
                class_loss = keras.losses.sparse_categorical_crossentropy(
                    real_labels, tf.cast(real_classes, tf.float32), from_logits=True
                )
                terms["class_loss"] = terms.get("class_loss", 0.0) + class_loss
                per_example += self.class_weight * class_loss
        penalties = self.penalties(real, fake, real_labels, fake_labels, fold_seed(seed, 3))
        for name, value in penalties.items():
            terms[name] = value
        per_example += sum(
            weight * penalties[name]
            for name, weight in (("gradient_penalty", self.gp_weight), ("r1_penalty", self.r1_weight))
            if name in penalties
        )
        num_d = float(len(self.discriminators))
        for key in ("d_real", "d_fake", "d_acc_real", "d_acc_fake"):
            terms[key] /= num_d
        return self._average(per_example, global_batch), terms

    def penalties(self, real, fake, real_labels, fake_labels, seed):
        """Per-example penalty terms `(B,)` summed over the discriminators.

        The discriminators run in inference mode here (`training=False`).
        Both penalties are defined per example (Gulrajani et al. 2017 penalise
        each interpolate's own gradient norm; Mescheder et al. 2018 each real
        clip's). A batch-normalised critic in training mode mixes the batch,
        so one example's score would depend on the others and the "gradient"
        would not be its own; its forward pass would also move the moving
        statistics towards interpolated clips and advance the spectral-norm
        power iteration (`u`) on them. In inference mode batch normalisation
        is a fixed per-channel affine map (the moving statistics) and spectral
        norm uses the `u` of the loss's own forward pass, so the penalty is
        exact per example and leaves all state alone. The price: for a
        batch-normalised critic the penalised function uses the moving
        statistics while the loss uses the batch's (TGAN's singular value
        clipping likewise bounds the inference-mode slope). Gulrajani et al. advise
        a critic without batch normalisation (layer norm) for WGAN-GP; the
        zoo's BN critics (MoCoGAN, VGAN, TGAN, DCGAN) keep the paper's
        architecture and accept that difference rather than refuse the
        penalty.
        """
        result = {}
        if self.gan_loss.penalty == "gradient_penalty":
            # Drawn for the global batch and sliced, like the noise, so N replicas
            # interpolate exactly as one device would.
            local_batch = tf.shape(real)[0]
            alpha = gan_losses.interpolation_weights(local_batch * num_replicas(), seed)
            alpha = replica_slice(alpha, local_batch)
            result["gradient_penalty"] = self._penalty_over_views(
                lambda critic, r, f: gan_losses.gradient_penalty(critic, r, f, alpha),
                real, fake, real_labels, fake_labels, seed,
            )
        if self.r1_weight > 0:
            result["r1_penalty"] = self._penalty_over_views(
                lambda critic, r, f: gan_losses.r1_penalty(critic, r),
                real, fake, real_labels, fake_labels, seed,
            )
        return result

    def _penalty_over_views(self, penalty, real, fake, real_labels, fake_labels, seed):
        """Applies `penalty` to each discriminator on the input it sees."""
        real_views = self.discriminator_views(real, fold_seed(seed, 7))
        fake_views = self.discriminator_views(fake, fold_seed(seed, 7))
        total = 0.0
        for name, model in self.discriminators.items():
            labels = real_labels

            def critic(x, model=model, labels=labels):
                # Inference mode: per example, and no state updates (see `penalties`).
                logits = self.call_discriminator(name, model, x, labels, training=False)[0]
                return tf.cast(logits, tf.float32)

            total += penalty(critic, real_views[name], fake_views[name])
        return total

    def discriminator_views(self, videos, seed):
        """dict name -> the tensor each discriminator sees of `videos`."""
        return {name: videos for name in self.discriminators}

    def call_discriminator(self, name, model, inputs, labels, training):
        """`(logits, class_logits or None)` of one discriminator on its view."""
        out = model(inputs, training=training)
        return out, None

    def discriminate(self, videos, labels, seed, training=False):
        views = self.discriminator_views(videos, seed)
        return {
            name: self.call_discriminator(name, model, views[name], labels, training)
            for name, model in self.discriminators.items()
        }

    def _generator_loss(self, noise, fake_labels, seed, global_batch):
        fake = self.generate_from_noise(noise, fake_labels, training=True)
        fake = tf.cast(fake, tf.float32)
        fake_out = self.discriminate(fake, fake_labels, fold_seed(seed, 2), training=True)
        per_example = 0.0
        for name in self.discriminators:
            fake_logits, fake_classes = fake_out[name]
            per_example += self.gan_loss.generator_loss(fake_logits)
            if fake_classes is not None:
                per_example += self.class_weight * keras.losses.sparse_categorical_crossentropy(
                    fake_labels, tf.cast(fake_classes, tf.float32), from_logits=True
                )
        per_example += self.generator_regularizer(noise, fake_labels)
        return self._average(per_example, global_batch)

    def generator_regularizer(self, noise, labels):
        """Extra per-example generator loss `(B,)` (e.g. VGAN's mask sparsity)."""
        return 0.0

    def train_step(self, data):
        if not hasattr(self, "gan_loss"):
            raise RuntimeError(f"Call {type(self).__name__}.compile() before fit().")
        clips, clip_labels = self._unpack(data)
        replicas = num_replicas()
        self._check_step_batch(clips, replicas)
        # B clips per critic update, and B noise draws for the generator update.
        local_batch = tf.shape(clips)[0] // self.n_critic
        global_batch = local_batch * replicas
        step_seed = fold_seed(tf.constant([self.training_seed, 0], tf.int64), self.noise_step)

        d_vars = self.discriminator_trainable_variables
        for i in range(self.n_critic):
            # Strided, not contiguous: on every replica rows i, i + n, ... of its
            # contiguous share of the global batch are its share of chunk i.
            real = clips[i :: self.n_critic]
            real_labels = None if clip_labels is None else clip_labels[i :: self.n_critic]
            seed = fold_seed(step_seed, i + 1)
            noise, fake_labels = self._global_draws(local_batch, seed)
            with tf.GradientTape() as tape:
                d_loss, terms = self._discriminator_loss(
                    real, real_labels, noise, fake_labels, seed, global_batch
                )
                scaled = self.d_optimizer.scale_loss(d_loss)
            grads = tape.gradient(scaled, d_vars)
            d_grad_norm = self._gradient_norm(grads, self.d_optimizer)
            self.d_optimizer.apply(grads, d_vars)
            self.after_discriminator_update()

        seed = fold_seed(step_seed, 0)
        noise, fake_labels = self._global_draws(local_batch, seed)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            g_loss = self._generator_loss(noise, fake_labels, seed, global_batch)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, g_vars)
        g_grad_norm = self._gradient_norm(grads, self.g_optimizer)
        self.g_optimizer.apply(grads, g_vars)
        self._update_ema()
        self.noise_step.assign_add(1)

        # Losses were divided by the global batch; times the replica count they
        # are this replica's mean, and the Mean trackers average the replicas.
        self.trackers["d_loss"].update_state(d_loss * replicas)
        self.trackers["g_loss"].update_state(g_loss * replicas)
        self.trackers["d_grad_norm"].update_state(d_grad_norm)
        self.trackers["g_grad_norm"].update_state(g_grad_norm)
        for name, value in terms.items():
            if name in self.trackers:
                self.trackers[name].update_state(tf.reduce_mean(value))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @staticmethod
    def _gradient_norm(grads, optimizer):
        """Global L2 norm of one player's gradient of its (unscaled) loss, for the logs.

        Under N replicas each holds the gradient of its own share of the loss;
        the update uses their sum, so the norm is taken of an all-reduced copy
        (one extra all-reduce per update, only when N > 1): every replica then
        logs the norm one device would. A mixed-precision loss scale is divided out.
        """
        grads = [tf.cast(g, tf.float32) for g in grads if g is not None]
        if not grads:
            return tf.constant(0.0)
        context = tf.distribute.get_replica_context()
        if context is not None and num_replicas() > 1:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        norm = tf.linalg.global_norm(grads)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            norm = norm / tf.cast(optimizer.dynamic_scale, tf.float32)
        elif getattr(optimizer, "loss_scale_factor", None):
            norm = norm / float(optimizer.loss_scale_factor)
        return norm

    def _check_step_batch(self, clips, replicas):
        """Raises unless `n_critic` divides the batch of this replica."""
        if self.n_critic == 1:
            return
        where = f" on each of {replicas} replicas" if replicas > 1 else ""
        problem = (
            f"{type(self).__name__} is compiled with n_critic={self.n_critic}: each step's batch must "
            f"hold n_critic x B clips{where} (B fresh real clips for each critic update), a multiple of "
            f"{self.n_critic}; batch the data with model.clips_per_step(B)"
        )
        batch = clips.shape[0]
        if batch is not None:
            if batch % self.n_critic:
                got = f"{batch} clips per replica (global batch {batch * replicas})" if replicas > 1 else batch
                raise ValueError(f"{problem}; got a batch of {got}.")
            return
        # Unknown until run time (a dataset batched without drop_remainder).
        tf.debugging.Assert(
            tf.equal(tf.shape(clips)[0] % self.n_critic, 0), [f"{problem}; got a batch of", tf.shape(clips)[0]]
        )

    def after_discriminator_update(self):
        """Hook after each discriminator update (e.g. weight clipping)."""

    def _update_ema(self):
        if self.ema_generator is None:
            return
        decay = self.ema_decay
        for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def test_step(self, data):
        raise NotImplementedError(
            f"{type(self).__name__} has no validation loss; evaluate samples with vidgen_tf.metrics."
        )

    # -------------------------------------------------------------- generation
    def generate_from_noise(self, noise, labels=None, training=False, generator=None):
        """Videos `(B, T, H, W, C)` from a noise dict, by `generator` (default: the trained one).

        Labels outside [0, num_classes) are an error (a ValueError in eager
        mode, an INVALID_ARGUMENT assert in a graph), never a silent zero code.
        """
        inputs = dict(noise)
        labels = self.check_labels(labels)
        if self.num_classes:
            inputs["label"] = labels
        return (generator or self.generator)(inputs, training=training)

    def call(self, noise, training=False):
        """Videos from a noise dict (and `noise["label"]` for conditional models)."""
        noise = dict(noise)
        labels = noise.pop("label", None)
        return self.generate_from_noise(
            noise, labels, training=training, generator=None if training else self.inference_generator
        )

    def generate(self, num, seed=None, num_frames=None, labels=None):
        """Generates `num` videos, float32 `(num, T, H, W, C)` in [-1, 1].

        Args:
            num: int. Number of videos.
            seed: int or None. The same seed gives the same videos.
            num_frames: int or None. Length of the videos; models with
                `variable_length` make any length, others only `num_frames`.
            labels: int array `(num,)` for conditional models, else None.
        """
        check_positive_int("num", num)
        num_frames = self._check_num_frames(num_frames)
        labels = self.check_labels(labels, batch_size=num)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        noise = self.sample_noise(num, tf.constant([int(seed), 1], tf.int64), num_frames=num_frames)
        videos = self.generate_from_noise(
            noise, labels, training=False, generator=self.inference_generator
        )
        return tf.cast(videos, tf.float32)

    def preset_model(self):
        """The model a preset stores: an uncompiled copy holding the generation weights.

        The copy leaves out optimizer state (a checkpoint's business, not a
        preset's) and, when an EMA is kept, its generator holds the EMA weights.
        """
        config = self.get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        copy = type(self)(**config)
        copy.generator.set_weights(self.inference_generator.get_weights())
        for name, model in self.discriminators.items():
            copy.discriminators[name].set_weights(model.get_weights())
        copy.noise_step.assign(self.noise_step)
        return copy
