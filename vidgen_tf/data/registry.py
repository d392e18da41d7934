"""The dataset registry: a name -> `Source` that knows its options, labels and clips.

`vidgen_tf.data.load` and `make_videos` look a dataset up here once and leave the rest to
its source. A source is one kind of data (synthetic generators, a `.npz` file, folders of
videos or frames, packed TFRecord shards); each lives in its own module and registers
itself with `register_source` when `vidgen_tf.data` is imported.

A source's contract (see `Source`):
- `options()`: its keyword options and their defaults; anything else is refused by name.
- `check(request)`: validates the request (options, path, geometry) before any work.
- `num_classes(request)` / `class_names(request)`: labels, or None when it has none.
- `make_videos(request, num_videos, rng)`: uint8 `(N, T, H, W, C)` and int32 labels or None.
- `stream(request, start_video, chunk_size)`: an endless `tf.data.Dataset` of single uint8
  clips `(T, H, W, C)` (with an int32 label when `request.with_labels`), beginning at
  video `start_video` of the stream, deterministic given `request.seed` (finite when
  `endless(request)` is False, e.g. a folder source asked for `epochs=k`).
- `finite(request, num_videos, shuffle, start_video)`: `num_videos` clips in one pass; by
  default the clips of `make_videos`, made at once.
- `own_geometry(request)`: the clip geometry the source's files hold (`OwnGeometry`), the
  defaults of `vidgen data pack` and of `channels=None`; nothing for generated data.

`load` batches, converts to float32 in [-1, 1] and prefetches whatever the source yields.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from vidgen_tf.registry import unknown_name_error

_SOURCES = {}
GEOMETRY_KEYS = ("num_frames", "height", "width", "channels")
# The geometry where neither the caller nor the source's files give one (generated data).
DEFAULT_GEOMETRY = {"num_frames": 16, "height": 64, "width": 64, "channels": 1}


def check_int(name, value, minimum, maximum=None):
    """`value` as an int, or a ValueError naming `name`, the bound and the value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"`{name}` must be {bound}, got {value}.")
    return int(value)


def label_range_error(where, holds, beyond, num_classes, needed):
    """The ValueError of labels a model of `num_classes` classes cannot take (see `Source.check_label_range`)."""
    return ValueError(
        f"{where} has {holds}, but the model has num_classes={num_classes} (labels 0 to {num_classes - 1}): "
        f"{beyond} would fail or be misread in training. Use a model with num_classes={needed} (or more), or "
        "leave those clips out of the data."
    )


def check_seed(seed):
    """An int >= 0 or a sequence of them, as accepted by `np.random.default_rng`."""
    parts = seed if isinstance(seed, (list, tuple)) else [seed]
    if not parts:
        raise ValueError("`seed` must be an integer >= 0 or a sequence of them, got [].")
    for part in parts:
        check_int("seed", part, 0)
    return list(seed) if isinstance(seed, (list, tuple)) else int(seed)


@dataclasses.dataclass(frozen=True)
class Request:
    """What a caller asks a source for: the clip geometry, seed, labels, path and options.

    Attributes:
        name: str. The dataset name.
        num_frames, height, width, channels: int. The clip shape `(T, H, W, C)`.
        seed: int or list of ints. Seed of everything random in the dataset.
        with_labels: bool. Whether labels are wanted.
        path: str or None. The file or directory of a source that reads one.
        options: dict. The source's keyword options as given (defaults not filled in).
        shuffle: bool or None. `load`'s `shuffle`; None lets the source choose (the synthetic
            and npz sources: no shuffle of a finite dataset).
    """

    name: str
    num_frames: int
    height: int
    width: int
    channels: int
    seed: object = 0
    with_labels: bool = False
    path: object = None
    options: dict = dataclasses.field(default_factory=dict)
    shuffle: object = None

    @property
    def shape(self):
        return (self.num_frames, self.height, self.width, self.channels)

    def option(self, key):
        """The value of option `key`: as given, else the source's default."""
        if key in self.options:
            return self.options[key]
        return get_source(self.name).options()[key]


