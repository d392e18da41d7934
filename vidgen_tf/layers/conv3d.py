"""3-D convolutions with other, sometimes much faster, CPU paths for strides > 1.

How fast TensorFlow's own CPU kernels for a strided `Conv3D`, its gradients
and `Conv3DTranspose` (which is that gradient) are depends on which kernels
run and on the layer's shape. These layers compute exactly the function of
Keras's layers (the same windows and multiply-adds; only the order of the
sums differs) by one of `PATHS`:

- "native": Keras's op.
- "stride1" (`strided_conv3d`, `strided_conv3d_transpose`): explicit padding,
  a stride-1 VALID convolution, then every s-th output; a transposed
  convolution as zeros inserted between the inputs, padding and a stride-1
  convolution of the flipped kernel. `prod(strides)` times the arithmetic.
- "space_to_depth" (`blocked_conv3d`): for a convolution whose strides divide
  its kernel (4x4 kernels of stride 2, ...), the padded input is cut into
  blocks of the strides, each block's pixels become channels, and a stride-1
  VALID convolution with the kernel rearranged the same way computes the
  same outputs with the same arithmetic: `prod(strides)` times the input
  channels and `kernel / strides` taps.
- "patches" (`blocked_conv3d(..., patches=True)`): that stride-1 convolution
  as one matrix product of its windows and the kernel, with a hand-written
  gradient for the windows (`_extract_patches`).

`conv_path=None` (the default) picks by `choose_path`, the measured rule
(`bench/conv3d_paths.py` measures every strided shape of the zoo's models at
their paper and preset settings on every path, forward and backward;
`tests/data/conv3d_paths.json` holds the measurements the rule is tested
against):

- With oneDNN (TensorFlow's default on x86 Linux for CPUs with AVX-512 VNNI,
  AVX-512 BF16 or AMX, and wherever `TF_ENABLE_ONEDNN_OPTS=1`) the stride-1
  path never pays (the native op won all 45 shapes, 1.9x to 19.5x at batch
  16). Blocks
  do for inputs of at most 4 channels (every first layer on pixels: 1.2x to
  1.9x faster, forward and backward, at batch 16) and, for 4-frame kernels
  of time stride 1 on at least 128 channels, for MoCoGAN's deep video
  discriminator layers: 1.33x as a convolution on 10x18x18x128 clips and
  1.62x as a matrix product on 7x10x10x256, where a clip has at most 64
  output positions. Everything else keeps the native op, which was faster
  there (blocks with stride 2 in time, 8x the channels on 2x2x2 taps, were
  slower on every wide layer).
- Without oneDNN (older x86 CPUs by default, or `TF_ENABLE_ONEDNN_OPTS=0`),
  TensorFlow's Eigen kernels for the gradients of strided convolutions are,
  for many shapes, 2-30x slower than a stride-1 convolution of the same
  tensors, and for others several times faster: `prefers_stride1` picks
  the stride-1 path for inputs of at most 64 channels whose channels x frame
  side is at most 1024 (e.g. 16 channels of 32x32 frames, or 64 of 16x16).
  The blocked paths were not measured there and are not taken.

A path given by hand (`conv_path=`, or the older `fast_path=True / False`)
is forced where it can run. Weights, configs and output shapes are those of
`keras.layers.Conv3D` / `keras.layers.Conv3DTranspose`. On a GPU (cuDNN has
fast strided kernels) they always call the native op.
"""

import functools
import math
import os
import platform

import keras
import tensorflow as tf


