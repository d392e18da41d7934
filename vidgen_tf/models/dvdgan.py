"""DVD-GAN: a recurrent generator judged by a spatial and a temporal discriminator.

Clark, Donahue and Simonyan, "Adversarial Video Generation on Complex
Datasets", 2019, https://arxiv.org/abs/1907.06571.

The discriminator is split so that it scales with length and resolution: a
spatial discriminator judges `k` frames drawn at random from each clip, at
full resolution and one at a time (its score is the SUM of the per-frame
scores, as in the paper), and a temporal discriminator of 3-D convolutions
judges the whole clip after 2x2 average pooling in space. Neither sees the full
clip at full resolution. The generator maps a latent (with a class embedding in
the conditional variant) to a small spatial grid, unrolls a convolutional GRU
over it once per frame, and upsamples every frame independently, so it makes
clips of any length. The discriminators are spectrally normalised and have no
batch normalisation, the loss is the hinge loss, and conditional
discriminators use a projection head.

Scaled down from the paper (BigGAN residual blocks, a ConvGRU at every
resolution, 48 frames at up to 256x256, class-conditional batch norm,
spectral norm in the generator too): one ConvGRU on the 4-pixel grid, plain
up/down-sampling blocks, plain synchronised batch norm in the generator, and
generator spectral norm only on request (`generator_spectral_norm`; why in
`DVDGAN`). The paper's GRU input is the same at every frame; here a small
per-frame noise joins it, which lets the generator vary its motion and
carries the clip length into exported graphs.

Differences from the paper (there is no official code; what the paper leaves
open is inferred and marked so). Kept from the paper: z ~ N(0, I) of 120
dimensions and a 120-d class embedding joined to it (`latent_dim`,
`label_dim`); an affine map to the smallest grid; a ConvGRU unrolled once per
frame, with the time axis folded into the batch for the upsampling; a spatial
discriminator on `k = 8` frames drawn uniformly without replacement, its score
the sum of the per-frame scores; a temporal discriminator on the whole clip
after 2x2 average pooling, 3-D in its first two blocks and 2-D (per frame)
after them; spectral normalisation and no batch norm in both discriminators;
sum pooling of the last features (BigGAN's); projection heads for classes;
the hinge loss. Scaled down on purpose (CPU-sized models): plain strided
(transposed) convolution blocks instead of BigGAN's residual blocks, hence
4x4 kernels of stride 2 where the paper's blocks use 3x3 (3x3x3) convolutions
with average-pool downsampling (inferred for the 3-D blocks), and leaky ReLU
0.2 in the discriminators (DCGAN's rule for plain blocks) where BigGAN's
residual blocks use ReLU; one ConvGRU on the smallest grid instead of one per
resolution; plain batch norm in the generator instead of class-conditional
batch norm fed with `[z; e(y)]`; generator spectral norm off by default (see
`generator_spectral_norm`); the per-frame noise. Halving time in the temporal
discriminator's two 3-D blocks is inferred (the paper does not give its time
strides). Training settings are the training core's defaults: Adam(2e-4,
beta_1 = 0.5) for both players and one discriminator step per generator step;
the paper trains with BigGAN's kind of setting (Adam with other rates for the
two players, on TPU-pod batches), which the zoo does not copy; its exact
figures could not be checked here. Neither does the zoo keep BigGAN's moving
average of the generator's weights by default (`compile(ema_decay=...)` turns
one on).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.distribute import global_uniform_ints
from vidgen_tf.base import check_positive_int, frame_noise
from vidgen_tf.layers import ConvGRU2D, Down2D, Down3D, LabelEmbedding, ProjectionHead, SpectralNorm, Up2D
from vidgen_tf.layers.geometry import doubling_stages
from vidgen_tf.registry import register


def sample_frame_indices(seed, batch_size, num_frames, num_samples):
    """`num_samples` distinct frame indices per clip `(B, k)`, uniformly at random.

    A partial Fisher-Yates shuffle of `range(num_frames)` per clip, each swap
    drawn with `global_uniform_ints`: every replica draws the choices of the
    whole global batch from the same seed and keeps its rows, so under
    `MirroredStrategy` the frames are those one device would pick.

    Args:
        seed: int tensor `[2]`. Stateless seed.
        batch_size: int or scalar tensor. Clips on this replica.
        num_frames: int or scalar tensor. Frames per clip (>= `num_samples`).
        num_samples: int. Frames to pick per clip (static).
    """
    order = tf.tile(tf.range(num_frames, dtype=tf.int32)[None], [batch_size, 1])  # (B, T)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num_samples)
    for i in range(num_samples):
        # Swap position i with a uniform position j in [i, T).
        j = i + global_uniform_ints(seeds[i], batch_size, num_frames - i)  # (B,)
        at_i = order[:, i]
        at_j = tf.gather(order, j, axis=1, batch_dims=1)
        delta = (at_j - at_i)[:, None]  # (B, 1)
        order += delta * tf.one_hot(i, num_frames, dtype=tf.int32)[None]
        order -= delta * tf.one_hot(j, num_frames, dtype=tf.int32)
    return order[:, :num_samples]


def downsample_space(videos):
    """2x2 average pooling of every frame: `(B, T, H, W, C)` -> `(B, T, H/2, W/2, C)`."""
    height, width, channels = videos.shape[2:]
    shape = tf.shape(videos)
    blocks = tf.reshape(videos, [shape[0], shape[1], height // 2, 2, width // 2, 2, channels])
    return tf.reduce_mean(blocks, axis=[3, 5])


@keras.saving.register_keras_serializable(package="vidgen_tf")
class DVDGANGenerator(keras.Model):
    """Latent -> grid -> ConvGRU over time -> per-frame upsampling.

    Called on a dict: `latent` `(B, latent_dim)`, `frame_noise`
    `(B, T, frame_noise_dim)` and, when `num_classes > 0`, `label` `(B,)`
    int; returns `(B, T, H, W, C)` in [-1, 1]. `T` is read from
    `frame_noise` and may be unknown when traced (the GRU then runs in a
    `tf.while_loop`, which exports to an ONNX `Loop`).
    """

    def __init__(self, height, width, channels, latent_dim, frame_noise_dim, width_multiplier,
                 num_classes=0, label_dim=120, spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="DVD-GAN")
        self.grid = (height >> stages, width >> stages)
        filters = width_multiplier * 2 ** (stages - 1)

        # === Layers ===
        self.label_embedding = LabelEmbedding(num_classes, label_dim, name="label_embedding") if num_classes else None
        project = layers.Dense(self.grid[0] * self.grid[1] * filters, name="project")
        self.project = SpectralNorm(project, name="project_sn") if spectral_norm else project
        self.gru = ConvGRU2D(filters, kernel_size=3, spectral_norm=spectral_norm, name="conv_gru")
        upsampling = []
        for _ in range(stages - 1):
            filters //= 2
            upsampling.append(Up2D(filters, spectral_norm=spectral_norm))
        # float32 output under mixed precision: the edge of the model.
        upsampling.append(Up2D(channels, norm="none", activation="tanh", spectral_norm=spectral_norm,
                               dtype="float32", name="to_frames"))
        self.upsampling = keras.Sequential(upsampling, name="frame_upsampling")

        # === Config ===
        self.num_classes = num_classes
        self.config = dict(
            height=height, width=width, channels=channels, latent_dim=latent_dim,
            frame_noise_dim=frame_noise_dim, width_multiplier=width_multiplier,
            num_classes=num_classes, label_dim=label_dim, spectral_norm=spectral_norm,
        )

    def initial_state(self, latent, label=None, training=False):
        """The streaming state: `grid` `(B, h, w, F)`, the projected clip code the GRU reads at
        every step, and `gru_state` `(B, h, w, F)`, zeros before the first frame."""
        code = ops.cast(latent, self.compute_dtype)  # (B, Z)
        if self.label_embedding is not None:
            label_code = ops.cast(self.label_embedding(label), self.compute_dtype)
            code = ops.concatenate([code, label_code], axis=-1)  # (B, Z + E)
        grid = self.project(code, training=training)
        grid = ops.reshape(grid, (-1, self.grid[0], self.grid[1], grid.shape[-1] // (self.grid[0] * self.grid[1])))
        return {"grid": grid, "gru_state": ops.zeros_like(grid)}

    def render_chunk(self, state, frame_noise, training=False):
        """Frames `(B, K, H, W, C)` of `K` more GRU steps on `frame_noise` `(B, K, N)`, and the next state."""
        grid = ops.cast(state["grid"], self.compute_dtype)[:, None]  # (B, 1, h, w, F)
        frame_noise = ops.cast(frame_noise, self.compute_dtype)  # (B, K, N)
        # Broadcasting by addition keeps K symbolic (no shape arithmetic for ONNX).
        frame_noise = frame_noise[:, :, None, None, :] + ops.zeros((1, 1) + self.grid + (1,), self.compute_dtype)
        grid = grid + ops.zeros_like(frame_noise[..., :1])  # (B, K, h, w, F)
        states = self.gru(
            ops.concatenate([grid, frame_noise], axis=-1), initial_state=state["gru_state"], training=training
        )  # (B, K, h, w, F)

        shape = tf.shape(states)
        batch, frames = shape[0], shape[1]
        frames_in = tf.reshape(states, [-1, self.grid[0], self.grid[1], states.shape[-1]])  # (B*K, h, w, F)
        images = self.upsampling(frames_in, training=training)  # (B*K, H, W, C)
        videos = tf.reshape(images, [batch, frames] + list(images.shape[1:]))
        return videos, {"grid": state["grid"], "gru_state": states[:, -1]}

    def call(self, inputs, training=False):
        state = self.initial_state(inputs["latent"], inputs.get("label"), training=training)
        return self.render_chunk(state, inputs["frame_noise"], training=training)[0]

    def get_config(self):
        return {**super().get_config(), **self.config}


@keras.saving.register_keras_serializable(package="vidgen_tf")
class DVDGANDiscriminator(keras.Model):
    """Spectrally normalised convolutions -> sum pooling -> projection head.

    Spatial (`temporal=False`): frames `(N, H, W, C)` -> logits `(N,)`, 2-D
    convolutions halving the frames down to a 4-pixel side, then one stride-1
    block. Temporal (`temporal=True`): clips `(B, T, H, W, C)` -> logits
    `(B,)`, the same plan whose first two blocks are 3-D convolutions that also
    halve time and whose later blocks are 2-D convolutions of every frame (3-D
    kernels one frame long), as the paper's. No batch normalisation (spectral norm instead). Called
    on `x`, or on `(x, labels)` with labels `(N,)` when `num_classes > 0` (one
    structured input, so that SavedModel can trace the default signature).
    """

    def __init__(self, height, width, channels, width_multiplier, num_classes=0, temporal=False, **kwargs):
        super().__init__(**kwargs)
        stages = doubling_stages(height, width, model="The DVD-GAN discriminator")
        block = Down3D if temporal else Down2D
        blocks = []
        filters = width_multiplier
        for i in range(stages + 1):
            space = 2 if i < stages else 1
            strides = ((2 if i < 2 else 1, space, space) if temporal else (space, space))
            # 4-wide kernels where the block halves an axis, 3-wide where it keeps it.
            kernel = tuple(4 if s == 2 else 3 for s in strides)
            if temporal and i >= 2:
                # The paper's temporal discriminator is 3-D in its first two blocks
                # only; the rest are 2-D, i.e. each frame on its own.
                kernel = (1,) + kernel[1:]
            blocks.append(block(filters, kernel_size=kernel, strides=strides, norm="none",
                                activation="leaky_relu", spectral_norm=True))
            filters *= 2
        self.blocks = keras.Sequential(blocks, name="blocks")
        # float32 logits under mixed precision.
        self.head = ProjectionHead(num_classes, spectral_norm=True, dtype="float32", name="head")
        self.num_classes = num_classes
        self.temporal = temporal
        self.config = dict(height=height, width=width, channels=channels, width_multiplier=width_multiplier,
                           num_classes=num_classes, temporal=temporal)

    def call(self, inputs, training=False):
        if self.num_classes:
            if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
                raise ValueError(
                    f"A conditional discriminator (num_classes={self.num_classes}) takes "
                    f"(videos or frames, labels), got {type(inputs).__name__}."
                )
            inputs, labels = inputs
        else:
            labels = None
        features = self.blocks(inputs, training=training)
        # Sum pooling over space (and time), as BigGAN's discriminator.
        features = ops.sum(features, axis=tuple(range(1, len(features.shape) - 1)))  # (N, F)
        return self.head(ops.cast(features, "float32"), labels, training=training)

    def get_config(self):
        return {**super().get_config(), **self.config}


@register("dvdgan")
class DVDGAN(AdversarialModel):
    """DVD-GAN, dual video discriminator GAN (Clark, Donahue, Simonyan 2019).

    Args:
        num_frames: int. Frames per training clip. Defaults to 16.
        height: int. Frame height, 4 * 2**k (16, 32, 64, ...). Defaults to 64.
        width: int. Frame width, like `height`. Defaults to 64.
        channels: int. 1 (grey) or 3 (RGB). Defaults to 3.
        num_classes: int. > 0 gives the class-conditional variant (label
            embedding in the generator, projection discriminators).
            Defaults to 0.
        latent_dim: int. Size of the latent `z` (paper: 120). Defaults to 120.
        frame_noise_dim: int. Size of the per-frame noise joining the GRU's
            input (not in the paper; see the module docstring). Defaults to 8.
        label_dim: int. Size of the class embedding (paper: 120). Defaults
            to 120.
        spatial_frames: int. Frames `k` the spatial discriminator judges per
            clip, at most `num_frames` (paper: 8). Defaults to 8.
        generator_width: int. Filters of the generator's last hidden layer,
            doubling towards the grid. Defaults to 64.
        discriminator_width: int. Filters of the discriminators' first layer,
            doubling per block. Defaults to 64.
        generator_spectral_norm: bool. Spectral norm in the generator too, as
            in the paper (the discriminators always have it). Off by default:
            at this zoo's sizes (16x16, widths 16, a few hundred steps on
            moving squares) the spectrally normalised generator collapsed to
            one blank or static clip, where the plain one learned the squares
            and their motion. Defaults to False.

    Example:
        >>> model = vidgen_tf.from_preset("dvdgan_moving_digits")
        >>> videos = model.generate(4, seed=0, num_frames=24)  # any length
        >>> model = vidgen_tf.build("dvdgan", num_frames=8, height=32, width=32, channels=1,
        ...                         spatial_frames=4, generator_width=16, discriminator_width=16)
        >>> model.compile()  # hinge loss
        >>> model.fit(vidgen_tf.data.load("moving_digits", num_frames=8, height=32,
        ...           width=32, batch_size=8), steps_per_epoch=10)
    """

    variable_length = True
    default_loss = "hinge"

    def __init__(
        self,
        num_frames=16,
        height=64,
        width=64,
        channels=3,
        num_classes=0,
        latent_dim=120,
        frame_noise_dim=8,
        label_dim=120,
        spatial_frames=8,
        generator_width=64,
        discriminator_width=64,
        generator_spectral_norm=False,
        **kwargs,
    ):
        super().__init__(
            num_frames=num_frames, height=height, width=width, channels=channels,
            num_classes=num_classes, **kwargs,
        )
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.frame_noise_dim = check_positive_int("frame_noise_dim", frame_noise_dim)
        self.label_dim = check_positive_int("label_dim", label_dim)
        self.spatial_frames = check_positive_int("spatial_frames", spatial_frames)
        if spatial_frames > num_frames:
            raise ValueError(
                f"`spatial_frames` ({spatial_frames}) must be at most `num_frames` ({num_frames}): "
                "the spatial discriminator judges that many distinct frames of each clip."
            )
        self.generator_width = check_positive_int("generator_width", generator_width)
        self.discriminator_width = check_positive_int("discriminator_width", discriminator_width)
        if not isinstance(generator_spectral_norm, bool):
            raise ValueError(f"`generator_spectral_norm` must be a bool, got {generator_spectral_norm!r}.")
        self.generator_spectral_norm = generator_spectral_norm
        if min(height, width) < 16:
            raise ValueError(
                f"DVD-GAN needs frames of at least 16x16 (its temporal discriminator sees them "
                f"halved, and that must still be 8 or more), got height={height}, width={width}."
            )

        self.generator = self.make_generator()
        self.discriminators = {
            "spatial": DVDGANDiscriminator(height, width, channels, discriminator_width, num_classes,
                                           temporal=False, name="spatial_discriminator"),
            "temporal": DVDGANDiscriminator(height // 2, width // 2, channels, discriminator_width, num_classes,
                                            temporal=True, name="temporal_discriminator"),
        }
        self._build_submodels()

    def make_generator(self):
        generator = DVDGANGenerator(
            self.height, self.width, self.channels, self.latent_dim, self.frame_noise_dim,
            self.generator_width, self.num_classes, self.label_dim, self.generator_spectral_norm,
            name="generator",
        )
        inputs = self.sample_noise(1, tf.constant([0, 0], tf.int64), num_frames=2)
        if self.num_classes:
            inputs["label"] = tf.zeros([1], tf.int32)
        generator(inputs)
        return generator

    def _build_submodels(self):
        frames = tf.zeros([1, self.height, self.width, self.channels])
        clips = tf.zeros([1, self.num_frames, self.height // 2, self.width // 2, self.channels])
        if self.num_classes:
            labels = tf.zeros([1], tf.int32)
            frames, clips = (frames, labels), (clips, labels)
        self.discriminators["spatial"](frames)
        self.discriminators["temporal"](clips)
        self.built = True

    def noise_spec(self, num_frames=None):
        return {
            "latent": tf.TensorSpec([None, self.latent_dim], tf.float32, name="latent"),
            "frame_noise": tf.TensorSpec([None, num_frames, self.frame_noise_dim], tf.float32, name="frame_noise"),
        }

    def sample_noise(self, batch_size, seed, num_frames=None, start_frame=0):
        """`latent` `(B, latent_dim)` and the per-frame `frame_noise` of frames
        `start_frame..start_frame + num_frames - 1`, N(0, 1) (see `frame_noise`)."""
        num_frames = self.num_frames if num_frames is None else num_frames
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        return {
            "latent": tf.random.stateless_normal([batch_size, self.latent_dim], seeds[0]),
            "frame_noise": frame_noise(seeds[1], batch_size, num_frames, [self.frame_noise_dim], start_frame),
        }

    # ------------------------------------------------------------- streaming
    # The state is the projected clip code and the ConvGRU's state.
    streaming_unavailable = None
    frame_noise_names = ("frame_noise",)

    def initial_state(self, batch_size, noise=None, labels=None):
        """`grid` and `gru_state`, each `(B, h, w, F)` (the generator's 4-pixel-side grid)."""
        labels = self.check_labels(labels)
        state = self.inference_generator.initial_state(noise["latent"], labels)
        return {name: tf.cast(value, tf.float32) for name, value in state.items()}

    def generate_chunk(self, state, noise):
        frames, state = self.inference_generator.render_chunk(state, noise["frame_noise"])
        return tf.cast(frames, tf.float32), {name: tf.cast(value, tf.float32) for name, value in state.items()}

    def discriminator_views(self, videos, seed):
        shape = tf.shape(videos)
        frames = sample_frame_indices(seed, shape[0], shape[1], self.spatial_frames)  # (B, k)
        return {
            "spatial": tf.gather(videos, frames, axis=1, batch_dims=1),  # (B, k, H, W, C)
            "temporal": downsample_space(videos),  # (B, T, H/2, W/2, C)
        }

    def call_discriminator(self, name, model, inputs, labels, training):
        if name == "temporal":
            return model(inputs if labels is None else (inputs, labels), training=training), None
        # Spatial: every sampled frame is judged alone; the clip's score is
        # the sum of its frames' scores (the paper's choice, not the mean).
        num_samples = tf.shape(inputs)[1]
        frames = tf.reshape(inputs, [-1] + list(inputs.shape[2:]))  # (B*k, H, W, C)
        frame_labels = None if labels is None else tf.repeat(labels, num_samples)
        logits = model(frames if labels is None else (frames, frame_labels), training=training)  # (B*k,)
        return tf.reduce_sum(tf.reshape(logits, [-1, num_samples]), axis=1), None

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            frame_noise_dim=self.frame_noise_dim,
            label_dim=self.label_dim,
            spatial_frames=self.spatial_frames,
            generator_width=self.generator_width,
            discriminator_width=self.discriminator_width,
            generator_spectral_norm=self.generator_spectral_norm,
        )
        return config
