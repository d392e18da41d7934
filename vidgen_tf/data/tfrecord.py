"""Packed TFRecord shards: `pack` writes any file-backed dataset, `tfrecord` reads it back.

A pack is a directory (local, or any `tf.io.gfile` URL such as `gs://` or `s3://` once
copied there) holding:

- `shard-00000-of-00004.tfrecord`, ...: one `tf.train.Example` per clip. Clips are dealt
  to the shards round-robin (clip i goes to shard `i % num_shards`), so the shards differ
  in size by at most one clip and reading them back interleaved, one record from each in
  turn, gives the clips in their original order whatever the number of shards.
- `manifest.json`: format version, geometry, counts (clips, per shard, per class), class
  names, the source's name, path and options, the seed and image format, and every
  shard's byte size and sha256.

Each example holds `frames` (one PNG or JPEG string per frame), `shape` `[T, H, W, C]`,
`label` (-1 without labels), `source` (the file the clip comes from, relative to the
source's root), `start` and `frame_indices` (frame numbers in that file) and `index`
(the clip's position in the source's `clip_records` order).

The reader (`TFRecordSource`) is pure TensorFlow: the shard files are interleaved in
parallel and decoded in the graph, so it runs inside `tf.data` (and the `tf.data`
service) with no Python in the loop, and a dataset built from the shard file list is
what `tf.data`'s `AutoShardPolicy.FILE` needs to give each worker its own files.

Example:
    >>> manifest = pack("npz", "clips.npz", "packs/clips", shards=4, num_frames=8,
    ...                 height=32, width=32, channels=1)
    >>> dataset = vidgen_tf.data.load("tfrecord", path="packs/clips", num_frames=8,
    ...                               height=32, width=32, channels=1, batch_size=16)
"""

import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf import atomic
from vidgen_tf.data import registry, remote, service

FORMAT = "vidgen-tfrecord"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IMAGE_FORMATS = ("png", "jpeg")
DEFAULT_SHUFFLE_BUFFER = 256


def shard_name(index, num_shards):
    """The file name of shard `index` of `num_shards`, e.g. `shard-00001-of-00004.tfrecord`."""
    return f"shard-{index:05d}-of-{num_shards:05d}.tfrecord"


# ----------------------------------------------------------------- writing
def _int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _frame_encoder(image_format, jpeg_quality):
    """A function: uint8 clip `(T, H, W, C)` -> list of T encoded frame strings."""
    if image_format == "png":
        encode = tf.io.encode_png
    else:
        def encode(frame):
            return tf.io.encode_jpeg(frame, quality=jpeg_quality)

    @tf.function(reduce_retracing=True)
    def encode_clip(clip):
        return tf.map_fn(encode, clip, fn_output_signature=tf.string)  # (T,)

    return lambda clip: [bytes(frame) for frame in encode_clip(tf.convert_to_tensor(clip)).numpy()]


