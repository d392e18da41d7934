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


def _op_types(norm, x, **call):
    graph = tf.function(lambda t: norm(t, training=True, **call)).get_concrete_function(
        tf.TensorSpec(x.shape, x.dtype)).graph
    return {op.type for op in graph.get_operations()}


def _train_call(norm, x, weights):
    """Outputs, gradients of a weighted sum wrt the input, gamma and beta, and the moving stats."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = norm(x, training=True)
        loss = tf.reduce_sum(y * weights)
    grads = tape.gradient(loss, [x, *norm.trainable_variables])
    return [y, *grads, norm.moving_mean, norm.moving_variance]


@pytest.mark.parametrize("shape", [(6, 5, 7, 8), (4, 3, 5, 6, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_the_fused_kernel_is_the_same_function_as_keras_two_pass_moments(shape, affine):
    x = (3.0 + 2.0 * RNG.normal(size=shape)).astype("float32")
    weights = RNG.normal(size=shape).astype("float32")
    kwargs = dict(momentum=0.9, epsilon=1e-5, center=affine, scale=affine)
    fused, plain = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    for norm in (fused, plain):
        norm.build(shape)
        if affine:
            norm.gamma.assign(RNG.uniform(0.5, 1.5, shape[-1]).astype("float32"))
            norm.beta.assign(RNG.normal(size=shape[-1]).astype("float32"))
    plain.set_weights(fused.get_weights())
    assert "FusedBatchNormV3" in _op_types(fused, x)
    assert "FusedBatchNormV3" not in _op_types(plain, x)
    for ours, theirs in zip(_train_call(fused, x, weights), _train_call(plain, x, weights)):
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())


def test_the_fused_kernel_keeps_a_small_variance_beside_a_large_mean():
    x = (1000.0 + 0.01 * RNG.normal(size=(16, 4, 4, 8))).astype("float32")
    ours = BatchNormalization(epsilon=1e-8)(x, training=True).numpy()
    np.testing.assert_allclose(ours.std(axis=(0, 1, 2)), 1.0, atol=1e-2)


def test_masks_other_axes_low_precision_and_inference_keep_keras_path():
    x = RNG.normal(size=(4, 3, 3, 8)).astype("float32")
    assert "FusedBatchNormV3" not in _op_types(BatchNormalization(axis=1), x)
    assert "FusedBatchNormV3" not in _op_types(BatchNormalization(dtype="mixed_float16"), x.astype("float16"))
    assert "FusedBatchNormV3" not in _op_types(BatchNormalization(), x[:, 0, 0, :])  # 2-D
    norm = BatchNormalization()
    graph = tf.function(lambda t: norm(t, training=False)).get_concrete_function(tf.TensorSpec(x.shape)).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