@functools.lru_cache(maxsize=None)
def onednn_enabled():
    """Whether TensorFlow's CPU kernels are oneDNN's in this process.

    TensorFlow decides once, at start-up, from `TF_ENABLE_ONEDNN_OPTS` and the
    CPU; its own answer is read where it is available, else the variable and
    the platform's default (on for x86).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        if value is not None:
            return value.strip().lower() in ("1", "true", "on", "yes")
        return platform.machine().lower() in ("x86_64", "amd64")


# oneDNN kernels: space-to-depth blocks for inputs of at most this many channels ...
BLOCKED_MAX_CHANNELS = 4
# ... of at least this many positions a clip (frames x height x width; the 8x16x16 inputs of two
# presets were faster in isolation but 1.5% slower in their models' training steps),
BLOCKED_MIN_POSITIONS = 8 * 32 * 32
# ... and, for 4-frame kernels of time stride 1, inputs of at least this many channels,
BLOCKED_MIN_WIDE_CHANNELS = 128
# as one matrix product of the windows when a clip has at most this many output positions.
PATCHES_MAX_OUTPUTS = 64
# Eigen kernels: the stride-1 path for at most this many input channels ...
STRIDE1_MAX_CHANNELS = 64
# ... whose channels x frame side is at most this.
STRIDE1_MAX_CHANNELS_TIMES_SIDE = 1024


def prefers_stride1(input_shape, filters, strides, onednn):
    """The measured rule: whether the stride-1 path beats the native op for one strided layer.

    Measured on the 45 strided shapes of the zoo's models, forward and backward
    (`tests/data/conv3d_paths.json`, from `bench/conv3d_paths.py`):

    - oneDNN kernels: never. The native op won every case, 1.9x to 19.5x at
      batch 16 (1.25x to 22x at batch 4), for convolutions and transposed
      convolutions, small and large channel counts; `choose_path` takes the
      blocked paths there instead, where they pay.
    - Eigen kernels: for at most 64 input channels with channels x frame side
      <= 1024. This costs 8.1 s summed over the 45 cases, against 5.1 s for the
      best choice made case by case, 25.6 s for the native op everywhere, 21.7 s
      for the stride-1 path everywhere and 10.4 s for the previous rule
      (channels x side <= 512 alone). Output channels and the stride product
      (the stride-1 path does `prod(strides)` times the native arithmetic) were
      tried as further terms and did not separate the cases better: Eigen's
      slow and fast gradient kernels (1-65 ns against 0.01-0.1 ns per
      multiply-add) alternate with the tensor sizes in a way no simple
      function of the shape follows; five cases stay on the slower side.

    Args:
        input_shape: `(T, H, W, C)` of one clip (None for unknown sizes).
        filters: int. Output channels.
        strides: 3 ints.
        onednn: bool. Whether oneDNN kernels run (`onednn_enabled()`).

    Returns:
        bool: True for the stride-1 path.
    """
    if onednn or all(s == 1 for s in strides):
        return False
    channels = input_shape[-1]
    side = max(d or 0 for d in input_shape[1:3])
    return channels <= STRIDE1_MAX_CHANNELS and channels * side <= STRIDE1_MAX_CHANNELS_TIMES_SIDE


PATHS = ("native", "stride1", "space_to_depth", "patches")


def choose_path(input_shape, filters, kernel_size, strides, padding, onednn, transpose=False):
    """The measured rule: which path one strided 3-D convolution takes on this CPU.

    Args:
        input_shape: `(T, H, W, C)` of one clip (None for unknown sizes).
        filters: int. Output channels.
        kernel_size: 3 ints.
        strides: 3 ints.
        padding: "same" or "valid".
        onednn: bool. Whether oneDNN kernels run (`onednn_enabled()`).
        transpose: bool. A `Conv3DTranspose` (only "native" and "stride1").

    Returns:
        str: one of `PATHS`.
    """
    if all(s == 1 for s in strides):
        return "native"
    if not onednn:
        return "stride1" if prefers_stride1(input_shape, filters, strides, onednn) else "native"
    if transpose or not space_to_depth_applies(kernel_size, strides) or None in input_shape:
        return "native"
    channels = input_shape[-1]
    if channels <= BLOCKED_MAX_CHANNELS:
        return "space_to_depth" if math.prod(input_shape[:3]) >= BLOCKED_MIN_POSITIONS else "native"
    if strides[0] == 1 and kernel_size[0] >= 4 and channels >= BLOCKED_MIN_WIDE_CHANNELS:
        outputs = math.prod(_window_padding(n, k, s, padding)[2] for n, k, s in zip(input_shape[:3], kernel_size, strides))
        return "patches" if outputs <= PATCHES_MAX_OUTPUTS else "space_to_depth"
    return "native"


def _path_possible(layer, path):
    if path == "native":
        return True
    if (
        layer.data_format != "channels_last"
        or any(d != 1 for d in layer.dilation_rate)
        or all(s == 1 for s in layer.strides)
        or tf.config.list_logical_devices("GPU")
    ):
        return False
    if path in ("space_to_depth", "patches"):
        return isinstance(layer, keras.layers.Conv3D) and space_to_depth_applies(layer.kernel_size, layer.strides)
    return True


def layer_path(layer, inputs):
    """The path a `Conv3D` / `Conv3DTranspose` layer takes on `inputs`: one of `PATHS`."""
    chosen = getattr(layer, "conv_path", None)
    if chosen is None and getattr(layer, "fast_path", None) is not None:
        chosen = "stride1" if layer.fast_path else "native"
    if chosen is None:
        transpose = isinstance(layer, keras.layers.Conv3DTranspose)
        chosen = choose_path(tuple(inputs.shape[1:]), layer.filters, tuple(layer.kernel_size), tuple(layer.strides),
                             layer.padding, onednn_enabled(), transpose=transpose)
    return chosen if _path_possible(layer, chosen) else "native"


def _use_fast_path(layer, inputs):
    """Whether the layer takes the stride-1 path on `inputs` (see `layer_path`)."""
    return layer_path(layer, inputs) == "stride1"


def _length(x, axis):
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def _same_padding(length, kernel, stride):
    """(before, after) padding of TensorFlow's 'SAME' rule for a strided window."""
    out = (length + stride - 1) // stride
    total = (out - 1) * stride + kernel - length
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return total // 2, total - total // 2


