"""The clients under export/: ONNX (onnxruntime), TF Serving REST and gRPC, none importing TensorFlow.

No TF Serving binary is available here. The REST and gRPC end-to-end tests
start a small server on 127.0.0.1 (tests/serving_standins.py) that answers in
TF Serving's shapes (the REST `:predict` JSON, the gRPC
`tensorflow.serving.PredictionService/Predict` with tensorflow-serving-api's own
servicer base class and messages) by running the exported SavedModel's
signatures in this process. They stand in for TF Serving's process, not its
code: what they check is that the clients speak the protocol and send what the
exported signatures declare; TF Serving's own parsing, batching and
version policy are not exercised.
"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import serving_standins as standins
from vidgen_tf import exporting

EXPORT = Path(__file__).resolve().parent.parent / "export"
sys.path.insert(0, str(EXPORT))

import _client_common as common  # noqa: E402
import grpc_client  # noqa: E402
import onnx_client  # noqa: E402
import rest_client  # noqa: E402

PRESET = "hmm_moving_square"


def hmm_description(model):
    """The description of an HMM export, written by hand from EXPORT_DESCRIPTION.md."""
    emission = model.dims_per_frame
    video_shape = [None, None, model.height, model.width, model.channels]
    video_out = {"dtype": "uint8", "shape": video_shape, "dynamic_axes": {"0": "batch", "1": "frames"},
                 "range": [0, 255]}
    uniform = {"kind": "uniform", "low": 0.0, "high": 1.0}
    return {
        "format": "vidgen_tf.export/1", "model": "hmm", "class": "HMM", "preset": PRESET,
        "video": {"num_frames": model.num_frames, "variable_length": True, "height": model.height,
                  "width": model.width, "channels": model.channels, "num_classes": 0, "layout": "NTHWC"},
        "versions": {},
        "signatures": {
            "serving_default": {
                "doc": "noise in, video out",
                "inputs": {
                    "state_noise": {"dtype": "float32", "shape": [None, None],
                                    "dynamic_axes": {"0": "batch", "1": "frames"}, "distribution": uniform},
                    "emission_noise": {"dtype": "float32", "shape": [None, None, emission],
                                       "dynamic_axes": {"0": "batch", "1": "frames"}, "distribution": uniform},
                },
                "outputs": {"video": video_out},
            },
            "generate": {
                "doc": "batch size and seed in, video out",
                "inputs": {
                    "batch_size": {"dtype": "int32", "shape": [], "dynamic_axes": {},
                                   "distribution": {"kind": "count", "min": 1}},
                    "seed": {"dtype": "int64", "shape": [], "dynamic_axes": {}, "distribution": {"kind": "seed"}},
                    "num_frames": {"dtype": "int32", "shape": [], "dynamic_axes": {},
                                   "distribution": {"kind": "count", "min": 1}},
                },
                "outputs": {"video": video_out},
            },
            "log_prob": {
                "doc": "videos in, log-probabilities out",
                "inputs": {"videos": {"dtype": "float32", "shape": video_shape,
                                      "dynamic_axes": {"0": "batch", "1": "frames"},
                                      "distribution": {"kind": "video", "low": 0, "high": 255}}},
                "outputs": {"log_prob": {"dtype": "float32", "shape": [None], "dynamic_axes": {"0": "batch"},
                                         "range": None}},
            },
        },
        "parity": {},
    }


def conditional_description():
    """A fixed-length, conditional model's description (a MoCoGAN-like one)."""
    return {
        "format": "vidgen_tf.export/1", "model": "mocogan", "class": "MoCoGAN", "preset": None,
        "video": {"num_frames": 8, "variable_length": False, "height": 16, "width": 16, "channels": 3,
                  "num_classes": 5, "layout": "NTHWC"},
        "versions": {},
        "signatures": {"serving_default": {
            "doc": "noise in, video out",
            "inputs": {
                "content": {"dtype": "float32", "shape": [None, 50], "dynamic_axes": {"0": "batch"},
                            "distribution": {"kind": "normal", "mean": 2.0, "stddev": 0.5}},
                "motion_noise": {"dtype": "float32", "shape": [None, 8, 10], "dynamic_axes": {"0": "batch"},
                                 "distribution": {"kind": "normal", "mean": 0.0, "stddev": 1.0}},
                "label": {"dtype": "int32", "shape": [None], "dynamic_axes": {"0": "batch"},
                          "distribution": {"kind": "label", "num_classes": 5}},
            },
            "outputs": {"video": {"dtype": "uint8", "shape": [None, 8, 16, 16, 3], "dynamic_axes": {"0": "batch"},
                                  "range": [0, 255]}},
        }},
        "parity": {},
    }


