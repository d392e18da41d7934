"""DCGAN on frames: the image baseline that models no time at all.

Radford, Metz and Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016,
https://arxiv.org/abs/1511.06434.

An all-convolutional image GAN: the generator projects a 100-d uniform latent
to a 4x4 grid and doubles it with fractionally-strided (transposed)
convolutions, batch norm and ReLU, ending in tanh; the discriminator halves
the image with strided convolutions and LeakyReLU(0.2), batch norm on every
layer but the first, and scores the flattened top features with one linear
unit. Weights start from N(0, 0.02); both players use Adam(2e-4, beta_1=0.5)
and the non-saturating loss.

As a video model it generates every frame independently, from its own latent
(noise `(B, T, latent_dim)`, any `T`), and its discriminator judges single
frames: all frames of the real and of the generated clips, the per-clip loss
being the mean over the clip's frames. Nothing ties frame t to frame t+1, so
it is the baseline that shows what the temporal models add. In the
conditional variant a learned class embedding joins every frame's latent and
the discriminator gets a projection head (Miyato & Koyama 2018).

Differences from the authors' code (Newmu/dcgan_code, Theano; soumith/dcgan.torch,
Torch). The layers follow dcgan.torch (by the paper's third author): 4x4 kernels with stride 2 ("same"
padding here, which for even sizes is exactly Torch's padding 1), 64 filters
at the last hidden layer (`generator_width`), no bias on any convolution, batch
norm per channel after the projection, kernels from N(0, 0.02) and batch-norm
scales from N(1, 0.02); at 64x64 RGB that is 3,576,704 generator weights, as
dcgan.torch's. The discriminator's linear unit keeps one bias (the shared
projection head has one; dcgan.torch's last convolution has none), so it has
2,765,569 weights against 2,765,568. The zoo differs on purpose in: the
latent, uniform in [-1, 1] as in the paper and the Theano code (dcgan.torch
draws it from N(0, 1)); the kernel size, 4 (the Theano code and the paper's
figure use 5x5 kernels and 128 filters, normalising the projection per unit
rather than per channel); the batch-norm epsilon and momentum, Keras's 1e-3 and
0.99 (Torch: 1e-5 and 0.1, i.e. 0.9 here; Theano: 1e-8 and no running
averages), because the zoo's generator layers share one batch-norm layer type;
and the Theano code's L2 weight decay of 1e-5, which neither the paper nor
dcgan.torch uses and the zoo leaves out. Adam is the authors' (2e-4,
beta_1 = 0.5, epsilon = 1e-8). The training core's update order differs from
both codes, which run one discriminator step and then a generator step on the
same fake batch; the core draws fresh noise for the generator step.
"""

import random

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.base import check_positive_int, frame_noise
from vidgen_tf.layers import BatchNormalization, Down2D, LabelEmbedding, ProjectionHead, Up2D
from vidgen_tf.layers.geometry import doubling_stages
from vidgen_tf.registry import register


def _initialise_like_dcgan(model):
    """Redraws every kernel from N(0, 0.02) and every batch-norm scale from N(1, 0.02).

    The paper gives the kernels' N(0, 0.02); both authors' codes also draw the
    batch-norm scales (gamma) from N(1, 0.02) and start the shifts at 0.
    """
    # One generator for all kernels: an unseeded Keras initializer would give
    # every kernel of the same shape the same values. Python's `random` is
    # seeded by keras.utils.set_random_seed, so runs still repeat.
    rng = np.random.default_rng(random.getrandbits(64))
    for weight in model.weights:
        if weight.path.endswith("kernel"):
            weight.assign(rng.normal(0.0, 0.02, weight.shape).astype(weight.dtype))
        elif weight.path.endswith("gamma"):
            weight.assign(rng.normal(1.0, 0.02, weight.shape).astype(weight.dtype))


def _split_labels(inputs, num_classes):
    """`(images, labels or None)` from a discriminator's input."""
    if not num_classes:
        return inputs, None
    if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
        raise ValueError(
            f"A conditional discriminator (num_classes={num_classes}) takes (images, labels), "
            f"got {type(inputs).__name__}."
        )
    return inputs[0], inputs[1]


