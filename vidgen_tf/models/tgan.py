"""TGAN: a temporal generator of frame codes, an image generator, and singular value clipping.

Saito, Matsumoto and Saito, "Temporal Generative Adversarial Nets with
Singular Value Clipping", ICCV 2017, https://arxiv.org/abs/1611.06624.

The generator is split in two. A temporal generator `G0` of 1-D transposed
convolutions over time turns one latent `z0` (100-d, uniform in [-1, 1]) into
one code `z1(t)` per frame (16 codes of 100-d in the paper, tanh). An image
generator `G1` renders each frame from `[z0, z1(t)]`: both are projected to a
4x4 map, concatenated and upsampled by 2-D transposed convolutions. A 3-D
convolutional critic judges whole clips. Training is a Wasserstein GAN whose
critic is kept Lipschitz by singular value clipping (SVC): after critic
updates every weight matrix `W = U S V^T` is replaced by `U min(S, 1) V^T`
(a convolution kernel read as a matrix of its output channels against the
rest), and each batch normalisation's scale is clipped to
`|gamma| <= sqrt(moving_variance + epsilon)`, which bounds the slope
`gamma / sqrt(var + epsilon)` of the normalisation at inference by 1. In
training mode batch normalisation divides by the batch's variance instead;
the paper accepts that approximation, and so does this implementation.

The conditional variant (`num_classes > 0`) joins a learned class code to
`z0` and makes the critic a projection discriminator (the authors show
label-conditional UCF-101 samples; this way of conditioning is the zoo's).

Training defaults follow the authors' code (pfnet-research/tgan): one critic
update per generator update (the `n_critic` default when the loss is
"wasserstein" and SVC is on), SVC after every 5th critic update, and RMSprop
with learning rate 5e-5 for both players when `compile` is given no
optimizers. The authors also bound gamma from below by `0.01 * std`; that is
not a Lipschitz condition and is left out here.

Differences from the authors' code (pfnet-research/tgan, Chainer; the
moving-MNIST and UCF-101 SVC configurations). Same layers: `G0` is a 1x1
transposed convolution to 512 channels then four of kernel 4, stride 2,
padding 1 (512, 256, 128, 128, then the 100 codes, tanh), batch norm and ReLU
between; `G1` projects `z0` and `z1(t)` with bias-free linear layers to 4x4x256
each, batch-normalised per unit, and upsamples the 512-channel concatenation
with four 4x4 stride-2 transposed convolutions (256, 128, 64, 32) and a 3x3
one to the frame, tanh, every frame of the batch normalised together; the
critic is `Conv3DDiscriminator` (4x4x4, stride 2, padding 1, leaky ReLU 0.2,
no batch norm on the first layer) ending in one score from a kernel over the
whole 1x4x4x512 map; `z0` is uniform in [-1, 1]; the losses are the
Wasserstein ones; both players use RMSprop with rate 5e-5 and Chainer's decay
0.99 and Chainer's eps 1e-8 (outside the root, see `make_optimizer`); SVC every 5th update; every kernel starts uniform in
[-0.01, 0.01], biases at 0 and batch-norm scales at 1 (the moving-MNIST
configuration's "init-uniform-all"; one of the UCF-101 configurations keeps
Chainer's default initialisation for `G0` and the critic). TensorFlow's
"same" padding is Chainer's padding 1 for these even sizes. SVC reads a kernel
as a matrix of the other axes against its output channels, the authors'
`reshape(out, -1)` transposed with its columns permuted: the same singular
values. The batch-norm bound uses `sqrt(var + eps)` where the authors' uses
`sqrt(var)`.
Differences on purpose: (1) the batch norms have a shift (beta) everywhere,
where the authors' "no-beta" configurations drop it in `G0` and the critic,
and use Keras's epsilon 1e-3 and momentum 0.99 (Chainer: 2e-5 and decay 0.9),
because the zoo's layers share one batch-norm type; (2) any frame count and
size, and the conditional variant. The training core differs in the update
order: the authors run one forward pass per iteration and update the
generator first and then the critic on that same fake batch; the core updates
the critic, then draws fresh noise for the generator.
"""

