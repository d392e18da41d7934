"""VGAN: a two-stream video GAN that separates a moving foreground from a static background.

Vondrick, Pirsiavash and Torralba, "Generating Videos with Scene Dynamics",
NeurIPS 2016, https://arxiv.org/abs/1609.02612.

One latent code `z` (100-d, standard normal) drives two generators. A 3-D
transposed-convolution stream upsamples space and time together (from 4x4
frames, 2 of them, to 64x64x32 in the paper) and ends in a foreground video
`f(z)` (tanh) and a mask `m(z)` in [0, 1] (sigmoid). A 2-D stream draws one
background image `b(z)` (tanh). The video is

    G(z) = m(z) * f(z) + (1 - m(z)) * b(z),

the background repeated over time: where the mask is 0 the scene is static.
An L1 term `lambda * mean|m(z)|` (lambda = 0.1 in the paper) asks the model
to explain as much as it can with the static background. A 3-D convolutional
discriminator judges whole clips. The authors' code trains with the standard
cross-entropy GAN, the generator maximising `log D(G(z))` (its fake batch is
labelled "real"): the non-saturating loss, which is this model's default.
The conditional variant (`num_classes > 0`, not in the paper) joins a learned
class code to `z` and makes the discriminator a projection discriminator.

At the paper's setting (64x64x32 RGB, widths 64) the generator has 16.2M
trainable weights and the discriminator 11.0M (`tests/test_vgan.py` derives
both from the layer shapes).

Differences from the authors' code (cvondrick/videogan, `main.lua`). Same
layers: a 100-d N(0, 1) code; 4x4x4 transposed convolutions of stride 2 with
padding 1 (TensorFlow's "same", which for these even sizes pads exactly
1 on each side), from 2x4x4x512 to 32x64x64 in the video stream and 4x4x512 to
64x64 in the image stream; batch norm and ReLU on every hidden layer; the
3-D discriminator of `Conv3DDiscriminator` (no batch norm on its first layer,
batch-norm epsilon 1e-3 as the authors'); Adam(2e-4, beta_1 = 0.5,
epsilon = 1e-8) for both players; the mask penalty
`nn.L1Penalty(0.1, true)`, averaged over the mask's elements. Equivalent
rewrites: the foreground and mask heads are one transposed convolution with
`channels + 1` outputs (the same function); the convolutions followed by batch
norm have no bias (the norm subtracts it); and the discriminator ends in one
logit with a sigmoid cross-entropy where the authors' ends in two with a
softmax cross-entropy (real label 1, fake label 2), which depends only on the
difference of the two logits, so it is the same loss with 16,385 fewer
weights. Differences on purpose: the generator's batch norms use Keras's
epsilon 1e-3 and momentum 0.99 (Torch: 1e-5 and 0.1, i.e. 0.9 here), since
the zoo's layers share one batch-norm type; the initial weights, Keras's
defaults (Glorot-uniform kernels, batch-norm scales 1) where the authors'
`weights_init` draws kernels from N(0, 0.01) and scales from N(1, 0.02). At
the zoo's test setting (`tests/test_vgan.py::test_learns_a_moving_square`: 8x8
frames, widths 16, 360 steps) the authors' start collapsed to a black, nearly
still clip in 2 of 3 seeds (0 and 2: intensity -0.985 and -0.981 against the
data's -0.875, frame-difference energy 0.003 and 0.035 against 0.375; seed 1
learned), where Keras's start learned the moving square with all three seeds
(energy 0.34 and 0.32 for seeds 1 and 2); frame counts and sizes other than
32x64x64 (time doubles in as many stages as the frame count allows); the
conditional variant. The authors' `errD` is printed halved, while the gradient
is that of the sum of the real and fake terms, which is the zoo's `d_loss`.
The training core differs in the update order: the authors run one
discriminator step and then a generator step on the same fake batch, reusing
the discriminator's outputs on it from before the discriminator's update; the
core draws fresh noise for the generator step and runs both networks again.
"""

import threading

