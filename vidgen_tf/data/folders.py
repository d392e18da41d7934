"""Real videos from folders: `video_folder` (video files) and `frame_folder` (folders of images).

`video_folder` reads every file with a video extension (mp4, webm, avi, mkv, mov, gif,
m4v, mpg, mpeg, ogv) under `path`, recursively; `frame_folder` reads every folder that
holds image files (png, jpg, jpeg, bmp, webp) as one video, its frames ordered by the
integer in their names (`frame_2.png` before `frame_10.png`), at `source_fps` frames per
second (folders have no timestamps). The label of a video is its first-level folder
under `path` (the UCF-101 layout `path/ApplyEyeMakeup/v_x.avi`, or
`path/ApplyEyeMakeup/v_x/frame_1.png`), classes sorted by name; videos directly under
`path` have no class.

Each file is probed once into the cached metadata index (`vidgen_tf.data.index`);
damaged files are skipped, named in one warning each and counted. An epoch's clip plan
(file, frame indices, crop offset, label) is computed in Python from the index and
`np.random.default_rng([seed, epoch])` (`vidgen_tf.data.clips`); the clips are then
decoded inside `tf.data` by `tf.numpy_function` in a parallel, deterministic map, only
the frames each clip needs. A clip whose file fails to decode there is dropped from the
stream (warned once per file, counted in `decode_failures`), not a crash.

Options (all validated, with errors that name the option and value):
    frame_step: int. Every n-th frame of the (resampled) video. Defaults to 1.
    fps: float or None. Resample to this frame rate by timestamps. Defaults to None.
    clips_per_video: 1 or "all". One random clip per video and epoch, or every
        non-overlapping clip from a random offset. Defaults to 1.
    resize: str. "crop" (short side fits, centre crop), "pad" (long side fits, black
        borders) or "stretch". Defaults to "crop".
    random_crop: bool. A random crop offset per clip. Defaults to False.
    short: str. "skip" a video shorter than a clip (counted) or "loop" it. Defaults to "skip".
    split: str or None. A text file of relative paths, one per line (the first token of
        each: UCF-101's `trainlist01.txt` lines `ApplyEyeMakeup/v_x.avi 1` work); relative
        to `path` unless it exists as given. Defaults to None (every file).
    cache_dir: str or None. Cache the index here instead of beside the data. Defaults to None.
    epochs: int or None. None: an endless stream; k: exactly k passes. Defaults to None.
    num_parallel_calls: int or None. Clips decoded at once; None: `tf.data.AUTOTUNE`.
        Defaults to None.
    source_fps: float. `frame_folder` only: the frame rate of the folders. Defaults to 25.

Streams: the endless stream is shuffled per epoch unless `shuffle=False`; a finite one
(`num_videos=N`, the first N clips of the stream, or `epochs=k`) only with `shuffle=True`.
`start_batch` (resume) skips clips in the plan, without decoding them; it equals `.skip`
as long as no file fails to decode in the skipped part (a failed clip is not yielded).

Example:
    >>> from vidgen_tf import data
    >>> dataset = data.load("video_folder", path="UCF-101", num_frames=16, height=64,
    ...                     width=64, channels=3, with_labels=True, frame_step=2)
    >>> data.class_names("video_folder", path="UCF-101")[:2]
    ['ApplyEyeMakeup', 'ApplyLipstick']
"""

import collections
import dataclasses
import os
import threading
import warnings

import numpy as np
import tensorflow as tf

from vidgen_tf.data import clips, decode, index, registry, remote

# (absolute root, relative path) -> number of clips that failed to decode, and the
# failures already warned about; shared by every stream of the process.
_FAILURES = collections.Counter()
_WARNED = set()
_LOCK = threading.Lock()
_NAMES_SHOWN = 10  # damaged files named in `describe`


class DecodeFailureWarning(UserWarning):
    """A file that passed the index failed while a clip of it was decoded; the clip is dropped."""


def decode_failures(path):
    """`{relative path: clips dropped}` of the files under `path` that failed while decoding."""
    root = os.path.abspath(os.fspath(path))
    with _LOCK:
        return {rel: count for (where, rel), count in _FAILURES.items() if where == root}


