"""Video datasets as numpy arrays (`make_videos`) and as `tf.data` pipelines (`load`).

Datasets (see `vidgen_tf.data.synthetic` for how each is drawn):
- `moving_digits`: scikit-learn's handwritten digits bouncing in the frame (labels: digit).
- `bouncing_balls`: balls colliding elastically with the walls and each other (no labels).
- `moving_shapes`: coloured squares, circles and triangles (labels: 0, 1, 2).
- `moving_square`: one white square moving diagonally (labels: direction).
- `npz`: a user's file with `videos` uint8 `(N, T, H, W, C)` and optional `labels` `(N,)`.

Synthetic videos are a deterministic function of the seed. `load` yields float32 videos in
[-1, 1] shaped `(batch, time, height, width, channels)`, converted as `x / 127.5 - 1`.
"""

import numpy as np
import tensorflow as tf

from vidgen_tf.data import npz as _npz
from vidgen_tf.data import synthetic
from vidgen_tf.data.synthetic import bounce, simulate_balls  # noqa: F401
from vidgen_tf.registry import unknown_name_error

# Videos generated per chunk of an endless stream; chunk k is drawn from
# `np.random.default_rng([seed, k])`, independent of the batch size.
DEFAULT_CHUNK_SIZE = 64


def list_datasets():
    """Names of the datasets `load` and `make_videos` know, sorted."""
    return sorted([*synthetic.GENERATORS, "npz"])


_check_int = synthetic._check_int


def _check_seed(seed):
    """An int >= 0 or a sequence of them, as accepted by `np.random.default_rng`."""
    parts = seed if isinstance(seed, (list, tuple)) else [seed]
    if not parts:
        raise ValueError("`seed` must be an integer >= 0 or a sequence of them, got [].")
    for part in parts:
        _check_int("seed", part, 0)
    return list(seed) if isinstance(seed, (list, tuple)) else int(seed)


def _check_request(name, num_frames, height, width, channels, with_labels, path, options):
    """Validates the arguments common to `make_videos` and `load`."""
    if name not in list_datasets():
        raise unknown_name_error("dataset", name, list_datasets())
    _check_int("num_frames", num_frames, 1)
    _check_int("height", height, 1)
    _check_int("width", width, 1)
    _check_int("channels", channels, 1)
    if name == "npz":
        if options:
            raise TypeError(f"Dataset 'npz' takes no options, got {sorted(options)}.")
        return
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3 for dataset '{name}', got {channels}.")
    if path is not None:
        raise ValueError(f"`path` is used by dataset 'npz' only, not '{name}'; got path={path!r}.")
    known = synthetic.option_names(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"Unknown option(s) {unknown} for dataset '{name}'. Its options: {', '.join(known)}."
        )
    if with_labels and num_classes(name, **options) is None:
        raise ValueError(f"Dataset '{name}' has no classes; use `with_labels=False`.")


def num_classes(name, path=None, **options):
    """Number of label classes of a dataset, or None if it has no labels.

    For `npz` this is `max(labels) + 1` of the file, or None when it holds no labels.
    """
    if name == "npz":
        labels = _npz.read_labels(path)
        return None if labels is None else int(labels.max()) + 1
    if name not in synthetic.GENERATORS:
        raise unknown_name_error("dataset", name, list_datasets())
    return synthetic.num_classes(name, **options)


def make_videos(
    name,
    num_videos,
    num_frames=16,
    height=64,
    width=64,
    channels=1,
    seed=0,
    with_labels=False,
    path=None,
    **options,
):
    """Generates (or reads) videos as a numpy array.

    Args:
        name: str. A dataset from `list_datasets()`.
        num_videos: int. Number of videos. For `npz` the first `num_videos` of the file,
            or all of them when None.
        num_frames: int. Frames per video. Defaults to 16.
        height: int. Frame height in pixels. Defaults to 64.
        width: int. Frame width in pixels. Defaults to 64.
        channels: int. 1 (grey) or 3 (RGB); for `npz` it must match the file. Defaults to 1.
        seed: int or sequence of ints. Seed of `np.random.default_rng`; the same seed gives
            the same videos. For `npz` it picks the frame windows. Defaults to 0.
        with_labels: bool. Also return int32 labels `(N,)`. Defaults to False.
        path: str or None. The file, for `npz` only. Defaults to None.
        **options: dataset options, e.g. `num_digits=2` (see `vidgen_tf.data.synthetic`).

    Returns:
        uint8 videos `(N, T, H, W, C)` in [0, 255], or `(videos, labels)` when
        `with_labels=True`.

    Example:
        >>> videos = make_videos("moving_digits", 8, num_frames=8, height=32, width=32)
        >>> videos.shape
        (8, 8, 32, 32, 1)
    """
    _check_request(name, num_frames, height, width, channels, with_labels, path, options)
    rng = np.random.default_rng(_check_seed(seed))
    if name == "npz":
        videos, labels = _npz.read_npz(path, num_frames, height, width, channels, with_labels)
        if num_videos is not None:
            _check_int("num_videos", num_videos, 1)
            if num_videos > len(videos):
                raise ValueError(
                    f"`num_videos`={num_videos} but npz dataset file '{path}' holds only "
                    f"{len(videos)} videos."
                )
            videos = videos[:num_videos]
            labels = None if labels is None else labels[:num_videos]
        videos = _npz.take_windows(videos, num_frames, rng)
    else:
        num_videos = _check_int("num_videos", num_videos, 1)
        generator = synthetic.GENERATORS[name]
        videos, labels = generator(
            rng, num_videos, num_frames, height, width, channels, with_labels, **options
        )
    return (videos, labels) if with_labels else videos