import keras
import tensorflow as tf
from keras import layers, ops

from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.base import check_positive_int
from vidgen_tf.layers import BatchNormalization, Conv3DDiscriminator, Conv3DTranspose, LabelEmbedding, Up2D, Up3D, doubling_stages
from vidgen_tf.registry import register


def _time_schedule(num_frames, stages):
    """`(start_frames, strides)`: the first layer's frame count and each stage's time stride.

    Time doubles in as many stages as `num_frames` has factors of two (at most
    `stages`, the earliest ones); the paper's 32 frames over 4 stages start at 2.
    """
    doublings = 0
    while doublings < stages and num_frames % 2 ** (doublings + 1) == 0:
        doublings += 1
    return num_frames // 2**doublings, [2] * doublings + [1] * (stages - doublings)


@keras.saving.register_keras_serializable(package="vidgen_tf")
class VGANGenerator(keras.Model):
    """Foreground video + mask (3-D stream) and background image (2-D stream) from one code.

    Called on a dict: `latent` `(B, latent_dim)` and, when `num_classes > 0`,
    `label` `(B,)` int. Returns a dict of float32 tensors:
    `video` `(B, T, H, W, C)` in [-1, 1], `mask` `(B, T, H, W, 1)` in [0, 1],
    `foreground` `(B, T, H, W, C)` and `background` `(B, H, W, C)`.

    Args:
        num_frames, height, width, channels: int. The video's shape.
        latent_dim: int. Size of `z`.
        width_multiplier: int. Filters of the last hidden layer of each stream
            (doubling towards the input).
        num_classes: int. > 0 adds a learned class code to `z`. Defaults to 0.
    """

    def __init__(self, num_frames, height, width, channels, latent_dim, width_multiplier, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="VGAN")
        start_frames, time_strides = _time_schedule(num_frames, stages)
        rows, cols = height // 2**stages, width // 2**stages
        top = width_multiplier * 2 ** (stages - 1)

        # === Layers ===
        self.label_embedding = LabelEmbedding(num_classes, latent_dim, name="label_embedding") if num_classes else None
        # A dense layer from z is the paper's transposed convolution from a 1x1x1 input.
        motion = [
            layers.Dense(start_frames * rows * cols * top, use_bias=False, name="project"),
            layers.Reshape((start_frames, rows, cols, top)),
            BatchNormalization(synchronized=True),
            layers.ReLU(),
        ]
        filters = top
        for stride in time_strides[:-1]:
            filters //= 2
            motion.append(Up3D(filters, strides=(stride, 2, 2)))
        self.foreground_stream = keras.Sequential(motion, name="foreground_stream")
        # The paper's two last layers (foreground video and mask) read the same
        # features, so they are one transposed convolution with channels + 1
        # outputs: the same function, and one kernel-gradient op instead of two
        # (on CPU that op dominated the generator's step).
        self.output_head = Conv3DTranspose(
            channels + 1, 4, strides=(time_strides[-1], 2, 2), padding="same", name="foreground_and_mask"
        )

        still = [
            layers.Dense(rows * cols * top, use_bias=False, name="project"),
            layers.Reshape((rows, cols, top)),
            BatchNormalization(synchronized=True),
            layers.ReLU(),
        ]
        filters = top
        for _ in range(stages - 1):
            filters //= 2
            still.append(Up2D(filters))
        still += [
            layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="background_head"),
            # float32 output under mixed precision: the edge of the model.
            layers.Activation("tanh", dtype="float32"),
        ]
        self.background_stream = keras.Sequential(still, name="background_stream")
        self.tanh = layers.Activation("tanh", dtype="float32")
        self.sigmoid = layers.Activation("sigmoid", dtype="float32")

        # === Config ===
        self.num_classes = num_classes
        self.config = dict(
            num_frames=num_frames, height=height, width=width, channels=channels,
            latent_dim=latent_dim, width_multiplier=width_multiplier, num_classes=num_classes,
        )

    def call(self, inputs, training=False):
        code = inputs["latent"]  # (B, Z)
        if self.num_classes:
            code = ops.concatenate([code, ops.cast(self.label_embedding(inputs["label"]), code.dtype)], axis=-1)
        hidden = self.foreground_stream(code, training=training)  # (B, T or T/2, H/2, W/2, F)
        outputs = self.output_head(hidden)  # (B, T, H, W, C + 1)
        foreground = self.tanh(outputs[..., :-1])  # (B, T, H, W, C)
        mask = self.sigmoid(outputs[..., -1:])  # (B, T, H, W, 1)
        background = self.background_stream(code, training=training)  # (B, H, W, C)
        video = mask * foreground + (1.0 - mask) * background[:, None]  # (B, T, H, W, C)
        return {"video": video, "mask": mask, "foreground": foreground, "background": background}

    def get_config(self):
        return {**super().get_config(), **self.config}


