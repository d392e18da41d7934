"""vidgen_tf.layers.cost: multiply-adds from layer shapes, against hand counts."""

import keras
import pytest
import tensorflow as tf

from vidgen_tf.layers import (
    Conv3D, Conv3DDiscriminator, ConvGRU2D, ConvGRU2DCell, Down2D, LabelEmbedding, ProjectionHead, SpectralNorm, Up3D,
)
from vidgen_tf.layers.cost import (
    call_multiply_adds, call_multiply_adds_by_layer, layer_multiply_adds, multiply_adds, multiply_adds_by_layer,
)


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
    with pytest.raises(ValueError, match="No multiply-add rule for layer 'mix'.*EinsumDense"):
        layer_multiply_adds(keras.layers.EinsumDense("ab,bc->ac", 4, name="mix"), (3,))  # unbuilt: no weights yet
    with pytest.raises(ValueError, match="No multiply-add rule for layer 'both_ways'.*Bidirectional"):
        layer_multiply_adds(keras.layers.Bidirectional(keras.layers.GRU(2), name="both_ways"), (3, 2))
    with pytest.raises(ValueError, match="one example.*got \\(None, 8\\)"):
        multiply_adds(keras.layers.Dense(2), (None, 8))
    with pytest.raises(ValueError, match="must be a keras.Sequential"):
        multiply_adds_by_layer(keras.layers.Dense(2), (8,))


def test_recurrent_layers_match_hand_counts():
    # GRU: 3 gates of (inputs + units) x units per step; 3 steps of 4 features, 5 units.
    assert layer_multiply_adds(keras.layers.GRU(5), (3, 4)) == (3 * 3 * 9 * 5, (5,))
    assert layer_multiply_adds(keras.layers.GRU(5, return_sequences=True), (3, 4)) == (405, (3, 5))
    # LSTM: 4 gates; one cell step on 2 features, 3 units.
    assert layer_multiply_adds(keras.layers.LSTMCell(3), (2,)) == (4 * 5 * 3, (3,))
    assert layer_multiply_adds(keras.layers.SimpleRNN(3), (4, 2)) == (4 * 5 * 3, (3,))
    # ConvGRU on 4x4 frames of 1 channel, 2 filters, 3x3 kernels, per step: the input
    # convolution to 6 channels (16 * 6 * 9 * 1), the gates to 4 from the state (16 * 4 * 9 * 2)
    # and the candidate to 2 (16 * 2 * 9 * 2); 2 steps.
    step = 16 * 6 * 9 + 16 * 4 * 9 * 2 + 16 * 2 * 9 * 2
    assert layer_multiply_adds(ConvGRU2D(2), (2, 4, 4, 1)) == (2 * step, (2, 4, 4, 2))
    assert layer_multiply_adds(ConvGRU2DCell(2, spectral_norm=True), (4, 4, 1)) == (step, (4, 4, 2))


def test_the_zoos_blocks_match_hand_counts():
    # Down2D: a 4x4 stride-2 convolution, (8, 8, 3) -> (4, 4, 4): 16 * 4 * 16 * 3.
    assert layer_multiply_adds(Down2D(4), (8, 8, 3)) == (3_072, (4, 4, 4))
    assert layer_multiply_adds(Down2D(4, spectral_norm=True, norm="none"), (8, 8, 3)) == (3_072, (4, 4, 4))
    # Up3D upsampling space only: 2 * 4 * 4 inputs of 3 channels, 4x4x4 kernel, 2 outputs.
    assert layer_multiply_adds(Up3D(2, strides=(1, 2, 2)), (2, 4, 4, 3)) == (32 * 3 * 64 * 2, (2, 8, 8, 2))
    # Projection head on 10 features: the linear unit, plus the class projection.
    assert layer_multiply_adds(ProjectionHead(0), (10,)) == (10, ())
    assert layer_multiply_adds(ProjectionHead(3, spectral_norm=True), (10,)) == (20, ())
    # Conv3DDiscriminator (2, 4) on (4, 8, 8, 1): (2, 4, 4, 2) from 32 * 2 * 64 * 1, then
    # (1, 2, 2, 4) from 4 * 4 * 64 * 2, then the head on 16 features.
    assert layer_multiply_adds(Conv3DDiscriminator((2, 4)), (4, 8, 8, 1)) == (4_096 + 2_048 + 16, ())
    # Look-ups multiply nothing; a label is a scalar example.
    assert layer_multiply_adds(LabelEmbedding(5, 3), ()) == (0, (3,))
    assert layer_multiply_adds(keras.layers.Embedding(5, 3), (2,)) == (0, (2, 3))


class _Folds(keras.layers.Layer):
    """Clips (B, T, F) -> each frame through a dense layer, frames folded into the batch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2, name="frame_dense")

    def call(self, clips):
        return self.dense(tf.reshape(clips, [-1, clips.shape[-1]]))


def test_a_traced_function_is_counted_on_the_shapes_its_calls_see():
    folds = _Folds(name="folds")
    # One clip of 3 frames, 5 features: the dense layer sees 3 examples, 3 * 5 * 2.
    rows = call_multiply_adds_by_layer(lambda: folds(tf.zeros([1, 3, 5])), [folds])
    assert rows == [("folds/frame_dense", 30)]
    # Two calls count twice; a spectral-norm wrapper counts its inner layer once per call.
    wrapped = SpectralNorm(keras.layers.Dense(4), name="sn")
    assert call_multiply_adds(lambda: [wrapped(tf.zeros([2, 3])) for _ in range(2)], [wrapped]) == 2 * 2 * 12


def test_traced_calls_it_cannot_count_are_named():
    cell = keras.layers.LSTMCell(3, name="looped")
    cell.build((None, 2))

    def scanned():
        states = [tf.zeros([1, 3]), tf.zeros([1, 3])]
        return tf.scan(lambda carry, x: cell(x, carry)[1], tf.zeros([4, 1, 2]), initializer=states)

    with pytest.raises(ValueError, match="'looped' \\(LSTMCell\\) is called inside a loop"):
        call_multiply_adds(scanned, [cell])
    assert call_multiply_adds(scanned, [cell], counted_elsewhere=[cell]) == 0

    mix = keras.layers.EinsumDense("ab,bc->ac", 4, name="mix")
    with pytest.raises(ValueError, match="No multiply-add rule for layer 'mix'.*EinsumDense"):
        call_multiply_adds(lambda: mix(tf.zeros([1, 3])), [mix])
    dense = keras.layers.Dense(2, name="unknown_batch")

    def masked():
        x = tf.zeros([2, 3])
        return dense(tf.boolean_mask(x, x[:, 0] > 0))  # (None, 3)

    with pytest.raises(ValueError, match="'unknown_batch'.*shape \\(None, 3\\), not fully known"):
        call_multiply_adds(masked, [dense])