@pytest.fixture(scope="module")
def hmm_model():
    return vidgen_tf.from_preset(PRESET)


@pytest.fixture(scope="module")
def hmm_export(hmm_model, tmp_path_factory):
    """The HMM preset exported to SavedModel and ONNX, each carrying its description."""
    out = tmp_path_factory.mktemp("exported")
    # 256 videos a request: the state-statistics test draws them in one.
    version = exporting.export_savedmodel(hmm_model, out, preset=PRESET, max_batch_size=256)
    onnx_path = exporting.export_onnx(hmm_model, out / "hmm.onnx", savedmodel_dir=version, preset=PRESET,
                                      max_batch_size=256)
    return {"base": out / "hmm", "version": version, "onnx": onnx_path}


def test_clients_read_the_description_vidgen_tf_wrote(hmm_model, hmm_export):
    for path in (hmm_export["base"], hmm_export["version"], hmm_export["onnx"]):
        assert common.load_description(path) == exporting.describe(path)
    saved = common.load_description(hmm_export["version"])
    assert saved["preset"] == PRESET and set(saved["signatures"]) >= {"serving_default", "generate", "log_prob"}
    assert set(common.load_description(hmm_export["onnx"])["signatures"]) == {"serving_default"}
    # The hand-written description of these tests says what the export says about its inputs.
    hand = hmm_description(hmm_model)
    for name in ("serving_default", "generate"):
        assert saved["signatures"][name]["inputs"] == hand["signatures"][name]["inputs"]


# ---------------------------------------------------------------------------
# Drawing inputs and writing videos
# ---------------------------------------------------------------------------


def test_inputs_are_drawn_from_their_declared_distributions(hmm_model):
    description = hmm_description(hmm_model)
    inputs = common.draw_inputs(description, num=64, seed=3, frames=20)
    assert inputs["state_noise"].shape == (64, 20) and inputs["state_noise"].dtype == np.float32
    assert inputs["emission_noise"].shape == (64, 20, hmm_model.dims_per_frame)
    for value in inputs.values():
        assert value.min() >= 0.0 and value.max() < 1.0 and abs(value.mean() - 0.5) < 0.02
    again = common.draw_inputs(description, num=64, seed=3, frames=20)
    assert all(np.array_equal(inputs[k], again[k]) for k in inputs)
    assert not np.array_equal(inputs["state_noise"], common.draw_inputs(description, num=64, seed=4,
                                                                        frames=20)["state_noise"])

    conditional = conditional_description()
    inputs = common.draw_inputs(conditional, num=2000, seed=0)
    assert inputs["content"].shape == (2000, 50) and inputs["motion_noise"].shape == (2000, 8, 10)
    assert abs(inputs["content"].mean() - 2.0) < 0.01 and abs(inputs["content"].std() - 0.5) < 0.01
    assert inputs["label"].dtype == np.int32 and set(np.unique(inputs["label"])) == set(range(5))
    assert (common.draw_inputs(conditional, num=3, label=4)["label"] == 4).all()
    assert list(common.draw_inputs(conditional, num=3, label=[0, 1, 2])["label"]) == [0, 1, 2]

    generate = common.draw_inputs(description, "generate", num=5, seed=11, frames=7)
    assert {k: (v.dtype, v.shape, int(v)) for k, v in generate.items()} == {
        "batch_size": (np.int32, (), 5), "seed": (np.int64, (), 11), "num_frames": (np.int32, (), 7)}


