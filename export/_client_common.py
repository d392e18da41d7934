"""What the clients under export/ share, without TensorFlow.

- `load_description(path)` reads an export's description (the JSON of
  EXPORT_DESCRIPTION.md): from a SavedModel version directory, a base
  directory of numbered versions, an `.onnx` file or the `.json` itself.
- `draw_inputs(...)` draws every input of a signature from the distribution
  the description declares for it, from one seed.
- `write_videos(path, videos)` writes uint8 videos `(N, T, H, W, C)` as
  `.npz` (all of them, `videos`), `.gif` or `.mp4` (one grid video),
  atomically.

Only numpy, the standard library and, where a format needs them, onnx or
onnxruntime (ONNX metadata), Pillow (GIF) and PyAV (MP4) are imported.
"""

import json
import math
import os
import tempfile

import numpy as np

DESCRIPTION_FORMAT = "vidgen_tf.export/1"
DESCRIPTION_ASSET = os.path.join("assets", "vidgen_export.json")
ONNX_METADATA_KEY = "vidgen_export"
OUTPUT_EXTENSIONS = (".npz", ".gif", ".mp4")
_DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64, "uint8": np.uint8}


class ClientError(ValueError):
    """Bad input to a client, or an export it cannot use; the message says which."""


# ---------------------------------------------------------------------------
# The description
# ---------------------------------------------------------------------------


def _onnx_metadata(path):
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        proto = onnx.load(str(path), load_external_data=False)
        return {entry.key: entry.value for entry in proto.metadata_props}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def _version_dirs(base):
    return sorted((int(p), os.path.join(base, p)) for p in os.listdir(base)
                  if p.isdigit() and os.path.isdir(os.path.join(base, p)))


def load_description(path):
    """The export description of `path`, as a dict.

    Args:
        path: str. A SavedModel (version) directory, a base directory holding
            numbered versions (the highest is read, as TF Serving serves it),
            an `.onnx` file, or a description `.json` file.

    Returns:
        The description dict (see EXPORT_DESCRIPTION.md).

    Raises:
        ClientError: `path` is missing, carries no description, or one of
            another format.
    """
    path = str(path)
    if not os.path.exists(path):
        raise ClientError(f"{path} does not exist (expected an export: a SavedModel directory or an .onnx file).")
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            versions = _version_dirs(path)
            if not versions:
                raise ClientError(f"{path} is neither a SavedModel directory (no saved_model.pb) nor a base "
                                  "directory of numbered versions.")
            path = versions[-1][1]
        asset = os.path.join(path, DESCRIPTION_ASSET)
        if not os.path.isfile(asset):
            raise ClientError(f"The SavedModel {path} has no description ({DESCRIPTION_ASSET}): it was exported "
                              "by a vidgen_tf without export descriptions; export it again.")
        with open(asset, encoding="utf-8") as f:
            text, source = f.read(), asset
    elif path.endswith(".onnx"):
        metadata = _onnx_metadata(path)
        if ONNX_METADATA_KEY not in metadata:
            raise ClientError(f"The ONNX file {path} has no description (no metadata_props entry "
                              f"{ONNX_METADATA_KEY!r}): it was exported by a vidgen_tf without export "
                              "descriptions; export it again.")
        text, source = metadata[ONNX_METADATA_KEY], f"{path} (metadata {ONNX_METADATA_KEY!r})"
    elif path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            text, source = f.read(), path
    else:
        raise ClientError(f"{path}: expected a SavedModel directory, an .onnx file or a description .json file.")
    try:
        description = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClientError(f"The description in {source} is not valid JSON: {error}.") from None
    description = check_description(description, source)
    if not path.endswith(".json"):
        check_weights(path, description)
    return description


# ---------------------------------------------------------------------------
# Files exported together hold the same weights
# ---------------------------------------------------------------------------


def _recorded_digest(path):
    """The `weights_digest` a file of an export records (None if it records none)."""
    if path.endswith(".parity.json"):
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("weights_digest")
    if path.endswith(".onnx"):
        text = _onnx_metadata(path).get(ONNX_METADATA_KEY)
    else:
        asset = os.path.join(path, DESCRIPTION_ASSET)
        text = open(asset, encoding="utf-8").read() if os.path.isfile(asset) else None
    try:
        return json.loads(text).get("weights_digest") if text else None
    except json.JSONDecodeError:
        return None


