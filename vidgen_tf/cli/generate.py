"""`vidgen generate`: videos from a preset, written to MP4, GIF or NPZ.

The request is bounded before anything is generated: `--num` x `--frames`
x the frame size (x `--scale`^2) bytes of uint8 video must stay within
`MAX_OUTPUT_BYTES`. Videos are generated `BATCH_SIZE` at a time and, for
models that stream (`generate_stream`), `CHUNK_FRAMES` frames at a time, and
written as they come (`video_io.write_video_chunks`): memory holds a batch
and a chunk, not the whole request.
"""

import hashlib
import random
import sys

from vidgen_tf.cli.common import UsageError, _quiet_tensorflow

# The largest request: uint8 video, before any file encoding.
MAX_OUTPUT_BYTES = 2 * 2**30
BATCH_SIZE = 16
CHUNK_FRAMES = 16


def _size(num_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if num_bytes < 1024 or unit == "TiB":
            return f"{num_bytes:.3g} {unit}" if unit != "bytes" else f"{num_bytes} bytes"
        num_bytes /= 1024
    return None


def check_request(num, num_frames, frame_shape, scale=1, frames_flag="--frames"):
    """Raises UsageError naming `--num` and `--frames` when the video would exceed `MAX_OUTPUT_BYTES`."""
    height, width, channels = frame_shape
    total = num * num_frames * height * width * channels * scale * scale
    if total > MAX_OUTPUT_BYTES:
        scaled = f" at --scale {scale}" if scale > 1 else ""
        raise UsageError(
            f"--num {num} x {frames_flag} {num_frames} videos of {height}x{width}x{channels}{scaled} would be "
            f"{_size(total)} of video, above the {_size(MAX_OUTPUT_BYTES)} vidgen generate writes; "
            f"lower {frames_flag} or --num."
        )
    return total


def batch_seed(seed, index):
    """The seed of batch `index`: `seed` itself for the first, so that a request of at most
    `BATCH_SIZE` videos is `model.generate(num, seed)`; a digest of both for the others."""
    if index == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}/{index}".encode()).digest()[:4], "big") % 2**31


def _batch_chunks(model, num, seed, num_frames, labels):
    """One generator per batch of videos, each yielding uint8 numpy chunks `(b, K, H, W, C)`."""
    from vidgen_tf import video_io

    streams = []
    for index, start in enumerate(range(0, num, BATCH_SIZE)):
        size = min(BATCH_SIZE, num - start)
        batch_labels = None if labels is None else labels[start:start + size]
        streams.append(_one_batch(model, size, batch_seed(seed, index), num_frames, batch_labels, video_io))
    return streams


def _one_batch(model, size, seed, num_frames, labels, video_io):
    if model.streaming_unavailable is None and num_frames > CHUNK_FRAMES:
        chunks = model.generate_stream(size, seed=seed, chunk_frames=CHUNK_FRAMES, num_frames=num_frames,
                                       labels=labels)
    else:
        chunks = iter([model.generate(size, seed=seed, num_frames=num_frames, labels=labels)])
    for chunk in chunks:
        yield video_io.to_uint8(chunk.numpy())


def _stderr_is_terminal():
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Progress:
    """`generated 96/512 frames (18%)` on stderr, rewritten in place; only on a terminal (as `data pack`'s
    line), so logs and pipes get the one `wrote ...` line."""

    def __init__(self, total):
        self.total, self.done = total, 0
        self.enabled = _stderr_is_terminal()

    def add(self, count):
        self.done += count
        if self.enabled:
            print(f"\rgenerated {self.done}/{self.total} frames ({100 * self.done // self.total}%)", end="",
                  file=sys.stderr, flush=True)

    def close(self):
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _frame_chunks(streams, num_frames, progress):
    """Chunks `(num, K, ...)`: the next frames of every video (for .mp4 and .gif grids)."""
    import numpy as np

    pending = [None] * len(streams)  # frames a batch made beyond the ones written (a whole fixed-length clip)
    written = 0
    while written < num_frames:
        parts = []
        for i, stream in enumerate(streams):
            if pending[i] is None or pending[i].shape[1] == 0:
                pending[i] = next(stream)
                progress.add(pending[i].shape[0] * pending[i].shape[1])
            parts.append(pending[i][:, :CHUNK_FRAMES])
            pending[i] = pending[i][:, CHUNK_FRAMES:]
        chunk = np.concatenate(parts, axis=0)
        written += chunk.shape[1]
        yield chunk


def _video_chunks(streams, progress):
    """Chunks `(b, T, ...)`: the next batch of whole videos (for .npz)."""
    import numpy as np

    for stream in streams:
        parts = []
        for chunk in stream:
            progress.add(chunk.shape[0] * chunk.shape[1])
            parts.append(chunk)
        yield np.concatenate(parts, axis=1)


def cmd_generate(args):
    _quiet_tensorflow()
    import vidgen_tf
    from vidgen_tf import video_io

    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}.")
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be >= 1, got {args.frames}.")
    if args.scale < 1:
        raise UsageError(f"--scale must be an integer >= 1 (each pixel becomes a scale x scale block), "
                         f"got {args.scale}.")
    order = video_io.chunk_order(args.out)
    model = vidgen_tf.from_preset(args.preset)
    if args.frames is not None and args.frames != model.num_frames and not model.variable_length:
        raise UsageError(f"--frames: {type(model).__name__} generates exactly {model.num_frames} frames; "
                         f"got --frames {args.frames}.")
    num_frames = args.frames or model.num_frames
    check_request(args.num, num_frames, (model.height, model.width, model.channels), args.scale)
    labels = None
    if args.label is not None:
        labels = [args.label] * args.num
    elif model.num_classes:
        labels = [i % model.num_classes for i in range(args.num)]
    if labels is not None:
        model.check_labels(labels, batch_size=args.num)  # a bad --label is named before any work
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    streams = _batch_chunks(model, args.num, seed, num_frames, labels)
    progress = _Progress(args.num * num_frames)
    shape = (args.num, num_frames, model.height, model.width, model.channels)
    chunks = _video_chunks(streams, progress) if order == "videos" else _frame_chunks(streams, num_frames, progress)
    try:
        path = video_io.write_video_chunks(args.out, chunks, fps=args.fps, scale=args.scale, shape=shape)
    finally:
        progress.close()
    print(f"wrote {path} ({args.num} videos of {num_frames} frames)")
    return 0
