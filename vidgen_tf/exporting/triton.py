"""A Triton Inference Server model repository: the ONNX and SavedModel exports, each with its config.pbtxt.

`export_triton(model, directory)` writes two models into the repository
`directory`, in the layout Triton documents ("Model Repository": every model
is a folder `<model-name>/` holding its `config.pbtxt` and numbered version
folders; under "Model Files", an ONNX model is a file that by default must be
named `model.onnx` and a TensorFlow SavedModel a directory that by default
must be named `model.savedmodel`;
https://github.com/triton-inference-server/server/blob/main/docs/user_guide/model_repository.md):

    <directory>/
      vidgen_triton.json            what vidgen wrote here (Triton reads only the folders)
      <name>/                       platform "onnxruntime_onnx" (onnxruntime backend)
        config.pbtxt
        <version>/model.onnx        serving_default, checked against the SavedModel
        <version>/model.onnx.parity.json
      <name>_tf/                    platform "tensorflow_savedmodel" (TensorFlow backend)
        config.pbtxt
        <version>/model.savedmodel/ the SavedModel with its description (assets/vidgen_export.json)

Both come from `export_bundle` (the SavedModel, the ONNX file and their parity
check), staged in a hidden folder of `directory` and moved in when complete.
Each `config.pbtxt` is Triton's `ModelConfig` in protobuf text format (made
with tritonclient's `model_config_pb2` when it is installed, else written by
hand in the same format): the inputs and outputs of the ONNX graph and of the
SavedModel's `serving_default` signature, names, data types and dims (-1 for
a dynamic size) exactly; `max_batch_size` is the description's
`limits.max_batch_size` when every tensor's first axis is the batch (the dims
then leave it out), `dynamic_batching {}` on, one CPU instance, and a version
policy serving the version written.

Triton has no scalar tensors in a model config, so the ONNX file's scalar
`inputs_valid` (see `export_onnx`) is given per video in the repository's copy,
shape (B,) (dims [1], reshape to []): the validity of the whole batch
broadcast, so under dynamic batching one invalid request marks every request
of its batch invalid. The SavedModel answers INVALID_ARGUMENT instead, which
Triton returns to every request of the batch. Diffusion models are not
exported (their ONNX `step` takes scalar times, which no Triton config can
describe).
"""

import json
import os
import secrets
import shutil
from pathlib import Path

from vidgen_tf.atomic import atomic_directory, fsync, write_bytes
from vidgen_tf.exporting import description

ONNX_PLATFORM = "onnxruntime_onnx"
SAVEDMODEL_PLATFORM = "tensorflow_savedmodel"
ONNX_FILE = "model.onnx"
SAVEDMODEL_DIR = "model.savedmodel"
CONFIG_FILE = "config.pbtxt"
TF_SUFFIX = "_tf"
MARKER = "vidgen_triton.json"
FORMAT = "vidgen_tf.triton/1"

# numpy dtype name -> Triton's DataType (model_config.proto).
DATA_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING", "string": "TYPE_STRING",
}
_ENUM_FIELDS = ("data_type", "kind")


# ------------------------------------------------------------ tensors of the two models
def onnx_tensors(path):
    """`(inputs, outputs)` of an ONNX graph: lists of `(name, dtype name, shape)`, None for a dynamic size."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def tensors(values):
        found = []
        for value in values:
            kind = value.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim]
            found.append((value.name, onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type).name, shape))
        return found

    return tensors(graph.input), tensors(graph.output)


def savedmodel_tensors(directory, signature="serving_default"):
    """`(inputs, outputs)` of a SavedModel signature, as `onnx_tensors` gives them.

    The signatures take inputs of any shape and check the described one
    themselves (see `vidgen_tf.exporting.validation`): an input of unknown
    rank gets the shape its description (`assets/vidgen_export.json`) states.
    """
    import tensorflow as tf

    function = tf.saved_model.load(str(directory)).signatures[signature]
    described = description.describe(directory, check_pairs=False)["signatures"][signature]

    def shape_of(spec, name):
        if spec.shape.rank is None:
            return list(described["inputs"][name]["shape"])
        return spec.shape.as_list()

    _, kwargs = function.structured_input_signature
    inputs = [(name, spec.dtype.name, shape_of(spec, name)) for name, spec in kwargs.items()]
    outputs = [(name, spec.dtype.name, spec.shape.as_list()) for name, spec in function.structured_outputs.items()]
    order = list(described["inputs"])
    inputs.sort(key=lambda t: order.index(t[0]) if t[0] in order else len(order))
    return inputs, sorted(outputs)


# ------------------------------------------------------------ config.pbtxt
def _tensor_config(name, dtype, shape, batching):
    if dtype not in DATA_TYPES:
        raise ValueError(f"{name}: Triton has no data type for {dtype}.")
    dims = [-1 if size is None else int(size) for size in shape]
    entry = {"name": name, "data_type": DATA_TYPES[dtype]}
    if batching:
        dims = dims[1:]
    if dims:
        entry["dims"] = dims
    elif batching:  # (B,): Triton's documented form of a tensor that is only its batch axis
        entry["dims"] = [1]
        entry["reshape"] = {"shape": []}
    else:
        raise ValueError(f"{name} is a scalar and its model has no batch axis: a Triton config cannot describe it.")
    return entry


def batches(inputs, outputs, described_inputs):
    """True when every tensor's first axis is the batch: dynamic, and named "batch" by the description."""
    tensors = list(inputs) + list(outputs)
    return (all(shape and shape[0] is None for _, _, shape in tensors)
            and all(described_inputs.get(name, {}).get("dynamic_axes", {}).get("0") == "batch"
                    for name, _, _ in inputs))