def _window_padding(length, size, stride, padding):
    """`(before, after, outputs)` along one axis: a strided window's own padding ('same' or 'valid') and output length."""
    before, after = _same_padding(length, size, stride) if padding == "same" else (0, 0)
    return before, after, (length + before + after - size) // stride + 1


def strided_conv3d(inputs, kernel, strides, padding):
    """`tf.nn.conv3d` with `strides` and 'same'/'valid' padding, via stride 1.

    Args:
        inputs: `(B, T, H, W, C_in)`.
        kernel: `(kT, kH, kW, C_in, C_out)`.
        strides: 3 ints.
        padding: "same" or "valid".
    """
    pads = [[0, 0]]
    for axis, (size, stride) in enumerate(zip(kernel.shape[:3], strides)):
        pads.append(list(_same_padding(_length(inputs, axis + 1), size, stride)) if padding == "same" else [0, 0])
    pads.append([0, 0])
    padded = tf.pad(inputs, pads)
    outputs = tf.nn.conv3d(padded, kernel, [1, 1, 1, 1, 1], "VALID")
    return outputs[:, :: strides[0], :: strides[1], :: strides[2], :]


# ------------------------------------------------- space-to-depth and patches
def space_to_depth_applies(kernel_size, strides):
    """Whether a strided convolution can run as a stride-1 one on space-to-depth blocks.

    It can when every stride divides its kernel size (4x4 kernels of stride
    2, 4-frame kernels of stride 1 or 2, ...), and some stride is above 1.
    """
    return any(s > 1 for s in strides) and all(k % s == 0 for k, s in zip(kernel_size, strides))


def _block_padding(inputs, kernel_size, strides, padding):
    """Per axis `(before, after)`: the convolution's own padding, then zeros up to a multiple of the stride.

    The extra zeros at the end fall outside every window of the strided
    convolution's outputs; the outputs they add are cropped off.
    """
    pads, lengths = [], []
    for axis, (size, stride) in enumerate(zip(kernel_size, strides)):
        length = _length(inputs, axis + 1)
        before, after, outputs = _window_padding(length, size, stride, padding)
        lengths.append(outputs)
        pads.append([before, after + (-(length + before + after)) % stride])
    return pads, lengths


