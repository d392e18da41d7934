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
mean in float32. This layer decides at call time: the synchronised moments
when more than one replica is in sync, Keras's ordinary two-pass moments
(`tf.nn.moments`) otherwise.
"""

import keras
import tensorflow as tf
from keras import ops


def replicas_in_sync():
    """Replicas in sync in the current replica context (1 outside a strategy or in cross-replica context)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


@keras.saving.register_keras_serializable(package="vidgen_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose synchronisation follows the replica count.

    With `synchronized=True` a training call normalises with the moments of
    the global batch when more than one replica is in sync (all-reduced
    sums, as Keras), and with the local two-pass moments otherwise, which on
    one replica are the same batch's moments computed the stable way. Weights,
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
        if mask is None and self.synchronized and replicas_in_sync() == 1:
            return ops.moments(inputs, axes=self._reduction_axes, synchronized=False)
        return super()._moments(inputs, mask)
