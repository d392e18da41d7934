"""Convolutional GRU over video feature maps.

Ballas et al., "Delving Deeper into Convolutional Networks for Learning Video
Representations", ICLR 2016, https://arxiv.org/abs/1511.06432.

The GRU's matrix products become 2-D convolutions with "same" padding, so the
hidden state keeps the frames' spatial layout:

    z_t = sigmoid(W_z * x_t + U_z * h_{t-1})
    r_t = sigmoid(W_r * x_t + U_r * h_{t-1})
    c_t = tanh(W_c * x_t + U_c * (r_t . h_{t-1}))
    h_t = (1 - z_t) . h_{t-1} + z_t . c_t
"""

import keras
import tensorflow as tf
from keras import ops

from vidgen_tf.layers.spectral_norm import SpectralNorm


def _maybe_spectral_norm(layer, spectral_norm):
    return SpectralNorm(layer, name=f"{layer.name}_sn") if spectral_norm else layer


def _validate_filters_and_kernel(filters, kernel_size):
    if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
        raise ValueError(f"`filters` must be a positive integer, got {filters!r}.")
    sizes = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(sizes) != 2 or not all(isinstance(k, int) and k >= 1 for k in sizes):
        raise ValueError(
            f"`kernel_size` must be a positive integer or a pair of them, got {kernel_size!r}."
        )
    return sizes


@keras.saving.register_keras_serializable(package="vidgen_tf")
class ConvGRU2DCell(keras.layers.Layer):
    """One step of a convolutional GRU, for generating frames one at a time.

    `cell(frame, state)` returns the next state; it is also the output. The
    sequence layer `ConvGRU2D` uses the same pieces: `project_inputs` (the
    input convolution, which does not depend on the state and can run on
    every frame at once) and `step`.

    Args:
        filters: int. Channels of the hidden state.
        kernel_size: int or tuple of 2 ints. Size of every convolution.
            Defaults to 3.
        spectral_norm: bool. Wrap every convolution in `SpectralNorm`.
            Defaults to False.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`, `dtype`).

    Example:

    ```python
    cell = ConvGRU2DCell(8)
    state = None
    for frame in frames:  # each (B, H, W, C)
        state = cell(frame, state)  # (B, H, W, 8)
    ```
    """

    def __init__(self, filters, kernel_size=3, spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        sizes = _validate_filters_and_kernel(filters, kernel_size)

        # === Layers ===
        # Input-to-state convolution for the update gate, reset gate and
        # candidate at once; the biases live here.
        self.input_conv = _maybe_spectral_norm(
            keras.layers.Conv2D(
                3 * filters, sizes, padding="same", dtype=self.dtype_policy, name="input_conv"
            ),
            spectral_norm,
        )
        self.gate_conv = _maybe_spectral_norm(
            keras.layers.Conv2D(
                2 * filters,
                sizes,
                padding="same",
                use_bias=False,
                kernel_initializer="orthogonal",
                dtype=self.dtype_policy,
                name="recurrent_gate_conv",
            ),
            spectral_norm,
        )
        self.candidate_conv = _maybe_spectral_norm(
            keras.layers.Conv2D(
                filters,
                sizes,
                padding="same",
                use_bias=False,
                kernel_initializer="orthogonal",
                dtype=self.dtype_policy,
                name="recurrent_candidate_conv",
            ),
            spectral_norm,
        )

        # === Config ===
        self.filters = filters
        self.kernel_size = sizes
        self.spectral_norm = bool(spectral_norm)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"ConvGRU2DCell expects frames shaped (B, H, W, C), got shape {tuple(input_shape)}."
            )
        state_shape = tuple(input_shape[:3]) + (self.filters,)
        self.input_conv.build(input_shape)
        self.gate_conv.build(state_shape)
        self.candidate_conv.build(state_shape)
        self.built = True

    def get_initial_state(self, inputs):
        """Returns zeros shaped (B, H, W, filters) for frames `inputs` (B, H, W, C)."""
        # Built from the input rather than from its shape so that unknown batch
        # and spatial sizes stay symbolic (and ONNX-friendly).
        return ops.zeros_like(inputs[..., :1]) + ops.zeros((self.filters,), dtype=inputs.dtype)

    def project_inputs(self, inputs, training=None):
        """Input convolution of frames (..., H, W, C) -> (..., H, W, 3 * filters)."""
        return self.input_conv(inputs, training=training)

    def step(self, projected, state, training=None):
        """One GRU update from projected inputs (B, H, W, 3F) and a state (B, H, W, F)."""
        x_update, x_reset, x_candidate = ops.split(projected, 3, axis=-1)
        h_update, h_reset = ops.split(self.gate_conv(state, training=training), 2, axis=-1)
        update = ops.sigmoid(x_update + h_update)  # (B, H, W, F)
        reset = ops.sigmoid(x_reset + h_reset)
        candidate = ops.tanh(x_candidate + self.candidate_conv(reset * state, training=training))
        return (1.0 - update) * state + update * candidate

    def call(self, inputs, state=None, training=None):
        if state is None:
            state = self.get_initial_state(inputs)
        return self.step(self.project_inputs(inputs, training=training), state, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "spectral_norm": self.spectral_norm,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="vidgen_tf")
