"""What every video model shares: the common configuration and input checks.

Video tensors are `(batch, time, height, width, channels)`, float32 in [-1, 1]
inside models and uint8 in [0, 255] at the edges (files, exported outputs).
"""

import random

import keras
import tensorflow as tf


def check_positive_int(name, value, minimum=1):
    """Raises ValueError naming `name` unless `value` is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


# Frame counts up to this are drawn without a loop (see `frame_noise`).
MAX_UNROLLED_FRAMES = 256


def frame_noise(seed, batch_size, num_frames, event_shape=(), start_frame=0, distribution="normal"):
    """Per-frame noise `(B, T, *event_shape)` whose frame `t` depends on `seed` and `t` only.

    Frame `start_frame + i` is `tf.random.stateless_*([B, *event_shape],
    fold_in(seed, start_frame + i))`, so the noise of frames `s..s+K-1` drawn
    on their own equals that slice of a longer draw: a video generated in
    chunks (`VideoModel.generate_stream`) sees the noise of one long call.

    Args:
        seed: shape-[2] int seed.
        batch_size: int or scalar int32 tensor. `B`.
        num_frames: int or scalar int32 tensor. `T`.
        event_shape: tuple of ints. Shape of one frame's noise. Defaults to ().
        start_frame: int or scalar tensor. Index of the first frame drawn. Defaults to 0.
        distribution: str. `"normal"` (N(0, 1)) or `"uniform"` (U[0, 1)).
            Defaults to `"normal"`.
    """
    draw = {"normal": tf.random.stateless_normal, "uniform": tf.random.stateless_uniform}[distribution]
    seed = tf.cast(seed, tf.int64)
    event_shape = [int(d) for d in event_shape]
    shape = tf.stack([tf.cast(batch_size, tf.int32)] + event_shape)
    start = tf.cast(start_frame, tf.int64)

    def one_frame(frame):
        return draw(shape, tf.random.experimental.stateless_fold_in(seed, frame))

    # A frame count known when the graph is built (training, `generate`, fixed-length
    # exports) draws its frames side by side, with no loop: the same ops on the same
    # seeds, so the values equal the loop's bit for bit. The stateless draws cannot be
    # vectorised over seeds (pfor has no rule for StatelessRandomGetKeyCounter), so a
    # count known only at run time (an export's `num_frames` input) keeps `map_fn`.
    static_frames = tf.get_static_value(num_frames)
    if static_frames is not None and int(static_frames) <= MAX_UNROLLED_FRAMES:
        if int(static_frames) == 0:
            return tf.zeros(tf.stack([shape[0], 0] + event_shape))
        return tf.stack([one_frame(start + i) for i in range(int(static_frames))], axis=1)
    frames = tf.range(num_frames, dtype=tf.int64) + start
    noise = tf.map_fn(
        one_frame, frames, fn_output_signature=tf.TensorSpec([None] + event_shape, tf.float32)
    )  # (T, B, *event)
    return tf.transpose(noise, [1, 0] + list(range(2, 2 + len(event_shape))))


class VideoModel(keras.Model):
    """Base of every model in the zoo.

    Args:
        num_frames: int. Frames per training video. Defaults to 16.
        height: int. Frame height in pixels. Defaults to 64.
        width: int. Frame width in pixels. Defaults to 64.
        channels: int. Colour channels (1 grey, 3 RGB). Defaults to 1.
        num_classes: int. Number of classes for a conditional model; 0 means
            unconditional. Defaults to 0.
    """

    # Whether `generate` accepts a `num_frames` different from the training length.
    variable_length = False
    # Why `generate_stream` is unavailable (None: the model streams); see `check_streamable`.
    streaming_unavailable = (
        "it generates a fixed number of frames at once (variable_length=False), so a video "
        "cannot be continued chunk by chunk"
    )
    registered_name = None

    def __init__(self, num_frames=16, height=64, width=64, channels=1, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        self.num_frames = check_positive_int("num_frames", num_frames)
        self.height = check_positive_int("height", height)
        self.width = check_positive_int("width", width)
        self.channels = check_positive_int("channels", channels)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=0)

    @property
    def video_shape(self):
        """`(num_frames, height, width, channels)` of one training video."""
        return (self.num_frames, self.height, self.width, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            channels=self.channels,
            num_classes=self.num_classes,
        )
        return config

    # ------------------------------------------------------------------ cost
    def extra_multiply_adds(self, num_frames):
        """Multiply-adds a model does outside its layers, per clip, for `vidgen_tf.cost`.

        `vidgen_tf.cost` counts the layer calls of scoring and generation from
        a trace; a model whose arithmetic also lives in plain tensor code (a
        Kalman filter, an HMM's forward algorithm) gives it here in closed
        form. Defaults to none.

        Args:
            num_frames: int. Frames of the clip.

        Returns:
            dict with optional int entries `log_prob` (one clip scored) and
            `generation` (one clip generated).
        """
        return {}

    def layers_counted_in_closed_form(self):
        """Layers whose calls `extra_multiply_adds` counts (e.g. a cell stepped inside `tf.scan`,
        which a trace sees once): `vidgen_tf.cost` leaves their traced calls out. Defaults to ()."""
        return ()

    # ------------------------------------------------------------ noise
    def noise_distributions(self):
        """How each input of `noise_spec()` is drawn, for the export description.

        Exported graphs take their noise as inputs; a client draws it as this
        says (see `vidgen_tf.exporting.description`). Models whose
        `sample_noise` draws anything but N(0, 1) override this.

        Returns:
            dict name -> distribution dict: every `noise_spec` entry
            `{"kind": "normal", "mean": 0.0, "stddev": 1.0}` by default.
        """
        return {name: {"kind": "normal", "mean": 0.0, "stddev": 1.0} for name in self.noise_spec()}

    def _check_num_frames(self, num_frames):
        """`num_frames`, defaulting to the training length; only `variable_length` models take others."""
        if num_frames is None:
            return self.num_frames
        check_positive_int("num_frames", num_frames)
        if num_frames != self.num_frames and not self.variable_length:
            raise ValueError(
                f"{type(self).__name__} generates exactly {self.num_frames} frames; "
                f"got num_frames={num_frames}."
            )
        return num_frames

    def check_videos(self, videos, allow_any_length=False):
        """Raises ValueError naming the problem unless `videos` fits this model.

        Works on static shapes, so it costs nothing inside a traced step.
        """
        shape = tuple(videos.shape)
        if len(shape) != 5:
            raise ValueError(
                f"{type(self).__name__} expects videos shaped (batch, time, height, width, "
                f"channels), got rank {len(shape)} shape {shape}."
            )
        expected = self.video_shape
        got = shape[1:]
        for axis, (want, have) in enumerate(zip(expected, got)):
            if axis == 0 and allow_any_length:
                continue
            if have is not None and have != want:
                raise ValueError(
                    f"{type(self).__name__} expects videos shaped (batch, {expected[0]}, "
                    f"{expected[1]}, {expected[2]}, {expected[3]}) (num_frames, height, width, "
                    f"channels), got {shape}."
                )
        dtype = tf.as_dtype(videos.dtype)
        if not dtype.is_floating:
            raise ValueError(f"Videos must be float in [-1, 1], got dtype {videos.dtype}.")

    def check_labels(self, labels, batch_size=None):
        """Validates class labels against `num_classes`; returns int32 labels or None."""
        if self.num_classes == 0:
            if labels is not None:
                raise ValueError(
                    f"{type(self).__name__} is unconditional (num_classes=0) but labels were given."
                )
            return None
        if labels is None:
            raise ValueError(
                f"{type(self).__name__} is conditional (num_classes={self.num_classes}): "
                "labels are required."
            )
        labels = tf.convert_to_tensor(labels)
        if labels.dtype.is_floating:
            raise ValueError(f"Labels must be integers, got dtype {labels.dtype}.")
        labels = tf.cast(labels, tf.int32)
        if labels.shape.rank != 1:
            raise ValueError(f"Labels must be shaped (batch,), got {tuple(labels.shape)}.")
        if batch_size is not None and labels.shape[0] is not None and labels.shape[0] != batch_size:
            raise ValueError(f"Got {labels.shape[0]} labels for {batch_size} videos.")
        return self._check_label_range(labels)

    def _check_label_range(self, labels):
        """`labels` with a range check: a ValueError in eager mode, an assert (INVALID_ARGUMENT) in a graph.

        An embedding lookup or a one-hot of a label outside [0, num_classes)
        gives a zero code on some devices instead of failing, so the range is
        checked here, before any generator sees it.
        """
        expected = f"label: expected integers in [0, {self.num_classes})"
        if tf.executing_eagerly():
            values = labels.numpy()
            bad = values[(values < 0) | (values >= self.num_classes)]
            if bad.size:
                raise ValueError(f"{expected}, got {int(bad[0])} ({bad.size} of {values.size} out of range).")
            return labels
        # A plain string (no StringFormat) so the check also compiles under XLA, where it is a no-op.
        in_range = tf.reduce_all((labels >= 0) & (labels < self.num_classes))
        check = tf.debugging.Assert(in_range, [f"{expected}, got values in [min, max] =",
                                               tf.reduce_min(labels), tf.reduce_max(labels)])
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    # ------------------------------------------------------------- streaming
    # A streaming model splits its noise into per-clip entries (drawn once per
    # video) and per-frame entries (`frame_noise_names`, drawn by `frame_noise`
    # so that a chunk's noise is the slice of a long draw), and implements
    # `initial_state` and `generate_chunk`, pure functions of their inputs.
    frame_noise_names = ()

    def check_streamable(self):
        """Raises ValueError naming why, unless this model can generate video chunk by chunk."""
        if self.streaming_unavailable is not None:
            raise ValueError(
                f"{type(self).__name__} cannot stream: {self.streaming_unavailable}. "
                "Use generate() for its fixed-length clips."
            )

    def initial_state(self, batch_size, noise=None, labels=None):
        """The streaming state before the first frame: dict name -> tensor `(B, ...)`.

        Args:
            batch_size: int or scalar int32 tensor. `B`.
            noise: dict holding the per-clip noise entries of `sample_noise`
                (others are ignored), or None for a model without any.
            labels: int `(B,)` for conditional models, else None.
        """
        self.check_streamable()
        raise NotImplementedError

    def generate_chunk(self, state, noise):
        """Frames `(B, K, H, W, C)` float32 in [-1, 1] and the next state.

        Args:
            state: dict from `initial_state` or a previous `generate_chunk`.
            noise: dict of the per-frame noise (`frame_noise_names`) of the
                chunk's `K` frames, each `(B, K, ...)`.

        Returns:
            `(frames, next_state)`.
        """
        self.check_streamable()
        raise NotImplementedError

    def generate_stream(self, num, seed=None, chunk_frames=8, num_frames=None, labels=None):
        """Generates `num` videos chunk by chunk, with memory bounded by the chunk.

        Concatenated, the chunks equal `generate(num, seed, num_frames, labels)`
        for the same seed (up to float rounding of differently batched
        convolutions): the per-frame noise of frame `t` is drawn from the seed
        and `t` alone (see `frame_noise`), and the state carries what the
        generator remembers from frame to frame.

        Args:
            num: int. Number of videos.
            seed: int or None. The same seed gives the same videos.
            chunk_frames: int. Frames per chunk, >= 1 (the last chunk may be
                shorter). Defaults to 8.
            num_frames: int or None. Total length; None streams without end.
            labels: int array `(num,)` for conditional models, else None.

        Returns:
            A generator of float32 tensors `(num, <= chunk_frames, H, W, C)`
            in [-1, 1], as `generate` returns. Arguments are checked when it
            is created, not when the first chunk is drawn.
        """
        self.check_streamable()
        check_positive_int("num", num)
        check_positive_int("chunk_frames", chunk_frames)
        if num_frames is not None:
            check_positive_int("num_frames", num_frames)
        labels = self.check_labels(labels, batch_size=num)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        seed = tf.constant([int(seed), 1], tf.int64)
        return self._stream(num, seed, chunk_frames, num_frames, labels)

    def _stream(self, num, seed, chunk_frames, num_frames, labels):
        start, state = 0, None
        while num_frames is None or start < num_frames:
            size = chunk_frames if num_frames is None else min(chunk_frames, num_frames - start)
            noise = self.sample_noise(num, seed, num_frames=size, start_frame=start)
            if state is None:
                state = self.initial_state(num, noise, labels)
            frames, state = self.generate_chunk(state, {k: noise[k] for k in self.frame_noise_names})
            yield frames
            start += size
