"""Presets: a model's configuration, metadata and weights in one directory.

A preset directory holds `config.json` (`{"model": name, "config": {...}}`),
`metadata.json` (versions, dataset, training steps) and, when trained,
`model.weights.h5`. The bundled presets live in `zoo/`; any directory in the same
layout works too.
"""

import json
import os
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from vidgen_tf import registry

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"


def zoo_dir():
    """The directory of bundled presets (`$VIDGEN_ZOO` overrides it)."""
    return Path(os.environ.get("VIDGEN_ZOO", Path(__file__).resolve().parent.parent / "zoo"))


def list_presets():
    """Names of the presets in the zoo, sorted."""
    root = zoo_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path, write):
    """Calls `write(tmp_path)` then renames the file into place (mode as a plain open() gives)."""
    path = Path(path)
    # Keras insists on the '.weights.h5' ending, so the temporary name keeps it.
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_json(path, data):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    _atomic_write(path, write)


def save_preset(model, directory, dataset=None, training_steps=0, description="", weights=True, **metadata):
    """Writes `model` as a preset into `directory` (created if needed).

    Args:
        model: a registered vidgen_tf model.
        directory: str or Path. Where to write.
        dataset: str. Name of the data it was trained on. Defaults to None.
        training_steps: int. Steps it was trained for. Defaults to 0.
        description: str. One line for `vidgen list`.
        weights: bool. Whether to write `model.weights.h5`. Defaults to True.
        **metadata: anything else to record in `metadata.json`.

    Returns:
        The preset directory as a `Path`.
    """
    import vidgen_tf

    name = getattr(model, "registered_name", None)
    if name is None:
        raise TypeError(f"{type(model).__name__} is not a registered vidgen_tf model.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    _write_json(directory / CONFIG_FILE, {"model": name, "config": config})
    info = {
        "description": description,
        "dataset": dataset,
        "training_steps": int(training_steps),
        "versions": {
            "vidgen_tf": vidgen_tf.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
    }
    info.update(metadata)
    _write_json(directory / METADATA_FILE, info)
    if weights:
        # A GAN with a generator EMA stores the EMA weights: they are what it generates with.
        stored = model.preset_model() if hasattr(model, "preset_model") else model
        _atomic_write(directory / WEIGHTS_FILE, stored.save_weights)
    return directory


def resolve_preset(name_or_dir):
    """The directory of a preset given by zoo name or by path."""
    path = Path(name_or_dir)
    if (path / CONFIG_FILE).is_file():
        return path
    candidate = zoo_dir() / str(name_or_dir)
    if (candidate / CONFIG_FILE).is_file():
        return candidate
    if path.exists():
        raise FileNotFoundError(f"'{name_or_dir}' is not a preset directory: it has no {CONFIG_FILE}.")
    raise registry.unknown_name_error("preset", name_or_dir, list_presets())


def load_preset_config(name_or_dir):
    """`(model_name, config, metadata)` of a preset."""
    directory = resolve_preset(name_or_dir)
    try:
        spec = json.loads((directory / CONFIG_FILE).read_text())
        model_name, config = spec["model"], spec["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{directory / CONFIG_FILE} is not a valid preset config: {error}") from error
    metadata_path = directory / METADATA_FILE
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    return model_name, config, metadata


def from_preset(name_or_dir, load_weights=True, **overrides):
    """Builds the model of a preset, with its weights when it has them.

    Args:
        name_or_dir: str or Path. A zoo preset name (see `list_presets()`) or a
            preset directory.
        load_weights: bool. Whether to load `model.weights.h5` when present.
        **overrides: config values to change (weights are then loaded only if
            the shapes still match).
    """
    directory = resolve_preset(name_or_dir)
    model_name, config, _ = load_preset_config(directory)
    config.update(overrides)
    model = registry.build(model_name, **config)
    weights = directory / WEIGHTS_FILE
    if load_weights and weights.is_file():
        model.load_weights(weights)
    return model