def test_bad_requests_are_named(hmm_model, tmp_path):
    description = hmm_description(hmm_model)
    conditional = conditional_description()
    with pytest.raises(common.ClientError, match="Unknown signature 'serve'.*generate, log_prob, serving_default"):
        common.draw_inputs(description, "serve")
    with pytest.raises(common.ClientError, match="label 5 is out of range; this model has 5 classes"):
        common.draw_inputs(conditional, num=2, label=5)
    with pytest.raises(common.ClientError, match="label -1 is out of range"):
        common.draw_inputs(conditional, num=2, label=[0, -1])
    with pytest.raises(common.ClientError, match="exactly 8 frames; a frame count of 12 cannot be given"):
        common.draw_inputs(conditional, num=2, frames=12)
    assert common.draw_inputs(conditional, num=2, frames=8)["motion_noise"].shape == (2, 8, 10)
    with pytest.raises(common.ClientError, match="unconditional; a label cannot be given"):
        common.draw_inputs(description, label=1)
    with pytest.raises(common.ClientError, match="'videos' of signature 'log_prob' takes 'video' values"):
        common.draw_inputs(description, "log_prob")
    with pytest.raises(common.ClientError, match="number of videos must be a positive integer, got 0"):
        common.draw_inputs(description, "generate", num=0)
    at_least_two = copy.deepcopy(description)
    at_least_two["signatures"]["generate"]["inputs"]["batch_size"]["distribution"]["min"] = 2
    with pytest.raises(common.ClientError, match="'batch_size' must be at least 2, got 1"):
        common.draw_inputs(at_least_two, "generate", num=1)
    with pytest.raises(common.ClientError, match="Output 'video' has shape \\[2, 4, 8, 16, 1\\]; the description "
                                                 "says \\[None, None, 16, 16, 1\\]"):
        common.check_video(np.zeros([2, 4, 8, 16, 1], np.uint8), description, "serving_default", "video")
    with pytest.raises(common.ClientError, match="must end in .npz, .gif, .mp4"):
        common.check_output_path(tmp_path / "clip.avi")

    version = tmp_path / "hmm" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    with pytest.raises(common.ClientError, match=r"SavedModel .*hmm/1 has no description \(assets/vidgen_export"):
        common.load_description(tmp_path / "hmm")  # the base directory: its highest version
    with pytest.raises(common.ClientError, match="does not exist"):
        common.load_description(tmp_path / "nothing")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "other/2"}))
    with pytest.raises(common.ClientError, match="is not a vidgen_tf.export/1 description"):
        common.load_description(wrong)


def test_an_onnx_file_without_a_description_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["video"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [1])],
                              [helper.make_tensor_value_info("video", TensorProto.UINT8, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "bare.onnx"))
    with pytest.raises(common.ClientError, match="bare.onnx has no description .*'vidgen_export'"):
        common.load_description(tmp_path / "bare.onnx")


@pytest.mark.parametrize("extension", [".npz", ".gif", ".mp4"])
def test_videos_are_written_by_extension(tmp_path, extension):
    from vidgen_tf.video_io import read_video

    videos = np.zeros([4, 6, 16, 16, 1], np.uint8)
    for i in range(4):  # a bright square per video, moving one pixel a frame
        for t in range(6):
            videos[i, t, 2 + i:8 + i, 1 + t:7 + t] = 255
    path = tmp_path / f"clip{extension}"
    common.write_videos(path, videos)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    if extension == ".npz":
        assert np.array_equal(np.load(path)["videos"], videos)
        return
    frames = read_video(path)
    grid = common.tile(videos)
    assert grid.shape == (6, 33, 33, 1)  # 2 x 2 videos with a 1-pixel gap
    # H.264 needs even sizes: the MP4 has one black row and column more.
    assert frames.shape[:3] == ((6, 34, 34) if extension == ".mp4" else (6, 33, 33))
    assert np.abs(frames[:, :33, :33, 0].astype(int) - grid[..., 0]).mean() < 8


# ---------------------------------------------------------------------------
# Clients run without TensorFlow
# ---------------------------------------------------------------------------

_WRAPPER = """
import atexit, os, runpy, sys
def check():
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_serving', 'keras'))
    print('TF-MODULES:' + ','.join(loaded[:5]), file=sys.stderr)
    sys.stderr.flush()
atexit.register(check)
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name='__main__')
"""


