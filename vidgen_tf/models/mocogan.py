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

At the paper's 64x64x16 RGB setting (widths 64, content 50, motion 10) the
generator has about 3.25M parameters, the patch image discriminator 0.66M and
the video discriminator 11.06M, as in the authors' code; the video
discriminator does 2.98G multiply-adds per clip (`vidgen_tf.layers.cost`) and
gives one logit per clip.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.distribute import global_uniform_ints
from vidgen_tf.base import check_positive_int, frame_noise
from vidgen_tf.layers import BatchNormalization, Conv3D, LeakyReLU, ZeroPadding3D, doubling_stages
from vidgen_tf.registry import register


def _batch_norm():
    # PyTorch's defaults, which the authors kept: epsilon 1e-5 and a moving-average
    # momentum of 0.1, i.e. 0.9 in Keras's convention. Under tf.distribute the
    # moments are the global batch's, as on one device.
    return BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True)


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

    def initial_state(self, content, motion_init, label=None):
        """The streaming state: `clip_code` `(B, Zc [+ classes])`, `[z_C, one-hot class]`, and
        `motion_state` `(B, Zm)`, the GRU's state (its last motion code)."""
        codes = [content]
        if self.num_classes:
            codes.append(ops.one_hot(ops.cast(label, "int32"), self.num_classes, dtype=content.dtype))
        clip_code = ops.concatenate([ops.cast(c, self.compute_dtype) for c in codes], axis=-1)
        return {"clip_code": clip_code, "motion_state": motion_init}

    def render_chunk(self, state, motion_noise, training=False):
        """Frames `(B, K, H, W, C)` of `K` more steps of the GRU, and the next state."""
        motion = self.rnn(motion_noise, initial_state=state["motion_state"], training=training)  # (B, K, Zm)
        clip_code = ops.cast(state["clip_code"], self.compute_dtype)
        batch, frames = tf.shape(motion)[0], tf.shape(motion)[1]
        # [z_C, one-hot class, z_M(t)], the authors' order.
        codes = ops.concatenate(
            [ops.repeat(ops.expand_dims(clip_code, 1), frames, axis=1), ops.cast(motion, self.compute_dtype)], axis=-1
        )  # (B, K, D)
        images = self.frame_generator(tf.reshape(codes, [batch * frames, codes.shape[-1]]), training=training)  # (B*K, H, W, C)
        height, width, channels = images.shape[1:]
        videos = tf.reshape(images, [batch, frames, height, width, channels])
        return videos, {"clip_code": clip_code, "motion_state": motion[:, -1]}

    def call(self, inputs, training=False):
        state = self.initial_state(inputs["content"], inputs["motion_init"], inputs.get("label"))
        return self.render_chunk(state, inputs["motion_noise"], training=training)[0]

    def get_config(self):
        return {**super().get_config(), **self.config}


def _image_discriminator(channels, width_multiplier, name="image_discriminator"):
    """The authors' patch image discriminator: frames `(B, H, W, C)` -> patch logits `(B, h, w)`."""
    return keras.Sequential(
        [
            layers.Conv2D(width_multiplier, 4, strides=2, padding="same", use_bias=False),
            LeakyReLU(0.2),
            layers.Conv2D(width_multiplier * 2, 4, strides=2, padding="same", use_bias=False),
            _batch_norm(),
            LeakyReLU(0.2),
            layers.Conv2D(width_multiplier * 4, 4, strides=2, padding="same", use_bias=False),
            _batch_norm(),
            LeakyReLU(0.2),
            layers.Conv2D(1, 4, strides=2, padding="same", use_bias=False, dtype="float32"),
            layers.Reshape((-1,), dtype="float32"),
        ],
        name=name,
    )


def video_temporal_kernels(num_frames, num_layers):
    """Temporal kernel sizes of the video discriminator's unpadded convolutions.

    The authors' layers all take 4 frames without temporal padding, so each
    takes 3 frames off: 16 -> 13 -> 10 -> 7 -> 4 -> 1 through their five. Clips
    of at least `3 * num_layers + 1` frames get exactly those kernels (one
    logit per window of that many frames). Shorter clips spread the `num_frames
    - 1` frames to take off over the layers, larger kernels first, so that the
    stack still ends in one logit per clip: 8 frames and 4 layers give
    (3, 3, 3, 2), 4 frames and 3 layers (2, 2, 2).

    Args:
        num_frames: int. Frames of the training clips.
        num_layers: int. Convolutions in the stack.

    Returns:
        A tuple of `num_layers` ints.
    """
    if num_frames >= 3 * num_layers + 1:
        return (4,) * num_layers
    base, extra = divmod(num_frames - 1, num_layers)
    return tuple(1 + base + (i < extra) for i in range(num_layers))


