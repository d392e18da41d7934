"""Reading and writing videos: MP4 (H.264), animated GIF and NPZ, through PyAV.

Models work on float32 videos in [-1, 1]; files hold uint8 in [0, 255]. This
module is the edge between the two:

- `to_uint8` converts a model's output (or passes uint8 through) with checks.
- `tile_videos` lays a batch of videos out as one grid video; `video_grid`
  makes the RGB grid the writers write: cells enlarged by `scale` (nearest
  neighbour), a thin grey separator between them, optional row labels.
- `write_video` picks the writer from the file extension (`.mp4`, `.gif`,
  `.npz`) and writes atomically: a crash never leaves a half-written file under
  the final name, and a failed write keeps the old file.
- `read_video` decodes anything FFmpeg reads (MP4, GIF, AVI, WebM, ...) into a
  uint8 `[T, H, W, C]` array, and raises `VideoReadError` naming the file when
  it is missing, empty, corrupt, has no video stream or no frames.

Example:

```python
video = model.generate(4, seed=0)                  # (4, T, H, W, 3) in [-1, 1]
write_video("samples.mp4", video, fps=8)           # one 2x2 grid video
write_video("samples.gif", video, fps=8, scale=4)  # each pixel a 4x4 block
write_video("classes.gif", videos, columns=4, row_labels=["circle", "square"])
frames = read_video("samples.mp4")                 # (T, H', W', 3) uint8
```
"""

import io
import logging
import math
import numbers
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# The package's one atomic-write helper lives in `vidgen_tf.atomic` (it needs no PyAV,
# so presets and checkpoints import it without this module); it is re-exported here.
from vidgen_tf.atomic import atomic_directory, atomic_file, write_bytes  # noqa: F401

logger = logging.getLogger(__name__)

SUPPORTED_WRITE_EXTENSIONS = (".mp4", ".gif", ".npz")

# Model outputs come from tanh or a clip and may overshoot [-1, 1] by rounding
# noise; anything further out is a bug upstream and is reported, not clipped.
_FLOAT_RANGE_TOLERANCE = 1e-3

# Grid cells are parted by mid-grey lines: visible against the black backgrounds of
# the synthetic sets and their white sprites, and grey, so that H.264's half-resolution
# colour does not bleed a hue into the cells.
GRID_SEPARATOR_COLOUR = (128, 128, 128)
# Row labels: white text on black, in Pillow's bundled default font (no font file is read).
GRID_LABEL_COLOUR = (255, 255, 255)
GRID_LABEL_BACKGROUND = (0, 0, 0)


class VideoReadError(ValueError):
    """A video file that is missing, empty, corrupt, or holds no video frames."""


# ---------------------------------------------------------------------------
# Array conversions
# ---------------------------------------------------------------------------


def _as_numpy(video, name):
    """Returns `video` (numpy, tf.Tensor or anything array-like) as a numpy array."""
    if hasattr(video, "numpy"):  # eager tf.Tensor / tf.Variable, without importing TF
        video = video.numpy()
    array = np.asarray(video)
    if array.dtype.name == "bfloat16":  # an ml_dtypes type numpy does not call floating
        array = array.astype(np.float32)
    if array.dtype == object:
        raise TypeError(f"`{name}` must be a numeric array or tensor, got {type(video).__name__}.")
    return array


def to_uint8(video):
    """Converts a video to uint8 in [0, 255].

    Floats are read as a model's output in [-1, 1] and mapped with
    `round((x + 1) * 127.5)`; uint8 passes through unchanged. Values outside
    [-1, 1] by more than 1e-3 (and NaN or infinity) are an error rather than
    silently clipped, since they mean the caller passed the wrong scale (e.g.
    [0, 255] floats).

    Args:
        video: array-like or tf.Tensor. Any shape; floating point in [-1, 1]
            or uint8.

    Returns:
        A numpy uint8 array of the same shape.

    Raises:
        TypeError: for a dtype other than floating point or uint8.
        ValueError: for floats outside [-1, 1] or non-finite values.
    """
    array = _as_numpy(video, "video")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"`video` must be floating point in [-1, 1] or uint8 in [0, 255], got dtype "
            f"{array.dtype}. Convert it first, e.g. `video.astype('uint8')` for integer pixels."
        )
    array = array.astype(np.float32)
    if array.size:
        if not np.all(np.isfinite(array)):
            raise ValueError("`video` contains NaN or infinite values; expected floats in [-1, 1].")
        low, high = float(array.min()), float(array.max())
        if low < -1 - _FLOAT_RANGE_TOLERANCE or high > 1 + _FLOAT_RANGE_TOLERANCE:
            raise ValueError(
                f"Float `video` must be in [-1, 1], got values in [{low:.4g}, {high:.4g}]. "
                "Scale it to [-1, 1] (e.g. x / 127.5 - 1 for [0, 255] pixels) or pass uint8."
            )
    return np.clip(np.rint((array + 1.0) * 127.5), 0, 255).astype(np.uint8)