def _example(record, index, frames, shape):
    features = {
        "frames": _bytes_feature(frames),
        "shape": _int_feature(shape),
        "label": _int_feature([record.label]),
        "source": _bytes_feature([str(record.source).encode("utf-8")]),
        "start": _int_feature([record.start]),
        "frame_indices": _int_feature(record.frame_indices),
        "index": _int_feature([index]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _check_record(record, index, shape, source_name):
    clip = np.asarray(record.clip)
    where = f"clip {index} of dataset '{source_name}' (from {record.source!r})"
    if clip.dtype != np.uint8:
        raise ValueError(f"{where} has dtype {clip.dtype}; packed clips must be uint8.")
    if clip.shape != tuple(shape):
        raise ValueError(f"{where} has shape {clip.shape}, but the pack's geometry is {tuple(shape)}.")
    if len(record.frame_indices) != shape[0]:
        raise ValueError(f"{where} has {len(record.frame_indices)} frame indices for {shape[0]} frames.")
    return clip


class _Progress:
    """A plain progress line on a stream: `packing [#####.....] 12/40 clips, 1.2 MB, 3.1 s`.

    Args:
        total: int or None. Clips expected; without it only the count is shown.
        stream: file. Where to write. Defaults to `sys.stderr`.
        enabled: bool or None. None: on when `stream` is a terminal. Defaults to None.
    """

    WIDTH = 30

    def __init__(self, total=None, stream=None, enabled=None):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) if enabled is None else enabled
        self.start = time.time()
        self.last = 0.0

    def update(self, count, nbytes, force=False):
        now = time.time()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * count // self.total)
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {count}/{self.total}"
        else:
            bar = f"{count}"
        self.stream.write(f"\rpacking {bar} clips, {nbytes / 1e6:.1f} MB, {now - self.start:.1f} s")
        self.stream.flush()

    def close(self, count, nbytes):
        if self.enabled:
            self.update(count, nbytes, force=True)
            self.stream.write("\n")
            self.stream.flush()


def _sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(str(path), "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _is_within(inner, outer):
    return inner == outer or outer in inner.parents


def check_pack_target(source, out, overwrite=False, out_flag="out", overwrite_flag="overwrite=True"):
    """Refuses an `out` that `pack` may not replace, before anything is read or written.

    `pack` replaces only a directory it recognises as a pack (its `manifest.json`, and
    nothing but the manifest and the shards it names), and only when told; an empty
    directory holds nothing to lose. It never writes over its own source, nor over a
    folder holding the source or the current directory.

    Args:
        source: str or path-like. The dataset's file or directory (a URL is not checked).
        out: str or path-like. The pack directory to write.
        overwrite: bool. Whether an existing pack may be replaced. Defaults to False.
        out_flag, overwrite_flag: str. How the messages name the two arguments (the CLI
            gives `--out` and `--overwrite`).

    Raises:
        ValueError: `out` is remote, is the current directory, holds the source or the
            current directory, is a file, or exists and is not a pack (its files are named).
        FileExistsError: `out` is a pack and `overwrite` is False.
    """
    text = os.fspath(out)
    where = f"{out_flag} {text}"
    if remote.needs_remote_filesystem(text):
        raise ValueError(f"pack writes to a local directory, got {where}; pack locally, then copy the "
                         "directory to remote storage (e.g. `gsutil -m cp -r` or `aws s3 cp --recursive`).")
    target = Path(os.path.abspath(text))
    if Path(text).name in ("", ".", "..") or _is_within(Path.cwd().resolve(), target.resolve()):
        raise ValueError(f"{where} is (or holds) the current directory; a pack is written whole into a folder of its "
                         f"own, which replaces what is there: give a new folder, e.g. {out_flag} packs/NAME.")
    if source is not None and not remote.path_scheme(os.fspath(source)) and \
            _is_within(Path(os.fspath(source)).resolve(), target.resolve()):
        raise ValueError(f"{where} is (or holds) the source {os.fspath(source)}; the pack would replace the clips "
                         "it reads: give a folder outside it.")
    if not os.path.lexists(target):
        return
    if not target.is_dir():
        raise ValueError(f"{where} is a file; give a directory for the pack.")
    entries = sorted(os.listdir(target))
    if not entries:
        return
    try:
        manifest = read_manifest(os.fspath(target))
        own = {MANIFEST, *(shard["file"] for shard in manifest["shards"])}
    except (OSError, ValueError, TypeError, KeyError):
        own = set()
    if MANIFEST not in own:
        raise ValueError(f"{where} exists and is not a pack (no valid {MANIFEST}); it holds "
                         f"{', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}. A pack replaces its folder "
                         "whole: give a new or empty folder.")
    foreign = [entry for entry in entries if entry not in own]
    if foreign:
        raise ValueError(f"{where} holds a pack and files that are not the pack's ({', '.join(foreign[:5])}"
                         f"{', ...' if len(foreign) > 5 else ''}); a pack replaces its folder whole: move them away.")
    if not overwrite:
        raise FileExistsError(f"{where} holds a pack already; pass {overwrite_flag} to replace it.")


def pack(name, path, out, shards=4, num_frames=None, height=None, width=None, channels=None, seed=0,
         image_format="png", jpeg_quality=95, progress=True, overwrite=False, shards_flag="shards=", **options):
    """Packs a dataset's clips into TFRecord shards with a manifest.

    The clips are those of `get_source(name).clip_records(request)` (one pass, epoch 0, in the
    source's order), dealt round-robin to `shards` files. The whole directory is written
    to a temporary sibling and moved onto `out` at the end: an interrupted pack leaves no
    partial output, and an existing pack at `out` is replaced whole (with `overwrite=True`)
    or kept as it was. A folder that is not a pack is never replaced (see `check_pack_target`).

    Args:
        name: str. A registered dataset that reads files (e.g. `npz`, `video_folder`).
        path: str or path-like. The dataset's file or directory.
        out: str or path-like. The pack directory to write (local; missing parents are made).
        shards: int. Number of shard files (at most the number of clips). Defaults to 4.
        num_frames, height, width, channels: int or None. The clips' geometry; None: the
            source's own (`vidgen_tf.data.source_geometry`: an npz file's videos whole, a pack's
            geometry, a folder's size and channels when its usable files share them, else an
            error naming two that differ). A folder resizes and converts to grey only when asked.
            Defaults to None.
        seed: int. Seed of the source's clip sampling. Defaults to 0.
        image_format: str. "png" (lossless) or "jpeg". Defaults to "png".
        jpeg_quality: int. JPEG quality in [1, 100], for "jpeg". Defaults to 95.
        progress: bool. A progress line on stderr when it is a terminal. Defaults to True.
        overwrite: bool. Replace the pack at `out` when there is one. Defaults to False.
        shards_flag: str. How an error names `shards` (the CLI gives "--shards "). Defaults to "shards=".
        **options: the source's options (e.g. `frame_step=2`).

    Returns:
        The manifest, a dict (also written to `out/manifest.json`).

    Raises:
        ValueError: bad options or geometry, a source that cannot be packed or has no
            clips, more shards than clips, a clip that does not match the geometry, or an
            `out` that is not a pack (or holds the source).
        FileExistsError: `out` is a pack and `overwrite` is False.
    """
    from vidgen_tf.data import _request

    if not registry.get_source(name).needs_path:
        packable = ", ".join(n for n in registry.list_datasets() if registry.get_source(n).needs_path)
        raise ValueError(f"Dataset '{name}' cannot be packed into TFRecords: it is generated, not read from "
                         f"files; datasets that pack: {packable}.")
    if path is None:
        raise ValueError(f"pack needs the `path` of dataset '{name}'.")
    out = os.fspath(out)
    check_pack_target(path, out, overwrite)
    shards = registry.check_int("shards", shards, 1)
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"`image_format` must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}.")
    if image_format == "jpeg":
        jpeg_quality = registry.check_int("jpeg_quality", jpeg_quality, 1, 100)
    source, request = _request(name, num_frames, height, width, channels, seed, False, path, options)
    if image_format == "jpeg" and request.channels not in (1, 3):
        raise ValueError(f"JPEG holds 1 or 3 channels, got channels={request.channels}; use image_format='png'.")
    if image_format == "png" and request.channels > 4:
        raise ValueError(f"PNG holds 1 to 4 channels, got channels={request.channels}.")
    records = source.clip_records(request)  # raises for sources that cannot pack
    encode = _frame_encoder(image_format, jpeg_quality)
    bar = _Progress(source.count_clips(request), enabled=None if progress else False)

    shard_counts = [0] * shards
    per_class = {}
    count = nbytes = 0
    # Missing parents are made, and taken away again when the pack fails.
    with atomic.new_directory(os.path.dirname(os.path.abspath(out))), atomic.atomic_directory(out) as staging:
        names = [shard_name(i, shards) for i in range(shards)]
        writers = [tf.io.TFRecordWriter(str(staging / n)) for n in names]
        try:
            for record in records:
                clip = _check_record(record, count, request.shape, name)
                example = _example(record, count, encode(clip), request.shape)
                writers[count % shards].write(example)
                shard_counts[count % shards] += 1
                per_class[int(record.label)] = per_class.get(int(record.label), 0) + 1
                count += 1
                nbytes += len(example)
                bar.update(count, nbytes)
        finally:
            for writer in writers:
                writer.close()
        bar.close(count, nbytes)
        if count == 0:
            raise ValueError(f"Dataset '{name}' at {path!r} yielded no clips; nothing to pack.")
        if count < shards:
            raise ValueError(f"{shards_flag}{shards} but dataset '{name}' at {path!r} has only {count} clips: "
                             f"use at most {count} shards.")
        labelled = -1 not in per_class
        num_classes = source.num_classes(request) if labelled else None
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "source": {"name": name, "path": os.fspath(path),
                       "options": {k: _jsonable(v) for k, v in sorted(request.options.items())}},
            "num_frames": request.num_frames,
            "height": request.height,
            "width": request.width,
            "channels": request.channels,
            "seed": request.seed,
            "image_format": image_format,
            "jpeg_quality": jpeg_quality if image_format == "jpeg" else None,
            "layout": "round_robin",
            "num_clips": count,
            "num_shards": shards,
            "num_classes": num_classes,
            "class_names": source.class_names(request) if labelled else None,
            "clips_per_class": {str(k): v for k, v in sorted(per_class.items())} if labelled else None,
            "shards": [
                {"file": n, "num_clips": c, "bytes": os.path.getsize(staging / n), "sha256": _sha256(staging / n)}
                for n, c in zip(names, shard_counts)
            ],
            "created_by": f"vidgen_tf {_version()}",
        }
        atomic.write_bytes(staging / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


def _version():
    import vidgen_tf

    return getattr(vidgen_tf, "__version__", "unknown")


def summary(manifest):
    """A few lines describing a pack: clips, shards, bytes, classes."""
    total = sum(shard["bytes"] for shard in manifest["shards"])
    lines = [
        f"{manifest['num_clips']} clips of {manifest['num_frames']}x{manifest['height']}x{manifest['width']}"
        f"x{manifest['channels']} ({manifest['image_format']}) from {manifest['source']['name']} "
        f"{manifest['source']['path']}",
        f"{manifest['num_shards']} shards, {total} bytes ({total / 1e6:.2f} MB); clips per shard: "
        + ", ".join(str(shard["num_clips"]) for shard in manifest["shards"]),
    ]
    if manifest["num_classes"] is None:
        lines.append("no labels")
    else:
        names = manifest["class_names"] or [str(i) for i in range(manifest["num_classes"])]
        counts = manifest["clips_per_class"]
        lines.append(f"{manifest['num_classes']} classes: "
                     + ", ".join(f"{names[i]} {counts.get(str(i), 0)}" for i in range(manifest["num_classes"])))
    return "\n".join(lines)


# ----------------------------------------------------------------- reading
def _join(directory, name):
    return directory.rstrip("/") + "/" + name if remote.path_scheme(directory) else os.path.join(directory, name)


def read_manifest(path):
    """The manifest of the pack at `path` (a directory or URL), checked.

    Raises:
        FileNotFoundError: no `manifest.json` in `path`.
        ValueError: the manifest is not JSON or not a vidgen-tfrecord manifest.
    """
    path = os.fspath(path)
    remote.ensure_filesystem_for(path)
    file = _join(path, MANIFEST)
    if not tf.io.gfile.exists(file):
        raise FileNotFoundError(f"TFRecord pack '{path}' has no {MANIFEST} ('{file}' does not exist); "
                                "write one with `vidgen data pack`.")
    try:
        with tf.io.gfile.GFile(file, "rb") as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"TFRecord manifest '{file}' is not valid JSON ({error}).") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"TFRecord manifest '{file}' is not a {FORMAT} manifest "
                         f"(format: {manifest.get('format') if isinstance(manifest, dict) else None!r}).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"TFRecord manifest '{file}' has format_version {manifest.get('format_version')!r}; "
                         f"this vidgen_tf reads version {FORMAT_VERSION}.")
    required = ("num_frames", "height", "width", "channels", "image_format", "num_clips", "shards", "num_classes")
    missing = [key for key in required if key not in manifest]
    if missing:
        raise ValueError(f"TFRecord manifest '{file}' lacks {missing}.")
    return manifest


