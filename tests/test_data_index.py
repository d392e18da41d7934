"""Tests of vidgen_tf.data.index and decode: probing, damage reasons, warnings, the cache."""

import json
import logging
import os
import warnings

import av
import numpy as np
import pytest
from PIL import Image

from tests import video_files
from vidgen_tf.data import decode, index


def _audio_only(path):
    with av.open(str(path), mode="w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _noise(num_frames, height=32, width=40):
    """Random frames: each takes real bytes in the file, so a cut loses frames."""
    return np.random.default_rng(0).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def _cut(path, fraction):
    data = open(path, "rb").read()
    return data[: int(len(data) * fraction)]


def damaged_folder(root):
    """Two good videos in class folders and one of every kind of damage."""
    video_files.write_video(root / "cats" / "a.mp4")
    video_files.write_video(root / "dogs" / "b.avi", height=37, width=53, fps=10)
    (root / "dogs" / "empty.mp4").write_bytes(b"")
    (root / "dogs" / "notes.mp4").write_text("not a video at all\n")
    (root / "cats" / "cut.webm").write_bytes(_cut(video_files.write_video(root / "w.webm", frames=_noise(24)), 0.5))
    os.remove(root / "w.webm")
    from vidgen_tf import video_io

    video_io.write_mp4(root / "fast.mp4", video_files.level_frames(30, 32, 40), fps=25)  # index at the front
    whole = (root / "fast.mp4").read_bytes()
    (root / "cats" / "cut.mp4").write_bytes(whole[: int(len(whole) * 0.9)])
    os.remove(root / "fast.mp4")
    _audio_only(root / "dogs" / "sound.mkv")
    (root / "dogs" / "readme.txt").write_text("ignored: not a video extension")
    return root


@pytest.mark.parametrize("ext, fps", [(".mp4", 25), (".webm", 30), (".avi", 10), (".mkv", 25), (".gif", 10),
                                      (".mov", 30)])
def test_probe_and_read_each_container(tmp_path, ext, fps):
    path = video_files.write_video(tmp_path / f"v{ext}", num_frames=24, height=37, width=53, fps=fps)
    info = decode.probe_video(path)
    assert (info.num_frames, info.height, info.width) == (24, 37, 53)
    assert info.fps == pytest.approx(fps)
    assert info.duration == pytest.approx(24 / fps, abs=0.11)
    # Only the wanted frames, in the asked order, repeats allowed; seeking past the start.
    frames = decode.read_video_frames(path, [17, 3, 3, 23], size=(8, 10), channels=1)
    assert frames.shape == (4, 8, 10, 1) and frames.dtype == np.uint8
    np.testing.assert_array_equal(video_files.levels_of(frames), [17, 3, 3, 23])
    rgb = decode.read_video_frames(path, [0, 1])
    assert rgb.shape == (2, 37, 53, 3)


def test_reading_past_the_end_names_the_file(tmp_path):
    path = video_files.write_video(tmp_path / "v.mkv", num_frames=10)
    with pytest.raises(decode.DamagedFileError, match=r"v\.mkv.*frame 12 was asked for.*ends after 10 frames"):
        decode.read_video_frames(path, [2, 12])


def test_every_kind_of_damage_has_its_reason(tmp_path):
    root = damaged_folder(tmp_path)
    with pytest.warns(index.DamagedFileWarning):
        built = index.build_index(root)
    status = {record.path: (record.damage, record.status) for record in built.records}
    assert sorted(status) == ["cats/a.mp4", "cats/cut.mp4", "cats/cut.webm", "dogs/b.avi", "dogs/empty.mp4",
                              "dogs/notes.mp4", "dogs/sound.mkv"]
    assert status["cats/a.mp4"] == (None, "ok") and status["dogs/b.avi"] == (None, "ok")
    assert status["dogs/empty.mp4"] == ("empty", "empty file (0 bytes)")
    assert status["dogs/notes.mp4"][0] == "not a video"
    assert status["dogs/sound.mkv"] == ("no video stream", "no video stream (streams: audio)")
    assert status["cats/cut.mp4"][0] == "truncated" and "records 30 frames" in status["cats/cut.mp4"][1]
    assert status["cats/cut.webm"][0] == "truncated"
    good = {record.path: record for record in built.usable}
    assert (good["dogs/b.avi"].num_frames, good["dogs/b.avi"].fps, good["dogs/b.avi"].height,
            good["dogs/b.avi"].width, good["dogs/b.avi"].label) == (24, 10.0, 37, 53, "dogs")
    assert built.summary() == (f"index of {root}: 7 files, 2 usable, 5 skipped "
                               "(1 empty, 1 no video stream, 1 not a video, 2 truncated)")


def test_damaged_files_are_warned_about_once_with_a_summary(tmp_path, caplog):
    root = damaged_folder(tmp_path)
    caplog.set_level(logging.INFO, logger=index.__name__)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index.build_index(root)
        index.build_index(root)  # the same damage again: not reported again
    messages = [str(w.message) for w in caught if issubclass(w.category, index.DamagedFileWarning)]
    assert len(messages) == 5
    assert any("dogs/empty.mp4" in m and "empty file (0 bytes)" in m for m in messages)
    assert any("dogs/sound.mkv" in m and "no video stream" in m for m in messages)
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("index of")]
    assert summaries == [f"index of {root}: 7 files, 2 usable, 5 skipped "
                         "(1 empty, 1 no video stream, 1 not a video, 2 truncated)"]