def run_client(name, *args):
    """Runs export/<name>.py in a fresh interpreter; returns (exit code, stdout, the TF modules it loaded)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not even vidgen_tf on the path
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(EXPORT / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)
    marker = [line for line in done.stderr.splitlines() if line.startswith("TF-MODULES:")]
    assert marker, f"the client did not exit normally: {done.stderr[-2000:]}"
    return done.returncode, done.stdout, done.stderr, marker[-1][len("TF-MODULES:"):]


def test_the_onnx_client_runs_without_tensorflow(hmm_export, tmp_path):
    out = tmp_path / "clip.npz"
    code, stdout, stderr, loaded = run_client("onnx_client", hmm_export["onnx"], "--num", 3, "--frames", 20,
                                              "--seed", 1, "--out", out)
    assert code == 0, stderr
    assert loaded == "", f"the ONNX client imported {loaded}"
    assert f"wrote {out}: videos [3, 20, 16, 16, 1] uint8" in stdout
    assert np.load(out)["videos"].shape == (3, 20, 16, 16, 1)
    code, _, stderr, loaded = run_client("onnx_client", hmm_export["onnx"], "--signature", "generate",
                                         "--out", out)
    assert code == 2 and "holds only 'serving_default', not 'generate'" in stderr and loaded == ""


# ---------------------------------------------------------------------------
# The ONNX client samples as model.generate does
# ---------------------------------------------------------------------------


def _ks_distance(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    x = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, x, side="right") / a.size
                               - np.searchsorted(b, x, side="right") / b.size)))


def _hmm_statistics(model, videos, reference):
    """KS distance of per-frame mean intensities, total variation of decoded state occupancy."""
    def occupancy(v):
        states = np.asarray(model.posterior_mode(tf.constant(v.astype(np.float32) / 127.5 - 1.0)))
        return np.bincount(states.ravel(), minlength=model.num_states) / states.size

    ks = _ks_distance(videos.mean(axis=(2, 3, 4)).ravel(), reference.mean(axis=(2, 3, 4)).ravel())
    return ks, 0.5 * float(np.abs(occupancy(videos) - occupancy(reference)).sum())


@pytest.mark.large
def test_onnx_client_samples_have_the_state_statistics_of_model_generate(hmm_model, hmm_export):
    """Measured: two `model.generate` samples of 256 x 16 frames differ by KS ~0.01-0.02 and state-occupancy
    TV ~0.13-0.14; standard-normal noise for every input (the client before this change) gives KS 1.0
    (Bernoulli pixels on for eps < p: far more than p of them) and TV ~0.63 (u < 0 always picks the first
    state, u >= 1 the last)."""
    num, frames = 256, 16
    reference = np.asarray(exporting.to_uint8_video(hmm_model.generate(num, seed=0, num_frames=frames)))
    videos, _ = onnx_client.generate(hmm_export["onnx"], num=num, frames=frames, seed=5)
    assert videos.shape == reference.shape
    ks, tv = _hmm_statistics(hmm_model, videos, reference)
    assert ks < 0.1 and tv < 0.25, (ks, tv)

    # The old client: standard normal for every input. The same test must reject it.
    import onnxruntime

    session = onnxruntime.InferenceSession(str(hmm_export["onnx"]), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    old = {spec.name: rng.standard_normal([num, frames] + [d for d in spec.shape[2:]]).astype(np.float32)
           for spec in session.get_inputs()}
    (old_videos,) = session.run(["video"], old)
    old_ks, old_tv = _hmm_statistics(hmm_model, old_videos, reference)
    assert old_ks > 0.1 and old_tv > 0.25, (old_ks, old_tv)


# ---------------------------------------------------------------------------
# Stand-ins for TF Serving (REST and gRPC), running the SavedModel
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest_server(hmm_export):
    server, thread = standins.start_rest(standins.Signatures("hmm", hmm_export["version"]), port=0)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def _assert_matches_signature(signatures, signature_name, inputs):
    """The names, dtypes and shapes of a request's inputs fit the exported signature def."""
    specs = signatures[signature_name].structured_input_signature[1]
    assert set(inputs) == set(specs), (sorted(inputs), sorted(specs))
    for name, value in inputs.items():
        spec = specs[name]
        assert value.dtype.kind == ("f" if spec.dtype.is_floating else "i"), (name, value.dtype, spec.dtype)
        assert tf.TensorShape(value.shape).is_compatible_with(spec.shape), (name, value.shape, spec.shape)
        if spec.dtype.is_integer:
            assert spec.dtype.min <= value.min() and value.max() <= spec.dtype.max


