"""Batch normalisation that synchronises only when there is something to synchronise.

Under `tf.distribute` with N replicas, each replica sees B / N examples; the
zoo's contract is that one step on N replicas equals one step on one device
with the whole batch, so batch normalisation must use the global batch's
moments (Ioffe & Szegedy 2015 normalise with the moments of the batch the loss
is computed on). Keras's `BatchNormalization(synchronized=True)` does that, but
it takes its synchronised path whenever a replica context exists, which is
always on the TensorFlow backend: on one device every training call then pays
for three (identity) all-reduces and computes the variance as
E[x^2] - E[x]^2, which loses every digit of a small variance beside a large
mean in float32. This layer decides at call time: on one replica Keras's
ordinary two-pass moments (`tf.nn.moments`: the mean, then the mean squared
deviation from it); on several, the same two passes over the global batch
(an all-reduce of the sums and counts gives the global mean, a second one
of the squared deviations from it the variance). Both are the same formula,
so N replicas and one device differ only in the order of the sums.
"""

import keras
import tensorflow as tf
from keras import ops

from vidgen_tf.distribute import num_replicas


@keras.saving.register_keras_serializable(package="vidgen_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose synchronisation follows the replica count.

    With `synchronized=True` a training call normalises with the moments of
    the global batch when more than one replica is in sync, and with the
    local moments otherwise (on one replica, the same batch). Either way the
    variance is the mean squared deviation from the mean, never
    E[x^2] - E[x]^2 (which Keras's synchronised path uses). Weights,
    their names and order, inference and every other argument are Keras's, so
    `keras.layers.BatchNormalization(synchronized=True)` can be replaced by
    this layer one for one. Calls with a mask use Keras's masked moments
    (never synchronised, as in Keras).

    Args:
        synchronized: bool. Use the global batch's moments when several
            replicas are in sync. Defaults to True (the zoo's contract that N
            replicas train as one device).
        **kwargs: the other arguments of `keras.layers.BatchNormalization`
            (`axis`, `momentum`, `epsilon`, `center`, `scale`, ...).

    Example:

    ```python
    norm = BatchNormalization(momentum=0.9, epsilon=1e-5)
    y = norm(np.random.normal(size=(8, 4, 4, 16)), training=True)  # (8, 4, 4, 16)
    ```
    """

    def __init__(self, *args, synchronized=True, **kwargs):
        super().__init__(*args, synchronized=synchronized, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if self._fusable(inputs, training, mask):
            return self._fused_call(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _fusable(self, inputs, training, mask):
        """Whether a training call can run TensorFlow's fused kernel: one replica, float32,
        no mask or renorm, channels last of a 4-D or 5-D input."""
        rank = len(inputs.shape)
        return (
            bool(training) and self.trainable and mask is None and not self.renorm
            and rank in (4, 5) and list(self._reduction_axes) == list(range(rank - 1))
            and inputs.dtype == tf.float32 and self.compute_dtype == "float32"
            and num_replicas() == 1
        )

    def _fused_call(self, inputs):
        """The training call through `FusedBatchNormV3` (oneDNN's on CPU, cuDNN's on GPU).

        Same function as the two-pass moments of Keras's layer (outputs and gradients within
        float32 rounding, `tests/test_layers_normalization.py`), 2.8-4.9x faster forward and
        backward on the zoo's generator shapes (`bench/batch_norm.py`). A 5-D input is viewed
        as 4-D `(B, T * H, W, C)`: the moments are over the same elements. The moving
        statistics are updated as Keras does, with the biased batch variance (the kernel
        returns the unbiased one for its own moving average).
        """
        shape = tf.shape(inputs)
        channels = inputs.shape[-1]
        flat = tf.reshape(inputs, [shape[0], -1, shape[-2], channels]) if len(inputs.shape) == 5 else inputs
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        empty = tf.constant([], tf.float32)
        outputs, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
            x=flat, scale=tf.convert_to_tensor(gamma), offset=tf.convert_to_tensor(beta), mean=empty,
            variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True,
        )
        count = tf.cast(tf.size(flat) // channels, tf.float32)
        variance = unbiased * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.reshape(outputs, shape) if len(inputs.shape) == 5 else outputs

    def _moments(self, inputs, mask):
        if mask is not None or not self.synchronized:
            return super()._moments(inputs, mask)
        if num_replicas() == 1:
            return ops.moments(inputs, axes=self._reduction_axes, synchronized=False)
        return self._global_moments(inputs)

    def _global_moments(self, inputs):
        """Two-pass moments of the global batch: `(mean, variance)`, each `(channels,)`."""
        context = tf.distribute.get_replica_context()
        axes = list(self._reduction_axes)
        inputs = tf.convert_to_tensor(inputs)
        count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(inputs), axes)), inputs.dtype)
        total, count = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.reduce_sum(inputs, axes, keepdims=True), count]
        )
        mean = total / count
        # As tf.nn.moments: the variance's gradient through the mean is zero.
        deviations = tf.reduce_sum(tf.math.squared_difference(inputs, tf.stop_gradient(mean)), axes, keepdims=True)
        variance = context.all_reduce(tf.distribute.ReduceOp.SUM, deviations) / count
        return tf.squeeze(mean, axes), tf.squeeze(variance, axes)
