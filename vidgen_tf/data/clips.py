"""Clip sampling and shaping for the real-data sources, in plain numpy.

Shared by `video_folder`, `frame_folder` and `vidgen data pack`: which source frames
make a clip, and how the decoded frames are brought to the requested size.

Sampling. A video of `N` frames at `source_fps` is first put on a *timeline*: its own
frames, or with `fps=` the frames nearest to the times `k / fps` (target time ->
nearest source frame, so a 30 fps file read at `fps=10` keeps every third frame and a
10 fps file read at `fps=25` repeats frames). A clip takes `num_frames` positions of the
timeline, `frame_step` apart, so it spans `(num_frames - 1) * frame_step + 1` positions.
`clips_per_video=1` draws one start per video and epoch; `"all"` cuts the timeline into
every non-overlapping span, shifted by a random offset per epoch. A timeline shorter
than one span is skipped (`short="skip"`) or read around from the start again
(`short="loop"`).

Shaping. `scaled_size` says what size the decoder scales a frame to (by FFmpeg or
Pillow), and `fit_frames` cuts or pads it to `(height, width)`:
- `"crop"`: the short side is scaled to fit, the long one is centre-cropped (or cropped
  at a random offset per clip with `random_crop=True`);
- `"pad"`: the long side is scaled to fit and the frame is centred on black;
- `"stretch"`: scaled to exactly `(height, width)`, ignoring the aspect ratio.

Example:
    >>> options = ClipOptions(num_frames=4, height=32, width=32, frame_step=2)
    >>> timeline(24, 25.0, None)[:3]
    array([0, 1, 2])
    >>> clip_positions(24, options.span, 0, options)
    array([0, 2, 4, 6])
"""

import dataclasses
import math

import numpy as np

from vidgen_tf.data.registry import check_int

RESIZE_MODES = ("crop", "pad", "stretch")
SHORT_MODES = ("skip", "loop")


@dataclasses.dataclass(frozen=True)
class ClipOptions:
    """How clips are cut from a video and shaped (validated on construction).

    Attributes:
        num_frames: int. Frames per clip.
        height, width: int. Frame size of a clip.
        channels: int. 1 (grey) or 3 (RGB). Defaults to 3.
        frame_step: int. Take every n-th position of the timeline. Defaults to 1.
        fps: float or None. Resample the video to this frame rate by timestamps;
            None keeps the source's frames. Defaults to None.
        clips_per_video: 1 or "all". One random clip per video and epoch, or every
            non-overlapping clip (with a random offset per epoch). Defaults to 1.
        short: str. "skip" (default) or "loop": what happens to a video shorter than a clip.
        resize: str. "crop" (default), "pad" or "stretch".
        random_crop: bool. A random crop offset per clip instead of the centre (crop
            only). Defaults to False.
    """

    num_frames: int
    height: int
    width: int
    channels: int = 3
    frame_step: int = 1
    fps: object = None
    clips_per_video: object = 1
    short: str = "skip"
    resize: str = "crop"
    random_crop: bool = False

    def __post_init__(self):
        check_int("num_frames", self.num_frames, 1)
        check_int("height", self.height, 1)
        check_int("width", self.width, 1)
        if self.channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, got {self.channels!r}.")
        check_int("frame_step", self.frame_step, 1)
        if self.fps is not None:
            check_positive("fps", self.fps)
        if self.clips_per_video != "all" and not (
                isinstance(self.clips_per_video, (int, np.integer)) and not isinstance(self.clips_per_video, bool)
                and self.clips_per_video == 1):
            raise ValueError(f"`clips_per_video` must be 1 or \"all\", got {self.clips_per_video!r}.")
        if self.short not in SHORT_MODES:
            raise ValueError(f"`short` must be one of {', '.join(map(repr, SHORT_MODES))}, got {self.short!r}.")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"`resize` must be one of {', '.join(map(repr, RESIZE_MODES))}, got {self.resize!r}.")
        if not isinstance(self.random_crop, (bool, np.bool_)):
            raise ValueError(f"`random_crop` must be True or False, got {self.random_crop!r}.")
        if self.random_crop and self.resize != "crop":
            raise ValueError(f"`random_crop=True` applies to resize=\"crop\", not resize={self.resize!r}.")

    @property
    def span(self):
        """Timeline positions one clip covers."""
        return (self.num_frames - 1) * self.frame_step + 1


