"""`vidgen export`: presets to SavedModel (TF Serving layout) and ONNX, with TF Serving's config files, or to a
Triton Inference Server model repository.

`vidgen export PRESET --out DIR` writes `DIR/<model>/<version>/` and
`DIR/<model>.onnx`; `vidgen export --all-presets --out DIR` writes every zoo
preset as `DIR/<preset>/<version>/` and `DIR/<preset>.onnx`. Both add or update
the model's entry in `DIR/models.config` (TF Serving's `model_config_list`; other
entries are kept) and write `DIR/batching.config` when it is absent. Every file
is written atomically. `--format triton` makes `DIR` a Triton model repository
instead: `DIR/<model>/` (ONNX) and `DIR/<model>_tf/` (SavedModel), each with
its `config.pbtxt` (see `vidgen_tf.exporting.triton`).
"""

import json
import re
from pathlib import Path

from vidgen_tf.cli.common import UsageError, _quiet_tensorflow

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching.config"

# The server-side batching of export/batching.config.
BATCHING = """\
# Server-side batching for TF Serving (--enable_batching). Generation is compute-bound on CPU:
# small batches and a short timeout keep latency low.
max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
num_batch_threads { value: 2 }
max_enqueued_batches { value: 64 }
"""

_HEADER = """\
# TF Serving model config, written by `vidgen export`: one entry per exported model, whose
# base_path holds its numbered versions (TF Serving serves the highest).
"""
_NAME = re.compile(r'^[A-Za-z0-9_.-]+$')


# ---------------------------------------------------------------------------
# models.config
# ---------------------------------------------------------------------------


def _config_blocks(text, path):
    """The `config { ... }` blocks inside `model_config_list { ... }`: [(name, block text)]."""
    start = re.search(r"model_config_list\s*\{", text)
    if start is None:
        raise UsageError(f"{path} is not a TF Serving model config: it has no `model_config_list {{`. "
                         "Move it away or fix it; vidgen export adds its entries to that list.")
    blocks, i = [], start.end()
    while True:
        match = re.compile(r"\s*(?:#[^\n]*\n\s*)*(config\s*\{|\})").match(text, i)
        if match is None:
            raise UsageError(f"{path}: cannot read the entry at character {i} of model_config_list.")
        if match.group(1) == "}":
            return blocks
        depth, j = 1, match.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            raise UsageError(f"{path}: a `config {{` block is not closed.")
        block = text[match.start(1):j]
        name = re.search(r'\bname\s*:\s*"([^"]*)"', block)
        if name is None:
            raise UsageError(f"{path}: a config entry has no name: {block!r}.")
        blocks.append((name.group(1), block))
        i = j


def _entry(name, base_path):
    return (f'config {{\n    name: "{name}"\n    base_path: "{base_path}"\n'
            f'    model_platform: "tensorflow"\n  }}')


def update_models_config(out, names, base_path=None):
    """Adds or replaces the entries of `names` in `out/models.config`, keeping the others.

    Args:
        out: Path. The export directory.
        names: list of str. Model names (each the directory of its versions).
        base_path: str or None. Prefix of every base_path as the server sees
            it (e.g. `/models` in a container); defaults to `out`'s absolute
            path.

    Returns:
        The config file's `Path`.
    """
    from vidgen_tf.atomic import write_bytes

    path = Path(out) / MODELS_CONFIG
    blocks = _config_blocks(path.read_text(), path) if path.exists() else []
    prefix = str(base_path).rstrip("/") if base_path else str(Path(out).resolve())
    entries = dict(blocks)
    for name in names:
        entries[name] = _entry(name, f"{prefix}/{name}")
    body = "".join(f"  {block}\n" for block in entries.values())
    write_bytes(path, f"{_HEADER}model_config_list {{\n{body}}}\n".encode())
    return path


def _write_batching_config(out):
    from vidgen_tf.atomic import write_bytes

    path = Path(out) / BATCHING_CONFIG
    if path.exists():
        return path, False
    return write_bytes(path, BATCHING.encode()), True


