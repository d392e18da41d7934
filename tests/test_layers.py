"""Tests for vidgen_tf.layers: SpectralNorm, ConvGRU2D(Cell), Up/Down blocks."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.layers import (
    ConvGRU2D,
    ConvGRU2DCell,
    Down2D,
    Down3D,
    SpectralNorm,
    Up2D,
    Up3D,
)

RNG = np.random.default_rng(0)


def _random(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _kernel_matrix(layer, kernel):
    """Numpy view of a kernel as (n, out), out = output channels."""
    kernel = np.asarray(kernel)
    if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
        kernel = np.swapaxes(kernel, -1, -2)
    return kernel.reshape(-1, kernel.shape[-1])


def _top_singular_value(matrix):
    return np.linalg.svd(matrix, compute_uv=False)[0]


def _numpy_power_iteration(matrix, u, steps=1):
    for _ in range(steps):
        v = u @ matrix.T
        v /= np.linalg.norm(v)
        u = v @ matrix
        u /= np.linalg.norm(u)
    return u


WRAPPED = [
    (lambda: keras.layers.Dense(5), (2, 7)),
    (lambda: keras.layers.Conv2D(4, 3), (2, 6, 6, 3)),
    (lambda: keras.layers.Conv3D(4, 3), (2, 4, 5, 5, 3)),
    (lambda: keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same"), (2, 3, 3, 6)),
    (lambda: keras.layers.Conv3DTranspose(4, 3, strides=2, padding="same"), (2, 2, 3, 3, 6)),
]


# --------------------------------------------------------------------- SpectralNorm


@pytest.mark.parametrize("make_layer, input_shape", WRAPPED)
def test_spectral_norm_matches_svd_and_computes_with_normalized_kernel(make_layer, input_shape):
    keras.utils.set_random_seed(1)
    inner = make_layer()
    layer = SpectralNorm(inner)
    x = _random(*input_shape)
    layer(x)
    # Glorot kernels have sigma near 1: scale so normalisation visibly matters;
    # a non-zero bias makes the comparison below cover the other weights too.
    inner.kernel.assign(3.0 * inner.kernel.numpy())
    inner.bias.assign(_random(*inner.bias.shape))
    for _ in range(50):
        layer(x, training=True)

    kernel = inner.kernel.numpy()
    expected_sigma = _top_singular_value(_kernel_matrix(inner, kernel))
    np.testing.assert_allclose(float(layer.sigma()), expected_sigma, atol=1e-3)
    normalized = layer.normalized_kernel().numpy()
    np.testing.assert_allclose(_top_singular_value(_kernel_matrix(inner, normalized)), 1.0, atol=1e-3)
    # The raw kernel is untouched: it still has its own spectral norm.
    assert expected_sigma > 2.0

    # Output = the same layer type computing with W / sigma.
    plain = type(inner).from_config(inner.get_config())
    plain.build(input_shape)
    plain.set_weights([normalized, inner.bias.numpy()])
    np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), atol=1e-5)


def test_spectral_norm_u_updates_only_in_training():
    keras.utils.set_random_seed(2)
    layer = SpectralNorm(keras.layers.Dense(6))
    x = _random(3, 4)
    layer(x)
    u0 = layer.u.numpy().copy()
    inference = layer(x, training=False).numpy()
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    np.testing.assert_array_equal(layer(x).numpy(), inference)  # training=None is inference

    trained = layer(x, training=True).numpy()
    matrix = layer.layer.kernel.numpy()
    np.testing.assert_allclose(layer.u.numpy(), _numpy_power_iteration(matrix, u0), atol=1e-6)
    # Inference right after a training call uses the u that call produced.
    np.testing.assert_allclose(layer(x, training=False).numpy(), trained, atol=1e-6)
    assert not np.allclose(trained, inference)


def test_spectral_norm_power_iterations_argument():
    keras.utils.set_random_seed(3)
    layer = SpectralNorm(keras.layers.Dense(6), power_iterations=3)
    x = _random(3, 4)
    layer(x)
    u0 = layer.u.numpy().copy()
    layer(x, training=True)
    expected = _numpy_power_iteration(layer.layer.kernel.numpy(), u0, steps=3)
    np.testing.assert_allclose(layer.u.numpy(), expected, atol=1e-6)


def test_spectral_norm_gradient_and_optimizer_update_raw_kernel():
    keras.utils.set_random_seed(4)
    inner = keras.layers.Dense(3)
    layer = SpectralNorm(inner)
    x = _random(5, 4)
    layer(x)
    inner.kernel.assign(3.0 * inner.kernel.numpy())
    upstream = _random(5, 3)

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) * upstream)
    grad_kernel, grad_bias = tape.gradient(loss, [inner.kernel, inner.bias])

    # Reference: sigma = ||W u|| with u held constant, gradient through W only.
    kernel = tf.Variable(inner.kernel.numpy())
    u = tf.constant(layer.u.numpy())
    with tf.GradientTape() as tape:
        sigma = tf.norm(tf.matmul(u, kernel, transpose_b=True))
        reference_loss = tf.reduce_sum((x @ (kernel / sigma) + inner.bias.numpy()) * upstream)
    np.testing.assert_allclose(grad_kernel.numpy(), tape.gradient(reference_loss, kernel).numpy(), atol=1e-5)
    np.testing.assert_allclose(grad_bias.numpy(), upstream.sum(axis=0), atol=1e-5)

    # The optimizer steps the raw kernel: new = old - lr * grad, no normalisation written back.
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    before = inner.kernel.numpy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * upstream)
    grads = tape.gradient(loss, layer.trainable_variables)
    optimizer.apply(grads, layer.trainable_variables)
    index = [v.path for v in layer.trainable_variables].index(inner.kernel.path)
    np.testing.assert_allclose(inner.kernel.numpy(), before - 0.1 * grads[index].numpy(), atol=1e-6)
    assert _top_singular_value(inner.kernel.numpy()) > 2.0
    assert [v.path for v in layer.trainable_variables if "sn_u" in v.path] == []


def test_spectral_norm_under_tf_function_matches_eager():
    keras.utils.set_random_seed(5)
    eager = SpectralNorm(keras.layers.Conv2D(4, 3))
    x = _random(2, 8, 8, 3)
    eager(x)
    graph = SpectralNorm.from_config(eager.get_config())
    graph(x)
    graph.set_weights(eager.get_weights())
    step = tf.function(lambda x: graph(x, training=True))
    for _ in range(3):
        expected = eager(x, training=True).numpy()
        np.testing.assert_allclose(step(x).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(graph.u.numpy(), eager.u.numpy(), atol=1e-6)


def test_spectral_norm_mirrored_strategy_keeps_replicas_equal():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(6)
    with strategy.scope():
        layer = SpectralNorm(keras.layers.Conv2D(4, 3))
        layer.build((None, 8, 8, 3))
    u0 = layer.u.numpy().copy()
    x = _random(4, 8, 8, 3)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: x[2 * context.replica_id_in_sync_group : 2 * context.replica_id_in_sync_group + 2]
    )

    @tf.function
    def step(inputs):
        return strategy.run(lambda t: layer(t, training=True), args=(inputs,))

    outputs = strategy.experimental_local_results(step(per_replica))
    assert [tuple(o.shape) for o in outputs] == [(2, 6, 6, 4), (2, 6, 6, 4)]
    replicas_u = [v.numpy() for v in strategy.experimental_local_results(layer.u.value)]
    assert len(replicas_u) == 2
    expected = _numpy_power_iteration(_kernel_matrix(layer.layer, layer.layer.kernel.numpy()), u0)
    for u in replicas_u:
        np.testing.assert_allclose(u, expected, atol=1e-6)
    np.testing.assert_array_equal(replicas_u[0], replicas_u[1])


def test_spectral_norm_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(7)
        inner = keras.layers.Dense(6)
        layer = SpectralNorm(inner)
        x = _random(3, 5)
        layer.build(x.shape)
        u0 = layer.u.numpy().copy()
        y = layer(x, training=True)
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        assert layer.u.dtype == "float32" and inner.kernel.dtype == "float32"
        # bfloat16 keeps ~3 significant digits: agreement to 1e-6 needs a float32 iteration.
        expected = _numpy_power_iteration(inner.kernel.numpy(), u0)
        np.testing.assert_allclose(layer.u.numpy(), expected, atol=1e-6)
        for _ in range(50):
            layer(x, training=True)
        expected = _top_singular_value(inner.kernel.numpy())
        np.testing.assert_allclose(float(layer.sigma()), expected, atol=1e-4)

        inputs = keras.Input((5,))
        model = keras.Model(inputs, SpectralNorm(keras.layers.Dense(2))(inputs))
        assert model.output.dtype == "bfloat16"  # symbolic dtype = the real one
        assert keras.backend.standardize_dtype(model(x, training=True).dtype) == "bfloat16"

        up = Up3D(4, spectral_norm=True)
        assert keras.backend.standardize_dtype(up(_random(1, 2, 4, 4, 3), training=True).dtype) == "bfloat16"
        gru = ConvGRU2D(3, spectral_norm=True)
        assert keras.backend.standardize_dtype(gru(_random(1, 3, 4, 4, 2), training=True).dtype) == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_spectral_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`power_iterations` must be a positive integer, got 0"):
        SpectralNorm(keras.layers.Dense(2), power_iterations=0)
    with pytest.raises(ValueError, match="`layer` must be a keras.layers.Layer, got str"):
        SpectralNorm("dense")
    with pytest.raises(ValueError, match="`epsilon` must be a positive float"):
        SpectralNorm(keras.layers.Dense(2), epsilon=0.0)
    layer = SpectralNorm(keras.layers.BatchNormalization(name="bn"))
    with pytest.raises(ValueError, match="kernel.*BatchNormalization 'bn'"):
        layer(_random(2, 3))


def test_spectral_norm_save_weights_round_trip(tmp_path):
    keras.utils.set_random_seed(8)

    def make():
        inputs = keras.Input((6, 6, 3))
        return keras.Model(inputs, SpectralNorm(keras.layers.Conv2DTranspose(4, 3), name="sn")(inputs))

    model = make()
    x = _random(2, 6, 6, 3)
    for _ in range(3):
        model(x, training=True)
    model.save_weights(tmp_path / "m.weights.h5")
    other = make()
    assert not np.allclose(other.get_layer("sn").u.numpy(), model.get_layer("sn").u.numpy())
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other.get_layer("sn").u.numpy(), model.get_layer("sn").u.numpy())
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


# --------------------------------------------------------------------- ConvGRU2D


def _reference_conv_gru(cell, frames, state):
    """Numpy GRU for kernel_size=1, where every convolution is a per-pixel matmul."""

    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    w_x, b_x = cell.input_conv.kernel.numpy()[0, 0], cell.input_conv.bias.numpy()
    w_g = cell.gate_conv.kernel.numpy()[0, 0]
    w_c = cell.candidate_conv.kernel.numpy()[0, 0]
    f = cell.filters
    states = []
    for x in frames:
        proj = x @ w_x + b_x
        gates = state @ w_g
        z = sigmoid(proj[..., :f] + gates[..., :f])
        r = sigmoid(proj[..., f : 2 * f] + gates[..., f:])
        c = np.tanh(proj[..., 2 * f :] + (r * state) @ w_c)
        state = (1 - z) * state + z * c
        states.append(state)
    return np.stack(states, axis=1)


def test_conv_gru_matches_numpy_reference():
    keras.utils.set_random_seed(9)
    layer = ConvGRU2D(3, kernel_size=1)
    x = _random(2, 4, 5, 5, 2)
    state = _random(2, 5, 5, 3)
    y = layer(x, initial_state=state).numpy()
    expected = _reference_conv_gru(layer.cell, np.moveaxis(x, 1, 0), state)
    np.testing.assert_allclose(y, expected, atol=1e-5)
    zeros = layer(x).numpy()
    np.testing.assert_allclose(zeros, _reference_conv_gru(layer.cell, np.moveaxis(x, 1, 0), 0 * state), atol=1e-5)


def test_conv_gru_shapes_cell_and_unknown_frame_count():
    keras.utils.set_random_seed(10)
    layer = ConvGRU2D(5, kernel_size=(3, 1))
    x = _random(2, 4, 8, 6, 3)
    sequence = layer(x).numpy()
    assert sequence.shape == (2, 4, 8, 6, 5)
    last = ConvGRU2D.from_config({**layer.get_config(), "return_sequences": False})
    last(x)
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(last(x).numpy(), sequence[:, -1], atol=1e-6)

    # The cell, step by step, reproduces the sequence.
    state = None
    for t in range(4):
        state = layer.cell(x[:, t], state)
        np.testing.assert_allclose(state.numpy(), sequence[:, t], atol=1e-5)

    # Unknown T becomes a while loop with the same values, for any length.
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 8, 6, 3))])
    np.testing.assert_allclose(dynamic(x).numpy(), sequence, atol=1e-5)
    np.testing.assert_allclose(dynamic(x[:, :1]).numpy(), sequence[:, :1], atol=1e-5)
    dynamic_last = tf.function(last, input_signature=[tf.TensorSpec((None, None, 8, 6, 3))])
    np.testing.assert_allclose(dynamic_last(x[:, :3]).numpy(), sequence[:, 2], atol=1e-5)

    inputs = keras.Input((None, 8, 6, 3))
    assert keras.Model(inputs, ConvGRU2D(5)(inputs)).output_shape == (None, None, 8, 6, 5)


def test_conv_gru_rejects_bad_inputs():
    layer = ConvGRU2D(4)
    with pytest.raises(ValueError, match=r"expects inputs shaped \(B, T, H, W, C\), got shape \(2, 8, 8, 3\)"):
        layer(_random(2, 8, 8, 3))
    with pytest.raises(ValueError, match=r"`initial_state` must be shaped .*got shape \(2, 8, 8, 3\)"):
        layer(_random(2, 3, 8, 8, 3), initial_state=_random(2, 8, 8, 3))
    with pytest.raises(ValueError, match="`filters` must be a positive integer, got 0"):
        ConvGRU2D(0)
    with pytest.raises(ValueError, match="`kernel_size` must be"):
        ConvGRU2DCell(4, kernel_size=(3, 3, 3))


def test_conv_gru_spectral_norm_updates_once_per_sequence():
    keras.utils.set_random_seed(11)
    layer = ConvGRU2D(3, spectral_norm=True)
    x = _random(1, 5, 6, 6, 2)
    layer(x)
    convs = [layer.cell.input_conv, layer.cell.gate_conv, layer.cell.candidate_conv]
    assert all(isinstance(c, SpectralNorm) for c in convs)
    before = [c.u.numpy().copy() for c in convs]
    layer(x, training=False)
    for conv, u in zip(convs, before):
        np.testing.assert_array_equal(conv.u.numpy(), u)
    layer(x, training=True)
    for conv, u in zip(convs, before):
        kernel = _kernel_matrix(conv.layer, conv.layer.kernel.numpy())
        np.testing.assert_allclose(conv.u.numpy(), _numpy_power_iteration(kernel, u, steps=1), atol=1e-6)


def _conv_gru_model():
    frames = keras.Input((4, 8, 8, 2), name="frames")
    state = keras.Input((8, 8, 3), name="state")
    outputs = ConvGRU2D(3, spectral_norm=True, name="gru")(frames, initial_state=state)
    return keras.Model([frames, state], outputs)


def test_conv_gru_converts_to_onnx_and_matches():
    import onnxruntime
    import tf2onnx

    keras.utils.set_random_seed(12)
    model = _conv_gru_model()
    gru = model.get_layer("gru")
    x, s = _random(2, 4, 8, 8, 2), _random(2, 8, 8, 3)
    model([x, s], training=True)  # move the spectral-norm vectors off their init
    cases = [
        (tf.TensorSpec((None, 4, 8, 8, 2), name="frames"), x),  # unrolled
        (tf.TensorSpec((None, None, 8, 8, 2), name="frames"), x[:, :3]),  # ONNX Loop
    ]
    for frames_spec, frames in cases:
        function = tf.function(lambda a, b: gru(a, initial_state=b, training=False))
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=[frames_spec, tf.TensorSpec((None, 8, 8, 3), name="state")], opset=17
        )
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, {"frames": frames, "state": s})
        expected = gru(frames, initial_state=s).numpy()
        assert onnx_out.shape == expected.shape
        np.testing.assert_allclose(onnx_out, expected, atol=1e-4)
    assert "Loop" in {node.op_type for node in proto.graph.node}


def test_conv_gru_exports_saved_model(tmp_path):
    keras.utils.set_random_seed(13)
    model = _conv_gru_model()
    x, s = _random(2, 4, 8, 8, 2), _random(2, 8, 8, 3)
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.serve([x, s]).numpy(), model([x, s]).numpy(), atol=1e-5)


# --------------------------------------------------------------------- blocks


@pytest.mark.parametrize(
    "block, input_shape, expected",
    [
        (lambda: Up3D(4), (2, 2, 4, 4, 8), (2, 4, 8, 8, 4)),
        (lambda: Up3D(4, strides=(1, 2, 2), norm="instance"), (2, 2, 4, 4, 8), (2, 2, 8, 8, 4)),
        (lambda: Down3D(16, norm="layer"), (2, 4, 8, 8, 3), (2, 2, 4, 4, 16)),
        (lambda: Down3D(16, spectral_norm=True, norm="none"), (2, 4, 8, 8, 3), (2, 2, 4, 4, 16)),
        (lambda: Up2D(4, spectral_norm=True), (2, 4, 4, 8), (2, 8, 8, 4)),
        (lambda: Down2D(8, kernel_size=3, strides=(2, 1)), (2, 8, 8, 3), (2, 4, 8, 8)),
    ],
)
def test_block_shapes(block, input_shape, expected):
    layer = block()
    y = layer(_random(*input_shape), training=True)
    assert tuple(y.shape) == expected
    assert layer.compute_output_shape(input_shape) == expected


def test_block_math_matches_plain_layers():
    keras.utils.set_random_seed(14)
    x = _random(2, 4, 8, 8, 3)
    down = Down3D(6, norm="none")
    y = down(x).numpy()
    conv = keras.layers.Conv3D(6, 4, strides=2, padding="same")
    conv.build(x.shape)
    conv.set_weights([down.conv.kernel.numpy(), _random(6)])
    down.conv.bias.assign(conv.bias.numpy())
    pre = conv(x).numpy()
    np.testing.assert_allclose(down(x).numpy(), np.where(pre > 0, pre, 0.2 * pre), atol=1e-5)
    assert not np.allclose(y, down(x).numpy())  # the bias took effect

    up = Up2D(5)  # batch norm: no bias; in training mode the batch is normalised, then ReLU
    out = up(x[:, 0], training=True).numpy()
    assert up.conv.bias is None
    assert out.min() == 0.0
    pre = up.conv(x[:, 0]).numpy()
    normalized = (pre - pre.mean(axis=(0, 1, 2))) / np.sqrt(pre.var(axis=(0, 1, 2)) + up.norm.epsilon)
    np.testing.assert_allclose(out, np.maximum(normalized, 0), atol=1e-4)


def test_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`norm` must be one of .*got 'group'"):
        Up3D(4, norm="group")
    with pytest.raises(ValueError, match="`activation` must be one of .*got 'gelu'"):
        Down2D(4, activation="gelu")
    with pytest.raises(ValueError, match=r"`strides` must be a positive integer or a tuple of 3 of them, got \(2, 2\)"):
        Down3D(4, strides=(2, 2))
    with pytest.raises(ValueError, match="`filters` must be a positive integer"):
        Up2D(-1)
    with pytest.raises(ValueError, match=r"Up3D expects inputs of rank 5 .*got shape \(2, 4, 4, 3\)"):
        Up3D(4)(_random(2, 4, 4, 3))


# --------------------------------------------------------------------- serialisation

ROUND_TRIP = {
    "spectral_norm_conv3d_transpose": (
        lambda: SpectralNorm(keras.layers.Conv3DTranspose(3, 3, strides=2, padding="same"), power_iterations=2),
        (2, 4, 4, 3),
    ),
    "conv_gru": (lambda: ConvGRU2D(3, kernel_size=(3, 1), return_sequences=False, spectral_norm=True), (3, 6, 6, 2)),
    "conv_gru_cell": (lambda: ConvGRU2DCell(3, spectral_norm=True), (6, 6, 2)),
    "up3d": (lambda: Up3D(4, strides=(1, 2, 2), spectral_norm=True), (2, 4, 4, 3)),
    "down3d": (lambda: Down3D(4, norm="instance", activation=None, use_bias=True), (2, 4, 4, 3)),
    "up2d": (lambda: Up2D(4, norm="layer", activation="tanh"), (4, 4, 3)),
    "down2d": (lambda: Down2D(4, kernel_size=3, spectral_norm=True), (4, 4, 3)),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_config_and_keras_file_round_trip(name, tmp_path):
    keras.utils.set_random_seed(15)
    make, shape = ROUND_TRIP[name]
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)

    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    x = _random(2, *shape)
    for _ in range(2):  # move non-trainable state (u, batch statistics) off its init
        model(x, training=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[-1]) is type(layer)
    assert [v.name for v in loaded.weights] == [v.name for v in model.weights]
    for original, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    if "spectral_norm" in config and config["spectral_norm"] or name.startswith("spectral"):
        assert any("sn_u" in v.path for v in loaded.non_trainable_weights)
