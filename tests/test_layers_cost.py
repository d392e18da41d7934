"""vidgen_tf.layers.cost: multiply-adds from layer shapes, against hand counts."""

import keras
import pytest

from vidgen_tf.layers import Conv3D, SpectralNorm
from vidgen_tf.layers.cost import layer_multiply_adds, multiply_adds, multiply_adds_by_layer


def test_conv3d_matches_a_hand_count():
    # (6, 10, 10, 3) -> valid (3, 4, 4) kernel, stride (1, 2, 2): (4, 4, 4, 8) outputs,
    # each a sum of 3 * 4 * 4 * 3 = 144 products: 4 * 4 * 4 * 8 * 144 = 73,728.
    layer = Conv3D(8, (3, 4, 4), strides=(1, 2, 2), padding="valid")
    assert layer_multiply_adds(layer, (6, 10, 10, 3)) == (73_728, (4, 4, 4, 8))


def test_other_layers_match_hand_counts():
    # Dense on 5 positions of 7 features: 5 * 7 * 3.
    assert layer_multiply_adds(keras.layers.Dense(3), (5, 7)) == (105, (5, 3))
    # Transposed 2-D, (3, 3, 6) in, kernel 4x4, 2 out: 3 * 3 * 6 * 16 * 2.
    transposed = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same")
    assert layer_multiply_adds(transposed, (3, 3, 6)) == (1_728, (6, 6, 2))
    # Grouped 2-D convolution: each output sees 6 / 2 input channels.
    grouped = keras.layers.Conv2D(4, 3, groups=2)
    assert layer_multiply_adds(grouped, (5, 5, 6)) == (3 * 3 * 4 * 9 * 3, (3, 3, 4))
    # Spectral normalisation computes with the wrapped layer's arithmetic.
    assert layer_multiply_adds(SpectralNorm(keras.layers.Dense(3)), (7,)) == (21, (3,))


def test_a_stack_sums_its_layers_on_the_shapes_they_see():
    stack = keras.Sequential([
        keras.layers.ZeroPadding2D(1),
        keras.layers.Conv2D(4, 4, strides=2, use_bias=False),  # (8, 8, 3) -> pad (10, 10) -> (4, 4, 4)
        keras.layers.BatchNormalization(),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Flatten(),
        keras.layers.Dense(1),
    ])
    rows = multiply_adds_by_layer(stack, (8, 8, 3))
    assert [count for _, count, _ in rows] == [0, 4 * 4 * 4 * 48, 0, 0, 0, 64]
    assert rows[1][2] == (4, 4, 4)
    assert multiply_adds(stack, (8, 8, 3)) == 4 * 4 * 4 * 48 + 64


def test_layers_it_cannot_count_and_bad_shapes_are_named():
    with pytest.raises(ValueError, match="No multiply-add rule for layer 'motion'.*GRU"):
        layer_multiply_adds(keras.layers.GRU(4, name="motion"), (3, 2))  # unbuilt: no weights yet
    with pytest.raises(ValueError, match="one example.*got \\(None, 8\\)"):
        multiply_adds(keras.layers.Dense(2), (None, 8))
    with pytest.raises(ValueError, match="must be a keras.Sequential"):
        multiply_adds_by_layer(keras.layers.Dense(2), (8,))
