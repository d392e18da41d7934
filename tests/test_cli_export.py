"""`vidgen export`: one preset or --all-presets, with TF Serving's models.config and batching.config."""

from pathlib import Path

import pytest
from google.protobuf import text_format

import vidgen_tf
from vidgen_tf import cli
from vidgen_tf.cli import export as cli_export
from vidgen_tf.exporting import streaming

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "tiny_hmm": ("hmm", dict(num_frames=4, height=8, width=8, num_states=3, emission="bernoulli")),
    "tiny_mocogan": ("mocogan", dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                                     generator_width=4, discriminator_width=4)),
}


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_models_config(path):
    """models.config parsed by TF Serving's own message: {name: (base_path, platform)}."""
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(Path(path).read_text(), model_server_config_pb2.ModelServerConfig())
    return {c.name: (c.base_path, c.model_platform) for c in config.model_config_list.config}


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    for preset, (name, config) in TINY.items():
        vidgen_tf.presets.save_preset(vidgen_tf.build(name, **config), zoo / preset, weights=False)
    monkeypatch.setenv("VIDGEN_ZOO", str(zoo))
    assert vidgen_tf.list_presets() == sorted(TINY)
    return zoo


@pytest.mark.large
def test_all_presets_writes_every_model_and_the_serving_configs(capsys, tmp_path, tiny_zoo):
    out = tmp_path / "serving"
    code, text, err = run(capsys, "export", "--all-presets", "--out", out)
    assert code == 0, err
    for preset in TINY:
        assert (out / preset / "1" / "saved_model.pb").is_file() and (out / f"{preset}.onnx").is_file()
        for path in (out / preset, out / f"{preset}.onnx"):
            assert vidgen_tf.exporting.describe(path)["preset"] == preset
        assert f"== {preset}" in text
    assert read_models_config(out / "models.config") == {
        p: (str(out.resolve() / p), "tensorflow") for p in TINY}
    assert (out / "batching.config").read_text() == (REPO / "export" / "batching.config").read_text()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging or temporary left

    # Again: the versions exist. With --overwrite and a container prefix, they are replaced.
    code, _, err = run(capsys, "export", "--all-presets", "--format", "savedmodel", "--out", out)
    assert code == 2 and "tiny_hmm/1 already exists; pass --overwrite" in err
    (out / "tiny_hmm" / "1" / "marker").write_text("old")
    (out / "batching.config").write_text("max_batch_size { value: 4 }\n")
    code, text, err = run(capsys, "export", "--all-presets", "--format", "savedmodel", "--overwrite",
                          "--base-path", "/models", "--out", out)
    assert code == 0, err
    assert not (out / "tiny_hmm" / "1" / "marker").exists() and (out / "tiny_hmm" / "1" / "saved_model.pb").is_file()
    assert read_models_config(out / "models.config") == {p: (f"/models/{p}", "tensorflow") for p in TINY}
    assert (out / "batching.config").read_text() == "max_batch_size { value: 4 }\n"  # the user's file is kept
    assert "(kept the existing file)" in text
    expected = ["batching.config", "models.config"]
    for preset in TINY:
        expected += [preset, f"{preset}.onnx", f"{preset}.onnx.parity.json"]
        model = vidgen_tf.from_preset(preset)
        if streaming.is_streaming(model):  # and the chunk-by-chunk files beside it
            initial, chunk = streaming.onnx_paths(out / f"{preset}.onnx")
            expected += [chunk.name, f"{chunk.name}.parity.json"]
            expected += [initial.name] if streaming.state_specs(model) else []
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)


def test_a_single_export_adds_its_entry_and_keeps_the_others(capsys, tmp_path, tiny_zoo):
    out = tmp_path / "serving"
    out.mkdir()
    (out / "models.config").write_text(
        "# mine\nmodel_config_list {\n  config {\n    name: \"other\"\n    base_path: \"/srv/other\"\n"
        "    model_platform: \"tensorflow\"\n    model_version_policy { all {} }\n  }\n}\n")
    code, text, err = run(capsys, "export", tiny_zoo / "tiny_hmm", "--format", "savedmodel", "--out", out,
                          "--base-path", "/models/")
    assert code == 0, err
    assert (out / "hmm" / "1" / "saved_model.pb").is_file()  # a single export is named after its model
    assert read_models_config(out / "models.config") == {
        "other": ("/srv/other", "tensorflow"), "hmm": ("/models/hmm", "tensorflow")}
    assert "model_version_policy { all {} }" in (out / "models.config").read_text()

    code, _, err = run(capsys, "export", tiny_zoo / "tiny_hmm", "--format", "savedmodel", "--out", out,
                       "--version", 2)
    assert code == 0, err
    assert read_models_config(out / "models.config") == {  # replaced, not added twice
        "other": ("/srv/other", "tensorflow"), "hmm": (str(out.resolve() / "hmm"), "tensorflow")}
    assert sorted(p.name for p in (out / "hmm").iterdir()) == ["1", "2"]


