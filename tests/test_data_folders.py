"""Tests of the video_folder and frame_folder datasets and of the `vidgen data check` command."""

import json
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import video_files
from vidgen_tf import cli, data
from vidgen_tf.data import decode, folders, index

SMALL = dict(num_frames=4, height=16, width=16)


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", index.DamagedFileWarning)
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """Three class folders of several containers, rates and sizes, and three damaged files."""
    root = tmp_path_factory.mktemp("classes")
    video_files.write_video(root / "b_walk" / "v1.mp4", fps=25)
    video_files.write_video(root / "b_walk" / "v2.webm", fps=30, height=37, width=53)
    video_files.write_video(root / "a_run" / "v3.avi", fps=10)
    video_files.write_video(root / "a_run" / "deeper" / "v4.mkv", fps=25)
    video_files.write_video(root / "c_jump" / "v5.gif", fps=10, num_frames=20)
    video_files.write_video(root / "c_jump" / "short.mov", num_frames=5)
    (root / "c_jump" / "empty.mp4").write_bytes(b"")
    (root / "a_run" / "notes.mp4").write_text("a text file named .mp4")
    return root


def records(root, **options):
    source = data.get_source(options.pop("name", "video_folder"))
    request = data._request(source.name, options.pop("num_frames", 4), options.pop("height", 16),
                            options.pop("width", 16), options.pop("channels", 1), options.pop("seed", 0),
                            options.pop("with_labels", False), str(root), options)[1]
    return quiet(lambda: list(source.clip_records(request)))


def test_the_folder_datasets_are_registered_and_described():
    assert {"video_folder", "frame_folder"} <= set(data.list_datasets())
    assert "first-level subfolders" in data.describe_datasets()["video_folder"]


def test_classes_are_the_first_level_folders_sorted_and_counted(classes):
    assert quiet(data.class_names, "video_folder", path=str(classes)) == ["a_run", "b_walk", "c_jump"]
    assert quiet(data.num_classes, "video_folder", path=str(classes)) == 3
    got = {record.source: record.label for record in records(classes)}
    assert got == {"a_run/deeper/v4.mkv": 0, "a_run/v3.avi": 0, "b_walk/v1.mp4": 1, "b_walk/v2.webm": 1,
                   "c_jump/short.mov": 2, "c_jump/v5.gif": 2}
    description = quiet(data.describe, "video_folder", path=str(classes), num_frames=8, frame_step=1)
    assert description == (f"video_folder {classes}: 8 files (3 classes), 6 usable, 2 skipped "
                           "(a_run/notes.mp4: not a video FFmpeg can read, or truncated before its index (Invalid "
                           "data found when processing input); c_jump/empty.mp4: empty file (0 bytes)); "
                           "1 too short for a clip of 8 frames, skipped (c_jump/short.mov); 5 clips per epoch")


def test_load_keeps_its_contract(classes):
    dataset = quiet(data.load, "video_folder", path=str(classes), batch_size=3, with_labels=True, channels=3,
                    seed=1, **SMALL)
    for videos, labels in dataset.take(3):
        assert videos.shape == (3, 4, 16, 16, 3) and videos.dtype == tf.float32
        assert labels.shape == (3,) and labels.dtype == tf.int32
        assert -1.0 <= float(tf.reduce_min(videos)) and float(tf.reduce_max(videos)) <= 1.0
        assert set(labels.numpy()) <= {0, 1, 2}
    assert dataset.cardinality() == tf.data.INFINITE_CARDINALITY


def test_same_seed_same_clips_other_seed_other_starts(classes):
    def batches(seed):
        dataset = quiet(data.load, "video_folder", path=str(classes), batch_size=4, seed=seed, **SMALL)
        return np.concatenate([b.numpy() for b in dataset.take(3)])

    np.testing.assert_array_equal(batches(5), batches(5))
    assert np.any(batches(5) != batches(6))
    assert [r.start for r in records(classes, seed=5)] != [r.start for r in records(classes, seed=6)]
    assert [r.start for r in records(classes, seed=5)] == [r.start for r in records(classes, seed=5)]


