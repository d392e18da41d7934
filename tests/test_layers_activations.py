"""vidgen_tf.layers.LeakyReLU: Keras's activation, differentiated through its output."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.layers import LeakyReLU, leaky_relu


def test_values_gradients_of_two_orders_and_config_are_keras_s():
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32"))
    x = tf.tensor_scatter_nd_update(x, [[0, 0, 0]], [0.0])  # the kink: slope on both sides' convention

    def derivatives(activation):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = activation(x)
                score = tf.reduce_sum(y ** 2 * tf.sin(x))
            first = inner.gradient(score, x)
            second = tf.reduce_sum(first ** 2)
        return y, first, outer.gradient(second, x)

    for ours, theirs in zip(derivatives(LeakyReLU(0.2)), derivatives(keras.layers.LeakyReLU(0.2))):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    layer = LeakyReLU(0.2)
    assert layer.get_config() == {**keras.layers.LeakyReLU(0.2).get_config(), "name": layer.name}
    with pytest.raises(ValueError, match=r"negative_slope must be in \(0, 1\), got 1.5"):
        leaky_relu(x, 1.5)


def test_the_gradient_reads_the_output_not_the_input():
    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = leaky_relu(x)
        return tape.gradient(y, x)

    graph = gradient.get_concrete_function(tf.TensorSpec([4], tf.float32)).graph
    assert "LeakyRelu" in {op.type for op in graph.get_operations()}
    assert "LeakyReluGrad" not in {op.type for op in graph.get_operations()}


TRAIN_THREE = """
import json, sys
import vidgen_tf
from tests.test_keras_saving import TINY
from tests import model_harness as harness
for name, options in (("dvdgan", {}), ("video_vae", {}), ("mocogan", {"r1_weight": 1.0})):
    model = vidgen_tf.build(name, **TINY[name])
    if name == "video_vae":
        model.compile(optimizer=model.make_optimizer(1e-3), seed=0)
    else:
        model.compile(g_optimizer=model.make_optimizer(1e-4), d_optimizer=model.make_optimizer(1e-4), seed=0,
                      **options)
    model.fit(harness.video_dataset(model, num_batches=1), epochs=1, verbose=0)
print("trained")
"""


@pytest.mark.large
def test_training_dvdgan_the_video_vae_and_mocogan_with_r1_prints_no_remapper_error():
    """TensorFlow's remapper failed on Conv + BiasAdd + LeakyReLU (DVD-GAN, the video VAE) and on the
    Pad of R1's double backward (MoCoGAN), at error level on every trace; no such line now."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", CUDA_VISIBLE_DEVICES="")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", TRAIN_THREE], cwd=root, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-3000:]
    remapper = [line for line in result.stderr.splitlines() if "remapper" in line.lower()]
    assert not remapper, json.dumps(remapper[:3], indent=1)
