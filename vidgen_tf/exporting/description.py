"""The export description: one JSON document that says what every exported input is.

An exported graph takes its noise as inputs, so a client must know how to
draw each one (a standard normal latent, a uniform [0, 1) draw read by an
inverse CDF, a class label). Every export carries this document (the contract
in `EXPORT_DESCRIPTION.md`, format `vidgen_tf.export/1`):

- SavedModel: `<version dir>/assets/vidgen_export.json`;
- ONNX: the `metadata_props` entry `vidgen_export`.

Each signature's `doc` sentence lives here only: a SavedModel keeps no
docstring of its functions (a loaded signature's `__doc__` is TensorFlow's
own), and `saved_model_cli show --all` lists names, dtypes and shapes.

`describe_model` builds it from the model and its signatures' descriptions
(`base_signature_descriptions` here for the GAN and likelihood signatures; the
streaming and diffusion ones in their modules; `vidgen_tf.exporting.catalog`
gathers a model's, so this module imports neither), and `describe` reads it back
from either format. Clients read it without
TensorFlow: `json.load` of the asset, or `onnx.load(path,
load_external_data=False).metadata_props`.
"""

import json
from pathlib import Path

FORMAT = "vidgen_tf.export/1"
ASSET_NAME = "vidgen_export.json"
ONNX_METADATA_KEY = "vidgen_export"


# The largest request an export takes unless told otherwise (`export_savedmodel(max_batch_size=,
# max_frames=)`): 64 videos, and 1024 frames for models of any length (a fixed-length model takes its
# own length only). Every signature refuses more before allocating anything for it.
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_FRAMES = 1024


class MissingDescriptionError(ValueError):
    """An export (or a path) that holds no vidgen_tf description."""


class ExportMismatchError(ValueError):
    """Two files of one export (a SavedModel and its ONNX file, the ONNX files and their parity
    reports) come from different weights."""


# ------------------------------------------------------------ distributions
def normal(mean=0.0, stddev=1.0):
    """`{"kind": "normal", ...}`: the input is drawn as `standard_normal * stddev + mean`."""
    return {"kind": "normal", "mean": float(mean), "stddev": float(stddev)}


def uniform(low=0.0, high=1.0):
    """`{"kind": "uniform", ...}`: the input is drawn from U[low, high)."""
    return {"kind": "uniform", "low": float(low), "high": float(high)}


def label(num_classes):
    """`{"kind": "label", ...}`: an integer class in [0, num_classes)."""
    return {"kind": "label", "num_classes": int(num_classes)}


def seed():
    """`{"kind": "seed"}`: the stateless seed, any integer."""
    return {"kind": "seed"}


def count(minimum=1):
    """`{"kind": "count", ...}`: a number the user chooses (batch size, frames), >= `minimum`."""
    return {"kind": "count", "min": int(minimum)}


def video(low, high):
    """`{"kind": "video", ...}`: a video to score, values in [low, high]."""
    return {"kind": "video", "low": low, "high": high}


# ------------------------------------------------------------ input specs
def serving_input_specs(model):
    """Named input specs of `serving_default`: the noise, then `label` if conditional."""
    import tensorflow as tf

    num_frames = None if model.variable_length else model.num_frames
    specs = dict(model.noise_spec(num_frames=num_frames))
    if model.num_classes:
        specs["label"] = tf.TensorSpec([None], tf.int32, name="label")
    return specs


def generate_input_specs(model):
    """Named input specs of `generate`, in the signature's order."""
    import tensorflow as tf

    specs = {
        "batch_size": tf.TensorSpec([], tf.int32, name="batch_size"),
        "seed": tf.TensorSpec([], tf.int64, name="seed"),
    }
    if model.variable_length:
        specs["num_frames"] = tf.TensorSpec([], tf.int32, name="num_frames")
    if model.num_classes:
        specs["label"] = tf.TensorSpec([None], tf.int32, name="label")
    return specs