def check_shards(path, manifest, verify=False):
    """The shard file paths of a pack; each must exist with the manifest's size (and sha256).

    Args:
        path: str. The pack directory.
        manifest: dict. Its manifest.
        verify: bool. Also compare every shard's sha256 (reads every byte). Defaults to False.

    Raises:
        FileNotFoundError: a shard is missing. ValueError: a size or sha256 differs.
    """
    files = []
    for shard in manifest["shards"]:
        file = _join(os.fspath(path), shard["file"])
        if not tf.io.gfile.exists(file):
            raise FileNotFoundError(f"TFRecord shard '{file}' listed in the manifest does not exist.")
        size = tf.io.gfile.stat(file).length
        if size != shard["bytes"]:
            raise ValueError(f"TFRecord shard '{file}' has {size} bytes, but the manifest says {shard['bytes']}: "
                             "the pack is incomplete or was changed; pack it again.")
        if verify:
            digest = _sha256(file)
            if digest != shard["sha256"]:
                raise ValueError(f"TFRecord shard '{file}' has sha256 {digest}, but the manifest says "
                                 f"{shard['sha256']}: the file is corrupt; pack it again.")
        files.append(file)
    return files


def _shard_of(shard, num_files):
    """`(num_shards, index)` of the `shard` option (a pair or a `tf.distribute.InputContext`), or None."""
    if shard is None:
        return None
    if isinstance(shard, tf.distribute.InputContext):
        shard = (shard.num_input_pipelines, shard.input_pipeline_id)
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise ValueError(f"`shard` must be (num_shards, index) or a tf.distribute.InputContext, got {shard!r}.")
    count = registry.check_int("shard[0] (num_shards)", shard[0], 1)
    index = registry.check_int("shard[1] (index)", shard[1], 0, count - 1)
    if count > num_files:
        raise ValueError(f"`shard`={tuple(shard)} splits the pack's {num_files} shard files between {count} "
                         f"input pipelines, so some would get none: pack with at least {count} shards.")
    return count, index


