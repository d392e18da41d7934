"""Tests of vidgen_tf.data: synthetic videos, the ball simulator, npz files, tf.data pipelines."""

import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from vidgen_tf import data
from vidgen_tf.registry import UnknownNameError

SYNTHETIC = ["moving_digits", "bouncing_balls", "moving_shapes", "moving_square"]
SMALL = dict(num_frames=8, height=32, width=32)


def test_list_datasets():
    assert data.list_datasets() == sorted(SYNTHETIC + ["frame_folder", "npz", "tfrecord", "video_folder"])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", SYNTHETIC)
def test_shapes_dtype_range(name, channels):
    videos = data.make_videos(name, 6, channels=channels, seed=1, **SMALL)
    assert videos.shape == (6, 8, 32, 32, channels)
    assert videos.dtype == np.uint8
    assert videos.min() == 0  # black background
    assert videos.max() >= 200  # something bright is drawn
    if channels == 3 and name in ("moving_shapes", "bouncing_balls"):
        # Coloured objects: the channels are not all equal.
        assert np.any(videos[..., 0] != videos[..., 1])
    if channels == 3 and name in ("moving_digits", "moving_square"):
        np.testing.assert_array_equal(videos[..., 0], videos[..., 2])


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_seed_same_videos_other_seed_differs(name):
    first = data.make_videos(name, 4, seed=7, **SMALL)
    again = data.make_videos(name, 4, seed=7, **SMALL)
    other = data.make_videos(name, 4, seed=8, **SMALL)
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_objects_move(name):
    videos = data.make_videos(name, 8, seed=2, **SMALL)
    for video in videos:
        changes = [np.any(video[t] != video[t + 1]) for t in range(len(video) - 1)]
        # Rounding to whole pixels may hold a slow digit still for a frame, never for long.
        assert sum(changes) >= len(changes) - 2


def test_bounce_folds_the_free_path_at_the_walls():
    # Free path 1, 3, 5, 7, 9, 11 between walls at 0 and 4.
    np.testing.assert_allclose(data.bounce(1.0, 2.0, 4.0, 6), [1, 3, 3, 1, 1, 3])
    np.testing.assert_allclose(data.bounce(1.0, -2.0, 4.0, 4), [1, 1, 3, 3])
    positions = data.bounce(np.linspace(0, 10, 7), np.linspace(-5, 5, 7), 10.0, 50)
    assert positions.shape == (7, 50)
    assert positions.min() >= 0 and positions.max() <= 10


def test_moving_square_stays_whole_inside_the_frame():
    videos = data.make_videos("moving_square", 16, num_frames=30, height=32, width=32, seed=3)
    side = round(32 / 4)
    # A square cut by the border, or wrapped around by negative indices, changes the count.
    np.testing.assert_array_equal((videos == 255).sum(axis=(2, 3, 4)), side**2)
    np.testing.assert_array_equal(np.isin(videos, [0, 255]), True)


def test_single_digit_keeps_all_its_ink_in_every_frame():
    videos = data.make_videos("moving_digits", 8, num_frames=30, seed=4, num_digits=1,
                              height=32, width=32)
    ink = videos.astype(np.int64).sum(axis=(2, 3, 4))  # (N, T)
    np.testing.assert_array_equal(ink, ink[:, :1].repeat(30, axis=1))


def test_single_shape_keeps_its_area_in_every_frame():
    videos = data.make_videos("moving_shapes", 8, num_frames=30, seed=4, num_shapes=1,
                              height=32, width=32)
    area = videos.astype(np.float64).sum(axis=(2, 3, 4))  # (N, T)
    # Anti-aliased edges move the sum a little; a shape cut by the border loses far more.
    np.testing.assert_allclose(area, area[:, :1].repeat(30, axis=1), rtol=0.04)