@dataclasses.dataclass
class _Folder:
    """A request's view of its folder: the usable records, labels and clip options."""

    root: str
    index: object
    records: list
    skipped: list
    classes: object
    labels: np.ndarray
    options: clips.ClipOptions
    videos: list
    clip_counts: list
    split: object

    @property
    def clips_per_epoch(self):
        return int(sum(self.clip_counts))

    @property
    def too_short(self):
        return [r for r, count in zip(self.records, self.clip_counts) if count == 0]


def _local_root(path):
    """`path` as a local directory; a remote URL gets an error saying how to read it."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    scheme = remote.path_scheme(text)
    if scheme == "file":
        return text[len("file://"):]
    if scheme is not None:
        if scheme != "ram":
            remote.ensure_filesystem_for(text)
        raise ValueError(
            f"Dataset folder {text!r} is on '{scheme}://' storage, but PyAV decodes local files only: copy the "
            "folder to a local disk and pack it with `vidgen data pack` (the TFRecord shards can then live on "
            f"{scheme}://), or read it from a local copy."
        )
    return text


def _split_entries(split, root):
    """The relative paths listed in a split file (first token of each line)."""
    split = os.fspath(split)
    path = split if os.path.isfile(split) else os.path.join(root, split)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Split file '{split}' not found (looked for '{split}' and '{path}').")
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                entries.append(line.split()[0].replace("\\", "/").strip("/"))
    if not entries:
        raise ValueError(f"Split file '{path}' lists no files.")
    return path, entries


class _FolderSource(registry.Source):
    """What `video_folder` and `frame_folder` share; subclasses set `kind` and read frames."""

    needs_path = True
    channels_choices = (1, 3)
    kind = None

    def options(self):
        return {
            "frame_step": 1, "fps": None, "clips_per_video": 1, "resize": "crop", "random_crop": False,
            "short": "skip", "split": None, "cache_dir": None, "epochs": None, "num_parallel_calls": None,
        }

    def path_help(self):
        return "a folder of videos (class subfolders give labels)." if self.kind == "video" else \
            "a folder of frame folders (class subfolders give labels)."

    # ------------------------------------------------------------------ options and folder
    def _clip_options(self, request):
        return clips.ClipOptions(
            num_frames=request.num_frames, height=request.height, width=request.width, channels=request.channels,
            frame_step=request.option("frame_step"), fps=request.option("fps"),
            clips_per_video=request.option("clips_per_video"), short=request.option("short"),
            resize=request.option("resize"), random_crop=request.option("random_crop"),
        )

    def _check_options(self, request):
        options = self._clip_options(request)
        for name in ("epochs", "num_parallel_calls"):
            if request.option(name) is not None:
                registry.check_int(name, request.option(name), 1)
        for name in ("split", "cache_dir"):
            value = request.option(name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"`{name}` must be a path (str), got {value!r}.")
        return options

    def _source_fps(self, request, record):
        return record.fps

    def _folder(self, request):
        options = self._check_options(request)
        root = _local_root(request.path)
        built = index.build_index(root, self.kind, cache_dir=request.option("cache_dir"))
        records = built.records
        split = request.option("split")
        split_path = None
        if split is not None:
            split_path, entries = _split_entries(split, root)
            by_path = {record.path: record for record in records}
            missing = [entry for entry in entries if entry not in by_path]
            if missing:
                raise ValueError(
                    f"Split file '{split_path}' lists {len(missing)} path(s) not found among the "
                    f"{'videos' if self.kind == 'video' else 'frame folders'} of '{root}': "
                    f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}."
                )
            records = [by_path[entry] for entry in dict.fromkeys(entries)]
        if not built.records:
            what = "video files (" + ", ".join(index.VIDEO_EXTENSIONS) + ")" if self.kind == "video" else \
                "folders of images (" + ", ".join(index.IMAGE_EXTENSIONS) + ")"
            raise ValueError(f"Dataset '{self.name}': no {what} under '{root}'.")
        # Classes from every file of the folder, damaged or outside the split, so that a
        # class's label does not depend on the split or on which files decode.
        names = sorted({record.label for record in built.records if record.label is not None})
        classes = names or None
        usable = [record for record in records if record.ok]
        lookup = {name: i for i, name in enumerate(names)}
        labels = np.array([lookup.get(record.label, -1) for record in usable], dtype=np.int32)
        videos = [(r.num_frames, self._source_fps(request, r), r.height, r.width) for r in usable]
        counts = [clips.clips_in_video(len(clips.timeline(n, fps, options.fps)), options)
                  for n, fps, _, _ in videos]
        return _Folder(root, built, usable, [r for r in records if not r.ok], classes, labels, options, videos,
                       counts, split_path)

    def own_geometry(self, request):
        """The usable files' (in the split) size and channels, when they all share them, and the frames of a clip.

        Frames: every frame of each video (at `frame_step` / `fps`) when the videos are equally long;
        else the default 16, or the shortest video's frames when fewer, so that no video is skipped as
        too short (with `short="loop"`, 16).
        """
        folder = self._folder(dataclasses.replace(request, num_frames=1, height=1, width=1, channels=3))
        records = folder.records
        if not records:
            return registry.OwnGeometry(converts=True)  # reading names the folder's problem
        values, differ = {}, {}
        for keys, value_of in ((("height", "width"), lambda r: f"{r.height}x{r.width}"),
                               (("channels",), lambda r: str(r.channels))):
            first = records[0]
            other = next((r for r in records if value_of(r) != value_of(first)), None)
            for key in keys:
                if other is None:
                    values[key] = getattr(first, key)
                else:
                    differ[key] = ((first.path, value_of(first)), (other.path, value_of(other)))
        options = folder.options
        lengths = [(len(clips.timeline(n, fps, options.fps)) - 1) // options.frame_step + 1
                   for n, fps, _, _ in folder.videos]  # the frames a clip of each video can hold
        default = registry.DEFAULT_GEOMETRY["num_frames"]
        shortest = int(np.argmin(lengths))
        if options.short == "loop":
            values["num_frames"], note = default, "the default (short videos loop)"
        elif min(lengths) == max(lengths):
            values["num_frames"], note = lengths[0], "every frame of each video"
        elif lengths[shortest] < default:
            values["num_frames"] = lengths[shortest]
            note = f"the shortest video's, {records[shortest].path}, so that every video gives a clip"
        else:
            values["num_frames"] = default
            each = "one clip of each" if options.clips_per_video == 1 else "clips of each"
            note = f"the default; the videos hold {min(lengths)} to {max(lengths)}: {each}"
        return registry.OwnGeometry(values, differ, {"num_frames": note}, converts=True)

    def check(self, request):
        super().check(request)
        self._check_options(request)
        if request.with_labels:
            folder = self._folder(request)
            self._check_labels(folder)

    def _check_labels(self, folder):
        if folder.classes is None:
            raise ValueError(
                f"Dataset '{self.name}' at '{folder.root}' has no classes (no class subfolders); use "
                "with_labels=False or put the videos in one folder per class."
            )
        unlabelled = [record.path for record in folder.records if record.label is None]
        if unlabelled:
            raise ValueError(
                f"with_labels=True, but {len(unlabelled)} "
                f"{'file(s)' if self.kind == 'video' else 'frame folder(s)'} of '{folder.root}' sit outside any "
                f"class folder: {', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}. Move them into "
                "a class folder, leave them out with `split=`, or use with_labels=False."
            )

    def num_classes(self, request):
        classes = self._folder(request).classes
        return None if classes is None else len(classes)

    def class_names(self, request):
        classes = self._folder(request).classes
        return None if classes is None else list(classes)

    def describe(self, request):
        return self._description(self._folder(request))

    def _description(self, folder):
        total = len(folder.records) + len(folder.skipped)
        classes = f" ({len(folder.classes)} classes)" if folder.classes else ""
        split = f" in split {os.path.basename(folder.split)}" if folder.split else ""
        text = f"{self.name} {folder.root}: {index.count(total, folder.index.noun)}{split}{classes}, " \
               f"{len(folder.records)} usable, {len(folder.skipped)} skipped"
        if folder.skipped:
            named = "; ".join(f"{r.path}: {r.status}" for r in folder.skipped[:_NAMES_SHOWN])
            more = f"; and {len(folder.skipped) - _NAMES_SHOWN} more" if len(folder.skipped) > _NAMES_SHOWN else ""
            text += f" ({named}{more})"
        short = folder.too_short
        if short:
            named = ", ".join(r.path for r in short[:_NAMES_SHOWN]) + (" ..." if len(short) > _NAMES_SHOWN else "")
            text += f"; {len(short)} too short for a clip of {folder.options.span} frames, skipped ({named})"
        return text + f"; {folder.clips_per_epoch} clips per epoch"

    def endless(self, request):
        return request.option("epochs") is None

    # ------------------------------------------------------------------ reading clips
    def _read_frames(self, folder, record, plan):
        raise NotImplementedError

    def _clip(self, folder, plan):
        """The uint8 clip `(T, H, W, C)` of `plan`; raises `DamagedFileError`."""
        record = folder.records[plan.video]
        frames = self._read_frames(folder, record, plan)  # (T, h, w, C) at plan.scaled
        return clips.fit_frames(frames, folder.options, plan.offset)

    def _failed(self, folder, plan, error):
        record = folder.records[plan.video]
        key = (os.path.abspath(folder.root), record.path)
        with _LOCK:
            _FAILURES[key] += 1
            first = key not in _WARNED
            _WARNED.add(key)
        if first:
            warnings.warn(f"dropping clips of '{os.path.join(folder.root, record.path)}', which failed while "
                          f"decoding: {error.reason}", DecodeFailureWarning, stacklevel=2)

    def _epoch_plans(self, folder, request, shuffle):
        """`plans(epoch)`: the epoch's clip plan, computed once (thread-safe, last few kept)."""
        cache = collections.OrderedDict()
        lock = threading.Lock()

        def plans(epoch):
            with lock:
                if epoch not in cache:
                    cache[epoch] = clips.plan_epoch(folder.videos, folder.options, request.seed, epoch, shuffle)
                    while len(cache) > 3:
                        cache.popitem(last=False)
                return cache[epoch]

        return plans

    def _dataset(self, request, folder, start_video, stop, shuffle):
        """Clips `start_video` (inclusive) to `stop` (exclusive, None: endless) of the stream."""
        if request.with_labels:
            self._check_labels(folder)
        per_epoch = folder.clips_per_epoch
        if per_epoch == 0:
            raise ValueError(self._description(folder) + ": no video gives a clip; lower num_frames or "
                             "frame_step, or pass short=\"loop\".")
        plans = self._epoch_plans(folder, request, shuffle)
        failed = collections.Counter()
        shape = request.shape
        empty = np.zeros(shape, np.uint8)

        def produce(number):
            epoch, position = divmod(int(number), per_epoch)
            plan = plans(epoch)[position]
            label = np.int32(folder.labels[plan.video])
            try:
                return self._clip(folder, plan), label, True
            except decode.DamagedFileError as error:
                self._failed(folder, plan, error)
                with _LOCK:
                    failed[epoch] += 1
                    every = failed[epoch] >= per_epoch
                if every:
                    raise decode.DamagedFileError(
                        folder.root, f"every clip of epoch {epoch} failed to decode (last: {error})",
                        "fails to decode") from error
                return empty, label, False

        def tensors(number):
            clip, label, ok = tf.numpy_function(produce, [number], [tf.uint8, tf.int32, tf.bool], stateful=True)
            clip.set_shape(shape)  # (T, H, W, C)
            label.set_shape(())
            ok.set_shape(())
            return clip, label, ok

        numbers = tf.data.Dataset.counter(start=start_video) if stop is None else \
            tf.data.Dataset.range(start_video, max(start_video, stop))
        calls = request.option("num_parallel_calls") or tf.data.AUTOTUNE
        dataset = numbers.map(tensors, num_parallel_calls=calls, deterministic=True)
        dataset = dataset.filter(lambda clip, label, ok: ok)
        if request.with_labels:
            return dataset.map(lambda clip, label, ok: (clip, label))
        return dataset.map(lambda clip, label, ok: clip)

    def stream(self, request, start_video, chunk_size):
        folder = self._folder(request)
        epochs = request.option("epochs")
        if epochs is None:
            return self._dataset(request, folder, start_video, None, shuffle=request.shuffle is not False)
        return self._dataset(request, folder, start_video, epochs * folder.clips_per_epoch,
                             shuffle=request.shuffle is True)

    def finite(self, request, num_videos, shuffle, start_video):
        folder = self._folder(request)
        stop = num_videos
        epochs = request.option("epochs")
        if epochs is not None:
            stop = min(stop, epochs * folder.clips_per_epoch)
        return self._dataset(request, folder, start_video, stop, shuffle=shuffle is True)

    def count_clips(self, request):
        """Clips of epoch 0 (what `clip_records` yields unless a file fails to decode)."""
        return self._folder(request).clips_per_epoch

    def clip_records(self, request):
        """Epoch 0's clips in index order (one `ClipRecord` each); failed clips are dropped."""
        return self._records(request, self._folder(request))

    def _records(self, request, folder):
        if request.with_labels:
            self._check_labels(folder)
        for plan in clips.plan_epoch(folder.videos, folder.options, request.seed, 0, shuffle=False):
            try:
                clip = self._clip(folder, plan)
            except decode.DamagedFileError as error:
                self._failed(folder, plan, error)
                continue
            yield registry.ClipRecord(clip, int(folder.labels[plan.video]), folder.records[plan.video].path,
                                      plan.start, plan.frame_indices)

    def make_videos(self, request, num_videos, rng):
        """The first `num_videos` clips (all when None) of epoch 0, in index order."""
        folder = self._folder(request)
        available = folder.clips_per_epoch
        if available == 0:
            raise ValueError(self._description(folder) + ": no video gives a clip.")
        if num_videos is not None and num_videos > available:
            raise ValueError(f"`num_videos`={num_videos}, but epoch 0 holds only {available} clips: "
                             f"{self._description(folder)}.")
        videos, labels = [], []
        for record in self._records(request, folder):
            videos.append(record.clip)
            labels.append(record.label)
            if num_videos is not None and len(videos) >= num_videos:
                break
        if not videos:
            raise ValueError(f"Every clip of {folder.root} failed to decode.")
        labels = np.asarray(labels, np.int32) if request.with_labels else None
        return np.stack(videos), labels  # (N, T, H, W, C)