@keras.saving.register_keras_serializable(package="vidgen_tf")
class DCGANGenerator(keras.Model):
    """One DCGAN image generator applied to every frame's latent on its own.

    Called on a dict: `latent` `(B, T, latent_dim)` and, when
    `num_classes > 0`, `label` `(B,)` int; returns `(B, T, H, W, C)` in
    [-1, 1]. Frame t depends only on `latent[:, t]` (and the label).
    """

    def __init__(self, height, width, channels, latent_dim, width_multiplier, num_classes=0, label_dim=16, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="DCGAN")
        grid = (height >> stages, width >> stages)
        filters = width_multiplier * 2 ** (stages - 1)

        # === Layers ===
        self.label_embedding = LabelEmbedding(num_classes, label_dim, name="label_embedding") if num_classes else None
        image_layers = [
            # The paper's first layer: a matrix product reshaped to a 4-pixel grid.
            layers.Dense(grid[0] * grid[1] * filters, use_bias=False, name="project"),
            layers.Reshape(grid + (filters,)),
            BatchNormalization(synchronized=True),
            layers.ReLU(),
        ]
        for _ in range(stages - 1):
            filters //= 2
            image_layers.append(Up2D(filters))
        # No batch norm on the output layer, and no bias (both authors' codes); float32 under mixed precision.
        image_layers.append(Up2D(channels, norm="none", activation="tanh", use_bias=False, dtype="float32",
                                 name="to_image"))
        self.image_generator = keras.Sequential(image_layers, name="image_generator")

        # === Config ===
        self.num_classes = num_classes
        self.config = dict(
            height=height, width=width, channels=channels, latent_dim=latent_dim,
            width_multiplier=width_multiplier, num_classes=num_classes, label_dim=label_dim,
        )

    def call(self, inputs, training=False):
        label_code = None
        if self.label_embedding is not None:
            label_code = self.label_embedding(inputs["label"])  # (B, E)
        return self.render(inputs["latent"], label_code, training=training)

    def render(self, latent, label_code=None, training=False):
        """Frames `(B, T, H, W, C)` of per-frame latents `(B, T, Z)` and the class code `(B, E)` or None."""
        latent = ops.cast(latent, self.compute_dtype)  # (B, T, Z)
        shape = tf.shape(latent)
        batch, frames = shape[0], shape[1]
        codes = tf.reshape(latent, [-1, latent.shape[-1]])  # (B*T, Z)
        if label_code is not None:
            label_code = ops.cast(label_code, self.compute_dtype)
            codes = ops.concatenate([codes, tf.repeat(label_code, frames, axis=0)], axis=-1)
        images = self.image_generator(codes, training=training)  # (B*T, H, W, C)
        return tf.reshape(images, [batch, frames] + list(images.shape[1:]))

    def get_config(self):
        return {**super().get_config(), **self.config}


@keras.saving.register_keras_serializable(package="vidgen_tf")
class DCGANDiscriminator(keras.Model):
    """Images `(N, H, W, C)` -> logits `(N,)`.

    Strided convolutions halve the image down to a 4-pixel side (LeakyReLU
    0.2; batch norm on all but the first); the flattened top features feed a
    linear unit, plus the projection term when `num_classes > 0`. Called on
    the images, or on `(images, labels)` with labels `(N,)` when
    `num_classes > 0` (one structured input, so that SavedModel can trace the
    model's default signature).
    """

    def __init__(self, height, width, channels, width_multiplier, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="DCGAN")
        # No bias on any convolution, the first (unnormalised) one included, as both authors' codes.
        blocks = [
            Down2D(width_multiplier * 2**i, norm="none" if i == 0 else "batch", activation="leaky_relu",
                   use_bias=False)
            for i in range(stages)
        ]
        self.features = keras.Sequential(blocks + [layers.Flatten()], name="features")
        # float32 logits under mixed precision.
        self.head = ProjectionHead(num_classes, dtype="float32", name="head")
        self.num_classes = num_classes
        self.config = dict(height=height, width=width, channels=channels,
                           width_multiplier=width_multiplier, num_classes=num_classes)

    def call(self, inputs, training=False):
        images, labels = _split_labels(inputs, self.num_classes)
        features = self.features(images, training=training)  # (N, h * w * F)
        return self.head(ops.cast(features, "float32"), labels)

    def get_config(self):
        return {**super().get_config(), **self.config}