@dataclasses.dataclass(frozen=True)
class OwnGeometry:
    """The clip geometry a source's files hold (see `Source.own_geometry`).

    Attributes:
        values: dict. `{key: int}` for the keys of `GEOMETRY_KEYS` the source has one value of.
        differ: dict. `{key: ((file, value), (file, value))}`: two files that disagree on a key
            ("height" and "width" both, when sizes differ; values as text, e.g. "32x40").
        notes: dict. `{key: str}`: how a value was chosen when it is not simply every file's own
            (e.g. the frames of a folder's clips).
        converts: bool. Whether the source reads its files at another geometry (the folders resize
            and convert to grey); an npz file or a pack must be read at its own. Defaults to False.
    """

    values: dict = dataclasses.field(default_factory=dict)
    differ: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)
    converts: bool = False


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip as `vidgen data pack` stores it.

    Attributes:
        clip: uint8 `(T, H, W, C)`. The frames, already sampled and shaped.
        label: int. The class, or -1 when the dataset has no labels.
        source: str. The file (or frame folder) the clip comes from, relative to the root.
        start: int. Index of the clip's first frame in the source.
        frame_indices: tuple of int. Index in the source of every frame of the clip.
    """

    clip: object
    label: int
    source: str
    start: int
    frame_indices: tuple


class Source:
    """One kind of dataset. Subclasses set `name` and override what differs.

    Attributes:
        name: str. The registered dataset name.
        description: str. One line for `vidgen list` and `describe_datasets`.
        needs_path: bool. Whether the source reads `path=` (a file or directory).
        channels_choices: tuple or None. Allowed `channels`, or None for any.
    """

    name = None
    description = ""
    needs_path = False
    channels_choices = (1, 3)

    def options(self):
        """`{option: default}` of the keyword options this source takes."""
        return {}

    def check(self, request):
        """Validates `request` before any work: unknown options, path, channels, labels."""
        known = self.options()
        unknown = sorted(set(request.options) - set(known))
        if unknown:
            if not known:
                raise TypeError(f"Dataset '{self.name}' takes no options, got {unknown}.")
            raise TypeError(
                f"Unknown option(s) {unknown} for dataset '{self.name}'. "
                f"Its options: {', '.join(known)}."
            )
        if self.needs_path and request.path is None:
            raise ValueError(f"Dataset '{self.name}' needs `path=`: {self.path_help()}")
        if not self.needs_path and request.path is not None:
            users = ", ".join(s.name for s in _SOURCES.values() if s.needs_path)
            raise ValueError(
                f"`path` is used by datasets that read files ({users}), not '{self.name}'; "
                f"got path={request.path!r}."
            )
        if self.channels_choices is not None and request.channels not in self.channels_choices:
            raise ValueError(
                f"`channels` must be {' or '.join(map(str, self.channels_choices))} for dataset "
                f"'{self.name}', got {request.channels}."
            )

    def check_labels(self, request):
        """Refuses `with_labels=True` when the dataset has no classes."""
        if request.with_labels and self.num_classes(request) is None:
            raise ValueError(f"Dataset '{self.name}' has no classes; use `with_labels=False`.")

    def check_label_range(self, request, num_classes):
        """Refuses, before any clip is read, labels a model of `num_classes` classes cannot take.

        Raises:
            ValueError: the dataset's labels go beyond `num_classes - 1`; the message
                names the labels (their classes), the dataset (its file) and `num_classes`.
        """
        count = self.num_classes(request)
        if count is None or count <= num_classes:
            return
        names = self.class_names(request) or [str(i) for i in range(count)]
        beyond = [f"{label} ({names[label]!r})" if names[label] != str(label) else str(label)
                  for label in range(num_classes, count)]
        shown = ", ".join(beyond[:5]) + (f" and {len(beyond) - 5} more" if len(beyond) > 5 else "")
        raise label_range_error(self.describe_where(request), f"labels 0 to {count - 1} (its {count} classes)",
                                f"label{'s' if len(beyond) > 1 else ''} {shown}", num_classes, count)

    def describe_where(self, request):
        """The dataset as an error message names it: `Dataset 'name'`, with its path when it reads one."""
        return f"Dataset '{self.name}'" + (f" ({request.path})" if request.path is not None else "")

    def path_help(self):
        return "the file or directory to read."

    def num_classes(self, request):
        """Number of label classes, or None if the dataset has no labels."""
        return None

    def class_names(self, request):
        """Names of the classes in label order, or None when they have no names."""
        count = self.num_classes(request)
        return None if count is None else [str(i) for i in range(count)]

    def make_videos(self, request, num_videos, rng):
        """`(videos, labels)`: uint8 `(N, T, H, W, C)` and int32 `(N,)` or None."""
        raise NotImplementedError

    def stream(self, request, start_video, chunk_size):
        """An endless dataset of single clips from video `start_video` on."""
        raise NotImplementedError

    def endless(self, request):
        """Whether `stream(request, ...)` never ends (False for a source asked for k epochs);
        `load` then marks it infinite for Keras."""
        return True

    def describe(self, request):
        """A one-line summary of what a request reads (e.g. files, clips, skipped), or None."""
        return None

    def own_geometry(self, request):
        """The geometry the source's files hold, an `OwnGeometry` (only `request.path` and
        `request.options` are read); empty for generated data, which has none."""
        return OwnGeometry()

    def clip_records(self, request):
        """One pass over the clips (epoch 0) in a stable order, for `vidgen data pack`.

        Yields `ClipRecord`s. Sources of synthetic data, which have no files, do not pack.
        """
        raise ValueError(
            f"Dataset '{self.name}' cannot be packed into TFRecords: only datasets read from "
            "files (" + ", ".join(s.name for s in _SOURCES.values() if s.needs_path) + ") can."
        )

    def count_clips(self, request):
        """Number of clips `clip_records` yields (for a progress bar), or None when unknown."""
        return None

    def finite(self, request, num_videos, shuffle, start_video):
        """`num_videos` clips in one pass (all made at once by `make_videos`)."""
        rng = np.random.default_rng(check_seed(request.seed))
        videos, labels = self.make_videos(request, num_videos, rng)
        arrays = (videos, labels) if request.with_labels else videos
        dataset = tf.data.Dataset.from_tensor_slices(arrays)
        if shuffle:  # None (the default) does not shuffle
            dataset = dataset.shuffle(len(videos), seed=request.seed)
        return dataset.skip(start_video)


def chunked_stream(chunk, request, start_video, chunk_size):
    """An endless dataset of single clips made `chunk_size` at a time by `chunk(index)`.

    `chunk(index)` returns `(videos, labels)` for chunk `index` of the stream (uint8
    `(chunk_size, T, H, W, C)`, int32 `(chunk_size,)` or None). It runs in `tf.data`'s
    parallel map, in order; the chunks before the one holding `start_video` are never made.
    """
    shape = request.shape
    with_labels = request.with_labels

    def produce(index):
        videos, labels = chunk(int(index))
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
    return dataset.unbatch().skip(offset)  # (T, H, W, C) clips from `start_video` on


def register_source(source):
    """Adds `source` (a `Source` instance) under `source.name`; returns it."""
    if not isinstance(source, Source) or not source.name:
        raise TypeError(f"register_source expects a named Source instance, got {source!r}.")
    if source.name in _SOURCES and type(_SOURCES[source.name]) is not type(source):
        raise ValueError(f"Dataset '{source.name}' is already registered by {_SOURCES[source.name]!r}.")
    _SOURCES[source.name] = source
    return source


def get_source(name):
    """The `Source` registered as `name`, or a ValueError listing the known names."""
    try:
        return _SOURCES[name]
    except (KeyError, TypeError):
        raise unknown_name_error("dataset", name, list_datasets()) from None


def list_datasets():
    """Names of the registered datasets, sorted."""
    return sorted(_SOURCES)


def describe_datasets():
    """`{name: description}` of the registered datasets, sorted by name."""
    return {name: _SOURCES[name].description for name in list_datasets()}


__all__ = [
    "ClipRecord",
    "DEFAULT_GEOMETRY",
    "GEOMETRY_KEYS",
    "OwnGeometry",
    "Request",
    "Source",
    "check_int",
    "check_seed",
    "chunked_stream",
    "describe_datasets",
    "get_source",
    "list_datasets",
    "register_source",
]