def tile_videos(videos, columns=None, padding=1, pad_value=0):
    """Lays a batch of videos out as one grid video, frame by frame.

    Video `i` goes to row `i // columns`, column `i % columns`. Tiles are
    separated by `padding` pixels of `pad_value` (no border around the
    outside, so a batch of one comes back unchanged); unused cells of the last
    row are filled with `pad_value` too.

    Args:
        videos: array-like or tf.Tensor of shape `[B, T, H, W, C]`, any dtype.
        columns: int. Tiles per row; clamped to B. Defaults to `ceil(sqrt(B))`.
        padding: int. Pixels between neighbouring tiles. Defaults to 1.
        pad_value: number. Value of the padding, in the units of `videos`
            (0 is black for uint8, mid-grey for floats in [-1, 1]).
            Defaults to 0.

    Returns:
        A numpy array `[T, rows * H + (rows - 1) * padding,
        columns * W + (columns - 1) * padding, C]` of the dtype of `videos`.
    """
    videos = _as_numpy(videos, "videos")
    if videos.ndim != 5:
        raise ValueError(
            f"`videos` must have shape [B, T, H, W, C] (rank 5), got shape {videos.shape}."
        )
    batch, frames, height, width, channels = videos.shape
    if batch == 0:
        raise ValueError(f"`videos` must hold at least one video, got shape {videos.shape}.")
    if columns is None:
        columns = math.ceil(math.sqrt(batch))
    if int(columns) != columns or columns < 1:
        raise ValueError(f"`columns` must be a positive integer, got {columns!r}.")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"`padding` must be a non-negative integer, got {padding!r}.")
    columns, padding = min(int(columns), batch), int(padding)
    rows = math.ceil(batch / columns)

    grid = np.full(
        (
            frames,
            rows * height + (rows - 1) * padding,
            columns * width + (columns - 1) * padding,
            channels,
        ),
        pad_value,
        dtype=videos.dtype,
    )  # (T, H', W', C)
    for index in range(batch):
        top = (index // columns) * (height + padding)
        left = (index % columns) * (width + padding)
        grid[:, top : top + height, left : left + width, :] = videos[index]
    return grid


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"`scale` must be an integer >= 1 (each pixel becomes a scale x scale block), "
                         f"got {scale!r}.")
    return int(scale)


def scale_video(video, scale):
    """Enlarges frames by an integer factor, nearest neighbour: each pixel becomes a `scale x scale` block.

    Args:
        video: array-like. `[..., H, W, C]` (frames, videos or batches), any dtype.
        scale: int. The factor, >= 1; 1 returns the array unchanged.

    Returns:
        A numpy array `[..., H * scale, W * scale, C]` of the same dtype.

    Raises:
        ValueError: `scale` is not an integer >= 1, or `video` has rank < 3.
    """
    scale = _check_scale(scale)
    array = _as_numpy(video, "video")
    if array.ndim < 3:
        raise ValueError(f"`video` must have shape [..., H, W, C] (rank >= 3), got shape {array.shape}.")
    if scale == 1:
        return array
    return np.repeat(np.repeat(array, scale, axis=-3), scale, axis=-2)  # (..., H*s, W*s, C)