def log_prob_input_specs(model, dtype="float32"):
    """`{"videos": spec}` of `log_prob` (float32 in [-1, 1]) or `log_prob_uint8` (uint8)."""
    import tensorflow as tf

    frames = None if model.variable_length else model.num_frames
    shape = [None, frames, model.height, model.width, model.channels]
    return {"videos": tf.TensorSpec(shape, tf.as_dtype(dtype), name="videos")}


# ------------------------------------------------------------ limits and weights
# A diffusion export's sampling loop runs at most this many steps per request (`limits["max_steps"]`).
DEFAULT_MAX_STEPS = 1000


def request_limits(model, max_batch_size=None, max_frames=None):
    """`{"max_batch_size", "max_frames"}`: the largest request the exports of `model` take.

    Args:
        model: a vidgen_tf model.
        max_batch_size: int or None. Videos per request. Defaults to
            `DEFAULT_MAX_BATCH_SIZE` (64).
        max_frames: int or None. Frames per request (a `generate` call, a
            `serving_default` noise input, a `generate_chunk` chunk). Defaults
            to `DEFAULT_MAX_FRAMES` (1024) for models of any length; a
            fixed-length model takes exactly its `num_frames`.

    A diffusion model's limits also hold `max_steps` (`DEFAULT_MAX_STEPS`, or
    its `sampling_steps` when larger), the sampling steps of one request.
    """
    from vidgen_tf.base import check_positive_int

    max_batch_size = check_positive_int(
        "max_batch_size", DEFAULT_MAX_BATCH_SIZE if max_batch_size is None else max_batch_size)
    if not model.variable_length:
        if max_frames is not None and max_frames != model.num_frames:
            raise ValueError(f"`max_frames` must be the model's num_frames ({model.num_frames}) for "
                             f"{type(model).__name__}, which makes no other length; got {max_frames}.")
        max_frames = model.num_frames
    max_frames = check_positive_int("max_frames", DEFAULT_MAX_FRAMES if max_frames is None else max_frames)
    limits = {"max_batch_size": max_batch_size, "max_frames": max_frames}
    if getattr(model, "is_diffusion", False):  # each sampling step is a network call: bound the loop too
        limits["max_steps"] = max(DEFAULT_MAX_STEPS, int(getattr(model, "sampling_steps", 1)))
    return limits


def weights_digest(model):
    """`sha256:<hex>` of the weights an export computes with (names, shapes, dtypes and values).

    Every description carries it, so that two files of one export (a
    SavedModel and its ONNX file) from different weights are told apart.
    Random-number state (Keras seed generators) is left out: drawing noise
    does not change what an export computes.
    """
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for variable in model.weights:
        path = getattr(variable, "path", None) or variable.name
        if "seed_generator" in path:
            continue
        value = np.ascontiguousarray(np.asarray(variable.numpy()))
        digest.update(f"{path}|{value.dtype.str}|{value.shape}\n".encode())
        digest.update(value.tobytes())
    return f"sha256:{digest.hexdigest()}"


# ------------------------------------------------------------ description
def _dynamic_axes(shape, roles=None):
    """Axis index (as a string) -> role for every None axis: 0 is the batch, the next the frames."""
    roles = roles or {}
    axes = {}
    for axis, size in enumerate(shape):
        if size is None:
            axes[str(axis)] = roles.get(axis, "batch" if axis == 0 else "frames")
    return axes


def _tensor(spec, distribution=None, value_range=None, output=False, roles=None):
    """One input's (`distribution`) or output's (`value_range`) entry; `roles` names dynamic axes
    other than batch (0) and frames (the rest), e.g. `{1: "chunk_frames"}`."""
    shape = [None if d is None else int(d) for d in spec.shape.as_list()]
    entry = {"dtype": spec.dtype.name, "shape": shape, "dynamic_axes": _dynamic_axes(shape, roles)}
    if output:
        entry["range"] = value_range
    else:
        entry["distribution"] = distribution
    return entry


