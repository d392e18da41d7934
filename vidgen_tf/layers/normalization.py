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
