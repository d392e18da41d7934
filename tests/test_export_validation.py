"""Validated inputs: labels out of range are errors in Keras and in the exports; exported
signatures check what their description promises; log_prob scores uint8 and float videos."""

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness
from tests.test_keras_saving import TINY


def tiny(name, **overrides):
    return vidgen_tf.build(name, **{**TINY[name], **overrides})


# ------------------------------------------------------------------ Keras labels
@pytest.mark.parametrize("name", ["mocogan", "dcgan", "vgan", "tgan", "dvdgan"])
def test_generate_from_noise_refuses_labels_out_of_range(name):
    model = tiny(name, num_classes=3)
    noise = harness.fixed_noise(model)
    with pytest.raises(ValueError, match=r"label: expected integers in \[0, 3\), got 12"):
        model.generate_from_noise(noise, tf.constant([0, 12]))
    with pytest.raises(ValueError, match=r"label: expected integers in \[0, 3\), got -1"):
        model.generate_from_noise(noise, tf.constant([-1, 2]))
    with pytest.raises(ValueError, match=r"label: expected integers in \[0, 3\), got 3"):
        model.generate(2, seed=0, labels=[3, 0])
    assert model.generate_from_noise(noise, tf.constant([0, 2])).shape[0] == 2


def test_labels_out_of_range_fail_inside_a_graph_too():
    model = tiny("mocogan", num_classes=3)  # a one-hot: out of range it would be a silent zero code
    noise = harness.fixed_noise(model)

    @tf.function
    def generate(noise, labels):
        return model.generate_from_noise(noise, labels)

    assert generate(noise, tf.constant([1, 2])).shape[0] == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label: expected integers in \[0, 3\)"):
        generate(noise, tf.constant([1, 7]))


# ------------------------------------------------------------------ log_prob videos
@pytest.mark.parametrize("name", ["hmm", "kvae", "video_vae"])
def test_log_prob_scores_uint8_videos_as_x_over_127_5_minus_1(name):
    model = tiny(name)
    rng = np.random.default_rng(0)
    as_uint8 = rng.integers(0, 256, (2,) + model.video_shape).astype(np.uint8)
    as_float = as_uint8.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(model.log_prob(as_uint8).numpy(), model.log_prob(as_float).numpy(), rtol=1e-6)
    np.testing.assert_allclose(model(tf.constant(as_uint8)).numpy(), model.log_prob(as_float).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["hmm", "kvae", "video_vae"])
def test_log_prob_refuses_floats_outside_minus_one_one(name):
    model = tiny(name)
    videos = np.zeros((2,) + model.video_shape, np.float32)
    videos[1, 0, 0, 0, 0] = 127.0  # a uint8 video passed as float
    with pytest.raises(ValueError, match=r"videos: expected floats in \[-1, 1\], got values in \[0, 127\]"):
        model.log_prob(videos)
    videos[1, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="videos: expected floats in \\[-1, 1\\], got NaN or Inf"):
        model.log_prob(videos)
    with pytest.raises(ValueError, match="got dtype int32"):
        model.log_prob(np.zeros_like(videos, np.int32))
    # Dequantised data (up to 1 / 127.5 above 1) is inside the tolerance.
    videos[1, 0, 0, 0, 0] = 1.0 + 1.0 / 127.5
    assert np.all(np.isfinite(model.log_prob(videos).numpy()))


