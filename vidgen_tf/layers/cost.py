"""Multiply-adds of convolution, dense and recurrent networks, from layer shapes alone.

A network's arithmetic is dominated by the products of weights with inputs:
one multiply-add per weight per position it is applied at. Counted for one
example (no batch axis):

- `ConvND` (`Conv1D`, `Conv2D`, `Conv3D`, and `vidgen_tf.layers.Conv3D`):
  output positions x output channels x kernel volume x input channels / groups.
- `ConvNDTranspose`: input positions x input channels x kernel volume x output
  channels (every input value meets every kernel weight once).
- `Dense`: positions before the last axis x input features x units.
- `SpectralNorm`: the wrapped layer's count (the power iteration is one
  matrix-vector product per step and is left out).
- Recurrent cells on an input of `D` features with `u` units, per step:
  `GRUCell` `3 (D + u) u`, `LSTMCell` `4 (D + u) u`, `SimpleRNNCell`
  `(D + u) u`; a `GRU` / `LSTM` / `SimpleRNN` layer on `(T, D)` is `T` steps.
- `ConvGRU2DCell` on a frame `(H, W, C)` with `F` filters: its input
  convolution to `3F` channels on the frame and its recurrent convolutions to
  `2F` and `F` channels on the state `(H, W, F)`; `ConvGRU2D` on `(T, H, W, C)`
  is `T` steps.
- The zoo's blocks: `Down2D` / `Down3D` / `Up2D` / `Up3D` count their
  convolution; `Conv3DDiscriminator` its blocks and head; `ProjectionHead` on
  `(F,)` features `F` for its linear unit plus `F` for the class projection
  when `num_classes > 0`.
- `keras.Sequential`: the sum over its layers, each on the shape the one
  before produced.

Biases, activations, padding, reshapes, table look-ups (`Embedding`,
`LabelEmbedding`, `ClassEmbedding`) and the elementwise normalisations
(batch, layer, group) count 0. Any other layer that holds weights raises, so a
total never silently leaves out a layer it cannot count.

`call_multiply_adds` counts what a function actually runs: it traces the
function (no arithmetic is done) and counts every layer call it makes, on the
shape that call sees, so that networks called on reshaped inputs (frames
folded into the batch, a discriminator on a few sampled frames) are counted
as they run. Arithmetic outside layers (`tf.matmul` in a Kalman filter, a
TFP distribution's log-density) is not seen and must be added by the caller.
"""

import contextlib
import math
import threading

import keras
import tensorflow as tf

from vidgen_tf.layers.blocks import _SamplingBlock
from vidgen_tf.layers.conditioning import ClassEmbedding, LabelEmbedding, ProjectionHead
from vidgen_tf.layers.conv_gru import ConvGRU2D, ConvGRU2DCell
from vidgen_tf.layers.spectral_norm import SpectralNorm
from vidgen_tf.layers.video_discriminator import Conv3DDiscriminator

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
_ELEMENTWISE = (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.GroupNormalization)
_LOOKUPS = (keras.layers.Embedding, LabelEmbedding, ClassEmbedding)
# Matrix products per step of a cell, in units of (inputs + units) x units.
_CELL_GATES = ((keras.layers.GRUCell, 3), (keras.layers.LSTMCell, 4), (keras.layers.SimpleRNNCell, 1))
_CELLS = tuple(cls for cls, _ in _CELL_GATES)