@register("vgan")
class VGAN(AdversarialModel):
    """VGAN video GAN (Vondrick et al., NeurIPS 2016): foreground, mask and static background.

    Frame count is fixed by the architecture (`variable_length = False`): the
    3-D stream upsamples time as many times as `num_frames` has factors of two
    (up to one per spatial stage) from a fixed start.

    Args:
        num_frames: int. Frames per clip. Defaults to 32 (the paper).
        height: int. Frame height, 4 * 2**k (16, 32, 64, ...). Defaults to 64.
        width: int. Frame width, like `height`. Defaults to 64.
        channels: int. 1 (grey) or 3 (RGB). Defaults to 3.
        num_classes: int. > 0 gives a class-conditional model: a learned class
            code joins `z`, and the discriminator is a projection
            discriminator. Defaults to 0.
        latent_dim: int. Size of `z`. Defaults to 100 (the paper).
        generator_width: int. Filters of the last hidden layer of both
            generator streams (doubling towards `z`). Defaults to 64 (the paper).
        discriminator_width: int. Filters of the discriminator's first layer
            (doubling per layer). Defaults to 64 (the paper).
        mask_l1_weight: float. Weight `lambda` of the mask sparsity term
            `lambda * mean|m(z)|` added per clip to the generator loss; 0 turns it
            off. Defaults to 0.1, the paper's value; the authors' code
            (`nn.L1Penalty(0.1, true)`) averages over the mask's elements, as here.

    Example:
        >>> model = vidgen_tf.from_preset("vgan_moving_digits")
        >>> videos = model.generate(4, seed=0)  # (4, 8, 32, 32, 1)
        >>> parts = model.decompose(model.sample_noise(4, [0, 1]))  # video, mask, foreground, background
        >>> model = vidgen_tf.build("vgan", num_frames=8, height=32, width=32, channels=1,
        ...                         generator_width=16, discriminator_width=16)
        >>> model.compile()  # non-saturating loss, Adam(2e-4, beta_1=0.5)
        >>> model.fit(vidgen_tf.data.load("moving_digits", num_frames=8, height=32,
        ...           width=32, batch_size=8), steps_per_epoch=10)
    """

    variable_length = False
    streaming_unavailable = (
        "its 3-D convolutional stream upsamples time for the whole clip at once, "
        "so there is no state to carry into a next chunk"
    )
    default_loss = "non_saturating"

    def __init__(
        self,
        num_frames=32,
        height=64,
        width=64,
        channels=3,
        num_classes=0,
        latent_dim=100,
        generator_width=64,
        discriminator_width=64,
        mask_l1_weight=0.1,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.generator_width = check_positive_int("generator_width", generator_width)
        self.discriminator_width = check_positive_int("discriminator_width", discriminator_width)
        if isinstance(mask_l1_weight, bool) or not isinstance(mask_l1_weight, (int, float)) or mask_l1_weight < 0:
            raise ValueError(f"`mask_l1_weight` must be a number >= 0, got {mask_l1_weight!r}.")
        self.mask_l1_weight = float(mask_l1_weight)
        stages = doubling_stages(height, width, model="VGAN")

        self.generator = self.make_generator()
        self.discriminators = {
            "video": Conv3DDiscriminator(
                [discriminator_width * 2**i for i in range(stages)], num_classes, name="video_discriminator"
            ),
        }
        self.discriminators["video"].build((None,) + self.video_shape)
        # The mask of the last training-mode generation in this thread, so the
        # sparsity term reuses it instead of running the 3-D stream again.
        # Thread-local: under MirroredStrategy each replica is traced in its own thread.
        self._last_mask = threading.local()
        self.built = True

    def make_generator(self):
        generator = VGANGenerator(
            self.num_frames, self.height, self.width, self.channels, self.latent_dim,
            self.generator_width, self.num_classes, name="generator",
        )
        inputs = self.sample_noise(1, tf.constant([0, 0], tf.int64))
        if self.num_classes:
            inputs["label"] = tf.zeros([1], tf.int32)
        generator(inputs)
        return generator

    def make_optimizer(self, learning_rate=None):
        """Adam(2e-4, beta_1=0.5, epsilon=1e-8), the authors' `optim.adam`; `learning_rate` replaces the rate."""
        return keras.optimizers.Adam(2e-4 if learning_rate is None else learning_rate, beta_1=0.5, epsilon=1e-8)

    def noise_spec(self, num_frames=None):
        return {"latent": tf.TensorSpec([None, self.latent_dim], tf.float32, name="latent")}

    def sample_noise(self, batch_size, seed, num_frames=None):
        # Standard normal z, as the authors' `noise:normal()`.
        return {"latent": tf.random.stateless_normal([batch_size, self.latent_dim], tf.cast(seed, tf.int64))}

    def _generator_parts(self, noise, labels, training, generator):
        inputs = dict(noise)
        labels = self.check_labels(labels)
        if self.num_classes:
            inputs["label"] = labels
        return (generator or self.generator)(inputs, training=training)

    def generate_from_noise(self, noise, labels=None, training=False, generator=None):
        """Videos `(B, T, H, W, C)` from a noise dict (see `decompose` for the parts)."""
        parts = self._generator_parts(noise, labels, training, generator)
        if training and (generator is None or generator is self.generator):
            self._last_mask.entry = (noise["latent"], parts["mask"])
        return parts["video"]

    def decompose(self, noise, labels=None):
        """The generator's parts for a noise dict, with the inference (EMA) generator.

        Args:
            noise: dict. `{"latent": (B, latent_dim)}`, e.g. from `sample_noise`.
            labels: int array `(B,)` for conditional models, else None.

        Returns:
            dict of float32 tensors: `video` `(B, T, H, W, C)`, `mask`
            `(B, T, H, W, 1)`, `foreground` `(B, T, H, W, C)`, `background`
            `(B, H, W, C)`.
        """
        labels = self.check_labels(labels, batch_size=noise["latent"].shape[0])
        return self._generator_parts(noise, labels, training=False, generator=self.inference_generator)

    def generator_regularizer(self, noise, labels):
        """`mask_l1_weight * mean|m(z)|` per clip `(B,)` (the paper's sparsity term)."""
        if self.mask_l1_weight == 0:
            return 0.0
        entry = getattr(self._last_mask, "entry", None)
        self._last_mask.entry = None
        if entry is not None and entry[0] is noise["latent"]:
            mask = entry[1]
        else:
            # Not the noise of the last generation in this thread: compute the mask afresh.
            mask = self._generator_parts(noise, labels, training=True, generator=None)["mask"]
        mask = tf.cast(mask, tf.float32)  # (B, T, H, W, 1); >= 0, so |m| = m
        return self.mask_l1_weight * tf.reduce_mean(mask, axis=[1, 2, 3, 4])

    def call_discriminator(self, name, model, inputs, labels, training):
        return model(inputs, labels=labels, training=training), None

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            generator_width=self.generator_width,
            discriminator_width=self.discriminator_width,
            mask_l1_weight=self.mask_l1_weight,
        )
        return config