def check_positive(name, value):
    """`value` as a float > 0, or a ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a number > 0, got {value!r}.")
    return float(value)


def timeline(num_source_frames, source_fps, fps=None):
    """Source frame index of every position of a video's timeline.

    Args:
        num_source_frames: int. Frames in the source.
        source_fps: float. The source's frame rate.
        fps: float or None. Target rate: position k is the source frame nearest to the
            time k / fps (times inside the video only). None: the source frames themselves.

    Returns:
        int64 `(L,)`.
    """
    if fps is None or float(fps) == float(source_fps):
        return np.arange(num_source_frames, dtype=np.int64)
    # Position k at time k / fps lies inside the video while k / fps < N / source_fps.
    length = max(1, math.ceil(num_source_frames * fps / source_fps - 1e-9))
    times = np.arange(length, dtype=np.float64) / fps
    nearest = np.floor(times * source_fps + 0.5).astype(np.int64)
    return np.minimum(nearest, num_source_frames - 1)


def clip_starts(length, options, rng):
    """Timeline positions where the clips of one video start, for one epoch.

    Args:
        length: int. Positions on the video's timeline.
        options: ClipOptions.
        rng: np.random.Generator. Draws the start (or the offset of "all").

    Returns:
        int64 `(clips,)`; empty for a short video with `short="skip"`.
    """
    span = options.span
    count = clips_in_video(length, options)  # the one rule for how many, so counts and plans agree
    if length < span:
        return np.zeros(count, dtype=np.int64)
    if options.clips_per_video == "all":
        offset = int(rng.integers(0, length - count * span + 1))
        return offset + span * np.arange(count, dtype=np.int64)
    return np.array([rng.integers(0, length - span + 1)], dtype=np.int64)


def clips_in_video(length, options):
    """Number of clips a video of `length` timeline positions gives per epoch."""
    if length < options.span:
        return 1 if options.short == "loop" else 0
    return length // options.span if options.clips_per_video == "all" else 1


def clip_positions(length, span, start, options):
    """Timeline positions of the clip starting at `start`; a short video wraps around."""
    positions = start + options.frame_step * np.arange(options.num_frames, dtype=np.int64)
    return positions % length if length < span else positions


def scaled_size(source_height, source_width, options):
    """`(h, w)` the decoder scales a `source_height x source_width` frame to, before `fit_frames`."""
    height, width = options.height, options.width
    if options.resize == "stretch":
        return height, width
    if options.resize == "crop":
        scale = max(height / source_height, width / source_width)
        return (max(height, round(source_height * scale)), max(width, round(source_width * scale)))
    scale = min(height / source_height, width / source_width)
    return (min(height, max(1, round(source_height * scale))), min(width, max(1, round(source_width * scale))))


def crop_offset(scaled, options, rng=None):
    """`(y, x)` of the crop window in a scaled frame: centred, or random with `random_crop`."""
    spare_y, spare_x = scaled[0] - options.height, scaled[1] - options.width
    if options.resize != "crop":
        return 0, 0
    if options.random_crop:
        return int(rng.integers(0, spare_y + 1)), int(rng.integers(0, spare_x + 1))
    return spare_y // 2, spare_x // 2


def fit_frames(frames, options, offset=(0, 0)):
    """Crops (or pads, centred on black) scaled frames `(T, h, w, C)` to `(T, H, W, C)`."""
    height, width = options.height, options.width
    _, got_h, got_w, _ = frames.shape
    if options.resize == "crop":
        y, x = offset
        if got_h < y + height or got_w < x + width:
            raise ValueError(f"Frames of {got_h}x{got_w} cannot be cropped to {height}x{width} at {offset}.")
        return frames[:, y:y + height, x:x + width]
    if (got_h, got_w) == (height, width):
        return frames
    if options.resize == "stretch" or got_h > height or got_w > width:
        raise ValueError(f"Frames of {got_h}x{got_w} do not fit {height}x{width} ({options.resize}).")
    padded = np.zeros((frames.shape[0], height, width, frames.shape[3]), dtype=frames.dtype)
    top, left = (height - got_h) // 2, (width - got_w) // 2
    padded[:, top:top + got_h, left:left + got_w] = frames
    return padded


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    """One clip of an epoch: what to decode and how to shape it.

    Attributes:
        video: int. Index of the video in the source's list of usable videos.
        start: int. Source index of the clip's first frame.
        frame_indices: tuple of int. Source index of every frame.
        scaled: (h, w). Size the decoder scales to.
        offset: (y, x). Crop offset in the scaled frame.
    """

    video: int
    start: int
    frame_indices: tuple
    scaled: tuple
    offset: tuple


def plan_epoch(videos, options, seed, epoch, shuffle=False):
    """The clips of one epoch, from `np.random.default_rng([*seed, epoch])`.

    Args:
        videos: sequence of `(num_frames, fps, height, width)`, one per usable video.
        options: ClipOptions.
        seed: int or list of ints. The dataset seed.
        epoch: int. The epoch.
        shuffle: bool. Shuffle the clips of the epoch. Defaults to False (video order).

    Returns:
        A list of `ClipPlan`; every video's clips, in video order unless shuffled.
    """
    seed = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    rng = np.random.default_rng([*seed, int(epoch)])
    plans = []
    span = options.span
    for video, (num_frames, fps, height, width) in enumerate(videos):
        line = timeline(num_frames, fps, options.fps)
        scaled = scaled_size(height, width, options)
        for start in clip_starts(len(line), options, rng):
            indices = line[clip_positions(len(line), span, int(start), options)]
            offset = crop_offset(scaled, options, rng)
            plans.append(ClipPlan(video, int(indices[0]), tuple(int(i) for i in indices), scaled, offset))
    if shuffle:
        plans = [plans[i] for i in rng.permutation(len(plans))]
    return plans


__all__ = [
    "ClipOptions",
    "ClipPlan",
    "RESIZE_MODES",
    "SHORT_MODES",
    "check_positive",
    "clip_positions",
    "clip_starts",
    "clips_in_video",
    "crop_offset",
    "fit_frames",
    "plan_epoch",
    "scaled_size",
    "timeline",
]
