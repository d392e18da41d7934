"""The fast 3-D convolutions compute exactly what Keras's layers compute."""

import itertools
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf

from vidgen_tf.layers import conv3d


CASES = list(itertools.product([(4, 4, 4), (3, 3, 3), (1, 4, 2)], [(1, 2, 2), (2, 2, 2), (2, 1, 3)], ["same", "valid"]))


@pytest.mark.parametrize("conv_path", ["stride1", "space_to_depth", "patches"])
@pytest.mark.parametrize("kernel_size,strides,padding", CASES)
def test_conv3d_matches_keras_values_and_gradients(kernel_size, strides, padding, conv_path):
    reference = keras.layers.Conv3D(5, kernel_size, strides=strides, padding=padding)
    fast = conv3d.Conv3D(5, kernel_size, strides=strides, padding=padding, conv_path=conv_path)
    # Odd lengths: the blocked paths pad up to a multiple of the stride and crop.
    x = tf.random.stateless_normal((2, 7, 9, 8, 3), [1, 2])
    reference.build(x.shape)
    fast.build(x.shape)
    fast.set_weights(reference.get_weights())
    blocked = conv_path in ("space_to_depth", "patches")
    takes = conv_path if not blocked or conv3d.space_to_depth_applies(kernel_size, strides) else "native"
    assert conv3d.layer_path(fast, x) == takes
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        want, got = reference(x), fast(x)
        loss_want, loss_got = tf.reduce_sum(want**2), tf.reduce_sum(got**2)
    assert got.shape == want.shape == fast.compute_output_shape(x.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)
    for a, b in zip(tape.gradient(loss_got, [x, fast.kernel]), tape.gradient(loss_want, [x, reference.kernel])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("conv_path", ["space_to_depth", "patches"])
@pytest.mark.parametrize("strides", [(1, 2, 2), (2, 2, 2), (2, 1, 2)])
def test_blocked_paths_give_keras_s_gradients_of_gradients(strides, conv_path):
    # R1 and WGAN-GP differentiate the input gradient again, by the weights: the patches
    # path's own gradient (the windows added back in place) must be differentiable too.
    reference = keras.layers.Conv3D(4, (4, 4, 2), strides=strides, padding="same", use_bias=False)
    fast = conv3d.Conv3D(4, (4, 4, 2), strides=strides, padding="same", use_bias=False, conv_path=conv_path)
    x = tf.random.stateless_normal((2, 6, 9, 6, 3), [5, 6])
    reference.build(x.shape)
    fast.build(x.shape)
    fast.set_weights(reference.get_weights())
    assert conv3d.layer_path(fast, x) == conv_path

    def second_order(layer):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = tf.reduce_sum(tf.tanh(layer(x)))
            penalty = tf.reduce_sum(inner.gradient(loss, x) ** 2)
        return outer.gradient(penalty, layer.kernel)

    want, got = second_order(reference), second_order(fast)
    assert float(tf.reduce_max(tf.abs(want))) > 0.1
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def test_patches_gradient_is_the_transpose_of_the_windows():
    # _extract_patches' hand-written gradient against TensorFlow's own for the same slices.
    x = tf.random.stateless_normal((2, 5, 4, 6, 3), [7, 8])
    upstream = tf.random.stateless_normal((2, 3, 3, 4, 3 * 2 * 3 * 3), [9, 10])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        got = conv3d._extract_patches(x, (3, 2, 3))
        want = tf.concat([x[:, a : a + 3, b : b + 3, c : c + 4] for a in range(3) for b in range(2) for c in range(3)], -1)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_allclose(tape.gradient(got, x, upstream).numpy(), tape.gradient(want, x, upstream).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_conv_path_arguments():
    layer = conv3d.Conv3D(3, 4, strides=(1, 2, 2), conv_path="patches")
    assert layer.conv_path == "patches" and layer.fast_path is None
    assert conv3d.Conv3D.from_config(layer.get_config()).conv_path == "patches"
    # Configs written before conv_path existed carry fast_path.
    assert conv3d.Conv3D(3, 4, strides=2, fast_path=True).conv_path == "stride1"
    assert conv3d.Conv3D(3, 4, strides=2, fast_path=False).conv_path == "native"
    with pytest.raises(ValueError, match="unknown conv_path 'im2col'"):
        conv3d.Conv3D(3, 4, strides=2, conv_path="im2col")
    with pytest.raises(ValueError, match="fast_path=True means conv_path='stride1'"):
        conv3d.Conv3D(3, 4, strides=2, fast_path=True, conv_path="patches")
    # A stride that does not divide its kernel cannot take blocks: the native op runs.
    odd = conv3d.Conv3D(3, 3, strides=(1, 2, 2), conv_path="space_to_depth")
    assert conv3d.layer_path(odd, tf.zeros((1, 4, 8, 8, 2))) == "native"
    with pytest.raises(ValueError, match="divide the kernel size"):
        conv3d.blocked_conv3d(tf.zeros((1, 4, 8, 8, 2)), tf.zeros((3, 3, 3, 2, 1)), (1, 2, 2), "same")


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


@pytest.mark.parametrize("conv_path", ["stride1", "space_to_depth", "patches"])
def test_unknown_lengths_inside_a_function(conv_path):
    fast = conv3d.Conv3D(2, 4, strides=(2, 2, 2), padding="same", conv_path=conv_path)
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


MEASURED = json.loads((Path(__file__).parent / "data" / "conv3d_paths.json").read_text())


def _rule(row, onednn):
    return conv3d.prefers_stride1(tuple(row["input_shape"]), row["filters"], row["strides"], onednn)


def _describe(row):
    return f"{row['kind']} {'x'.join(map(str, row['input_shape']))}->{row['filters']} s{row['strides']}"


def test_the_measurements_cover_every_strided_shape_of_the_zoo():
    # Every strided 3-D convolution the zoo runs at its paper and preset settings was measured
    # (bench/conv3d_paths.py collects them from the models; the same collection here).
    import sys

    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from conv3d_paths import collect_cases

    measured = {(r["kind"], tuple(r["input_shape"]), r["filters"], tuple(r["kernel"]), tuple(r["strides"]),
                 r["padding"]) for r in MEASURED["onednn"]}
    assert set(collect_cases(vidgen_tf.list_models())) == measured
    assert {_describe(r) for r in MEASURED["eigen"]} == {_describe(r) for r in MEASURED["onednn"]}


def _times(row):
    paths = {"native": "keras_ms", "stride1": "stride1_ms", "space_to_depth": "space_to_depth_ms", "patches": "patches_ms"}
    return {path: row[key] for path, key in paths.items() if row.get(key) is not None}


def _onednn_pick(row):
    return conv3d.choose_path(tuple(row["input_shape"]), row["filters"], tuple(row["kernel"]), tuple(row["strides"]),
                              row["padding"], onednn=True, transpose=row["kind"] == "transpose")


def test_with_onednn_the_rule_takes_the_fastest_measured_path_of_every_case():
    rows = MEASURED["onednn"]
    # Blocks were faster on these two small inputs alone (1.3 vs 1.6 ms and 1.8 vs 2.5 ms), but
    # their presets' training steps were 1.5% slower with them (bench/conv3d_paths.py
    # --model-steps): below conv3d.BLOCKED_MIN_POSITIONS the rule keeps the native op.
    # The same holds for the MoCoGAN preset's last video-discriminator layer at discriminator_width=32
    # (8.9 vs 10.7 ms alone, measured 2026-12-07; its training-step effect is not measured yet).
    small = {"conv 8x16x16x1->16 s[2, 2, 2]", "conv 8x16x16x1->16 s[1, 2, 2]", "conv 4x10x10x64->128 s[1, 2, 2]"}
    for row in rows:
        times = _times(row)
        fastest = min(times, key=times.get)
        if _describe(row) in small:
            assert fastest == "space_to_depth" and _onednn_pick(row) == "native", _describe(row)
            assert math.prod(row["input_shape"][:3]) < conv3d.BLOCKED_MIN_POSITIONS
        else:
            assert _onednn_pick(row) == fastest, _describe(row)
    # The stride-1 path never pays with oneDNN; the blocked paths do for some shapes.
    assert all(row["stride1_ms"] > row["keras_ms"] for row in rows)
    picks = {_onednn_pick(row) for row in rows}
    assert picks == {"native", "space_to_depth", "patches"}
    # The paths of MoCoGAN's video discriminator at its paper setting.
    mocogan = {_describe(r): _onednn_pick(r) for r in rows if r["used_by"] == ["mocogan paper"]}
    assert mocogan == {
        "conv 16x66x66x3->64 s[1, 2, 2]": "space_to_depth",
        "conv 13x34x34x64->128 s[1, 2, 2]": "native",
        "conv 10x18x18x128->256 s[1, 2, 2]": "space_to_depth",
        "conv 7x10x10x256->512 s[1, 2, 2]": "patches",
    }


def test_with_eigen_kernels_the_rule_takes_the_faster_path_but_in_five_measured_cases():
    rows = MEASURED["eigen"]
    wrong = {_describe(r) for r in rows if _rule(r, onednn=False) != (r["stride1_ms"] < r["keras_ms"])}
    # Eigen's gradient kernels switch between slow and fast algorithms in a way no simple
    # function of the shape follows (see prefers_stride1); these five stay on the slower side.
    assert wrong == {
        "conv 16x66x66x3->64 s[1, 2, 2]",
        "conv 32x64x64x3->64 s[2, 2, 2]",
        "conv 8x32x32x64->128 s[2, 2, 2]",
        "conv 4x8x8x128->256 s[1, 2, 2]",
        "conv 16x8x8x128->256 s[1, 2, 2]",
    }
    chosen = sum(r["stride1_ms"] if _rule(r, onednn=False) else r["keras_ms"] for r in rows)
    best = sum(min(r["keras_ms"], r["stride1_ms"]) for r in rows)
    native = sum(r["keras_ms"] for r in rows)
    old_rule = sum(r["stride1_ms"] if r["input_shape"][-1] * max(r["input_shape"][1:3]) <= 512 else r["keras_ms"]
                   for r in rows)
    assert chosen < 1.7 * best and chosen < 0.35 * native and chosen < 0.8 * old_rule


def test_the_layers_follow_the_rule_for_the_kernels_in_use(monkeypatch):
    small = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same")
    wide = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same")
    up = conv3d.Conv3DTranspose(8, 4, strides=2, padding="same")
    x_small, x_wide = tf.zeros((1, 4, 16, 16, 3)), tf.zeros((1, 4, 16, 16, 128))
    x_deep = tf.zeros((1, 7, 10, 10, 256))
    monkeypatch.setattr(conv3d, "onednn_enabled", lambda: False)
    assert conv3d._use_fast_path(small, x_small) and conv3d._use_fast_path(up, x_small)
    assert conv3d.layer_path(small, x_small) == "stride1"
    assert conv3d.layer_path(wide, x_wide) == "native"
    monkeypatch.setattr(conv3d, "onednn_enabled", lambda: True)
    assert conv3d.layer_path(small, x_small) == "native"  # 4x16x16: too few positions for blocks
    assert conv3d.layer_path(small, tf.zeros((1, 8, 32, 32, 3))) == "space_to_depth"
    assert conv3d.layer_path(up, x_small) == "native"
    assert conv3d.layer_path(wide, x_wide) == "space_to_depth"
    assert conv3d.layer_path(conv3d.Conv3D(8, 4, strides=(1, 2, 2)), x_deep) == "patches"
    assert conv3d.layer_path(conv3d.Conv3D(8, 4, strides=(1, 2, 2)), tf.zeros((1, 4, 16, 16, 64))) == "native"
    forced = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same", fast_path=True)
    assert conv3d._use_fast_path(forced, x_small)
    unstrided = conv3d.Conv3D(8, 4, padding="same", fast_path=True)
    assert not conv3d._use_fast_path(unstrided, x_small)
    assert conv3d.layer_path(conv3d.Conv3D(8, 4, padding="same", conv_path="patches"), x_small) == "native"
    forced_off = conv3d.Conv3D(8, 4, strides=(1, 2, 2), padding="same", fast_path=False)
    monkeypatch.setattr(conv3d, "onednn_enabled", lambda: False)
    assert not conv3d._use_fast_path(forced_off, x_small)
    assert conv3d.Conv3D.from_config(forced_off.get_config()).fast_path is False
    # Unknown sizes (a signature with free lengths) keep the native op.
    monkeypatch.setattr(conv3d, "onednn_enabled", lambda: True)
    assert conv3d.choose_path((None, 16, 16, 3), 8, (4, 4, 4), (1, 2, 2), "same", onednn=True) == "native"


def test_onednn_detection_matches_tensorflow_s_own_report():
    from tensorflow.python.util import _pywrap_util_port

    assert conv3d.onednn_enabled() == bool(_pywrap_util_port.IsMklEnabled())