def model_config(name, platform, inputs, outputs, max_batch_size, version, batching):
    """Triton's `ModelConfig` as a dict in its fields' order (as `config_text` writes them).

    Args:
        name: str. The model's folder name.
        platform: str. "onnxruntime_onnx" or "tensorflow_savedmodel".
        inputs, outputs: lists of `(name, dtype name, shape)`.
        max_batch_size: int. Used when `batching`, else 0 (and full dims).
        version: int. The one version the policy serves.
        batching: bool. Whether every tensor's first axis is the batch.
    """
    config = {
        "name": name,
        "platform": platform,
        "version_policy": {"specific": {"versions": [int(version)]}},
        "max_batch_size": int(max_batch_size) if batching else 0,
        "input": [_tensor_config(*tensor, batching) for tensor in inputs],
        "output": [_tensor_config(*tensor, batching) for tensor in outputs],
        "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
    }
    if batching:  # the dynamic batcher needs a batch axis
        config["dynamic_batching"] = {}
    return config


def _text_by_hand(message, indent=""):
    """Protobuf text format of a dict in field order, as `text_format.MessageToString` writes it."""
    lines = []
    for key, value in message.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                lines.append(f"{indent}{key} {{\n{_text_by_hand(item, indent + '  ')}{indent}}}\n")
            elif key in _ENUM_FIELDS:
                lines.append(f"{indent}{key}: {item}\n")
            elif isinstance(item, str):
                escaped = item.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{indent}{key}: "{escaped}"\n')
            else:
                lines.append(f"{indent}{key}: {int(item)}\n")
    return "".join(lines)