def test_balls_stay_inside_and_conserve_kinetic_energy():
    rng = np.random.default_rng(0)
    radius, size, num_balls = 3.0, 32, 3
    start = radius + rng.random((200, num_balls, 2)) * (size - 2 * radius)
    gaps = np.linalg.norm(start[:, :, None] - start[:, None], axis=-1) + np.eye(num_balls) * 99
    start = start[np.all(gaps > 2 * radius, axis=(1, 2))]  # non-overlapping starts only
    velocity = rng.normal(size=start.shape)
    positions, velocities = data.simulate_balls(start, velocity, radius, size, size, 100)
    assert positions.shape == velocities.shape == (len(start), 100, num_balls, 2)
    assert positions.min() >= radius and positions.max() <= size - radius
    energy = np.sum(velocities**2, axis=(2, 3))  # (N, T), equal masses
    np.testing.assert_allclose(energy, energy[:, :1].repeat(100, axis=1), rtol=1e-12)
    # Walls only flip signs, so a changed |component| means balls collided: there were many.
    collided = np.any(np.abs(np.abs(velocities[:, 1:]) - np.abs(velocities[:, :-1])) > 1e-9,
                      axis=(1, 2, 3))
    assert collided.sum() > 50


def test_head_on_collision_exchanges_normal_velocities():
    start = np.array([[[20.0, 15.0], [20.0, 21.0]]])  # same row: the line of centres is x
    velocity = np.array([[[0.25, 1.0], [0.25, -0.5]]])
    positions, velocities = data.simulate_balls(start, velocity, 2.0, 40, 40, num_frames=4)
    # Along x the balls swap velocities; the shared y velocity is untouched.
    np.testing.assert_allclose(velocities[0, -1], [[0.25, -0.5], [0.25, 1.0]], atol=1e-12)
    np.testing.assert_allclose(velocities[0, 0], velocity[0])
    # 6 pixels apart closing at 1.5 per frame, they touch (4 apart) after 4/3 frames; the
    # contact is found at the first substep (of 4 per frame) that overlaps, 1.5 frames in.
    np.testing.assert_allclose(
        positions[0, :, :, 1], [[15, 21], [16, 20.5], [16.25, 20.75], [15.75, 21.75]]
    )


def test_overlapping_balls_that_separate_do_not_collide():
    start = np.array([[[20.0, 18.0], [20.0, 21.0]]])  # 3 apart, radius 2: overlapping
    velocity = np.array([[[0.0, -1.0], [0.0, 1.0]]])  # but moving apart
    positions, velocities = data.simulate_balls(start, velocity, 2.0, 40, 40, num_frames=3)
    np.testing.assert_allclose(velocities[0, -1], velocity[0])
    np.testing.assert_allclose(positions[0, -1, :, 1], [16.0, 23.0])


def test_ball_bounces_off_the_wall():
    # The centre stays in [radius, 40 - radius] = [2, 38]: the free path 38.5 is mirrored to
    # 37.5 and 1.5 to 2.5, and the velocity's component normal to the wall is reversed.
    start = np.array([[[2.5, 37.5]]])
    positions, velocities = data.simulate_balls(start, np.array([[[-1.0, 1.0]]]), 2.0, 40, 40, 4)
    np.testing.assert_allclose(positions[0, :, 0], [[2.5, 37.5], [2.5, 37.5], [3.5, 36.5],
                                                   [4.5, 35.5]])
    np.testing.assert_allclose(velocities[0, :, 0], [[-1, 1], [1, -1], [1, -1], [1, -1]])


def test_one_ball_works():
    videos = data.make_videos("bouncing_balls", 3, seed=0, num_balls=1, **SMALL)
    assert videos.shape == (3, 8, 32, 32, 1)
    assert videos.max() == 255