# ---------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------


def _export(preset, name, out, formats, args):
    import vidgen_tf
    from vidgen_tf import exporting

    model = vidgen_tf.from_preset(preset)
    name = name or model.registered_name
    preset_name = Path(preset).name
    if formats == ["triton"]:
        written = exporting.export_triton(model, out, name=name, version=args.version, overwrite=args.overwrite,
                                          preset=preset_name, overwrite_flag="--overwrite")
        parity = written["parity"]
        for key in ("onnx", "savedmodel"):
            entry = written[key]
            line = (f"triton: {entry['model']} ({entry['file']}, {entry['config'].name}: "
                    f"max_batch_size {entry['max_batch_size']}")
            if key == "onnx":
                line += (f"; max |diff| vs SavedModel: float {parity['max_abs_diff_float']:.2e}, "
                         f"uint8 {parity['max_abs_diff_uint8']}")
            print(line + ")")
        return name
    # Staged whole (vidgen_tf.exporting.export_bundle): an interrupted export leaves the old one as it was.
    written = exporting.export_bundle(model, out, name=name, version=args.version, formats=formats,
                                      overwrite=args.overwrite, preset=preset_name, overwrite_flag="--overwrite")
    if written["savedmodel"] is not None:
        print(f"savedmodel: {written['savedmodel']}")
    if written["onnx"] is not None:
        path = written["onnx"]
        parity = json.loads(Path(f"{path}.parity.json").read_text())
        print(f"onnx: {path} (max |diff| vs SavedModel: float {parity['max_abs_diff_float']:.2e}, "
              f"uint8 {parity['max_abs_diff_uint8']}; {path}.parity.json)")
    return name


def cmd_export(args):
    _quiet_tensorflow()
    import vidgen_tf

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"savedmodel", "onnx", "triton"})
    if unknown or not formats:
        raise UsageError(f"--format takes savedmodel and/or onnx, or triton, got {args.format!r}.")
    if "triton" in formats and len(set(formats)) > 1:
        raise UsageError("--format triton makes --out a Triton model repository and cannot be combined with "
                         "savedmodel or onnx (both write OUT/<model>/): export those to another folder.")
    if "triton" in formats and args.base_path is not None:
        raise UsageError("--base-path sets the base_path of TF Serving's models.config; a Triton repository has "
                         "none (give Triton --model-repository=OUT).")
    if bool(args.preset) == bool(args.all_presets):
        raise UsageError("give a preset (name or directory) or --all-presets, not both or neither.")
    if args.base_path is not None and not args.base_path.strip():
        raise UsageError("--base-path must not be empty (e.g. --base-path /models).")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory.")
    if args.all_presets:
        presets = vidgen_tf.list_presets()
        if not presets:
            from vidgen_tf.presets import zoo_dir

            raise UsageError(f"The zoo ({zoo_dir()}) holds no presets.")
        bad = [p for p in presets if not _NAME.match(p)]
        if bad:
            raise UsageError(f"Preset names {bad} cannot name a TF Serving model (letters, digits, _ . - only).")
        jobs = [(p, p) for p in presets]
    else:
        jobs = [(args.preset, None)]
    from vidgen_tf.atomic import new_directory

    with new_directory(out):  # an input error (a preset that does not load) leaves no empty --out
        for preset, name in jobs:
            if len(jobs) > 1:
                print(f"== {preset}", flush=True)
            name = _export(preset, name, out, sorted(set(formats)), args)
            if "savedmodel" in formats:  # recorded as each model lands: an interrupted run lists what it wrote
                update_models_config(out, [name], args.base_path)
    if "savedmodel" in formats:
        print(f"models.config: {out / MODELS_CONFIG}")
        path, written = _write_batching_config(out)
        print(f"batching.config: {path}" + ("" if written else " (kept the existing file)"))
    return 0