def noise_distributions(model):
    """The model's `noise_distributions()`, checked against its `noise_spec()` names."""
    names = set(model.noise_spec())
    distributions = dict(model.noise_distributions())
    if set(distributions) != names:
        raise ValueError(
            f"{type(model).__name__}.noise_distributions() describes {sorted(distributions)} but its "
            f"noise_spec() has {sorted(names)}: they must name the same inputs."
        )
    return distributions


def _video_output(model):
    import tensorflow as tf

    frames = None if model.variable_length else model.num_frames
    spec = tf.TensorSpec([None, frames, model.height, model.width, model.channels], tf.uint8)
    return _tensor(spec, value_range=[0, 255], output=True)


def base_signature_descriptions(model):
    """Signature name -> `{doc, inputs, outputs}` of the signatures every GAN and likelihood model's
    export has (`serving_default`, `generate`, the `log_prob` pair); `catalog.signature_descriptions`
    adds the streaming ones."""
    import tensorflow as tf

    distributions = noise_distributions(model)
    conditional = bool(model.num_classes)

    serving_inputs = {}
    for name, spec in serving_input_specs(model).items():
        kind = label(model.num_classes) if name == "label" else distributions[name]
        serving_inputs[name] = _tensor(spec, kind)
    signatures = {
        "serving_default": {
            "doc": "Videos from explicit noise: draw each noise input from its distribution"
                   + (" and give one `label` per video" if conditional else "")
                   + "; returns the uint8 `video`.",
            "inputs": serving_inputs,
            "outputs": {"video": _video_output(model)},
        }
    }

    generate_kinds = {"batch_size": count(1), "seed": seed(), "num_frames": count(1)}
    if conditional:
        generate_kinds["label"] = label(model.num_classes)
    signatures["generate"] = {
        "doc": "`batch_size` videos drawn from the stateless `seed` with the model's own noise "
               "(the same video as `model.generate(batch_size, seed)`); returns the uint8 `video`.",
        "inputs": {name: _tensor(spec, generate_kinds[name]) for name, spec in generate_input_specs(model).items()},
        "outputs": {"video": _video_output(model)},
    }

    if getattr(model, "has_log_prob", False):
        what = "An evidence lower bound of the log-likelihood" if model.log_prob_is_bound else "The log-likelihood"
        log_prob_out = {"log_prob": _tensor(tf.TensorSpec([None], tf.float32), value_range=None, output=True)}
        signatures["log_prob"] = {
            "doc": f"{what} in nats per video of float32 videos in [-1, 1]; returns `log_prob` (B,).",
            "inputs": {"videos": _tensor(log_prob_input_specs(model)["videos"], video(-1.0, 1.0))},
            "outputs": log_prob_out,
        }
        signatures["log_prob_uint8"] = {
            "doc": f"{what} in nats per video of uint8 videos in [0, 255] (scored as x / 127.5 - 1); "
                   "returns `log_prob` (B,).",
            "inputs": {"videos": _tensor(log_prob_input_specs(model, "uint8")["videos"], video(0, 255))},
            "outputs": log_prob_out,
        }
    return signatures


def versions(onnx=None):
    """Library versions of an export; `onnx` (dict with `opset`) adds the ONNX converter's."""
    import keras
    import tensorflow as tf

    import vidgen_tf

    result = {"vidgen_tf": vidgen_tf.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
              "onnx": None, "onnxruntime": None, "opset": None}
    if onnx is not None:
        result.update(onnx)
    return result


