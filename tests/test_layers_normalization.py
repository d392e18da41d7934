"""vidgen_tf.layers.BatchNormalization: synchronised only when replicas are."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import nn as tf_backend_nn

from vidgen_tf.layers import BatchNormalization

RNG = np.random.default_rng(0)


@pytest.fixture
def sync_calls(monkeypatch):
    """Counts calls of Keras's synchronised-moments function (all-reduces, E[x^2] - E[x]^2)."""
    calls = []
    original = tf_backend_nn._compute_moments_sync

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tf_backend_nn, "_compute_moments_sync", spy)
    return calls


@pytest.fixture
def global_calls(monkeypatch):
    """Counts calls of this layer's all-reduced (global-batch) moments."""
    calls = []
    original = BatchNormalization._global_moments

    def spy(self, inputs):
        calls.append(1)
        return original(self, inputs)

    monkeypatch.setattr(BatchNormalization, "_global_moments", spy)
    return calls


def test_one_device_takes_the_local_moments_eager_and_traced(sync_calls, global_calls):
    x = RNG.normal(size=(8, 3, 3, 4)).astype("float32")
    keras_norm = keras.layers.BatchNormalization(synchronized=True)
    keras_norm(x, training=True)
    assert len(sync_calls) == 1  # the spy sees Keras's own layer take the synchronised path
    del sync_calls[:]
    norm = BatchNormalization(synchronized=True)
    norm(x, training=True)
    tf.function(lambda t: norm(t, training=True))(x)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        tf.function(lambda t: norm(t, training=True))(x)
    assert sync_calls == [] and global_calls == []


def test_one_device_keeps_a_small_variance_beside_a_large_mean():
    # float32: E[x^2] - E[x]^2 at mean 1000, std 0.01 cancels to rounding noise
    # (E[x^2] = 1e6 has a resolution of 0.06); the two-pass moments keep it.
    x = (1000.0 + 0.01 * RNG.normal(size=(64, 8))).astype("float32")
    ours = BatchNormalization(synchronized=True, epsilon=1e-8)(x, training=True).numpy()
    np.testing.assert_allclose(ours.std(axis=0), 1.0, atol=1e-2)
    keras_sync = keras.layers.BatchNormalization(synchronized=True, epsilon=1e-8)(x, training=True).numpy()
    assert np.abs(keras_sync.std(axis=0) - 1.0).max() > 0.1


def _run_on_two_replicas(norm, x):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        norm.build((None,) + x.shape[1:])
    half = len(x) // 2
    halves = strategy.experimental_distribute_values_from_function(
        lambda context: x[half * context.replica_id_in_sync_group : half * context.replica_id_in_sync_group + half]
    )

    @tf.function
    def step(inputs):
        return strategy.run(lambda t: norm(t, training=True), args=(inputs,))

    outputs = np.concatenate([o.numpy() for o in strategy.experimental_local_results(step(halves))])
    return outputs, strategy.experimental_local_results(norm.moving_mean.value)


def test_two_replicas_normalise_with_the_global_batch_moments(sync_calls, global_calls):
    norm = BatchNormalization(momentum=0.5)
    # The replicas' halves have different means, so local moments would differ from global ones.
    x = np.concatenate([RNG.normal(-2.0, 1.0, (4, 3)), RNG.normal(3.0, 2.0, (4, 3))]).astype("float32")
    outputs, moving_means = _run_on_two_replicas(norm, x)
    mean, variance = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(outputs, (x - mean) / np.sqrt(variance + norm.epsilon), atol=1e-4)
    for replica_mean in moving_means:
        np.testing.assert_allclose(replica_mean.numpy(), 0.5 * mean, atol=1e-5)
    assert global_calls and sync_calls == []


def test_two_replicas_keep_a_small_variance_beside_a_large_mean():
    x = (1000.0 + 0.01 * RNG.normal(size=(64, 8))).astype("float32")
    outputs, _ = _run_on_two_replicas(BatchNormalization(epsilon=1e-8), x)
    np.testing.assert_allclose(outputs.std(axis=0), 1.0, atol=1e-2)


def test_two_replicas_give_one_devices_input_gradient():
    x = np.concatenate([RNG.normal(-1.0, 1.0, (4, 3)), RNG.normal(2.0, 3.0, (4, 3))]).astype("float32")
    weights = RNG.normal(size=(8, 3)).astype("float32")
    norm = BatchNormalization()
    norm.build((None, 3))

    def gradient(inputs, w):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(norm(inputs, training=True) * w)
        return tape.gradient(loss, inputs)

    expected = gradient(tf.constant(x), tf.constant(weights)).numpy()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    halves = [
        strategy.experimental_distribute_values_from_function(lambda context, a=a: a[4 * context.replica_id_in_sync_group :][:4])
        for a in (x, weights)
    ]
    got = tf.function(lambda a, w: strategy.run(gradient, args=(a, w)))(*halves)
    # Each replica's loss depends on the other's inputs through the global moments;
    # the all-reduce's gradient sums both replicas' contributions, as one device.
    np.testing.assert_allclose(np.concatenate([g.numpy() for g in strategy.experimental_local_results(got)]),
                               expected, atol=1e-5)


def test_same_weights_and_config_as_keras_and_round_trips(tmp_path):
    ours = BatchNormalization(momentum=0.9, epsilon=1e-5)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True)
    ours.build((None, 5))
    theirs.build((None, 5))
    assert [(w.path.split("/")[-1], w.shape) for w in ours.weights] == [
        (w.path.split("/")[-1], w.shape) for w in theirs.weights
    ]
    assert ours.get_config() == {**theirs.get_config(), "name": ours.name}
    assert BatchNormalization().synchronized and not BatchNormalization(synchronized=False).synchronized
    model = keras.Sequential([keras.Input((5,)), BatchNormalization(momentum=0.9)])
    model.layers[0].set_weights([np.full(5, v, "float32") for v in (2.0, 1.0, 0.5, 4.0)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is BatchNormalization and loaded.layers[0].momentum == 0.9
    x = RNG.normal(size=(3, 5)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_sampling_blocks_use_this_layer():
    from vidgen_tf.layers import Down2D, Down3D, Up2D, Up3D

    for block in (Down2D(4), Down3D(4), Up2D(4), Up3D(4)):
        assert type(block.norm) is BatchNormalization and block.norm.synchronized