def _seed_int(seed):
    if isinstance(seed, (list, tuple)):
        return int(np.random.SeedSequence(list(seed)).generate_state(1)[0] >> 1)
    return int(seed)


def _parser(manifest, with_metadata):
    shape = [manifest["num_frames"], manifest["height"], manifest["width"], manifest["channels"]]
    frames_count, channels = shape[0], shape[3]
    description = {
        "frames": tf.io.FixedLenFeature([frames_count], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    if with_metadata:
        description.update(
            shape=tf.io.FixedLenFeature([4], tf.int64),
            source=tf.io.FixedLenFeature([], tf.string),
            start=tf.io.FixedLenFeature([], tf.int64),
            frame_indices=tf.io.FixedLenFeature([frames_count], tf.int64),
            index=tf.io.FixedLenFeature([], tf.int64),
        )
    if manifest["image_format"] == "png":
        def decode(frame):
            return tf.io.decode_png(frame, channels=channels)
    else:
        def decode(frame):
            return tf.io.decode_jpeg(frame, channels=channels)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, description)
        frames = example.pop("frames")
        clip = tf.stack([decode(frames[t]) for t in range(frames_count)])  # (T, H, W, C)
        example["clip"] = tf.ensure_shape(clip, shape)
        example["label"] = tf.cast(example["label"], tf.int32)
        return example

    return parse


def _shard_reader(files, manifest):
    """A function of one shard's file name: its serialized records, an error naming it when one is corrupt.

    TensorFlow's reader stops at a record that fails its CRC with a `DataLossError`
    ("corrupted record at 3052") that names no file. Here the reader's errors end the
    shard instead (logged as TensorFlow warnings), and the shard's end checks that it gave the
    manifest's count of records: when not, an `InvalidArgumentError` names the file.
    """
    names = tf.constant(files)
    counts = tf.constant([int(shard.get("num_clips", -1)) for shard in manifest["shards"]], tf.int64)

    def read(file):
        expected = tf.reduce_max(tf.where(tf.equal(names, file), counts, tf.constant(-1, tf.int64)))
        records = tf.data.TFRecordDataset(file).ignore_errors(log_warning=True)
        end = tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(True)))
        marked = records.map(lambda record: (record, tf.constant(False))).concatenate(end)

        def count(seen, element):
            record, is_end = element
            return seen + tf.cast(tf.logical_not(is_end), tf.int64), (record, is_end, seen)

        def check(record, is_end, seen):
            complete = tf.logical_or(tf.logical_not(is_end), tf.logical_or(expected < 0, tf.equal(seen, expected)))
            message = tf.strings.join([
                # No quotes around the name: the assertion's message escapes them.
                "TFRecord shard ", file, " is corrupt: it gave ", tf.strings.as_string(seen), " of its ",
                tf.strings.as_string(expected), " records (the TFRecord reader found a corrupted record); pack it "
                "again, or find such files before training with the tfrecord option verify=True (sha256)."])
            with tf.control_dependencies([tf.debugging.Assert(complete, [message])]):
                return tf.identity(record), is_end

        checked = marked.scan(tf.constant(0, tf.int64), count).map(check)
        return checked.filter(lambda record, is_end: tf.logical_not(is_end)).map(lambda record, is_end: record)

    return read


