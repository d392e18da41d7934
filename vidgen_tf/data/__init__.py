"""Video datasets as numpy arrays (`make_videos`) and as `tf.data` pipelines (`load`).

Every dataset is a `Source` in `vidgen_tf.data.registry`, looked up once by name:
- `moving_digits`, `bouncing_balls`, `moving_shapes`, `moving_square`: synthetic videos
  (`vidgen_tf.data.synthetic`), a deterministic function of the seed.
- `npz`: a user's file with `videos` uint8 `(N, T, H, W, C)` and optional `labels` `(N,)`
  (`vidgen_tf.data.npz`).
- `video_folder`: video files (mp4, webm, avi, mkv, mov, gif, ...) under a folder, labels
  from the first-level subfolders (UCF-101's layout); `frame_folder`: folders of numbered
  images, one video each (`vidgen_tf.data.folders`). Both probe every file once into a
  cached index (`vidgen_tf.data.index`), skip and name damaged files, and decode only the
  frames of each clip (`vidgen_tf.data.decode`), sampled and shaped by
  `vidgen_tf.data.clips` (frame_step, fps, clips_per_video, resize, short, split, ...).
- `tfrecord`: shards written by `pack` (`vidgen data pack`) from any file-backed dataset,
  read in parallel and decoded in the graph (`vidgen_tf.data.tfrecord`).

`load` yields float32 videos in [-1, 1] shaped `(batch, time, height, width, channels)`,
converted as `x / 127.5 - 1`.
"""

import os

import numpy as np
import tensorflow as tf

from vidgen_tf.data import folders as _folders  # noqa: F401  (registers its sources)
from vidgen_tf.data import npz as _npz  # noqa: F401  (registers its source)
from vidgen_tf.data import registry, synthetic  # noqa: F401
from vidgen_tf.data import tfrecord  # noqa: F401  (registers its source)
from vidgen_tf.data.service import distribute_with_service
from vidgen_tf.data.tfrecord import pack
from vidgen_tf.data.registry import describe_datasets, get_source, list_datasets
from vidgen_tf.data.synthetic import bounce, simulate_balls  # noqa: F401

# Videos generated per chunk of an endless stream; chunk k is drawn from
# `np.random.default_rng([seed, k])`, independent of the batch size.
DEFAULT_CHUNK_SIZE = 64

_check_int = registry.check_int
_check_seed = registry.check_seed


def source_geometry(name, path=None, given=None, names=None, **options):
    """The clip geometry of a request: each value as given, else the source's files' own, else the default.

    The source's own (`Source.own_geometry`): an npz file's `(T, H, W, C)`, a pack's, a folder's
    size and channels when all its usable files share them (and the frames of a clip, see
    `vidgen_tf.data.folders`); `registry.DEFAULT_GEOMETRY` (16 frames, 64x64, 1 channel) for
    generated data.

    Args:
        name: str. A dataset from `list_datasets()`.
        path: str or None. The file or folder it reads. Defaults to None.
        given: dict or None. `{key: int or None}` over num_frames, height, width, channels; None
            or absent: not given. Defaults to None.
        names: dict or None. How an error names each key (the CLI passes "--height", ...).
            Defaults to None ("height=", ...).
        **options: the dataset's options (e.g. `frame_step=2`, `split=`).

    Returns:
        `(geometry, origins, own)`: `{key: int}`, `{key: "given" | "source" | "default"}` and the
        source's `OwnGeometry`.

    Raises:
        ValueError: a key is not given and the source's files differ on it; the message names
            two files that differ and the arguments to give.
    """
    source = get_source(name)
    given = {key: value for key, value in (given or {}).items() if value is not None}
    names = {key: f"{key}=" for key in registry.GEOMETRY_KEYS} | dict(names or {})
    own = registry.OwnGeometry()
    if any(key not in given for key in registry.GEOMETRY_KEYS) and (path is not None or not source.needs_path):
        own = source.own_geometry(registry.Request(name, 1, 1, 1, 1, path=path, options=dict(options)))
    missing = [key for key in registry.GEOMETRY_KEYS if key not in given and key in own.differ]
    if missing:
        (first, first_value), (second, second_value) = own.differ[missing[0]]
        what = "channels" if missing[0] == "channels" else "size"
        keys = ["channels"] if what == "channels" else ["height", "width"]
        action = ("read with that many channels (colour converted to grey, or grey repeated)" if what == "channels"
                  else "resized to them")
        raise ValueError(
            f"The files of {name} '{os.fspath(path)}' differ in {what}: {first} is {first_value}, {second} is "
            f"{second_value}; give {' and '.join(names[key] for key in keys)} (every file is then {action}).")
    geometry, origins = {}, {}
    for key in registry.GEOMETRY_KEYS:
        if key in given:
            geometry[key], origins[key] = given[key], "given"
        elif key in own.values:
            geometry[key], origins[key] = int(own.values[key]), "source"
        else:
            geometry[key], origins[key] = registry.DEFAULT_GEOMETRY[key], "default"
    return geometry, origins, own


