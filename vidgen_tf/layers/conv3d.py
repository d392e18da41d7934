"""3-D convolutions with a second, often much faster, CPU path for strides > 1.

TensorFlow's CPU kernels for the gradient of a strided `Conv3D` and for
`Conv3DTranspose` (which is that gradient) are, for some shapes, 5-30x slower
than a stride-1 convolution of the same tensors, and for others 2-5x faster
(`bench/conv3d_paths.py` measures both). On this zoo's small video
discriminators (few input channels, frames of 32 pixels or less) the native
kernels took over 90% of a training step. These layers compute exactly the
same function with stride-1 ops when that is the faster side:

- strided convolution = explicit padding, stride-1 VALID convolution, then
  keeping every s-th output (the windows are the same ones);
- transposed convolution = zeros inserted between the inputs (stride s),
  padding, then a stride-1 convolution with the flipped kernel.

`fast_path=None` (the default) picks by the measured rule: the stride-1 path
when input channels x frame side <= 512 (e.g. 16 channels of 32x32 frames, or
128 channels of 4x4), the native one above; `True` / `False` force a path. Weights, configs and output
shapes are those of `keras.layers.Conv3D` / `keras.layers.Conv3DTranspose`.
On a GPU (cuDNN has fast strided kernels) they always call the native op.
"""


import keras
import tensorflow as tf


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
    side = max(d or 0 for d in inputs.shape[2:4])
    return inputs.shape[-1] * side <= 512


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