@pytest.mark.parametrize("request_format", ["columnar", "row"])
def test_rest_client_against_a_stand_in_server(hmm_export, rest_server, tmp_path, request_format):
    url = f"http://127.0.0.1:{rest_server.server_port}"
    description = common.load_description(hmm_export["base"])
    rest_server.bodies.clear()
    rest_server.standin_model.requests.clear()
    videos = rest_client.generate(url, "hmm", description, num=3, frames=12, seed=2, request_format=request_format)
    assert videos.shape == (3, 12, 16, 16, 1) and videos.dtype == np.uint8
    (path, body), = rest_server.bodies
    assert path == "/v1/models/hmm:predict" and body["signature_name"] == "serving_default"
    assert ("inputs" if request_format == "columnar" else "instances") in body
    (name, inputs), = rest_server.standin_model.requests
    _assert_matches_signature(rest_server.standin_model.signatures, name, inputs)
    # The same inputs through the SavedModel directly give the same videos.
    expected = rest_server.standin_model.signatures["serving_default"](
        **{k: tf.constant(v, tf.float32) for k, v in common.draw_inputs(description, num=3, seed=2, frames=12).items()})
    assert np.array_equal(videos, expected["video"].numpy())

    if request_format == "columnar":
        videos = rest_client.generate(url, "hmm", description, num=2, frames=5, seed=9, signature="generate",
                                      version=1)
        assert rest_server.bodies[-1][0] == "/v1/models/hmm/versions/1:predict"
        name, inputs = rest_server.standin_model.requests[-1]
        assert name == "generate" and {k: int(v) for k, v in inputs.items()} == {
            "batch_size": 2, "seed": 9, "num_frames": 5}
        _assert_matches_signature(rest_server.standin_model.signatures, name, inputs)
        own = rest_server.standin_model.signatures["generate"](
            batch_size=tf.constant(2), seed=tf.constant(9, tf.int64), num_frames=tf.constant(5))
        assert np.array_equal(videos, own["video"].numpy())  # the graph draws from the seed: same videos
    else:
        with pytest.raises(common.ClientError, match="row format needs every input to share its first"):
            rest_client.generate(url, "hmm", description, num=2, signature="generate", request_format="row")


def test_rest_client_reports_server_errors(hmm_export, rest_server):
    url = f"http://127.0.0.1:{rest_server.server_port}"
    description = common.load_description(hmm_export["version"])
    with pytest.raises(common.ClientError, match="HTTP 404: Servable not found for request: /v1/models/nope:predict"):
        rest_client.generate(url, "nope", description, num=1)
    decoded = rest_client.decode_response({"outputs": {"video": [[1]], "extra": [2]}}, ["video", "extra"])
    assert {k: v.tolist() for k, v in decoded.items()} == {"video": [[1]], "extra": [2]}
    decoded = rest_client.decode_response({"predictions": [{"video": [1], "extra": 2}, {"video": [3], "extra": 4}]},
                                          ["video", "extra"], "row")
    assert {k: v.tolist() for k, v in decoded.items()} == {"video": [[1], [3]], "extra": [2, 4]}
    with pytest.raises(common.ClientError, match="The server answered with an error: bad input"):
        rest_client.decode_response({"error": "bad input"}, ["video"])


def test_the_rest_client_runs_without_tensorflow(hmm_export, rest_server, tmp_path):
    out = tmp_path / "clip.gif"
    code, stdout, stderr, loaded = run_client(
        "rest_client", "--url", f"http://127.0.0.1:{rest_server.server_port}", "--model", "hmm", "--description",
        hmm_export["base"], "--num", 4, "--frames", 10, "--format", "row", "--out", out)
    assert code == 0, stderr
    assert loaded == "", f"the REST client imported {loaded}"
    assert f"wrote {out}: videos [4, 10, 16, 16, 1] uint8" in stdout and out.stat().st_size > 0


# ---------------------------------------------------------------------------
# gRPC
# ---------------------------------------------------------------------------


def test_grpc_request_bytes_parse_as_tensorflow_servings_own_message(hmm_model):
    from tensorflow_serving.apis import predict_pb2

    description = hmm_description(hmm_model)
    for signature_name, version in [("serving_default", None), ("generate", 7)]:
        inputs = common.draw_inputs(description, signature_name, num=3, seed=4, frames=6)
        data = grpc_client.predict_request("hmm", inputs, signature_name, version).SerializeToString()
        parsed = predict_pb2.PredictRequest.FromString(data)
        expected = predict_pb2.PredictRequest()
        expected.model_spec.name = "hmm"
        expected.model_spec.signature_name = signature_name
        if version is not None:
            expected.model_spec.version.value = version
        for name, value in inputs.items():
            expected.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        assert parsed == expected
        assert parsed.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
        for name, value in inputs.items():
            decoded = tf.make_ndarray(parsed.inputs[name])
            assert decoded.dtype == value.dtype and np.array_equal(decoded, value)