def _request(name, num_frames, height, width, channels, seed, with_labels, path, options,
             shuffle=None):
    """The validated `(source, Request)` of a call to `make_videos` or `load`; a geometry value of
    None is the source's own (`source_geometry`)."""
    source = get_source(name)
    shape = {"num_frames": num_frames, "height": height, "width": width, "channels": channels}
    if any(value is None for value in shape.values()):
        shape = source_geometry(name, path, shape, **options)[0]
        num_frames, height, width, channels = (shape[key] for key in registry.GEOMETRY_KEYS)
    _check_int("num_frames", num_frames, 1)
    _check_int("height", height, 1)
    _check_int("width", width, 1)
    _check_int("channels", channels, 1)
    request = registry.Request(name, int(num_frames), int(height), int(width), int(channels),
                               _check_seed(seed), bool(with_labels), path, dict(options),
                               shuffle)
    source.check(request)
    return source, request


def num_classes(name, path=None, **options):
    """Number of label classes of a dataset, or None if it has no labels.

    For `npz` this is `max(labels) + 1` of the file, or None when it holds no labels.
    """
    source = get_source(name)
    return source.num_classes(registry.Request(name, 1, 1, 1, 1, path=path, options=options))


def class_names(name, path=None, **options):
    """Names of a dataset's classes in label order, or None if it has no labels."""
    source = get_source(name)
    return source.class_names(registry.Request(name, 1, 1, 1, 1, path=path, options=options))


def describe(name, num_frames=16, height=64, width=64, channels=None, with_labels=False, path=None,
             **options):
    """A one-line summary of what a dataset request reads, or None for generated data.

    For `video_folder` and `frame_folder`: files, classes, usable and skipped files (named,
    with the reason) and clips per epoch, e.g. "video_folder DIR: 40 files (3 classes), 37
    usable, 3 skipped (...); 52 clips per epoch".
    """
    source, request = _request(name, num_frames, height, width, channels, 0, with_labels, path,
                               options)
    return source.describe(request)


def make_videos(
    name,
    num_videos,
    num_frames=16,
    height=64,
    width=64,
    channels=None,
    seed=0,
    with_labels=False,
    path=None,
    **options,
):
    """Generates (or reads) videos as a numpy array.

    Args:
        name: str. A dataset from `list_datasets()`.
        num_videos: int. Number of videos. For `npz` the first `num_videos` of the file,
            for `video_folder` / `frame_folder` the first clips of epoch 0 in index
            order; all of them when None.
        num_frames: int. Frames per video. Defaults to 16.
        height: int. Frame height in pixels. Defaults to 64.
        width: int. Frame width in pixels. Defaults to 64.
        channels: int or None. 1 (grey) or 3 (RGB); for `npz` and `tfrecord` it must match the
            file. None: the source's own (the file's; a folder's when all its usable files share
            it, else an error naming two that differ), 1 for generated data. Defaults to None,
            so colour is never turned grey unasked: pass 1 to read colour files as grey.
        seed: int or sequence of ints. Seed of `np.random.default_rng`; the same seed gives
            the same videos. For `npz` it picks the frame windows. Defaults to 0.
        with_labels: bool. Also return int32 labels `(N,)`. Defaults to False.
        path: str or None. The file (`npz`) or folder (`video_folder`, `frame_folder`) to
            read. Defaults to None.
        **options: dataset options, e.g. `num_digits=2` (see `vidgen_tf.data.synthetic`).

    Returns:
        uint8 videos `(N, T, H, W, C)` in [0, 255], or `(videos, labels)` when
        `with_labels=True`.

    Example:
        >>> videos = make_videos("moving_digits", 8, num_frames=8, height=32, width=32)
        >>> videos.shape
        (8, 8, 32, 32, 1)
    """
    source, request = _request(name, num_frames, height, width, channels, seed, with_labels,
                               path, options)
    if num_videos is not None or not source.needs_path:
        num_videos = _check_int("num_videos", num_videos, 1)
    videos, labels = source.make_videos(request, num_videos, np.random.default_rng(request.seed))
    return (videos, labels) if with_labels else videos


def _to_float(videos):
    return tf.cast(videos, tf.float32) / 127.5 - 1.0  # (B, T, H, W, C) in [-1, 1]


