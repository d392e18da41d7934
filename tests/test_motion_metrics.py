"""Motion metrics from ground truth (vidgen_tf.metrics.motion) on the synthetic datasets."""

import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.data import make_videos, synthetic
from vidgen_tf.metrics import motion_distance, motion_statistics
from vidgen_tf.metrics.motion import STATISTICS
from vidgen_tf.registry import UnknownNameError

SHAPE = dict(num_frames=10, height=32, width=32)
NUM_VIDEOS = 128


def _corruptions(videos):
    """The clips frozen on frame 0, with their frames shuffled, and uniform noise."""
    rng = np.random.default_rng(7)
    return {
        "static": np.repeat(videos[:, :1], videos.shape[1], axis=1),
        "shuffled": np.stack([clip[rng.permutation(len(clip))] for clip in videos]),
        "noise": rng.integers(0, 256, size=videos.shape, dtype=np.uint8),
    }


# Measured at this size (128 clips, 10 frames, 32x32; `bench/motion_metrics_table.py
# --num-videos 128 --frames 10`): held-out real totals 0.27 (square), 0.92 (digits),
# 0.55 (balls), 0.70 (shapes); the smallest corruption total is 7.3 (static shapes), the
# others 7.6 - 203. The bounds below leave a factor >1.6 to real and >1.4 to the corruptions.
REAL_BOUND = 1.5
CORRUPT_BOUND = 5.0


@pytest.mark.parametrize(
    "dataset", ["moving_square", "moving_digits", "bouncing_balls", "moving_shapes"]
)
def test_held_out_real_scores_near_zero_and_corruptions_clearly_worse(dataset):
    real = make_videos(dataset, NUM_VIDEOS, seed=0, **SHAPE)
    held_out = make_videos(dataset, NUM_VIDEOS, seed=1, **SHAPE)
    scores = motion_distance(real, held_out, dataset=dataset)
    assert set(scores) == {*STATISTICS, "total"}
    assert scores["total"] == pytest.approx(sum(scores[name] for name in STATISTICS))
    assert scores["total"] < REAL_BOUND, scores
    assert motion_distance(real, real, dataset=dataset)["total"] == 0.0
    corrupt = {kind: motion_distance(real, fake, dataset=dataset)
               for kind, fake in _corruptions(held_out).items()}
    for kind, row in corrupt.items():
        assert row["total"] > CORRUPT_BOUND, (kind, row)
        assert row["total"] > 5 * scores["total"], (kind, row, scores)
    # Each corruption shows on the statistic it breaks: a frozen clip has no speed (measured
    # >= 2.2), shuffled frames jump off straight lines (acceleration measured >= 5.0).
    assert corrupt["static"]["speed"] > 1.5, corrupt["static"]
    assert corrupt["shuffled"]["acceleration"] > 2.0, corrupt["shuffled"]


def _moving_square_truth(num_videos, num_frames, size, seed):
    """The square's true centres `(N, T, 2)`, from the generator's own draws and `bounce`.

    Repeats `synthetic.moving_square`'s draws (direction label, start row, start column) at
    its defaults; the test checks below that the rendering agrees, so a change of the
    generator's draw order shows up as such.
    """
    square, speed = max(2, round(size / 4)), max(1, round(size / 16))
    directions = np.array(synthetic._SQUARE_DIRECTIONS[4])
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=num_videos)
    start_y = rng.integers(0, size - square + 1, size=num_videos)
    start_x = rng.integers(0, size - square + 1, size=num_videos)
    rows = synthetic.bounce(start_y, directions[labels, 0] * speed, size - square, num_frames)
    cols = synthetic.bounce(start_x, directions[labels, 1] * speed, size - square, num_frames)
    return np.stack([rows, cols], axis=-1) + square / 2, square


def test_object_finder_recovers_the_moving_square_positions_and_bounces():
    videos = make_videos("moving_square", 40, num_frames=12, height=32, width=32, seed=3)
    centres, square = _moving_square_truth(40, 12, 32, seed=3)
    top_left = np.rint(centres - square / 2).astype(int)
    n, t = np.meshgrid(np.arange(40), np.arange(12), indexing="ij")
    assert np.all(videos[n, t, top_left[..., 0], top_left[..., 1], 0] == 255)  # the replica
    stats = motion_statistics(videos, dataset="moving_square")
    assert np.all(stats["objects_per_frame"] == 1)
    assert np.all(stats["object_area"] == square**2)
    found = stats["positions"].reshape(40, 12, 2)
    assert np.max(np.abs(found - centres)) < 1e-6
    # Straight lines between bounces: no acceleration at all; every clip keeps its tracks continuous.
    assert np.all(stats["acceleration"] == 0.0)
    assert np.all(stats["track_continuity"] == 1.0)
    # Wall bounces: the reversals of the true velocity, a stop at the wall merged with the
    # reversal after it.
    velocity = np.diff(centres, axis=1)  # (N, T - 1, 2)
    v_in, v_out = velocity[:, :-1], velocity[:, 1:]
    turn = (v_in * v_out <= 0) & (v_in != v_out)  # (N, T - 2, 2)
    first = turn & ~np.concatenate([np.zeros_like(turn[:, :1]), turn[:, :-1]], axis=1)
    truth = first.sum(axis=(1, 2))
    assert truth.sum() > 20  # the clips do bounce
    np.testing.assert_array_equal(stats["wall_bounces"], truth)


