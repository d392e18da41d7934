"""Videos from a user's `.npz` file, validated with errors that name the file and the problem.

The file holds `videos`, uint8 `(N, T, H, W, C)`, and optionally `labels`, integers `(N,)`
(as written by `np.savez(path, videos=videos, labels=labels)`). Clips longer than the
requested `num_frames` are cut to a random window of consecutive frames.
"""

import os
import zipfile

import numpy as np

from vidgen_tf.data import registry


def _fail(path, problem):
    return ValueError(f"npz dataset file '{path}': {problem}")


def _read_arrays(path):
    """`(path, videos, labels_or_None)` of a video `.npz` file, unchecked beyond its being one."""
    if path is None:
        raise ValueError(
            "Dataset 'npz' needs `path=` pointing to a .npz file with a `videos` array."
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npz dataset file '{path}' does not exist.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise _fail(path, f"not an .npz archive ({type(error).__name__}: {error}).") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _fail(path, "is a single .npy array, not an .npz archive; save it with "
                    "np.savez(path, videos=videos).")
    with archive:
        keys = sorted(archive.files)
        if "videos" not in keys:
            raise _fail(path, f"has no 'videos' array (found keys: {keys or 'none'}).")
        try:
            videos = archive["videos"]
            labels = archive["labels"] if "labels" in keys else None
        except ValueError as error:  # object arrays need pickle, which is refused
            raise _fail(path, f"cannot read its arrays ({error}).") from error
    return path, videos, labels


def _checked_labels(path, labels, count):
    """`labels` as int32 `(count,)`, or a named error."""
    if labels.size == 0:
        raise _fail(path, f"'labels' is empty (shape {labels.shape}); it needs one label per video.")
    if labels.ndim != 1 or labels.shape[0] != count:
        raise _fail(path, f"'labels' must have shape ({count},), one per video, "
                    f"got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise _fail(path, f"'labels' must be integers, got dtype {labels.dtype}.")
    if labels.min() < 0:
        raise _fail(path, f"'labels' must be >= 0, got {labels.min()}.")
    return labels.astype(np.int32)


def read_labels(path):
    """Reads and validates the labels of a video `.npz` file.

    Args:
        path: str or path-like. The file.

    Returns:
        int32 `(N,)`, one label per video, or None when the file has no labels.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an npz archive of videos, or its labels are not
            non-negative integers, one per video.
    """
    path, videos, labels = _read_arrays(path)
    return None if labels is None else _checked_labels(path, labels, len(videos))


def read_npz(path, num_frames, height, width, channels, with_labels=False):
    """Reads and validates a video `.npz` file.

    Args:
        path: str or path-like. The file.
        num_frames: int. Frames wanted per clip; the file's clips must be at least this long.
        height: int. Frame height the file must have.
        width: int. Frame width the file must have.
        channels: int. Channels the file must have.
        with_labels: bool. Whether labels are wanted; the file must then hold `labels`.
            Defaults to False.

    Returns:
        `(videos, labels)`: uint8 `(N, T_file, H, W, C)` and int32 `(N,)`, or None when the
        file has no labels.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an npz archive, or its arrays do not match the request.
    """
    path, videos, labels = _read_arrays(path)
    if videos.ndim != 5:
        raise _fail(path, f"'videos' must have rank 5 (N, T, H, W, C), got shape {videos.shape}.")
    if videos.dtype != np.uint8:
        raise _fail(path, f"'videos' must have dtype uint8, got {videos.dtype}.")
    if videos.size == 0:
        raise _fail(path, f"'videos' is empty (shape {videos.shape}).")
    count, length, file_height, file_width, file_channels = videos.shape
    if (file_height, file_width) != (height, width):
        raise _fail(path, f"frames are {file_height}x{file_width} (height x width), but "
                    f"height={height}, width={width} was asked.")
    if file_channels != channels:
        raise _fail(path, f"videos have {file_channels} channels, but channels={channels} "
                    "was asked.")
    if length < num_frames:
        raise _fail(path, f"videos have {length} frames, fewer than num_frames={num_frames}.")

    if labels is not None:
        labels = _checked_labels(path, labels, count)
    elif with_labels:
        raise _fail(path, "has no 'labels' array, but with_labels=True was asked.")
    return videos, labels


def videos_shape(path):
    """The shape `(N, T, H, W, C)` of a file's `videos` array from its header alone, or None when
    the file is unreadable or the array is not rank 5."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("videos.npy") as handle:
            version = np.lib.format.read_magic(handle)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape = reader(handle)[0]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    return tuple(int(n) for n in shape) if len(shape) == 5 else None


def take_windows(videos, num_frames, rng):
    """Cuts each clip to `num_frames` consecutive frames starting at a random frame.

    Args:
        videos: array `(N, T, H, W, C)` with `T >= num_frames`.
        num_frames: int. Window length.
        rng: `np.random.Generator`. Draws the start frames.

    Returns:
        Array `(N, num_frames, H, W, C)`; `videos` itself when `T == num_frames`.
    """
    count, length = videos.shape[:2]
    if length == num_frames:
        return videos
    frames = window_starts(count, length, num_frames, rng)[:, None] + np.arange(num_frames)  # (N, num_frames)
    return videos[np.arange(count)[:, None], frames]


def window_starts(count, length, num_frames, rng):
    """The start frames `take_windows` cuts `count` clips of `length` frames at: int64 `(count,)`,
    all 0 (and nothing drawn from `rng`) when `length == num_frames`."""
    if length == num_frames:
        return np.zeros(count, dtype=np.int64)
    return rng.integers(0, length - num_frames + 1, size=count)


class NpzSource(registry.Source):
    """A user's `.npz` file of uint8 videos (and labels): clips drawn with replacement."""

    name = "npz"
    description = "a user's file with `videos` uint8 (N, T, H, W, C) and optional `labels` (N,)"
    needs_path = True
    channels_choices = None  # whatever the file holds; `read_npz` checks it

    def path_help(self):
        return "a .npz file with a `videos` array."

    def check(self, request):
        if request.path is None:
            read_npz(None, *request.shape)  # the file's own error message
        super().check(request)

    def num_classes(self, request):
        labels = read_labels(request.path)
        return None if labels is None else int(labels.max()) + 1

    def check_label_range(self, request, num_classes):
        labels = read_labels(request.path)
        if labels is None:
            return
        bad = np.flatnonzero(labels >= num_classes)
        if bad.size:
            shown = ", ".join(f"label {labels[i]} (video {i})" for i in bad[:5])
            more = f" and {bad.size - 5} more" if bad.size > 5 else ""
            raise registry.label_range_error(
                f"npz dataset file '{os.fspath(request.path)}'", f"labels 0 to {int(labels.max())}",
                f"{bad.size} of its {labels.size} videos ({shown}{more})", num_classes, int(labels.max()) + 1)

    def make_videos(self, request, num_videos, rng):
        videos, labels = read_npz(request.path, *request.shape, request.with_labels)
        if num_videos is not None:
            registry.check_int("num_videos", num_videos, 1)
            if num_videos > len(videos):
                raise ValueError(
                    f"`num_videos`={num_videos} but npz dataset file '{request.path}' holds only "
                    f"{len(videos)} videos."
                )
            # Shuffled: `num_videos` videos drawn with the seed from the whole file (a file sorted by
            # class would otherwise give only its first classes); else the first `num_videos`.
            picks = rng.permutation(len(videos))[:num_videos] if request.shuffle else np.arange(num_videos)
            videos = videos[picks]
            labels = None if labels is None else labels[picks]
        return take_windows(videos, request.num_frames, rng), labels

    def stream(self, request, start_video, chunk_size):
        # Read and validate once; chunks draw clips with replacement, then windows.
        videos, labels = read_npz(request.path, *request.shape, request.with_labels)

        def chunk(index):
            rng = np.random.default_rng([request.seed, index])
            picks = rng.integers(0, len(videos), size=chunk_size)
            clips = take_windows(videos[picks], request.num_frames, rng)
            return clips, (labels[picks] if request.with_labels else None)

        return registry.chunked_stream(chunk, request, start_video, chunk_size)

    def count_clips(self, request):
        """The number of videos, from the `videos` array's header alone (None if unreadable)."""
        shape = videos_shape(request.path)
        return None if shape is None else shape[0]

    def own_geometry(self, request):
        """The file's `(T, H, W, C)`: each video packs whole, as one clip of all its frames."""
        shape = videos_shape(request.path)
        if shape is None:
            return registry.OwnGeometry()  # reading the file then names what is wrong with it
        return registry.OwnGeometry(dict(zip(registry.GEOMETRY_KEYS, shape[1:])),
                                    notes={"num_frames": "every frame of each video"})

    def clip_records(self, request):
        """One clip per video, in file order: the clips of `make_videos(..., num_videos=None)`.

        Video n's window starts at the frame drawn for it from `np.random.default_rng(seed)`
        (as `take_windows` draws them), so packing a large file gives the same clips as
        reading it with the same seed; `source` is `"<file name>[n]"`.
        """
        videos, labels = read_npz(request.path, *request.shape, request.with_labels)
        count, length = videos.shape[:2]
        rng = np.random.default_rng(registry.check_seed(request.seed))
        starts = window_starts(count, length, request.num_frames, rng)  # the draws of `take_windows`
        name = os.path.basename(request.path)
        for index in range(count):
            start = int(starts[index])
            frames = tuple(range(start, start + request.num_frames))
            yield registry.ClipRecord(
                clip=videos[index, start:start + request.num_frames],
                label=-1 if labels is None else int(labels[index]),
                source=f"{name}[{index}]",
                start=start,
                frame_indices=frames,
            )


registry.register_source(NpzSource())