def test_clips_hold_consecutive_or_stepped_source_frames(classes):
    for record in records(classes, frame_step=3):
        assert record.frame_indices == tuple(record.start + 3 * k for k in range(4))
        np.testing.assert_array_equal(video_files.levels_of(record.clip), record.frame_indices)


def test_fps_resamples_by_timestamps(classes):
    got = {r.source: r for r in records(classes, fps=5, num_frames=3)}
    # 25 fps read at 5 fps: every 5th frame; 10 fps: every 2nd; 30 fps: every 6th.
    for name, step in (("b_walk/v1.mp4", 5), ("a_run/v3.avi", 2), ("b_walk/v2.webm", 6)):
        indices = np.array(got[name].frame_indices)
        assert np.all(np.diff(indices) == step), (name, indices)
        np.testing.assert_array_equal(video_files.levels_of(got[name].clip), indices)
    # 10 fps read at 25 fps repeats frames: frame k is the one nearest to k / 25 s.
    slow = {r.source: r for r in records(classes, fps=25, num_frames=5)}["a_run/v3.avi"]
    offsets = np.array(slow.frame_indices) - slow.frame_indices[0]
    assert len(set(slow.frame_indices)) < 5 and offsets.max() <= 2


def test_all_clips_per_video_and_epochs(classes):
    every = records(classes, clips_per_video="all", num_frames=5)
    # 24-frame files give 4 clips of 5, the 20-frame GIF 4, the 5-frame file 1.
    per_file = {}
    for r in every:
        per_file.setdefault(r.source, []).append(r.start)
    assert {k: len(v) for k, v in per_file.items()} == {"a_run/deeper/v4.mkv": 4, "a_run/v3.avi": 4,
                                                       "b_walk/v1.mp4": 4, "b_walk/v2.webm": 4,
                                                       "c_jump/short.mov": 1, "c_jump/v5.gif": 4}
    assert all(np.all(np.diff(starts) == 5) for starts in per_file.values())
    one_pass = quiet(data.load, "video_folder", path=str(classes), batch_size=7, drop_remainder=False,
                     clips_per_video="all", epochs=2, **{**SMALL, "num_frames": 5})
    assert sum(len(b) for b in one_pass) == 2 * 21


def test_short_videos_are_skipped_or_looped(classes):
    assert "c_jump/short.mov" not in {r.source for r in records(classes, num_frames=6)}
    looped = {r.source: r for r in records(classes, num_frames=8, short="loop")}["c_jump/short.mov"]
    assert looped.frame_indices == (0, 1, 2, 3, 4, 0, 1, 2)
    np.testing.assert_array_equal(video_files.levels_of(looped.clip), looped.frame_indices)


def test_resize_modes_on_an_odd_sized_video(tmp_path):
    frames = np.full((6, 37, 53, 3), 200, np.uint8)
    video_files.write_video(tmp_path / "odd.avi", frames=frames)
    (pad,) = records(tmp_path, resize="pad", num_frames=6)
    (crop,) = records(tmp_path, resize="crop", num_frames=6)
    (stretch,) = records(tmp_path, resize="stretch", num_frames=6)
    for record in (pad, crop, stretch):
        assert record.clip.shape == (6, 16, 16, 1)
    # 37x53 -> 11x16 centred: 2 black rows above, 3 below; crop and stretch fill the frame.
    rows = pad.clip[0, :, 8, 0]
    assert np.all(rows[:2] == 0) and np.all(rows[13:] == 0) and np.all(np.abs(rows[2:13].astype(int) - 200) <= 3)
    assert crop.clip.min() >= 190 and stretch.clip.min() >= 190