def test_object_finder_recovers_a_bouncing_ball_within_a_tenth_of_a_pixel():
    videos = make_videos("bouncing_balls", 16, seed=5, num_balls=1, **SHAPE)
    # The generator's draws for one ball (no overlap redraws), then its simulator.
    radius, rng = 32 / 8, np.random.default_rng(5)
    start = radius + rng.random((16, 1, 2)) * (32 - 2 * radius)
    velocity = synthetic._random_velocities(rng, (16, 1), synthetic._speed_range(None, 32, 32))
    truth, _ = synthetic.simulate_balls(start, velocity, radius, 32, 32, 10)
    stats = motion_statistics(videos, dataset="bouncing_balls", num_balls=1)
    assert np.all(stats["objects_per_frame"] == 1)
    found = stats["positions"].reshape(16, 10, 2)
    assert np.max(np.abs(found - truth[:, :, 0])) < 0.1  # measured 0.064


def _squares(paths, size=32, side=6):
    """One clip `(1, T, size, size, 1)`: white squares of side `side`, top-left corners on `paths`."""
    num_frames = len(paths[0])
    clip = np.zeros((1, num_frames, size, size, 1), np.uint8)
    for path in paths:
        for t, (row, col) in enumerate(path):
            clip[0, t, row:row + side, col:col + side] = 255
    return clip


def test_overlapping_objects_are_counted_once_and_break_the_track():
    # Two squares on one row move towards each other 2 px a frame, overlap in frames 3-5
    # (one blob) and part again; a third square far below moves at the same speed.
    left = [(4, 2 + 2 * t) for t in range(10)]
    right = [(4, 22 - 2 * t) for t in range(10)]
    third = [(22, 2 + 2 * t) for t in range(10)]
    clip = _squares([left, right, third])
    videos = np.concatenate([clip, _squares([third, [(4, 24)] * 10])])
    stats = motion_statistics(videos, dataset="moving_square", square_size=6)
    counts = stats["objects_per_frame"][:10]
    assert counts[0] == 3 and counts.min() == 2 and counts[-1] == 3
    # No link jumps through the merge: every speed is a real step (2 px) or a rest (0).
    assert set(np.round(stats["speed"], 6)) <= {0.0, 2.0}, stats["speed"]
    np.testing.assert_array_equal(stats["track_continuity"], [0.0, 1.0])


def test_inputs_in_every_accepted_form_give_the_same_distances():
    real = make_videos("moving_shapes", 24, seed=0, channels=3, **SHAPE)
    fake = make_videos("moving_shapes", 24, seed=1, channels=3, **SHAPE)
    want = motion_distance(real, fake, dataset="moving_shapes")
    as_float = fake.astype(np.float32) / 127.5 - 1.0
    assert motion_distance(real, as_float, dataset="moving_shapes") == pytest.approx(want)
    assert motion_distance(tf.constant(real), tf.constant(as_float),
                           dataset="moving_shapes") == pytest.approx(want)
    assert motion_distance(real, fake, dataset="moving_shapes") == want  # deterministic
    # Grey is the maximum over channels: a single-channel copy scores the same.
    grey = fake.max(axis=-1, keepdims=True)
    assert motion_distance(real, grey, dataset="moving_shapes") == pytest.approx(want)


@pytest.mark.parametrize(
    "fake, options, error, words",
    [
        (np.zeros((4, 8, 32, 32), np.uint8), {}, ValueError, ["5-D", "(4, 8, 32, 32)"]),
        (np.zeros((4, 8, 32, 32, 1), np.int32), {}, TypeError, ["uint8", "int32"]),
        (np.full((4, 8, 32, 32, 1), 2.0, np.float32), {}, ValueError, ["[-1, 1]", "2"]),
        (np.zeros((1, 8, 32, 32, 1), np.uint8), {}, ValueError, ["at least 2 videos", "1"]),
        (np.zeros((4, 2, 32, 32, 1), np.uint8), {}, ValueError, ["at least 3 frames", "2"]),
        (np.zeros((4, 8, 32, 32, 2), np.uint8), {}, ValueError, ["1 or 3 channels"]),
        (np.zeros((4, 8, 16, 16, 1), np.uint8), {}, ValueError, ["same frames", "(8, 16, 16)"]),
        (np.zeros((4, 8, 32, 32, 1), np.uint8), {"num_balls": 2}, TypeError,
         ["num_balls", "digit_size"]),
    ],
)
def test_bad_inputs_are_named_in_the_error(fake, options, error, words):
    real = make_videos("moving_digits", 4, num_frames=8, height=32, width=32)
    with pytest.raises(error) as info:
        motion_distance(real, fake, dataset="moving_digits", **options)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_unknown_dataset_lists_the_known_ones():
    real = make_videos("moving_square", 4, num_frames=8, height=32, width=32)
    with pytest.raises(UnknownNameError) as info:
        motion_distance(real, real, dataset="moving_mnist")
    message = str(info.value)
    for name in ("moving_digits", "bouncing_balls", "moving_shapes", "moving_square"):
        assert name in message