def _check_shape(input_shape):
    shape = tuple(input_shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(
            "`input_shape` must be the shape of one example (no batch axis) as positive "
            f"integers, e.g. (16, 64, 64, 3), or () for a scalar example; got {input_shape!r}."
        )
    return shape


def _holds_weights(layer, shape):
    if layer.built:
        return bool(layer.weights)
    # An unbuilt layer has no weights yet: build a copy to see whether it would.
    copy = type(layer).from_config(layer.get_config())
    copy.build((1,) + shape)
    return bool(copy.weights)


def _cell_multiply_adds(cell, input_features):
    for cls, gates in _CELL_GATES:
        if isinstance(cell, cls):
            return gates * (input_features + cell.units) * cell.units
    raise ValueError(f"No multiply-add rule for the recurrent cell '{cell.name}' ({type(cell).__name__}).")


def _conv_gru_step(cell, frame_shape):
    """Multiply-adds of one ConvGRU2DCell step on a frame `(H, W, C)`."""
    state_shape = tuple(frame_shape[:-1]) + (cell.filters,)
    return (
        layer_multiply_adds(cell.input_conv, frame_shape)[0]
        + layer_multiply_adds(cell.gate_conv, state_shape)[0]
        + layer_multiply_adds(cell.candidate_conv, state_shape)[0]
    )


def _composite_multiply_adds(layer, shape):
    """`(count, output_shape)` of the zoo's composite layers and recurrent layers, or None."""
    if isinstance(layer, keras.Sequential):
        total = 0
        for inner in layer.layers:
            count, shape = layer_multiply_adds(inner, shape)
            total += count
        return total, shape
    if isinstance(layer, SpectralNorm):
        return layer_multiply_adds(layer.layer, shape)
    if isinstance(layer, _SamplingBlock):
        return layer_multiply_adds(layer.conv, shape)
    if isinstance(layer, Conv3DDiscriminator):
        total = 0
        for block in layer.blocks:
            count, shape = layer_multiply_adds(block, shape)
            total += count
        return total + layer_multiply_adds(layer.head, (math.prod(shape),))[0], ()
    if isinstance(layer, ProjectionHead):
        features = _check_rank(layer, shape, 1)[0]
        return features * (2 if layer.num_classes else 1), ()
    if isinstance(layer, ConvGRU2DCell):
        _check_rank(layer, shape, 3)
        return _conv_gru_step(layer, shape), tuple(shape[:-1]) + (layer.filters,)
    if isinstance(layer, ConvGRU2D):
        _check_rank(layer, shape, 4)
        output = tuple(layer.compute_output_shape((1,) + shape))[1:]
        return shape[0] * _conv_gru_step(layer.cell, shape[1:]), output
    if isinstance(layer, _CELLS):
        features = _check_rank(layer, shape, 1)[0]
        return _cell_multiply_adds(layer, features), (layer.units,)
    if isinstance(layer, keras.layers.RNN):
        steps, features = _check_rank(layer, shape, 2)
        output = tuple(layer.compute_output_shape((1,) + shape))
        output = tuple(output[0])[1:] if isinstance(output[0], (tuple, list)) else output[1:]
        return steps * _cell_multiply_adds(layer.cell, features), output
    if isinstance(layer, _LOOKUPS):
        return 0, tuple(layer.compute_output_shape((1,) + shape))[1:]
    return None


def _check_rank(layer, shape, rank):
    if len(shape) != rank:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) takes examples of rank {rank}, "
            f"got the shape {shape}."
        )
    return shape