def test_digit_labels_name_the_drawn_digits():
    digits = load_digits()
    # At digit_size=8 the bilinear upscaling is the identity, so the drawn patch is the
    # original image; index every original by its inked bounding box.
    classes_of = {}
    for image, target in zip(digits.images, digits.target):
        pixels = np.rint(image / 16.0 * 255).astype(np.uint8)
        rows, cols = np.nonzero(pixels)
        crop = pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        classes_of.setdefault((crop.shape, crop.tobytes()), set()).add(int(target))
    videos, labels = data.make_videos("moving_digits", 12, num_frames=2, height=24, width=24,
                                      seed=5, with_labels=True, num_digits=1, digit_size=8)
    assert labels.dtype == np.int32 and labels.shape == (12,)
    assert len(set(labels.tolist())) > 3
    for frame, label in zip(videos[:, 0, :, :, 0], labels):
        rows, cols = np.nonzero(frame)
        crop = frame[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert label in classes_of[(crop.shape, crop.tobytes())]


def test_every_digit_of_a_labelled_video_is_of_its_class(monkeypatch):
    from vidgen_tf.data import synthetic

    pasted = []  # the (N, s, s) digit patches, one array per digit slot
    real_paste = synthetic._paste_max

    def recording_paste(canvas, patches, rows, cols):
        pasted.append(patches)
        real_paste(canvas, patches, rows, cols)

    monkeypatch.setattr(synthetic, "_paste_max", recording_paste)
    _, labels = data.make_videos("moving_digits", 30, seed=6, with_labels=True, num_digits=3,
                                 digit_size=8, **SMALL)
    assert len(pasted) == 3
    digits = load_digits()
    originals = (digits.images / 16.0).reshape(len(digits.images), -1)
    for patches in pasted:
        # At digit_size=8 a patch is an original image: find which one and its class.
        distance = np.abs(patches.reshape(30, 1, -1) - originals[None]).max(axis=-1)
        assert np.all(distance.min(axis=1) < 1e-6)
        matched_classes = digits.target[distance.argmin(axis=1)]
        np.testing.assert_array_equal(matched_classes, labels)


def test_shape_labels_match_the_drawn_area():
    videos, labels = data.make_videos("moving_shapes", 24, num_frames=2, height=32, width=32,
                                      seed=7, with_labels=True, num_shapes=1, shape_size=12)
    assert labels.dtype == np.int32 and set(labels.tolist()) == {0, 1, 2}
    frames = videos[:, 0, :, :, 0].astype(np.float64)
    area = frames.sum(axis=(1, 2)) / frames.max(axis=(1, 2))  # coverage in pixels
    expected = np.array([144.0, np.pi * 36, 72.0])  # square, circle, triangle of side 12
    predicted = np.argmin(np.abs(area[:, None] - expected), axis=1)
    np.testing.assert_array_equal(predicted, labels)


def test_moving_square_label_is_its_direction():
    videos, labels = data.make_videos("moving_square", 40, num_frames=2, height=32, width=32,
                                      seed=8, with_labels=True, speed=2)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    directions = np.array([(1, 1), (1, -1), (-1, -1), (-1, 1)])
    checked = 0
    for video, label in zip(videos[..., 0], labels):
        rows, cols = np.nonzero(video[0])
        if min(rows.min(), cols.min()) < 2 or max(rows.max(), cols.max()) > 29:
            continue  # may bounce on the first step
        moved_rows, moved_cols = np.nonzero(video[1])
        step = (moved_rows.min() - rows.min(), moved_cols.min() - cols.min())
        np.testing.assert_array_equal(step, 2 * directions[label])
        checked += 1
    assert checked > 20
    _, labels = data.make_videos("moving_square", 20, seed=8, with_labels=True,
                                 num_directions=2, **SMALL)
    assert set(labels.tolist()) == {0, 1}
    assert data.num_classes("moving_square", num_directions=2) == 2


def test_num_classes():
    assert data.num_classes("moving_digits") == 10
    assert data.num_classes("moving_shapes") == 3
    assert data.num_classes("bouncing_balls") is None


def test_num_classes_of_an_npz_file_reads_it_through_the_validated_reader(tmp_path):
    assert data.num_classes("npz", path=_save(tmp_path, videos=_clips(), labels=np.array([0, 3, 1, 1, 2]))) == 4
    assert data.num_classes("npz", path=_save(tmp_path, "plain.npz", videos=_clips())) is None
    array = tmp_path / "array.npy"
    np.save(array, _clips())
    with pytest.raises(ValueError, match=f"'{array}': is a single .npy array"):
        data.num_classes("npz", path=str(array))
    with pytest.raises(ValueError, match="'labels' is empty"):
        data.num_classes("npz", path=_save(tmp_path, "empty.npz", videos=_clips(), labels=np.zeros(0, int)))
    with pytest.raises(ValueError, match="'labels' must be >= 0, got -2"):
        data.num_classes("npz", path=_save(tmp_path, "neg.npz", videos=_clips(), labels=np.array([0, -2, 1, 1, 0])))
    with pytest.raises(ValueError, match="'labels' must be integers"):
        data.num_classes("npz", path=_save(tmp_path, "float.npz", videos=_clips(), labels=np.zeros(5)))
    with pytest.raises(ValueError, match="needs `path=`"):
        data.num_classes("npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.num_classes("npz", path=str(tmp_path / "nope.npz"))


def _python_calls(function):
    """The number of Python function calls `function()` makes."""
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(1)

    sys.setprofile(profile)
    try:
        function()
    finally:
        sys.setprofile(None)
    return len(calls)


@pytest.mark.parametrize("name, options", [("moving_digits", dict(num_digits=2)), ("bouncing_balls", dict(num_balls=1)),
                                           ("moving_shapes", dict(num_shapes=2)), ("moving_square", {})])
def test_generation_is_vectorised_over_videos(name, options):
    # Generation is fast because no Python code runs per video: 128 videos make as
    # many Python calls as 16 (loops run over frames and objects only).
    def make(num):
        return lambda: data.make_videos(name, num, seed=0, **SMALL, **options)

    make(2)()  # warm caches (the digit bank)
    assert _python_calls(make(128)) == _python_calls(make(16))


# ----------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_the_closest_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'moving_digits'") as info:
        data.load("moving_digit")
    assert "bouncing_balls" in str(info.value) and "npz" in str(info.value)
    with pytest.raises(UnknownNameError, match="Unknown dataset 'mnist'"):
        data.make_videos("mnist", 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_frames=0), "`num_frames` must be >= 1, got 0"),
        (dict(height=0), "`height` must be >= 1"),
        (dict(batch_size=0), "`batch_size` must be >= 1, got 0"),
        (dict(channels=2), "`channels` must be 1 or 3 for dataset 'moving_shapes', got 2"),
        (dict(seed=-1), "`seed` must be >= 0"),
        (dict(num_frames=2.5), "`num_frames` must be an integer"),
        (dict(chunk_size=0), "`chunk_size` must be >= 1"),
        (dict(path="x.npz"), "`path` is used by datasets that read files"),
        (dict(shape_size=99), "`shape_size` must be in \\[2, 64\\], got 99"),
        (dict(num_shapes=0), "`num_shapes` must be >= 1, got 0"),
        (dict(speed=(3, 1)), "`speed` must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load("moving_shapes", **kwargs)


def test_bad_options_and_labels():
    with pytest.raises(TypeError, match="Unknown option\\(s\\) \\['num_digit'\\].*num_digits"):
        data.make_videos("moving_digits", 2, num_digit=2)
    with pytest.raises(ValueError, match="'bouncing_balls' has no classes"):
        data.load("bouncing_balls", with_labels=True)
    with pytest.raises(ValueError, match="`num_videos` must be >= 1, got 0"):
        data.make_videos("moving_square", 0)
    with pytest.raises(ValueError, match="`num_videos`=3 is smaller than `batch_size`=4"):
        data.load("moving_square", num_videos=3, batch_size=4)
    with pytest.raises(ValueError, match="do not fit"):
        data.make_videos("bouncing_balls", 2, num_balls=30, **SMALL)
    with pytest.raises(ValueError, match="`radius` must be"):
        data.make_videos("bouncing_balls", 2, radius=16, **SMALL)
    with pytest.raises(ValueError, match="`num_directions` must be 1, 2 or 4, got 3"):
        data.make_videos("moving_square", 2, num_directions=3, **SMALL)


# ----------------------------------------------------------------------------- npz


def _save(tmp_path, name="clips.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def _clips(n=5, t=8, h=16, w=16, c=1, dtype=np.uint8):
    return np.random.default_rng(0).integers(0, 256, size=(n, t, h, w, c)).astype(dtype)


NPZ = dict(num_frames=8, height=16, width=16, channels=1)


def test_npz_round_trip_with_windows(tmp_path):
    videos = _clips(t=12)
    labels = np.arange(5) % 2
    path = _save(tmp_path, videos=videos, labels=labels)
    got, got_labels = data.make_videos("npz", None, path=path, with_labels=True, seed=1, **NPZ)
    assert got.shape == (5, 8, 16, 16, 1) and got.dtype == np.uint8
    np.testing.assert_array_equal(got_labels, labels)
    starts = set()
    for clip, original in zip(got, videos):
        found = [s for s in range(5) if np.array_equal(original[s:s + 8], clip)]
        assert found, "each clip is 8 consecutive frames of its original"
        starts.update(found)
    assert len(starts) > 1, "windows start at random frames"
    first_two = data.make_videos("npz", 2, path=path, seed=1, **NPZ)
    np.testing.assert_array_equal(first_two, got[:2])


def test_npz_load_converts_to_minus_one_one(tmp_path):
    videos = _clips()
    path = _save(tmp_path, videos=videos)
    dataset = data.load("npz", path=path, num_videos=4, batch_size=2, **NPZ)
    batch = next(iter(dataset)).numpy()
    np.testing.assert_allclose(batch, videos[:2] / 127.5 - 1.0, atol=1e-6)
    endless = data.load("npz", path=path, batch_size=3, chunk_size=4, **NPZ)
    batch = next(iter(endless)).numpy()
    assert batch.shape == (3, 8, 16, 16, 1)
    # Every clip of the stream is one of the file's clips.
    for clip in batch:
        assert any(np.allclose(clip, v / 127.5 - 1.0, atol=1e-6) for v in videos)


@pytest.mark.parametrize(
    "arrays, kwargs, message",
    [
        (dict(frames=_clips()), {}, "has no 'videos' array \\(found keys: \\['frames'\\]\\)"),
        (dict(videos=_clips()[0]), {}, "'videos' must have rank 5 .* got shape \\(8, 16, 16, 1\\)"),
        (dict(videos=_clips(dtype=np.float32)), {}, "'videos' must have dtype uint8, got float32"),
        (dict(videos=_clips(n=0)), {}, "'videos' is empty"),
        (dict(videos=_clips(), labels=np.arange(4)), {}, "'labels' must have shape \\(5,\\)"),
        (dict(videos=_clips(), labels=np.zeros((5, 1), int)), {},
         "'labels' must have shape \\(5,\\).*got shape \\(5, 1\\)"),
        (dict(videos=_clips(), labels=np.zeros(5)), {},
         "'labels' must be integers, got dtype float64"),
        (dict(videos=_clips(), labels=-np.ones(5, int)), {}, "'labels' must be >= 0"),
        (dict(videos=_clips()), dict(with_labels=True), "has no 'labels' array"),
        (dict(videos=_clips()), dict(height=32), "frames are 16x16 .* height=32, width=16"),
        (dict(videos=_clips()), dict(channels=3), "videos have 1 channels, but channels=3"),
        (dict(videos=_clips()), dict(num_frames=9),
         "videos have 8 frames, fewer than num_frames=9"),
        (dict(videos=_clips()), dict(num_videos=6), "`num_videos`=6 .* holds only 5 videos"),
    ],
)
def test_npz_bad_files_are_named(tmp_path, arrays, kwargs, message):
    path = _save(tmp_path, **arrays)
    request = {**NPZ, "num_videos": 2, "batch_size": 1, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        data.load("npz", path=path, **request)
    if "num_videos" not in kwargs:
        assert path in str(info.value)


def test_npz_missing_or_not_npz(tmp_path):
    missing = str(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match=f"'{missing}' does not exist"):
        data.load("npz", path=missing, **NPZ)
    text = tmp_path / "notes.npz"
    text.write_text("hello, not an archive")
    with pytest.raises(ValueError, match=f"'{text}': not an .npz archive"):
        data.load("npz", path=str(text), **NPZ)
    array = tmp_path / "array.npy"
    np.save(array, _clips())
    with pytest.raises(ValueError, match=f"'{array}': is a single .npy array"):
        data.make_videos("npz", 2, path=str(array), **NPZ)
    with pytest.raises(ValueError, match="needs `path=`"):
        data.load("npz", **NPZ)
    with pytest.raises(TypeError, match="'npz' takes no options"):
        data.load("npz", path=missing, num_digits=2, **NPZ)


# ----------------------------------------------------------------------------- tf.data


def test_endless_stream_is_static_lazy_and_addressable_by_chunk():
    dataset = data.load("moving_digits", batch_size=5, seed=3, chunk_size=4, **SMALL)
    assert dataset.element_spec.shape == (5, 8, 32, 32, 1)
    assert dataset.element_spec.dtype == tf.float32
    assert dataset.cardinality() == tf.data.INFINITE_CARDINALITY
    batches = [b.numpy() for b in dataset.take(3)]  # 15 videos: chunks 0-3
    stream = np.concatenate(batches)
    expected = np.concatenate(
        [data.make_videos("moving_digits", 4, seed=[3, k], **SMALL) for k in range(4)]
    )[:15]
    np.testing.assert_allclose(stream, expected / 127.5 - 1.0, atol=1e-6)
    assert stream.min() == -1.0 and stream.max() == 1.0
    # The stream does not depend on the batch size.
    other = data.load("moving_digits", batch_size=3, seed=3, chunk_size=4, **SMALL)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in other.take(5)]), stream)


def test_endless_stream_with_labels():
    dataset = data.load("moving_shapes", batch_size=4, seed=1, with_labels=True, chunk_size=6,
                        channels=3, **SMALL)
    videos_spec, labels_spec = dataset.element_spec
    assert videos_spec.shape == (4, 8, 32, 32, 3)
    assert labels_spec.shape == (4,) and labels_spec.dtype == tf.int32
    videos, labels = next(iter(dataset))
    _, expected = data.make_videos("moving_shapes", 6, seed=[1, 0], with_labels=True,
                                   channels=3, **SMALL)
    np.testing.assert_array_equal(labels.numpy(), expected[:4])


def test_finite_dataset_batches_and_remainder():
    dataset = data.load("moving_square", num_videos=10, batch_size=4, seed=2, **SMALL)
    assert dataset.element_spec.shape == (4, 8, 32, 32, 1)
    batches = [b.numpy() for b in dataset]
    assert len(batches) == 2  # the last 2 videos are dropped
    expected = data.make_videos("moving_square", 10, seed=2, **SMALL)
    np.testing.assert_allclose(np.concatenate(batches), expected[:8] / 127.5 - 1.0, atol=1e-6)

    keep = data.load("moving_square", num_videos=10, batch_size=4, seed=2,
                     drop_remainder=False, with_labels=True, **SMALL)
    assert keep.element_spec[0].shape.as_list() == [None, 8, 32, 32, 1]
    sizes = [labels.shape[0] for _, labels in keep]
    assert sizes == [4, 4, 2]


def test_finite_dataset_shuffle_is_seeded():
    def videos(**kwargs):
        dataset = data.load("moving_square", num_videos=8, batch_size=8, seed=4, **SMALL,
                            **kwargs)
        return next(iter(dataset)).numpy()

    plain, shuffled = videos(), videos(shuffle=True)
    np.testing.assert_array_equal(shuffled, videos(shuffle=True))
    assert np.any(plain != shuffled)
    order = [int(np.argmin([np.abs(p - s).sum() for p in plain])) for s in shuffled]
    assert sorted(order) == list(range(8))  # a permutation of the same videos


def test_batches_split_across_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dataset = data.load("bouncing_balls", batch_size=4, seed=0, num_balls=1, chunk_size=4, **SMALL)
    batch = next(iter(dataset)).numpy()
    per_replica = next(iter(strategy.experimental_distribute_dataset(dataset)))
    parts = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    assert [p.shape for p in parts] == [(2, 8, 32, 32, 1)] * 2
    np.testing.assert_array_equal(np.concatenate(parts), batch)


# ----------------------------------------------------------------------------- resuming at a batch


def _batches(dataset, count):
    return [tuple(np.asarray(t) for t in b) if isinstance(b, tuple) else (b.numpy(),)
            for b in dataset.take(count)]


def _assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for batch, wanted in zip(got, expected):
        for part, wanted_part in zip(batch, wanted):
            np.testing.assert_array_equal(part, wanted_part)


@pytest.mark.parametrize("start_batch, batch_size, chunk_size", [(0, 3, 4), (1, 3, 4), (3, 3, 4), (5, 4, 4),
                                                                 (2, 5, 3)])
def test_start_batch_yields_the_batches_skip_would(start_batch, batch_size, chunk_size):
    common = dict(batch_size=batch_size, seed=5, chunk_size=chunk_size, with_labels=True, num_shapes=1, **SMALL)
    skipped = data.load("moving_shapes", **common).skip(start_batch)
    started = data.load("moving_shapes", start_batch=start_batch, **common)
    assert started.element_spec == skipped.element_spec
    _assert_same_batches(_batches(started, 3), _batches(skipped, 3))


def test_start_batch_of_npz_and_finite_datasets_equals_skip(tmp_path):
    path = _save(tmp_path, videos=_clips(n=7, t=10), labels=np.arange(7) % 3)
    npz = dict(path=path, batch_size=2, seed=1, with_labels=True, **NPZ)
    for extra in (dict(chunk_size=3), dict(num_videos=None, chunk_size=5)):
        _assert_same_batches(_batches(data.load("npz", start_batch=4, **npz, **extra), 3),
                             _batches(data.load("npz", **npz, **extra).skip(4), 3))
    for extra in (dict(num_videos=7, drop_remainder=False), dict(num_videos=7, shuffle=True)):
        started = list(_batches(data.load("npz", start_batch=2, **npz, **extra), 10))
        _assert_same_batches(started, _batches(data.load("npz", **npz, **extra).skip(2), 10))
        assert len(started) == (2 if extra.get("drop_remainder") is False else 1)
    finite = dict(num_videos=9, batch_size=2, seed=2, **SMALL)
    _assert_same_batches(_batches(data.load("moving_square", start_batch=3, **finite), 10),
                         _batches(data.load("moving_square", **finite).skip(3), 10))
    # Past the end, as with skip: nothing.
    assert _batches(data.load("moving_square", start_batch=9, **finite), 10) == []


def test_start_batch_never_generates_the_skipped_chunks(monkeypatch):
    requested = []
    chunked_stream = data.registry.chunked_stream

    def recording_stream(chunk, *args, **kwargs):
        def recorded(index):
            requested.append(int(index))
            return chunk(index)

        return chunked_stream(recorded, *args, **kwargs)

    monkeypatch.setattr(data.registry, "chunked_stream", recording_stream)
    # Batch 7 of 4 videos starts at video 28, the fifth video of chunk 4 (chunks of 6).
    dataset = data.load("moving_square", start_batch=7, batch_size=4, seed=0, chunk_size=6, **SMALL)
    first = next(iter(dataset)).numpy()
    assert requested and min(requested) == 4, requested  # chunks 0-3 were never made
    chunks = np.concatenate([data.make_videos("moving_square", 6, seed=[0, k], **SMALL) for k in (4, 5)])
    np.testing.assert_allclose(first, chunks[4:8] / 127.5 - 1.0, atol=1e-6)


def test_start_batch_is_validated():
    with pytest.raises(ValueError, match="`start_batch` must be >= 0, got -1"):
        data.load("moving_square", start_batch=-1, **SMALL)
    with pytest.raises(ValueError, match="`start_batch` must be an integer"):
        data.load("moving_square", start_batch=1.5, **SMALL)


def test_labels_beyond_the_model_s_classes_are_refused_when_the_data_are_loaded(tmp_path):
    import re

    path = _save(tmp_path, videos=_clips(), labels=np.array([0, 3, 1, 4, 2]))
    with pytest.raises(ValueError) as raised:
        data.load("npz", path=path, with_labels=True, num_classes=3, batch_size=2, **NPZ)
    message = str(raised.value)
    assert path in message and "num_classes=3" in message
    assert "label 3 (video 1)" in message and "label 4 (video 3)" in message and "2 of its 5 videos" in message
    for num_classes in (5, 6):  # labels 0..4 fit
        batch = next(iter(data.load("npz", path=path, with_labels=True, num_classes=num_classes, batch_size=2, **NPZ)))
        assert batch[1].shape == (2,)
    with pytest.raises(ValueError, match=re.escape("'moving_digits' has labels 0 to 9 (its 10 classes)") + ".*"
                                         + re.escape("num_classes=4 (labels 0 to 3)")):
        data.load("moving_digits", with_labels=True, num_classes=4, num_frames=4, height=16, width=16)
    with pytest.raises(ValueError, match="`num_classes` must be"):
        data.load("moving_digits", with_labels=True, num_classes=0, num_frames=4, height=16, width=16)


def test_a_shuffled_finite_npz_draws_its_clips_from_the_whole_file(tmp_path):
    # A file sorted by class: 20 videos of class 0, then 20 of class 1, ... (each video's pixels = its class).
    labels = np.repeat(np.arange(5), 20)
    videos = np.broadcast_to(labels[:, None, None, None, None] * 40, (100, 8, 16, 16, 1)).astype(np.uint8)
    path = _save(tmp_path, videos=videos, labels=labels)

    def drawn(seed, **kwargs):
        dataset = data.load("npz", path=path, num_videos=20, batch_size=20, seed=seed, with_labels=True, **NPZ,
                            **kwargs)
        return next(iter(dataset))[1].numpy()

    assert set(drawn(0)) == {0}  # unshuffled: the first 20, one class
    seeded = drawn(0, shuffle=True)
    assert len(set(seeded)) >= 4  # drawn from the whole file
    np.testing.assert_array_equal(seeded, drawn(0, shuffle=True))
    assert np.any(seeded != drawn(1, shuffle=True))