def test_grey_is_the_bt601_luma(tmp_path):
    colour = np.broadcast_to(np.array([200, 100, 50], np.uint8), (4, 32, 40, 3)).copy()
    video_files.write_video(tmp_path / "v" / "c.avi", frames=colour)
    os.makedirs(tmp_path / "f")
    for i in range(4):
        Image.fromarray(colour[i]).save(tmp_path / "f" / f"{i}.png")
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # 124.2
    (video,) = records(tmp_path / "v", channels=1)
    (frames,) = records(tmp_path / "f", channels=1, name="frame_folder")
    assert abs(float(video.clip.mean()) - luma) <= 3
    assert np.all(frames.clip == 124)
    (rgb,) = records(tmp_path / "f", channels=3, name="frame_folder")
    np.testing.assert_array_equal(rgb.clip[0, 0, 0], [200, 100, 50])


def test_start_batch_equals_skip(classes):
    def load(**kwargs):
        return quiet(data.load, "video_folder", path=str(classes), batch_size=2, seed=3, **SMALL, **kwargs)

    skipped = np.concatenate([b.numpy() for b in load().skip(4).take(3)])
    resumed = np.concatenate([b.numpy() for b in load(start_batch=4).take(3)])
    np.testing.assert_array_equal(skipped, resumed)