def layer_multiply_adds(layer, input_shape):
    """Multiply-adds of one layer on one example, and the shape it outputs.

    Args:
        layer: keras.layers.Layer. A layer of the kinds listed in the module
            docstring (a `keras.Sequential` counts as one layer here).
        input_shape: tuple of ints. Shape of one input example, without the
            batch axis, e.g. `(16, 64, 64, 3)` for a 16-frame RGB clip.

    Returns:
        `(multiply_adds, output_shape)`: an int and a tuple of ints (no batch axis).

    Example:

    ```python
    layer_multiply_adds(keras.layers.Dense(10), (4,))  # (40, (10,))
    ```
    """
    shape = _check_shape(input_shape)
    composite = _composite_multiply_adds(layer, shape)
    if composite is not None:
        return int(composite[0]), tuple(composite[1])
    if isinstance(layer, keras.layers.Wrapper):
        raise ValueError(
            f"No multiply-add rule for the wrapper '{layer.name}' ({type(layer).__name__}); "
            "vidgen_tf.layers.cost counts SpectralNorm among the wrappers."
        )
    counted = isinstance(layer, _TRANSPOSED + _CONVOLUTIONS + _ELEMENTWISE + (keras.layers.Dense,))
    if not counted and _holds_weights(layer, shape):
        raise ValueError(
            f"No multiply-add rule for layer '{layer.name}' ({type(layer).__name__}); "
            "vidgen_tf.layers.cost counts ConvND, ConvNDTranspose, Dense, SpectralNorm, recurrent "
            "cells and layers, the zoo's blocks, keras.Sequential and layers without weights."
        )
    output_shape = tuple(layer.compute_output_shape((1,) + shape))[1:]
    if any(d is None for d in output_shape):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) gives an output shape {output_shape} "
            f"with unknown sizes for the input shape {shape}."
        )
    input_channels = shape[-1] if shape else 1
    if isinstance(layer, _TRANSPOSED):
        count = math.prod(shape) * math.prod(layer.kernel_size) * layer.filters
    elif isinstance(layer, _CONVOLUTIONS):
        groups = getattr(layer, "groups", 1)
        count = math.prod(output_shape) * math.prod(layer.kernel_size) * (input_channels // groups)
    elif isinstance(layer, keras.layers.Dense):
        count = math.prod(shape) * layer.units
    else:  # elementwise normalisations and layers without weights
        count = 0
    return int(count), output_shape


def multiply_adds_by_layer(stack, input_shape):
    """Per-layer multiply-adds of a `keras.Sequential` stack on one example.

    Args:
        stack: keras.Sequential. The stack to count.
        input_shape: tuple of ints. Shape of one input example, without the
            batch axis.

    Returns:
        A list of `(layer_name, multiply_adds, output_shape)`, in order.
    """
    if not isinstance(stack, keras.Sequential):
        raise ValueError(f"`stack` must be a keras.Sequential, got {type(stack).__name__}.")
    shape = _check_shape(input_shape)
    rows = []
    for layer in stack.layers:
        count, shape = layer_multiply_adds(layer, shape)
        rows.append((layer.name, count, shape))
    return rows


def multiply_adds(stack, input_shape):
    """Total multiply-adds of a layer or `keras.Sequential` stack on one example.

    Args:
        stack: keras.layers.Layer. A `keras.Sequential` or a single layer.
        input_shape: tuple of ints. Shape of one input example, without the
            batch axis.

    Returns:
        The int count.

    Example:

    ```python
    model = vidgen_tf.build("mocogan")
    multiply_adds(model.discriminators["video"], (16, 64, 64, 3))  # per clip
    ```
    """
    return layer_multiply_adds(stack, input_shape)[0]


# ------------------------------------------------------------ traced counts

# Layers counted at the call they receive, whatever they hold inside: a
# wrapper computes with its inner layer's weights, a recurrent layer runs its
# cell once per step (inside a loop the trace sees once), and the projection
# head computes with its embedding directly.
_COUNTED_WHOLE = (SpectralNorm, keras.layers.RNN, ProjectionHead)
# One patch at a time: the counter replaces the `call` of the layers it watches.
_TRACE_LOCK = threading.Lock()


def _own_weights(layer):
    return list(getattr(layer, "_trainable_variables", [])) + list(getattr(layer, "_non_trainable_variables", []))


def _first_tensor_shape(layer, args, kwargs):
    inputs = args[0] if args else kwargs.get("inputs", kwargs.get("sequences"))
    if inputs is None or not hasattr(inputs, "shape"):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) was called on "
            f"{type(inputs).__name__}, not a tensor: its multiply-adds cannot be read from a shape."
        )
    return tuple(inputs.shape)