def check_weights(path, description):
    """Raises ClientError when files exported together with `path` come from other weights.

    An `.onnx` file is compared with its streaming files (`<stem>.chunk.onnx`,
    `<stem>.initial_state.onnx`), the parity reports beside them and the
    SavedModel it was checked against (`paired_savedmodel`); a SavedModel
    version `<dir>/<name>/<v>` with `<dir>/<name>.onnx` when that file was
    checked against it. Each records the `weights_digest` of its weights.
    """
    digests = {path: description.get("weights_digest")}
    if path.endswith(".onnx"):
        directory, name = os.path.split(os.path.abspath(path))
        stem = name[: -len(".onnx")]
        for part in (".initial_state", ".chunk"):
            if stem.endswith(part):
                stem = stem[: -len(part)]
        for part in ("", ".initial_state", ".chunk"):
            model = os.path.join(directory, f"{stem}{part}.onnx")
            for candidate in (model, f"{model}.parity.json"):
                if os.path.isfile(candidate) and os.path.abspath(candidate) != os.path.abspath(path):
                    digests[candidate] = _recorded_digest(candidate)
        main = os.path.join(directory, f"{stem}.onnx")
        paired = description.get("paired_savedmodel")
        if os.path.abspath(main) != os.path.abspath(path) and os.path.isfile(main):
            text = _onnx_metadata(main).get(ONNX_METADATA_KEY)
            paired = json.loads(text).get("paired_savedmodel") if text else None
        if paired and os.path.isfile(os.path.join(directory, paired, "saved_model.pb")):
            digests[os.path.join(directory, paired)] = _recorded_digest(os.path.join(directory, paired))
    elif os.path.isdir(path):
        version_dir = path if os.path.isfile(os.path.join(path, "saved_model.pb")) else _version_dirs(path)[-1][1]
        base = os.path.dirname(os.path.abspath(version_dir))
        onnx_file = f"{base}.onnx"
        if os.path.isfile(onnx_file):
            text = _onnx_metadata(onnx_file).get(ONNX_METADATA_KEY)
            onnx_description = json.loads(text) if text else {}
            if onnx_description.get("paired_savedmodel") == f"{os.path.basename(base)}/{os.path.basename(version_dir)}":
                digests[onnx_file] = onnx_description.get("weights_digest")
    found = {where: digest for where, digest in digests.items() if digest is not None}
    if len(set(found.values())) > 1:
        listed = "; ".join(f"{where}: {digest}" for where, digest in found.items())
        raise ClientError(f"The files exported with {path} come from different weights ({listed}): an export was "
                          "interrupted or only part of it replaced. Export the model again.")


def check_description(description, source="the description"):
    """Checks the keys the clients rely on; returns `description`."""
    if not isinstance(description, dict) or description.get("format") != DESCRIPTION_FORMAT:
        found = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise ClientError(f"{source} is not a {DESCRIPTION_FORMAT} description (format: {found!r}).")
    for key in ("model", "video", "signatures"):
        if key not in description:
            raise ClientError(f"{source} has no {key!r} entry.")
    return description


def signature(description, name):
    """The description of signature `name`; an unknown name lists the known ones."""
    signatures = description["signatures"]
    if name not in signatures:
        raise ClientError(f"Unknown signature {name!r} for model {description['model']!r}; it has: "
                          f"{', '.join(sorted(signatures))}.")
    return signatures[name]


def video_output(description, signature_name):
    """The name of the signature's uint8 video output (`video` where it exists)."""
    outputs = signature(description, signature_name)["outputs"]
    if "video" in outputs:
        return "video"
    videos = [name for name, spec in outputs.items() if spec.get("dtype") == "uint8" and len(spec["shape"]) == 5]
    if not videos:
        raise ClientError(f"Signature {signature_name!r} of {description['model']!r} has no uint8 video output "
                          f"(outputs: {', '.join(outputs)}).")
    return videos[0]


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _num_frames(description, frames):
    video = description["video"]
    if frames is None:
        return video["num_frames"]
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ClientError(f"The frame count must be a positive integer, got {frames!r}.")
    if not video.get("variable_length", False) and frames != video["num_frames"]:
        raise ClientError(f"Model {description['model']!r} makes videos of exactly {video['num_frames']} frames; "
                          f"a frame count of {frames} cannot be given.")
    return frames


def check_limits(description, num, frames=None, chunk_frames=None):
    """Raises ClientError naming `--num` / `--frames` above the export's `limits`, before anything is drawn."""
    limits = description.get("limits") or {}
    maximum = limits.get("max_batch_size")
    if maximum is not None and num > maximum:
        raise ClientError(f"--num {num} is above the export's max_batch_size ({maximum}): the model refuses "
                          f"larger requests; make {maximum} or fewer videos per request.")
    maximum = limits.get("max_frames")
    for flag, value in (("--frames", frames), ("chunk_frames", chunk_frames)):
        if maximum is not None and value is not None and value > maximum:
            raise ClientError(f"{flag} {value} is above the export's max_frames ({maximum}): the model refuses "
                              "longer requests.")