def test_grpc_responses_decode_from_int_val_and_tensor_content():
    from tensorflow_serving.apis import predict_pb2

    video = np.random.default_rng(0).integers(0, 256, [2, 3, 4, 4, 1]).astype(np.uint8)
    response = predict_pb2.PredictResponse()
    response.outputs["video"].CopyFrom(tf.make_tensor_proto(video))  # tensor_content
    int_val = response.outputs["int_val"]
    int_val.dtype = tf.uint8.as_datatype_enum
    int_val.tensor_shape.CopyFrom(tf.TensorShape(video.shape).as_proto())
    int_val.int_val.extend(video.ravel().tolist())  # as TF Serving's AsProtoField writes it
    response.outputs["log_prob"].CopyFrom(tf.make_tensor_proto(np.array([-1.5, 2.0], np.float32)))
    ours = grpc_client.messages()["PredictResponse"].FromString(response.SerializeToString())
    decoded = {name: grpc_client.to_numpy(proto) for name, proto in ours.outputs.items()}
    assert np.array_equal(decoded["video"], video) and np.array_equal(decoded["int_val"], video)
    assert decoded["int_val"].dtype == np.uint8 and decoded["log_prob"].tolist() == [-1.5, 2.0]


@pytest.fixture(scope="module")
def grpc_server(hmm_export):
    server, target = standins.start_grpc(standins.Signatures("hmm", hmm_export["version"]), port=0)
    server.model, server.target = server.standin_model, target
    yield server
    server.stop(grace=None).wait(10)


def test_grpc_client_against_a_stand_in_server(hmm_export, grpc_server):
    description = common.load_description(hmm_export["version"])
    model = grpc_server.model
    model.requests.clear()
    videos = grpc_client.generate(grpc_server.target, "hmm", description, num=3, frames=9, seed=1)
    (name, inputs), = model.requests
    assert name == "serving_default"
    _assert_matches_signature(model.signatures, name, inputs)
    assert {k: v.dtype for k, v in inputs.items()} == {"state_noise": np.float32, "emission_noise": np.float32}
    expected = model.signatures["serving_default"](
        **{k: tf.constant(v) for k, v in common.draw_inputs(description, num=3, seed=1, frames=9).items()})
    assert videos.dtype == np.uint8 and np.array_equal(videos, expected["video"].numpy())

    videos = grpc_client.generate(grpc_server.target, "hmm", description, num=2, frames=4, seed=3,
                                  signature="generate", version=1)
    name, inputs = model.requests[-1]
    assert name == "generate" and {k: (v.dtype, int(v)) for k, v in inputs.items()} == {
        "batch_size": (np.int32, 2), "seed": (np.int64, 3), "num_frames": (np.int32, 4)}
    _assert_matches_signature(model.signatures, name, inputs)
    assert videos.shape == (2, 4, 16, 16, 1)

    # 64 clips of 16 x 16 x 16 in int_val are over 0.1 MB: a 0.1 MB limit refuses them, by name.
    with pytest.raises(common.ClientError, match="RESOURCE_EXHAUSTED.*the limit is 0.1 MB: raise --max-message-mb"):
        grpc_client.generate(grpc_server.target, "hmm", description, num=64, max_message_mb=0.1)
    with pytest.raises(common.ClientError, match="NOT_FOUND: Servable not found for request: nope"):
        grpc_client.generate(grpc_server.target, "nope", description, num=1)
    # Inputs outside their declared support are refused by the exported signature; the status reaches the client.
    bad = common.draw_inputs(description, num=1, frames=4)
    bad["state_noise"] += 2.0
    with pytest.raises(common.ClientError,
                       match="(?s)INVALID_ARGUMENT: .*state_noise: expected values in \\[0.0, 1.0\\)"):
        grpc_client.predict(grpc_server.target, grpc_client.predict_request("hmm", bad))