# ------------------------------------------------------------------ exported signatures
@pytest.mark.large
def test_exported_conditional_signatures_check_their_inputs(tmp_path):
    model = tiny("mocogan", num_classes=3)
    version_dir = vidgen_tf.export_savedmodel(model, tmp_path / "serving", version=1)
    loaded = tf.saved_model.load(str(version_dir))
    serve, generate = loaded.signatures["serving_default"], loaded.signatures["generate"]
    noise = {k: v for k, v in harness.fixed_noise(model).items()}
    assert serve(**noise, label=tf.constant([0, 2]))["video"].shape[0] == 2

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label: expected integers in \[0, 3\), got 12"):
        serve(**noise, label=tf.constant([0, 12]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"label: expected 2 along axis 0 \(batch, as content has along axis 0\), got 3"):
        serve(**noise, label=tf.constant([0, 1, 2]))
    bad_noise = dict(noise, content=tf.fill(noise["content"].shape, np.nan))
    with pytest.raises(tf.errors.InvalidArgumentError, match="content: expected finite values"):
        serve(**bad_noise, label=tf.constant([0, 1]))

    args = dict(batch_size=tf.constant(2), seed=tf.constant(5, tf.int64), num_frames=tf.constant(4))
    assert generate(**args, label=tf.constant([1, 1]))["video"].shape == (2, 4, 16, 16, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label: expected integers in \[0, 3\), got -4"):
        generate(**args, label=tf.constant([1, -4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label: expected batch_size \(2\) labels, got 3"):
        generate(**args, label=tf.constant([1, 1, 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"batch_size: expected an integer in \[1, 64\].*got 0"):
        generate(**dict(args, batch_size=tf.constant(0)), label=tf.constant([], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_frames: expected an integer in \[1, 1024\].*got -2"):
        generate(**dict(args, num_frames=tf.constant(-2)), label=tf.constant([1, 1]))

    # ONNX: the checks are dropped, the conversion and the parity on valid input still pass.
    path = vidgen_tf.export_onnx(model, tmp_path / "mocogan.onnx", savedmodel_dir=version_dir)
    parity = vidgen_tf.exporting.describe(path)["parity"]["onnx"]
    assert parity["max_abs_diff"] <= parity["tolerance"]


@pytest.mark.large
def test_exported_hmm_checks_uniform_noise_and_videos(tmp_path):
    model = tiny("hmm")
    loaded = tf.saved_model.load(str(vidgen_tf.export_savedmodel(model, tmp_path, version=1)))
    serve = loaded.signatures["serving_default"]
    noise = harness.fixed_noise(model)
    assert serve(**noise)["video"].shape == (2, 5, 2, 2, 1)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"state_noise: expected values in \[0.0, 1.0\) \(uniform noise\), got 1.5"):
        serve(state_noise=tf.fill([2, 5], 1.5), emission_noise=noise["emission_noise"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"state_noise: expected values in \[0.0, 1.0\).*got -0.5"):
        serve(state_noise=tf.fill([2, 5], -0.5), emission_noise=noise["emission_noise"])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"emission_noise: expected 5 along axis 1 \(frames, as state_noise has along axis 1\), got 4"):
        serve(state_noise=noise["state_noise"], emission_noise=noise["emission_noise"][:, :4])

    videos = np.zeros((2, 5, 2, 2, 1), np.float32)
    assert loaded.signatures["log_prob"](videos=tf.constant(videos))["log_prob"].shape == (2,)
    videos[0, 0, 0, 0, 0] = 3.0
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"videos: expected floats in \[-1, 1\].*got 3"):
        loaded.signatures["log_prob"](videos=tf.constant(videos))
    as_uint8 = np.full((2, 5, 2, 2, 1), 255, np.uint8)
    np.testing.assert_allclose(
        loaded.signatures["log_prob_uint8"](videos=tf.constant(as_uint8))["log_prob"].numpy(),
        model.log_prob(np.ones((2, 5, 2, 2, 1), np.float32)).numpy(), rtol=1e-6)


# ------------------------------------------------------------------ shapes, counts and limits (issue 21, items 2 and 9)
@pytest.fixture(scope="module")
def limited_hmm(tmp_path_factory):
    """A tiny HMM exported with small limits: at most 4 videos and 6 frames per request."""
    model = tiny("hmm")
    out = tmp_path_factory.mktemp("limited")
    version_dir = vidgen_tf.export_savedmodel(model, out, version=1, max_batch_size=4, max_frames=6)
    return model, version_dir, tf.saved_model.load(str(version_dir)).signatures


@pytest.mark.large
def test_signatures_name_an_input_of_the_wrong_rank_or_width_or_without_frames(limited_hmm):
    model, _, signatures = limited_hmm
    serve, generate = signatures["serving_default"], signatures["generate"]
    noise = harness.fixed_noise(model)  # state_noise (2, 5), emission_noise (2, 5, 4)
    state, emission = noise["state_noise"], noise["emission_noise"]
    assert serve(state_noise=state, emission_noise=emission)["video"].shape == (2, 5, 2, 2, 1)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"emission_noise: expected rank 3 \(shape \[batch, frames, 4\]\), got rank 4"):
        serve(state_noise=state, emission_noise=emission[..., None])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"state_noise: expected rank 2 \(shape \[batch, frames\]\), got rank 1"):
        serve(state_noise=state[0], emission_noise=emission)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"emission_noise: expected size 4 along axis 2 \(shape \[batch, frames, 4\]\), got 5"):
        serve(state_noise=state, emission_noise=tf.concat([emission, emission[..., :1]], -1))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"state_noise: expected 1 to 6 along axis 1 \(frames; .*got 0"):
        serve(state_noise=state[:, :0], emission_noise=emission[:, :0])
    args = dict(batch_size=tf.constant(2), seed=tf.constant(5, tf.int64), num_frames=tf.constant(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"batch_size: expected rank 0 \(shape \[\]\), got rank 1"):
        generate(**dict(args, batch_size=tf.constant([2])))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_frames: expected an integer in \[1, 6\].*got 0"):
        generate(**dict(args, num_frames=tf.constant(0)))


@pytest.mark.large
def test_requests_beyond_the_declared_limits_are_refused_naming_the_argument(limited_hmm):
    model, version_dir, signatures = limited_hmm
    assert vidgen_tf.exporting.describe(version_dir)["limits"] == {"max_batch_size": 4, "max_frames": 6}
    generate, serve = signatures["generate"], signatures["serving_default"]
    args = dict(batch_size=tf.constant(2), seed=tf.constant(5, tf.int64), num_frames=tf.constant(6))
    assert generate(**args)["video"].shape == (2, 6, 2, 2, 1)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"batch_size: expected an integer in \[1, 4\] \(limit max_batch_size = 4\), "
                             r"got 2147483647"):
        generate(**dict(args, batch_size=tf.constant(2**31 - 1)))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"num_frames: expected an integer in \[1, 6\] \(limit max_frames = 6\), "
                             r"got 2147483647"):
        generate(**dict(args, num_frames=tf.constant(2**31 - 1)))
    noise = harness.fixed_noise(model, batch_size=5)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"state_noise: expected 1 to 4 along axis 0 \(batch; limit max_batch_size = 4\), "
                             r"got 5"):
        serve(**noise)
    noise = harness.fixed_noise(model, num_frames=7)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"state_noise: expected 1 to 6 along axis 1 \(frames; limit max_frames = 6\), got 7"):
        serve(**noise)