def test_a_reversal_away_from_the_walls_is_acceleration_not_a_bounce():
    # Two squares move right 2 px a frame and turn back: one in the middle of the frame
    # (columns 8 -> 16 -> 6), one where its right edge reaches the wall (22 -> 26 -> 14).
    middle = [(13, 8 + 2 * min(t, 4 - t)) for t in range(9)]
    at_wall = [(13, 22 + 2 * min(t, 2 - t)) for t in range(9)]
    videos = np.concatenate([_squares([middle]), _squares([at_wall])])
    stats = motion_statistics(videos, dataset="moving_square", square_size=6)
    # Clip 0 turns 10 px from either wall: no bounce, one acceleration of 4 px / frame^2.
    # Clip 1 turns with its right edge at column 26 + 6 = 32, the wall: one bounce.
    np.testing.assert_array_equal(stats["wall_bounces"], [0.0, 1.0])
    assert sorted(stats["acceleration"])[-1] == pytest.approx(4.0)
    assert np.sum(stats["acceleration"] > 0) == 1


def test_statistics_without_real_spread_are_scaled_by_their_floor():
    # The real square moves on exact straight lines (acceleration 0, no spread); a fake that
    # jitters by one pixel every other frame must score a finite, moderate distance.
    real = make_videos("moving_square", 32, seed=0, **SHAPE)
    fake = make_videos("moving_square", 32, seed=1, **SHAPE)
    fake[:, 1::2] = np.concatenate([fake[:, 1::2, :, 1:], fake[:, 1::2, :, :1] * 0], axis=3)
    scores = motion_distance(real, fake, dataset="moving_square")
    assert 1.0 < scores["acceleration"] < 10.0, scores


def test_black_clips_without_objects_score_as_no_motion():
    real = make_videos("moving_digits", 32, seed=0, **SHAPE)
    black = np.zeros_like(real)
    stats = motion_statistics(black, dataset="moving_digits")
    assert stats["speed"].size == 0 and np.all(stats["objects_per_frame"] == 0)
    scores = motion_distance(real, black, dataset="moving_digits")
    assert np.isfinite(scores["total"]) and scores["total"] > CORRUPT_BOUND, scores
    assert scores["objects_per_frame"] > 1.0 and scores["speed"] > 1.5, scores


def test_statistics_do_not_depend_on_the_chunk_size(monkeypatch):
    from vidgen_tf.metrics import motion

    videos = make_videos("bouncing_balls", 12, seed=2, **SHAPE)
    whole = motion_statistics(videos, dataset="bouncing_balls")
    monkeypatch.setattr(motion, "CHUNK_SIZE", 5)
    chunked = motion_statistics(videos, dataset="bouncing_balls")
    for name in STATISTICS:
        np.testing.assert_array_equal(chunked[name], whole[name], err_msg=name)


def _turned_over(videos, start):
    """Each (single-object) clip with its object turned upside down in place from frame `start` on."""
    out = videos.copy()
    for clip in out:
        for frame in clip[start:]:
            rows, cols = np.nonzero(frame[..., 0])
            if len(rows):
                box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
                frame[box] = frame[box][::-1]
    return out


def test_a_digit_turned_over_in_place_raises_the_total_through_its_appearance():
    shape = dict(num_frames=16, height=32, width=32, num_digits=1)
    real = make_videos("moving_digits", 200, seed=0, **shape)
    held_out = make_videos("moving_digits", 200, seed=1, **shape)
    honest = motion_distance(real, held_out, dataset="moving_digits", num_digits=1)
    turned = motion_distance(real, _turned_over(held_out, 8), dataset="moving_digits", num_digits=1)
    # The tracks go on (same positions and speeds): only the appearance term sees the change.
    assert turned["total"] >= 3 * honest["total"], (turned, honest)
    assert turned["appearance"] > 2.0 and honest["appearance"] < 0.1
    assert abs(turned["track_continuity"] - honest["track_continuity"]) < 0.5
    stats = motion_statistics(held_out[:4], dataset="moving_digits", num_digits=1)
    np.testing.assert_array_equal(stats["appearance"], 0.0)  # real digits keep their pixels exactly
    assert "identity" not in stats and {"track_continuity", "appearance"} <= set(stats)
