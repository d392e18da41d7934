"""3-D convolutions with a second, sometimes much faster, CPU path for strides > 1.

Whether TensorFlow's own CPU kernels for a strided `Conv3D`, its gradients and
`Conv3DTranspose` (which is that gradient) are fast depends on which kernels
run. With oneDNN (TensorFlow's default on x86 Linux for CPUs with AVX-512 VNNI,
AVX-512 BF16 or AMX, and wherever `TF_ENABLE_ONEDNN_OPTS=1`) they are: on every
one of the 45 strided shapes the zoo's models use at their paper and preset
settings, the native op was 1.25x to 22x faster than the stride-1 path.
Without oneDNN (older x86 CPUs by default, or `TF_ENABLE_ONEDNN_OPTS=0`),
TensorFlow's Eigen kernels for the gradients of strided convolutions are, for
many shapes, 2-30x slower than a stride-1 convolution of the same tensors, and
for others several times faster (`bench/conv3d_paths.py` measures both, and
`tests/data/conv3d_paths.json` holds the measurements the rule is tested
against). These layers compute exactly the same function with stride-1 ops
when that is the faster side:

- strided convolution = explicit padding, stride-1 VALID convolution, then
  keeping every s-th output (the windows are the same ones);
- transposed convolution = zeros inserted between the inputs (stride s),
  padding, then a stride-1 convolution with the flipped kernel.

`fast_path=None` (the default) picks by `prefers_stride1`, the measured rule:
the native op whenever oneDNN runs, and on Eigen kernels the stride-1 path for
inputs of at most 64 channels whose channels x frame side is at most 1024
(e.g. 16 channels of 32x32 frames, or 64 of 16x16). `True` / `False` force a
path. Weights, configs and output shapes are those of `keras.layers.Conv3D` /
`keras.layers.Conv3DTranspose`. On a GPU (cuDNN has fast strided kernels) they
always call the native op.
"""

import functools
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


# Eigen kernels: the stride-1 path for at most this many input channels ...
STRIDE1_MAX_CHANNELS = 64
# ... whose channels x frame side is at most this.
STRIDE1_MAX_CHANNELS_TIMES_SIDE = 1024


def prefers_stride1(input_shape, filters, strides, onednn):
    """The measured rule: whether the stride-1 path beats the native op for one strided layer.

    Measured on the 45 strided shapes of the zoo's models, forward and backward
    (`tests/data/conv3d_paths.json`, from `bench/conv3d_paths.py`):

    - oneDNN kernels: never. The native op won every case, 1.25x to 22x, for
      convolutions and transposed convolutions, small and large channel counts.
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


def _use_fast_path(layer, inputs):
    if (
        layer.data_format != "channels_last"
        or any(d != 1 for d in layer.dilation_rate)
        or all(s == 1 for s in layer.strides)
        or tf.config.list_logical_devices("GPU")
    ):
        return False
    if layer.fast_path is not None:
        return bool(layer.fast_path)
    return prefers_stride1(tuple(inputs.shape[1:]), layer.filters, layer.strides, onednn_enabled())


def _length(x, axis):
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def _same_padding(length, kernel, stride):
    """(before, after) padding of TensorFlow's 'SAME' rule for a strided window."""
    out = (length + stride - 1) // stride
    total = (out - 1) * stride + kernel - length
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return total // 2, total - total // 2


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
    """`keras.layers.Conv3D` with a second CPU path for strides > 1 (same weights and outputs).

    Args:
        fast_path: bool or None. True / False force the stride-1 / native
            path on CPU; None picks by the measured rule. Defaults to None.
        **kwargs: the arguments of `keras.layers.Conv3D`.
    """

    def __init__(self, *args, fast_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_path = fast_path

    def get_config(self):
        return {**super().get_config(), "fast_path": self.fast_path}

    def convolution_op(self, inputs, kernel):
        if not _use_fast_path(self, inputs):
            return super().convolution_op(inputs, kernel)
        return strided_conv3d(inputs, kernel, self.strides, self.padding)


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