def load(
    name,
    num_frames=16,
    height=64,
    width=64,
    channels=None,
    batch_size=16,
    seed=0,
    with_labels=False,
    drop_remainder=True,
    num_videos=None,
    path=None,
    shuffle=None,
    chunk_size=DEFAULT_CHUNK_SIZE,
    start_batch=0,
    num_classes=None,
    **options,
):
    """A `tf.data.Dataset` of batches of float32 videos in [-1, 1].

    With `num_videos=None` the dataset is endless and lazy: it is made of chunks of
    `chunk_size` videos, chunk k drawn from `np.random.default_rng([seed, k])` (for the
    synthetic sets, chunk k equals `make_videos(name, chunk_size, ..., seed=[seed, k])`;
    for `npz`, clips are drawn from the file with replacement). The stream of videos does
    not depend on `batch_size`. With `num_videos=N` the N videos of
    `make_videos(..., seed=seed)` are made once and yielded in one pass.

    `start_batch=k` yields exactly the batches of `load(...).skip(k)`, for resuming
    training at step k, without making the skipped ones: an endless stream starts
    at the chunk holding video `k * batch_size`, so the chunks before it are never
    generated; a finite dataset (all of whose videos are made or read anyway)
    starts at index `k * batch_size`.

    Args:
        name: str. A dataset from `list_datasets()`.
        num_frames: int. Frames per video. Defaults to 16.
        height: int. Frame height in pixels. Defaults to 64.
        width: int. Frame width in pixels. Defaults to 64.
        channels: int or None. 1 or 3; for `npz` and `tfrecord` it must match the file.
            None: the source's own (the file's, a pack's; a folder's when all its usable files
            share it, else an error naming two that differ), 1 for generated data. Defaults to
            None, so colour is never turned grey unasked: pass 1 to read colour files as grey.
        batch_size: int. Videos per batch. Defaults to 16.
        seed: int. Seed of the videos (and of the shuffle). Defaults to 0.
        with_labels: bool. Yield `(videos, labels)` with int32 labels `(batch,)`.
            Defaults to False.
        drop_remainder: bool. Drop a last partial batch, so the batch dimension is static
            (needed under `tf.distribute`). Defaults to True.
        num_videos: int or None. Size of a finite dataset; None for an endless stream.
            Defaults to None.
        path: str or None. The file (`npz`) or folder (`video_folder`, `frame_folder`) to
            read. Defaults to None.
        shuffle: bool or None. Shuffle the clips (seeded by `seed`). None: the dataset's
            default (the synthetic and npz sets: a finite dataset is not shuffled). Defaults
            to None.
        chunk_size: int. Videos generated at a time in an endless stream. Defaults to 64.
        start_batch: int. Index of the first batch to yield (batches before it are
            skipped without being generated). Defaults to 0.
        num_classes: int or None. With `with_labels`, the classes of the model the
            labels are for: labels >= `num_classes` are refused here, before any
            clip is read, with an error naming the labels, the dataset (its file)
            and `num_classes` (rather than failing, or on some devices silently
            giving a zero class code, mid-training). Defaults to None (unchecked).
        **options: dataset options, e.g. `num_balls=1` (see `vidgen_tf.data.synthetic`).

    Returns:
        A `tf.data.Dataset` of videos `(batch, T, H, W, C)`, or of `(videos, labels)`.

    Example:
        >>> dataset = load("moving_square", num_frames=8, height=32, width=32, batch_size=4)
        >>> next(iter(dataset)).shape
        TensorShape([4, 8, 32, 32, 1])
    """
    source, request = _request(name, num_frames, height, width, channels, seed, with_labels,
                               path, options, shuffle)
    batch_size = _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    start_batch = _check_int("start_batch", start_batch, 0)
    if num_classes is not None:
        num_classes = _check_int("num_classes", num_classes, 1)
        if with_labels:
            source.check_label_range(request, num_classes)
    start_video = start_batch * batch_size  # the first video of batch `start_batch`

    if num_videos is not None:
        _check_int("num_videos", num_videos, 1)
        if drop_remainder and num_videos < batch_size:
            raise ValueError(
                f"`num_videos`={num_videos} is smaller than `batch_size`={batch_size}: with "
                "drop_remainder=True the dataset would be empty."
            )
        dataset = source.finite(request, num_videos, shuffle, start_video)
    else:
        chunk_size = _check_int("chunk_size", chunk_size, 1)
        dataset = source.stream(request, start_video, chunk_size)

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if with_labels:
        dataset = dataset.map(lambda videos, labels: (_to_float(videos), labels))
    else:
        dataset = dataset.map(_to_float)
    if num_videos is None and source.endless(request):
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY)
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


__all__ = [
    "bounce",
    "class_names",
    "describe",
    "describe_datasets",
    "distribute_with_service",
    "get_source",
    "list_datasets",
    "load",
    "make_videos",
    "num_classes",
    "pack",
    "simulate_balls",
    "source_geometry",
]
