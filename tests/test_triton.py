"""`vidgen export --format triton`: a Triton model repository whose configs match the ONNX graph and the SavedModel."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import vidgen_tf
from vidgen_tf import cli
from vidgen_tf.exporting import triton

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")

REPO = Path(__file__).resolve().parent.parent
TINY_HMM = dict(num_frames=4, height=8, width=8, num_states=3, emission="bernoulli")
# onnxruntime's and TensorFlow's type names -> Triton's.
ORT_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(uint8)": "TYPE_UINT8", "tensor(bool)": "TYPE_BOOL",
             "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64"}
TF_TYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL", "int32": "TYPE_INT32",
            "int64": "TYPE_INT64"}


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_config(path):
    """config.pbtxt parsed by Triton's own message (tritonclient's `ModelConfig`)."""
    return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())


def full_shape(tensor, config):
    """The tensor's whole shape as the model sees it: the batch axis (-1) first when the model batches,
    and its `reshape` when it has one."""
    dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
    return ([-1] if config.max_batch_size > 0 else []) + dims


def type_name(data_type):
    return model_config_pb2.DataType.Name(data_type)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "tiny_hmm"
    vidgen_tf.presets.save_preset(vidgen_tf.build("hmm", **TINY_HMM), path, weights=False)
    return path


@pytest.fixture(scope="module")
def repository(preset, tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    assert cli.main(["export", str(preset), "--format", "triton", "--out", str(out)]) == 0
    return out


def test_the_repository_has_tritons_layout_and_configs(repository):
    assert sorted(p.name for p in repository.iterdir()) == ["hmm", "hmm_tf", triton.MARKER]
    assert (repository / "hmm" / "1" / "model.onnx").is_file()
    assert (repository / "hmm_tf" / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    limit = vidgen_tf.exporting.describe(repository / "hmm_tf" / "1" / "model.savedmodel")["limits"]["max_batch_size"]
    for name, platform in (("hmm", "onnxruntime_onnx"), ("hmm_tf", "tensorflow_savedmodel")):
        config = read_config(repository / name / "config.pbtxt")
        assert config.name == name and config.platform == platform
        assert config.max_batch_size == limit == 64
        assert config.HasField("dynamic_batching")
        assert list(config.version_policy.specific.versions) == [1]
        assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
    # Both models come from the same weights.
    digests = {vidgen_tf.exporting.describe(path)["weights_digest"]
               for path in (repository / "hmm" / "1" / "model.onnx", repository / "hmm_tf" / "1" / "model.savedmodel")}
    assert len(digests) == 1


def test_the_onnx_config_matches_the_onnx_graph(repository):
    import onnxruntime

    config = read_config(repository / "hmm" / "config.pbtxt")
    session = onnxruntime.InferenceSession(str(repository / "hmm" / "1" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    for declared, actual in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
        assert [t.name for t in declared] == [t.name for t in actual]
        for tensor, graph in zip(declared, actual):
            assert type_name(tensor.data_type) == ORT_TYPES[graph.type], tensor.name
            assert full_shape(tensor, config) == [d if isinstance(d, int) else -1 for d in graph.shape], tensor.name
    assert [t.name for t in config.output] == ["inputs_valid", "video", "video_float"]


def test_the_savedmodel_config_matches_the_serving_signature(repository):
    import tensorflow as tf

    config = read_config(repository / "hmm_tf" / "config.pbtxt")
    version = repository / "hmm_tf" / "1" / "model.savedmodel"
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    described = vidgen_tf.exporting.describe(version)["signatures"]["serving_default"]
    _, inputs = signature.structured_input_signature
    assert sorted(t.name for t in config.input) == sorted(inputs)
    for tensor in config.input:
        spec = inputs[tensor.name]
        assert type_name(tensor.data_type) == TF_TYPES[spec.dtype.name]
        # The signature takes any shape and checks the described one itself.
        shape = spec.shape.as_list() if spec.shape.rank is not None else described["inputs"][tensor.name]["shape"]
        assert full_shape(tensor, config) == [-1 if d is None else d for d in shape], tensor.name
    outputs = signature.structured_outputs
    assert sorted(t.name for t in config.output) == sorted(outputs) == ["video"]
    for tensor in config.output:
        assert type_name(tensor.data_type) == TF_TYPES[outputs[tensor.name].dtype.name]
        assert full_shape(tensor, config) == [-1 if d is None else d for d in outputs[tensor.name].shape.as_list()]

    # The signature takes a request shaped by the config and answers in the config's shape.
    feed = {t.name: tf.random.uniform([2 if d == -1 and i == 0 else 4 if d == -1 else d
                                       for i, d in enumerate(full_shape(t, config))]) for t in config.input}
    video = signature(**feed)["video"]
    assert video.dtype == tf.uint8 and video.shape == (2, 4, 8, 8, 1)


def test_the_onnx_model_runs_on_inputs_built_from_its_config(repository):
    import onnxruntime

    config = read_config(repository / "hmm" / "config.pbtxt")
    rng = np.random.default_rng(0)
    sizes = {0: 3}  # batch 3; every other dynamic axis (the frames) 4
    feed = {}
    for tensor in config.input:
        shape = [sizes.get(axis, 4) if d == -1 else d for axis, d in enumerate(full_shape(tensor, config))]
        feed[tensor.name] = rng.uniform(0, 1, shape).astype(np.float32)  # the HMM's noise is U[0, 1)
    session = onnxruntime.InferenceSession(str(repository / "hmm" / "1" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    valid, video, video_float = session.run([t.name for t in config.output], feed)
    assert valid.shape == (3,) and valid.all()
    assert video.dtype == np.uint8 and video.shape == (3, 4, 8, 8, 1) and video_float.shape == video.shape
    feed["state_noise"][1, 0] = np.nan  # one invalid request: the whole batch says so (its validity is the batch's)
    assert not session.run(["inputs_valid"], feed)[0].any()


def test_config_text_is_the_same_by_hand_and_by_protobuf(repository, monkeypatch):
    for name, platform in (("hmm", triton.ONNX_PLATFORM), ("hmm_tf", triton.SAVEDMODEL_PLATFORM)):
        version = repository / name / "1"
        if platform == triton.ONNX_PLATFORM:
            inputs, outputs = triton.onnx_tensors(version / "model.onnx")
        else:
            inputs, outputs = triton.savedmodel_tensors(version / "model.savedmodel")
        config = triton.model_config(name, platform, inputs, outputs, 64, 1, batching=True)
        written = (repository / name / "config.pbtxt").read_text()
        assert triton.config_text(config) == written
        with monkeypatch.context() as patch:
            patch.setattr(triton, "_model_config_pb2", lambda: None)  # no tritonclient
            assert triton.config_text(config) == written


def test_importing_vidgen_tf_does_not_import_tritonclient():
    code = ("import sys; sys.modules['tritonclient'] = None\n"  # as if absent: importing it raises ImportError
            "import vidgen_tf, vidgen_tf.exporting, vidgen_tf.cli.export\n"
            "from vidgen_tf.exporting import triton\n"
            "assert triton._model_config_pb2() is None\n"
            "print(triton.config_text(triton.model_config('m', triton.ONNX_PLATFORM, [('x', 'float32', [None, 3])],"
            " [('y', 'uint8', [None])], 8, 1, True)), end='')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    config = text_format.Parse(done.stdout, model_config_pb2.ModelConfig())
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [3]
    assert config.output[0].HasField("reshape") and list(config.output[0].dims) == [1]


def test_a_foreign_folder_is_refused_and_a_repository_replaced_only_when_told(capsys, tmp_path, preset, repository):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for flags in ([], ["--overwrite"]):
        code, _, err = run(capsys, "export", preset, "--format", "triton", "--out", foreign, *flags)
        assert code == 2 and "is not a Triton repository vidgen wrote" in err
        assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "mine"

    code, _, err = run(capsys, "export", preset, "--format", "triton", "--out", repository)
    assert code == 2 and f"{repository / 'hmm' / '1'} already exists; pass --overwrite" in err

    copy = tmp_path / "repo"
    subprocess.run(["cp", "-a", str(repository), str(copy)], check=True)
    (copy / "theirs").mkdir()  # someone's model beside vidgen's: not replaced, even when told
    code, _, err = run(capsys, "export", preset, "--format", "triton", "--out", copy, "--overwrite")
    assert code == 2 and "['theirs'], which vidgen did not write" in err
    (copy / "theirs").rmdir()

    old = (copy / "hmm" / "1" / "model.onnx").read_bytes()
    (copy / "hmm" / "config.pbtxt").write_text("stale")
    code, out, err = run(capsys, "export", preset, "--format", "triton", "--out", copy, "--overwrite")
    assert code == 0, err
    assert f"triton: {copy / 'hmm'} ({copy / 'hmm' / '1' / 'model.onnx'}, config.pbtxt: max_batch_size 64" in out
    assert (copy / "hmm" / "1" / "model.onnx").read_bytes() != old  # new weights (the preset has none saved)
    assert read_config(copy / "hmm" / "config.pbtxt").name == "hmm"
    assert not [p.name for p in copy.iterdir() if p.name.startswith(".")]  # no staging left behind


@pytest.mark.parametrize("argv,message", [
    (["--format", "triton,onnx"], "--format triton makes --out a Triton model repository and cannot be combined"),
    (["--format", "triton", "--base-path", "/models"], "--base-path sets the base_path of TF Serving's"),
    (["--format", "tflite"], "--format takes savedmodel and/or onnx, or triton"),
])
def test_bad_triton_options_are_named(capsys, tmp_path, preset, argv, message):
    code, _, err = run(capsys, "export", preset, "--out", tmp_path / "out", *argv)
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()
