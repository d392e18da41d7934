"""MoCoGAN: decomposing motion and content for video generation.

Tulyakov, Liu, Yang and Kautz, "MoCoGAN: Decomposing Motion and Content for
Video Generation", CVPR 2018, https://arxiv.org/abs/1707.04993.

A video is a path in latent space: a content code `z_C`, drawn once per video,
fixes what is shown; a GRU driven by fresh noise at every frame produces the
motion codes `z_M(t)`, so videos can be of any length. One 2-D image generator
renders each frame from `[z_C, z_M(t)]`. Two discriminators judge the result:
an image discriminator on single frames (is the content realistic?) and a 3-D
convolutional video discriminator on whole clips (is the motion realistic?).
In the categorical variant a one-hot class joins the frame code and the video
discriminator also classifies clips.

At the paper's 64x64 RGB setting (widths 64, content 50, motion 10) the
generator has about 3.25M parameters, the patch image discriminator 0.66M and
the video discriminator 11.06M, as in the authors' code.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.distribute import global_uniform_ints
from vidgen_tf.base import check_positive_int
from vidgen_tf.layers import Conv3D, doubling_stages
from vidgen_tf.registry import register


def _batch_norm():
    # Synchronised statistics: under MirroredStrategy N replicas then normalise
    # with the global batch's moments, as one device would.
    return layers.BatchNormalization(synchronized=True)


@keras.saving.register_keras_serializable(package="vidgen_tf")
class MoCoGANGenerator(keras.Model):
    """Content code + GRU motion codes -> frames by a shared 2-D generator.

    Called on a dict: `content` `(B, content_dim)`, `motion_noise`
    `(B, T, motion_dim)`, `motion_init` `(B, motion_dim)` and, when
    `num_classes > 0`, `label` `(B,)` int; returns `(B, T, H, W, C)` in [-1, 1].
    """

    def __init__(self, height, width, channels, content_dim, motion_dim, width_multiplier, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="MoCoGAN")
        self.rnn = layers.GRU(motion_dim, return_sequences=True, use_cudnn=False, name="motion_gru")
        start = (height // 2**stages, width // 2**stages)
        filters = width_multiplier * 2 ** (stages - 1)
        frame_layers = [
            layers.Dense(start[0] * start[1] * filters, use_bias=False, name="project"),
            layers.Reshape((start[0], start[1], filters)),
            _batch_norm(),
            layers.ReLU(),
        ]
        for _ in range(stages - 1):
            filters //= 2
            frame_layers += [
                layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False),
                _batch_norm(),
                layers.ReLU(),
            ]
        frame_layers += [
            layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False),
            # float32 output under mixed precision: the edge of the model.
            layers.Activation("tanh", dtype="float32"),
        ]
        self.frame_generator = keras.Sequential(frame_layers, name="frame_generator")
        self.num_classes = num_classes
        self.config = dict(
            height=height, width=width, channels=channels, content_dim=content_dim,
            motion_dim=motion_dim, width_multiplier=width_multiplier, num_classes=num_classes,
        )

    def call(self, inputs, training=False):
        content = inputs["content"]  # (B, Zc)
        motion = self.rnn(inputs["motion_noise"], initial_state=inputs["motion_init"], training=training)  # (B, T, Zm)
        batch, frames = tf.shape(motion)[0], tf.shape(motion)[1]
        codes = [ops.repeat(ops.expand_dims(content, 1), frames, axis=1), motion]
        if self.num_classes:
            one_hot = ops.one_hot(ops.cast(inputs["label"], "int32"), self.num_classes, dtype=content.dtype)
            codes.append(ops.repeat(ops.expand_dims(one_hot, 1), frames, axis=1))
        codes = ops.concatenate([ops.cast(c, self.compute_dtype) for c in codes], axis=-1)  # (B, T, D)
        images = self.frame_generator(tf.reshape(codes, [batch * frames, codes.shape[-1]]), training=training)  # (B*T, H, W, C)
        height, width, channels = images.shape[1:]
        return tf.reshape(images, [batch, frames, height, width, channels])

    def get_config(self):
        return {**super().get_config(), **self.config}


def _image_discriminator(channels, width_multiplier, name="image_discriminator"):
    """The authors' patch image discriminator: frames `(B, H, W, C)` -> patch logits `(B, h, w)`."""
    return keras.Sequential(
        [
            layers.Conv2D(width_multiplier, 4, strides=2, padding="same", use_bias=False),
            layers.LeakyReLU(0.2),
            layers.Conv2D(width_multiplier * 2, 4, strides=2, padding="same", use_bias=False),
            _batch_norm(),
            layers.LeakyReLU(0.2),
            layers.Conv2D(width_multiplier * 4, 4, strides=2, padding="same", use_bias=False),
            _batch_norm(),
            layers.LeakyReLU(0.2),
            layers.Conv2D(1, 4, strides=2, padding="same", use_bias=False, dtype="float32"),
            layers.Reshape((-1,), dtype="float32"),
        ],
        name=name,
    )