def test_resume_does_not_decode_the_skipped_clips(classes, monkeypatch):
    calls = []
    real = decode.read_video_frames
    monkeypatch.setattr(decode, "read_video_frames", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    dataset = quiet(data.load, "video_folder", path=str(classes), batch_size=2, start_batch=50,
                    num_parallel_calls=1, **SMALL)
    next(iter(dataset))
    assert 2 <= len(calls) <= 12  # the batch and the prefetched ones, not the 100 clips before


def test_the_endless_stream_is_shuffled_per_epoch_a_finite_one_only_when_asked(classes):
    order = [r.clip for r in records(classes)]

    def clips(**kwargs):
        dataset = quiet(data.load, "video_folder", path=str(classes), batch_size=1, seed=0, channels=1, **SMALL,
                        **kwargs)
        return [np.rint((b.numpy()[0] + 1) * 127.5) for b in dataset.take(5)]

    finite = clips(num_videos=5)
    assert all(np.array_equal(a, b) for a, b in zip(finite, order))  # index order
    assert not all(np.array_equal(a, b) for a, b in zip(clips(), order))
    assert not all(np.array_equal(a, b) for a, b in zip(clips(num_videos=5, shuffle=True), order))


def test_with_labels_refuses_files_outside_a_class_folder(tmp_path):
    video_files.write_video(tmp_path / "cls" / "a.avi", num_frames=8)
    video_files.write_video(tmp_path / "loose.avi", num_frames=8)
    with pytest.raises(ValueError, match="outside any class folder: loose.avi"):
        quiet(data.load, "video_folder", path=str(tmp_path), with_labels=True, **SMALL)
    assert len(records(tmp_path)) == 2  # without labels both are read


def test_a_split_file_selects_the_files_in_ucf101_format(classes, tmp_path):
    split = tmp_path / "trainlist01.txt"
    split.write_text("b_walk/v1.mp4 2\nc_jump/v5.gif 3\n\n")
    got = records(classes, split=str(split))
    assert [(r.source, r.label) for r in got] == [("b_walk/v1.mp4", 1), ("c_jump/v5.gif", 2)]
    split.write_text("b_walk/missing.mp4\n")
    with pytest.raises(ValueError, match="not found among the videos.*b_walk/missing.mp4"):
        records(classes, split=str(split))


@pytest.mark.parametrize("bad, named", [
    (dict(frame_step=0), "frame_step"), (dict(clips_per_video=3), "clips_per_video"), (dict(epochs=0), "epochs"),
    (dict(resize="zoom"), "resize"), (dict(num_parallel_calls="many"), "num_parallel_calls"),
    (dict(colour=1), "colour"), (dict(split=3), "split"),
])
def test_bad_options_are_named(classes, bad, named):
    with pytest.raises((ValueError, TypeError), match=named):
        quiet(data.load, "video_folder", path=str(classes), **SMALL, **bad)


def test_missing_folders_and_remote_urls_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load("video_folder", path=str(tmp_path / "nowhere"), **SMALL)
    with pytest.raises(ValueError, match="vidgen data pack"):
        data.load("video_folder", path="gs://bucket/videos", **SMALL)
    with pytest.raises(ValueError, match="no video files"):
        data.load("video_folder", path=str(tmp_path), **SMALL)


def test_a_file_failing_mid_decode_is_dropped_warned_once_and_counted(tmp_path):
    for name in ("a", "b"):
        video_files.write_frames(tmp_path / name, num_frames=12)
    (tmp_path / "b" / "frame_7.png").write_bytes(b"broken")  # only the first image is checked by the index
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = data.load("frame_folder", path=str(tmp_path), batch_size=1, num_videos=40, shuffle=False,
                            drop_remainder=False, num_frames=12, height=8, width=8)
        got = [b.numpy() for b in dataset]
    failures = [str(w.message) for w in caught if issubclass(w.category, folders.DecodeFailureWarning)]
    assert len(failures) == 1 and "b" in failures[0] and "frame_7.png" in failures[0]
    assert len(got) == 20  # every clip of b (one per epoch) dropped
    assert folders.decode_failures(tmp_path) == {"b": 20}


def test_frame_folders_unpadded_numbers_labels_and_source_fps(tmp_path):
    video_files.write_frames(tmp_path / "cls_a" / "clip1", num_frames=12)
    video_files.write_frames(tmp_path / "cls_b" / "clip2", num_frames=12, name="img{}.png", start=0)
    got = {r.source: r for r in records(tmp_path, name="frame_folder", frame_step=2, num_frames=3)}
    assert set(got) == {"cls_a/clip1", "cls_b/clip2"}
    assert got["cls_a/clip1"].label == 0 and got["cls_b/clip2"].label == 1
    for record in got.values():  # frame_10.png comes after frame_9.png
        np.testing.assert_array_equal(video_files.levels_of(record.clip), record.frame_indices)
    # Folders at 12 fps read at 4 fps: every third image.
    slow = records(tmp_path, name="frame_folder", source_fps=12, fps=4, num_frames=3)
    assert all(np.all(np.diff(r.frame_indices) == 3) for r in slow)
    with pytest.raises(ValueError, match="source_fps"):
        records(tmp_path, name="frame_folder", source_fps=0)


def test_make_videos_gives_the_first_clips_of_epoch_zero(classes):
    videos, labels = quiet(data.make_videos, "video_folder", 3, path=str(classes), with_labels=True, channels=1,
                           **SMALL)
    first = records(classes)[:3]
    np.testing.assert_array_equal(videos, np.stack([r.clip for r in first]))
    np.testing.assert_array_equal(labels, [r.label for r in first])
    with pytest.raises(ValueError, match="epoch 0 holds only 6 clips"):
        quiet(data.make_videos, "video_folder", 7, path=str(classes), channels=1, **SMALL)


# ---------------------------------------------------------------------- the command line
def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_data_check_lists_every_file_and_the_summary(capsys, classes):
    code, out, _ = run(capsys, "data", "check", str(classes))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"video_folder {classes}")
    row = next(line for line in lines if line.startswith("b_walk/v2.webm"))
    assert row.split()[:6] == ["b_walk/v2.webm", "24", "37x53", "3", "30.00", "0.80"] and row.endswith("ok")
    assert any(line.startswith("c_jump/empty.mp4") and line.endswith("empty file (0 bytes)") for line in lines)
    assert lines[-2] == f"index of {classes}: 8 files, 6 usable, 2 skipped (1 empty, 1 not a video)"
    assert lines[-1] == "usable files: channels 3 (all 6); sizes 32x40 (5), 37x53 (1)"