def _model_config_pb2():
    """tritonclient's `model_config_pb2`, or None when tritonclient (or a protobuf it runs with) is missing."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return None
    return model_config_pb2


def config_text(config):
    """The `config.pbtxt` text of a `model_config` dict.

    Made by tritonclient's `ModelConfig` message when tritonclient is
    installed (the `test` extra), which also checks every field name and
    value; otherwise written by hand, in the same text.
    """
    pb2 = _model_config_pb2()
    if pb2 is None:
        return _text_by_hand(config)
    from google.protobuf import json_format, text_format

    message = json_format.ParseDict(config, pb2.ModelConfig())
    for field in ("input", "output"):  # an empty reshape (to a scalar) is kept by marking it present
        for entry, parsed in zip(config[field], getattr(message, field)):
            if "reshape" in entry:
                parsed.reshape.SetInParent()
    if "dynamic_batching" in config:
        message.dynamic_batching.SetInParent()
    return text_format.MessageToString(message)


# ------------------------------------------------------------ the repository
def read_marker(directory):
    """The models `<directory>/vidgen_triton.json` lists (name -> platform), or None without one."""
    path = Path(directory) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except ValueError:
        return None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT or not isinstance(marker.get("models"), dict):
        return None
    return dict(marker["models"])


def check_repository(directory, models, version, overwrite, overwrite_flag="overwrite=True"):
    """Refuses to write `models` (name -> platform) into `directory` unless it is new, empty or vidgen's.

    A folder that holds anything (hidden entries aside) but a Triton
    repository vidgen wrote (its `vidgen_triton.json`, and the model folders
    that lists) is refused, even with `overwrite`. An existing version of a
    model is replaced only with `overwrite`, and only when it holds the
    model file vidgen wrote there.

    Returns:
        The models the repository lists already (an empty dict when new).

    Raises:
        FileExistsError: naming what is in the way.
    """
    directory = Path(directory)
    if not directory.exists():
        return {}
    if not directory.is_dir():
        raise FileExistsError(f"{directory} is a file; a Triton repository is a folder.")
    entries = sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))
    listed = read_marker(directory)
    if listed is None:
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise FileExistsError(
                f"{directory} is not empty ({shown}) and is not a Triton repository vidgen wrote (no {MARKER}): "
                "a Triton export writes only into a new or empty folder, or into its own repository, even when "
                "told to overwrite. Choose another --out.")
        return {}
    foreign = [name for name in entries if name != MARKER and name not in listed]
    if foreign:
        raise FileExistsError(f"{directory} holds {foreign}, which vidgen did not write (its {MARKER} lists "
                              f"{sorted(listed)}): move them away or choose another --out.")
    for name, platform in models.items():
        target = directory / name / str(version)
        if not os.path.lexists(target):
            continue
        if not overwrite:
            raise FileExistsError(f"{target} already exists; pass {overwrite_flag} to replace it.")
        member = target / (ONNX_FILE if platform == ONNX_PLATFORM else f"{SAVEDMODEL_DIR}/saved_model.pb")
        if not member.is_file():
            raise FileExistsError(f"{target} is not a model version vidgen wrote (no {member.name}): an export "
                                  "replaces only its own, even when told to overwrite. Move it away.")
    return listed


def _batched_validity(proto, batch_input):
    """The graph with `inputs_valid` () given per video, (B,): its value broadcast along `batch_input`'s axis 0."""
    import onnx
    from onnx import helper

    graph = proto.graph
    scalar = "inputs_valid_of_batch"
    for node in graph.node:
        node.output[:] = [scalar if o == "inputs_valid" else o for o in node.output]
        node.input[:] = [scalar if i == "inputs_valid" else i for i in node.input]
    graph.node.extend([
        helper.make_node("Shape", [batch_input], ["inputs_valid_batch_shape"], start=0, end=1),
        helper.make_node("Expand", [scalar, "inputs_valid_batch_shape"], ["inputs_valid"]),
    ])
    output = next(o for o in graph.output if o.name == "inputs_valid")
    output.CopyFrom(helper.make_tensor_value_info("inputs_valid", onnx.TensorProto.BOOL, ["batch"]))
    onnx.checker.check_model(proto)
    return proto


def _triton_onnx(source, target, model_name):
    """Writes the repository's copy of the ONNX file `source` to `target` and checks it with onnxruntime."""
    import numpy as np
    import onnx
    import onnxruntime

    proto = onnx.load(str(source))
    metadata = {entry.key: entry for entry in proto.metadata_props}
    described = json.loads(metadata[description.ONNX_METADATA_KEY].value)
    inputs = described["signatures"]["serving_default"]["inputs"]
    batch_input = next(name for name, tensor in inputs.items() if tensor["dynamic_axes"].get("0") == "batch")
    proto = _batched_validity(proto, batch_input)
    described["signatures"]["serving_default"]["outputs"]["inputs_valid"] = {
        "dtype": "bool", "shape": [None], "dynamic_axes": {"0": "batch"}, "range": [False, True]}
    described.pop("paired_savedmodel", None)  # the SavedModel sits elsewhere in a Triton repository
    described["triton"] = {"model": model_name, "platform": ONNX_PLATFORM}
    metadata[description.ONNX_METADATA_KEY].value = description.to_json(described)

    # The copy must compute what the checked file computes, with a validity per video.
    from vidgen_tf.exporting import draw_inputs

    frames = described["video"]["num_frames"]
    feed = draw_inputs(described["signatures"]["serving_default"], np.random.default_rng(0), 2, frames)
    checked = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    copy = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    want, got = checked.run(None, feed), copy.run(None, feed)
    names = [o.name for o in checked.get_outputs()]
    for name, expected, actual in zip(names, want, got):
        expected = np.broadcast_to(expected, (2,)) if name == "inputs_valid" else expected
        if actual.shape != expected.shape or not np.array_equal(actual, expected):
            raise RuntimeError(f"The Triton copy of {source} computes another {name!r} than the checked file.")
    write_bytes(target, proto.SerializeToString())


