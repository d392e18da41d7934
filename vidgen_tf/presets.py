"""Presets: a model's configuration, metadata and weights in one directory.

A preset directory holds `config.json` (`{"model": name, "config": {...}}`),
`metadata.json` (versions, dataset, training steps) and, when trained,
`model.weights.h5`. The bundled presets live in the repository's `zoo/`, which
the wheel ships as `vidgen_tf/zoo` (see `zoo_dir`); any directory in the same
layout works too. `save_preset` writes the three files as one atomic step (see its
docstring), so a crash never leaves a new config beside old weights.
"""

import importlib.resources
import json
import os
import shutil
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

from vidgen_tf import atomic, registry

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"


# The kinds of file a zoo preset may hold; setup.cfg ships exactly these in the wheel.
ZOO_FILE_TYPES = (".json", ".md", ".h5", ".keras", ".gif", ".png")


def zoo_dir():
    """The directory of bundled presets.

    `$VIDGEN_ZOO` overrides it. An installed wheel holds the repository's `zoo/`
    as the data folder `vidgen_tf/zoo` (found through importlib.resources); a
    checkout (an editable install, or the repository on `PYTHONPATH`) has no such
    folder and reads its top-level `zoo/`.
    """
    override = os.environ.get("VIDGEN_ZOO")
    if override:
        return Path(override)
    bundled = importlib.resources.files("vidgen_tf") / "zoo"
    if isinstance(bundled, Path) and bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parent.parent / "zoo"


def _is_hidden(path):
    """A dot-named folder (a write's staging or leftovers, see `vidgen_tf.atomic`): never a preset."""
    return Path(path).name.startswith(".") and Path(path).name not in (".", "..")


def list_presets():
    """Names of the presets in the zoo, sorted (dot-named folders, such as a write's staging, are none)."""
    root = zoo_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not _is_hidden(p) and (p / CONFIG_FILE).is_file())


