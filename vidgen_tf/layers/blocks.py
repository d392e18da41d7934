"""Up- and down-sampling convolution blocks for video and image GANs.

Each block is a strided (transposed) convolution with "same" padding, an
optional normalisation and an activation, as in DCGAN (Radford et al. 2016,
https://arxiv.org/abs/1511.06434) and its 3-D extension in VGAN (Vondrick et
al. 2016, https://arxiv.org/abs/1609.02612). With "same" padding a stride-2
block exactly doubles (`Up*`) or halves (`Down*`, for even sizes) each axis.

Normalisations (`norm`):
    "batch": `vidgen_tf.layers.BatchNormalization` over the channel axis
        (the global batch's moments when several replicas are in sync).
    "layer": `LayerNormalization` over the channel axis only, so it works for
        any frame count and spatial size (per position, not per sample).
    "instance": `GroupNormalization(groups=-1)`, i.e. per sample and channel
        over all time and spatial positions.
    "none": no normalisation; the convolution then has a bias.
"""

import keras

from vidgen_tf.layers.activations import leaky_relu
from vidgen_tf.layers.conv3d import Conv3D, Conv3DTranspose
from vidgen_tf.layers.normalization import BatchNormalization
from vidgen_tf.layers.spectral_norm import SpectralNorm

NORMS = ("batch", "layer", "instance", "none")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")


def _normalize_tuple(value, rank, name):
    values = (value,) * rank if isinstance(value, int) else tuple(value)
    if len(values) != rank or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(
            f"`{name}` must be a positive integer or a tuple of {rank} of them, got {value!r}."
        )
    return values


