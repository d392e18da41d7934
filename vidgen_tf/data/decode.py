"""Decoding for the real-data sources: video files through PyAV, image frames through Pillow.

- `probe_video(path)`: a file's frame count, frame rate, size and duration, with every
  kind of damage (empty, truncated, not a video, no video stream, fails to decode)
  reported as one `DamagedFileError` whose `reason` a person reads.
- `read_video_frames(path, frame_indices, ...)`: only the frames a clip needs, scaled by
  FFmpeg to the size asked for (RGB or FFmpeg's grey).
- `probe_images` / `read_image_frames`: the same for a folder of image files.

A file's own channels are what its pixel format stores: 1 for a grey format (FFmpeg's
`gray*`, `ya8`, `mono*`; Pillow's modes "1", "L", "LA", "I", "F"), else 3 (YUV, RGB, palette):
a grey picture stored as YUV or RGB counts as 3 channels, which loses nothing.

Grey frames are the ITU-R BT.601 luma in both paths: FFmpeg's `gray` output for videos
and Pillow's mode "L" (`L = R * 299/1000 + G * 587/1000 + B * 114/1000`) for images.

Example:
    >>> info = probe_video("walk.mp4")  # a 24-frame 32x40 file at 25 fps
    >>> info.num_frames, info.fps, info.height, info.width, info.channels
    (24, 25.0, 32, 40, 3)
    >>> frames = read_video_frames("walk.mp4", [10, 12, 14], size=(64, 85), channels=1)
    >>> frames.shape
    (3, 64, 85, 1)
"""

import dataclasses
import math
import os

import numpy as np

from vidgen_tf.video_io import VideoReadError

# Container formats whose demuxers cannot seek by timestamp reliably: decoded from the start.
_NO_SEEK_FORMATS = ("gif", "image2", "apng")


