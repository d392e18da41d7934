"""The fast 3-D convolutions compute exactly what Keras's layers compute."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.layers import conv3d


CASES = list(itertools.product([(4, 4, 4), (3, 3, 3), (1, 4, 2)], [(1, 2, 2), (2, 2, 2), (2, 1, 3)], ["same", "valid"]))


@pytest.mark.parametrize("kernel_size,strides,padding", CASES)
def test_conv3d_matches_keras_values_and_gradients(kernel_size, strides, padding):
    reference = keras.layers.Conv3D(5, kernel_size, strides=strides, padding=padding)
    fast = conv3d.Conv3D(5, kernel_size, strides=strides, padding=padding, fast_path=True)
    x = tf.random.stateless_normal((2, 7, 9, 8, 3), [1, 2])
    reference.build(x.shape)
    fast.build(x.shape)
    fast.set_weights(reference.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        want, got = reference(x), fast(x)
        loss_want, loss_got = tf.reduce_sum(want**2), tf.reduce_sum(got**2)
    assert got.shape == want.shape == fast.compute_output_shape(x.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)
    for a, b in zip(tape.gradient(loss_got, [x, fast.kernel]), tape.gradient(loss_want, [x, reference.kernel])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kernel_size,strides,padding", CASES)
def test_conv3d_transpose_matches_keras(kernel_size, strides, padding):
    reference = keras.layers.Conv3DTranspose(4, kernel_size, strides=strides, padding=padding)
    fast = conv3d.Conv3DTranspose(4, kernel_size, strides=strides, padding=padding, fast_path=True)
    x = tf.random.stateless_normal((2, 3, 5, 4, 6), [3, 4])
    reference.build(x.shape)
    fast.build(x.shape)
    fast.set_weights([w + 0.1 for w in reference.get_weights()])
    reference.set_weights(fast.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        want, got = reference(x), fast(x)
        loss_want, loss_got = tf.reduce_sum(want**2), tf.reduce_sum(got**2)
    assert got.shape == want.shape == fast.compute_output_shape(x.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)
    for a, b in zip(tape.gradient(loss_got, [x, fast.kernel]), tape.gradient(loss_want, [x, reference.kernel])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)


def test_unknown_lengths_inside_a_function():
    fast = conv3d.Conv3D(2, 4, strides=(2, 2, 2), padding="same", fast_path=True)
    up = conv3d.Conv3DTranspose(2, 4, strides=(2, 2, 2), padding="same", fast_path=True)
    reference_down = keras.layers.Conv3D(2, 4, strides=(2, 2, 2), padding="same")
    reference_up = keras.layers.Conv3DTranspose(2, 4, strides=(2, 2, 2), padding="same")
    for layer, ref in ((fast, reference_down), (up, reference_up)):
        layer.build((None, None, 8, 8, 1))
        ref.build((None, None, 8, 8, 1))
        ref.set_weights(layer.get_weights())

    @tf.function(input_signature=[tf.TensorSpec([None, None, 8, 8, 1])])
    def both(x):
        return fast(x), up(x)

    for frames in (1, 5, 6):
        x = tf.random.stateless_normal((1, frames, 8, 8, 1), [frames, 0])
        down, upsampled = both(x)
        np.testing.assert_allclose(down.numpy(), reference_down(x).numpy(), atol=1e-4)
        np.testing.assert_allclose(upsampled.numpy(), reference_up(x).numpy(), atol=1e-4)


def test_config_round_trip_and_serialisation(tmp_path):
    inputs = keras.Input((4, 8, 8, 2))
    outputs = conv3d.Conv3DTranspose(3, 4, strides=2, padding="same")(conv3d.Conv3D(3, 4, strides=2, padding="same")(inputs))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(2, 4, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    assert isinstance(loaded.layers[1], conv3d.Conv3D)


def test_automatic_choice_follows_the_measured_rule():
    small = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same")
    wide = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same")
    large = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same")
    assert conv3d._use_fast_path(small, tf.zeros((1, 4, 16, 16, 3)))
    assert not conv3d._use_fast_path(wide, tf.zeros((1, 4, 16, 16, 64)))
    assert not conv3d._use_fast_path(large, tf.zeros((1, 4, 64, 64, 16)))
    forced = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same", fast_path=False)
    assert not conv3d._use_fast_path(forced, tf.zeros((1, 4, 16, 16, 3)))
    assert conv3d.Conv3D.from_config(forced.get_config()).fast_path is False