class _SamplingBlock(keras.layers.Layer):
    """Convolution (plain or transposed), normalisation and activation."""

    _rank = None
    _convolution = None

    def __init__(
        self,
        filters,
        kernel_size=4,
        strides=2,
        norm="batch",
        activation="relu",
        spectral_norm=False,
        use_bias=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"`filters` must be a positive integer, got {filters!r}.")
        kernel_size = _normalize_tuple(kernel_size, self._rank, "kernel_size")
        strides = _normalize_tuple(strides, self._rank, "strides")
        if norm not in NORMS:
            raise ValueError(f"`norm` must be one of {NORMS}, got {norm!r}.")
        if activation is None:
            activation = "linear"
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS} or None, got {activation!r}."
            )
        # A bias before a normalisation that subtracts the mean is wasted.
        bias = norm == "none" if use_bias is None else bool(use_bias)

        # === Layers ===
        conv = self._convolution(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=bias,
            dtype=self.dtype_policy,
            name="conv",
        )
        if spectral_norm:
            conv = SpectralNorm(conv, name="conv_sn")
        self.conv = conv
        if norm == "batch":
            # The global batch's moments when several replicas are in sync.
            self.norm = BatchNormalization(synchronized=True, dtype=self.dtype_policy, name="norm")
        elif norm == "layer":
            self.norm = keras.layers.LayerNormalization(dtype=self.dtype_policy, name="norm")
        elif norm == "instance":
            self.norm = keras.layers.GroupNormalization(
                groups=-1, dtype=self.dtype_policy, name="norm"
            )
        else:
            self.norm = None
        # LeakyReLU differentiated through its output, which the CPU remapper can fuse (`activations`).
        self._activation_fn = leaky_relu if activation == "leaky_relu" else keras.activations.get(activation)

        # === Config ===
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.norm_type = norm
        self.activation = activation
        self.spectral_norm = bool(spectral_norm)
        self.use_bias = use_bias

    def build(self, input_shape):
        expected_rank = self._rank + 2
        if len(input_shape) != expected_rank:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank {expected_rank} "
                f"(batch, {self._rank} spatial/time axes, channels), "
                f"got shape {tuple(input_shape)}."
            )
        self.conv.build(input_shape)
        if self.norm is not None:
            self.norm.build(self.conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        x = self.conv(inputs, training=training)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self._activation_fn(x)

    def compute_output_shape(self, input_shape):
        return tuple(self.conv.compute_output_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "norm": self.norm_type,
                "activation": self.activation,
                "spectral_norm": self.spectral_norm,
                "use_bias": self.use_bias,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Up3D(_SamplingBlock):
    """Conv3DTranspose + norm + activation: (B, T, H, W, C) -> (B, sT*T, sH*H, sW*W, filters).

    Args:
        filters: int. Output channels.
        kernel_size: int or tuple of 3 ints. Convolution size. Defaults to 4.
        strides: int or tuple of 3 ints. Scale factor per axis. Defaults to 2.
        norm: str. One of "batch", "layer", "instance", "none" (see the module
            docstring). Defaults to "batch".
        activation: str or None. One of "relu", "leaky_relu" (slope 0.2),
            "tanh", "sigmoid", "linear" (or None). Defaults to "relu".
        spectral_norm: bool. Wrap the convolution in `SpectralNorm`.
            Defaults to False.
        use_bias: bool or None. Give the convolution a bias; None means only
            when `norm="none"`. Defaults to None.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`, `dtype`).

    Example:

    ```python
    Up3D(4)(np.zeros((1, 2, 4, 4, 8), "float32")).shape  # (1, 4, 8, 8, 4)
    Up3D(4, strides=(1, 2, 2))  # upsample space only
    ```
    """

    _rank = 3
    _convolution = Conv3DTranspose

    def __init__(
        self,
        filters,
        kernel_size=4,
        strides=2,
        norm="batch",
        activation="relu",
        spectral_norm=False,
        use_bias=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size=kernel_size,
            strides=strides,
            norm=norm,
            activation=activation,
            spectral_norm=spectral_norm,
            use_bias=use_bias,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Down3D(_SamplingBlock):
    """Conv3D + norm + activation: (B, T, H, W, C) -> (B, T/sT, H/sH, W/sW, filters).

    Odd sizes are rounded up ("same" padding).

    Args:
        filters: int. Output channels.
        kernel_size: int or tuple of 3 ints. Convolution size. Defaults to 4.
        strides: int or tuple of 3 ints. Scale factor per axis. Defaults to 2.
        norm: str. One of "batch", "layer", "instance", "none" (see the module
            docstring). Defaults to "batch".
        activation: str or None. One of "relu", "leaky_relu" (slope 0.2),
            "tanh", "sigmoid", "linear" (or None). Defaults to "leaky_relu".
        spectral_norm: bool. Wrap the convolution in `SpectralNorm`.
            Defaults to False.
        use_bias: bool or None. Give the convolution a bias; None means only
            when `norm="none"`. Defaults to None.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`, `dtype`).

    Example:

    ```python
    Down3D(16)(np.zeros((1, 4, 8, 8, 3), "float32")).shape  # (1, 2, 4, 4, 16)
    ```
    """

    _rank = 3
    _convolution = Conv3D

    def __init__(
        self,
        filters,
        kernel_size=4,
        strides=2,
        norm="batch",
        activation="leaky_relu",
        spectral_norm=False,
        use_bias=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size=kernel_size,
            strides=strides,
            norm=norm,
            activation=activation,
            spectral_norm=spectral_norm,
            use_bias=use_bias,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Up2D(_SamplingBlock):
    """Conv2DTranspose + norm + activation: (B, H, W, C) -> (B, sH*H, sW*W, filters).

    Args:
        filters: int. Output channels.
        kernel_size: int or tuple of 2 ints. Convolution size. Defaults to 4.
        strides: int or tuple of 2 ints. Scale factor per axis. Defaults to 2.
        norm: str. One of "batch", "layer", "instance", "none" (see the module
            docstring). Defaults to "batch".
        activation: str or None. One of "relu", "leaky_relu" (slope 0.2),
            "tanh", "sigmoid", "linear" (or None). Defaults to "relu".
        spectral_norm: bool. Wrap the convolution in `SpectralNorm`.
            Defaults to False.
        use_bias: bool or None. Give the convolution a bias; None means only
            when `norm="none"`. Defaults to None.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`, `dtype`).

    Example:

    ```python
    Up2D(4)(np.zeros((1, 4, 4, 8), "float32")).shape  # (1, 8, 8, 4)
    ```
    """

    _rank = 2
    _convolution = keras.layers.Conv2DTranspose

    def __init__(
        self,
        filters,
        kernel_size=4,
        strides=2,
        norm="batch",
        activation="relu",
        spectral_norm=False,
        use_bias=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size=kernel_size,
            strides=strides,
            norm=norm,
            activation=activation,
            spectral_norm=spectral_norm,
            use_bias=use_bias,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Down2D(_SamplingBlock):
    """Conv2D + norm + activation: (B, H, W, C) -> (B, H/sH, W/sW, filters).

    Odd sizes are rounded up ("same" padding).

    Args:
        filters: int. Output channels.
        kernel_size: int or tuple of 2 ints. Convolution size. Defaults to 4.
        strides: int or tuple of 2 ints. Scale factor per axis. Defaults to 2.
        norm: str. One of "batch", "layer", "instance", "none" (see the module
            docstring). Defaults to "batch".
        activation: str or None. One of "relu", "leaky_relu" (slope 0.2),
            "tanh", "sigmoid", "linear" (or None). Defaults to "leaky_relu".
        spectral_norm: bool. Wrap the convolution in `SpectralNorm`.
            Defaults to False.
        use_bias: bool or None. Give the convolution a bias; None means only
            when `norm="none"`. Defaults to None.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`, `dtype`).

    Example:

    ```python
    Down2D(16)(np.zeros((1, 8, 8, 3), "float32")).shape  # (1, 4, 4, 16)
    ```
    """

    _rank = 2
    _convolution = keras.layers.Conv2D

    def __init__(
        self,
        filters,
        kernel_size=4,
        strides=2,
        norm="batch",
        activation="leaky_relu",
        spectral_norm=False,
        use_bias=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size=kernel_size,
            strides=strides,
            norm=norm,
            activation=activation,
            spectral_norm=spectral_norm,
            use_bias=use_bias,
            **kwargs,
        )
