"""Conv3DDiscriminator: shapes, the linear head, label rules, mixed precision, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.layers.video_discriminator import Conv3DDiscriminator


def _videos(batch=2, frames=4, side=16):
    return np.random.default_rng(0).uniform(-1, 1, (batch, frames, side, side, 1)).astype("float32")


def test_halves_every_axis_and_scores_each_clip():
    critic = Conv3DDiscriminator((4, 8))
    logits = critic(_videos())
    assert logits.shape == (2,) and logits.dtype == tf.float32
    # 4x16x16 -> 2x8x8 -> 1x4x4 with 8 channels.
    assert critic.feature_shape == (1, 4, 4, 8)
    assert critic.blocks[0].norm is None  # DCGAN rule: no normalisation on the first layer
    assert isinstance(critic.blocks[1].norm, keras.layers.BatchNormalization)


def test_head_is_the_projection_of_the_flattened_features():
    critic = Conv3DDiscriminator((4, 8), num_classes=3)
    videos, labels = _videos(), np.array([2, 0])
    logits = critic(videos, labels=labels).numpy()
    features = critic.features(videos).numpy()  # (2, 1 * 4 * 4 * 8)
    assert features.shape == (2, 128)
    kernel, bias = critic.head.linear.kernel.numpy(), critic.head.linear.bias.numpy()
    embedding = critic.head.embedding.numpy()
    expected = features @ kernel[:, 0] + bias[0] + np.sum(embedding[labels] * features, axis=1)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`filters`"):
        Conv3DDiscriminator(())
    with pytest.raises(ValueError, match="`num_classes`"):
        Conv3DDiscriminator((4,), num_classes=-2)
    with pytest.raises(ValueError, match="known time, height, width"):
        Conv3DDiscriminator((4,)).build((None, None, 16, 16, 1))
    with pytest.raises(ValueError, match="labels are required"):
        Conv3DDiscriminator((4,), num_classes=2)(_videos())


def test_conditional_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        critic = Conv3DDiscriminator((4, 8), num_classes=2)
        logits = critic(_videos(), labels=np.array([0, 1]))
        assert critic.blocks[1].compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert logits.dtype == tf.float32
    assert np.all(np.isfinite(logits.numpy()))


def test_config_round_trip_rebuilds_the_same_function():
    critic = Conv3DDiscriminator((4, 8), num_classes=2, norm="layer")
    videos, labels = _videos(), np.array([1, 0])
    critic(videos, labels=labels)
    clone = Conv3DDiscriminator.from_config(critic.get_config())
    clone.build(videos.shape)
    clone.set_weights(critic.get_weights())
    assert clone.get_config() == critic.get_config()
    np.testing.assert_allclose(clone(videos, labels=labels).numpy(), critic(videos, labels=labels).numpy(), atol=1e-6)


def test_same_padding_is_the_authors_padding_1_and_the_head_a_full_extent_convolution():
    # VGAN (Torch) and TGAN (Chainer) write every block as a 4x4x4 convolution of stride 2 with
    # padding 1, and the score as a convolution whose kernel covers the whole last map. For even
    # sizes TensorFlow's "same" pads 1 before and 1 after, so the blocks are the same function.
    critic = Conv3DDiscriminator((4, 8), norm="none")
    videos = _videos(frames=8)
    logits = critic(videos).numpy()
    x = tf.constant(videos)
    for block in critic.blocks:
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]])
        x = tf.nn.conv3d(padded, block.conv.kernel, strides=[1, 2, 2, 2, 1], padding="VALID") + block.conv.bias
        x = tf.nn.leaky_relu(x, alpha=0.2)
    assert x.shape == (2, 2, 4, 4, 8)
    np.testing.assert_allclose(critic.features(videos).numpy(), tf.reshape(x, [2, -1]).numpy(), rtol=1e-5, atol=1e-5)
    kernel = tf.reshape(critic.head.linear.kernel, (2, 4, 4, 8, 1))
    score = tf.nn.conv3d(x, kernel, strides=[1] * 5, padding="VALID") + critic.head.linear.bias
    assert score.shape == (2, 1, 1, 1, 1)
    np.testing.assert_allclose(logits, tf.reshape(score, [-1]).numpy(), rtol=1e-5, atol=1e-5)
