"""Registry, presets and the package import."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import vidgen_tf
from vidgen_tf import presets

pytestmark = pytest.mark.oldest


def test_import_is_light_and_never_needs_optional_packages():
    # torch is a bench-only extra (bench/vs_pytorch.py): nothing in the package may pull it in.
    code = ("import sys, vidgen_tf; "
            "print('tensorflow_io' in sys.modules, 'hmmlearn' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_list_and_build_by_name():
    assert "mocogan" in vidgen_tf.list_models()
    model = vidgen_tf.build("mocogan", num_frames=4, height=16, width=16, channels=1,
                            generator_width=8, discriminator_width=8)
    assert model.registered_name == "mocogan"
    assert model.video_shape == (4, 16, 16, 1)


def test_unknown_model_lists_known_names_and_the_closest():
    with pytest.raises(KeyError) as info:
        vidgen_tf.build("mocogn")
    message = str(info.value)
    assert "Unknown model 'mocogn'" in message and "mocogan" in message and "Did you mean 'mocogan'" in message


def test_bad_common_config_is_named():
    with pytest.raises(ValueError, match="num_frames"):
        vidgen_tf.build("mocogan", num_frames=0)
    with pytest.raises(ValueError, match="channels"):
        vidgen_tf.build("mocogan", channels=-1)


def test_save_and_load_preset_round_trip(tmp_path):
    model = vidgen_tf.build("mocogan", num_frames=4, height=16, width=16, channels=1,
                            generator_width=8, discriminator_width=8)
    directory = vidgen_tf.save_preset(model, tmp_path / "p", dataset="moving_square", training_steps=12)
    config = json.loads((directory / "config.json").read_text())
    metadata = json.loads((directory / "metadata.json").read_text())
    assert config["model"] == "mocogan" and config["config"]["height"] == 16
    assert metadata["dataset"] == "moving_square" and metadata["training_steps"] == 12
    assert set(metadata["versions"]) == {"vidgen_tf", "tensorflow", "keras"}
    assert not list(directory.glob(".*"))  # no temporary files left
    loaded = vidgen_tf.from_preset(directory)
    np.testing.assert_array_equal(loaded.generate(2, seed=1).numpy(), model.generate(2, seed=1).numpy())


def test_presets_in_the_zoo_load():
    names = vidgen_tf.list_presets()
    assert "mocogan_moving_digits" in names
    for name in names:
        model_name, config, metadata = presets.load_preset_config(name)
        assert model_name in vidgen_tf.list_models()
        assert {"num_frames", "height", "width", "channels"} <= set(config)
        assert (presets.zoo_dir() / name / "README.md").is_file(), f"{name} has no model card"


def test_zoo_dir_of_a_checkout_and_its_override(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDGEN_ZOO", raising=False)
    assert presets.zoo_dir() == Path(__file__).resolve().parent.parent / "zoo"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text('{"model": "mocogan", "config": {}}')
    monkeypatch.setenv("VIDGEN_ZOO", str(tmp_path))
    assert presets.zoo_dir() == tmp_path
    assert vidgen_tf.list_presets() == ["mine"]
    assert presets.resolve_preset("mine") == tmp_path / "mine"


def test_headline_scores_of_the_zoo():
    for name in vidgen_tf.list_presets():
        metadata = presets.load_preset_config(name)[2]
        headline = presets.headline_score(metadata, name)
        if "scored_by" in metadata:  # published: `vidgen eval`'s figures (tests/test_zoo.py reruns them)
            assert headline is not None and headline[0] in metadata["scores"]
    hmm = presets.load_preset_config("hmm_moving_square")[2]
    assert presets.describe_score(*presets.headline_score(hmm)) == (
        f"bits/dim {hmm['scores']['bits_per_dim']['value']:.4g} (512 held-out videos, seed 1)")
    kvae = presets.load_preset_config("kvae_bouncing_balls")[2]
    assert presets.describe_score(*presets.headline_score(kvae)).startswith("bits/dim 0.05096 (upper bound, 512")


def test_headline_score_names_what_is_wrong():
    assert presets.headline_score({}) is None
    assert presets.headline_score({"scores": {"fvd": {"value": 3}}}) is None  # no headline chosen
    assert presets.headline_score({"scores": {"is": {"value": 2.5, "std": 0.125}}, "headline": "is"}) == (
        "is", {"value": 2.5, "std": 0.125})
    assert presets.describe_score("is", {"value": 2.5, "std": 0.125}) == "is 2.5 +- 0.125"
    with pytest.raises(ValueError, match=r"m.json: \"headline\" is 'fvd', which is not in \"scores\" \(recorded: kvd\)"):
        presets.headline_score({"scores": {"kvd": {"value": 1.0}}, "headline": "fvd"}, "m.json")
    with pytest.raises(KeyError, match=r"Unknown score in \"scores\" of m.json 'fdv'.*Did you mean 'fvd'"):
        presets.headline_score({"scores": {"fdv": {"value": 1.0}}, "headline": "fdv"}, "m.json")
    with pytest.raises(ValueError, match=r"m.json: \"scores\".\"fvd\" must be an object with a numeric \"value\""):
        presets.headline_score({"scores": {"fvd": {"value": "41"}}}, "m.json")
    with pytest.raises(ValueError, match=r"m.json: \"scores\" must be an object"):
        presets.headline_score({"scores": [41.0]}, "m.json")


def test_unknown_preset_and_bad_directories_are_named(tmp_path):
    with pytest.raises(KeyError, match="Unknown preset 'mocogan_moving_digit'.*Did you mean 'mocogan_moving_digits'"):
        vidgen_tf.from_preset("mocogan_moving_digit")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        vidgen_tf.from_preset(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid preset config"):
        vidgen_tf.from_preset(tmp_path)


def test_missing_optional_dependency_names_the_extra():
    from vidgen_tf._optional import MissingExtraError, require

    with pytest.raises(MissingExtraError, match=r"pip install 'vidgen-tf\[bench\]'"):
        require("surely_not_installed_module", "bench", "The benchmark")


# ----------------------------------------------------------------------------- presets: overrides, bad files, atomic saves

TINY_MOCOGAN = dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                    generator_width=8, discriminator_width=8)


def _preset(tmp_path, seed=0, **changes):
    import keras

    keras.utils.set_random_seed(seed)
    model = vidgen_tf.build("mocogan", **{**TINY_MOCOGAN, **changes})
    return model, vidgen_tf.save_preset(model, tmp_path / "p", dataset="moving_square")


def _same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_overrides_keep_the_weights_when_shapes_match_and_name_the_weights_that_do_not(tmp_path):
    # From 10 frames on, MoCoGAN's video discriminator at 16x16 has the authors' 4-frame temporal
    # kernels, so its weights (and the generator's) do not depend on the clip length.
    model, directory = _preset(tmp_path, num_frames=10)
    longer = vidgen_tf.from_preset(directory, num_frames=12)
    assert longer.num_frames == 12
    _same_weights(longer, model)
    with pytest.raises(ValueError, match="video_discriminator"):
        vidgen_tf.from_preset(directory, num_frames=4)  # shorter clips get other temporal kernels
    with pytest.raises(ValueError, match="do not fit the model with overrides {'generator_width': 4}") as info:
        vidgen_tf.from_preset(directory, generator_width=4)
    message = str(info.value)
    assert re.search(r"generator/frame_generator/project/kernel: \(\d+, 256\) in the preset, \(\d+, 128\) in the model",
                     message), message
    assert "load_weights=False" in message
    untrained = vidgen_tf.from_preset(directory, generator_width=4, load_weights=False)
    assert untrained.get_config()["generator_width"] == 4


def test_bad_preset_files_are_named(tmp_path):
    _, directory = _preset(tmp_path)
    (directory / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metadata\.json is not a valid preset metadata file: it is not JSON"):
        presets.load_preset_config(directory)
    (directory / "metadata.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"metadata\.json is not a valid preset metadata file: it must be a JSON object"):
        vidgen_tf.from_preset(directory)
    (directory / "metadata.json").write_text("{}")
    for spec, error, message in [
        ({"model": 3, "config": {}}, ValueError, r"config\.json is not a valid preset config file: it must be"),
        ({"model": "mocogan"}, ValueError, r"config\.json is not a valid preset config file"),
        ({"model": "mocogn", "config": {}}, KeyError, r"config\.json does not build a model: Unknown model 'mocogn'"),
        ({"model": "mocogan", "config": {"num_frames": 0}}, ValueError, r"config\.json does not build a model: .*num_frames"),
        ({"model": "mocogan", "config": {"no_such_argument": 1}}, ValueError,
         r"config\.json does not build a model: Unrecognized keyword arguments"),
    ]:
        (directory / "config.json").write_text(json.dumps(spec))
        with pytest.raises(error, match=message):
            vidgen_tf.from_preset(directory)


def test_a_crash_while_saving_keeps_the_old_preset_whole_and_no_debris(tmp_path, monkeypatch):
    old_model, directory = _preset(tmp_path)
    (directory / "README.md").write_text("model card")  # other files of the directory stay
    old_files = {name: (directory / name).read_bytes() for name in presets.PRESET_FILES}
    new_model = vidgen_tf.build("mocogan", **{**TINY_MOCOGAN, "content_dim": 6})

    def crash_midway(self, target, *args, **kwargs):
        target.write(b"\x89HDF half")  # through atomic.save_weights Keras writes into an in-memory file
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save_weights", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        vidgen_tf.save_preset(new_model, directory)
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", *sorted(presets.PRESET_FILES)]
    assert {name: (directory / name).read_bytes() for name in presets.PRESET_FILES} == old_files
    _same_weights(vidgen_tf.from_preset(directory), old_model)


def test_a_save_interrupted_after_its_commit_is_finished_by_the_next_read(tmp_path, monkeypatch):
    _, directory = _preset(tmp_path)
    new_model = vidgen_tf.build("mocogan", **{**TINY_MOCOGAN, "content_dim": 6})
    real_replace = os.replace
    moved = []

    def killed_after_one_file(source, destination):
        if presets._PENDING in str(source) and Path(destination).parent == directory:
            if moved:
                raise KeyboardInterrupt("killed")
            moved.append(destination)
        return real_replace(source, destination)

    monkeypatch.setattr(presets.os, "replace", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        vidgen_tf.save_preset(new_model, directory, training_steps=7)
    monkeypatch.setattr(presets.os, "replace", real_replace)
    # On disk: one new file moved in, the rest still in the committed pending directory.
    assert (directory / presets._PENDING).is_dir()
    loaded = vidgen_tf.from_preset(directory)
    assert loaded.get_config()["content_dim"] == 6 and presets.load_preset_config(directory)[2]["training_steps"] == 7
    _same_weights(loaded, new_model)
    assert sorted(p.name for p in directory.iterdir()) == sorted(presets.PRESET_FILES)


def test_a_preset_saved_without_weights_drops_the_old_weights(tmp_path):
    _, directory = _preset(tmp_path)
    vidgen_tf.save_preset(vidgen_tf.build("mocogan", **{**TINY_MOCOGAN, "content_dim": 6}), directory, weights=False)
    assert not (directory / "model.weights.h5").exists()
    assert vidgen_tf.from_preset(directory).get_config()["content_dim"] == 6


# ----------------------------------------------------------------------------- presets: missing or damaged weights

def test_a_trained_preset_without_its_weights_file_is_an_error_naming_the_file(tmp_path, capsys):
    from vidgen_tf import cli

    _, directory = _preset(tmp_path)
    metadata = json.loads((directory / "metadata.json").read_text())
    (directory / "metadata.json").write_text(json.dumps({**metadata, "training_steps": 300}))
    weights = directory / "model.weights.h5"
    weights.unlink()  # without it the model would generate noise
    with pytest.raises(FileNotFoundError) as raised:
        vidgen_tf.from_preset(directory)
    message = str(raised.value)
    assert str(weights) in message and "300 training steps" in message and "load_weights=False" in message
    untrained = vidgen_tf.from_preset(directory, load_weights=False)  # asked for: built untrained
    assert untrained.get_config()["content_dim"] == TINY_MOCOGAN["content_dim"]
    code = cli.main(["generate", str(directory), "--num", "1", "--out", str(tmp_path / "v.npz")])
    err = capsys.readouterr().err
    assert code == 2 and str(weights) in err and not (tmp_path / "v.npz").exists()
    code = cli.main(["train", str(directory), "--data", "moving_square", "--steps", "1", "--out",
                     str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(weights) in err and "--from-scratch" in err
    weights.mkdir()  # a directory in its place is no weights file either, trained or not
    (directory / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=re.escape(f"{weights} is a directory, not a weights file")):
        vidgen_tf.from_preset(directory)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_weights_file_is_an_error_naming_the_file(tmp_path, damage):
    _, directory = _preset(tmp_path)
    weights = directory / "model.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(b"not an HDF5 file at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ValueError) as raised:
        vidgen_tf.from_preset(directory)
    assert str(raised.value).startswith(f"{weights} is damaged: ")