def space_to_depth(x, strides):
    """`(B, T, H, W, C)` -> `(B, T/st, H/sh, W/sw, st*sh*sw*C)`: each block of the strides becomes channels.

    The channels of a block are ordered (time offset, row offset, column
    offset, channel); every length must be a multiple of its stride.
    """
    st, sh, sw = strides
    channels = x.shape[-1]
    shape = tf.shape(x)
    t, h, w = (_length(x, axis) for axis in (1, 2, 3))
    x = tf.reshape(x, [shape[0], t // st, st, h // sh, sh, w // sw, sw, channels])
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4, 6, 7])
    return tf.reshape(x, [shape[0], t // st, h // sh, w // sw, st * sh * sw * channels])


def space_to_depth_kernel(kernel, strides):
    """`(kT, kH, kW, C, O)` -> `(kT/st, kH/sh, kW/sw, st*sh*sw*C, O)`, in `space_to_depth`'s channel order."""
    (kt, kh, kw, channels, filters), (st, sh, sw) = kernel.shape, strides
    kernel = tf.reshape(kernel, [kt // st, st, kh // sh, sh, kw // sw, sw, channels, filters])
    kernel = tf.transpose(kernel, [0, 2, 4, 1, 3, 5, 6, 7])
    return tf.reshape(kernel, [kt // st, kh // sh, kw // sw, st * sh * sw * channels, filters])


def _extract_patches(x, kernel_size):
    """Every `kernel_size` window of a stride-1 VALID convolution, as channels: `(B, To, Ho, Wo, kT*kH*kW*C)`.

    The windows' channels are ordered (time offset, row offset, column
    offset, channel), the order of a kernel reshaped to `(kT*kH*kW*C, O)`.
    The gradient adds each offset's share back in place (one padded copy per
    offset), which is several times faster than the gradient TensorFlow
    derives for the slices and their concatenation; it is linear and made
    of differentiable ops, so gradients of gradients (R1, WGAN-GP) hold.
    """
    kt, kh, kw = kernel_size
    offsets = [(a, b, c) for a in range(kt) for b in range(kh) for c in range(kw)]

    @tf.custom_gradient
    def patches(x):
        t, h, w = (_length(x, axis) for axis in (1, 2, 3))
        out = (t - kt + 1, h - kh + 1, w - kw + 1)
        windows = [x[:, a : a + out[0], b : b + out[1], c : c + out[2], :] for a, b, c in offsets]
        result = tf.concat(windows, axis=-1)

        def grad(upstream):
            shape = tf.shape(upstream)
            channels = x.shape[-1]
            per_offset = tf.reshape(upstream, [shape[0], shape[1], shape[2], shape[3], len(offsets), channels])
            parts = [
                tf.pad(per_offset[:, :, :, :, n, :], [[0, 0], [a, kt - 1 - a], [b, kh - 1 - b], [c, kw - 1 - c], [0, 0]])
                for n, (a, b, c) in enumerate(offsets)
            ]
            return tf.add_n(parts)

        return result, grad

    return patches(x)


def blocked_conv3d(inputs, kernel, strides, padding, patches=False):
    """`tf.nn.conv3d` with `strides` and 'same'/'valid' padding, as a stride-1 convolution on blocks.

    The input is padded (the convolution's own padding, then up to a
    multiple of each stride), rearranged by `space_to_depth`, and convolved
    with the kernel rearranged the same way (`space_to_depth_kernel`): the
    same windows, the same multiply-adds, in a stride-1 VALID convolution of
    `prod(strides)` times the input channels and `kernel / strides` taps.
    With `patches=True` that stride-1 convolution is one matrix product of
    the windows (`_extract_patches`) and the reshaped kernel instead.
    Needs `space_to_depth_applies(kernel.shape[:3], strides)`.

    Args:
        inputs: `(B, T, H, W, C_in)`.
        kernel: `(kT, kH, kW, C_in, C_out)`.
        strides: 3 ints.
        padding: "same" or "valid".
        patches: bool. Matrix product of the windows instead of `tf.nn.conv3d`.
    """
    strides = tuple(int(s) for s in strides)
    kernel_size = tuple(int(k) for k in kernel.shape[:3])
    if not space_to_depth_applies(kernel_size, strides):
        raise ValueError(f"blocked_conv3d needs strides {strides} that divide the kernel size {kernel_size}.")
    pads, lengths = _block_padding(inputs, kernel_size, strides, padding)
    x = inputs
    if not all(isinstance(n, int) and n == 0 for pair in pads for n in pair):
        x = tf.pad(x, [[0, 0]] + pads + [[0, 0]])
    blocks = space_to_depth(x, strides)
    block_kernel = space_to_depth_kernel(kernel, strides)
    if patches:
        windows = _extract_patches(blocks, block_kernel.shape[:3])
        shape = tf.shape(windows)
        flat = tf.reshape(block_kernel, [-1, block_kernel.shape[-1]])
        outputs = tf.matmul(tf.reshape(windows, [-1, flat.shape[0]]), flat)
        outputs = tf.reshape(outputs, [shape[0], shape[1], shape[2], shape[3], block_kernel.shape[-1]])
    else:
        outputs = tf.nn.conv3d(blocks, block_kernel, [1, 1, 1, 1, 1], "VALID")
    if all(isinstance(n, int) and n == outputs.shape[axis + 1] for axis, n in enumerate(lengths)):
        return outputs
    return outputs[:, : lengths[0], : lengths[1], : lengths[2], :]


def _insert_zeros(x, axis, stride):
    """`stride - 1` zeros after every element along `axis` (none after the last)."""
    if stride == 1:
        return x
    zeros = tf.zeros_like(x)
    stacked = tf.stack([x] + [zeros] * (stride - 1), axis=axis + 1)
    shape = tf.unstack(tf.shape(x))
    length = _length(x, axis)
    merged = tf.reshape(stacked, shape[:axis] + [length * stride] + shape[axis + 1 :])
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(0, (length - 1) * stride + 1)
    return merged[tuple(index)]


def strided_conv3d_transpose(inputs, kernel, strides, padding):
    """`Conv3DTranspose` (Keras semantics, no output padding) via a stride-1 convolution.

    Args:
        inputs: `(B, T, H, W, C_in)`.
        kernel: Keras transposed kernel `(kT, kH, kW, C_out, C_in)`.
        strides: 3 ints.
        padding: "same" or "valid".
    """
    x = inputs
    pads = [[0, 0]]
    for axis, (size, stride) in enumerate(zip(kernel.shape[:3], strides)):
        length = _length(inputs, axis + 1)
        x = _insert_zeros(x, axis + 1, stride)
        if padding == "same":
            out_length = length * stride
            before = max(size - stride, 0) // 2
        else:
            out_length = length * stride + max(size - stride, 0)
            before = 0
        dilated = (length - 1) * stride + 1
        pads.append([size - 1 - before, out_length + before - dilated])
    pads.append([0, 0])
    x = tf.pad(x, pads)
    flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1, 2]), [0, 1, 2, 4, 3])  # (kT, kH, kW, C_in, C_out)
    return tf.nn.conv3d(x, flipped, [1, 1, 1, 1, 1], "VALID")


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Conv3D(keras.layers.Conv3D):
    """`keras.layers.Conv3D` with other CPU paths for strides > 1 (same weights, same function).

    Args:
        conv_path: str or None. One of `PATHS`: "native" (Keras's op), "stride1"
            (`strided_conv3d`), "space_to_depth" or "patches"
            (`blocked_conv3d`); None picks by the measured rule,
            `choose_path`. A path that cannot take the layer (not strided,
            dilated, channels first, a stride that does not divide its
            kernel) and every layer on a GPU run the native op. Defaults to None.
        fast_path: bool or None. The older switch: True is
            `conv_path="stride1"`, False `conv_path="native"`. Defaults to None.
        **kwargs: the arguments of `keras.layers.Conv3D`.
    """

    def __init__(self, *args, conv_path=None, fast_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        if fast_path is not None:
            implied = "stride1" if fast_path else "native"
            if conv_path is not None and conv_path != implied:
                raise ValueError(
                    f"Conv3D: fast_path={fast_path!r} means conv_path={implied!r}, but conv_path={conv_path!r} was given."
                )
            conv_path = implied
        if conv_path is not None and conv_path not in PATHS:
            raise ValueError(f"Conv3D: unknown conv_path {conv_path!r}; choose one of {PATHS} or None (the measured rule).")
        self.conv_path = conv_path

    @property
    def fast_path(self):
        """The older switch: True for `conv_path="stride1"`, False for "native", else None."""
        return {"stride1": True, "native": False}.get(self.conv_path)

    def get_config(self):
        return {**super().get_config(), "conv_path": self.conv_path}

    def convolution_op(self, inputs, kernel):
        path = layer_path(self, inputs)
        if path == "stride1":
            return strided_conv3d(inputs, kernel, self.strides, self.padding)
        if path in ("space_to_depth", "patches"):
            return blocked_conv3d(inputs, kernel, self.strides, self.padding, patches=path == "patches")
        return super().convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Conv3DTranspose(keras.layers.Conv3DTranspose):
    """`keras.layers.Conv3DTranspose` with a second CPU path (same weights and outputs).

    Args:
        fast_path: bool or None. As for `Conv3D`. Defaults to None.
        **kwargs: the arguments of `keras.layers.Conv3DTranspose`.
    """

    def __init__(self, *args, fast_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_path = fast_path

    def get_config(self):
        return {**super().get_config(), "fast_path": self.fast_path}

    def call(self, inputs):
        if self.output_padding is not None or not _use_fast_path(self, inputs):
            return super().call(inputs)
        outputs = strided_conv3d_transpose(inputs, self.kernel, self.strides, self.padding)
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, outputs.dtype)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
