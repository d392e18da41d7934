"""Zero padding of clips by concatenation, which TensorFlow's CPU graph optimiser leaves alone.

On TensorFlow 2.21's oneDNN CPU build, a `Pad` op feeding a strided `Conv3D`
whose filter gradient is also taken (every training step) makes Grappler's
remapper fail while fusing the two: it logs "remapper failed: ... fanout
'.../Conv3DBackpropFilterV2' exist for missing node '.../Pad'" at error level
on every trace and skips its other fusions for that graph. Padding with
concatenated zeros computes the same tensor without a `Pad` op. Its gradient
is a crop (a slice), and TensorFlow differentiates a slice into a `Pad`: a
gradient of a gradient, as in an R1 penalty, would bring the op back. So the
padding and the crop are each other's gradient here (`tf.custom_gradient`),
to any order, and no `Pad` appears.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="vidgen_tf")
class ZeroPadding3D(keras.layers.ZeroPadding3D):
    """`keras.layers.ZeroPadding3D` (channels last) built from concatenated zeros.

    Same arguments, config and outputs as Keras's layer; see the module
    docstring for why.

    Args:
        padding: int, tuple of 3 ints, or tuple of 3 `(before, after)`
            pairs. Zeros added on the time, height and width axes.
            Defaults to 1.
        **kwargs: the other arguments of `keras.layers.ZeroPadding3D`.

    Example:

    ```python
    ZeroPadding3D(((0, 0), (1, 1), (1, 1)))(np.ones((1, 4, 8, 8, 3))).shape  # (1, 4, 10, 10, 3)
    ```
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding=padding, data_format=data_format, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(
                f"vidgen_tf.layers.ZeroPadding3D supports channels_last only, got data_format={self.data_format!r}."
            )

    def call(self, inputs):
        return pad_with_zeros(inputs, self.padding)


def _concatenated(x, padding):
    for axis, (before, after) in zip((1, 2, 3), padding):
        parts = []
        for size in (before, after):
            shape = tf.unstack(tf.shape(x))
            shape[axis] = size
            parts.append(tf.zeros(tf.stack(shape), x.dtype) if size else None)
        if before or after:
            x = tf.concat([p for p in (parts[0], x, parts[1]) if p is not None], axis=axis)
    return x


def _cropped(y, padding):
    begin = tf.constant([0] + [before for before, _ in padding] + [0], tf.int32)
    removed = tf.constant([0] + [before + after for before, after in padding] + [0], tf.int32)
    return tf.slice(y, begin, tf.shape(y) - removed)


def pad_with_zeros(x, padding):
    """`x` `(B, T, H, W, C)` with `padding` (3 `(before, after)` pairs) zeros on axes 1-3; no `Pad`
    op in it or in its gradients of any order (module docstring)."""
    padding = tuple((int(before), int(after)) for before, after in padding)

    @tf.custom_gradient
    def pad(x):
        return _concatenated(x, padding), crop

    @tf.custom_gradient
    def crop(y):
        return _cropped(y, padding), pad

    return pad(x)