def describe_model(model, described, preset=None, signatures=None, limits=None):
    """The description of `model`'s exports (the schema of `EXPORT_DESCRIPTION.md`).

    Args:
        model: a vidgen_tf model with `noise_spec` and `noise_distributions`.
        described: dict. Signature name -> its description, every signature
            the model's exports have (`catalog.signature_descriptions(model)`).
        preset: str or None. The preset the model was loaded from. Defaults
            to None.
        signatures: list of str or None. Signatures to describe; defaults to
            every signature `export_savedmodel` writes (`serving_default`,
            `generate`, and `log_prob`, `log_prob_uint8` for likelihood models).
        limits: dict or None. `request_limits(model, ...)`; defaults to
            `request_limits(model)`.

    Returns:
        A JSON-serialisable dict with `format`, `model`, `class`, `preset`,
        `video`, `limits` (`max_batch_size`, `max_frames`: every signature
        refuses more), `weights_digest` (`weights_digest(model)`),
        `versions`, `signatures` and `parity` (empty: the ONNX export fills
        in what it measured).
    """
    if signatures is not None:
        unknown = sorted(set(signatures) - set(described))
        if unknown:
            raise ValueError(f"{type(model).__name__} exports no signature {unknown}; it has {sorted(described)}.")
        described = {name: described[name] for name in signatures}
    return {
        "format": FORMAT,
        "model": model.registered_name,
        "class": type(model).__name__,
        "preset": None if preset is None else str(preset),
        "video": {
            "num_frames": model.num_frames,
            "variable_length": bool(model.variable_length),
            "height": model.height,
            "width": model.width,
            "channels": model.channels,
            "num_classes": model.num_classes,
            "layout": "NTHWC",
        },
        "limits": dict(limits or request_limits(model)),
        "weights_digest": weights_digest(model),
        "versions": versions(),
        "signatures": described,
        "parity": {},
    }


def to_json(description):
    """The description as the JSON text every export stores."""
    return json.dumps(description, indent=2, sort_keys=False)


# ------------------------------------------------------------ reading
def _parse(text, where):
    try:
        description = json.loads(text)
    except ValueError as error:
        raise MissingDescriptionError(f"The vidgen_tf description in {where} is not JSON ({error}).") from error
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        got = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise MissingDescriptionError(
            f"The description in {where} has format {got!r}; this version of vidgen_tf reads {FORMAT!r}."
        )
    return description


def _read_onnx(path):
    try:
        import onnx
    except ImportError:  # the metadata is protobuf: onnxruntime reads it as well
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        metadata = session.get_modelmeta().custom_metadata_map
    else:
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as error:  # DecodeError and friends
            raise MissingDescriptionError(f"{path} is not an ONNX model ({error}).") from error
        metadata = {entry.key: entry.value for entry in proto.metadata_props}
    if ONNX_METADATA_KEY not in metadata:
        raise MissingDescriptionError(
            f"{path} holds no vidgen_tf description: its metadata_props have no '{ONNX_METADATA_KEY}' entry "
            f"(keys: {sorted(metadata) or 'none'}). Export it again with vidgen_tf.export_onnx."
        )
    return _parse(metadata[ONNX_METADATA_KEY], f"{path} (metadata_props '{ONNX_METADATA_KEY}')")


def _read_savedmodel(directory):
    asset = directory / "assets" / ASSET_NAME
    if not asset.is_file():
        raise MissingDescriptionError(
            f"The SavedModel {directory} holds no vidgen_tf description: {asset} does not exist. "
            "Export it again with vidgen_tf.export_savedmodel."
        )
    return _parse(asset.read_text(), asset)


def _onnx_members(path):
    """The files of the ONNX export `path` belongs to: `{label: path}` of those that exist, the main
    file `<stem>.onnx`, `<stem>.initial_state.onnx`, `<stem>.chunk.onnx` and their parity reports."""
    path = Path(path)
    stem = path.name[: -len(".onnx")]
    for part in (".initial_state", ".chunk"):
        if stem.endswith(part):
            stem = stem[: -len(part)]
    members = {}
    for part in ("", ".initial_state", ".chunk"):
        model = path.parent / f"{stem}{part}.onnx"
        for candidate in (model, Path(f"{model}.parity.json")):
            if candidate.is_file():
                members[str(candidate)] = candidate
    return stem, members


