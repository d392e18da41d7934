"""The metadata index of a folder of videos (or of frame folders), built once and cached.

One `FileRecord` per video file (or per folder of frames): its path relative to the
root, its class folder, frame count, frame rate, size, channels (1 when the file stores grey,
else 3: `vidgen_tf.data.decode.frame_channels`), duration, bytes, mtime and status
("ok" or the reason it cannot be used). The index is built by probing every file in a
thread pool over all cores (PyAV releases the GIL while it demuxes and decodes: checked
with two threads decoding on two cores, which overlapped), then cached as JSON:

- beside the data, as `ROOT/.vidgen_index.json` (written atomically);
- or, when that directory is not writable or `cache_dir=` is given, as
  `<hash of the absolute root>.json` under `cache_dir`, else `$VIDGEN_CACHE_DIR`,
  else `~/.cache/vidgen_tf/index/`.

The cache is checked per file: a file whose size or mtime changed, and a new file, is
probed again; a removed file is dropped; the others are not opened. Damaged files
(empty, truncated, not a video, no video stream, failing to decode) are kept in the
index with their reason, skipped by the sources, and reported once per process: one
`DamagedFileWarning` per file naming it and the reason, then one summary line in the
log, e.g. "index of DIR: 12 files, 10 usable, 2 skipped (1 empty, 1 not a video)".

Example:
    >>> index = build_index("data/ucf101", kind="video")
    >>> index.summary()
    'index of data/ucf101: 13320 files, 13320 usable, 0 skipped'
    >>> index.usable[0].path, index.usable[0].label
    ('ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 'ApplyEyeMakeup')
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path

from vidgen_tf.atomic import atomic_file
from vidgen_tf.data import decode

logger = logging.getLogger(__name__)

INDEX_FILE = ".vidgen_index.json"
# 2: records hold `channels` (a version-1 cache is probed again).
INDEX_VERSION = 2
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".ogv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
KINDS = ("video", "frames")
_INTEGER = re.compile(r"\d+")

# (absolute root, relative path, reason) of every damaged file already warned about,
# and the summaries already logged: each is reported once per process.
_REPORTED = set()
_LOCK = threading.Lock()


class DamagedFileWarning(UserWarning):
    """A file in a dataset folder is damaged and skipped (the message names it and why)."""


@dataclasses.dataclass
class FileRecord:
    """One video file, or one folder of frames, of a dataset folder.

    Attributes:
        path: str. Relative to the root, with "/" separators ("." for the root itself).
        label: str or None. The first-level folder (the class), or None at the root.
        num_frames: int. Frames (0 when damaged).
        fps: float or None. The file's frame rate (None for frame folders).
        height, width: int. Frame size (0 when damaged).
        duration: float or None. Seconds (None for frame folders).
        bytes: int. Size on disk (the sum of the images for a frame folder).
        mtime_ns: int. Modification time (the latest of the images for a frame folder).
        status: str. "ok", or the reason the file is skipped.
        damage: str or None. The short class of damage ("empty", "not a video", ...).
        frames: list of str or None. A frame folder's image names in frame order.
        channels: int. 1 when the file (a frame folder's first image) stores grey, else 3;
            0 when damaged.
    """

    path: str
    label: object
    num_frames: int
    fps: object
    height: int
    width: int
    duration: object
    bytes: int
    mtime_ns: int
    status: str = "ok"
    damage: object = None
    frames: object = None
    channels: int = 0

    @property
    def ok(self):
        return self.status == "ok"


@dataclasses.dataclass
class Index:
    """The records of a dataset folder and how they were obtained.

    Attributes:
        root: str. The folder, as given.
        kind: str. "video" (video files) or "frames" (folders of images).
        records: list of FileRecord. Sorted by path.
        cache_path: Path or None. Where the index is cached (None when it could not be written).
        probed: int. Files probed in this build (the rest came from the cache).
    """

    root: str
    kind: str
    records: list
    cache_path: object
    probed: int

    @property
    def noun(self):
        return "file" if self.kind == "video" else "frame folder"

    @property
    def usable(self):
        return [record for record in self.records if record.ok]

    @property
    def skipped(self):
        return [record for record in self.records if not record.ok]

    def summary(self):
        """E.g. "index of DIR: 12 files, 10 usable, 2 skipped (1 empty, 1 not a video)"."""
        text = f"index of {self.root}: {count(len(self.records), self.noun)}, {len(self.usable)} usable, " \
               f"{len(self.skipped)} skipped"
        if self.skipped:
            kinds = collections.Counter(record.damage or record.status for record in self.skipped)
            text += " (" + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) + ")"
        return text


def count(number, noun):
    """`number` and `noun`, plural unless 1: "1 file", "2 files"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _root_hash(root):
    return hashlib.sha256(os.path.abspath(root).encode("utf-8")).hexdigest()[:16]


def user_cache_dir():
    """`$VIDGEN_CACHE_DIR`, else `~/.cache/vidgen_tf/index`."""
    if os.environ.get("VIDGEN_CACHE_DIR"):
        return Path(os.environ["VIDGEN_CACHE_DIR"])
    return Path.home() / ".cache" / "vidgen_tf" / "index"


def cache_candidates(root, cache_dir=None):
    """Where the index of `root` is cached, in order of preference."""
    name = f"{_root_hash(root)}.json"
    if cache_dir is not None:
        return [Path(cache_dir) / name]
    return [Path(root) / INDEX_FILE, user_cache_dir() / name]


def _relative(path, root):
    rel = os.path.relpath(path, root)
    return "." if rel == "." else rel.replace(os.sep, "/")


def _label(relative, depth):
    parts = relative.split("/")
    return parts[0] if len(parts) > depth else None


def frame_order(names, folder):
    """`names` of image files sorted by the integer in each name (the last one, if several).

    Raises:
        ValueError: a name holds no integer, or two names hold the same one.
    """
    numbered = {}
    for name in names:
        found = _INTEGER.findall(os.path.splitext(name)[0])
        if not found:
            raise ValueError(
                f"Frame folder '{folder}': image '{name}' has no frame number in its name; frames are ordered "
                "by the integer in their names (e.g. frame_7.png)."
            )
        number = int(found[-1])
        if number in numbered:
            raise ValueError(
                f"Frame folder '{folder}': images '{numbered[number]}' and '{name}' have the same frame number "
                f"{number}."
            )
        numbered[number] = name
    return [numbered[number] for number in sorted(numbered)]


def _visible(names):
    return sorted(name for name in names if not name.startswith("."))


def scan(root, kind):
    """`[(relative path, label, bytes, mtime_ns, frames or None)]` of the candidates under `root`.

    For "video": every file with a video extension, recursively. For "frames": every
    folder holding image files, its images in frame order.
    """
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = _visible(dirs)
        files = _visible(files)
        if kind == "video":
            for name in files:
                if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                    path = os.path.join(folder, name)
                    stat = os.stat(path)
                    rel = _relative(path, root)
                    found.append((rel, _label(rel, 1), stat.st_size, stat.st_mtime_ns, None))
        else:
            images = [name for name in files if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS]
            if images:
                rel = _relative(folder, root)
                ordered = frame_order(images, rel)
                stats = [os.stat(os.path.join(folder, name)) for name in ordered]
                # Images added or removed change `ordered`, so the folder's own mtime (which the
                # index file written beside the data changes too) is not needed.
                mtime = max(s.st_mtime_ns for s in stats)
                label = None if rel == "." else _label(rel, 1)
                found.append((rel, label, sum(s.st_size for s in stats), mtime, ordered))
    return sorted(found)


def probe(root, kind, relative, label, size, mtime_ns, frames=None):
    """The `FileRecord` of one candidate; damage becomes its status, not an exception."""
    path = os.path.join(root, relative)
    record = FileRecord(relative, label, 0, None, 0, 0, None, size, mtime_ns, frames=frames)
    try:
        if kind == "video":
            info = decode.probe_video(path)
            record.num_frames, record.fps = info.num_frames, info.fps
            record.height, record.width, record.duration = info.height, info.width, info.duration
            record.channels = info.channels
        else:
            record.height, record.width, record.channels = decode.probe_images(
                [os.path.join(path, frames[0])], with_channels=True)
            record.num_frames = len(frames)
    except decode.DamagedFileError as error:
        record.status, record.damage = error.reason, error.kind
    return record


def _read_cache(candidates, kind, root):
    for path in candidates:
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if content.get("version") != INDEX_VERSION or content.get("root") != os.path.abspath(root):
            continue
        section = content.get(kind)
        if isinstance(section, list):
            try:
                return {item["path"]: FileRecord(**item) for item in section}, content
            except (TypeError, KeyError):
                continue
    return {}, None


def _write_cache(candidates, kind, root, records, content):
    content = dict(content or {"version": INDEX_VERSION, "root": os.path.abspath(root)})
    content[kind] = [dataclasses.asdict(record) for record in records]
    text = json.dumps(content, indent=1)
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as temporary:
                temporary.write_text(text)
            return path
        except OSError as error:
            logger.debug("cannot write the index cache %s: %s", path, error)
    logger.warning("could not write the index of %s to any of %s", root, [str(p) for p in candidates])
    return None


def _report(index):
    """Warns about each damaged file and logs the summary, once per process."""
    root = os.path.abspath(index.root)
    new = False
    for record in index.skipped:
        key = (root, index.kind, record.path, record.status)
        with _LOCK:
            if key in _REPORTED:
                continue
            _REPORTED.add(key)
        new = True
        where = os.path.join(index.root, record.path)
        warnings.warn(f"skipping damaged {'file' if index.kind == 'video' else 'frame folder'} "
                      f"'{where}': {record.status}", DamagedFileWarning, stacklevel=3)
    summary = index.summary()
    with _LOCK:
        fresh = (root, index.kind, summary) not in _REPORTED
        _REPORTED.add((root, index.kind, summary))
    if fresh or new:
        (logger.warning if index.skipped else logger.info)("%s", summary)


def build_index(root, kind="video", cache_dir=None, workers=None):
    """The index of a dataset folder, from its cache where files are unchanged.

    Args:
        root: str or path-like. The local folder.
        kind: str. "video" (video files, recursively) or "frames" (folders of images).
            Defaults to "video".
        cache_dir: str or None. Cache the index here instead of beside the data.
            Defaults to None.
        workers: int or None. Threads probing files; None: one per core. Defaults to None.

    Returns:
        An `Index`.

    Raises:
        FileNotFoundError: `root` is not a directory.
        ValueError: `kind` is unknown, or a frame folder's image names cannot be ordered.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset folder '{root}' does not exist or is not a directory.")
    candidates = cache_candidates(root, cache_dir)
    cached, content = _read_cache(candidates, kind, root)
    found = scan(root, kind)
    records, to_probe = {}, []
    for relative, label, size, mtime_ns, frames in found:
        old = cached.get(relative)
        if old is not None and old.bytes == size and old.mtime_ns == mtime_ns and old.frames == frames:
            old.label = label
            records[relative] = old
        else:
            to_probe.append((relative, label, size, mtime_ns, frames))
    if to_probe:
        workers = workers or os.cpu_count() or 1
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for record in pool.map(lambda item: probe(root, kind, *item), to_probe):
                records[record.path] = record
    ordered = [records[item[0]] for item in found]
    changed = bool(to_probe) or set(cached) != set(records) or content is None
    if changed:
        cache_path = _write_cache(candidates, kind, root, ordered, content)
    else:
        cache_path = next((p for p in candidates if p.is_file()), None)
    index = Index(root, kind, ordered, cache_path, len(to_probe))
    _report(index)
    return index


__all__ = [
    "DamagedFileWarning",
    "FileRecord",
    "IMAGE_EXTENSIONS",
    "INDEX_FILE",
    "Index",
    "VIDEO_EXTENSIONS",
    "build_index",
    "cache_candidates",
    "frame_order",
    "scan",
    "user_cache_dir",
]