def _shape(name, spec, sizes):
    shape = []
    roles = spec.get("dynamic_axes", {})
    for axis, size in enumerate(spec["shape"]):
        if size is not None:
            shape.append(int(size))
            continue
        role = roles.get(str(axis))
        if role not in sizes:
            raise ClientError(f"Input {name!r}: axis {axis} is dynamic with role {role!r}; this client fills "
                              f"the roles {', '.join(sorted(sizes))}.")
        if sizes[role] is None:
            raise ClientError(f"Input {name!r} needs a {role} length (axis {axis}); give one.")
        shape.append(sizes[role])
    return shape


def _labels(name, distribution, label, shape, rng):
    num_classes = distribution["num_classes"]
    if label is None:
        return rng.integers(0, num_classes, size=shape)
    labels = np.asarray(label)
    if labels.dtype.kind not in "iu":
        raise ClientError(f"Input {name!r}: labels must be integers, got {label!r}.")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ClientError(f"Input {name!r}: label {int(bad.flat[0])} is out of range; this model has "
                          f"{num_classes} classes (labels 0 to {num_classes - 1}).")
    try:
        return np.broadcast_to(labels, shape)
    except ValueError:
        raise ClientError(f"Input {name!r}: {labels.size} labels given for shape {shape}; give one label or "
                          f"one per video.") from None


def draw_inputs(description, signature_name="serving_default", num=1, seed=0, frames=None, label=None,
                chunk_frames=None, num_steps=None, guidance_scale=None):
    """Draws every input of a signature from its declared distribution.

    Inputs are drawn in name order from one `numpy.random.default_rng(seed)`,
    so a seed gives the same inputs every time.

    Args:
        description: dict. The export description.
        signature_name: str. The signature to call. Defaults to
            `"serving_default"`.
        num: int. Videos to make (the `batch` axes, and a `count` input
            named `batch_size`). Defaults to 1.
        seed: int. Seed of the draws and the value of `seed` inputs.
            Defaults to 0.
        frames: int or None. Frame count (`frames` axes, a `num_frames`
            count); only for models of any length. Defaults to None (the
            model's `num_frames`).
        label: int, sequence of int or None. Class label(s) of conditional
            models. Defaults to None (drawn uniformly).
        chunk_frames: int or None. Length of `chunk_frames` axes. Defaults
            to None.
        num_steps: int or None. Sampling steps of a diffusion model's
            `num_steps` count. Defaults to None (the description's default).
        guidance_scale: float or None. Classifier-free guidance of a
            conditional diffusion model (1: none). Defaults to None (the
            description's default).

    Returns:
        dict name -> numpy array of the declared dtype and shape.
    """
    spec_of = signature(description, signature_name)["inputs"]
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ClientError(f"The number of videos must be a positive integer, got {num!r}.")
    frames = _num_frames(description, frames)
    check_limits(description, num, frames, chunk_frames)
    if label is not None and not any(s["distribution"]["kind"] == "label" for s in spec_of.values()):
        raise ClientError(f"Model {description['model']!r} is unconditional; a label cannot be given.")
    counts = {"batch_size": num, "num_frames": frames, "chunk_frames": chunk_frames}
    steps = spec_of.get("num_steps", {}).get("distribution", {})
    counts["num_steps"] = steps.get("default") if num_steps is None else num_steps
    sizes = {"batch": num, "frames": frames, "chunk_frames": chunk_frames}
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in sorted(spec_of):
        spec = spec_of[name]
        if spec["dtype"] not in _DTYPES:
            raise ClientError(f"Input {name!r} has dtype {spec['dtype']!r}; this client knows {', '.join(_DTYPES)}.")
        dtype = _DTYPES[spec["dtype"]]
        distribution = spec["distribution"]
        kind = distribution["kind"]
        shape = _shape(name, spec, sizes)
        if kind == "normal":
            value = rng.standard_normal(shape) * distribution.get("stddev", 1.0) + distribution.get("mean", 0.0)
        elif kind == "uniform":
            value = rng.uniform(distribution.get("low", 0.0), distribution.get("high", 1.0), size=shape)
        elif kind == "label":
            value = _labels(name, distribution, label, shape, rng)
        elif kind == "seed":
            value = np.full(shape, seed)
        elif kind == "count":
            if name not in counts or counts[name] is None:
                raise ClientError(f"Input {name!r} is a count this client cannot fill (it fills "
                                  f"{', '.join(k for k, v in counts.items() if v is not None)}).")
            if counts[name] < distribution.get("min", 1):
                raise ClientError(f"Input {name!r} must be at least {distribution.get('min', 1)}, got {counts[name]}.")
            value = np.full(shape, counts[name])
        elif kind == "guidance":
            value = np.full(shape, distribution.get("default", 1.0) if guidance_scale is None else guidance_scale)
            if not value.min() >= distribution.get("min", 0.0):
                raise ClientError(f"Input {name!r} must be at least {distribution.get('min', 0.0)}, got "
                                  f"{guidance_scale}.")
        else:
            raise ClientError(f"Input {name!r} of signature {signature_name!r} takes {kind!r} values, which this "
                              "client cannot draw; choose a generation signature.")
        inputs[name] = np.asarray(value).astype(dtype)
    return inputs