class ConvGRU2D(keras.layers.Layer):
    """Convolutional GRU over a video: (B, T, H, W, C) -> (B, T, H, W, filters).

    With a static number of frames the time loop is unrolled in Python; with an
    unknown one it is a `tf.while_loop`. Both trace into SavedModels and convert
    to ONNX with tf2onnx (the while loop becomes an ONNX `Loop`).

    With `spectral_norm=True` and `training=True`, every spectral-norm power
    iteration runs once per sequence (on the first frame), not once per frame.

    Args:
        filters: int. Channels of the hidden state and of the output.
        kernel_size: int or tuple of 2 ints. Size of every convolution.
            Defaults to 3.
        return_sequences: bool. Return every state (B, T, H, W, filters) if
            True, else only the last one (B, H, W, filters). Defaults to True.
        spectral_norm: bool. Wrap every convolution in `SpectralNorm`.
            Defaults to False.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`, `dtype`).

    Call arguments:
        inputs: tensor (B, T, H, W, C).
        initial_state: optional tensor (B, H, W, filters); zeros if omitted.
        training: bool. Drives the spectral-norm power iteration.

    Example:

    ```python
    gru = ConvGRU2D(8)
    y = gru(np.zeros((2, 4, 16, 16, 3), "float32"))  # (2, 4, 16, 16, 8)
    ```
    """

    def __init__(
        self, filters, kernel_size=3, return_sequences=True, spectral_norm=False, **kwargs
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.cell = ConvGRU2DCell(
            filters,
            kernel_size=kernel_size,
            spectral_norm=spectral_norm,
            dtype=self.dtype_policy,
            name="cell",
        )

        # === Config ===
        self.filters = filters
        self.kernel_size = self.cell.kernel_size
        self.return_sequences = bool(return_sequences)
        self.spectral_norm = bool(spectral_norm)

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(
                f"ConvGRU2D expects inputs shaped (B, T, H, W, C), got shape {tuple(input_shape)}."
            )
        self.cell.build((input_shape[0],) + tuple(input_shape[2:]))
        self.built = True

    def _check_initial_state(self, inputs, initial_state):
        expected = (inputs.shape[0],) + tuple(inputs.shape[2:4]) + (self.filters,)
        shape = tuple(initial_state.shape)
        if len(shape) != 4 or any(
            a is not None and b is not None and a != b for a, b in zip(shape, expected)
        ):
            raise ValueError(
                f"`initial_state` must be shaped (B, H, W, filters) = {expected}, "
                f"got shape {shape}."
            )

    def call(self, inputs, initial_state=None, training=None):
        if len(inputs.shape) != 5:
            raise ValueError(
                f"ConvGRU2D expects inputs shaped (B, T, H, W, C), got shape {tuple(inputs.shape)}."
            )
        shape = ops.shape(inputs)
        batch, num_frames = shape[0], shape[1]
        height, width, channels = shape[2], shape[3], shape[4]

        # The input convolution does not depend on the state: run it on all
        # frames as one batch instead of once per step.
        frames = ops.reshape(inputs, (-1, height, width, channels))  # (B*T, H, W, C)
        projected = self.cell.project_inputs(frames, training=training)
        projected = ops.reshape(projected, (batch, num_frames, height, width, 3 * self.filters))

        if initial_state is None:
            state = self.cell.get_initial_state(inputs[:, 0])  # (B, H, W, F)
        else:
            self._check_initial_state(inputs, initial_state)
            state = ops.cast(initial_state, projected.dtype)

        # The first step runs with `training` so the recurrent convolutions'
        # spectral-norm vectors are updated once per sequence; later steps read
        # them without updating (the cell has no other training behaviour).
        state = self.cell.step(projected[:, 0], state, training=training)

        static_frames = inputs.shape[1]
        if static_frames is not None:
            states = [state]
            for t in range(1, static_frames):
                state = self.cell.step(projected[:, t], state, training=False)
                states.append(state)
            if not self.return_sequences:
                return state
            return ops.stack(states, axis=1)  # (B, T, H, W, F)
        return self._symbolic_loop(projected, state, num_frames)

    def _symbolic_loop(self, projected, first_state, num_frames):
        """Frames 1..T-1 for an unknown number of frames, as a tf.while_loop."""
        # tf2onnx turns this into an ONNX Loop only when the TensorArray is
        # written at the loop counter starting from 0.
        rest = ops.transpose(projected[:, 1:], (1, 0, 2, 3, 4))  # (T-1, B, H, W, 3F)
        outputs = tf.TensorArray(
            first_state.dtype, size=num_frames - 1, element_shape=first_state.shape
        )

        def body(t, state, outputs):
            state = self.cell.step(rest[t], state, training=False)
            return t + 1, state, outputs.write(t, state)

        _, state, outputs = tf.while_loop(
            lambda t, *_: t < num_frames - 1, body, (tf.constant(0), first_state, outputs)
        )
        if not self.return_sequences:
            return state
        # TensorArray.stack() of an empty list (T = 1) fails unless the element
        # shape is fully known, which the batch size is not: pass it at run time.
        rest_states = tf.raw_ops.TensorListStack(
            input_handle=outputs.flow,
            element_shape=tf.shape(first_state),
            element_dtype=first_state.dtype,
        )
        states = ops.concatenate([first_state[None], rest_states], axis=0)  # (T, B, H, W, F)
        return ops.transpose(states, (1, 0, 2, 3, 4))  # (B, T, H, W, F)

    def compute_output_shape(self, input_shape):
        batch, num_frames, height, width = tuple(input_shape)[:4]
        if self.return_sequences:
            return (batch, num_frames, height, width, self.filters)
        return (batch, height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "return_sequences": self.return_sequences,
                "spectral_norm": self.spectral_norm,
            }
        )
        return config