def _records(files, manifest, shuffle, seed, shuffle_buffer, epochs, shard):
    """Serialized examples: shard files interleaved, optionally sharded and shuffled."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    sharding = _shard_of(shard, len(files))
    if sharding is not None:
        dataset = dataset.shard(*sharding)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # One record from each file in turn: with the round-robin layout, the clips' own order.
    dataset = dataset.interleave(_shard_reader(files, manifest), cycle_length=len(files), block_length=1,
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle:
        # Seeded and reshuffled on each pass: epoch e's order is the same on every run.
        dataset = dataset.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    return dataset.repeat(epochs)  # None: endless


def read_examples(path, shard=None):
    """Every clip of a pack with its metadata, in pack order, one pass (for inspection).

    Args:
        path: str. The pack directory or URL.
        shard: `(num_shards, index)`, a `tf.distribute.InputContext` or None. Defaults to None.

    Returns:
        A `tf.data.Dataset` of dicts: `clip` uint8 `(T, H, W, C)`, `label` int32, `source`
        string, `start` int64, `frame_indices` int64 `(T,)`, `shape` int64 `(4,)`, `index` int64.
    """
    path = os.fspath(path)
    manifest = read_manifest(path)
    files = check_shards(path, manifest)
    records = _records(files, manifest, False, 0, 1, 1, shard)
    return records.map(_parser(manifest, True), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class TFRecordSource(registry.Source):
    """Clips packed by `vidgen data pack`: shards read in parallel and decoded in the graph.

    `path` is the pack directory or its URL (`gs://`, `s3://` with the `io` extra, any
    `tf.io.gfile` scheme). The requested geometry must be the pack's. The stream is endless
    and shuffled unless `shuffle=False` or `epochs` is given; a finite `load(num_videos=N)`
    reads the first N clips of one pass, unshuffled unless `shuffle=True`. Without shuffling
    the clips come in the order the source yielded them, whatever the number of shards.

    Options:
        verify: bool. Compare every shard's sha256 with the manifest before reading (reads
            every byte once more). Sizes are always compared. Defaults to False.
        shuffle_buffer: int. Clips in the shuffle buffer; the shard order is shuffled too.
            Pass e is shuffled with the seed's e-th draw: the same on every run. Defaults to 256.
        epochs: int or None. Passes over the pack before the stream ends; None: endless.
            Defaults to None.
        shard: `(num_shards, index)`, a `tf.distribute.InputContext` or None. Read only every
            `num_shards`-th shard file from `index` (one input pipeline of several, e.g. in
            `strategy.distribute_datasets_from_function`). Without it, the dataset still
            auto-shards by file under `AutoShardPolicy.FILE` / `AUTO`. Defaults to None.
        service: str or None. A `tf.data` service dispatcher ("grpc://host:port") whose
            workers read and decode the clips (see `vidgen_tf.data.service`). Defaults to None.
        service_mode: str. "parallel_epochs" or "distributed_epoch". Defaults to
            "parallel_epochs".
    """

    name = "tfrecord"
    description = "TFRecord shards written by `vidgen data pack` (local, gs://, s3:// with the io extra, ...)"
    needs_path = True
    channels_choices = None  # the pack's; `check` compares

    def options(self):
        return {"verify": False, "shuffle_buffer": DEFAULT_SHUFFLE_BUFFER, "epochs": None, "shard": None,
                "service": None, "service_mode": "parallel_epochs"}

    def path_help(self):
        return "a directory written by `vidgen data pack` (local, or a gs:// / s3:// URL)."

    def _manifest(self, request):
        return read_manifest(request.path)

    def check(self, request):
        super().check(request)
        manifest = self._manifest(request)
        geometry = ("num_frames", "height", "width", "channels")
        asked = tuple(getattr(request, key) for key in geometry)
        packed = tuple(manifest[key] for key in geometry)
        if asked != packed:
            raise ValueError(
                f"TFRecord pack '{request.path}' holds clips of (num_frames, height, width, channels) = {packed}, "
                f"but {asked} was asked; load it with its geometry or pack again."
            )
        registry.check_int("shuffle_buffer", request.option("shuffle_buffer"), 1)
        if request.option("epochs") is not None:
            registry.check_int("epochs", request.option("epochs"), 1)
        if not isinstance(request.option("verify"), bool):
            raise ValueError(f"`verify` must be True or False, got {request.option('verify')!r}.")
        _shard_of(request.option("shard"), len(manifest["shards"]))
        if request.option("service") is not None:
            service.check_service(request.option("service"), request.option("service_mode"))
        self.check_labels(request)

    def own_geometry(self, request):
        """The pack's geometry, from its manifest."""
        manifest = self._manifest(request)
        return registry.OwnGeometry({key: int(manifest[key]) for key in registry.GEOMETRY_KEYS})

    def num_classes(self, request):
        return self._manifest(request)["num_classes"]

    def class_names(self, request):
        manifest = self._manifest(request)
        if manifest["num_classes"] is None:
            return None
        return manifest.get("class_names") or [str(i) for i in range(manifest["num_classes"])]

    def describe(self, request):
        manifest = self._manifest(request)
        return (f"{manifest['num_clips']} clips in {len(manifest['shards'])} shards "
                f"({manifest['image_format']}) packed from {manifest['source']['name']}")

    def endless(self, request):
        return request.option("epochs") is None

    def dataset(self, request, shuffle, epochs, start_video=0, manifest=None):
        """Single uint8 clips `(T, H, W, C)` (with int32 labels when `request.with_labels`);
        `manifest`: the pack's, when the caller has read it already."""
        manifest = manifest or self._manifest(request)
        files = check_shards(request.path, manifest, verify=request.option("verify"))
        records = _records(files, manifest, shuffle, _seed_int(request.seed), request.option("shuffle_buffer"),
                           epochs, request.option("shard"))
        parse = _parser(manifest, False)
        with_labels = request.with_labels

        def decode(serialized):
            example = parse(serialized)
            return (example["clip"], example["label"]) if with_labels else example["clip"]

        clips = records.skip(start_video).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if request.option("service") is not None:  # read and decoded by the service's workers
            clips = service.distribute_with_service(clips, request.option("service"), request.option("service_mode"))
        return clips

    def stream(self, request, start_video, chunk_size):
        shuffle = request.shuffle if request.shuffle is not None else True  # endless or k passes: shuffled
        return self.dataset(request, shuffle, request.option("epochs"), start_video)

    def finite(self, request, num_videos, shuffle, start_video):
        manifest = self._manifest(request)
        epochs = request.option("epochs") or 1
        available = manifest["num_clips"] * epochs
        if num_videos > available:
            raise ValueError(f"`num_videos`={num_videos} but TFRecord pack '{request.path}' holds "
                             f"{manifest['num_clips']} clips (x {epochs} epochs).")
        return self.dataset(request, bool(shuffle), epochs, manifest=manifest).take(num_videos).skip(start_video)

    def make_videos(self, request, num_videos, rng):
        """The first `num_videos` clips of the pack (all with None) in pack order; `rng` is unused."""
        manifest = self._manifest(request)
        count = manifest["num_clips"] if num_videos is None else num_videos
        if count > manifest["num_clips"]:
            raise ValueError(f"`num_videos`={count} but TFRecord pack '{request.path}' holds only "
                             f"{manifest['num_clips']} clips.")
        dataset = self.dataset(dataclasses.replace(request, with_labels=True), False, 1, manifest=manifest).take(count)
        clips, labels = [], []
        for clip, label in dataset.as_numpy_iterator():
            clips.append(clip)
            labels.append(label)
        labels = np.asarray(labels, dtype=np.int32)
        return np.stack(clips), (labels if manifest["num_classes"] is not None else None)

    def count_clips(self, request):
        return self._manifest(request)["num_clips"]

    def clip_records(self, request):
        """The clips of the pack (so a pack can be repacked, e.g. with other shards or format)."""
        for example in read_examples(request.path).as_numpy_iterator():
            yield registry.ClipRecord(
                clip=example["clip"], label=int(example["label"]), source=example["source"].decode("utf-8"),
                start=int(example["start"]), frame_indices=tuple(int(i) for i in example["frame_indices"]),
            )


registry.register_source(TFRecordSource())

__all__ = ["FORMAT_VERSION", "TFRecordSource", "check_shards", "pack", "read_examples", "read_manifest",
           "shard_name", "summary"]
