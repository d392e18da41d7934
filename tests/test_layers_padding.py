"""vidgen_tf.layers.ZeroPadding3D: Keras's zero padding without a Pad op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.layers import Conv3D, ZeroPadding3D


@pytest.mark.parametrize("padding", [1, ((0, 0), (1, 1), (1, 1)), ((2, 1), (0, 3), (1, 0))])
def test_same_output_and_config_as_keras(padding):
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5, 2)).astype("float32")
    ours, theirs = ZeroPadding3D(padding), keras.layers.ZeroPadding3D(padding)
    np.testing.assert_array_equal(ours(x).numpy(), theirs(x).numpy())
    assert ours.get_config() == {**theirs.get_config(), "name": ours.name}
    assert ours.compute_output_shape((None, 3, 4, 5, 2)) == theirs.compute_output_shape((None, 3, 4, 5, 2))


def test_a_training_step_graph_has_no_pad_op():
    # A Pad feeding a strided Conv3D whose filter gradient is taken breaks
    # TensorFlow's oneDNN remapper (module docstring).
    stack = keras.Sequential([
        ZeroPadding3D(((0, 0), (1, 1), (1, 1))),
        Conv3D(4, (2, 4, 4), strides=(1, 2, 2), padding="valid", use_bias=False, fast_path=False),
    ])
    stack.build((None, None, 8, 8, 3))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(stack(x) ** 2)
        return tape.gradient(loss, stack.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec([2, 4, 8, 8, 3])).graph
    assert "Conv3DBackpropFilterV2" in {op.type for op in graph.get_operations()}
    assert not [op.type for op in graph.get_operations() if op.type in ("Pad", "PadV2")]


def test_dynamic_frame_count_and_round_trip(tmp_path):
    model = keras.Sequential([keras.Input((None, 4, 4, 1)), ZeroPadding3D(((1, 2), (0, 0), (1, 1)))])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is ZeroPadding3D
    assert loaded(np.ones((1, 3, 4, 4, 1), "float32")).shape == (1, 6, 4, 6, 1)
    with pytest.raises(ValueError, match="channels_last only"):
        ZeroPadding3D(1, data_format="channels_first")


def test_a_gradient_penalty_s_second_order_graph_has_no_pad_op_and_keras_s_values():
    """R1's gradient of a gradient: the padding's crop is differentiated back into concatenated zeros."""
    ours, theirs = ZeroPadding3D(((1, 0), (1, 2), (0, 1))), keras.layers.ZeroPadding3D(((1, 0), (1, 2), (0, 1)))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 3, 4, 5, 2)).astype("float32"))
    weight = tf.constant(rng.normal(size=(2, 4, 7, 6, 2)).astype("float32"))

    @tf.function
    def penalty_gradient(x, layer):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                score = tf.reduce_sum(layer(x) ** 2 * weight)
            first = inner.gradient(score, x)
            penalty = tf.reduce_sum(first ** 2)
        return first, outer.gradient(penalty, x)

    graph = penalty_gradient.get_concrete_function(x, ours).graph
    assert not [op.type for op in graph.get_operations() if op.type in ("Pad", "PadV2")]
    for a, b in zip(penalty_gradient(x, ours), penalty_gradient(x, theirs)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