def _label_font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled font when FreeType is there
    except (TypeError, ValueError, ImportError, OSError):  # no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _label_strip(labels, cell_height, separator):
    """A `(rows * cell_height + (rows - 1) * separator, width, 3)` uint8 strip with one label per row band."""
    from PIL import Image, ImageDraw

    font = _label_font(max(8, min(16, cell_height // 3)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), label, font=font) for label in labels]
    margin = 3
    width = max(box[2] - box[0] for box in boxes) + 2 * margin
    height = len(labels) * cell_height + (len(labels) - 1) * separator
    image = Image.new("RGB", (width, height), GRID_LABEL_BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, (label, box) in enumerate(zip(labels, boxes)):
        top = row * (cell_height + separator) + (cell_height - (box[3] - box[1])) // 2 - box[1]
        draw.text((margin - box[0], top), label, fill=GRID_LABEL_COLOUR, font=font)
    return np.asarray(image, dtype=np.uint8)


def video_grid(videos, columns=None, scale=1, separator=None, row_labels=None):
    """The RGB grid video the writers write: cells enlarged, separated, rows optionally labelled.

    Video `i` goes to row `i // columns`, column `i % columns`, each frame
    enlarged `scale` times by nearest neighbour. Cells are parted by
    `separator` pixels of `GRID_SEPARATOR_COLOUR` (mid-grey, 128); unused
    cells of the last row are black. With `row_labels`, a black strip on the
    left holds each row's label in white, in Pillow's default font, with a
    separator line between strip and cells.

    Args:
        videos: array-like or tf.Tensor. `[B, T, H, W, C]` (or one video
            `[T, H, W, C]`), float in [-1, 1] or uint8, C = 1 or 3.
        columns: int. Cells per row; clamped to B. Defaults to
            `ceil(B / len(row_labels))` with labels, else `ceil(sqrt(B))`.
        scale: int. Nearest-neighbour enlargement of every frame, >= 1.
            Defaults to 1.
        separator: int. Width in pixels of the lines between cells (the
            enlargement does not widen them). Defaults to 1 at scale 1, else 2.
        row_labels: sequence of str, one per row (e.g. class names).
            Defaults to None (no labels).

    Returns:
        A contiguous uint8 array `[T, H', W', 3]`.

    Raises:
        ValueError: a bad shape, `scale`, `columns` or `separator`, or a
            number of labels other than the number of rows.
    """
    scale = _check_scale(scale)
    array = _as_numpy(videos, "videos")
    if array.ndim == 4:
        array = array[np.newaxis]  # (1, T, H, W, C)
    if array.ndim != 5:
        raise ValueError(
            f"`videos` must have shape [B, T, H, W, C] or [T, H, W, C] (rank 5 or 4), got shape {array.shape}."
        )
    if array.shape[-1] not in (1, 3):
        raise ValueError(
            f"`videos` must have 1 (grey) or 3 (RGB) channels in its last axis, got shape {array.shape}."
        )
    if 0 in array.shape:
        raise ValueError(f"`videos` must not be empty, got shape {array.shape}.")
    if separator is None:
        separator = 1 if scale == 1 else 2
    if isinstance(separator, bool) or not isinstance(separator, numbers.Integral) or separator < 0:
        raise ValueError(f"`separator` must be a non-negative integer (pixels), got {separator!r}.")
    batch = array.shape[0]
    if row_labels is not None:
        row_labels = [str(label) for label in row_labels]
        if not row_labels:
            raise ValueError("`row_labels` must name at least one row, got an empty sequence.")
        if columns is None:
            columns = math.ceil(batch / len(row_labels))
    frames = to_uint8(array)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)  # (B, T, H, W, 3)
    frames = scale_video(frames, scale)  # (B, T, H*s, W*s, 3)
    colour = np.asarray(GRID_SEPARATOR_COLOUR, dtype=np.uint8)
    grid = tile_videos(frames, columns=columns, padding=separator, pad_value=colour)  # (T, H', W', 3)
    _, _, height, width, _ = frames.shape
    columns = min(int(columns or math.ceil(math.sqrt(batch))), batch)
    rows = math.ceil(batch / columns)
    for index in range(batch, rows * columns):  # the unused cells of the last row
        top, left = (index // columns) * (height + separator), (index % columns) * (width + separator)
        grid[:, top : top + height, left : left + width] = 0
    if row_labels is not None:
        if len(row_labels) != rows:
            raise ValueError(
                f"`row_labels` must give one label per row: {batch} videos in {columns} columns make {rows} "
                f"row(s), got {len(row_labels)} labels."
            )
        strip = _label_strip(row_labels, height, separator)  # (H', Wl, 3)
        line = np.broadcast_to(colour, (grid.shape[1], separator, 3))
        left = np.concatenate([strip, line], axis=1)  # (H', Wl + separator, 3)
        grid = np.concatenate([np.broadcast_to(left, (grid.shape[0], *left.shape)), grid], axis=2)
    return np.ascontiguousarray(grid)


def _prepare_frames(video, rgb=True, scale=1, columns=None, row_labels=None):
    """Checks and converts a `[T, H, W, C]` or `[B, T, H, W, C]` video to uint8 frames.

    A batch (or any video with `row_labels`) is laid out by `video_grid`. A
    single video is enlarged by `scale`. With `rgb`, grey frames are repeated
    to three channels, since the MP4 and GIF encoders here take RGB.

    Returns:
        A contiguous uint8 array `[T, H, W, 3]` (or `[T, H, W, C]` without `rgb`).
    """
    array = _as_numpy(video, "video")
    if array.ndim not in (4, 5):
        raise ValueError(
            f"`video` must have shape [T, H, W, C] or [B, T, H, W, C] (rank 4 or 5), got shape "
            f"{array.shape}."
        )
    if array.shape[-1] not in (1, 3):
        raise ValueError(
            f"`video` must have 1 (grey) or 3 (RGB) channels in its last axis, got shape "
            f"{array.shape}."
        )
    if 0 in array.shape:
        raise ValueError(f"`video` must not be empty, got shape {array.shape}.")
    if array.ndim == 5 or row_labels is not None:
        return video_grid(array, columns=columns, scale=scale, row_labels=row_labels)  # (T, H', W', 3)
    frames = scale_video(to_uint8(array), scale)  # (T, H*s, W*s, C)
    if rgb and frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)  # (T, H, W, 3)
    return np.ascontiguousarray(frames)


def _check_fps(fps):
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps < math.inf:
        raise ValueError(f"`fps` must be a positive finite number, got {fps!r}.")
    if not isinstance(fps, numbers.Rational):
        fps = float(fps)  # numpy floats are not accepted by Fraction
    # FFmpeg wants a rational rate; 1001 covers the NTSC rates (29.97 = 30000/1001).
    return Fraction(fps).limit_denominator(1001)


# ---------------------------------------------------------------------------
# Atomic writing
# ---------------------------------------------------------------------------


def _atomic_video_path(path):
    """`atomic.atomic_file(path)`, after checks whose errors say a video was being written."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Cannot write video to '{path}': it is a directory.")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot write video to '{path}': directory '{path.parent}' does not exist."
        )
    return atomic_file(path)


def _write_bytes_atomically(path, data):
    with _atomic_video_path(path) as temporary:
        temporary.write_bytes(data)


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def _to_av_frame(rgb, index):
    """One RGB uint8 frame `(H, W, 3)` as a PyAV frame with presentation time `index`."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = index
    return frame


def _mp4_codec():
    if "libx264" in av.codecs_available:
        return "libx264"
    logger.warning(
        "PyAV's FFmpeg has no libx264 encoder; writing MP4 with the 'mpeg4' (MPEG-4 Part 2) "
        "codec instead, which fewer browsers play. Install a PyAV build with libx264 for H.264."
    )
    return "mpeg4"


def _pad_even(frames):
    """Pads uint8 frames `(T, H, W, 3)` to even H and W by repeating the last row / column (for yuv420p)."""
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return frames


def _encode_mp4(target, chunks, fps, crf):
    """Encodes uint8 frames into an MP4 at `target`, chunk by chunk.

    Args:
        chunks: iterable of uint8 arrays `(K, H, W, 3)`, every one of the same
            H and W (padded to even sizes here); encoded as they arrive.
    """
    codec = _mp4_codec()
    # faststart moves the index to the front so players can start before the end arrives.
    with av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream, index = None, 0
        for chunk in chunks:
            chunk = _pad_even(chunk)
            if stream is None:
                _, height, width, _ = chunk.shape
                stream = out.add_stream(codec, rate=fps)
                stream.width, stream.height = width, height
                # yuv420p is the pixel format every H.264 player decodes.
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": str(crf), "preset": "medium"}
                else:
                    # mpeg4 has no CRF; a generous bit rate keeps small clips sharp.
                    stream.bit_rate = max(1_000_000, int(width * height * float(fps) * 2))
            for rgb in chunk:
                for packet in stream.encode(_to_av_frame(rgb, index)):
                    out.mux(packet)
                index += 1
        if stream is None:
            raise ValueError("No frames to write: the video is empty.")
        for packet in stream.encode():  # flush delayed frames
            out.mux(packet)


def write_mp4(path, video, fps=8, crf=18, scale=1, columns=None, row_labels=None):
    """Writes a video as an H.264 MP4 (libx264, yuv420p), atomically.

    H.264 in yuv420p stores colour at half resolution, so a frame of odd height
    or width cannot be encoded: such frames are padded to even size by
    repeating their last row / column, and the file (and `read_video` of it)
    is then one pixel taller / wider. If PyAV's FFmpeg lacks libx264, the
    `mpeg4` codec is used instead and a warning is logged.

    Args:
        path: str or Path. The output file.
        video: array-like or tf.Tensor. `[T, H, W, C]` or `[B, T, H, W, C]`
            (tiled into a grid), float in [-1, 1] or uint8, C = 1 or 3.
        fps: number. Frames per second. Defaults to 8.
        crf: int. libx264 constant rate factor, 0 (lossless luma) to 51;
            lower is better quality. Defaults to 18 (visually near-lossless).
        scale: int. Nearest-neighbour enlargement of every frame, >= 1.
            Defaults to 1.
        columns: int. Grid cells per row for a batch (see `video_grid`).
            Defaults to None.
        row_labels: sequence of str. One label per grid row, drawn on the
            left (see `video_grid`). Defaults to None.

    Returns:
        The `Path` written.
    """
    rate = _check_fps(fps)
    if isinstance(crf, bool) or not isinstance(crf, numbers.Real) or not 0 <= crf <= 51:
        raise ValueError(f"`crf` must be a number in [0, 51], got {crf!r}.")
    frames = _prepare_frames(video, scale=scale, columns=columns, row_labels=row_labels)  # (T, H, W, 3)
    path = Path(path)
    with _atomic_video_path(path) as temporary:
        _encode_mp4(temporary, [frames], rate, crf)
    return path


def _palette_frame(rgb):
    """Quantises an RGB frame `(H, W, 3)` to an 8-bit palette for GIF.

    Pillow's median cut picks the palette per frame and is exact for frames of
    at most 256 colours; no dithering, so flat areas stay flat.

    Returns:
        `(indices (H, W) uint8, palette (256, 4) uint8 ARGB)`, as PyAV's pal8 wants.
    """
    from PIL import Image

    image = Image.fromarray(rgb).quantize(  # (H, W, 3) uint8 is RGB
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    colours = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque
    palette[: len(colours), 1:] = colours
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)), palette


def _encode_gif(target, chunks, fps, loop):
    """Encodes uint8 frames as an animated GIF into `target` (path or file), chunk by chunk.

    Args:
        chunks: iterable of uint8 arrays `(K, H, W, 3)` of one H and W.
    """
    # GIF delays are in hundredths of a second; time stamps in that unit make the
    # muxer's delays average exactly 1 / fps even when 100 / fps is not whole.
    with av.open(target, mode="w", format="gif", options={"loop": str(loop)}) as out:
        stream, index = None, 0
        for chunk in chunks:
            if stream is None:
                _, height, width, _ = chunk.shape
                stream = out.add_stream("gif", rate=fps)
                stream.width, stream.height = width, height
                stream.pix_fmt = "pal8"
                stream.time_base = Fraction(1, 100)
            for rgb in chunk:
                frame = av.VideoFrame.from_ndarray(_palette_frame(rgb), format="pal8")
                frame.pts = round(index * 100 / fps)
                frame.time_base = Fraction(1, 100)
                for packet in stream.encode(frame):
                    out.mux(packet)
                index += 1
        if stream is None:
            raise ValueError("No frames to write: the video is empty.")
        for packet in stream.encode():
            out.mux(packet)


def _check_loop(loop):
    if isinstance(loop, bool) or not isinstance(loop, numbers.Integral) or not -1 <= loop <= 65535:
        raise ValueError(
            f"`loop` must be an integer: 0 loops forever, -1 plays once, N repeats N times; "
            f"got {loop!r}."
        )


def gif_bytes(video, fps=8, loop=0, scale=1, columns=None, row_labels=None):
    """Encodes a video as the bytes of an animated GIF (e.g. for TensorBoard).

    Args:
        video: array-like or tf.Tensor. `[T, H, W, C]` or `[B, T, H, W, C]`
            (tiled into a grid), float in [-1, 1] or uint8, C = 1 or 3.
        fps: number. Frames per second (GIF stores delays in 1/100 s).
            Defaults to 8.
        loop: int. 0 loops forever, -1 plays once, N repeats N more times.
            Defaults to 0.
        scale: int. Nearest-neighbour enlargement of every frame, >= 1.
            Defaults to 1.
        columns: int. Grid cells per row for a batch (see `video_grid`).
            Defaults to None.
        row_labels: sequence of str. One label per grid row, drawn on the
            left (see `video_grid`). Defaults to None.

    Returns:
        `bytes` of a GIF89a file.
    """
    rate = _check_fps(fps)
    _check_loop(loop)
    frames = _prepare_frames(video, scale=scale, columns=columns, row_labels=row_labels)  # (T, H, W, 3)
    buffer = io.BytesIO()
    _encode_gif(buffer, [frames], rate, loop)
    return buffer.getvalue()


def write_gif(path, video, fps=8, loop=0, scale=1, columns=None, row_labels=None):
    """Writes a video as an animated GIF, atomically.

    Each frame gets its own 256-colour palette (exact for frames of at most 256
    colours, e.g. flat-coloured sprites; smooth gradients are quantised).

    Args:
        path: str or Path. The output file.
        video: array-like or tf.Tensor. `[T, H, W, C]` or `[B, T, H, W, C]`
            (tiled into a grid), float in [-1, 1] or uint8, C = 1 or 3.
        fps: number. Frames per second. Defaults to 8.
        loop: int. 0 loops forever, -1 plays once, N repeats N more times.
            Defaults to 0.
        scale: int. Nearest-neighbour enlargement of every frame, >= 1.
            Defaults to 1.
        columns: int. Grid cells per row for a batch (see `video_grid`).
            Defaults to None.
        row_labels: sequence of str. One label per grid row, drawn on the
            left (see `video_grid`). Defaults to None.

    Returns:
        The `Path` written.
    """
    path = Path(path)
    data = gif_bytes(video, fps=fps, loop=loop, scale=scale, columns=columns, row_labels=row_labels)
    _write_bytes_atomically(path, data)
    return path


def _write_npz(path, video, scale=1):
    """Writes `videos` `[B, T, H, W, C]` uint8 (enlarged by `scale`) into an NPZ file, atomically."""
    array = _as_numpy(video, "video")
    if array.ndim not in (4, 5):
        raise ValueError(
            f"`video` must have shape [T, H, W, C] or [B, T, H, W, C] (rank 4 or 5), got shape "
            f"{array.shape}."
        )
    if array.shape[-1] not in (1, 3):
        raise ValueError(
            f"`video` must have 1 (grey) or 3 (RGB) channels in its last axis, got shape "
            f"{array.shape}."
        )
    videos = scale_video(to_uint8(array), scale)
    if videos.ndim == 4:
        videos = videos[np.newaxis]  # (1, T, H, W, C)
    path = Path(path)
    with _atomic_video_path(path) as temporary:
        # A file object, because np.savez appends '.npz' to names without it.
        with open(temporary, "wb") as handle:
            np.savez(handle, videos=videos)
    return path


def write_video(path, video, fps=8, scale=1, columns=None, row_labels=None):
    """Writes a video file, choosing the format from the extension, atomically.

    - `.mp4`: H.264 via `write_mp4` (a batch is tiled into a grid).
    - `.gif`: animated GIF via `write_gif` (a batch is tiled into a grid).
    - `.npz`: key `videos`, uint8 `[B, T, H, W, C]` (a single video gets B = 1;
      a batch is kept as a batch, not tiled; grey stays one channel); the format
      the NPZ dataset loader reads. `scale` enlarges each video; `columns` and
      `row_labels` describe a grid, so they are an error here.

    The file is written to a temporary name in the same directory and renamed
    over `path` at the end, so a failed write never leaves a partial file and
    keeps any previous file.

    Args:
        path: str or Path. The output file; its extension picks the format.
        video: array-like or tf.Tensor. `[T, H, W, C]` or `[B, T, H, W, C]`,
            float in [-1, 1] or uint8, C = 1 or 3.
        fps: number. Frames per second (ignored for `.npz`). Defaults to 8.
        scale: int. Nearest-neighbour enlargement of every frame, >= 1.
            Defaults to 1.
        columns: int. Grid cells per row for a batch (see `video_grid`).
            Defaults to None.
        row_labels: sequence of str. One label per grid row, drawn on the
            left (see `video_grid`). Defaults to None.

    Returns:
        The `Path` written.
    """
    path = Path(path)
    extension = path.suffix.lower()
    grid = {"scale": scale, "columns": columns, "row_labels": row_labels}
    if extension == ".mp4":
        return write_mp4(path, video, fps=fps, **grid)
    if extension == ".gif":
        return write_gif(path, video, fps=fps, **grid)
    if extension == ".npz":
        if columns is not None or row_labels is not None:
            raise ValueError(
                f"Cannot write '{path}' with `columns` or `row_labels`: an .npz file keeps the batch of "
                "videos as it is; grids (and their labels) are drawn into .mp4 and .gif files."
            )
        return _write_npz(path, video, scale=scale)
    raise ValueError(
        f"Cannot write video '{path}': unknown extension '{path.suffix}'. Supported extensions: "
        f"{', '.join(SUPPORTED_WRITE_EXTENSIONS)}."
    )


# ---------------------------------------------------------------------------
# Writing chunk by chunk
# ---------------------------------------------------------------------------


def chunk_order(path):
    """How `write_video_chunks` wants the chunks of `path`: `"frames"` (`.mp4`, `.gif`: the next
    frames of every video) or `"videos"` (`.npz`: the next videos, every frame)."""
    extension = Path(path).suffix.lower()
    if extension in (".mp4", ".gif"):
        return "frames"
    if extension == ".npz":
        return "videos"
    raise ValueError(
        f"Cannot write video '{path}': unknown extension '{Path(path).suffix}'. Supported extensions: "
        f"{', '.join(SUPPORTED_WRITE_EXTENSIONS)}."
    )


def _npz_chunks(handle, chunks, shape, scale):
    """Writes the `videos` entry `shape` (uint8, enlarged by `scale`) of an NPZ file chunk by chunk."""
    import zipfile

    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("videos.npy", mode="w", force_zip64=True) as entry:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                      "shape": tuple(shape)}
            np.lib.format.write_array_header_2_0(entry, header)
            written = 0
            for chunk in chunks:
                videos = scale_video(to_uint8(_as_numpy(chunk, "chunk")), scale)
                if videos.ndim != 5 or videos.shape[1:] != tuple(shape[1:]) or written + len(videos) > shape[0]:
                    raise ValueError(f"Chunk of shape {videos.shape} does not continue videos of shape {shape} "
                                     f"after {written} videos.")
                entry.write(np.ascontiguousarray(videos).tobytes())
                written += len(videos)
            if written != shape[0]:
                raise ValueError(f"Got {written} videos for an NPZ file of {shape[0]}.")


def write_video_chunks(path, chunks, fps=8, scale=1, columns=None, shape=None):
    """Writes a video file from chunks as they are made, atomically: memory holds one chunk.

    The file is what `write_video` writes of the chunks put together:

    - `.mp4`, `.gif` (`chunk_order(path) == "frames"`): each chunk is the
      next `K` frames of every video, `(B, K, H, W, C)` (tiled into one grid
      video, as `write_video` tiles a batch) or `(K, H, W, C)`;
    - `.npz` (`"videos"`): each chunk is the next videos with all their
      frames, `(b, T, H, W, C)`; `shape`, the `(B, T, H, W, C)` of them all
      (before `scale`), is required, as the file states it first.

    Args:
        path: str or Path. The output file; its extension picks the format.
        chunks: iterable of array-likes or tf.Tensors, float in [-1, 1] or
            uint8, C = 1 or 3.
        fps: number. Frames per second (ignored for `.npz`). Defaults to 8.
        scale: int. Nearest-neighbour enlargement of every frame, >= 1.
            Defaults to 1.
        columns: int. Grid cells per row (`.mp4`, `.gif`). Defaults to None.
        shape: tuple of 5 ints. The whole `.npz` array. Defaults to None.

    Returns:
        The `Path` written. A failure keeps any previous file at `path`.
    """
    path = Path(path)
    order = chunk_order(path)
    _check_scale(scale)
    if order == "videos":
        if shape is None or len(shape) != 5:
            raise ValueError(f"Writing '{path}' chunk by chunk needs `shape` (B, T, H, W, C), got {shape!r}.")
        shape = tuple(int(d) for d in shape)
        shape = shape[:2] + (shape[2] * scale, shape[3] * scale, shape[4])
        with _atomic_video_path(path) as temporary:
            with open(temporary, "wb") as handle:
                _npz_chunks(handle, chunks, shape, scale)
        return path
    rate = _check_fps(fps)
    frames = (_prepare_frames(chunk, scale=scale, columns=columns) for chunk in chunks)  # (K, H', W', 3)
    with _atomic_video_path(path) as temporary:
        if path.suffix.lower() == ".mp4":
            _encode_mp4(temporary, frames, rate, 18)
        else:
            _encode_gif(str(temporary), frames, rate, 0)
    return path


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------


def _to_grey(rgb):
    """ITU-R BT.601 luma of uint8 RGB frames `(..., 3)` -> `(..., 1)`, full range."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    luma = np.tensordot(rgb.astype(np.float32), weights, axes=([-1], [0]))
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., np.newaxis]


def read_video(path, max_frames=None, channels=None):
    """Decodes a video file (MP4, GIF, AVI, WebM, ... anything FFmpeg reads).

    Every frame is converted to RGB at the size of the first frame (GIF
    transparency and frame disposal are resolved by the decoder).

    Args:
        path: str or Path. The video file.
        max_frames: int. Stop after this many frames. Defaults to None (all).
        channels: int. 3 for RGB, 1 for grey (BT.601 luma). Defaults to None,
            which means 3.

    Returns:
        A numpy uint8 array `[T, H, W, C]`.

    Raises:
        VideoReadError: the file is missing, empty, not a readable video, has
            no video stream, fails to decode, or decodes to zero frames. The
            message names the file.
    """
    path = Path(path)
    if channels is None:
        channels = 3
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB), got {channels!r}.")
    if max_frames is not None and (
        isinstance(max_frames, bool)
        or not isinstance(max_frames, numbers.Integral)
        or max_frames < 1
    ):
        raise ValueError(f"`max_frames` must be a positive integer or None, got {max_frames!r}.")

    if not path.exists():
        raise VideoReadError(f"Cannot read video '{path}': the file does not exist.")
    if path.is_dir():
        raise VideoReadError(f"Cannot read video '{path}': it is a directory, not a file.")
    if path.stat().st_size == 0:
        raise VideoReadError(f"Cannot read video '{path}': the file is empty (0 bytes).")

    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        raise VideoReadError(
            f"Cannot read video '{path}': not a readable video file (corrupt or unsupported "
            f"format): {error}"
        ) from error

    frames = []
    with container:
        if not container.streams.video:
            kinds = sorted({stream.type for stream in container.streams}) or ["none"]
            raise VideoReadError(
                f"Cannot read video '{path}': the file has no video stream (streams: "
                f"{', '.join(kinds)})."
            )
        stream = container.streams.video[0]
        # Let FFmpeg use both cores; tiny clips decode no slower for it.
        stream.thread_type = "AUTO"
        size = None
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = (frame.width, frame.height)
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                frames.append(rgb)  # (H, W, 3)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as error:
            raise VideoReadError(
                f"Cannot read video '{path}': decoding failed after {len(frames)} frame(s): "
                f"{error}"
            ) from error

    if not frames:
        raise VideoReadError(
            f"Cannot read video '{path}': the video stream decoded to zero frames."
        )
    video = np.stack(frames)  # (T, H, W, 3)
    if channels == 1:
        video = _to_grey(video)  # (T, H, W, 1)
    return video