def _video_discriminator(height, width, num_frames, width_multiplier, outputs, name="video_discriminator"):
    """The authors' video discriminator: clips `(B, T, H, W, C)` -> logits `(B, t, 1, 1, outputs)`.

    Stride-(1, 2, 2) convolutions with 4x4 spatial kernels padded by 1 pixel
    and no temporal padding, down to the 4-pixel grid (four at 64x64), widths
    doubling from `width_multiplier`, batch norm on all but the first; then an
    unpadded convolution over the whole remaining grid. The temporal kernels
    come from `video_temporal_kernels` (all 4 at 64x64x16). `t` is 1 for clips
    of `num_frames` frames when `num_frames <= 3 * stages + 4`, and
    `num_frames - 3 * stages - 3` above.
    """
    stages = doubling_stages(height, width, model="MoCoGAN")
    kernels = video_temporal_kernels(num_frames, stages + 1)
    stack = []
    for i in range(stages):
        stack += [
            # Concatenated zeros, not a Pad op: see vidgen_tf/layers/padding.py.
            ZeroPadding3D(((0, 0), (1, 1), (1, 1))),
            Conv3D(width_multiplier * 2**i, (kernels[i], 4, 4), strides=(1, 2, 2), padding="valid", use_bias=False),
        ]
        if i:
            stack.append(_batch_norm())
        stack.append(LeakyReLU(0.2))
    grid = (height >> stages, width >> stages)
    stack.append(Conv3D(outputs, (kernels[-1],) + grid, padding="valid", use_bias=False, dtype="float32"))
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

    The authors' code (github.com/sergeytulyakov/mocogan, `src/models.py`,
    `src/trainers.py`, `src/train.py`, and the training command of its wiki,
    quoted in the repository's issue 5) and this model:

    The same: the generator's first layer is a bias-free `Dense` to the 4x4
    grid with `8 * generator_width` channels at 64x64 (the authors' 4x4
    transposed convolution of a 1x1 input is that product), then 4x4
    transposed convolutions of stride 2 and padding 1 (TensorFlow's "same"),
    widths halving, batch norm and ReLU, and a tanh; no biases anywhere. The
    frame code is `[z_C, one-hot class, z_M(t)]` with `z_C`, the GRU's first
    state `h_0` and its inputs `e_t` all N(0, I) and `z_M(t) = h_t`, t = 1..T
    (Keras's GRU with `reset_after=True` is PyTorch's `GRUCell`). The image
    discriminator is `PatchImageDiscriminator`: four 4x4 convolutions of
    stride 2, padding 1, widths 1, 2, 4 times `discriminator_width` and then
    1 (a 4x4 grid of logits at 64x64), batch norm on the second and third,
    LeakyReLU(0.2). The video discriminator is `VideoDiscriminator` (with
    `num_classes > 0`, `CategoricalVideoDiscriminator`: `1 + num_classes`
    outputs of the last layer, the class logits last): stride-(1, 2, 2)
    convolutions of kernel 4, padded 1 pixel in space and not at all in
    time, widths doubling, batch norm on all but the first, then an unpadded
    4x4x4 convolution: 16 -> 13 -> 10 -> 7 -> 4 -> 1 frames and one logit per
    clip at 64x64x16. Batch norm has PyTorch's epsilon 1e-5 and momentum 0.1
    (0.9 in Keras's convention). The loss is the sigmoid cross-entropy
    (`"non_saturating"`); in the categorical variant the video
    discriminator's class logits add a cross-entropy on the real labels to
    its loss (`--use_categories`) and one on the generated labels to the
    generator's (`--use_infogan`). Adam(2e-4, beta_1=0.5, epsilon=1e-8) for
    both players.

    Other sizes, which the authors' code does not take: the video
    discriminator's stride-2 layers go down to the 4-pixel grid, as many as
    the generator's up-sampling stages (three at 32x32), and its last
    convolution covers the whole remaining grid (4x8 at 32x64), so it gives
    one logit per position in time at any frame size; the image
    discriminator keeps its four stride-2 layers (2x2 logits at 32x32). In time its layers keep the
    authors' 4-frame kernels whenever the clips are long enough
    (`num_frames >= 3 * stages + 4`, one logit per window of that many
    frames); shorter clips get smaller kernels that still end in one logit
    per clip (`video_temporal_kernels`: the 8-frame 32x32 preset has (3, 3,
    3, 2)). The kernels are fixed at construction from `num_frames`; a clip
    shorter than they can take is an error that says so.

    Different on purpose: (1) The authors' `Noise` layers (instance noise of
    standard deviation 0.1 added before every discriminator convolution but
    the video discriminator's last, with the wiki's `--use_noise
    --noise_sigma 0.1`; off by default in `train.py`) are left out: noise
    inside a discriminator needs a per-call seed that the training core
    does not pass, and a `keras.random.SeedGenerator` would draw the same
    noise on every replica. (2) The authors draw a separate batch of single
    frames for the image discriminator (random dataset frames; generated
    frames from other generated videos) and update the image discriminator,
    the video discriminator and the generator in turn, each on fresh
    samples; here the image discriminator sees one random frame of each clip
    of the video batch, real and generated, and both discriminators take one
    update from the sum of their losses. (3) The authors' Adam has
    `weight_decay=1e-5`, PyTorch's L2 term added to the gradient; it is left
    out (Keras's `weight_decay` is the decoupled AdamW decay, another
    method). (4) Weights start from Keras's initialisers (Glorot-uniform
    kernels, an orthogonal GRU recurrent kernel), not PyTorch's defaults,
    which the authors kept. (5) The categorical variant always trains the
    class logits on real labels, so its data must carry labels; the wiki's
    command uses `--use_infogan` without `--use_categories`, where the
    discriminator's class logits never see a real label.

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
            "video": _video_discriminator(height, width, num_frames, discriminator_width, 1 + num_classes),
        }
        self.video_temporal_kernels = video_temporal_kernels(num_frames, doubling_stages(height, width) + 1)
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

    def make_optimizer(self, learning_rate=None):
        """Adam(2e-4, beta_1=0.5) with PyTorch's epsilon 1e-8, as the authors' (Keras's default is 1e-7).

        `learning_rate` replaces the rate only.
        """
        return keras.optimizers.Adam(2e-4 if learning_rate is None else learning_rate, beta_1=0.5, epsilon=1e-8)

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

    def sample_noise(self, batch_size, seed, num_frames=None, start_frame=0):
        """`content`, `motion_init` and the per-frame `motion_noise` of frames
        `start_frame..start_frame + num_frames - 1`, all N(0, 1) (see `frame_noise`)."""
        num_frames = self.num_frames if num_frames is None else num_frames
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        return {
            "content": tf.random.stateless_normal([batch_size, self.content_dim], seeds[0]),
            "motion_noise": frame_noise(seeds[1], batch_size, num_frames, [self.motion_dim], start_frame),
            "motion_init": tf.random.stateless_normal([batch_size, self.motion_dim], seeds[2]),
        }

    # ------------------------------------------------------------- streaming
    # The state is the per-clip code `[z_C, one-hot class]` and the GRU's state
    # `h_t`; each chunk steps the GRU on its motion noise and renders the frames.
    streaming_unavailable = None
    frame_noise_names = ("motion_noise",)

    def initial_state(self, batch_size, noise=None, labels=None):
        """`clip_code` `(B, content_dim [+ num_classes])` and `motion_state` `(B, motion_dim)` (`h_0`)."""
        labels = self.check_labels(labels)
        state = self.inference_generator.initial_state(noise["content"], noise["motion_init"], labels)
        return {name: tf.cast(value, tf.float32) for name, value in state.items()}

    def generate_chunk(self, state, noise):
        frames, state = self.inference_generator.render_chunk(state, noise["motion_noise"])
        return tf.cast(frames, tf.float32), {name: tf.cast(value, tf.float32) for name, value in state.items()}

    def discriminator_views(self, videos, seed):
        # The image discriminator sees one random frame of each clip.
        frames = global_uniform_ints(seed, tf.shape(videos)[0], tf.shape(videos)[1])
        return {"image": tf.gather(videos, frames, axis=1, batch_dims=1), "video": videos}

    def call_discriminator(self, name, model, inputs, labels, training):
        if name == "video":
            self._check_clip_length(inputs)
        out = model(inputs, training=training)
        if name == "image":
            return out, None
        logits = ops.reshape(out[..., 0], (ops.shape(out)[0], -1))  # (B, t): (B, 1) for a clip of num_frames
        if not self.num_classes:
            return logits, None
        class_logits = ops.mean(out[..., 1:], axis=(1, 2, 3))  # (B, num_classes)
        return logits, class_logits

    def _check_clip_length(self, videos):
        shortest = sum(self.video_temporal_kernels) - len(self.video_temporal_kernels) + 1
        frames = videos.shape[1]
        if frames is not None and frames < shortest:
            raise ValueError(
                f"MoCoGAN's video discriminator takes clips of at least {shortest} frames: its "
                f"convolutions have temporal kernels {self.video_temporal_kernels} and no temporal "
                f"padding (built for num_frames={self.num_frames}); got a clip of {frames} frames."
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            content_dim=self.content_dim,
            motion_dim=self.motion_dim,
            generator_width=self.generator_width,
            discriminator_width=self.discriminator_width,
        )
        return config