def export_triton(model, directory, name=None, version=1, overwrite=False, preset=None, max_batch_size=None,
                  max_frames=None, overwrite_flag="overwrite=True"):
    """Writes `model` into the Triton model repository `directory`: `<name>/` (ONNX) and `<name>_tf/` (SavedModel).

    See the module docstring for the layout. The repository may be new,
    empty, or one vidgen wrote (other models there are kept); an existing
    version is replaced only with `overwrite` (see `check_repository`).
    Everything is exported and checked in a hidden staging folder first;
    each version folder is then swapped in whole, and its `config.pbtxt`
    after it.

    Args:
        model: a vidgen_tf model (not a diffusion model).
        directory: str or Path. The repository (Triton's `--model-repository`).
        name: str or None. The ONNX model's name (the SavedModel's is
            `<name>_tf`); defaults to `model.registered_name`.
        version: int. The version folder, >= 1 (Triton ignores 0). Defaults to 1.
        overwrite: bool. Replace an existing version of vidgen's. Defaults to False.
        preset, max_batch_size, max_frames: see `export_savedmodel`.
        overwrite_flag: str. How a refusal names the way to overwrite.

    Returns:
        dict with `onnx` and `savedmodel`: each `{"model": Path of the model
        folder, "file": the model file or folder, "config": the config.pbtxt
        Path, "max_batch_size": int}`, and `parity` (the ONNX file's report).
    """
    from vidgen_tf import exporting
    from vidgen_tf.exporting import diffusion

    exporting._check_exportable(model)
    if diffusion.is_diffusion(model):
        raise ValueError(f"{model.registered_name} is a diffusion model: its ONNX `step` takes scalar times, which "
                         "a Triton config cannot describe. Export it as savedmodel,onnx instead.")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be an integer >= 1 (Triton ignores version 0), got {version!r}.")
    name = name or model.registered_name
    directory = Path(directory)
    models = {name: ONNX_PLATFORM, f"{name}{TF_SUFFIX}": SAVEDMODEL_PLATFORM}
    listed = check_repository(directory, models, version, overwrite, overwrite_flag)
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".{name}.triton.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        bundle = exporting.export_bundle(model, staging / "bundle", name=name, version=version, preset=preset,
                                         max_batch_size=max_batch_size, max_frames=max_frames)
        staged = {platform: staging / model_name / str(version) for model_name, platform in models.items()}
        for folder in staged.values():
            folder.mkdir(parents=True)
        os.replace(bundle["savedmodel"], staged[SAVEDMODEL_PLATFORM] / SAVEDMODEL_DIR)
        onnx_file = staged[ONNX_PLATFORM] / ONNX_FILE
        _triton_onnx(bundle["onnx"], onnx_file, name)
        parity = json.loads(Path(f"{bundle['onnx']}.parity.json").read_text())
        write_bytes(Path(f"{onnx_file}.parity.json"), json.dumps(parity, indent=2).encode())

        described = description.describe(staged[SAVEDMODEL_PLATFORM] / SAVEDMODEL_DIR, check_pairs=False)
        described_inputs = described["signatures"]["serving_default"]["inputs"]
        limit = described["limits"]["max_batch_size"]
        texts, result = {}, {"parity": parity}
        for model_name, platform in models.items():
            if platform == ONNX_PLATFORM:
                inputs, outputs = onnx_tensors(onnx_file)
                model_file, key = onnx_file, "onnx"
            else:
                model_file, key = staged[platform] / SAVEDMODEL_DIR, "savedmodel"
                inputs, outputs = savedmodel_tensors(model_file)
            batching = batches(inputs, outputs, described_inputs)
            config = model_config(model_name, platform, inputs, outputs, limit, version, batching)
            texts[model_name] = config_text(config)
            result[key] = {"model": directory / model_name, "config": directory / model_name / CONFIG_FILE,
                           "file": directory / model_name / str(version) / model_file.name,
                           "max_batch_size": config["max_batch_size"]}

        # Listed before they land: an interrupted run leaves folders this repository still recognises.
        listed.update(models)
        write_bytes(directory / MARKER, json.dumps({"format": FORMAT, "models": listed}, indent=2).encode())
        for model_name, platform in models.items():
            target = directory / model_name / str(version)
            target.parent.mkdir(exist_ok=True)
            with atomic_directory(target) as temporary:
                os.rmdir(temporary)
                os.replace(staged[platform], temporary)
            write_bytes(directory / model_name / CONFIG_FILE, texts[model_name].encode())
        fsync(directory, directory=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