@pytest.mark.parametrize("argv,message", [
    (["export", "--out", "x"], "give a preset (name or directory) or --all-presets"),
    (["export", "tiny_hmm", "--all-presets", "--out", "x"], "give a preset (name or directory) or --all-presets"),
    (["export", "--all-presets", "--format", "onnx,tflite", "--out", "x"], "--format takes savedmodel and/or onnx"),
    (["export", "--all-presets", "--base-path", " ", "--out", "x"], "--base-path must not be empty"),
])
def test_bad_export_options_are_named(capsys, tmp_path, tiny_zoo, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_an_unreadable_models_config_is_named_and_left_alone(capsys, tmp_path, tiny_zoo):
    out = tmp_path / "serving"
    out.mkdir()
    (out / "models.config").write_text("model_config { }\n")
    code, _, err = run(capsys, "export", "tiny_hmm", "--format", "savedmodel", "--out", out)
    assert code == 2 and f"{out / 'models.config'} is not a TF Serving model config" in err
    assert (out / "models.config").read_text() == "model_config { }\n"
    with pytest.raises(cli.UsageError, match="a `config {` block is not closed"):
        (out / "models.config").write_text('model_config_list {\n  config {\n    name: "a"\n')
        cli_export.update_models_config(out, ["hmm"])


def test_export_replaces_only_a_savedmodel_when_told_and_an_unknown_preset_leaves_no_out(capsys, tmp_path):
    preset = tmp_path / "preset"
    name, config = TINY["tiny_hmm"]
    vidgen_tf.presets.save_preset(vidgen_tf.build(name, **config), preset, weights=False)
    out = tmp_path / "serving"
    (out / "hmm" / "1").mkdir(parents=True)
    (out / "hmm" / "1" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "export", preset, "--format", "savedmodel", "--out", out)
    assert code == 2 and f"{out / 'hmm' / '1'} already exists; pass --overwrite to replace it." in err
    code, _, err = run(capsys, "export", preset, "--format", "savedmodel", "--overwrite", "--out", out)
    assert code == 2 and "is not a SavedModel (no saved_model.pb)" in err
    assert [p.name for p in (out / "hmm" / "1").iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["hmm"]

    code, _, err = run(capsys, "export", "no_such_preset", "--out", tmp_path / "new" / "serving")
    assert code == 2 and "no_such_preset" in err
    assert not (tmp_path / "new").exists()


@pytest.mark.large
def test_an_overwrite_killed_midway_keeps_the_old_savedmodel_and_onnx_together(capsys, tmp_path, tiny_zoo,
                                                                              monkeypatch):
    import tf2onnx

    from vidgen_tf import exporting

    out = tmp_path / "exp"
    code, _, err = run(capsys, "export", "tiny_hmm", "--out", out)
    assert code == 0, err
    variables = out / "hmm" / "1" / "variables" / "variables.data-00000-of-00001"
    old_weights, old_onnx = variables.read_bytes(), (out / "hmm.onnx").read_bytes()
    old_parity = (out / "hmm.onnx.parity.json").read_text()

    def killed(*args, **kwargs):  # the process dies while converting, after the SavedModel was written
        raise KeyboardInterrupt

    monkeypatch.setattr(tf2onnx.convert, "from_function", killed)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["export", "tiny_hmm", "--out", str(out), "--overwrite"])  # a preset without weights: new ones
    assert variables.read_bytes() == old_weights
    assert (out / "hmm.onnx").read_bytes() == old_onnx and (out / "hmm.onnx.parity.json").read_text() == old_parity
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging left behind
    digest = exporting.describe(out / "hmm" / "1")["weights_digest"]
    assert exporting.describe(out / "hmm.onnx")["weights_digest"] == digest

    monkeypatch.undo()
    monkeypatch.setenv("VIDGEN_ZOO", str(tiny_zoo))
    code, _, err = run(capsys, "export", "tiny_hmm", "--out", out, "--overwrite")
    assert code == 0, err
    new = exporting.describe(out / "hmm" / "1")["weights_digest"]
    assert new != digest and exporting.describe(out / "hmm.onnx")["weights_digest"] == new