class VideoFolderSource(_FolderSource):
    """Video files under a folder, labelled by their first-level subfolder."""

    name = "video_folder"
    description = ("video files (mp4, webm, avi, mkv, mov, gif, ...) under `path`, recursively; labels = "
                   "first-level subfolders")
    kind = "video"

    def _read_frames(self, folder, record, plan):
        return decode.read_video_frames(os.path.join(folder.root, record.path), plan.frame_indices,
                                        size=plan.scaled, channels=folder.options.channels)


class FrameFolderSource(_FolderSource):
    """Folders of numbered images, one video each, labelled by their first-level subfolder."""

    name = "frame_folder"
    description = ("folders of numbered images (png, jpg, ...) under `path`, one video each, at `source_fps`; "
                   "labels = first-level subfolders")
    kind = "frames"

    def options(self):
        return {**super().options(), "source_fps": 25}

    def _check_options(self, request):
        clips.check_positive("source_fps", request.option("source_fps"))
        return super()._check_options(request)

    def _source_fps(self, request, record):
        return float(request.option("source_fps"))

    def _read_frames(self, folder, record, plan):
        directory = os.path.join(folder.root, record.path)
        paths = [os.path.join(directory, record.frames[i]) for i in plan.frame_indices]
        return decode.read_image_frames(paths, size=plan.scaled, channels=folder.options.channels)


def detect_kind(path):
    """"video_folder" when `path` holds video files, else "frame_folder" when it holds images.

    Raises:
        FileNotFoundError: `path` is not a directory.
        ValueError: it holds neither.
    """
    root = _local_root(path)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset folder '{root}' does not exist or is not a directory.")
    has_images = False
    for _, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        extensions = {os.path.splitext(name)[1].lower() for name in files if not name.startswith(".")}
        if extensions & set(index.VIDEO_EXTENSIONS):
            return "video_folder"
        has_images = has_images or bool(extensions & set(index.IMAGE_EXTENSIONS))
    if has_images:
        return "frame_folder"
    raise ValueError(f"'{root}' holds no video files ({', '.join(index.VIDEO_EXTENSIONS)}) and no folders of "
                     f"images ({', '.join(index.IMAGE_EXTENSIONS)}).")


registry.register_source(VideoFolderSource())
registry.register_source(FrameFolderSource())

__all__ = ["DecodeFailureWarning", "FrameFolderSource", "VideoFolderSource", "decode_failures", "detect_kind"]