class DamagedFileError(VideoReadError):
    """A file the data sources cannot use, with the reason in words.

    Attributes:
        path: str. The file (or frame folder).
        reason: str. What is wrong, e.g. "empty file (0 bytes)".
        kind: str. The short class of damage for summaries: "empty", "not a video",
            "no video stream", "truncated", "fails to decode", "no frames", "missing",
            "unreadable image".
    """

    def __init__(self, path, reason, kind=None):
        self.path = os.fspath(path)
        self.reason = reason
        self.kind = kind or reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.kind)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a file.

    Attributes:
        num_frames: int. Frames in the video stream.
        fps: float. Frames per second (the stream's average rate).
        height, width: int. Frame size in pixels, as decoded.
        duration: float. Seconds.
        channels: int. 1 when the stream's pixel format is grey, else 3 (`frame_channels`).
    """

    num_frames: int
    fps: float
    height: int
    width: int
    duration: float
    channels: int = 3


# Pillow modes holding one (grey) channel, with or without alpha.
_GREY_IMAGE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def frame_channels(frame):
    """1 when a decoded PyAV frame's pixel format stores grey (luma only, maybe alpha), else 3."""
    fmt = frame.format
    if getattr(fmt, "has_palette", False) or getattr(fmt, "is_rgb", False):
        return 3
    colour = [component for component in fmt.components if not component.is_alpha]
    return 1 if len(colour) == 1 else 3


def image_channels(image):
    """1 when a Pillow image's mode is grey ("L", "LA", "I", ...), else 3 (RGB, RGBA, palette, CMYK, ...)."""
    return 1 if image.mode in _GREY_IMAGE_MODES else 3


def _av():
    import av  # PyAV is a core dependency; imported here so `vidgen_tf.data` loads without it

    return av


def _existing_file(path):
    """`path` as a str, or a `DamagedFileError` when it is missing or empty."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DamagedFileError(path, "the file does not exist", "missing")
    if os.path.getsize(path) == 0:
        raise DamagedFileError(path, "empty file (0 bytes)", "empty")
    return path


def _open(path, threads=1):
    """An open PyAV container and its first video stream (decoding slices on `threads`
    threads), or a `DamagedFileError`."""
    av = _av()
    path = _existing_file(path)
    try:
        container = av.open(path, mode="r")
    except av.error.FFmpegError as error:
        raise DamagedFileError(
            path, f"not a video FFmpeg can read, or truncated before its index ({error.strerror or error})",
            "not a video") from error
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        container.close()
        raise DamagedFileError(path, f"no video stream (streams: {', '.join(kinds)})", "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.thread_count = threads
    return container, stream


def _stream_fps(stream):
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe_video(path, threads=1):
    """A video file's frame count, frame rate, size and duration, checked by decoding.

    The frame count is the number of video packets, found by demuxing the whole stream
    (no decoding); it is compared with the count the container records, when it records
    one, so that a file cut short is reported as truncated. The first frame is decoded
    to check that the codec works and to read the frame size.

    Args:
        path: str or path-like. A local video file.
        threads: int. Decoder threads. Defaults to 1 (the index probes files in parallel).

    Returns:
        A `VideoInfo`.

    Raises:
        DamagedFileError: the file is missing, empty, not a video, has no video stream,
            is truncated, has no frames or fails to decode its first frame.
    """
    av = _av()
    path = os.fspath(path)
    container, stream = _open(path, threads)
    with container:
        recorded = int(stream.frames or 0)
        packets = 0
        first = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end
                    continue
                packets += 1
                if first is None:
                    decoded = packet.decode()
                    first = decoded[0] if decoded else None
            if first is None and packets:
                decoded = stream.decode(None)  # decoders with a delay give their frames at the flush
                first = decoded[0] if decoded else None
        except av.error.FFmpegError as error:
            if first is None:
                raise DamagedFileError(path, f"fails to decode: {error.strerror or error}",
                                       "fails to decode") from error
            raise DamagedFileError(
                path, f"truncated: reading stopped after {packets} frames ({error.strerror or error})",
                "truncated") from error
        if packets == 0:
            raise DamagedFileError(path, "the video stream holds no frames", "no frames")
        if first is None:
            raise DamagedFileError(path, f"fails to decode: no frame came out of {packets} packets",
                                   "fails to decode")
        if recorded and packets < recorded:
            raise DamagedFileError(
                path, f"truncated: the container records {recorded} frames, only {packets} are present",
                "truncated")
        fps = _stream_fps(stream)
        if fps <= 0:
            raise DamagedFileError(path, "the video stream has no frame rate", "fails to decode")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None and len(container.streams) == 1:
            # The container's duration covers every stream; it is the video's only when alone.
            duration = container.duration / 1e6
        if duration is not None and not recorded:
            # No recorded count (WebM, Matroska): a header duration far beyond the frames
            # present means the file was cut short.
            expected = int(round(duration * fps))
            if packets < expected - 1:
                raise DamagedFileError(
                    path, f"truncated: the header says {duration:.3g} s ({expected} frames at {fps:.3g} fps), "
                    f"only {packets} frames are present", "truncated")
        if duration is None:
            duration = packets / fps
        return VideoInfo(packets, fps, int(first.height), int(first.width), float(duration), frame_channels(first))


def _to_array(frame, size, channels):
    """One decoded frame as uint8 `(h, w, channels)`, scaled by FFmpeg to `size` (h, w)."""
    height, width = size if size is not None else (frame.height, frame.width)
    if channels == 1:
        array = frame.to_ndarray(width=width, height=height, format="gray", interpolation="BILINEAR")
        return array[..., None]
    return frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BILINEAR")


def _check_indices(frame_indices):
    indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError("`frame_indices` is empty; ask for at least one frame.")
    if indices.min() < 0:
        raise ValueError(f"`frame_indices` must be >= 0, got {int(indices.min())}.")
    return indices


def read_video_frames(path, frame_indices, size=None, channels=3, threads=1):
    """Decodes only the frames `frame_indices` of a video file.

    Decoding starts at the first needed frame where the container allows: the demuxer
    seeks by timestamp (`container.seek(..., stream=...)`) to the key frame at or before
    it, and the frames decoded from there are mapped to frame indices from their
    presentation timestamps as `round((pts - start_time) * time_base * fps)`. This
    assumes a constant frame rate; for a variable-rate file (or a container that cannot
    seek, e.g. GIF) the frames are decoded from the start and counted instead. Frames
    are scaled to `size` and converted by FFmpeg (swscale), not in Python.

    Args:
        path: str or path-like. A local video file.
        frame_indices: sequence of int. Frames wanted, in any order, repeats allowed.
        size: (height, width) or None. Size of the returned frames; None keeps the
            decoded size. Defaults to None.
        channels: int. 3 (RGB) or 1 (FFmpeg's `gray`: BT.601 luma). Defaults to 3.
        threads: int. Decoder threads. Defaults to 1: clips are decoded in parallel by
            `tf.data`'s map, and frame threading only adds latency to short reads.

    Returns:
        uint8 `(len(frame_indices), h, w, channels)`, in the order of `frame_indices`.

    Raises:
        DamagedFileError: the file cannot be opened, fails to decode, or ends before a
            wanted frame.
    """
    indices = _check_indices(frame_indices)
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3, got {channels!r}.")
    wanted = set(int(i) for i in indices)
    path = os.fspath(path)
    frames = _decode_seeking(path, wanted, size, channels, threads)
    if frames is None or len(frames) < len(wanted):
        frames = _decode_counting(path, wanted, size, channels, threads)
    return np.stack([frames[int(i)] for i in indices])  # (T, h, w, C)


def _decode_seeking(path, wanted, size, channels, threads):
    """`{index: frame}` decoded from a seek to the first wanted frame, or None when the
    container cannot seek or its timestamps do not map onto frame indices."""
    av = _av()
    first, last = min(wanted), max(wanted)
    if first == 0:
        return None  # decoding from the start needs no seek (nor a second open of the file)
    container, stream = _open(path, threads)
    with container:
        if container.format.name in _NO_SEEK_FORMATS or stream.time_base is None:
            return None
        fps = _stream_fps(stream)
        if fps <= 0:
            return None
        start_time = stream.start_time or 0
        time_base = float(stream.time_base)
        target = start_time + int(math.floor(first / fps / time_base))
        frames = {}
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    return None
                index = int(round((frame.pts - start_time) * time_base * fps))
                if not frames and index > first:
                    return None  # the seek landed past the first wanted frame
                if index in wanted and index not in frames:
                    frames[index] = _to_array(frame, size, channels)
                if index >= last:
                    break
        except av.error.FFmpegError:
            return None  # decoded again from the start, which names the failure
        return frames


def _decode_counting(path, wanted, size, channels, threads):
    """`{index: frame}` decoded from the start, frames counted in decoding order."""
    av = _av()
    last = max(wanted)
    container, stream = _open(path, threads)
    frames = {}
    count = 0
    with container:
        try:
            for index, frame in enumerate(container.decode(stream)):
                count = index + 1
                if index in wanted:
                    frames[index] = _to_array(frame, size, channels)
                if index >= last:
                    break
        except av.error.FFmpegError as error:
            raise DamagedFileError(
                path, f"fails to decode after {count} frames: {error.strerror or error}",
                "fails to decode") from error
    if len(frames) < len(wanted):
        missing = min(set(wanted) - set(frames))
        raise DamagedFileError(
            path, f"truncated: frame {missing} was asked for, but the video ends after {count} frames",
            "truncated")
    return frames


# ---------------------------------------------------------------------------- image frames
def _pil():
    from PIL import Image

    return Image


def _open_image(path):
    Image = _pil()
    path = _existing_file(path)
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's errors for bad data
        raise DamagedFileError(path, f"unreadable image ({error})", "unreadable image") from error
    return image


def probe_images(paths, with_channels=False):
    """`(height, width)` of a frame folder, from its first image (which is decoded); with
    `with_channels`, `(height, width, channels)` (`image_channels`).

    Raises:
        DamagedFileError: the first image is empty or unreadable.
    """
    if not paths:
        raise ValueError("A frame folder needs at least one image.")
    image = _open_image(paths[0])
    if with_channels:
        return int(image.height), int(image.width), image_channels(image)
    return int(image.height), int(image.width)


def read_image_frames(paths, size=None, channels=3):
    """Reads image files as frames, scaled to `size` by Pillow (bilinear).

    Args:
        paths: sequence of str. The image files, one per frame, in clip order.
        size: (height, width) or None. Size of the returned frames; None keeps each
            image's size (they must then agree). Defaults to None.
        channels: int. 3 (RGB) or 1 (Pillow's "L": BT.601 luma). Defaults to 3.

    Returns:
        uint8 `(len(paths), h, w, channels)`.

    Raises:
        DamagedFileError: an image is missing, empty or unreadable.
    """
    Image = _pil()
    frames = []
    cache = {}
    for path in paths:
        if path not in cache:
            image = _open_image(path).convert("L" if channels == 1 else "RGB")
            if size is not None and (image.height, image.width) != tuple(size):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
            cache[path] = array[..., None] if channels == 1 else array
        frames.append(cache[path])
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise DamagedFileError(os.path.dirname(paths[0]), f"frames differ in size: {sorted(shapes)}",
                               "fails to decode")
    return np.stack(frames)  # (T, h, w, C)


__all__ = [
    "DamagedFileError",
    "VideoInfo",
    "frame_channels",
    "image_channels",
    "probe_images",
    "probe_video",
    "read_image_frames",
    "read_video_frames",
]
