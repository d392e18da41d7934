"""Tests for vidgen_tf.video_io: conversions, tiling, MP4 / GIF / NPZ writing, reading, errors."""

import io
import logging
import os
from fractions import Fraction

import av
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vidgen_tf import video_io
from vidgen_tf.video_io import (
    VideoReadError,
    gif_bytes,
    read_video,
    tile_videos,
    to_uint8,
    write_gif,
    write_mp4,
    write_video,
)

FLAT_COLOURS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [250, 200, 30], [0, 0, 0], [255, 255, 255]],
    dtype=np.uint8,
)


def smooth_video(frames=6, height=16, width=16):
    """A smooth moving colour pattern, uint8 (T, H, W, 3): easy for lossy codecs."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = 128 + 60 * np.sin(x / 5 + t / 3)
    green = 128 + 60 * np.cos(y / 6 - t / 4)
    blue = 128 + 40 * np.sin((x + y) / 7) + 0 * t
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1).round().astype(np.uint8)


def flat_video(frames=5, height=16, width=16):
    """Frames of a few flat colours: a background and a square that changes colour."""
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        video[t] = FLAT_COLOURS[t % len(FLAT_COLOURS)]
        video[t, 2:9, 3:10] = FLAT_COLOURS[(t + 2) % len(FLAT_COLOURS)]
    return video


def write_with_pyav(path, video, container_format, codec, fps=8, **stream_options):
    """Encodes uint8 (T, H, W, 3) with an arbitrary PyAV codec, for reader tests."""
    with av.open(str(path), mode="w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        for key, value in stream_options.items():
            setattr(stream, key, value)
        for index, rgb in enumerate(video):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def require_codec(name):
    if name not in av.codecs_available:
        pytest.skip(f"PyAV's FFmpeg has no '{name}' codec")


def mean_abs_error(a, b):
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


# --- to_uint8 ---------------------------------------------------------------


def test_to_uint8_maps_minus_one_to_one_onto_0_to_255():
    video = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.0004, -1.0004], dtype=np.float32)
    np.testing.assert_array_equal(to_uint8(video), [0, 64, 128, 191, 255, 255, 0])
    assert to_uint8(video).dtype == np.uint8


def test_to_uint8_passes_uint8_through_and_accepts_tensors():
    pixels = np.array([[0, 7, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(pixels), pixels)
    np.testing.assert_array_equal(to_uint8(tf.constant(pixels)), pixels)
    as_tensor = to_uint8(tf.constant([[-1.0, 1.0]], dtype=tf.bfloat16))
    np.testing.assert_array_equal(as_tensor, [[0, 255]])


@pytest.mark.parametrize(
    "video, error, pattern",
    [
        (np.array([0.0, 2.0]), ValueError, r"must be in \[-1, 1\], got values in \[0, 2\]"),
        (np.array([0.0, 255.0]), ValueError, r"x / 127.5 - 1"),
        (np.array([0.0, np.nan]), ValueError, "NaN or infinite"),
        (np.array([0, 255], dtype=np.int32), TypeError, "got dtype int32"),
    ],
)
def test_to_uint8_rejects_wrong_range_and_dtype(video, error, pattern):
    with pytest.raises(error, match=pattern):
        to_uint8(video)


# --- tile_videos ------------------------------------------------------------


def test_tile_videos_places_each_video_in_its_cell():
    # Three 2x3 single-frame videos with values 10, 20, 30: default columns = ceil(sqrt(3)) = 2.
    videos = np.stack([np.full((1, 2, 3, 1), v, dtype=np.uint8) for v in (10, 20, 30)])
    grid = tile_videos(videos, padding=1, pad_value=7)
    assert grid.shape == (1, 2 * 2 + 1, 2 * 3 + 1, 1)
    expected = np.array(
        [
            [10, 10, 10, 7, 20, 20, 20],
            [10, 10, 10, 7, 20, 20, 20],
            [7, 7, 7, 7, 7, 7, 7],
            [30, 30, 30, 7, 7, 7, 7],  # the fourth cell is empty
            [30, 30, 30, 7, 7, 7, 7],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(grid[0, :, :, 0], expected)


def test_tile_videos_keeps_time_and_channels_and_respects_columns():
    rng = np.random.default_rng(0)
    videos = rng.uniform(-1, 1, size=(3, 4, 5, 6, 3)).astype(np.float32)
    grid = tile_videos(videos, columns=3, padding=2, pad_value=-1.0)
    assert grid.shape == (4, 5, 3 * 6 + 2 * 2, 3) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[:, :, 0:6], videos[0])
    np.testing.assert_array_equal(grid[:, :, 8:14], videos[1])
    np.testing.assert_array_equal(grid[:, :, 16:22], videos[2])
    np.testing.assert_array_equal(grid[:, :, 6:8], -1.0)
    # One video comes back unchanged (no outer border); columns beyond B are clamped.
    np.testing.assert_array_equal(tile_videos(videos[:1]), videos[0])
    assert tile_videos(videos, columns=10, padding=0).shape == (4, 5, 18, 3)


def test_tile_videos_rejects_wrong_rank_and_columns():
    with pytest.raises(ValueError, match=r"\[B, T, H, W, C\] \(rank 5\), got shape \(4, 5, 6, 3\)"):
        tile_videos(np.zeros((4, 5, 6, 3)))
    with pytest.raises(ValueError, match="`columns` must be a positive integer, got 0"):
        tile_videos(np.zeros((2, 1, 2, 2, 1)), columns=0)


# --- MP4 --------------------------------------------------------------------


def test_mp4_round_trip_is_h264_with_exact_frames_and_small_error(tmp_path):
    video = smooth_video(frames=6, height=16, width=16)
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    assert path == tmp_path / "clip.mp4"
    decoded = read_video(path)
    assert decoded.shape == (6, 16, 16, 3) and decoded.dtype == np.uint8
    assert mean_abs_error(decoded, video) < 8
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 8


def test_mp4_from_float_batch_is_tiled(tmp_path):
    videos = smooth_video(frames=4).astype(np.float32) / 127.5 - 1.0  # (T, H, W, 3) in [-1, 1]
    batch = np.stack([videos, videos[:, ::-1], videos[:, :, ::-1], -videos])  # (4, T, 16, 16, 3)
    decoded = read_video(write_video(tmp_path / "grid.mp4", batch))
    # 2x2 grid of 16x16 with 1 pixel of grey separator = 33x33, padded to even 34x34 for H.264.
    assert decoded.shape == (4, 34, 34, 3)
    expected = video_io.video_grid(batch)
    np.testing.assert_array_equal(expected[:, 16, :], 128)
    assert mean_abs_error(decoded[:, :33, :33], expected) < 8


def test_mp4_odd_size_is_padded_to_even_by_repeating_edges(tmp_path):
    video = smooth_video(frames=5, height=15, width=13)
    decoded = read_video(write_mp4(tmp_path / "odd.mp4", video))
    assert decoded.shape == (5, 16, 14, 3)
    assert mean_abs_error(decoded[:, :15, :13], video) < 8
    # The added row / column repeat the last ones, so they match them closely too.
    assert mean_abs_error(decoded[:, 15, :13], video[:, 14]) < 8
    assert mean_abs_error(decoded[:, :15, 13], video[:, :, 12]) < 8


def test_mp4_grey_input_becomes_rgb(tmp_path):
    grey = smooth_video(frames=4)[..., :1]  # (T, H, W, 1)
    decoded = read_video(write_mp4(tmp_path / "grey.mp4", grey))
    assert decoded.shape == (4, 16, 16, 3)
    for channel in range(3):
        assert mean_abs_error(decoded[..., channel : channel + 1], grey) < 8


def test_mp4_falls_back_to_mpeg4_without_libx264(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264"})
    video = smooth_video(frames=4)
    with caplog.at_level(logging.WARNING, logger="vidgen_tf.video_io"):
        path = write_mp4(tmp_path / "fallback.mp4", video)
    assert "no libx264" in caplog.text and "'mpeg4'" in caplog.text
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    decoded = read_video(path)
    assert decoded.shape == (4, 16, 16, 3)
    assert mean_abs_error(decoded, video) < 8


# --- GIF --------------------------------------------------------------------


def test_gif_round_trip_is_exact_for_flat_colours(tmp_path):
    video = flat_video(frames=5)
    video[3] = video[2]  # identical consecutive frames must stay two frames
    path = write_video(tmp_path / "clip.gif", video, fps=4)
    decoded = read_video(path)
    assert decoded.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(decoded, video)
    with Image.open(path) as image:
        assert image.n_frames == 5
        assert image.info["loop"] == 0  # loops forever
        assert image.info["duration"] == 250  # ms per frame at 4 fps


def test_gif_bytes_decode_to_the_video_and_grey_is_expanded():
    grey = flat_video(frames=3)[..., :1]  # (T, H, W, 1), flat grey levels
    data = gif_bytes(grey, fps=8)
    assert data[:6] == b"GIF89a"
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    np.testing.assert_array_equal(np.stack(frames), np.repeat(grey, 3, axis=-1))


def test_gif_of_a_smooth_pattern_is_close_and_loop_can_be_set(tmp_path):
    video = smooth_video(frames=4, height=32, width=32)  # over 256 colours per frame
    path = write_gif(tmp_path / "smooth.gif", video, loop=-1)
    decoded = read_video(path)
    assert decoded.shape == video.shape
    assert mean_abs_error(decoded, video) < 4
    with Image.open(path) as image:
        assert "loop" not in image.info  # -1: no looping extension, plays once


# --- NPZ --------------------------------------------------------------------


def test_npz_stores_videos_batch_as_uint8(tmp_path):
    video = flat_video(frames=3)
    write_video(tmp_path / "one.npz", video)
    with np.load(tmp_path / "one.npz") as data:
        assert list(data.keys()) == ["videos"]
        np.testing.assert_array_equal(data["videos"], video[np.newaxis])

    batch = np.stack([video, video[::-1]])[..., :1].astype(np.float32) / 127.5 - 1.0
    write_video(tmp_path / "batch.npz", batch)
    with np.load(tmp_path / "batch.npz") as data:
        assert data["videos"].shape == (2, 3, 16, 16, 1) and data["videos"].dtype == np.uint8
        np.testing.assert_array_equal(data["videos"], to_uint8(batch))


# --- Reading other formats --------------------------------------------------


def test_read_avi_mpeg4(tmp_path):
    require_codec("mpeg4")
    video = smooth_video(frames=5)
    path = tmp_path / "clip.avi"
    write_with_pyav(path, video, "avi", "mpeg4", bit_rate=2_000_000)
    decoded = read_video(path)
    assert decoded.shape == (5, 16, 16, 3)
    assert mean_abs_error(decoded, video) < 8


def test_read_webm_vp8(tmp_path):
    require_codec("libvpx")
    video = smooth_video(frames=5)
    path = tmp_path / "clip.webm"
    write_with_pyav(path, video, "webm", "libvpx", bit_rate=2_000_000)
    decoded = read_video(path)
    assert decoded.shape == (5, 16, 16, 3)
    assert mean_abs_error(decoded, video) < 8


def test_read_max_frames_and_grey_channels(tmp_path):
    video = flat_video(frames=5)
    path = write_gif(tmp_path / "clip.gif", video)
    assert read_video(path, max_frames=2).shape == (2, 16, 16, 3)
    grey = read_video(path, channels=1)
    assert grey.shape == (5, 16, 16, 1)
    # BT.601 luma of the known flat colours: red 76, green 150, blue 29.
    expected = np.rint(video.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    np.testing.assert_array_equal(grey[..., 0], expected)
    assert grey[0, 0, 0, 0] == 76  # frame 0 background is red


# --- Read errors ------------------------------------------------------------


def test_read_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoReadError, match=r"nope\.mp4'.*does not exist"):
        read_video(path)


def test_read_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoReadError, match=r"empty\.mp4'.*empty \(0 bytes\)"):
        read_video(path)


def test_read_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"definitely not a video " * 20)
    with pytest.raises(VideoReadError, match=r"corrupt\.mp4'.*not a readable video"):
        read_video(path)


def test_read_file_without_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        samples = np.zeros((1, 800), np.int16)  # (channels, samples)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    with pytest.raises(VideoReadError, match=r"sound\.wav'.*no video stream \(streams: audio\)"):
        read_video(path)


def test_read_video_stream_with_zero_frames(tmp_path):
    require_codec("mpeg4")
    path = tmp_path / "hollow.avi"
    with av.open(str(path), mode="w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        out.start_encoding()  # header with a video stream, then no packets
    assert path.stat().st_size > 0
    with pytest.raises(VideoReadError, match=r"hollow\.avi'.*zero frames"):
        read_video(path)


def test_read_directory_and_bad_arguments(tmp_path):
    with pytest.raises(VideoReadError, match="is a directory"):
        read_video(tmp_path)
    path = write_gif(tmp_path / "clip.gif", flat_video(frames=2))
    with pytest.raises(ValueError, match="`channels` must be 1 .* or 3 .*, got 4"):
        read_video(path, channels=4)
    with pytest.raises(ValueError, match="`max_frames` must be a positive integer or None, got 0"):
        read_video(path, max_frames=0)


# --- Write errors -----------------------------------------------------------


def test_write_unknown_extension_lists_supported_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown extension '\.avi'.*\.mp4, \.gif, \.npz"):
        write_video(tmp_path / "clip.avi", flat_video(frames=2))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("extension", [".mp4", ".gif", ".npz"])
def test_write_rejects_wrong_rank_channels_and_range(tmp_path, extension):
    path = tmp_path / f"clip{extension}"
    with pytest.raises(ValueError, match=r"rank 4 or 5\), got shape \(16, 16, 3\)"):
        write_video(path, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"1 \(grey\) or 3 \(RGB\) channels.*\(2, 16, 16, 4\)"):
        write_video(path, np.zeros((2, 16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\], got values in \[0, 255\]"):
        pixels = np.linspace(0, 255, 2 * 16 * 16 * 3, dtype=np.float32)
        write_video(path, pixels.reshape(2, 16, 16, 3))
    assert os.listdir(tmp_path) == []


def test_write_rejects_bad_fps_and_missing_directory(tmp_path):
    video = flat_video(frames=2)
    with pytest.raises(ValueError, match="`fps` must be a positive finite number, got 0"):
        write_video(tmp_path / "clip.mp4", video, fps=0)
    with pytest.raises(FileNotFoundError, match=r"directory '.*missing' does not exist"):
        write_video(tmp_path / "missing" / "clip.gif", video)


def test_fractional_fps_is_kept(tmp_path):
    path = write_mp4(tmp_path / "ntsc.mp4", smooth_video(frames=3), fps=30000 / 1001)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


# --- Atomic writes ----------------------------------------------------------


@pytest.mark.parametrize("extension", [".mp4", ".gif", ".npz"])
def test_write_leaves_only_the_final_file(tmp_path, extension):
    path = write_video(tmp_path / f"clip{extension}", flat_video(frames=3))
    assert sorted(os.listdir(tmp_path)) == [f"clip{extension}"]
    # Same permissions as a plain open() would give, not mkstemp's 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("extension, hook", [(".mp4", "_to_av_frame"), (".gif", "_palette_frame")])
def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, extension, hook):
    path = tmp_path / f"clip{extension}"
    path.write_bytes(b"the previous, complete file")
    original = getattr(video_io, hook)
    calls = []

    def fail_on_third_frame(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("encoder crashed mid-video")
        return original(*args)

    monkeypatch.setattr(video_io, hook, fail_on_third_frame)
    with pytest.raises(RuntimeError, match="encoder crashed mid-video"):
        write_video(path, smooth_video(frames=6))
    assert len(calls) == 3  # the crash did happen midway, after frames were encoded
    assert path.read_bytes() == b"the previous, complete file"
    assert os.listdir(tmp_path) == [path.name]

    # Without a previous file, a failed write leaves nothing at all.
    calls.clear()
    fresh = tmp_path / f"fresh{extension}"
    with pytest.raises(RuntimeError, match="encoder crashed mid-video"):
        write_video(fresh, smooth_video(frames=6))
    assert not fresh.exists() and os.listdir(tmp_path) == [path.name]


def test_failed_npz_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "clip.npz"
    path.write_bytes(b"old")

    def broken_savez(handle, **arrays):
        handle.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(video_io.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        write_video(path, flat_video(frames=2))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["clip.npz"]


# --- scale, grid separators and row labels ----------------------------------


def test_scale_video_is_nearest_neighbour_and_gif_keeps_it_exactly(tmp_path):
    video = flat_video(frames=3, height=6, width=5)
    expected = np.repeat(np.repeat(video, 3, axis=1), 3, axis=2)  # (T, 18, 15, 3)
    np.testing.assert_array_equal(video_io.scale_video(video, 3), expected)
    assert video_io.scale_video(video, 1) is not None and video_io.scale_video(video, 1).shape == video.shape
    decoded = read_video(write_video(tmp_path / "big.gif", video, scale=3))
    np.testing.assert_array_equal(decoded, expected)
    with np.load(write_video(tmp_path / "big.npz", video, scale=2)) as data:
        np.testing.assert_array_equal(data["videos"][0], np.repeat(np.repeat(video, 2, axis=1), 2, axis=2))


@pytest.mark.parametrize("scale", [0, -2, 1.5, "2", True])
def test_scale_must_be_an_integer_of_at_least_one(tmp_path, scale):
    with pytest.raises(ValueError, match=r"`scale` must be an integer >= 1"):
        write_video(tmp_path / "x.gif", flat_video(frames=2), scale=scale)
    assert not (tmp_path / "x.gif").exists()


def test_video_grid_cells_are_scaled_and_separated_by_the_stated_colour():
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, size=(3, 2, 4, 5, 1), dtype=np.uint8)  # grey, 3 videos
    grid = video_io.video_grid(videos, columns=2, scale=2)  # 2 px separators at scale 2
    cell_h, cell_w, sep = 8, 10, 2
    assert grid.shape == (2, 2 * cell_h + sep, 2 * cell_w + sep, 3) and grid.dtype == np.uint8
    big = np.repeat(np.repeat(np.repeat(videos, 3, axis=-1), 2, axis=2), 2, axis=3)  # (3, T, 8, 10, 3)
    np.testing.assert_array_equal(grid[:, :cell_h, :cell_w], big[0])
    np.testing.assert_array_equal(grid[:, :cell_h, cell_w + sep :], big[1])
    np.testing.assert_array_equal(grid[:, cell_h + sep :, :cell_w], big[2])
    colour = np.array(video_io.GRID_SEPARATOR_COLOUR, dtype=np.uint8)
    assert np.all(grid[:, :, cell_w : cell_w + sep] == colour)  # the vertical line
    assert np.all(grid[:, cell_h : cell_h + sep, :] == colour)  # the horizontal line
    assert np.all(grid[:, cell_h + sep :, cell_w + sep :] == 0)  # the unused cell is black
    assert video_io.video_grid(videos, columns=2).shape[1] == 2 * 4 + 1  # 1 px at scale 1


def test_video_grid_row_labels_draw_text_in_a_strip_left_of_each_row(tmp_path):
    videos = np.zeros((4, 2, 8, 8, 3), dtype=np.uint8)
    grid = video_io.video_grid(videos, row_labels=["circle", "square"], scale=2)
    # Two rows of two columns (columns follow the number of labels).
    assert grid.shape[1] == 2 * 16 + 2
    cells_width = 2 * 16 + 2
    strip_width = grid.shape[2] - cells_width - 2  # strip, then a 2 px separator
    assert strip_width > 10
    colour = np.array(video_io.GRID_SEPARATOR_COLOUR, dtype=np.uint8)
    assert np.all(grid[:, :, strip_width : strip_width + 2] == colour)
    for top in (0, 18):  # each row band of the strip holds some text pixels
        band = grid[0, top : top + 16, :strip_width]
        assert (band > 0).any(), top
    assert not (grid[0, :, :strip_width] != grid[1, :, :strip_width]).any()  # the same on every frame
    assert (grid[:, :, strip_width + 2 :][:, :16, :16] == 0).all()  # cells untouched
    # Different labels draw different pixels.
    other = video_io.video_grid(videos, row_labels=["square", "circle"], scale=2)
    assert (other[0, :16, :strip_width] != grid[0, :16, :strip_width]).any()
    decoded = read_video(write_video(tmp_path / "labels.gif", videos, row_labels=["circle", "square"], scale=2))
    np.testing.assert_array_equal(decoded, grid)


def test_row_labels_must_match_the_rows_and_npz_takes_no_grid(tmp_path):
    videos = np.zeros((4, 2, 8, 8, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"one label per row: 4 videos in 2 columns make 2 row\(s\), got 3"):
        video_io.video_grid(videos, columns=2, row_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="at least one row"):
        video_io.video_grid(videos, row_labels=[])
    with pytest.raises(ValueError, match=r"'.*x\.npz' with `columns` or `row_labels`"):
        write_video(tmp_path / "x.npz", videos, row_labels=["a", "b"])
    with pytest.raises(ValueError, match="`separator` must be a non-negative integer"):
        video_io.video_grid(videos, separator=-1)


def test_chunks_make_the_file_write_video_makes(tmp_path):
    rng = np.random.default_rng(0)
    videos = (rng.integers(0, 4, (3, 7, 8, 10, 1)) * 80).astype(np.uint8)  # few colours: GIF is exact
    video_io.write_video(tmp_path / "whole.npz", videos, scale=2)
    video_io.write_video_chunks(tmp_path / "chunks.npz", iter([videos[:2], videos[2:]]), scale=2, shape=videos.shape)
    with np.load(tmp_path / "whole.npz") as whole, np.load(tmp_path / "chunks.npz") as chunks:
        np.testing.assert_array_equal(chunks["videos"], whole["videos"])
    for extension in (".gif", ".mp4"):
        assert video_io.chunk_order(f"x{extension}") == "frames"
        video_io.write_video(tmp_path / f"whole{extension}", videos, fps=8)
        video_io.write_video_chunks(tmp_path / f"chunks{extension}", iter([videos[:, :3], videos[:, 3:]]), fps=8)
        np.testing.assert_array_equal(video_io.read_video(tmp_path / f"chunks{extension}"),
                                      video_io.read_video(tmp_path / f"whole{extension}"))
    assert video_io.chunk_order("x.npz") == "videos"
    with pytest.raises(ValueError, match="does not continue videos of shape"):
        video_io.write_video_chunks(tmp_path / "bad.npz", iter([videos[:, :3]]), shape=videos.shape)
    with pytest.raises(ValueError, match=r"needs `shape`"):
        video_io.write_video_chunks(tmp_path / "bad.npz", iter([videos]))
    assert not (tmp_path / "bad.npz").exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]