def test_the_grpc_client_runs_without_tensorflow(hmm_export, grpc_server, tmp_path):
    out = tmp_path / "clip.mp4"
    code, stdout, stderr, loaded = run_client(
        "grpc_client", "--target", grpc_server.target, "--model", "hmm", "--description", hmm_export["version"],
        "--num", 4, "--frames", 16, "--out", out)
    assert code == 0, stderr
    assert loaded == "", f"the gRPC client imported {loaded}"
    assert f"wrote {out}: videos [4, 16, 16, 16, 1] uint8" in stdout and out.stat().st_size > 0
    code, _, stderr, _ = run_client("grpc_client", "--target", grpc_server.target, "--model", "hmm",
                                    "--description", hmm_export["version"], "--signature", "serve", "--out", out)
    assert code == 2 and "Unknown signature 'serve'" in stderr


# ---------------------------------------------------------------------------
# Every preset of the zoo, through all three clients
# ---------------------------------------------------------------------------


# A diffusion preset's export (SavedModel and ONNX of its U-Net: 90 s of a CI worker) is left to the diffusion tests
# below, which take a small conditional model through the same three clients, and to tests/test_video_diffusion.py.
CLIENT_PRESETS = [name for name in vidgen_tf.list_presets()
                  if not vidgen_tf.presets.load_preset_config(name)[0].startswith("video_diffusion")]


@pytest.mark.large
@pytest.mark.parametrize("preset", CLIENT_PRESETS)
def test_every_preset_through_the_three_clients(preset, tmp_path):
    """Each preset's export gives the same videos to the ONNX, REST and gRPC clients, drawn from the
    inputs' declared distributions: equal to the SavedModel run on those draws (uint8 within one level)."""
    model = vidgen_tf.from_preset(preset)
    version = exporting.export_savedmodel(model, tmp_path, preset=preset)
    onnx_path = exporting.export_onnx(model, tmp_path / f"{preset}.onnx", savedmodel_dir=version, preset=preset)
    description = common.load_description(version)
    frames = None if not model.variable_length else model.num_frames + 3  # a dynamic frame axis takes any length
    label = 0 if model.num_classes else None
    drawn = common.draw_inputs(description, num=2, seed=5, frames=frames, label=label)
    for name, entry in description["signatures"]["serving_default"]["inputs"].items():
        kind = entry["distribution"]["kind"]
        if kind == "uniform":
            assert drawn[name].min() >= entry["distribution"]["low"] and drawn[name].max() < entry["distribution"]["high"]
        elif kind == "label":
            assert np.all(drawn[name] == 0)
    signatures = standins.Signatures(preset, version)
    expected = signatures.run("serving_default", drawn)["video"]
    assert expected.shape[:2] == (2, frames or model.num_frames)

    onnx_videos, _ = onnx_client.generate(onnx_path, num=2, frames=frames, label=label, seed=5)
    assert np.max(np.abs(onnx_videos.astype(int) - expected.astype(int))) <= 1

    rest, thread = standins.start_rest(signatures, port=0)
    grpc_server, target = standins.start_grpc(signatures, port=0)
    try:
        url = f"http://127.0.0.1:{rest.server_port}"
        for request_format in ("columnar", "row"):
            videos = rest_client.generate(url, preset, description, num=2, frames=frames, label=label, seed=5,
                                          request_format=request_format)
            assert np.array_equal(videos, expected), request_format
        videos = grpc_client.generate(target, preset, description, num=2, frames=frames, label=label, seed=5)
        assert np.array_equal(videos, expected)
    finally:
        rest.shutdown()
        rest.server_close()
        thread.join(10)
        grpc_server.stop(grace=None).wait(10)


def test_requests_above_the_export_limits_are_refused_before_drawing(hmm_export, capsys):
    description = common.load_description(str(hmm_export["onnx"]))
    assert description["limits"] == {"max_batch_size": 256, "max_frames": 1024}
    with pytest.raises(common.ClientError, match=r"--num 257 is above the export's max_batch_size \(256\)"):
        common.draw_inputs(description, num=257)
    with pytest.raises(common.ClientError, match=r"--num 2147483647 is above the export's max_batch_size"):
        common.draw_inputs(common.load_description(str(hmm_export["version"])), "generate", num=2**31 - 1)
    argv = [str(hmm_export["onnx"]), "--frames", "100000000", "--out", str(hmm_export["base"].parent / "x.npz")]
    assert common.run_main(lambda: onnx_client.main(argv)) == 2
    assert "error: --frames 100000000 is above the export's max_frames (1024)" in capsys.readouterr().err


