"""The export description: every model says how its noise is drawn, every export carries it,
and `describe()` reads it back from a SavedModel or an ONNX file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests.test_keras_saving import TINY
from vidgen_tf import exporting
from vidgen_tf.exporting import description as desc

CONDITIONAL = {"dcgan", "dvdgan", "mocogan", "tgan", "vgan", "video_diffusion"}


def tiny(name, **overrides):
    return vidgen_tf.build(name, **{**TINY[name], **overrides})


def test_every_registered_model_has_a_tiny_config_here():
    assert set(vidgen_tf.list_models()) == set(TINY)


def test_hmm_describes_state_noise_as_uniform_and_emission_noise_by_emission():
    gaussian = exporting.describe_model(tiny("hmm"))["signatures"]["serving_default"]["inputs"]
    assert gaussian["state_noise"]["distribution"] == {"kind": "uniform", "low": 0.0, "high": 1.0}
    assert gaussian["emission_noise"]["distribution"] == {"kind": "normal", "mean": 0.0, "stddev": 1.0}
    bernoulli = exporting.describe_model(tiny("hmm", emission="bernoulli"))["signatures"]["serving_default"]["inputs"]
    assert bernoulli["emission_noise"]["distribution"] == {"kind": "uniform", "low": 0.0, "high": 1.0}


@pytest.mark.parametrize(
    "name,num_classes", [(name, 0) for name in sorted(TINY)] + [(name, 3) for name in sorted(CONDITIONAL)]
)
def test_every_models_description_matches_its_noise_spec(name, num_classes):
    model = tiny(name, **({"num_classes": num_classes} if num_classes else {}))
    described = exporting.describe_model(model, preset="my_preset")
    json.loads(desc.to_json(described))  # JSON-serialisable
    assert described["format"] == "vidgen_tf.export/1" and described["model"] == name
    assert described["class"] == type(model).__name__ and described["preset"] == "my_preset"
    assert described["video"] == {
        "num_frames": model.num_frames, "variable_length": model.variable_length, "height": model.height,
        "width": model.width, "channels": model.channels, "num_classes": num_classes, "layout": "NTHWC",
    }
    expected_signatures = {"serving_default", "generate"} | (
        {"log_prob", "log_prob_uint8"} if getattr(model, "has_log_prob", False) else set())
    expected_signatures |= set(vidgen_tf.exporting.streaming.streaming_signature_names(model))
    sampling = []  # the sampling inputs of a diffusion model's serving_default (its `sample`)
    if getattr(model, "is_diffusion", False):
        expected_signatures |= {"sample", "denoise", "step"}
        sampling = ["num_steps"]
    assert set(described["signatures"]) == expected_signatures

    inputs = described["signatures"]["serving_default"]["inputs"]
    frames = None if model.variable_length else model.num_frames
    spec = model.noise_spec(num_frames=frames)
    guidance = ["guidance_scale"] if sampling and num_classes else []
    assert list(inputs) == list(spec) + sampling + (["label"] if num_classes else []) + guidance
    for key, tensor_spec in spec.items():
        assert inputs[key]["dtype"] == tensor_spec.dtype.name
        assert inputs[key]["shape"] == tensor_spec.shape.as_list()
        assert inputs[key]["distribution"] == model.noise_distributions()[key]
        # The frames axis is dynamic where the spec's length follows num_frames.
        follows = len(tensor_spec.shape) > 1 and model.noise_spec(num_frames=5)[key].shape[1] == 5
        axes = {"0": "batch", "1": "frames"} if model.variable_length and follows else {"0": "batch"}
        assert inputs[key]["dynamic_axes"] == axes, key
    if num_classes:
        assert inputs["label"] == {"dtype": "int32", "shape": [None], "dynamic_axes": {"0": "batch"},
                                   "distribution": {"kind": "label", "num_classes": num_classes}}
    video = described["signatures"]["serving_default"]["outputs"]["video"]
    assert video["dtype"] == "uint8" and video["range"] == [0, 255]
    assert video["shape"] == [None, frames, model.height, model.width, model.channels]


# What each model's sample_noise draws, read from its code (see the report).
EXPECTED_KINDS = {
    "dcgan": {"latent": "uniform"},
    "dvdgan": {"latent": "normal", "frame_noise": "normal"},
    "hmm": {"state_noise": "uniform", "emission_noise": "normal"},
    "kvae": {"state_noise": "normal", "observation_noise": "normal"},
    "mocogan": {"content": "normal", "motion_noise": "normal", "motion_init": "normal"},
    "tgan": {"latent": "uniform"},
    "vgan": {"latent": "normal"},
    "video_diffusion": {"noise": "normal"},
    "video_vae": {"latent": "normal"},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_noise_distributions_say_what_sample_noise_draws(name):
    model = tiny(name)
    distributions = model.noise_distributions()
    assert {k: d["kind"] for k, d in distributions.items()} == EXPECTED_KINDS[name]
    noise = model.sample_noise(512, tf.constant([3, 4], tf.int64))
    for key, kind in distributions.items():
        values = noise[key].numpy().astype(np.float64).ravel()
        if kind["kind"] == "uniform":
            assert values.min() >= kind["low"] and values.max() < kind["high"], key
            span = kind["high"] - kind["low"]
            assert values.min() < kind["low"] + 0.05 * span and values.max() > kind["high"] - 0.05 * span, key
            assert abs(values.std() - span / np.sqrt(12)) < 0.05 * span, key
        else:
            assert abs(values.mean() - kind["mean"]) < 0.1 and abs(values.std() - kind["stddev"]) < 0.1, key


def test_noise_distributions_must_name_the_noise_spec_inputs():
    model = tiny("vgan")
    model.noise_distributions = lambda: {"z": desc.normal()}
    with pytest.raises(ValueError, match=r"describes \['z'\] but its noise_spec\(\) has \['latent'\]"):
        exporting.describe_model(model)


def test_describe_model_rejects_an_unknown_signature():
    with pytest.raises(ValueError, match="exports no signature \\['stream'\\]"):
        exporting.describe_model(tiny("vgan"), signatures=["stream"])


def test_describe_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        exporting.describe(tmp_path / "nothing")
    (tmp_path / "model.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(exporting.MissingDescriptionError, match="model.onnx"):
        exporting.describe(tmp_path / "model.onnx")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not an export"):
        exporting.describe(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="neither a SavedModel directory"):
        exporting.describe(tmp_path)
    version = tmp_path / "base" / "7"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match=r"holds no vidgen_tf description: .*7/assets/vidgen_export.json"):
        exporting.describe(tmp_path / "base")
    (version / "assets").mkdir()
    (version / "assets" / "vidgen_export.json").write_text('{"format": "someone-else/3"}')
    with pytest.raises(ValueError, match="format 'someone-else/3'"):
        exporting.describe(version)


def test_describe_reads_an_onnx_file_without_the_entry_as_a_clear_error(tmp_path):
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp_path / "plain.onnx")
    with pytest.raises(exporting.MissingDescriptionError, match="no 'vidgen_export' entry"):
        exporting.describe(tmp_path / "plain.onnx")


def test_describe_picks_the_newest_numbered_version(tmp_path):
    for version, model in (("2", "old"), ("10", "new"), ("9", "older")):
        assets = tmp_path / version / "assets"
        assets.mkdir(parents=True)
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
        (assets / "vidgen_export.json").write_text(json.dumps({"format": desc.FORMAT, "model": model}))
    assert exporting.describe(tmp_path)["model"] == "new"
    assert exporting.describe(tmp_path / "2")["model"] == "old"


@pytest.mark.large
def test_hmm_exports_carry_the_description_and_both_formats_agree(tmp_path):
    import onnx
    import onnxruntime

    model = tiny("hmm")
    version_dir = vidgen_tf.export_savedmodel(model, tmp_path / "serving", version=4, preset="hmm_tiny")
    asset = version_dir / "assets" / "vidgen_export.json"
    saved = json.loads(asset.read_text())  # what a client without TensorFlow does
    assert saved == exporting.describe(version_dir) == exporting.describe(tmp_path / "serving" / "hmm")
    assert saved == {**exporting.describe_model(model, preset="hmm_tiny")}
    assert set(saved["signatures"]) == set(tf.saved_model.load(str(version_dir)).signatures)

    path = vidgen_tf.export_onnx(model, tmp_path / "hmm.onnx", savedmodel_dir=version_dir, preset="hmm_tiny")
    from_onnx = exporting.describe(path)
    proto = onnx.load(str(path), load_external_data=False)
    assert json.loads({p.key: p.value for p in proto.metadata_props}["vidgen_export"]) == from_onnx
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["vidgen_export"]) == from_onnx
    for key in ("format", "model", "class", "preset", "video"):
        assert from_onnx[key] == saved[key], key
    serving, onnx_serving = saved["signatures"]["serving_default"], from_onnx["signatures"]["serving_default"]
    assert onnx_serving["inputs"] == serving["inputs"]
    assert [i.name for i in session.get_inputs()] == list(serving["inputs"])
    assert onnx_serving["outputs"]["video"] == serving["outputs"]["video"]
    assert set(from_onnx["signatures"]) == {"serving_default"}
    report = json.loads(Path(f"{path}.parity.json").read_text())
    assert from_onnx["parity"]["onnx"] == {"checks": 8, "max_abs_diff": report["max_abs_diff_uint8"],
                                           "tolerance": 1, "output": "video"}
    assert from_onnx["parity"]["onnx_float"]["max_abs_diff"] == report["max_abs_diff_float"]
    assert from_onnx["versions"]["opset"] == 17
    for library in ("tf2onnx", "onnx", "onnxruntime"):
        assert from_onnx["versions"][library] == report["versions"][library]
    assert saved["versions"]["tensorflow"] == tf.__version__ and "tf2onnx" not in saved["versions"]

    # A client draws the inputs as the description says; the ONNX model takes them.
    rng = np.random.default_rng(0)
    inputs = exporting.draw_inputs(onnx_serving, rng, batch_size=3, num_frames=7)
    assert 0.0 <= inputs["state_noise"].min() and inputs["state_noise"].max() < 1.0
    video = session.run(["video"], inputs)[0]
    assert video.shape == (3, 7, 2, 2, 1) and video.dtype == np.uint8

    # log_prob_uint8 scores uint8 videos as log_prob scores x / 127.5 - 1.
    loaded = tf.saved_model.load(str(version_dir))
    as_uint8 = rng.integers(0, 256, (2, 5, 2, 2, 1)).astype(np.uint8)
    as_float = as_uint8.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(
        loaded.signatures["log_prob_uint8"](videos=tf.constant(as_uint8))["log_prob"].numpy(),
        loaded.signatures["log_prob"](videos=tf.constant(as_float))["log_prob"].numpy(), rtol=1e-6)


@pytest.mark.large
def test_saved_model_cli_lists_every_described_signature(tmp_path):
    model = tiny("video_vae")
    version_dir = vidgen_tf.export_savedmodel(model, tmp_path, version=1)
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run([str(cli), "show", "--all", "--dir", str(version_dir)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    for name, entry in exporting.describe(version_dir)["signatures"].items():
        assert f"signature_def['{name}']" in result.stdout
        for key in entry["inputs"]:
            assert f"inputs['{key}']" in result.stdout


@pytest.mark.large
def test_describe_and_the_clients_refuse_a_savedmodel_and_onnx_of_different_weights(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))
    import _client_common

    first, second = tiny("hmm"), tiny("hmm")
    first.set_weights([w + 0.5 for w in second.get_weights()])
    assert exporting.description.weights_digest(first) != exporting.description.weights_digest(second)
    killed = tmp_path / ".hmm.export.0123abcd.tmp.export"  # the staging of an export killed midway
    (killed / "hmm").mkdir(parents=True)
    (killed / "hmm.onnx").write_bytes(b"half")
    written = exporting.export_bundle(first, tmp_path)
    assert written == {"savedmodel": tmp_path / "hmm" / "1", "onnx": tmp_path / "hmm.onnx"}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # the killed one's debris is gone
    digest = exporting.description.weights_digest(first)
    for path in (written["savedmodel"], written["onnx"], tmp_path / "hmm"):
        assert exporting.describe(path)["weights_digest"] == digest
        assert _client_common.load_description(str(path))["weights_digest"] == digest
    assert exporting.describe(written["onnx"])["paired_savedmodel"] == "hmm/1"

    with pytest.raises(exporting.ExportMismatchError, match="holds other weights"):
        exporting.export_onnx(second, tmp_path / "other.onnx", savedmodel_dir=written["savedmodel"])
    exporting.export_savedmodel(second, tmp_path, version=1, overwrite=True)  # half of the pair replaced
    for path in (written["savedmodel"], written["onnx"], tmp_path / "hmm"):
        with pytest.raises(exporting.ExportMismatchError, match="come from different weights"):
            exporting.describe(path)
        with pytest.raises(_client_common.ClientError, match="come from different weights"):
            _client_common.load_description(str(path))
    assert exporting.describe(written["onnx"], check_pairs=False)["weights_digest"] == digest
