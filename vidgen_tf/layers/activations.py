"""LeakyReLU whose gradient reads its output, which TensorFlow's CPU graph optimiser can fuse.

TensorFlow's `LeakyReluGrad` reads the activation's input. After a
convolution with a bias, that input is the `BiasAdd`, which Grappler's oneDNN
remapper folds with the convolution and the activation into one fused op, so
the gradient's input disappears: the remapper logs "remapper failed: ...
fanout '.../LeakyReluGrad' exist for missing node '.../BiasAdd'" at error
level on every trace of a training step and gives up all its fusions for that
graph. For a slope in (0, 1) the output's sign is the input's, so the
gradient `dy * (y > 0 ? 1 : slope)` can read the output instead, which the
fused op still produces. The forward op is TensorFlow's own `LeakyRelu`, so
inference graphs (and their fusions, and the ONNX exports) are unchanged.
"""

import keras
import tensorflow as tf


def leaky_relu(x, negative_slope=0.2):
    """`max(x, negative_slope * x)` for a slope in (0, 1), differentiated through its output.

    Any order of gradient is available (the gradient is built from ordinary
    ops), as a gradient penalty of a discriminator needs.
    """
    if not 0.0 < negative_slope < 1.0:
        raise ValueError(f"negative_slope must be in (0, 1), got {negative_slope}.")

    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, alpha=negative_slope)

        def gradient(dy):
            return tf.where(y > 0, dy, dy * tf.cast(negative_slope, dy.dtype))

        return y, gradient

    return forward(x)


@keras.saving.register_keras_serializable(package="vidgen_tf")
class LeakyReLU(keras.layers.LeakyReLU):
    """`keras.layers.LeakyReLU` with the gradient of `leaky_relu` (see the module docstring).

    Same arguments, config and outputs as Keras's layer; the slope must be in (0, 1).

    Example:

    ```python
    LeakyReLU(0.2)(np.array([-1.0, 2.0], np.float32))  # [-0.2, 2.0]
    ```
    """

    def call(self, inputs):
        return leaky_relu(inputs, self.negative_slope)