# A save is staged in a temporary directory, committed by renaming it to this name
# inside the preset directory, then its files are moved into place. Readers finish
# a save a crash interrupted after its commit (see `_finish_interrupted_save`).
_PENDING = ".preset-new"
_MANIFEST = "files.json"  # in the pending directory: the files of the new preset
PRESET_FILES = (CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def _finish_interrupted_save(directory):
    """Moves the files of a committed save into `directory` (nothing when none is pending).

    Every step can be repeated, so a crash during this function is finished by the
    next call. Files of the preset that the new one does not have (the weights, after
    `weights=False`) are deleted, so old weights never stay beside a new config.
    """
    pending = Path(directory) / _PENDING
    if not pending.is_dir():
        return
    try:
        names = json.loads((pending / _MANIFEST).read_text())
    except FileNotFoundError:  # every file was moved already (the manifest goes last)
        shutil.rmtree(pending, ignore_errors=True)
        return
    try:
        for name in names:
            try:
                os.replace(pending / name, Path(directory) / name)
            except FileNotFoundError:  # moved by an earlier, interrupted call
                pass
        for name in set(PRESET_FILES) - set(names):
            (Path(directory) / name).unlink(missing_ok=True)
        (pending / _MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(pending, ignore_errors=True)
    except PermissionError as error:
        raise PermissionError(
            f"Preset {directory} holds an interrupted save in {pending} that cannot be finished "
            f"here ({error}); finish it where the directory is writable (any preset read does)."
        ) from error
    atomic.fsync(directory, directory=True)


def save_preset(model, directory, dataset=None, training_steps=0, description="", weights=True, **metadata):
    """Writes `model` as a preset into `directory` (created if needed), as one atomic step.

    The new `config.json`, `metadata.json` and `model.weights.h5` are written into a
    temporary directory, which one rename commits; then they replace the old files.
    A crash before the commit leaves the old preset, a crash after it the new one
    (whoever reads the preset next finishes the move), never a mixture. Other files
    in `directory` (a run's checkpoints, a model card) are left alone.

    Args:
        model: a registered vidgen_tf model.
        directory: str or Path. Where to write.
        dataset: str. Name of the data it was trained on. Defaults to None.
        training_steps: int. Steps it was trained for. Defaults to 0.
        description: str. One line for `vidgen list`.
        weights: bool. Whether to write `model.weights.h5`; when False, weights of
            an older preset in `directory` are deleted. Defaults to True.
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
    _finish_interrupted_save(directory)
    with atomic.atomic_directory(directory / _PENDING) as staging:
        files = [CONFIG_FILE, METADATA_FILE]
        _write_json(staging / CONFIG_FILE, {"model": name, "config": config})
        _write_json(staging / METADATA_FILE, info)
        if weights:
            # A GAN with a generator EMA stores the EMA weights: they are what it generates with.
            stored = model.preset_model() if hasattr(model, "preset_model") else model
            atomic.save_weights(stored, staging / WEIGHTS_FILE)
            files.append(WEIGHTS_FILE)
        _write_json(staging / _MANIFEST, files)
    _finish_interrupted_save(directory)
    return directory


def resolve_preset(name_or_dir):
    """The directory of a preset given by zoo name or by path.

    A save into that directory that a crash interrupted after its commit is finished
    first, so the files read next all belong to one preset. A dot-named folder (the
    staging or leftovers of a write, `.<name>.<token>.tmp`) is never a preset.
    """
    path = Path(name_or_dir)
    if _is_hidden(path):
        raise FileNotFoundError(f"'{name_or_dir}' is a hidden folder (such as the staging of an unfinished write), "
                                "not a preset.")
    for candidate in (path, zoo_dir() / str(name_or_dir)):
        _finish_interrupted_save(candidate)
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    if path.exists():
        raise FileNotFoundError(f"'{name_or_dir}' is not a preset directory: it has no {CONFIG_FILE}.")
    raise registry.unknown_name_error("preset", name_or_dir, list_presets())


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not a valid preset {what} file: it is not JSON ({error}).") from error


def load_preset_config(name_or_dir):
    """`(model_name, config, metadata)` of a preset.

    Raises:
        ValueError: `config.json` or `metadata.json` is not valid; the message names the file.
    """
    directory = resolve_preset(name_or_dir)
    config_path = directory / CONFIG_FILE
    spec = _read_json(config_path, "config")
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), str) or not isinstance(spec.get("config"), dict):
        raise ValueError(
            f"{config_path} is not a valid preset config file: it must be a JSON object "
            f'{{"model": <model name>, "config": {{...}}}}, got {json.dumps(spec)[:200]}.'
        )
    metadata_path = directory / METADATA_FILE
    metadata = _read_json(metadata_path, "metadata") if metadata_path.is_file() else {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{metadata_path} is not a valid preset metadata file: it must be a JSON object, "
                         f"got {json.dumps(metadata)[:200]}.")
    return spec["model"], spec["config"], metadata


# The scores a preset's metadata.json may record, under the names `vidgen eval` gives them:
# its sample metrics (`--metrics`) and the held-out likelihood figures of its report.
# Precision, recall, density and coverage are fractions (higher is better); memorisation is the ratio of the
# generated clips' median nearest-training-clip distance to held-out real clips' (about 1 unless it copies).
SCORE_NAMES = ("fvd", "kvd", "fid", "kid", "is", "motion", "nll_nats_per_video", "bits_per_dim",
               "precision", "recall", "density", "coverage", "memorisation", "digit_consistency", "digit_class_bits",
               "digit_label_match")


def headline_score(metadata, source="metadata.json"):
    """The preset's headline score as `(name, entry)`, or None when it records none.

    Scores live in `metadata.json` as `"scores": {name: entry}`, one entry per
    metric of `SCORE_NAMES`, and `"headline": name` picks the one `vidgen list`
    shows. An entry is `{"value": float}` plus its recipe in the names of
    `vidgen eval`'s report and `Score.to_dict()`: for sample metrics `num_real`,
    `num_fake`, `feature_network`, `std` and `seed`; for likelihoods
    `num_videos`, `seed` and `bound` (the value is an upper bound on the NLL).
    For example `{"scores": {"fvd": {"value": 41.2, "num_real": 256,
    "num_fake": 256, "feature_network": "vidgen-synthetic-v1", "seed": 0}},
    "headline": "fvd"}`.

    Args:
        metadata: dict. A preset's metadata (see `load_preset_config`).
        source: str or Path. Where it was read, for the errors. Defaults to
            "metadata.json".

    Raises:
        ValueError: `scores` or `headline` is malformed, names an unknown
            metric, or the headline names a score that is not recorded; the
            message names `source` and the key.
    """
    scores = metadata.get("scores", {})
    headline = metadata.get("headline")
    if not isinstance(scores, dict):
        raise ValueError(f'{source}: "scores" must be an object {{metric: {{"value": ...}}}}, got {scores!r}.')
    for name, entry in scores.items():
        if name not in SCORE_NAMES:
            raise registry.unknown_name_error(f'score in "scores" of {source}', name, list(SCORE_NAMES))
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{source}: "scores"."{name}" must be an object with a numeric "value", got {entry!r}.')
    if headline is None:
        return None
    if headline not in scores:
        recorded = ", ".join(sorted(scores)) or "none"
        raise ValueError(f'{source}: "headline" is {headline!r}, which is not in "scores" (recorded: {recorded}).')
    return headline, scores[headline]


def describe_score(name, entry):
    """One line for a score entry of `headline_score`, its recipe beside the figure."""
    label = {"bits_per_dim": "bits/dim", "nll_nats_per_video": "nll nats/video"}.get(name, name)
    spread = f" +- {entry['std']:.3g}" if entry.get("std") is not None else ""
    recipe = ["upper bound"] if entry.get("bound") else []
    if entry.get("num_real") is not None:
        recipe.append(f"{entry['num_real']} real")
    if entry.get("num_fake") is not None:
        recipe.append(f"{entry['num_fake']} generated")
    if entry.get("num_videos") is not None:
        recipe.append(f"{entry['num_videos']} held-out videos")
    if entry.get("seed") is not None:
        recipe.append(f"seed {entry['seed']}")
    if entry.get("feature_network"):
        recipe.append(f"features: {str(entry['feature_network']).split(' (')[0].split(',')[0]}")
    if entry.get("real_value") is not None:
        recipe.append(f"real clips {entry['real_value']:.3g}")
    return f"{label} {entry['value']:.4g}{spread}" + (f" ({', '.join(recipe)})" if recipe else "")


def _shape_mismatches(reference, model):
    """Lines `path: preset shape -> model shape` for the weights whose shapes differ."""
    if len(reference.weights) != len(model.weights):
        return [f"the preset has {len(reference.weights)} weight tensors, the model {len(model.weights)}"]
    return [
        f"{new.path}: {tuple(old.shape)} in the preset, {tuple(new.shape)} in the model"
        for old, new in zip(reference.weights, model.weights)
        if tuple(old.shape) != tuple(new.shape)
    ]


class UnsafeModelFileError(ValueError):
    """A `.keras` file that holds Python code (a Lambda layer, a lambda), refused under safe mode."""


def _code_in_config(config):
    """What Python code a `.keras` config holds: its Lambda layers and serialised lambdas."""
    if isinstance(config, list):
        return [found for value in config for found in _code_in_config(value)]
    if not isinstance(config, dict):
        return []
    if config.get("class_name") == "Lambda":  # one report per layer, whatever its function is
        return [f"a Lambda layer {config.get('config', {}).get('name', '?')!r}"]
    if config.get("class_name") == "__lambda__":
        return ["a Python lambda"]
    return [found for value in config.values() for found in _code_in_config(value)]


def _unsafe_error(path, reason):
    return UnsafeModelFileError(
        f"{path} was not loaded: it holds {reason}, Python code that would run when the file is loaded "
        "(a file from someone else could run anything on this machine). vidgen_tf loads .keras files with "
        "Keras safe_mode=True. If you trust this file (you made it, or it comes from someone you trust), "
        "load it with vidgen_tf.load_model(path, safe_mode=False) or vidgen_tf.from_preset(path, safe_mode=False)."
    )


def _safe_mode_scope(safe_mode):
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # a Keras without it: the argument alone (and the scan above) decide
        import contextlib

        return contextlib.nullcontext()
    return SafeModeScope(safe_mode)


def load_model(path, safe_mode=True, compile=True):
    """Loads a `.keras` file (a zoo model saved with `model.save`), in Keras safe mode.

    Safe mode refuses files that hold Python code: a `Lambda` layer (refused
    here before Keras reads the file, whether its function is a lambda or a
    named function) and any lambda Keras finds while loading. The zoo's
    models hold no such code, so a file that does was not made by the zoo
    alone. `keras.config.enable_unsafe_deserialization()` does not turn this
    loader unsafe: only `safe_mode=False` does.

    Args:
        path: str or Path. The `.keras` file.
        safe_mode: bool. Refuse files holding Python code. Pass False only for
            a file you trust. Defaults to True.
        compile: bool. Compile the model as it was saved (a training run
            resumes exactly). Defaults to True.

    Returns:
        The model.

    Raises:
        FileNotFoundError: `path` does not exist.
        UnsafeModelFileError: (a ValueError) the file holds Python code and
            `safe_mode` is True; the message says how to opt out.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No .keras file at {path}.")
    if path.suffix != ".keras":
        raise ValueError(f"load_model reads .keras files (a zip written by model.save), got {path}.")
    if safe_mode:
        try:
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        except (zipfile.BadZipFile, KeyError, ValueError) as error:
            raise ValueError(f"{path} is not a .keras file: no readable config.json in a zip ({error}).") from error
        code = _code_in_config(config)
        if code:
            raise _unsafe_error(path, "; ".join(code))
    try:
        # Keras lets `keras.config.enable_unsafe_deserialization()` override an explicit
        # safe_mode=True (its scope wins over the argument); the scope makes the argument decide.
        with _safe_mode_scope(bool(safe_mode)):
            return keras.saving.load_model(path, compile=compile, safe_mode=bool(safe_mode))
    except ValueError as error:
        if safe_mode and "safe_mode" in str(error):
            raise _unsafe_error(path, f"code Keras refused in safe mode ({error})") from error
        raise


def recorded_training_steps(metadata):
    """The training steps a preset's metadata records (0 when it records none)."""
    steps = metadata.get("training_steps")
    if isinstance(steps, bool) or not isinstance(steps, (int, float)):
        return 0
    return steps


def weights_file(directory, metadata):
    """The weights file of the preset in `directory`, or None when it has none and records no training.

    A preset whose `metadata.json` records training steps is trained: without its
    weights its model would generate noise, so their absence is an error, not an
    untrained model.

    Args:
        directory: Path. The preset directory (see `resolve_preset`).
        metadata: dict. Its metadata (see `load_preset_config`).

    Raises:
        FileNotFoundError: the metadata records training and `model.weights.h5` is missing.
        ValueError: `model.weights.h5` is a directory (or another non-file).
    """
    weights = Path(directory) / WEIGHTS_FILE
    if weights.is_file():
        return weights
    if weights.exists():
        kind = "a directory" if weights.is_dir() else "not a regular file"
        raise ValueError(f"{weights} is {kind}, not a weights file: preset {directory} holds no weights there.")
    steps = recorded_training_steps(metadata)
    if steps > 0:
        raise FileNotFoundError(
            f"{weights} is missing: preset {directory} records {steps} training steps in its {METADATA_FILE}, "
            "but without its weights file its model would generate noise. Put the file back, or build the model "
            "untrained on purpose (from_preset(..., load_weights=False); `vidgen train --from-scratch`)."
        )
    return None


class DamagedWeightsError(ValueError):
    """A weights file HDF5 cannot read (truncated, or not HDF5 at all); the message names it."""


def load_weights_file(model, weights):
    """`model.load_weights(weights)`; a file HDF5 cannot read is an error naming it.

    Raises:
        DamagedWeightsError: (a ValueError) `weights` is truncated or not an HDF5 file.
        ValueError: the weights do not fit `model` (Keras's message).
    """
    try:
        model.load_weights(weights)
    except OSError as error:  # h5py: "file signature not found", "truncated file: eof = ...", ...
        raise DamagedWeightsError(f"{weights} is damaged: it is not a readable weights file ({error}).") from error


def from_preset(name_or_dir, load_weights=True, safe_mode=True, **overrides):
    """Builds the model of a preset, with its weights when it has them.

    Overrides change the preset's config before the model is built. The weights are
    then loaded when every weight keeps its shape (e.g. an override of a setting that
    holds no weights); when some change shape, loading them all is impossible and
    loading only some would give a half-trained model without saying so, so a
    `ValueError` names each mismatching weight and its two shapes. Pass
    `load_weights=False` to build such a model untrained.

    Args:
        name_or_dir: str or Path. A zoo preset name (see `list_presets()`), a
            preset directory, or a `.keras` file (loaded by `load_model`,
            without overrides).
        load_weights: bool. Whether to load `model.weights.h5`. It may be
            absent only from a preset whose metadata records no training.
            Defaults to True.
        safe_mode: bool. For a `.keras` file: refuse one that holds Python
            code (see `load_model`); pass False only for a file you trust.
            Preset directories hold data only (JSON and weights). Defaults to
            True.
        **overrides: config values to change.

    Returns:
        The model.

    Raises:
        FileNotFoundError: the metadata records training but `model.weights.h5`
            is missing (a trained preset without weights would generate noise).
        ValueError: `config.json` or `metadata.json` is not valid, the config does
            not build a model, the weights file is damaged or a directory, or the
            weights do not fit the model (see above); the message names the file.
    """
    if str(name_or_dir).endswith(".keras") and Path(name_or_dir).is_file():
        if overrides:
            raise ValueError(f"Overrides {overrides} apply to preset directories; {name_or_dir} is a .keras file, "
                             "loaded as it was saved.")
        return load_model(name_or_dir, safe_mode=safe_mode)
    directory = resolve_preset(name_or_dir)
    model_name, config, metadata = load_preset_config(directory)
    config_path = directory / CONFIG_FILE
    try:
        model = registry.build(model_name, **{**config, **overrides})
    except (TypeError, ValueError, KeyError) as error:
        with_overrides = f" with overrides {overrides}" if overrides else ""
        kind = TypeError if isinstance(error, TypeError) else ValueError
        if isinstance(error, KeyError):
            kind = registry.UnknownNameError  # keeps KeyError without quoting the message
        raise kind(f"The config of {config_path}{with_overrides} does not build a model: {error}") from error
    weights = weights_file(directory, metadata) if load_weights else None
    if weights is not None:
        try:
            load_weights_file(model, weights)
        except DamagedWeightsError:
            raise
        except ValueError as error:
            if not overrides:
                raise ValueError(f"{weights} does not load into the model of {config_path}: {error}") from error
            reference = registry.build(model_name, **config)
            mismatches = _shape_mismatches(reference, model)
            if not mismatches:
                raise ValueError(f"{weights} does not load into the model of {config_path} with overrides "
                                 f"{overrides}: {error}") from error
            raise ValueError(
                f"The weights of preset {directory} do not fit the model with overrides {overrides}: "
                + "; ".join(mismatches)
                + ". Pass load_weights=False to build the model without them."
            ) from None
    return model