@pytest.mark.large
def test_onnx_reports_inputs_the_savedmodel_refuses_in_inputs_valid(limited_hmm, tmp_path):
    import onnxruntime

    model, version_dir, _ = limited_hmm
    path = vidgen_tf.export_onnx(model, tmp_path / "hmm.onnx", savedmodel_dir=version_dir, max_batch_size=4,
                                 max_frames=6)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert "inputs_valid" in vidgen_tf.exporting.describe(path)["signatures"]["serving_default"]["outputs"]

    def valid(**noise):
        return bool(session.run(["inputs_valid"], {k: np.asarray(v, np.float32) for k, v in noise.items()})[0])

    noise = {k: v.numpy() for k, v in harness.fixed_noise(model).items()}
    assert valid(**noise)
    assert not valid(**dict(noise, emission_noise=np.full_like(noise["emission_noise"], np.nan)))
    assert not valid(**dict(noise, state_noise=np.full_like(noise["state_noise"], 1.5)))
    try:  # batch 1 against 2: the model itself may fail on it in onnxruntime, or run and say so
        mismatched = valid(**dict(noise, state_noise=noise["state_noise"][:1]))
    except Exception as error:  # noqa: BLE001 - onnxruntime's Fail
        assert "Reshape" in str(error) or "shape" in str(error)
        mismatched = False
    assert not mismatched
    assert not valid(**{k: v.numpy() for k, v in harness.fixed_noise(model, batch_size=5).items()})  # above 4


# ------------------------------------------------------------------ the checks' cost
def test_a_signature_s_checks_format_their_message_only_when_one_fails():
    """Every check's message (and the min / max it prints) sits inside the branch a failure takes:
    on a passing call no string is formatted and no value is reduced for printing."""
    from vidgen_tf.exporting import catalog, validation

    model = tiny("hmm")
    described = catalog.signature_descriptions(model)["serving_default"]
    noise = {k: tf.convert_to_tensor(v) for k, v in harness.fixed_noise(model).items()}
    checked = tf.function(lambda inputs: validation.checked_inputs(described, inputs))
    graph = checked.get_concrete_function(noise).graph
    top_level = {op.type for op in graph.get_operations()}
    assert "StringFormat" not in top_level and "Min" not in top_level, sorted(top_level)
    branches = [f for f in graph.as_graph_def().library.function]
    assert any(node.op == "StringFormat" for f in branches for node in f.node_def)
    values = checked(noise)
    for name in noise:
        np.testing.assert_array_equal(values[name].numpy(), noise[name].numpy())
    bad = dict(noise)
    bad["state_noise"] = tf.fill(tf.shape(noise["state_noise"]), 1.5)  # outside U[0, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"state_noise: expected values in \[0.*got 1.5"):
        checked(bad)