def _to_float(videos):
    return tf.cast(videos, tf.float32) / 127.5 - 1.0  # (B, T, H, W, C) in [-1, 1]


def _chunk_source(name, num_frames, height, width, channels, seed, with_labels, path, options,
                  chunk_size):
    """A function `index -> (videos, labels)` giving chunk `index` of an endless stream."""
    if name == "npz":
        # Read and validate once; chunks draw clips with replacement, then windows.
        videos, labels = _npz.read_npz(path, num_frames, height, width, channels, with_labels)

        def chunk(index):
            rng = np.random.default_rng([seed, int(index)])
            picks = rng.integers(0, len(videos), size=chunk_size)
            clips = _npz.take_windows(videos[picks], num_frames, rng)
            return clips, (labels[picks] if with_labels else None)

        return chunk

    generator = synthetic.GENERATORS[name]

    def chunk(index):
        rng = np.random.default_rng([seed, int(index)])
        return generator(
            rng, chunk_size, num_frames, height, width, channels, with_labels, **options
        )

    # A one-video dry run, so that bad options fail here and not inside the pipeline.
    generator(np.random.default_rng(0), 1, num_frames, height, width, channels, with_labels,
              **options)
    return chunk


def load(
    name,
    num_frames=16,
    height=64,
    width=64,
    channels=1,
    batch_size=16,
    seed=0,
    with_labels=False,
    drop_remainder=True,
    num_videos=None,
    path=None,
    shuffle=False,
    chunk_size=DEFAULT_CHUNK_SIZE,
    start_batch=0,
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
        channels: int. 1 or 3; for `npz` it must match the file. Defaults to 1.
        batch_size: int. Videos per batch. Defaults to 16.
        seed: int. Seed of the videos (and of the shuffle). Defaults to 0.
        with_labels: bool. Yield `(videos, labels)` with int32 labels `(batch,)`.
            Defaults to False.
        drop_remainder: bool. Drop a last partial batch, so the batch dimension is static
            (needed under `tf.distribute`). Defaults to True.
        num_videos: int or None. Size of a finite dataset; None for an endless stream.
            Defaults to None.
        path: str or None. The file, for `npz` only. Defaults to None.
        shuffle: bool. Shuffle a finite dataset (seeded by `seed`). Defaults to False.
        chunk_size: int. Videos generated at a time in an endless stream. Defaults to 64.
        start_batch: int. Index of the first batch to yield (batches before it are
            skipped without being generated). Defaults to 0.
        **options: dataset options, e.g. `num_balls=1` (see `vidgen_tf.data.synthetic`).

    Returns:
        A `tf.data.Dataset` of videos `(batch, T, H, W, C)`, or of `(videos, labels)`.

    Example:
        >>> dataset = load("moving_square", num_frames=8, height=32, width=32, batch_size=4)
        >>> next(iter(dataset)).shape
        TensorShape([4, 8, 32, 32, 1])
    """
    _check_request(name, num_frames, height, width, channels, with_labels, path, options)
    batch_size = _check_int("batch_size", batch_size, 1)
    seed = _check_int("seed", seed, 0)
    start_batch = _check_int("start_batch", start_batch, 0)
    shape = (num_frames, height, width, channels)
    start_video = start_batch * batch_size  # the first video of batch `start_batch`

    if num_videos is not None:
        _check_int("num_videos", num_videos, 1)
        if drop_remainder and num_videos < batch_size:
            raise ValueError(
                f"`num_videos`={num_videos} is smaller than `batch_size`={batch_size}: with "
                "drop_remainder=True the dataset would be empty."
            )
        arrays = make_videos(name, num_videos, num_frames, height, width, channels, seed,
                             with_labels, path, **options)
        dataset = tf.data.Dataset.from_tensor_slices(arrays)
        if shuffle:
            dataset = dataset.shuffle(len(arrays[0] if with_labels else arrays), seed=seed)
        dataset = dataset.skip(start_video)
    else:
        chunk_size = _check_int("chunk_size", chunk_size, 1)
        chunk = _chunk_source(name, num_frames, height, width, channels, seed, with_labels,
                              path, options, chunk_size)

        def produce(index):
            videos, labels = chunk(index)
            return (videos, labels) if with_labels else videos

        def produce_tensors(index):
            if with_labels:
                videos, labels = tf.numpy_function(
                    produce, [index], [tf.uint8, tf.int32], stateful=False
                )
                labels.set_shape((chunk_size,))
            else:
                videos = tf.numpy_function(produce, [index], tf.uint8, stateful=False)
            videos.set_shape((chunk_size, *shape))  # (chunk, T, H, W, C)
            return (videos, labels) if with_labels else videos

        first_chunk, offset = divmod(start_video, chunk_size)
        dataset = tf.data.Dataset.counter(start=first_chunk).map(
            produce_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        dataset = dataset.unbatch().skip(offset)  # (T, H, W, C) videos from `start_video` on

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if with_labels:
        dataset = dataset.map(lambda videos, labels: (_to_float(videos), labels))
    else:
        dataset = dataset.map(_to_float)
    if num_videos is None:
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY)
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


__all__ = [
    "bounce",
    "list_datasets",
    "load",
    "make_videos",
    "num_classes",
    "simulate_balls",
]
