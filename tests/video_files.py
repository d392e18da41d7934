"""Small video files and frame folders for the data tests, written with PyAV and Pillow.

Frame i of every file is a uniform grey level `step * i` (RGB (v, v, v)), so a test can
read back which source frames a clip holds from its mean value.
"""

import os

import av
import numpy as np
from PIL import Image

from vidgen_tf import video_io

# extension -> (container format, codec, pixel format, codec options): near-lossless settings.
CODECS = {
    ".mp4": ("mp4", "libx264", "yuv444p", {"crf": "0"}),  # 4:4:4 takes odd sizes
    ".mov": ("mov", "libx264", "yuv444p", {"crf": "0"}),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", {"lossless": "1"}),
    ".avi": ("avi", "mjpeg", "yuvj444p", {"q:v": "1"}),
    ".mkv": ("matroska", "ffv1", "yuv444p", None),
    ".gif": None,  # vidgen_tf.video_io.write_gif
}


def level_frames(num_frames, height, width, step=8):
    """uint8 `(T, H, W, 3)` with frame i filled with `min(step * i, 255)`."""
    levels = np.minimum(step * np.arange(num_frames), 255).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


def write_video(path, num_frames=24, height=32, width=40, fps=25, step=8, frames=None, pixel_format=None):
    """Writes a video whose frame i has grey level `step * i` (or `frames`, uint8 RGB `(T, H, W, 3)`) in the
    extension's pixel format (or `pixel_format`, e.g. "gray" for a grey .mkv); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    frames = level_frames(num_frames, height, width, step) if frames is None else frames
    if path.endswith(".gif"):  # the package's writer builds the palette
        video_io.write_gif(path, frames, fps=fps)
        return path
    container_format, codec, default_format, options = CODECS[os.path.splitext(path)[1]]
    pixel_format = pixel_format or default_format
    with av.open(path, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pixel_format
        if options:
            stream.options = options
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder, num_frames=24, height=32, width=40, step=8, name="frame_{}.png", start=1):
    """A folder of PNGs `frame_1.png`, `frame_2.png`, ... (unpadded numbers) of grey levels."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    for i, rgb in enumerate(level_frames(num_frames, height, width, step)):
        Image.fromarray(rgb).save(os.path.join(folder, name.format(i + start)))
    return folder


def colour_frames(num_frames, height, width):
    """uint8 `(T, H, W, 3)` whose channels differ: red rises along the rows, green along the columns, blue with time."""
    rows = np.linspace(0, 255, height)[None, :, None]
    columns = np.linspace(0, 255, width)[None, None, :]
    time = np.linspace(0, 255, num_frames)[:, None, None]
    shape = (num_frames, height, width)
    return np.stack([np.broadcast_to(rows, shape), np.broadcast_to(columns, shape), np.broadcast_to(time, shape)],
                    axis=-1).round().astype(np.uint8)


def levels_of(clip, step=8):
    """The source frame index of every frame of a uint8 clip `(T, H, W, C)` of level frames."""
    return np.rint(clip.reshape(len(clip), -1).mean(axis=1) / step).astype(int)