import random

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from vidgen_tf import losses as gan_losses
from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.base import check_positive_int
from vidgen_tf.layers import BatchNormalization, Conv3DDiscriminator, LabelEmbedding, Up2D, doubling_stages
from vidgen_tf.registry import register


def _initialise_like_tgan(model):
    """Redraws every kernel uniformly from [-0.01, 0.01], the authors' `Uniform(0.01)`.

    Their moving-MNIST configuration initialises every layer so (biases 0 and
    batch-norm scales 1, Chainer's defaults, as Keras's). One generator for all
    kernels (an unseeded Keras initializer would repeat itself across kernels
    of one shape); Python's `random` is seeded by `keras.utils.set_random_seed`.
    """
    rng = np.random.default_rng(random.getrandbits(64))
    for weight in model.weights:
        if weight.path.endswith("kernel"):
            weight.assign(rng.uniform(-0.01, 0.01, weight.shape).astype(weight.dtype))


@keras.saving.register_keras_serializable(package="vidgen_tf")
class TemporalGenerator(keras.Model):
    """`G0`: latent `(B, Z0)` -> frame codes `(B, T, Z1)` in [-1, 1].

    A dense layer gives the first `T / 2**k` steps (k = the factors of two of
    `T`), then k transposed convolutions over time (kernel 4, stride 2) double
    the length; the paper's 16 frames start from one step. Widths halve from
    `width` per layer, down to `width // 4` (512, 256, 128, 128 in the paper).
    Time is the height of one-pixel-wide maps, so the shared `Up2D` blocks
    (synchronised batch norm) serve as 1-D layers.

    Args:
        num_frames: int. `T`.
        code_dim: int. `Z1`, the size of each frame code.
        width: int. Channels of the first layer.
    """

    def __init__(self, num_frames, code_dim, width, **kwargs):
        super().__init__(**kwargs)
        doublings = 0
        while num_frames % 2 ** (doublings + 1) == 0:
            doublings += 1
        start = num_frames // 2**doublings
        widths = [max(width // 2**j, width // 4, 1) for j in range(max(doublings, 1))]
        stack = [
            layers.Dense(start * widths[0], use_bias=False, name="project"),
            layers.Reshape((start, 1, widths[0])),
            BatchNormalization(synchronized=True),
            layers.ReLU(),
        ]
        stack += [Up2D(w, kernel_size=(4, 1), strides=(2, 1)) for w in widths[1:doublings]]
        stack += [
            layers.Conv2DTranspose(
                code_dim, (4, 1), strides=(2 if doublings else 1, 1), padding="same", name="codes"
            ),
            layers.Activation("tanh"),
            layers.Reshape((num_frames, code_dim)),
        ]
        self.stack = keras.Sequential(stack, name="layers")
        self.config = dict(num_frames=num_frames, code_dim=code_dim, width=width)

    def call(self, latent, training=False):
        return self.stack(latent, training=training)  # (B, T, Z1)

    def get_config(self):
        return {**super().get_config(), **self.config}


@keras.saving.register_keras_serializable(package="vidgen_tf")
class TGANGenerator(keras.Model):
    """`G0` then `G1`: a latent -> frame codes -> frames.

    Called on a dict: `latent` `(B, latent_dim)` and, when `num_classes > 0`,
    `label` `(B,)` int (a learned class code joins `z0` wherever `z0` is
    used); returns `(B, T, H, W, C)` float32 in [-1, 1].
    """

    def __init__(self, num_frames, height, width, channels, latent_dim, frame_code_dim,
                 width_multiplier, temporal_width, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="TGAN")
        rows, cols = height // 2**stages, width // 2**stages
        half = width_multiplier * 2 ** (stages - 1)  # each of the two 4x4 maps

        # === Layers ===
        self.label_embedding = LabelEmbedding(num_classes, latent_dim, name="label_embedding") if num_classes else None
        self.temporal_generator = TemporalGenerator(
            num_frames, frame_code_dim, temporal_width, name="temporal_generator"
        )

        def projection(name):
            # Batch norm per unit of the projected vector, as the authors' code.
            return keras.Sequential(
                [
                    layers.Dense(rows * cols * half, use_bias=False),
                    BatchNormalization(synchronized=True),
                    layers.ReLU(),
                    layers.Reshape((rows, cols, half)),
                ],
                name=name,
            )

        self.latent_projection = projection("latent_projection")
        self.code_projection = projection("code_projection")
        stack = [Up2D(width_multiplier * 2 ** (stages - 1 - i)) for i in range(stages)]
        stack += [
            layers.Conv2DTranspose(channels, 3, padding="same", name="frame"),
            # float32 output under mixed precision: the edge of the model.
            layers.Activation("tanh", dtype="float32"),
        ]
        self.image_generator = keras.Sequential(stack, name="image_generator")

        # === Config ===
        self.num_classes = num_classes
        self.config = dict(
            num_frames=num_frames, height=height, width=width, channels=channels,
            latent_dim=latent_dim, frame_code_dim=frame_code_dim, width_multiplier=width_multiplier,
            temporal_width=temporal_width, num_classes=num_classes,
        )

    def call(self, inputs, training=False):
        latent = inputs["latent"]  # (B, Z0)
        if self.num_classes:
            latent = ops.concatenate([latent, ops.cast(self.label_embedding(inputs["label"]), latent.dtype)], axis=-1)
        codes = self.temporal_generator(latent, training=training)  # (B, T, Z1)
        batch, frames = tf.shape(codes)[0], codes.shape[1]
        repeated = tf.reshape(ops.repeat(latent[:, None], frames, axis=1), [batch * frames, latent.shape[-1]])
        codes = tf.reshape(codes, [batch * frames, codes.shape[-1]])  # (B*T, Z1)
        maps = ops.concatenate(
            [
                self.latent_projection(repeated, training=training),
                ops.cast(self.code_projection(codes, training=training), self.compute_dtype),
            ],
            axis=-1,
        )  # (B*T, 4, 4, 2 * half)
        images = self.image_generator(maps, training=training)  # (B*T, H, W, C)
        return tf.reshape(images, [batch, frames] + list(images.shape[1:]))

    def get_config(self):
        return {**super().get_config(), **self.config}


def clip_singular_values(matrix):
    """`U min(S, 1) V^T` of a matrix `(m, n)`: its singular values clipped to <= 1."""
    s, u, v = tf.linalg.svd(matrix, full_matrices=False)
    return tf.matmul(u * tf.minimum(s, 1.0)[None, :], v, transpose_b=True)


def _assign_all(pairs):
    """Assigns `(variable, value)` pairs, from a replica as well as from one device."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        for variable, value in pairs:
            variable.assign(value)
        return

    def update(strategy, pairs):
        for variable, value in pairs:
            # Every replica computed the same value from the same mirrored weights.
            strategy.extended.update(variable.value, lambda v, x: v.assign(x), args=(value,), group=False)

    tf.distribute.get_replica_context().merge_call(update, args=(pairs,))


@register("tgan")
class TGAN(AdversarialModel):
    """TGAN video GAN (Saito et al., ICCV 2017): temporal + image generator, SVC critic.

    The frame count is fixed by the temporal generator (`variable_length = False`).

    Args:
        num_frames: int. Frames per clip. Defaults to 16 (the paper).
        height: int. Frame height, 4 * 2**k (16, 32, 64, ...). Defaults to 64.
        width: int. Frame width, like `height`. Defaults to 64.
        channels: int. 1 (grey) or 3 (RGB). Defaults to 3.
        num_classes: int. > 0 gives a class-conditional model: a learned class
            code joins `z0`, and the critic is a projection discriminator.
            Defaults to 0.
        latent_dim: int. Size of `z0`. Defaults to 100 (the paper).
        frame_code_dim: int. Size of each frame code `z1(t)`. Defaults to 100
            (the paper).
        generator_width: int. Filters of the image generator's last hidden
            layer (doubling towards the 4x4 maps). Defaults to 32 (the paper's
            512-channel 4x4 maps at 64x64).
        temporal_width: int. Channels of the temporal generator's first layer.
            Defaults to 512 (the paper).
        discriminator_width: int. Filters of the critic's first layer
            (doubling per layer). Defaults to 64 (the paper).
        singular_value_clipping: bool. Apply SVC to the critic after critic
            updates. Defaults to True (the paper).
        clipping_interval: int. Clip after every `clipping_interval`-th critic
            update. Defaults to 5 (the authors' code).

    Example:
        >>> model = vidgen_tf.from_preset("tgan_moving_digits")
        >>> videos = model.generate(4, seed=0)  # (4, 16, 32, 32, 1)
        >>> model = vidgen_tf.build("tgan", num_frames=8, height=32, width=32, channels=1,
        ...                         generator_width=16, temporal_width=64, discriminator_width=16)
        >>> model.compile()  # Wasserstein + SVC, n_critic=1, RMSprop(5e-5, rho=0.99)
        >>> model.compile(loss="wgan_gp")  # or "hinge", ...; SVC stays on unless disabled
    """

    variable_length = False
    streaming_unavailable = (
        "its temporal generator maps one latent to all num_frames frame codes at once "
        "(transposed convolutions over time), so there is no state to carry into a next chunk"
    )
    default_loss = "wasserstein"
    lipschitz_constraint = property(lambda self: "singular value clipping" if self.singular_value_clipping else None)

    def __init__(
        self,
        num_frames=16,
        height=64,
        width=64,
        channels=3,
        num_classes=0,
        latent_dim=100,
        frame_code_dim=100,
        generator_width=32,
        temporal_width=512,
        discriminator_width=64,
        singular_value_clipping=True,
        clipping_interval=5,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.frame_code_dim = check_positive_int("frame_code_dim", frame_code_dim)
        self.generator_width = check_positive_int("generator_width", generator_width)
        self.temporal_width = check_positive_int("temporal_width", temporal_width)
        self.discriminator_width = check_positive_int("discriminator_width", discriminator_width)
        if not isinstance(singular_value_clipping, bool):
            raise ValueError(f"`singular_value_clipping` must be a bool, got {singular_value_clipping!r}.")
        self.singular_value_clipping = singular_value_clipping
        self.clipping_interval = check_positive_int("clipping_interval", clipping_interval)
        stages = doubling_stages(height, width, model="TGAN")

        self.generator = self.make_generator()
        self.discriminators = {
            "video": Conv3DDiscriminator(
                [discriminator_width * 2**i for i in range(stages)], num_classes, name="video_discriminator"
            ),
        }
        self.discriminators["video"].build((None,) + self.video_shape)
        _initialise_like_tgan(self.discriminators["video"])
        # Counts critic updates for `clipping_interval`; replicas agree, so the first one's count is kept.
        self.critic_updates = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            name="critic_updates", aggregation="only_first_replica",
        )
        self.built = True

    def make_generator(self):
        generator = TGANGenerator(
            self.num_frames, self.height, self.width, self.channels, self.latent_dim,
            self.frame_code_dim, self.generator_width, self.temporal_width, self.num_classes,
            name="generator",
        )
        inputs = self.sample_noise(1, tf.constant([0, 0], tf.int64))
        if self.num_classes:
            inputs["label"] = tf.zeros([1], tf.int32)
        generator(inputs)
        _initialise_like_tgan(generator)
        return generator

    def make_optimizer(self, learning_rate=None):
        """The authors' Chainer RMSprop(lr=5e-5, alpha=0.99, eps=1e-8) in Keras terms; `learning_rate` replaces the rate.

        Chainer averages the squared gradients with decay 0.99 (Keras's `rho`,
        default 0.9) and divides by `sqrt(v) + eps`; Keras divides by
        `sqrt(v + epsilon)`. With Keras's epsilon set to Chainer's eps, the
        denominator could never fall below `sqrt(1e-8) = 1e-4`, which shrinks
        every step whose gradient is below ~1e-3 (the rule, not the exception
        with TGAN's uniform +-0.01 initial kernels) by up to four orders of
        magnitude. `epsilon = eps**2 = 1e-16` keeps the two denominators within a
        factor sqrt(2) of each other for every gradient.
        """
        return keras.optimizers.RMSprop(5e-5 if learning_rate is None else learning_rate, rho=0.99, epsilon=1e-16)

    def compile(self, g_optimizer=None, d_optimizer=None, loss=None, n_critic=None, **kwargs):
        """`AdversarialModel.compile` with the paper's defaults.

        With no optimizers, both players get RMSprop(5e-5) (the authors'
        code); with loss "wasserstein" and SVC on, `n_critic` defaults to 1
        (the authors' code), otherwise to the core's default. See
        `AdversarialModel.compile` for the other arguments.
        """
        super().compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, loss=loss, n_critic=n_critic, **kwargs)

    def default_n_critic(self, loss_name):
        """1 for the Wasserstein loss with SVC on (the authors' code), else the core's default."""
        if gan_losses.get_loss(loss_name).name == "wasserstein" and self.singular_value_clipping:
            return 1
        return super().default_n_critic(loss_name)

    def noise_spec(self, num_frames=None):
        return {"latent": tf.TensorSpec([None, self.latent_dim], tf.float32, name="latent")}

    def sample_noise(self, batch_size, seed, num_frames=None):
        # z0 uniform in [-1, 1], as the authors' code.
        return {
            "latent": tf.random.stateless_uniform(
                [batch_size, self.latent_dim], tf.cast(seed, tf.int64), minval=-1.0, maxval=1.0
            )
        }

    def noise_distributions(self):
        """`latent` U[-1, 1), as `sample_noise` draws it (the authors' z0)."""
        return {"latent": {"kind": "uniform", "low": -1.0, "high": 1.0}}

    def call_discriminator(self, name, model, inputs, labels, training):
        return model(inputs, labels=labels, training=training), None

    def after_discriminator_update(self):
        if not self.singular_value_clipping:
            return
        self.critic_updates.assign_add(1)
        self.clip_critic(force=False)

    def clip_critic(self, force=True):
        """Singular value clipping of every critic weight (see the module docstring).

        Weight matrices: every trainable variable of rank >= 2 (convolution and
        dense kernels, the projection embedding), read as a matrix of its last
        axis against the others; biases are left alone. Batch norms: `gamma`
        clipped to `[-sqrt(var + eps), sqrt(var + eps)]` with the moving variance.

        Args:
            force: bool. Clip now; False clips only when the critic update
                count is a multiple of `clipping_interval`. Defaults to True.
        """
        critic = self.discriminators["video"]
        targets = []  # (variable, function of its value -> clipped value)
        for variable in critic.trainable_variables:
            if len(variable.shape) >= 2:
                targets.append((variable, lambda value: tf.reshape(
                    clip_singular_values(tf.reshape(value, [-1, value.shape[-1]])), value.shape
                )))
        for layer in critic._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, layers.BatchNormalization) and layer.scale:
                bound = tf.sqrt(tf.convert_to_tensor(layer.moving_variance) + layer.epsilon)
                targets.append((layer.gamma, lambda value, bound=bound: tf.clip_by_value(value, -bound, bound)))
        values = [tf.convert_to_tensor(variable) for variable, _ in targets]
        clipped = lambda: [fn(value) for (_, fn), value in zip(targets, values)]  # noqa: E731
        if not force and self.clipping_interval > 1:
            due = tf.equal(self.critic_updates % self.clipping_interval, 0)
            # The assignments stay outside the cond: a replica may merge only there.
            clipped = tf.cond(due, clipped, lambda: [tf.identity(value) for value in values])
        else:
            clipped = clipped()
        _assign_all([(variable, value) for (variable, _), value in zip(targets, clipped)])

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            frame_code_dim=self.frame_code_dim,
            generator_width=self.generator_width,
            temporal_width=self.temporal_width,
            discriminator_width=self.discriminator_width,
            singular_value_clipping=self.singular_value_clipping,
            clipping_interval=self.clipping_interval,
        )
        return config