def test_the_onnx_client_refuses_what_the_graph_reports_invalid(hmm_export, monkeypatch):
    draw = common.draw_inputs

    def nan_noise(*args, **kwargs):
        inputs = draw(*args, **kwargs)
        return dict(inputs, emission_noise=np.full_like(inputs["emission_noise"], np.nan))

    monkeypatch.setattr(common, "draw_inputs", nan_noise)
    with pytest.raises(common.ClientError, match=r"reports its inputs invalid \(inputs_valid is False\)"):
        onnx_client.generate(str(hmm_export["onnx"]), num=2, frames=4)


# ---------------------------------------------------------------------------
# A diffusion model: the ONNX client runs the loop; REST and gRPC call `sample`
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diffusion_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusion")
    model = vidgen_tf.build("video_diffusion", num_frames=4, height=8, width=8, base_filters=8,
                            channel_multipliers=(1, 2), attention_resolutions=(4,), num_classes=2,
                            sampling_steps=3, guidance_scale=1.5)
    kernel = model.denoiser.out_conv.conv.kernel
    kernel.assign(tf.random.stateless_normal(kernel.shape, [0, 1]) * 0.1)  # not the zero network
    version = vidgen_tf.export_savedmodel(model, root / "serving", version=1)
    onnx_path = vidgen_tf.export_onnx(model, root / "video_diffusion.onnx", savedmodel_dir=version)
    return {"model": model, "version": version, "onnx": onnx_path}


def test_the_onnx_client_runs_the_diffusion_loop_and_matches_sample(diffusion_export):
    export = diffusion_export
    sample = tf.saved_model.load(str(export["version"])).signatures["sample"]
    noise = np.random.default_rng(4).standard_normal((2, 4, 8, 8, 1)).astype(np.float32)
    for steps, scale in ((3, None), (2, 0.5)):
        videos, described = onnx_client.sample(export["onnx"], noise, num_steps=steps, label=[0, 1],
                                               guidance_scale=scale)
        expected = sample(noise=tf.constant(noise), num_steps=tf.constant(steps), label=tf.constant([0, 1]),
                          guidance_scale=tf.constant(1.5 if scale is None else scale))["video"].numpy()
        assert videos.dtype == np.uint8 and videos.shape == expected.shape
        assert np.max(np.abs(videos.astype(int) - expected.astype(int))) <= 1
    assert described["signatures"]["step"]["loop"]["num_steps_default"] == 3
    # generate() draws the noise and labels from the seed, and runs the same loop.
    videos, _ = onnx_client.generate(str(export["onnx"]), num=2, seed=1, label=1)
    assert videos.shape == (2, 4, 8, 8, 1)
    with pytest.raises(common.ClientError, match="positive integer"):
        onnx_client.sample(export["onnx"], noise, num_steps=0)


def test_rest_and_grpc_clients_call_the_diffusion_sample(diffusion_export):
    export = diffusion_export
    description = common.load_description(export["version"])
    inputs = common.draw_inputs(description, "sample", num=2, seed=3, label=1, num_steps=2)
    assert int(inputs["num_steps"]) == 2 and float(inputs["guidance_scale"]) == 1.5
    assert int(common.draw_inputs(description, "sample", num=1)["num_steps"]) == 3  # the export's default
    with pytest.raises(common.ClientError, match="guidance_scale.*at least 0"):
        common.draw_inputs(description, "sample", num=1, guidance_scale=-1.0)
    signatures = standins.Signatures("video_diffusion", export["version"])
    expected = signatures.signatures["sample"](**{k: tf.constant(v) for k, v in inputs.items()})["video"].numpy()
    rest, thread = standins.start_rest(signatures, port=0)
    grpc_server, target = standins.start_grpc(signatures, port=0)
    try:
        url = f"http://127.0.0.1:{rest.server_port}"
        for videos in (rest_client.generate(url, "video_diffusion", description, num=2, seed=3, label=1,
                                            signature="sample", num_steps=2),
                       grpc_client.generate(target, "video_diffusion", description, num=2, seed=3, label=1,
                                            signature="sample", num_steps=2)):
            assert np.array_equal(videos, expected)
        assert [name for name, _ in signatures.requests] == ["sample", "sample"]
    finally:
        rest.shutdown()
        rest.server_close()
        thread.join(10)
        grpc_server.stop(grace=None).wait(10)
