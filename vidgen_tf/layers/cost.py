"""Multiply-adds of convolution and dense stacks, from layer shapes alone.

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
- `keras.Sequential`: the sum over its layers, each on the shape the one
  before produced.

Biases, activations, padding, reshapes and the elementwise normalisations
(batch, layer, group) count 0. Any other layer that holds weights raises, so a
total never silently leaves out a layer it cannot count.
"""

import math

import keras

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
_ELEMENTWISE = (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.GroupNormalization)


def _check_shape(input_shape):
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(
            "`input_shape` must be the shape of one example (no batch axis) as positive "
            f"integers, e.g. (16, 64, 64, 3); got {input_shape!r}."
        )
    return shape


def _holds_weights(layer, shape):
    if layer.built:
        return bool(layer.weights)
    # An unbuilt layer has no weights yet: build a copy to see whether it would.
    copy = type(layer).from_config(layer.get_config())
    copy.build((1,) + shape)
    return bool(copy.weights)


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
    if isinstance(layer, keras.Sequential):
        total = 0
        for inner in layer.layers:
            count, shape = layer_multiply_adds(inner, shape)
            total += count
        return total, shape
    # SpectralNorm and other wrappers compute with their inner layer's arithmetic.
    if isinstance(layer, keras.layers.Wrapper):
        return layer_multiply_adds(layer.layer, shape)
    output_shape = tuple(layer.compute_output_shape((1,) + shape))[1:]
    if any(d is None for d in output_shape):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) gives an output shape {output_shape} "
            f"with unknown sizes for the input shape {shape}."
        )
    input_channels = shape[-1]
    if isinstance(layer, _TRANSPOSED):
        count = math.prod(shape) * math.prod(layer.kernel_size) * layer.filters
    elif isinstance(layer, _CONVOLUTIONS):
        groups = getattr(layer, "groups", 1)
        count = math.prod(output_shape) * math.prod(layer.kernel_size) * (input_channels // groups)
    elif isinstance(layer, keras.layers.Dense):
        count = math.prod(shape) * layer.units
    elif isinstance(layer, _ELEMENTWISE) or not _holds_weights(layer, shape):
        count = 0
    else:
        raise ValueError(
            f"No multiply-add rule for layer '{layer.name}' ({type(layer).__name__}); "
            "vidgen_tf.layers.cost counts ConvND, ConvNDTranspose, Dense, SpectralNorm, "
            "keras.Sequential and layers without weights."
        )
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