def _video_discriminator(channels, width_multiplier, outputs, name="video_discriminator"):
    """3-D convolutions with stride (1, 2, 2): clips -> patch logits `(B, T, h, w, outputs)`."""
    stack = [Conv3D(width_multiplier, 4, strides=(1, 2, 2), padding="same", use_bias=False), layers.LeakyReLU(0.2)]
    for multiplier in (2, 4, 8):
        stack += [
            Conv3D(width_multiplier * multiplier, 4, strides=(1, 2, 2), padding="same", use_bias=False),
            _batch_norm(),
            layers.LeakyReLU(0.2),
        ]
    stack.append(Conv3D(outputs, 4, strides=(1, 2, 2), padding="same", use_bias=False, dtype="float32"))
    return keras.Sequential(stack, name=name)


@register("mocogan")
class MoCoGAN(AdversarialModel):
    """MoCoGAN video GAN (Tulyakov et al., CVPR 2018).

    Args:
        num_frames: int. Frames per training clip. Defaults to 16.
        height: int. Frame height, 4 * 2**k (32, 64, ...). Defaults to 64.
        width: int. Frame width, like `height`. Defaults to 64.
        channels: int. 1 (grey) or 3 (RGB). Defaults to 3.
        num_classes: int. > 0 gives the categorical variant. Defaults to 0.
        content_dim: int. Size of the content code. Defaults to 50.
        motion_dim: int. Size of the motion code and of the GRU. Defaults to 10.
        generator_width: int. Filters of the generator's last hidden layer
            (doubling towards the input). Defaults to 64.
        discriminator_width: int. Filters of the discriminators' first layer.
            Defaults to 64.

    Example:
        >>> model = vidgen_tf.from_preset("mocogan_moving_digits")
        >>> videos = model.generate(4, seed=0, num_frames=24)  # any length
        >>> model = vidgen_tf.build("mocogan", num_frames=8, height=32, width=32,
        ...                         channels=1, generator_width=16, discriminator_width=16)
        >>> model.compile(loss="non_saturating")
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
        content_dim=50,
        motion_dim=10,
        generator_width=64,
        discriminator_width=64,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        self.content_dim = check_positive_int("content_dim", content_dim)
        self.motion_dim = check_positive_int("motion_dim", motion_dim)
        self.generator_width = check_positive_int("generator_width", generator_width)
        self.discriminator_width = check_positive_int("discriminator_width", discriminator_width)

        self.generator = self.make_generator()
        self.discriminators = {
            "image": _image_discriminator(channels, discriminator_width),
            "video": _video_discriminator(channels, discriminator_width, 1 + num_classes),
        }
        self.classifies = num_classes > 0
        self._build_submodels()

    def make_generator(self):
        generator = MoCoGANGenerator(
            self.height, self.width, self.channels, self.content_dim, self.motion_dim,
            self.generator_width, self.num_classes, name="generator",
        )
        inputs = self.sample_noise(1, tf.constant([0, 0], tf.int64))
        if self.num_classes:
            inputs["label"] = tf.zeros([1], tf.int32)
        generator(inputs)
        return generator

    def _build_submodels(self):
        self.discriminators["image"].build((None, self.height, self.width, self.channels))
        self.discriminators["video"].build((None, None, self.height, self.width, self.channels))
        self.built = True

    def noise_spec(self, num_frames=None):
        return {
            "content": tf.TensorSpec([None, self.content_dim], tf.float32, name="content"),
            "motion_noise": tf.TensorSpec([None, num_frames, self.motion_dim], tf.float32, name="motion_noise"),
            "motion_init": tf.TensorSpec([None, self.motion_dim], tf.float32, name="motion_init"),
        }

    def sample_noise(self, batch_size, seed, num_frames=None):
        num_frames = self.num_frames if num_frames is None else num_frames
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        return {
            "content": tf.random.stateless_normal([batch_size, self.content_dim], seeds[0]),
            "motion_noise": tf.random.stateless_normal([batch_size, num_frames, self.motion_dim], seeds[1]),
            "motion_init": tf.random.stateless_normal([batch_size, self.motion_dim], seeds[2]),
        }

    def discriminator_views(self, videos, seed):
        # The image discriminator sees one random frame of each clip.
        frames = global_uniform_ints(seed, tf.shape(videos)[0], tf.shape(videos)[1])
        return {"image": tf.gather(videos, frames, axis=1, batch_dims=1), "video": videos}

    def call_discriminator(self, name, model, inputs, labels, training):
        out = model(inputs, training=training)
        if name == "image":
            return out, None
        logits = ops.reshape(out[..., 0], (ops.shape(out)[0], -1))  # (B, patches)
        if not self.num_classes:
            return logits, None
        class_logits = ops.mean(out[..., 1:], axis=(1, 2, 3))  # (B, num_classes)
        return logits, class_logits

    def get_config(self):
        config = super().get_config()
        config.update(
            content_dim=self.content_dim,
            motion_dim=self.motion_dim,
            generator_width=self.generator_width,
            discriminator_width=self.discriminator_width,
        )
        return config