@register("dcgan")
class DCGAN(AdversarialModel):
    """DCGAN (Radford, Metz, Chintala 2016) generating the frames of a clip independently.

    Args:
        num_frames: int. Frames per training clip. Defaults to 16.
        height: int. Frame height, 4 * 2**k (8, 16, 32, 64, ...). Defaults to 64.
        width: int. Frame width, like `height`. Defaults to 64.
        channels: int. 1 (grey) or 3 (RGB). Defaults to 3.
        num_classes: int. > 0 gives the class-conditional variant (label
            embedding joined to every frame's latent, projection
            discriminator). Defaults to 0.
        latent_dim: int. Size of each frame's latent, drawn uniformly from
            [-1, 1] (paper: 100). Defaults to 100.
        label_dim: int. Size of the class embedding. Defaults to 16.
        generator_width: int. Filters of the generator's last hidden layer,
            doubling towards the 4x4 grid (the authors' code: 64; the paper's
            figure: 128, i.e. 4x4x1024 at 64x64). Defaults to 64.
        discriminator_width: int. Filters of the discriminator's first layer,
            doubling per layer. Defaults to 64.

    Example:
        >>> model = vidgen_tf.from_preset("dcgan_moving_digits")
        >>> videos = model.generate(4, seed=0, num_frames=24)  # any length
        >>> model = vidgen_tf.build("dcgan", num_frames=8, height=32, width=32, channels=1,
        ...                         generator_width=16, discriminator_width=16)
        >>> model.compile()  # non-saturating loss, Adam(2e-4, beta_1=0.5)
        >>> model.fit(vidgen_tf.data.load("moving_digits", num_frames=8, height=32,
        ...           width=32, batch_size=8), steps_per_epoch=10)
    """

    variable_length = True
    default_loss = "non_saturating"

    def __init__(
        self,
        num_frames=16,
        height=64,
        width=64,
        channels=3,
        num_classes=0,
        latent_dim=100,
        label_dim=16,
        generator_width=64,
        discriminator_width=64,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.label_dim = check_positive_int("label_dim", label_dim)
        self.generator_width = check_positive_int("generator_width", generator_width)
        self.discriminator_width = check_positive_int("discriminator_width", discriminator_width)

        self.generator = self.make_generator()
        self.discriminators = {
            "frame": DCGANDiscriminator(height, width, channels, discriminator_width, num_classes,
                                        name="frame_discriminator"),
        }
        self._build_submodels()

    def make_generator(self):
        generator = DCGANGenerator(
            self.height, self.width, self.channels, self.latent_dim, self.generator_width,
            self.num_classes, self.label_dim, name="generator",
        )
        inputs = self.sample_noise(1, tf.constant([0, 0], tf.int64), num_frames=1)
        if self.num_classes:
            inputs["label"] = tf.zeros([1], tf.int32)
        generator(inputs)
        _initialise_like_dcgan(generator)
        return generator

    def _build_submodels(self):
        labels = tf.zeros([1], tf.int32) if self.num_classes else None
        discriminator = self.discriminators["frame"]
        images = tf.zeros([1, self.height, self.width, self.channels])
        discriminator(images if labels is None else (images, labels))
        _initialise_like_dcgan(discriminator)
        self.built = True

    def make_optimizer(self, learning_rate=None):
        """Adam(2e-4, beta_1=0.5, epsilon=1e-8), both authors' optimizer; `learning_rate` replaces the rate."""
        return keras.optimizers.Adam(2e-4 if learning_rate is None else learning_rate, beta_1=0.5, epsilon=1e-8)

    def noise_spec(self, num_frames=None):
        return {"latent": tf.TensorSpec([None, num_frames, self.latent_dim], tf.float32, name="latent")}

    def sample_noise(self, batch_size, seed, num_frames=None, start_frame=0):
        """`latent` U[-1, 1) `(B, T, latent_dim)`, per frame: frames `start_frame..` (see `frame_noise`)."""
        num_frames = self.num_frames if num_frames is None else num_frames
        latent = frame_noise(seed, batch_size, num_frames, [self.latent_dim], start_frame, "uniform")
        return {"latent": 2.0 * latent - 1.0}

    # ------------------------------------------------------------- streaming
    # Frames are independent given the class: the state is the class code
    # (nothing for an unconditional model).
    streaming_unavailable = None
    frame_noise_names = ("latent",)

    def initial_state(self, batch_size, noise=None, labels=None):
        """`label_code` `(B, label_dim)` for conditional models; empty for unconditional ones."""
        labels = self.check_labels(labels)
        if not self.num_classes:
            return {}
        return {"label_code": tf.cast(self.inference_generator.label_embedding(labels), tf.float32)}

    def generate_chunk(self, state, noise):
        frames = self.inference_generator.render(noise["latent"], state.get("label_code"))
        return tf.cast(frames, tf.float32), dict(state)

    def noise_distributions(self):
        """`latent` U[-1, 1), as `sample_noise` draws it."""
        return {"latent": {"kind": "uniform", "low": -1.0, "high": 1.0}}

    def call_discriminator(self, name, model, inputs, labels, training):
        # Every frame of the clip is judged on its own; the loss functions
        # average the per-frame losses of the (B, T) logits over T.
        num_frames = tf.shape(inputs)[1]
        frames = tf.reshape(inputs, [-1] + list(inputs.shape[2:]))  # (B*T, H, W, C)
        frame_labels = None if labels is None else tf.repeat(labels, num_frames)
        logits = model(frames if labels is None else (frames, frame_labels), training=training)  # (B*T,)
        return tf.reshape(logits, [-1, num_frames]), None

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            label_dim=self.label_dim,
            generator_width=self.generator_width,
            discriminator_width=self.discriminator_width,
        )
        return config
