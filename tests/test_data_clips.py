"""Tests of vidgen_tf.data.clips: timelines, clip starts, frame steps, shaping geometry, plans."""

import numpy as np
import pytest

from vidgen_tf.data import clips


def options(**kwargs):
    return clips.ClipOptions(**{"num_frames": 4, "height": 16, "width": 16, **kwargs})


def test_timeline_is_the_source_frames_without_fps_and_nearest_frames_with_it():
    np.testing.assert_array_equal(clips.timeline(5, 25.0), np.arange(5))
    # 30 fps read at 10 fps: every third frame, 12 frames -> times 0 .. 0.3 s.
    np.testing.assert_array_equal(clips.timeline(12, 30.0, 10), [0, 3, 6, 9])
    # 10 fps read at 25 fps: frames repeat; frame k is nearest to time k / 25.
    line = clips.timeline(4, 10.0, 25)
    np.testing.assert_array_equal(line, [0, 0, 1, 1, 2, 2, 2, 3, 3, 3])
    assert line.max() == 3


def test_one_clip_per_video_starts_anywhere_a_whole_clip_fits():
    opts = options(frame_step=2)  # span 7
    assert opts.span == 7
    starts = {int(clips.clip_starts(10, opts, np.random.default_rng(seed))[0]) for seed in range(200)}
    assert starts == set(range(4))  # 0 .. 10 - 7


def test_all_clips_are_non_overlapping_with_a_random_offset():
    opts = options(clips_per_video="all")  # span 4
    for seed in range(20):
        starts = clips.clip_starts(10, opts, np.random.default_rng(seed))
        assert len(starts) == 2 and np.all(np.diff(starts) == 4)
        assert 0 <= starts[0] <= 2
    offsets = {int(clips.clip_starts(10, opts, np.random.default_rng(s))[0]) for s in range(50)}
    assert offsets == {0, 1, 2}
    assert clips.clips_in_video(10, opts) == 2


def test_short_videos_are_skipped_or_looped_from_the_start():
    skip, loop = options(frame_step=2), options(frame_step=2, short="loop")
    assert len(clips.clip_starts(5, skip, np.random.default_rng(0))) == 0
    assert clips.clips_in_video(5, skip) == 0 and clips.clips_in_video(5, loop) == 1
    np.testing.assert_array_equal(clips.clip_positions(5, loop.span, 0, loop), [0, 2, 4, 1])
    np.testing.assert_array_equal(clips.clip_positions(20, skip.span, 3, skip), [3, 5, 7, 9])


def test_scaled_sizes_of_crop_pad_and_stretch():
    assert clips.scaled_size(37, 53, options(resize="crop")) == (16, 23)  # short side fits
    assert clips.scaled_size(37, 53, options(resize="pad")) == (11, 16)  # long side fits
    assert clips.scaled_size(37, 53, options(resize="stretch")) == (16, 16)
    assert clips.scaled_size(53, 37, options(resize="crop")) == (23, 16)


def test_crop_is_centred_or_random_and_pad_centres_on_black():
    crop = options()
    assert clips.crop_offset((16, 23), crop) == (0, 3)
    offsets = {clips.crop_offset((20, 23), options(random_crop=True), np.random.default_rng(s)) for s in range(100)}
    assert {y for y, _ in offsets} == set(range(5)) and {x for _, x in offsets} == set(range(8))

    frames = np.arange(2 * 16 * 23, dtype=np.uint8).reshape(2, 16, 23, 1)
    np.testing.assert_array_equal(clips.fit_frames(frames, crop, (0, 3)), frames[:, :, 3:19])

    small = np.full((2, 11, 16, 3), 200, np.uint8)
    padded = clips.fit_frames(small, options(resize="pad"))
    assert padded.shape == (2, 16, 16, 3)
    rows = padded[0, :, 0, 0]
    np.testing.assert_array_equal(rows, [0, 0] + [200] * 11 + [0, 0, 0])  # 5 rows of black: 2 above, 3 below


@pytest.mark.parametrize("bad, named", [
    (dict(frame_step=0), "frame_step"), (dict(fps=-1), "fps"), (dict(fps="fast"), "fps"),
    (dict(clips_per_video=2), "clips_per_video"), (dict(short="wrap"), "short"), (dict(resize="fill"), "resize"),
    (dict(random_crop="yes"), "random_crop"), (dict(random_crop=True, resize="pad"), "random_crop"),
    (dict(channels=2), "channels"),
])
def test_bad_options_are_named(bad, named):
    with pytest.raises(ValueError, match=named):
        options(**bad)


def test_plans_are_a_function_of_seed_and_epoch_and_shuffle_permutes_them():
    videos = [(24, 25.0, 32, 40), (30, 10.0, 37, 53), (10, 25.0, 32, 40)]
    opts = options(frame_step=2, clips_per_video="all", random_crop=True)
    first = clips.plan_epoch(videos, opts, 3, 0)
    assert first == clips.plan_epoch(videos, opts, 3, 0)
    assert first != clips.plan_epoch(videos, opts, 4, 0)
    assert first != clips.plan_epoch(videos, opts, 3, 1)
    assert [plan.video for plan in first] == [0, 0, 0, 1, 1, 1, 1, 2]
    for plan in first:
        assert np.all(np.diff(plan.frame_indices) == 2) and plan.start == plan.frame_indices[0]
    shuffled = clips.plan_epoch(videos, opts, 3, 0, shuffle=True)
    assert sorted(shuffled, key=lambda p: (p.video, p.start)) == sorted(
        clips.plan_epoch(videos, opts, 3, 0), key=lambda p: (p.video, p.start))
    assert [p.video for p in shuffled] != [p.video for p in first]
