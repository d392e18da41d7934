"""A factorised space-time U-Net: the denoising network of video diffusion.

Ho, Salimans, Gritsenko, Chan, Norouzi and Fleet, "Video diffusion models",
NeurIPS 2022 (https://arxiv.org/abs/2204.03458), section 3: the image U-Net
of DDPM (Ho et al. 2020; keras-io `examples/generative/ddpm.py`) made a video
network by factorising space and time. Every convolution is space-only
(1x3x3: here a 2-D convolution of the frames folded into the batch, the same
arithmetic), spatial attention runs within each frame at the low
resolutions, and after every spatial block a temporal attention block mixes
the frames at each spatial position, with a learned relative position bias
(one number per head and frame offset: Shaw et al. 2018, as Ho et al. use)
so that attention knows the order of the frames. Residual blocks use
GroupNorm and SiLU, and each scales and shifts its features by the embedded
noise level (and class); the output layer starts at zero, so the untrained network predicts
zero (the mean of every objective's target). Video tensors are
`(B, T, H, W, C)`.
"""

import math

import tensorflow as tf
from keras import layers

_ZERO = "zeros"


def _groups(channels, groups):
    """The largest group count <= `groups` that divides `channels`."""
    return math.gcd(int(channels), int(groups))


def sinusoidal_embedding(t, dim, max_frequency=1000.0):
    """`(B, dim)` features `[sin(2 pi f t), cos(2 pi f t)]` of times `t` `(B,)`, f log-spaced in [1, max_frequency].

    keras-io `ddim.py`'s noise embedding (Vaswani et al. 2017's sinusoids,
    frequencies from 1 to 1000), here of the diffusion time in [0, 1].
    """
    t = tf.reshape(tf.cast(t, tf.float32), [-1, 1])
    frequencies = tf.exp(tf.linspace(0.0, math.log(max_frequency), dim // 2))
    angles = 2.0 * math.pi * frequencies[None, :] * t
    return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)


class FrameConv(layers.Layer):
    """A space-only (1 x k x k) convolution of videos `(B, T, H, W, C)`, as a 2-D convolution of every frame.

    Args:
        filters: int. Output channels.
        kernel_size: int. Spatial kernel side. Defaults to 3.
        strides: int. Spatial stride (2 halves H and W). Defaults to 1.
        kernel_initializer: initializer name. Defaults to "glorot_uniform";
            "zeros" for the network's output layer.
    """

    def __init__(self, filters, kernel_size=3, strides=1, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.kernel_initializer = kernel_initializer
        self.conv = layers.Conv2D(self.filters, self.kernel_size, strides=self.strides, padding="same",
                                  kernel_initializer=kernel_initializer, dtype=self.dtype_policy, name="conv")

    def call(self, x):
        frames, height, width, channels = x.shape[1:]
        y = self.conv(tf.reshape(x, [-1, height, width, channels]))  # (B T, H', W', F)
        return tf.reshape(y, [-1, frames] + list(y.shape[1:]))

    def compute_output_shape(self, input_shape):
        b, t, h, w, _ = input_shape
        return (b, t, -(-h // self.strides), -(-w // self.strides), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "kernel_initializer": self.kernel_initializer}


class ResidualBlock(layers.Layer):
    """GroupNorm, SiLU, 1x3x3 conv, GroupNorm scaled and shifted by the embedded noise level, SiLU, 1x3x3 conv, + skip.

    The noise level enters as a scale and shift after the second
    normalisation (`norm(h) (1 + s) + b`, Dhariwal and Nichol, "Diffusion
    models beat GANs on image synthesis", NeurIPS 2021, `use_scale_shift_norm`),
    not as a sum before it as in DDPM: a GroupNorm whose groups hold one
    channel (narrow networks) would remove a per-channel sum entirely.

    Called on `[x (B, T, H, W, C), embedding (B, E)]`; returns `(B, T, H, W, filters)`.

    Args:
        filters: int. Output channels.
        groups: int. GroupNorm groups (fewer when they do not divide the channels). Defaults to 8.
    """

    def __init__(self, filters, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups = int(filters), int(groups)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        policy = self.dtype_policy
        self.norm1 = layers.GroupNormalization(_groups(channels, self.groups), dtype=policy, name="norm1")
        self.conv1 = FrameConv(self.filters, dtype=policy, name="conv1")
        self.embed = layers.Dense(2 * self.filters, dtype=policy, name="noise_level")
        self.norm2 = layers.GroupNormalization(_groups(self.filters, self.groups), dtype=policy, name="norm2")
        self.conv2 = FrameConv(self.filters, dtype=policy, name="conv2")
        self.skip = layers.Dense(self.filters, dtype=policy, name="skip") if channels != self.filters else None

    def call(self, inputs):
        x, embedding = inputs
        h = self.conv1(tf.nn.silu(self.norm1(x)))
        scale, shift = tf.split(self.embed(tf.nn.silu(embedding))[:, None, None, None, :], 2, axis=-1)
        h = self.conv2(tf.nn.silu(self.norm2(h) * (1.0 + scale) + shift))
        return h + (x if self.skip is None else self.skip(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}


def _attend(q, k, v, heads, bias=None):
    """Multi-head dot-product attention of `(N, L, C)` queries, keys, values; `bias` `(heads, L, L)` is added."""
    length, channels = q.shape[1], q.shape[2]
    depth = channels // heads

    def split(x):
        return tf.reshape(x, [-1, length, heads, depth])

    logits = tf.einsum("nqhd,nkhd->nhqk", split(q), split(k)) / math.sqrt(depth)
    logits = tf.cast(logits, tf.float32)  # softmax in float32 under mixed precision
    if bias is not None:
        logits += tf.cast(bias, tf.float32)[None]
    weights = tf.cast(tf.nn.softmax(logits, axis=-1), v.dtype)
    return tf.reshape(tf.einsum("nhqk,nkhd->nqhd", weights, split(v)), [-1, length, channels])


class VideoAttention(layers.Layer):
    """Residual self-attention over the frames at each position (`axis="time"`) or within each frame (`"space"`).

    `x + W_o attention(GroupNorm(x))`, `W_o` zero-initialised so the block
    starts as the identity. Temporal attention adds a learned bias per head
    and frame offset `i - j` in `[-(T - 1), T - 1]`.

    Args:
        axis: str. `"time"` or `"space"`.
        heads: int. Attention heads; must divide the channels. Defaults to 1.
        num_frames: int. `T`, for the temporal bias table. Defaults to 16.
        groups: int. GroupNorm groups. Defaults to 8.
    """

    def __init__(self, axis, heads=1, num_frames=16, groups=8, **kwargs):
        super().__init__(**kwargs)
        if axis not in ("time", "space"):
            raise ValueError(f"`axis` must be 'time' or 'space', got {axis!r}.")
        self.axis, self.heads, self.num_frames, self.groups = axis, int(heads), int(num_frames), int(groups)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.heads:
            raise ValueError(f"`attention_heads`={self.heads} must divide the {channels} channels.")
        policy = self.dtype_policy
        self.norm = layers.GroupNormalization(_groups(channels, self.groups), dtype=policy, name="norm")
        self.qkv = layers.Dense(3 * channels, use_bias=False, dtype=policy, name="qkv")
        self.out = layers.Dense(channels, kernel_initializer=_ZERO, dtype=policy, name="out")
        self.position_bias = None
        if self.axis == "time":
            # A look-up of one learned number per head and offset (initialised at zero).
            self.position_bias = layers.Embedding(2 * self.num_frames - 1, self.heads, embeddings_initializer=_ZERO,
                                                  dtype=policy, name="relative_position_bias")

    def call(self, x):
        frames, height, width, channels = x.shape[1:]
        h = self.norm(x)
        bias = None
        if self.axis == "time":
            h = tf.reshape(tf.transpose(h, [0, 2, 3, 1, 4]), [-1, frames, channels])  # (B H W, T, C)
            offsets = tf.range(frames)[:, None] - tf.range(frames)[None, :] + self.num_frames - 1
            bias = tf.transpose(self.position_bias(offsets), [2, 0, 1])  # (heads, T, T)
        else:
            h = tf.reshape(h, [-1, height * width, channels])  # (B T, H W, C)
        q, k, v = tf.split(self.qkv(h), 3, axis=-1)
        h = self.out(_attend(q, k, v, self.heads, bias))
        if self.axis == "time":
            h = tf.transpose(tf.reshape(h, [-1, height, width, frames, channels]), [0, 3, 1, 2, 4])
        else:
            h = tf.reshape(h, [-1, frames, height, width, channels])
        return x + h

    def attention_multiply_adds(self, input_shape):
        """Multiply-adds per example of the two attention products (`q k^T`, weights x `v`), outside layers."""
        frames, height, width, channels = input_shape
        if self.axis == "time":
            return 2 * height * width * frames * frames * channels
        return 2 * frames * (height * width) ** 2 * channels

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "heads": self.heads, "num_frames": self.num_frames,
                "groups": self.groups}


class SpaceTimeUNet(layers.Layer):
    """The denoiser: `(x_t (B, T, H, W, C), t (B,), label (B,) or None)` -> `(B, T, H, W, C)` float32.

    Per resolution level, `num_res_blocks` residual blocks, each followed by
    spatial attention (at sides in `attention_resolutions`) and temporal
    attention; a stride-2 1x3x3 convolution between levels; the decoder
    mirrors it with skip connections and nearest-neighbour upsampling.

    Args:
        num_frames: int. `T`. Defaults to 16.
        channels: int. Video channels `C`. Defaults to 1.
        base_filters: int. Channels of the first level. Defaults to 32.
        channel_multipliers: tuple of ints. Channels of each level, in units
            of `base_filters`; `len - 1` halvings of H and W. Defaults to (1, 2, 2).
        num_res_blocks: int. Residual blocks per level. Defaults to 1.
        attention_resolutions: tuple of ints. Frame sides (min of H and W at
            a level) with spatial attention. Defaults to (8,).
        attention_heads: int. Heads of every attention block. Defaults to 1.
        groups: int. GroupNorm groups. Defaults to 8.
        num_classes: int. Classes of a conditional model (label `num_classes`
            is "no label", for classifier-free guidance); 0: unconditional. Defaults to 0.
    """

    def __init__(self, num_frames=16, channels=1, base_filters=32, channel_multipliers=(1, 2, 2), num_res_blocks=1,
                 attention_resolutions=(8,), attention_heads=1, groups=8, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(num_frames=int(num_frames), channels=int(channels), base_filters=int(base_filters),
                           channel_multipliers=[int(m) for m in channel_multipliers],
                           num_res_blocks=int(num_res_blocks),
                           attention_resolutions=[int(r) for r in attention_resolutions],
                           attention_heads=int(attention_heads), groups=int(groups), num_classes=int(num_classes))
        self.embedding_dim = 4 * self.config["base_filters"]

    def build(self, input_shape):
        c, policy = self.config, self.dtype_policy
        side = min(input_shape[2], input_shape[3])
        self.time_mlp = [layers.Dense(self.embedding_dim, activation="silu", dtype=policy, name="time_mlp_1"),
                         layers.Dense(self.embedding_dim, dtype=policy, name="time_mlp_2")]
        self.label_embedding = (layers.Embedding(c["num_classes"] + 1, self.embedding_dim, dtype=policy,
                                                 name="label_embedding") if c["num_classes"] else None)
        self.stem = FrameConv(c["base_filters"], dtype=policy, name="stem")

        def stage(filters, side, name):
            blocks = [ResidualBlock(filters, c["groups"], dtype=policy, name=f"{name}_res")]
            if side in c["attention_resolutions"]:
                blocks.append(VideoAttention("space", c["attention_heads"], c["num_frames"], c["groups"],
                                             dtype=policy, name=f"{name}_space_attention"))
            blocks.append(VideoAttention("time", c["attention_heads"], c["num_frames"], c["groups"], dtype=policy,
                                         name=f"{name}_time_attention"))
            return blocks

        levels = len(c["channel_multipliers"])
        self.down, self.up = [], []
        for level, multiplier in enumerate(c["channel_multipliers"]):
            filters = c["base_filters"] * multiplier
            for i in range(c["num_res_blocks"]):
                self.down.append(stage(filters, side >> level, f"down{level}_{i}"))
            if level < levels - 1:
                self.down.append(FrameConv(filters, strides=2, dtype=policy, name=f"downsample{level}"))
        deepest = c["base_filters"] * c["channel_multipliers"][-1]
        self.middle = stage(deepest, side >> (levels - 1), "middle") + [
            ResidualBlock(deepest, c["groups"], dtype=policy, name="middle_res2")]
        for level in reversed(range(levels)):
            filters = c["base_filters"] * c["channel_multipliers"][level]
            for i in range(c["num_res_blocks"] + 1):
                self.up.append(stage(filters, side >> level, f"up{level}_{i}"))
            if level > 0:
                self.up.append(FrameConv(filters, dtype=policy, name=f"upsample{level}"))
        self.out_norm = layers.GroupNormalization(_groups(c["base_filters"], c["groups"]), dtype=policy,
                                                  name="out_norm")
        # Zero-initialised and float32 under mixed precision: the prediction starts at 0.
        self.out_conv = FrameConv(c["channels"], kernel_initializer=_ZERO, dtype="float32", name="out")

    def _stage(self, blocks, h, embedding):
        for block in blocks:
            h = block([h, embedding]) if isinstance(block, ResidualBlock) else block(h)
        return h

    def call(self, x_t, t, labels=None):
        embedding = sinusoidal_embedding(t, self.embedding_dim // 4 * 2)
        for dense in self.time_mlp:
            embedding = dense(embedding)  # (B, E)
        if self.label_embedding is not None:
            embedding = embedding + self.label_embedding(labels)
        h = self.stem(x_t)
        skips = [h]
        for block in self.down:
            h = block(h) if isinstance(block, FrameConv) else self._stage(block, h, embedding)
            skips.append(h)
        h = self._stage(self.middle, h, embedding)
        for block in self.up:
            if isinstance(block, FrameConv):  # nearest-neighbour x2, then a 1x3x3 convolution
                h = block(tf.repeat(tf.repeat(h, 2, axis=2), 2, axis=3))
            else:
                h = self._stage(block, tf.concat([h, skips.pop()], axis=-1), embedding)
        return self.out_conv(tf.nn.silu(self.out_norm(h)))

    def attention_multiply_adds(self, video_shape):
        """Multiply-adds per clip of every attention block's products (not layer calls: see `vidgen_tf.cost`)."""
        frames, height, width, _ = video_shape
        c, total = self.config, 0
        levels = len(c["channel_multipliers"])

        def stage_cost(level, repeat):
            filters = c["base_filters"] * c["channel_multipliers"][level]
            shape = (frames, height >> level, width >> level, filters)
            count = VideoAttention("time").attention_multiply_adds(shape)
            if min(height, width) >> level in c["attention_resolutions"]:
                count += VideoAttention("space").attention_multiply_adds(shape)
            return repeat * count

        for level in range(levels):
            total += stage_cost(level, c["num_res_blocks"]) + stage_cost(level, c["num_res_blocks"] + 1)
        return total + stage_cost(levels - 1, 1)

    def get_config(self):
        return {**super().get_config(), **self.config}
