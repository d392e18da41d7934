"""Spectral normalisation of a wrapped layer's kernel.

Miyato et al., "Spectral Normalization for Generative Adversarial Networks",
ICLR 2018, https://arxiv.org/abs/1802.05957.

The wrapped layer computes with `W / sigma(W)`, where `sigma(W)` is the largest
singular value of the kernel reshaped to a matrix whose columns are the output
channels. `sigma` is estimated by power iteration with a persistent vector `u`.

Why not `keras.layers.SpectralNormalization`: in training it assigns `W / sigma`
back into the kernel variable, so the optimizer's slots (and the saved weights)
describe a normalised kernel the gradient was never computed for. Here the
kernel variable always holds the raw trainable weight and the normalised value
is substituted only for the duration of the wrapped layer's call, through
`keras.StatelessScope`.
"""

import keras
from keras import ops

# Keras stores a transposed convolution's kernel as (..., out, in); every other
# supported layer stores (..., in, out).
_TRANSPOSED_CONVOLUTIONS = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def _l2_normalize(x, epsilon):
    # epsilon bounds the squared norm from below, as in tf.math.l2_normalize.
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x)), epsilon))


@keras.saving.register_keras_serializable(package="vidgen_tf")
class SpectralNorm(keras.layers.Wrapper):
    """Divides a layer's kernel by its largest singular value (spectral norm).

    The kernel is viewed as a matrix of shape `(n, out)` with one column per
    output channel: the last kernel axis for `Dense` and `ConvND`, the second
    last for `ConvNDTranspose` (whose Keras kernels are `(..., out, in)`).
    `sigma` is estimated as `||W u||` with a unit vector `u` of size `out`
    refined by power iteration. `u` is a non-trainable float32 weight, so it is
    saved with the model's weights and exported; it is updated only when the
    layer is called with `training=True`. No gradient flows through `u`.
    Inference right after a training call uses the `u` that call produced.

    The kernel variable stays the raw trainable weight: the optimizer updates
    it and `layer.kernel` never holds the normalised value. The wrapper's own
    dtype policy is the wrapped layer's variable dtype (any `dtype` argument is
    ignored), so under mixed precision the power iteration runs in float32 while
    the wrapped layer computes, and returns, its compute dtype.

    Args:
        layer: keras.layers.Layer. The layer to normalise; it must own a
            `kernel` variable once built (Dense, ConvND, ConvNDTranspose, ...)
            and must not update its own weights during its call.
        power_iterations: int. Power-iteration steps per training call.
            Defaults to 1.
        epsilon: float. Lower bound on the squared norms divided by when
            normalising `u`, `W u` and `sigma`. Defaults to 1e-12.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

    Example:

    ```python
    conv = SpectralNorm(keras.layers.Conv2D(64, 3, padding="same"))
    y = conv(np.zeros((2, 16, 16, 3)), training=True)  # (2, 16, 16, 64)
    conv.sigma()  # estimate of the raw kernel's spectral norm
    ```
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"`layer` must be a keras.layers.Layer, got {type(layer).__name__}.")
        if isinstance(power_iterations, bool) or not isinstance(power_iterations, int):
            raise ValueError(
                f"`power_iterations` must be a positive integer, got {power_iterations!r}."
            )
        if power_iterations < 1:
            raise ValueError(
                f"`power_iterations` must be a positive integer, got {power_iterations}."
            )
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be a positive float, got {epsilon!r}.")
        # The wrapper computes in the wrapped layer's variable dtype so that,
        # under mixed precision, it reads the kernel in float32 for the power
        # iteration (Keras autocasts variable reads to the compute dtype inside
        # a layer's call); the wrapped layer still computes in its own dtype.
        kwargs["dtype"] = layer.dtype_policy.variable_dtype
        super().__init__(layer, **kwargs)
        self.power_iterations = power_iterations
        self.epsilon = float(epsilon)
        self.u = None

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = getattr(self.layer, "kernel", None)
        if not isinstance(kernel, keras.Variable):
            raise ValueError(
                "SpectralNorm needs a layer whose built `kernel` attribute is a "
                f"variable; got {type(self.layer).__name__} '{self.layer.name}' with "
                f"kernel={type(kernel).__name__} (LoRA and quantised kernels are "
                "not supported)."
            )
        if len(kernel.shape) < 2:
            raise ValueError(
                f"SpectralNorm needs a kernel of rank >= 2; '{self.layer.name}' has "
                f"kernel shape {kernel.shape}."
            )
        self._output_axis = (
            len(kernel.shape) - 2
            if isinstance(self.layer, _TRANSPOSED_CONVOLUTIONS)
            else len(kernel.shape) - 1
        )
        num_outputs = kernel.shape[self._output_axis]
        self.u = self.add_weight(
            name="sn_u",
            shape=(1, num_outputs),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            dtype="float32",
            # Every replica computes the same update from the same kernel;
            # taking the first replica's value makes the assign valid in a
            # replica context.
            aggregation="only_first_replica",
        )
        self.built = True

    def _kernel_matrix(self):
        """Returns the raw kernel and its float32 (n, out) matrix view."""
        # The variable's own dtype: this layer's compute dtype is its variable dtype.
        kernel = ops.convert_to_tensor(self.layer.kernel)
        matrix = ops.cast(kernel, "float32")
        if self._output_axis != len(kernel.shape) - 1:
            matrix = ops.swapaxes(matrix, self._output_axis, -1)
        return kernel, ops.reshape(matrix, (-1, matrix.shape[-1]))  # (n, out)

    def _power_iteration(self, matrix):
        u = ops.convert_to_tensor(self.u.value)  # (1, out)
        matrix = ops.stop_gradient(matrix)
        for _ in range(self.power_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(matrix)), self.epsilon)  # (1, n)
            u = _l2_normalize(ops.matmul(v, matrix), self.epsilon)  # (1, out)
        return u

    def _sigma(self, matrix, u):
        u = ops.stop_gradient(u)
        wu = ops.matmul(u, ops.transpose(matrix))  # (1, n)
        return ops.sqrt(ops.maximum(ops.sum(ops.square(wu)), self.epsilon))

    def sigma(self):
        """Returns the current float32 estimate of the raw kernel's spectral norm.

        Uses the stored `u` without updating it.
        """
        if not self.built:
            raise ValueError(f"SpectralNorm '{self.name}' must be built before `sigma()`.")
        _, matrix = self._kernel_matrix()
        return self._sigma(matrix, self.u.value)

    def normalized_kernel(self):
        """Returns the kernel the wrapped layer computes with, `W / sigma`, in float32."""
        if not self.built:
            raise ValueError(
                f"SpectralNorm '{self.name}' must be built before `normalized_kernel()`."
            )
        kernel, matrix = self._kernel_matrix()
        return ops.cast(kernel, "float32") / self._sigma(matrix, self.u.value)

    def call(self, inputs, training=None):
        kernel, matrix = self._kernel_matrix()
        if training:
            u = self._power_iteration(matrix)
            self.u.assign(u)
        else:
            u = ops.convert_to_tensor(self.u.value)
        normalized = ops.divide(kernel, ops.cast(self._sigma(matrix, u), kernel.dtype))
        # Pass every other weight through as its current value so that an
        # enclosing StatelessScope still supplies its values to the wrapped layer.
        kernel_variable = self.layer.kernel
        mapping = [(kernel_variable, normalized)] + [
            (weight, weight.value) for weight in self.layer.weights if weight is not kernel_variable
        ]
        with keras.StatelessScope(state_mapping=mapping, initialize_variables=False):
            return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(self.layer.compute_output_shape(input_shape))

    def compute_output_spec(self, inputs, training=None):
        # The output has the wrapped layer's compute dtype, not this wrapper's.
        return self.layer.compute_output_spec(inputs)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Wrapper.from_config pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects=custom_objects)

    def get_config(self):
        config = super().get_config()
        config.update({"power_iterations": self.power_iterations, "epsilon": self.epsilon})
        return config