def test_the_cache_is_reused_and_invalidated_per_file(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        video_files.write_video(tmp_path / "x" / f"{name}.avi", num_frames=12)
    probed = []
    real_probe = decode.probe_video
    monkeypatch.setattr(decode, "probe_video", lambda path, **kw: probed.append(os.path.basename(path))
                        or real_probe(path, **kw))
    first = index.build_index(tmp_path)
    assert sorted(probed) == ["a.avi", "b.avi", "c.avi"] and first.probed == 3
    assert first.cache_path == tmp_path / index.INDEX_FILE
    cached = json.loads((tmp_path / index.INDEX_FILE).read_text())
    assert [r["path"] for r in cached["video"]] == ["x/a.avi", "x/b.avi", "x/c.avi"]

    probed.clear()
    again = index.build_index(tmp_path)
    assert probed == [] and again.probed == 0
    assert [r.num_frames for r in again.records] == [12, 12, 12]

    # A touched file (new mtime) and a rewritten one (new size) are probed again; the other is not.
    stat = os.stat(tmp_path / "x" / "a.avi")
    os.utime(tmp_path / "x" / "a.avi", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    video_files.write_video(tmp_path / "x" / "b.avi", num_frames=20)
    video_files.write_video(tmp_path / "x" / "d.avi", num_frames=6)  # new
    os.remove(tmp_path / "x" / "c.avi")  # removed
    probed.clear()
    changed = index.build_index(tmp_path)
    assert sorted(probed) == ["a.avi", "b.avi", "d.avi"]
    assert [(r.path, r.num_frames) for r in changed.records] == [("x/a.avi", 12), ("x/b.avi", 20), ("x/d.avi", 6)]
    cached = json.loads((tmp_path / index.INDEX_FILE).read_text())
    assert [r["path"] for r in cached["video"]] == ["x/a.avi", "x/b.avi", "x/d.avi"]


def test_records_hold_the_channels_the_files_store_and_an_older_cache_is_probed_again(tmp_path):
    video_files.write_video(tmp_path / "colour.mkv", num_frames=4)  # yuv444p: 3, though its frames are grey
    video_files.write_video(tmp_path / "grey.mkv", num_frames=4, pixel_format="gray")
    video_files.write_video(tmp_path / "palette.gif", num_frames=4)
    assert [(r.path, r.channels) for r in index.build_index(tmp_path).records] == [
        ("colour.mkv", 3), ("grey.mkv", 1), ("palette.gif", 3)]
    video_files.write_frames(tmp_path / "frames" / "rgb", num_frames=2)
    (tmp_path / "frames" / "grey").mkdir()
    for t in range(2):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "frames" / "grey" / f"frame_{t}.png")
    assert [(r.path, r.channels) for r in index.build_index(tmp_path / "frames", "frames").records] == [
        ("grey", 1), ("rgb", 3)]
    # A cache written before records held channels (version 1) is not trusted: every file is probed again.
    cache = tmp_path / index.INDEX_FILE
    old = json.loads(cache.read_text())
    old["version"] = 1
    for record in old["video"]:
        del record["channels"]
    cache.write_text(json.dumps(old))
    again = index.build_index(tmp_path)
    assert again.probed == 3 and [r.channels for r in again.records] == [3, 1, 3]


def test_the_cache_goes_to_cache_dir_or_the_user_cache_when_the_folder_is_not_writable(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    video_files.write_video(data_dir / "a.avi", num_frames=8)
    built = index.build_index(data_dir, cache_dir=tmp_path / "mine")
    assert built.cache_path.parent == tmp_path / "mine" and built.cache_path.suffix == ".json"
    assert not (data_dir / index.INDEX_FILE).exists()

    monkeypatch.setenv("VIDGEN_CACHE_DIR", str(tmp_path / "user"))
    real_atomic_file = index.atomic_file

    def refuse_beside_the_data(path):
        if os.path.dirname(path) == str(data_dir):
            raise PermissionError(13, "Permission denied", str(path))
        return real_atomic_file(path)

    monkeypatch.setattr(index, "atomic_file", refuse_beside_the_data)
    built = index.build_index(data_dir)
    assert built.cache_path.parent == tmp_path / "user"
    assert not (data_dir / index.INDEX_FILE).exists()
    assert index.build_index(data_dir).probed == 0  # read back from the user cache


def test_frame_folders_are_ordered_by_the_integer_in_their_names(tmp_path):
    assert index.frame_order(["f_10.png", "f_2.png", "f_1.png"], "v") == ["f_1.png", "f_2.png", "f_10.png"]
    with pytest.raises(ValueError, match="'v'.*'cover.png' has no frame number"):
        index.frame_order(["f_1.png", "cover.png"], "v")
    with pytest.raises(ValueError, match="'f_1.png' and 'f_01.png' have the same frame number 1"):
        index.frame_order(["f_1.png", "f_01.png"], "v")
    video_files.write_frames(tmp_path / "run" / "clip", num_frames=12)
    built = index.build_index(tmp_path, kind="frames")
    (record,) = built.records
    assert (record.path, record.label, record.num_frames, record.height, record.width) == ("run/clip", "run", 12,
                                                                                           32, 40)
    assert record.frames[:3] == ["frame_1.png", "frame_2.png", "frame_3.png"] and record.frames[-1] == "frame_12.png"