def test_data_check_exit_codes_and_autodetected_frame_folders(capsys, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp4").write_bytes(b"")
    code, out, _ = run(capsys, "data", "check", str(tmp_path / "bad"))
    assert code == 1 and "0 usable, 1 skipped (1 empty)" in out
    code, _, err = run(capsys, "data", "check", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err
    video_files.write_frames(tmp_path / "frames" / "clip", num_frames=10)
    code, out, _ = run(capsys, "data", "check", str(tmp_path / "frames"), "--data-option", "source_fps=5")
    assert code == 0 and out.startswith("frame_folder")
    assert "clip" in out and " 10 " in out and "5.00" in out and "2.00" in out


def test_data_preview_of_a_video_folder(capsys, classes, tmp_path):
    code, out, err = run(capsys, "data", "preview", "video_folder", "--path", str(classes), "--num", "4",
                         "--num-frames", "4", "--height", "16", "--width", "16", "--out", str(tmp_path / "p.gif"))
    assert code == 0, err
    assert (tmp_path / "p.gif").is_file() and "4 videos of 4 frames" in out


TINY_SET = ["--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
            "--set", "discriminator_width=8"]


def test_train_mocogan_on_a_folder_prints_counts_and_names_the_skipped_files(capsys, classes, tmp_path):
    code, out, err = run(capsys, "train", "mocogan", "--data", "video_folder", "--path", str(classes),
                         "--num-frames", "4", "--height", "16", "--width", "16", "--channels", "3",
                         "--batch-size", "2", "--steps", "2", "--quiet", "--out", str(tmp_path / "run"), *TINY_SET)
    assert code == 0, err
    assert (f"video_folder {classes}: 8 files (3 classes), 6 usable, 2 skipped (a_run/notes.mp4: not a video"
            in out)
    assert "c_jump/empty.mp4: empty file (0 bytes)" in out and "6 clips per epoch" in out
    assert (tmp_path / "run" / "config.json").is_file()


def test_train_then_eval_a_likelihood_model_on_a_folder(capsys, classes, tmp_path):
    out = tmp_path / "hmm"
    code, text, err = run(capsys, "train", "hmm", "--data", "video_folder", "--path", str(classes),
                          "--data-option", "frame_step=2", "--num-frames", "4", "--height", "8", "--width", "8",
                          "--channels", "1", "--batch-size", "4", "--steps", "1", "--set", "num_states=2",
                          "--quiet", "--out", str(out))
    assert code == 0, err
    assert "6 usable, 2 skipped" in text
    code, text, err = run(capsys, "eval", str(out), "--path", str(classes), "--num-videos", "8",
                          "--batch-size", "4")
    assert code == 0, err
    assert "held-out: 8 videos of video_folder" in text and "bits/dim" in text


def test_images_directly_in_the_root_are_one_unlabelled_video(tmp_path):
    video_files.write_frames(tmp_path, num_frames=6)
    (record,) = records(tmp_path, name="frame_folder")
    assert (record.source, record.label) == (".", -1)
    with pytest.raises(ValueError, match="has no classes"):
        records(tmp_path, name="frame_folder", with_labels=True)
    with pytest.raises(ValueError, match="'cover.png' has no frame number"):
        (tmp_path / "cover.png").write_bytes((tmp_path / "frame_1.png").read_bytes())
        records(tmp_path, name="frame_folder")


def test_an_endless_stream_whose_every_clip_fails_stops_with_an_error(tmp_path):
    for name in ("a", "b"):
        video_files.write_frames(tmp_path / name, num_frames=6)
        (tmp_path / name / "frame_3.png").write_bytes(b"broken")
    dataset = quiet(data.load, "frame_folder", path=str(tmp_path), batch_size=1, num_frames=6, height=8, width=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", folders.DecodeFailureWarning)
        with pytest.raises(tf.errors.OpError, match="every clip of epoch 0 failed to decode"):
            next(iter(dataset))


@pytest.mark.parametrize("name", ["video_folder", "frame_folder"])
def test_a_packed_folder_reads_back_as_the_clips_of_the_folder(classes, tmp_path, capsys, name):
    """`vidgen data pack DIR` infers the folder's kind; `--data tfrecord` then gives its clips."""
    root = classes
    if name == "frame_folder":
        root = tmp_path / "frames"
        video_files.write_frames(root / "a_run" / "v1", num_frames=12)
        video_files.write_frames(root / "b_walk" / "v2", num_frames=9, height=21, width=30)
    options = dict(num_frames=4, height=16, width=16, channels=1, seed=3, with_labels=True, frame_step=2)
    expected = records(root, name=name, **options)
    out = tmp_path / "pack"
    code = quiet(cli.main, ["data", "pack", str(root), "--out", str(out), "--shards", "2", "--num-frames", "4",
                            "--height", "16", "--width", "16", "--channels", "1", "--seed", "3", "--frame-step",
                            "2", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"{len(expected)} clips" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["name"] == name
    read = data.load("tfrecord", path=str(out), num_frames=4, height=16, width=16, channels=1, batch_size=1,
                     with_labels=True, epochs=1, shuffle=False)
    got = [(np.round((v[0].numpy() + 1) * 127.5).astype(np.uint8), int(l[0])) for v, l in read]
    assert len(got) == len(expected)
    for (clip, label), record in zip(got, expected):
        np.testing.assert_array_equal(clip, record.clip)
        assert label == record.label
    folder = data.load(name, path=str(root), num_frames=4, height=16, width=16, channels=1, batch_size=1,
                       with_labels=True, seed=3, frame_step=2, epochs=1, shuffle=False)
    for (clip, label), (videos, labels) in zip(got, quiet(list, folder)):
        np.testing.assert_array_equal(clip, np.round((videos[0].numpy() + 1) * 127.5).astype(np.uint8))
        assert label == int(labels[0])


# ---------------------------------------------------------------------- the source's own geometry
def colour_folder(root, kind, sizes=((32, 40), (32, 40)), num_frames=(6, 6), grey=()):
    """Two class folders, one colour video (ffv1 .mkv) or frame folder (PNGs) each; the ones in `grey` stored grey."""
    for i, ((height, width), frames) in enumerate(zip(sizes, num_frames)):
        rgb = video_files.colour_frames(frames, height, width)
        if kind == "video_folder":
            video_files.write_video(root / f"c{i}" / f"v{i}.mkv", frames=rgb,
                                    pixel_format="gray" if i in grey else None)
        else:
            (root / f"c{i}" / f"v{i}").mkdir(parents=True)
            for t, frame in enumerate(rgb):
                image = Image.fromarray(frame).convert("L") if i in grey else Image.fromarray(frame)
                image.save(root / f"c{i}" / f"v{i}" / f"frame_{t}.png")
    return root


@pytest.mark.parametrize("name", ["video_folder", "frame_folder"])
def test_a_colour_folder_packed_without_flags_keeps_its_channels_size_and_frames(capsys, tmp_path, name):
    root = colour_folder(tmp_path / "colour", name, num_frames=(16, 16))  # long enough for the old default clip
    code, out, err = run(capsys, "data", "pack", str(root), "--out", str(tmp_path / "pack"), "--shards", "1", "--quiet")
    assert code == 0, err
    assert "geometry from the source: 16 frames (every frame of each video), 32x40, 3 channels" in out.splitlines()
    assert "converting" not in out and "resizing" not in out
    manifest = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert [manifest[key] for key in ("num_frames", "height", "width", "channels")] == [16, 32, 40, 3]
    clips = [r.clip for r in records(root, name=name, num_frames=16, height=32, width=40, channels=3)]
    packed = [r.clip for r in data.get_source("tfrecord").clip_records(
        data._request("tfrecord", None, None, None, None, 0, False, str(tmp_path / "pack"), {})[1])]
    np.testing.assert_array_equal(np.stack(packed), np.stack(clips))
    assert np.abs(packed[0][..., 0].astype(int) - packed[0][..., 1]).max() > 100  # colour, not grey


def test_pack_flags_win_and_the_command_says_what_it_converts(capsys, tmp_path):
    root = colour_folder(tmp_path / "colour", "video_folder", num_frames=(6, 20))
    code, out, err = run(capsys, "data", "pack", str(root), "--out", str(tmp_path / "pack"), "--shards", "1",
                         "--channels", "1", "--height", "16", "--width", "16", "--quiet")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("geometry: 6 frames (the shortest video's, c0/v0.mkv, so that every video gives a clip), "
                        "16x16 from the flags, 1 channel from the flags")
    assert lines[1:3] == ["converting colour to grey (--channels 1; the source has 3)",
                          "resizing 32x40 frames to 16x16 (resize=crop)"]
    manifest = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert [manifest[key] for key in ("num_frames", "height", "width", "channels")] == [6, 16, 16, 1]


@pytest.mark.parametrize("name", ["video_folder", "frame_folder"])
def test_files_that_differ_are_refused_naming_two_of_them_until_the_flags_say(capsys, tmp_path, name):
    sizes = colour_folder(tmp_path / "sizes", name, sizes=((32, 40), (24, 40)))
    code, _, err = run(capsys, "data", "pack", str(sizes), "--out", str(tmp_path / "p1"), "--shards", "1", "--quiet")
    first, second = ("c0/v0.mkv", "c1/v1.mkv") if name == "video_folder" else ("c0/v0", "c1/v1")
    assert code == 2 and (f"differ in size: {first} is 32x40, {second} is 24x40; give --height and --width"
                          in err), err
    assert not (tmp_path / "p1").exists()
    code, out, err = run(capsys, "data", "pack", str(sizes), "--out", str(tmp_path / "p1"), "--shards", "1",
                         "--height", "24", "--width", "40", "--quiet")
    assert code == 0 and f"resizing every file to 24x40 (resize=crop; the files differ: {first} is 32x40" in out
    channels = colour_folder(tmp_path / "channels", name, grey=(1,))
    code, _, err = run(capsys, "data", "pack", str(channels), "--out", str(tmp_path / "p2"), "--shards", "1",
                       "--quiet")
    assert code == 2 and f"differ in channels: {first} is 3, {second} is 1; give --channels" in err, err
    code, out, err = run(capsys, "data", "pack", str(channels), "--out", str(tmp_path / "p2"), "--shards", "1",
                         "--channels", "3", "--quiet")
    assert code == 0 and "reading every file with 3 channels (--channels 3; the files differ" in out, err


def test_data_check_shows_each_file_s_channels_and_the_summary_s(capsys, tmp_path):
    root = colour_folder(tmp_path / "mixed", "video_folder", grey=(1,))
    code, out, _ = run(capsys, "data", "check", str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["PATH", "FRAMES", "SIZE", "CHANNELS"]
    assert [line.split()[3] for line in lines[2:4]] == ["3", "1"]
    assert lines[-1] == "usable files: channels 3 (1), 1 (1); size 32x40 (all 2)"


def test_by_default_load_reads_a_folder_s_own_channels_and_grey_only_when_asked(tmp_path):
    root = colour_folder(tmp_path / "colour", "frame_folder")
    geometry = dict(num_frames=6, height=32, width=40)
    assert data.make_videos("frame_folder", None, path=str(root), **geometry).shape == (2, 6, 32, 40, 3)
    batch = next(iter(data.load("frame_folder", path=str(root), batch_size=2, **geometry)))
    assert batch.shape == (2, 6, 32, 40, 3)
    assert data.make_videos("frame_folder", None, path=str(root), channels=1, **geometry).shape[-1] == 1
    assert cli.main(["data", "preview", "frame_folder", "--path", str(root), "--num", "2", "--num-frames", "6",
                     "--height", "32", "--width", "40", "--out", str(tmp_path / "p.gif")]) == 0
    with Image.open(tmp_path / "p.gif") as gif:
        frame = np.asarray(gif.convert("RGB"), dtype=int)
    assert np.abs(frame[..., 0] - frame[..., 1]).max() > 32  # previewed in colour, not grey
    # A folder of colour and grey files is refused by default, naming two files and the argument to give.
    mixed = colour_folder(tmp_path / "mixed", "frame_folder", grey=(1,))
    with pytest.raises(ValueError, match=r"differ in channels: .* give channels="):
        data.load("frame_folder", path=str(mixed), batch_size=2, **geometry)
    assert data.make_videos("frame_folder", None, path=str(mixed), channels=3, **geometry).shape == (2, 6, 32, 40, 3)