def check_video(video, description, signature_name, output_name):
    """Checks a returned video against the description; returns it as uint8 `(N, T, H, W, C)`."""
    spec = signature(description, signature_name)["outputs"][output_name]
    video = np.asarray(video)
    if video.ndim != len(spec["shape"]) or any(
            want is not None and want != got for want, got in zip(spec["shape"], video.shape)):
        raise ClientError(f"Output {output_name!r} has shape {list(video.shape)}; the description says "
                          f"{spec['shape']}.")
    if video.size and (video.min() < 0 or video.max() > 255):
        raise ClientError(f"Output {output_name!r} holds values outside [0, 255].")
    return video.astype(np.uint8)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def tile(videos, padding=1):
    """uint8 `(N, T, H, W, C)` -> one grid video `(T, H', W', C)`, near-square."""
    n, t, h, w, c = videos.shape
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros([t, rows * (h + padding) - padding, columns * (w + padding) - padding, c], np.uint8)
    for i in range(n):
        y, x = (i // columns) * (h + padding), (i % columns) * (w + padding)
        grid[:, y:y + h, x:x + w] = videos[i]
    return grid


def _rgb(frames):
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames[..., :3]


def _write_atomically(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        write(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_gif(target, frames, fps):
    from PIL import Image

    images = [Image.fromarray(frame) for frame in _rgb(frames)]
    images[0].save(target, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0)


def _write_mp4(target, frames, fps):
    import av

    frames = _rgb(frames)
    # H.264 in yuv420p needs even sizes: pad by one row / column where odd.
    t, h, w, _ = frames.shape
    frames = np.pad(frames, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)])
    with av.open(target, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def check_output_path(path):
    """Checks, before any work, that `path` can be written as a video file."""
    path = str(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_EXTENSIONS:
        raise ClientError(f"Cannot write {path}: the output must end in {', '.join(OUTPUT_EXTENSIONS)}.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ClientError(f"Cannot write {path}: directory {directory} does not exist.")
    return extension


def write_videos(path, videos, fps=8):
    """Writes uint8 videos `(N, T, H, W, C)` by the extension of `path`, atomically.

    `.npz` keeps every video (`videos` `(N, T, H, W, C)`, as the `npz` dataset
    reads it); `.gif` and `.mp4` hold one grid of all of them.
    """
    path = str(path)
    extension = check_output_path(path)
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim != 5:
        raise ClientError(f"Expected uint8 videos (N, T, H, W, C), got {videos.dtype} {list(videos.shape)}.")
    if extension == ".npz":
        _write_atomically(path, lambda target: np.savez_compressed(target, videos=videos))
    elif extension == ".gif":
        _write_atomically(path, lambda target: _write_gif(target, tile(videos), fps))
    else:
        _write_atomically(path, lambda target: _write_mp4(target, tile(videos), fps))
    return path


# ---------------------------------------------------------------------------
# Command lines
# ---------------------------------------------------------------------------


def add_generation_arguments(parser):
    """The options every client takes: what to generate and where to write it."""
    parser.add_argument("--signature", default="serving_default",
                        help="signature to call (default serving_default; `generate` takes a batch size and seed)")
    parser.add_argument("--num", type=int, default=4, help="videos to make (default 4)")
    parser.add_argument("--frames", type=int, help="frame count, for models of any length (default: the model's)")
    parser.add_argument("--label", type=int, help="class label of conditional models (default: drawn at random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn inputs (default 0)")
    parser.add_argument("--num-steps", type=int,
                        help="diffusion models: sampling steps (default: the export's, its model's sampling_steps)")
    parser.add_argument("--guidance-scale", type=float,
                        help="conditional diffusion models: classifier-free guidance, 1 none (default: the export's)")
    parser.add_argument("--fps", type=int, default=8, help="frames per second of .gif/.mp4 (default 8)")
    parser.add_argument("--out", required=True, help="output file: .npz (every video), .gif or .mp4 (a grid)")


def add_server_arguments(parser):
    """The options of the TF Serving clients (REST, gRPC): which model, and the export it came from."""
    parser.add_argument("--model", required=True, help="model name in models.config")
    parser.add_argument("--version", type=int, help="model version (default: the one TF Serving serves)")
    parser.add_argument("--description", required=True,
                        help="the export (SavedModel directory, .onnx) or description .json the server's model was "
                             "exported with: it says how each input is drawn")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")


def run_main(main):
    """Runs a client's `main`, printing a ClientError as one line and exiting 2."""
    import sys

    try:
        return main()
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
