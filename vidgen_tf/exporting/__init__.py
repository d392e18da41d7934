"""Exports: SavedModel for TF Serving and ONNX checked by onnxruntime.

Every exported function is a pure graph of its inputs: noise is an input of
`serving_default`, never drawn inside it (tf2onnx cannot convert TensorFlow's
stateless random ops, and a graph that cannot be converted must not be
written). The `generate` signature draws its noise from a seed with the same
stateless ops as `model.generate`, so both give the same video for a seed.

Every export describes its inputs (`description`: how to draw each noise
input, which axes are dynamic), and every SavedModel signature checks its
inputs against that description (`validation`: INVALID_ARGUMENT naming the
input, e.g. "label: expected integers in [0, 10), got 12"). ONNX has no
assert: the ONNX file runs on any input, so its clients check inputs
against its description themselves.
"""

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf.atomic import atomic_directory, write_bytes
from vidgen_tf.exporting import description, validation
from vidgen_tf.exporting.description import MissingDescriptionError, describe, describe_model  # noqa: F401
from vidgen_tf.exporting import diffusion, streaming

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
FLOAT_TOLERANCE = 1e-4
UINT8_TOLERANCE = 1


class ExportParityError(RuntimeError):
    """The ONNX model's outputs differ from the SavedModel's beyond tolerance."""