def _digest_of(path):
    """The `weights_digest` a member of an export records (None if it records none)."""
    path = Path(path)
    if path.name.endswith(".parity.json"):
        try:
            return json.loads(path.read_text()).get("weights_digest")
        except ValueError as error:
            raise MissingDescriptionError(f"The parity report {path} is not JSON ({error}).") from error
    if path.suffix == ".onnx":
        return _read_onnx(path).get("weights_digest")
    return _read_savedmodel(path).get("weights_digest")


def _mismatch(digests, what):
    found = {where: digest for where, digest in digests.items() if digest is not None}
    if len(set(found.values())) > 1:
        listed = "; ".join(f"{where}: {digest}" for where, digest in found.items())
        raise ExportMismatchError(
            f"The files of {what} come from different weights ({listed}): an export was interrupted or "
            "only part of it replaced. Export the model again (all formats, with --overwrite)."
        )


def check_export_pairs(path, described):
    """Raises `ExportMismatchError` unless the files exported together with `path` hold its weights.

    An ONNX file is checked against its streaming files, the parity reports
    beside them and the SavedModel it was checked against when that sits
    beside it (`<dir>/<stem>/<version>/`, its `paired_savedmodel`); a
    SavedModel version `<dir>/<name>/<version>` against `<dir>/<name>.onnx`
    when that file was checked against this version.
    """
    path = Path(path)
    digests = {str(path): described.get("weights_digest")}
    if path.is_file():
        stem, members = _onnx_members(path)
        for where, member in members.items():
            if where != str(path):
                digests[where] = _digest_of(member)
        main = path.parent / f"{stem}.onnx"
        paired = (_read_onnx(main) if main != path and main.is_file() else described).get("paired_savedmodel")
        if paired and (path.parent / paired / "saved_model.pb").is_file():
            digests[str(path.parent / paired)] = _digest_of(path.parent / paired)
        _mismatch(digests, f"the ONNX export {path.parent / stem}.onnx")
        return
    onnx_file = path.parent.parent / f"{path.parent.name}.onnx"
    if onnx_file.is_file():
        onnx_described = _read_onnx(onnx_file)
        if onnx_described.get("paired_savedmodel") == f"{path.parent.name}/{path.name}":
            digests[str(onnx_file)] = onnx_described.get("weights_digest")
            _mismatch(digests, f"the export {path} and {onnx_file}")


def describe(path, check_pairs=True):
    """The description of an export, from either format.

    Args:
        path: str or Path. A SavedModel (version) directory, a base directory
            of numbered versions (the highest, which TF Serving serves, is
            read), or an `.onnx` file.
        check_pairs: bool. Check that the files exported with it (see
            `check_export_pairs`) hold the same weights. Defaults to True.

    Returns:
        The description dict (see `describe_model`).

    Raises:
        FileNotFoundError: `path` does not exist.
        MissingDescriptionError: `path` is not an export, or holds no
            description (a ValueError; the message names the file looked for).
        ExportMismatchError: files exported together come from different
            weights (a ValueError naming them and their `weights_digest`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No export at {path}: the path does not exist.")
    if path.is_file():
        if path.suffix == ".onnx":
            described = _read_onnx(path)
        else:
            raise MissingDescriptionError(
                f"{path} is not an export: describe() reads an .onnx file or a SavedModel directory."
            )
    elif (path / "saved_model.pb").is_file():
        described = _read_savedmodel(path)
    else:
        versions_found = sorted(
            (int(child.name), child) for child in path.iterdir() if child.is_dir() and child.name.isdigit()
        )
        if not versions_found:
            raise MissingDescriptionError(
                f"{path} is neither a SavedModel directory (no saved_model.pb) nor a base directory of numbered "
                "versions (no subdirectory named by a number)."
            )
        path = versions_found[-1][1]
        described = _read_savedmodel(path)
    if check_pairs:
        check_export_pairs(path, described)
    return described
