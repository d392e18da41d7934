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

`export_triton` (`vidgen_tf.exporting.triton`) writes both into a Triton
Inference Server model repository, each with its `config.pbtxt`.
"""

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf.atomic import atomic_directory, write_bytes
from vidgen_tf.exporting import description, validation
from vidgen_tf.exporting.description import (  # noqa: F401
    ExportMismatchError, MissingDescriptionError, describe,
)
from vidgen_tf.exporting import catalog, diffusion, streaming, triton
from vidgen_tf.exporting.catalog import describe_model  # noqa: F401

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


def _build_archive(model, limits):
    import keras

    specs = _input_specs(model)
    described = catalog.signature_descriptions(model)
    video_fn = _float_video_fn(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    if diffusion.is_diffusion(model):  # the sampling loop in the graph, denoise and step
        return diffusion.add_savedmodel_endpoints(archive, model, limits)

    # Every signature takes inputs of any shape and checks them itself (`validation`): a graph trusts
    # a declared shape, so a wrong rank would otherwise reach the model unchecked.
    def serve(inputs):
        inputs = validation.checked_inputs(described["serving_default"], inputs, limits)
        return {"video": to_uint8_video(video_fn(inputs))}

    archive.add_endpoint("serving_default", serve, input_signature=[validation.relaxed_specs(specs)])

    generate_names = list(description.generate_input_specs(model))
    generate_specs = list(validation.relaxed_specs(description.generate_input_specs(model)).values())

    def generate(*args):
        args = validation.checked_inputs(described["generate"], dict(zip(generate_names, args)), limits)
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
                videos = validation.checked_inputs(described[name], {"videos": videos}, limits)["videos"]
                # log_prob takes uint8 (as x / 127.5 - 1) and float videos alike.
                return {"log_prob": tf.cast(model.log_prob(videos), tf.float32)}

            return score

        for name, dtype in (("log_prob", "float32"), ("log_prob_uint8", "uint8")):
            spec = description.log_prob_input_specs(model, dtype)
            archive.add_endpoint(
                name, scorer(name), input_signature=[validation.relaxed_specs(spec)["videos"]]
            )
    streaming.add_savedmodel_endpoints(archive, model, limits)
    return archive


def _write_description(version_dir, text):
    """`<version_dir>/assets/vidgen_export.json` (the SavedModel's assets travel with it)."""
    assets = Path(version_dir) / "assets"
    assets.mkdir(exist_ok=True)
    (assets / description.ASSET_NAME).write_text(text)


def check_replaceable(target, overwrite, overwrite_flag="overwrite=True"):
    """Refuses to write the version directory `target` unless it is new, or a SavedModel and `overwrite`.

    An export replaces only its own kind of output: a folder that holds no
    `saved_model.pb` (someone's files under the serving tree) is never replaced.

    Raises:
        FileExistsError: `target` exists and `overwrite` is False, or it is not a SavedModel.
    """
    target = Path(target)
    if not os.path.lexists(target):
        return
    if not overwrite:
        raise FileExistsError(f"{target} already exists; pass {overwrite_flag} to replace it.")
    if not target.is_dir() or not (target / "saved_model.pb").is_file():
        raise FileExistsError(f"{target} exists and is not a SavedModel (no saved_model.pb); an export replaces only "
                              "an export's version folder, even when told to overwrite: move it away.")


def export_savedmodel(model, directory, version=1, overwrite=False, preset=None, max_batch_size=None,
                      max_frames=None):
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

    Every signature checks its inputs (rank and fixed sizes, sizes of shared
    batch and frames axes, noise support, finite states, label range,
    counts, video range; see `vidgen_tf.exporting.validation`): invalid input
    gives INVALID_ARGUMENT with a message naming the input and what was
    expected. A batch above `max_batch_size` or more frames than
    `max_frames` (the description's `limits`) is refused so, before the
    model allocates anything.

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
        max_batch_size: int or None. Videos per request; defaults to
            `description.DEFAULT_MAX_BATCH_SIZE` (64).
        max_frames: int or None. Frames per request; defaults to
            `description.DEFAULT_MAX_FRAMES` (1024) for models of any length,
            a fixed-length model's `num_frames` otherwise.

    Returns:
        The version directory as a `Path`.
    """
    _check_exportable(model)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"`version` must be a non-negative integer, got {version!r}.")
    base = Path(directory) / model.registered_name
    target = base / str(version)
    check_replaceable(target, overwrite)
    limits = description.request_limits(model, max_batch_size, max_frames)
    text = description.to_json(catalog.describe_model(model, preset=preset, limits=limits))
    base.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as temporary:
        archive = _build_archive(model, limits)
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
    described = catalog.signature_descriptions(model)["serving_default"]
    return draw_inputs(described, rng, batch_size, num_frames)


def export_onnx(model, path, opset=ONNX_OPSET, num_checks=8, savedmodel_dir=None, seed=0, preset=None,
                max_batch_size=None, max_frames=None):
    """Converts `serving_default` to ONNX and checks it against the SavedModel.

    The ONNX graph takes the same named inputs and returns `video` (uint8),
    `video_float` (float32 in [-1, 1]) and `inputs_valid` (bool scalar: False
    when an input fails a check the SavedModel's signature asserts; ONNX has
    no assert, so clients check it). It is checked with `onnx.checker`, then
    run by onnxruntime on `num_checks` random inputs of varying batch size (and
    length, where the model allows it): `video_float` must match the
    TensorFlow function within 1e-4 and `video` the SavedModel's
    `serving_default` within one level. The ONNX file is written only when the
    check passes, and the maximum differences to `<path>.parity.json` only
    after it (a parity report never stands beside a file that was not
    written). `savedmodel_dir` must hold the same weights (its description's
    `weights_digest`).
    A model that streams also gets `<stem>.initial_state.onnx` and
    `<stem>.chunk.onnx`, checked likewise (`vidgen_tf.exporting.streaming`).
    A diffusion model's file holds its `step` instead, with `denoise` in
    `<stem>.denoise.onnx`, and the loop of ONNX steps is checked against the
    SavedModel's `sample` (`vidgen_tf.exporting.diffusion`).

    ONNX cannot raise on an assert: tf2onnx drops the input checks of the
    SavedModel's signatures, so the ONNX model computes something from any
    input, valid or not; its `inputs_valid` output says whether the inputs
    passed them. Check it, or the inputs against the description (below).

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
        max_batch_size, max_frames: int or None. The request limits of the
            description (see `export_savedmodel`).

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
    limits = description.request_limits(model, max_batch_size, max_frames)
    digest = description.weights_digest(model)
    if savedmodel_dir is not None:
        saved_digest = describe(savedmodel_dir, check_pairs=False).get("weights_digest")
        if saved_digest is not None and saved_digest != digest:  # exports before digests record none
            raise description.ExportMismatchError(
                f"The SavedModel {savedmodel_dir} holds other weights ({saved_digest}) than the model being "
                f"exported to ONNX ({digest}): export both from the same model."
            )

    specs = _input_specs(model)
    names = list(specs)
    video_fn = _float_video_fn(model)

    serving_described = catalog.signature_descriptions(model)["serving_default"]

    @tf.function(input_signature=[specs[n] for n in names])
    def flat_serve(*args):
        # ONNX has no assert: the SavedModel's checks become the `inputs_valid` output.
        inputs = dict(zip(names, args))
        video = video_fn(inputs)
        return {"video": to_uint8_video(video), "video_float": video,
                "inputs_valid": validation.valid_inputs(serving_described, inputs, limits)}

    proto, _ = tf2onnx.convert.from_function(flat_serve, input_signature=[specs[n] for n in names], opset=opset)
    # A dict's outputs are flattened in the order of its sorted keys.
    proto = _rename_outputs(proto, ["inputs_valid", "video", "video_float"])
    onnx.checker.check_model(proto)

    with tempfile.TemporaryDirectory() as scratch:
        if savedmodel_dir is None:
            savedmodel_dir = export_savedmodel(model, scratch, version=1)
        serving = tf.saved_model.load(str(savedmodel_dir)).signatures["serving_default"]
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        worst_float, worst_uint8 = 0.0, 0
        for check in range(num_checks):
            batch = min(1 + check % 4, limits["max_batch_size"])
            frames = model.num_frames if not model.variable_length else max(2, model.num_frames - 2 + check % 5)
            frames = min(frames, limits["max_frames"])
            inputs = _random_inputs(model, rng, batch, frames)
            onnx_video, onnx_float, onnx_valid = session.run(["video", "video_float", "inputs_valid"], inputs)
            if not bool(onnx_valid):
                raise ExportParityError(f"The ONNX model reports valid check inputs as invalid (inputs_valid "
                                        f"False for batch {batch}, {frames} frames).")
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
        streaming_onnx = streaming.convert_and_check_onnx(model, opset, num_checks, savedmodel_dir, seed, limits)
    report = {
        "model": model.registered_name,
        "opset": opset,
        "num_checks": num_checks,
        "max_abs_diff_float": worst_float,
        "max_abs_diff_uint8": worst_uint8,
        "tolerance_float": FLOAT_TOLERANCE,
        "tolerance_uint8": UINT8_TOLERANCE,
        "weights_digest": digest,
        "versions": {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "tensorflow": tf.__version__},
    }
    if worst_float > FLOAT_TOLERANCE or worst_uint8 > UINT8_TOLERANCE:
        raise ExportParityError(
            f"ONNX export of {model.registered_name} disagrees with TensorFlow: max |float diff| "
            f"{worst_float:.3g} (tolerance {FLOAT_TOLERANCE}), max uint8 diff {worst_uint8} "
            f"(tolerance {UINT8_TOLERANCE}); {path} was not written."
        )
    described = catalog.describe_model(model, preset=preset, signatures=["serving_default"], limits=limits)
    outputs = described["signatures"]["serving_default"]["outputs"]
    outputs["video_float"] = dict(outputs["video"], dtype="float32", range=[-1.0, 1.0])
    outputs["inputs_valid"] = {"dtype": "bool", "shape": [], "dynamic_axes": {}, "range": [False, True]}
    paired = _paired_savedmodel(path, savedmodel_dir)
    if paired is not None:
        described["paired_savedmodel"] = paired
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
    # Models first, parity reports after them: a report never stands beside a file that was not written.
    write_bytes(path, proto.SerializeToString())
    if streaming_onnx is not None:
        stream_described = dict(described, signatures=streaming.streaming_description(model))
        streaming_onnx["report"]["weights_digest"] = digest
        streaming.write_onnx(path, streaming_onnx, stream_described)
    write_bytes(Path(f"{path}.parity.json"), json.dumps(report, indent=2).encode())
    logger.info("Wrote ONNX %s (max float diff %.3g)", path, worst_float)
    return path


def export_bundle(model, directory, name=None, version=1, formats=("savedmodel", "onnx"), overwrite=False,
                  preset=None, max_batch_size=None, max_frames=None, overwrite_flag="overwrite=True"):
    """Exports `model` as `<directory>/<name>/<version>/` and `<directory>/<name>.onnx`, staged whole.

    Everything (the SavedModel, the ONNX files and their parity reports) is
    written to one hidden staging directory beside the targets first, and
    checked; only then is each moved into place, by renames within one file
    system, models before their parity reports. A failure (or a kill) while
    exporting leaves the old export as it was: never a new SavedModel beside
    an old ONNX file. Every description carries the same `weights_digest`,
    so `describe()` and the clients refuse a pair left mismatched anyway.

    Args:
        model: a vidgen_tf model.
        directory: str or Path. The export directory.
        name: str or None. The name of the SavedModel's directory and ONNX
            file; defaults to `model.registered_name`.
        version: int. The SavedModel's version. Defaults to 1.
        formats: iterable of "savedmodel", "onnx". Defaults to both.
        overwrite: bool. Replace an existing version (only a SavedModel's:
            see `check_replaceable`) or ONNX file. Defaults to False.
        preset, max_batch_size, max_frames: see `export_savedmodel`.
        overwrite_flag: str. How the refusal names the way to overwrite
            (the CLI says `--overwrite`). Defaults to "overwrite=True".

    Returns:
        dict with `savedmodel` (the version directory) and `onnx` (the ONNX
        file), each a `Path` or None when not in `formats`.
    """
    import os

    from vidgen_tf.atomic import fsync, staging_directory

    _check_exportable(model)
    formats = list(formats)
    unknown = sorted(set(formats) - {"savedmodel", "onnx"})
    if unknown or not formats:
        raise ValueError(f"`formats` takes 'savedmodel' and/or 'onnx', got {formats!r}.")
    name = name or model.registered_name
    directory = Path(directory)
    target = directory / name / str(version)
    onnx_path = directory / f"{name}.onnx"
    if "savedmodel" in formats:
        check_replaceable(target, overwrite, overwrite_flag)  # only an export's own version folder
    if "onnx" in formats and onnx_path.exists() and not overwrite:
        raise FileExistsError(f"{onnx_path} already exists; pass {overwrite_flag} to replace it.")
    directory.mkdir(parents=True, exist_ok=True)
    limits = {"max_batch_size": max_batch_size, "max_frames": max_frames}
    # A staging folder with a lock: a killed export's is removed by the next export of this name.
    with staging_directory(directory / f"{name}.export") as staging:
        staged_savedmodel = None
        if "savedmodel" in formats:
            written = export_savedmodel(model, staging / "savedmodel", version=version, preset=preset, **limits)
            (staging / name).mkdir()
            staged_savedmodel = staging / name / str(version)
            os.replace(written, staged_savedmodel)
        if "onnx" in formats:
            export_onnx(model, staging / f"{name}.onnx", savedmodel_dir=staged_savedmodel, preset=preset, **limits)
        # Everything is written and checked: move it in, the models before the parity reports.
        if staged_savedmodel is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_directory(target) as temporary:
                os.rmdir(temporary)
                os.replace(staged_savedmodel, temporary)
        if "onnx" in formats:
            files = sorted(p.name for p in staging.iterdir() if p.is_file())
            for file_name in sorted(files, key=lambda n: n.endswith(".parity.json")):
                os.replace(staging / file_name, directory / file_name)
            fsync(directory, directory=True)
    return {"savedmodel": target if "savedmodel" in formats else None,
            "onnx": onnx_path if "onnx" in formats else None}


def export_triton(model, directory, **kwargs):
    """Writes `model` into the Triton model repository `directory`; see `vidgen_tf.exporting.triton`."""
    return triton.export_triton(model, directory, **kwargs)


def _paired_savedmodel(path, savedmodel_dir):
    """`"<stem>/<version>"` when the SavedModel checked against sits beside the ONNX file as
    `<dir>/<stem>/<version>/` (the layout `vidgen export` writes), else None."""
    if savedmodel_dir is None:
        return None
    savedmodel_dir = Path(savedmodel_dir).resolve()
    path = Path(path).resolve()
    if savedmodel_dir.parent == path.parent / path.stem and savedmodel_dir.name.isdigit():
        return f"{path.stem}/{savedmodel_dir.name}"
    return None


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
