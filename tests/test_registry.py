"""Registry, presets and the package import."""

import json
import subprocess
import sys

import numpy as np
import pytest

import vidgen_tf
from vidgen_tf import presets

pytestmark = pytest.mark.oldest


def test_import_is_light_and_never_needs_optional_packages():
    code = "import sys, vidgen_tf; print('tensorflow_io' in sys.modules, 'hmmlearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


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