def to_uint8_video(video):
    """Float video in [-1, 1] -> uint8 in [0, 255], rounded (graph-friendly)."""
    video = tf.clip_by_value((tf.cast(video, tf.float32) + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(video), tf.uint8)


def _input_specs(model):
    """Named input specs of `serving_default`: the noise, then `label` if conditional."""
    return description.serving_input_specs(model)


def _float_video_fn(model):
    """inputs dict -> float video, with the inference (EMA) generator."""
    generator = model.inference_generator

    def video(inputs):
        inputs = dict(inputs)
        labels = inputs.pop("label", None)
        return tf.cast(
            model.generate_from_noise(inputs, labels, training=False, generator=generator), tf.float32
        )

    return video


def _check_exportable(model):
    for attribute in ("noise_spec", "noise_distributions", "sample_noise", "generate_from_noise", "registered_name"):
        if getattr(model, attribute, None) is None:
            raise TypeError(f"{type(model).__name__} cannot be exported: it has no `{attribute}`.")


def _build_archive(model):
    import keras

    specs = _input_specs(model)
    described = description.signature_descriptions(model)
    video_fn = _float_video_fn(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    if diffusion.is_diffusion(model):  # the sampling loop in the graph, denoise and step
        return diffusion.add_savedmodel_endpoints(archive, model)

    def serve(inputs):
        inputs = validation.checked_inputs(described["serving_default"], inputs)
        return {"video": to_uint8_video(video_fn(inputs))}

    archive.add_endpoint("serving_default", serve, input_signature=[specs])

    generate_names = list(description.generate_input_specs(model))
    generate_specs = list(description.generate_input_specs(model).values())

    def generate(*args):
        args = validation.checked_inputs(described["generate"], dict(zip(generate_names, args)))
        batch_size = args["batch_size"]
        num_frames = args["num_frames"] if model.variable_length else model.num_frames
        noise = model.sample_noise(
            batch_size, tf.stack([args["seed"], tf.constant(1, tf.int64)]), num_frames=num_frames
        )
        if model.num_classes:
            noise["label"] = validation.check_label_count(args["label"], batch_size)
        return {"video": to_uint8_video(video_fn(noise))}

    archive.add_endpoint("generate", generate, input_signature=generate_specs)

    if getattr(model, "has_log_prob", False):

        def scorer(name):
            def score(videos):
                videos = validation.checked_inputs(described[name], {"videos": videos})["videos"]
                # log_prob takes uint8 (as x / 127.5 - 1) and float videos alike.
                return {"log_prob": tf.cast(model.log_prob(videos), tf.float32)}

            return score

        for name, dtype in (("log_prob", "float32"), ("log_prob_uint8", "uint8")):
            archive.add_endpoint(
                name, scorer(name), input_signature=[description.log_prob_input_specs(model, dtype)["videos"]]
            )
    streaming.add_savedmodel_endpoints(archive, model)
    return archive


def _write_description(version_dir, text):
    """`<version_dir>/assets/vidgen_export.json` (the SavedModel's assets travel with it)."""
    assets = Path(version_dir) / "assets"
    assets.mkdir(exist_ok=True)
    (assets / description.ASSET_NAME).write_text(text)


def export_savedmodel(model, directory, version=1, overwrite=False, preset=None):
    """Writes a SavedModel to `<directory>/<model name>/<version>/`, atomically.

    Signatures:
      - `serving_default`: the model's noise inputs (and `label` for
        conditional models) -> `video` uint8 `(B, T, H, W, C)`.
      - `generate`: `batch_size` int32, `seed` int64 (and `num_frames` int32
        for models of any length, `label` int32 `(B,)` for conditional ones)
        -> `video`.
      - `log_prob`, for models with `has_log_prob`: `videos` float32 in
        [-1, 1] -> `log_prob` `(B,)` in nats per video; `log_prob_uint8`
        the same of uint8 `videos` in [0, 255] (scored as x / 127.5 - 1).
      - `initial_state`, `generate_chunk`, for models that stream: see
        `vidgen_tf.exporting.streaming`.

    A diffusion model has `serving_default` / `sample` (noise and
    `num_steps` in, the sampling loop in the graph), `generate`, `denoise`
    and `step` instead: see `vidgen_tf.exporting.diffusion`.

    Every signature checks its inputs (sizes of shared batch and frames
    axes, noise support, label range, counts, video range; see
    `vidgen_tf.exporting.validation`): invalid input gives INVALID_ARGUMENT
    with a message naming the input and what was expected.

    The description of every signature (how to draw each input; see
    `vidgen_tf.exporting.description`) is written to
    `assets/vidgen_export.json`; `describe(version_dir)` reads it back.

    The SavedModel is written to a temporary directory beside the target and
    renamed into place, so an existing version is never half-overwritten.

    Args:
        model: a vidgen_tf model.
        directory: str or Path. The model base path TF Serving watches.
        version: int. Version number (TF Serving serves the highest).
        overwrite: bool. Replace an existing version. Defaults to False.
        preset: str or None. The preset the model came from, for the
            description. Defaults to None.

    Returns:
        The version directory as a `Path`.
    """
    _check_exportable(model)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"`version` must be a non-negative integer, got {version!r}.")
    base = Path(directory) / model.registered_name
    target = base / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it.")
    text = description.to_json(description.describe_model(model, preset=preset))
    base.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as temporary:
        archive = _build_archive(model)
        archive.write_out(str(temporary), verbose=False)
        _write_description(temporary, text)
    logger.info("Wrote SavedModel %s", target)
    return target


def draw_inputs(described, rng, batch_size, num_frames):
    """Inputs of one described signature drawn as its description says (what a client does).

    Args:
        described: dict. One signature of a description (`inputs` ->
            dtype, shape, dynamic_axes, distribution).
        rng: `numpy.random.Generator`.
        batch_size: int. Size of every "batch" axis.
        num_frames: int. Size of every "frames" axis.

    Returns:
        dict name -> numpy array.
    """
    sizes = {"batch": batch_size, "frames": num_frames}
    inputs = {}
    for name, tensor in described["inputs"].items():
        shape = [sizes[tensor["dynamic_axes"][str(axis)]] if size is None else size
                 for axis, size in enumerate(tensor["shape"])]
        kind = tensor["distribution"]
        if kind["kind"] == "normal":
            value = rng.standard_normal(shape) * kind["stddev"] + kind["mean"]
        elif kind["kind"] == "uniform":
            value = rng.uniform(kind["low"], kind["high"], shape)
        elif kind["kind"] == "label":
            value = rng.integers(0, kind["num_classes"], shape)
        else:
            raise ValueError(f"Input {name!r} is drawn from {kind}: draw_inputs cannot draw it.")
        inputs[name] = value.astype(tensor["dtype"])
    return inputs


def _random_inputs(model, rng, batch_size, num_frames):
    described = description.signature_descriptions(model)["serving_default"]
    return draw_inputs(described, rng, batch_size, num_frames)


def export_onnx(model, path, opset=ONNX_OPSET, num_checks=8, savedmodel_dir=None, seed=0, preset=None):
    """Converts `serving_default` to ONNX and checks it against the SavedModel.

    The ONNX graph takes the same named inputs and returns `video` (uint8) and
    `video_float` (float32 in [-1, 1]). It is checked with `onnx.checker`, then
    run by onnxruntime on `num_checks` random inputs of varying batch size (and
    length, where the model allows it): `video_float` must match the
    TensorFlow function within 1e-4 and `video` the SavedModel's
    `serving_default` within one level. The maximum differences are written to
    `<path>.parity.json`; the ONNX file is written only when the check passes.
    A model that streams also gets `<stem>.initial_state.onnx` and
    `<stem>.chunk.onnx`, checked likewise (`vidgen_tf.exporting.streaming`).
    A diffusion model's file holds its `step` instead, with `denoise` in
    `<stem>.denoise.onnx`, and the loop of ONNX steps is checked against the
    SavedModel's `sample` (`vidgen_tf.exporting.diffusion`).

    ONNX cannot raise on an assert: tf2onnx drops the input checks of the
    SavedModel's signatures, so the ONNX model computes something from any
    input, valid or not. Check inputs against the description (below) before
    running it.

    The file carries the export description (see
    `vidgen_tf.exporting.description`) as its `metadata_props` entry
    `vidgen_export`: the `serving_default` signature it holds, the versions
    of tf2onnx, onnx and onnxruntime, the opset and the parity measured here.
    `describe(path)` reads it back.

    Args:
        model: a vidgen_tf model.
        path: str or Path. The `.onnx` file to write.
        opset: int. ONNX opset, >= 17. Defaults to 17.
        num_checks: int. Random inputs to compare, >= 8. Defaults to 8.
        savedmodel_dir: str or Path. A version directory written by
            `export_savedmodel` to compare against; by default one is written
            to a temporary directory.
        seed: int. Seed of the random check inputs, drawn as the description
            says. Defaults to 0.
        preset: str or None. The preset the model came from, for the
            description. Defaults to None.

    Returns:
        The ONNX file's `Path`.
    """
    import onnx
    import onnxruntime
    import tf2onnx

    _check_exportable(model)
    if opset < 17:
        raise ValueError(f"`opset` must be >= 17, got {opset}.")
    if num_checks < 8:
        raise ValueError(f"`num_checks` must be >= 8, got {num_checks}.")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"The ONNX path must end in .onnx, got {path}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if diffusion.is_diffusion(model):  # `step` to `path`, `denoise` beside it; the client runs the loop
        with tempfile.TemporaryDirectory() as scratch:
            if savedmodel_dir is None:
                savedmodel_dir = export_savedmodel(model, scratch, version=1)
            return diffusion.export_onnx(model, path, opset, num_checks, savedmodel_dir, seed, preset)

    specs = _input_specs(model)
    names = list(specs)
    video_fn = _float_video_fn(model)

    serving_described = description.signature_descriptions(model)["serving_default"]

    @tf.function(input_signature=[specs[n] for n in names])
    def flat_serve(*args):
        # The same checks as the SavedModel's; tf2onnx drops them (ONNX has no assert).
        video = video_fn(validation.checked_inputs(serving_described, dict(zip(names, args))))
        return {"video": to_uint8_video(video), "video_float": video}

    proto, _ = tf2onnx.convert.from_function(flat_serve, input_signature=[specs[n] for n in names], opset=opset)
    proto = _rename_outputs(proto, ["video", "video_float"])
    onnx.checker.check_model(proto)

    with tempfile.TemporaryDirectory() as scratch:
        if savedmodel_dir is None:
            savedmodel_dir = export_savedmodel(model, scratch, version=1)
        serving = tf.saved_model.load(str(savedmodel_dir)).signatures["serving_default"]
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        worst_float, worst_uint8 = 0.0, 0
        for check in range(num_checks):
            batch = 1 + check % 4
            frames = model.num_frames if not model.variable_length else max(2, model.num_frames - 2 + check % 5)
            inputs = _random_inputs(model, rng, batch, frames)
            onnx_video, onnx_float = session.run(["video", "video_float"], inputs)
            tf_float = flat_serve(*[tf.constant(inputs[n]) for n in names])["video_float"].numpy()
            saved_video = serving(**{n: tf.constant(v) for n, v in inputs.items()})["video"].numpy()
            if onnx_float.shape != tf_float.shape or onnx_video.shape != saved_video.shape:
                raise ExportParityError(
                    f"ONNX output shape {onnx_float.shape} differs from TensorFlow's {tf_float.shape}."
                )
            worst_float = max(worst_float, float(np.max(np.abs(onnx_float - tf_float))))
            worst_uint8 = max(
                worst_uint8, int(np.max(np.abs(onnx_video.astype(np.int16) - saved_video.astype(np.int16))))
            )
        streaming_onnx = streaming.convert_and_check_onnx(model, opset, num_checks, savedmodel_dir, seed)
    report = {
        "model": model.registered_name,
        "opset": opset,
        "num_checks": num_checks,
        "max_abs_diff_float": worst_float,
        "max_abs_diff_uint8": worst_uint8,
        "tolerance_float": FLOAT_TOLERANCE,
        "tolerance_uint8": UINT8_TOLERANCE,
        "versions": {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "tensorflow": tf.__version__},
    }
    write_bytes(Path(f"{path}.parity.json"), json.dumps(report, indent=2).encode())
    if worst_float > FLOAT_TOLERANCE or worst_uint8 > UINT8_TOLERANCE:
        raise ExportParityError(
            f"ONNX export of {model.registered_name} disagrees with TensorFlow: max |float diff| "
            f"{worst_float:.3g} (tolerance {FLOAT_TOLERANCE}), max uint8 diff {worst_uint8} "
            f"(tolerance {UINT8_TOLERANCE}); {path} was not written."
        )
    described = description.describe_model(model, preset=preset, signatures=["serving_default"])
    outputs = described["signatures"]["serving_default"]["outputs"]
    outputs["video_float"] = dict(outputs["video"], dtype="float32", range=[-1.0, 1.0])
    described["versions"] = description.versions(
        {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
         "opset": int(opset)}
    )
    described["parity"] = {
        "onnx": {"checks": num_checks, "max_abs_diff": worst_uint8, "tolerance": UINT8_TOLERANCE, "output": "video"},
        "onnx_float": {"checks": num_checks, "max_abs_diff": worst_float, "tolerance": FLOAT_TOLERANCE,
                       "output": "video_float"},
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = description.ONNX_METADATA_KEY, description.to_json(described)
    write_bytes(path, proto.SerializeToString())
    if streaming_onnx is not None:
        stream_described = dict(described, signatures=streaming.streaming_description(model))
        streaming.write_onnx(path, streaming_onnx, stream_described)
    logger.info("Wrote ONNX %s (max float diff %.3g)", path, worst_float)
    return path


def _rename_outputs(proto, names):
    """Gives the ONNX graph outputs stable names (tf2onnx keeps TF's Identity names)."""
    renames = {}
    for output, name in zip(proto.graph.output, names):
        renames[output.name] = name
        output.name = name
    for node in proto.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    return proto