@contextlib.contextmanager
def _recording(roots, calls, counted_elsewhere):
    layers = {}
    for root in roots:
        for layer in root._flatten_layers(include_self=True, recursive=True):
            layers[id(layer)] = layer
    skip = {id(layer) for layer in counted_elsewhere}
    state = threading.local()
    state.depth = 0
    graphs = []

    def wrap(layer, call):
        def recorded(*args, **kwargs):
            # Read at the call: Keras builds a layer (making its weights) just before.
            counted_here = isinstance(layer, _COUNTED_WHOLE) or bool(_own_weights(layer))
            depth = getattr(state, "depth", 0)
            if depth == 0 and counted_here and id(layer) not in skip:
                in_nested_graph = tf.compat.v1.get_default_graph() is not graphs[-1]
                calls.append((layer, _first_tensor_shape(layer, args, kwargs), in_nested_graph))
            # Inside a layer counted whole, its inner calls are part of its count.
            state.depth = depth + (1 if counted_here else 0)
            try:
                return call(*args, **kwargs)
            finally:
                state.depth = depth

        return recorded

    with _TRACE_LOCK:
        patched = []
        try:
            for layer in layers.values():
                object.__setattr__(layer, "call", wrap(layer, layer.call))
                patched.append(layer)
            yield graphs
        finally:
            for layer in patched:
                object.__delattr__(layer, "call")


def call_multiply_adds_by_layer(function, roots, counted_elsewhere=()):
    """Multiply-adds of every layer call `function()` makes, from a trace of it.

    `function` is traced once as a `tf.function` (no arithmetic runs), with
    every layer of `roots` watched. Each call of a layer that holds weights
    (or of a `SpectralNorm`, recurrent layer or `ProjectionHead`, counted
    whole) is counted by `layer_multiply_adds` on the shape it received, times
    its leading (batch) axis: so call `function` on a batch of one clip to
    count per clip. Calls nested inside a layer counted whole are part of its
    count.

    Args:
        function: callable with no arguments, calling the layers of `roots`
            on tensors of fully known shape (make its inputs inside it, e.g.
            `model.sample_noise(1, seed)`).
        roots: sequence of keras.layers.Layer. Layers (models) whose layers
            (recursively) are watched; calls of other layers are not counted.
        counted_elsewhere: sequence of keras.layers.Layer. Layers the caller
            counts itself (e.g. a cell stepped inside a `tf.scan`); their calls
            are not counted here. Defaults to ().

    Returns:
        A list of `(layer_path, multiply_adds)`, one per counted call, in call order.

    Raises:
        ValueError: naming the layer, for a call whose shape is not fully
            known, a call inside a loop, condition or inner `tf.function` (the
            trace sees a loop's body once; pass the layer in
            `counted_elsewhere` and count it yourself), or a layer without a
            multiply-add rule.
    """
    calls = []
    with _recording(roots, calls, counted_elsewhere) as graphs:

        @tf.function(autograph=False)
        def traced():
            # tf.function traces twice when the first trace creates variables
            # (unbuilt layers): keep the last trace's calls only.
            del calls[:]
            graphs[:] = [tf.compat.v1.get_default_graph()]
            function()

        traced.get_concrete_function()
    rows = []
    for layer, shape, in_nested_graph in calls:
        name = f"'{layer.path}' ({type(layer).__name__})"
        if in_nested_graph:
            raise ValueError(
                f"Layer {name} is called inside a loop, condition or inner tf.function of the traced "
                "function: the trace sees that body once, not once per iteration. Count it yourself "
                "and pass it in `counted_elsewhere`."
            )
        if not shape or any(d is None for d in shape):
            raise ValueError(
                f"Layer {name} was called on a tensor of shape {shape}, not fully known: trace "
                "a function whose inputs have static shapes (e.g. a batch of one clip)."
            )
        rows.append((layer.path, shape[0] * layer_multiply_adds(layer, shape[1:])[0]))
    return rows


def call_multiply_adds(function, roots, counted_elsewhere=()):
    """Total multiply-adds of the layer calls `function()` makes (see `call_multiply_adds_by_layer`).

    Example:

    ```python
    model = vidgen_tf.build("dcgan", num_frames=4, height=16, width=16)
    # One generated clip: the generator's layers on 4 frames.
    call_multiply_adds(lambda: model.generate_from_noise(model.sample_noise(1, [0, 0])), [model])
    ```
    """
    return sum(count for _, count in call_multiply_adds_by_layer(function, roots, counted_elsewhere))
