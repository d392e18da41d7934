"""TFRecord packs: `data.pack` and the `tfrecord` source, locally and over s3:// (oldest lane)."""

import collections
import hashlib
import importlib.util
import io
import json
import os
import socket

import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf import cli, data
from vidgen_tf._optional import MissingExtraError
from vidgen_tf.data import registry, tfrecord

TFIO_INSTALLED = importlib.util.find_spec("tensorflow_io") is not None
MOTO_INSTALLED = importlib.util.find_spec("moto") is not None
GEOMETRY = {"num_frames": 4, "height": 16, "width": 16, "channels": 1}
NUM_VIDEOS = 11


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory):
    rng = np.random.default_rng(7)
    videos = rng.integers(0, 256, (NUM_VIDEOS, 7, 16, 16, 1), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 2])
    path = tmp_path_factory.mktemp("npz") / "clips.npz"
    np.savez(path, videos=videos, labels=labels)
    return str(path)


@pytest.fixture(scope="module")
def packed(npz_file, tmp_path_factory):
    """`(pack directory, manifest, expected ClipRecords)` of the npz file in 3 shards."""
    out = str(tmp_path_factory.mktemp("packs") / "clips")
    manifest = data.pack("npz", npz_file, out, shards=3, seed=5, progress=False, **GEOMETRY)
    request = registry.Request("npz", **GEOMETRY, seed=5, path=npz_file)
    return out, manifest, list(data.get_source("npz").clip_records(request))


def _load(path, **kwargs):
    kwargs = {**GEOMETRY, "batch_size": 1, **kwargs}
    return data.load("tfrecord", path=path, **kwargs)


def _uint8(videos):
    return np.round((np.asarray(videos) + 1.0) * 127.5).astype(np.uint8)


def _clips(dataset, count=None):
    """uint8 clips (and labels) of a batched `load` dataset."""
    clips, labels = [], []
    for element in dataset.take(-1 if count is None else count):
        videos, batch_labels = element if isinstance(element, tuple) else (element, None)
        clips.extend(_uint8(videos))
        if batch_labels is not None:
            labels.extend(batch_labels.numpy().tolist())
    return clips, labels


def _key(clip):
    return hashlib.sha256(np.ascontiguousarray(clip).tobytes()).hexdigest()


class _ListSource(registry.Source):
    """A test-only file-backed source: clips held in memory, optionally failing part way."""

    name = "test_list"
    needs_path = True
    channels_choices = None
    clips = []
    fail_after = None

    def options(self):
        return {"frame_step": 1}

    def clip_records(self, request):
        for index, clip in enumerate(self.clips):
            if self.fail_after is not None and index == self.fail_after:
                raise RuntimeError("source failed part way")
            yield registry.ClipRecord(clip=clip, label=-1, source=f"videos/v{index}.mp4", start=2 * index,
                                      frame_indices=tuple(range(2 * index, 2 * index + 8, 2)))


@pytest.fixture
def list_source():
    source = registry.register_source(_ListSource())
    rng = np.random.default_rng(3)
    source.clips = [rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8) for _ in range(5)]
    source.fail_after = None
    yield source
    registry._SOURCES.pop("test_list", None)


# ------------------------------------------------------------------ packing
def test_the_manifest_counts_clips_shards_and_classes_and_hashes_every_shard(packed, npz_file):
    out, manifest, records = packed
    assert sorted(os.listdir(out)) == ["manifest.json", *(f"shard-0000{i}-of-00003.tfrecord" for i in range(3))]
    assert json.loads(open(os.path.join(out, "manifest.json")).read()) == manifest
    assert manifest["format"] == "vidgen-tfrecord" and manifest["format_version"] == 1
    assert manifest["num_clips"] == NUM_VIDEOS == len(records)
    assert [s["num_clips"] for s in manifest["shards"]] == [4, 4, 3]  # round-robin
    assert manifest["num_classes"] == 3 and manifest["class_names"] == ["0", "1", "2"]
    assert manifest["clips_per_class"] == {"0": 4, "1": 3, "2": 4}
    assert manifest["source"] == {"name": "npz", "path": npz_file, "options": {}}
    assert (manifest["num_frames"], manifest["height"], manifest["width"], manifest["channels"]) == (4, 16, 16, 1)
    assert manifest["seed"] == 5 and manifest["image_format"] == "png" and manifest["layout"] == "round_robin"
    for shard in manifest["shards"]:
        content = open(os.path.join(out, shard["file"]), "rb").read()
        assert shard["bytes"] == len(content)
        assert shard["sha256"] == hashlib.sha256(content).hexdigest()
    assert "3 classes: 0 4, 1 3, 2 4" in tfrecord.summary(manifest)


def test_npz_clip_records_are_the_clips_of_make_videos(npz_file, packed, tmp_path):
    _, _, records = packed
    request = registry.Request("npz", **GEOMETRY, path=npz_file)
    assert data.get_source("npz").count_clips(request) == NUM_VIDEOS  # for the progress bar
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    bad = registry.Request("npz", **GEOMETRY, path=str(tmp_path / "bad.npz"))
    assert data.get_source("npz").count_clips(bad) is None
    videos, labels = data.make_videos("npz", None, **GEOMETRY, seed=5, path=npz_file, with_labels=True)
    np.testing.assert_array_equal(np.stack([r.clip for r in records]), videos)
    assert [r.label for r in records] == labels.tolist()
    assert records[3].source == "clips.npz[3]"
    assert records[3].frame_indices == tuple(range(records[3].start, records[3].start + 4))


@pytest.mark.oldest
@pytest.mark.parametrize("shards", [1, 3])
def test_reading_back_without_shuffle_gives_the_source_clips_in_order(npz_file, tmp_path, shards):
    out = str(tmp_path / "pack")
    data.pack("npz", npz_file, out, shards=shards, seed=5, progress=False, **GEOMETRY)
    request = registry.Request("npz", **GEOMETRY, seed=5, path=npz_file)
    records = list(data.get_source("npz").clip_records(request))
    clips, labels = _clips(_load(out, num_videos=NUM_VIDEOS, with_labels=True))
    assert len(clips) == NUM_VIDEOS
    for clip, record in zip(clips, records):
        np.testing.assert_array_equal(clip, record.clip)  # PNG is lossless
    assert labels == [r.label for r in records]
    examples = list(tfrecord.read_examples(out).as_numpy_iterator())
    assert [e["index"] for e in examples] == list(range(NUM_VIDEOS))
    assert [e["source"].decode() for e in examples] == [r.source for r in records]
    assert [e["start"] for e in examples] == [r.start for r in records]
    assert [tuple(e["frame_indices"]) for e in examples] == [r.frame_indices for r in records]


def test_num_classes_class_names_and_make_videos_come_from_the_pack(packed):
    out, _, records = packed
    assert data.num_classes("tfrecord", path=out) == 3
    assert data.class_names("tfrecord", path=out) == ["0", "1", "2"]
    videos, labels = data.make_videos("tfrecord", 4, **GEOMETRY, path=out, with_labels=True)
    np.testing.assert_array_equal(videos, np.stack([r.clip for r in records[:4]]))
    assert labels.tolist() == [r.label for r in records[:4]]


def test_a_pack_of_any_source_keeps_its_paths_and_frame_indices_and_has_no_labels(list_source, tmp_path):
    out = tmp_path / "pack"
    manifest = data.pack("test_list", "anywhere", out, shards=2, num_frames=4, height=8, width=8, channels=3,
                         progress=False, frame_step=2)
    assert manifest["num_classes"] is None and manifest["clips_per_class"] is None
    assert manifest["source"]["options"] == {"frame_step": 2}
    examples = list(tfrecord.read_examples(str(out)).as_numpy_iterator())
    assert [e["source"].decode() for e in examples] == [f"videos/v{i}.mp4" for i in range(5)]
    assert tuple(examples[2]["frame_indices"]) == (4, 6, 8, 10) and examples[2]["label"] == -1
    np.testing.assert_array_equal(np.stack([e["clip"] for e in examples]), np.stack(list_source.clips))
    with pytest.raises(ValueError, match="has no classes"):
        _load(str(out), num_frames=4, height=8, width=8, channels=3, with_labels=True)


def test_jpeg_packs_are_close_to_the_source(list_source, tmp_path):
    ramp = np.linspace(0, 120, 8)
    list_source.clips = [  # smooth pictures, as video frames are (JPEG blurs noise away)
        np.broadcast_to((ramp[:, None, None] + ramp[None, :, None] * 0.2 + 10 * k + np.array([0, 20, 40]))
                        [None], (4, 8, 8, 3)).astype(np.uint8) for k in range(5)]
    out = tmp_path / "pack"
    manifest = data.pack("test_list", "x", out, shards=1, num_frames=4, height=8, width=8, channels=3,
                         image_format="jpeg", jpeg_quality=100, progress=False)
    assert manifest["image_format"] == "jpeg" and manifest["jpeg_quality"] == 100
    clips = [e["clip"] for e in tfrecord.read_examples(str(out)).as_numpy_iterator()]
    difference = np.abs(np.stack(clips).astype(float) - np.stack(list_source.clips))
    assert 0 < difference.mean() < 3  # lossy, but the same pictures


def test_an_interrupted_pack_keeps_the_old_pack_and_a_finished_one_replaces_it_whole(list_source, tmp_path):
    out = tmp_path / "pack"
    geometry = {"num_frames": 4, "height": 8, "width": 8, "channels": 3}
    data.pack("test_list", "x", out, shards=3, progress=False, **geometry)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    list_source.fail_after = 3
    with pytest.raises(RuntimeError, match="part way"):
        data.pack("test_list", "x", out, shards=2, progress=False, overwrite=True, **geometry)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["pack"]  # no staging directory left
    list_source.fail_after = None
    data.pack("test_list", "x", out, shards=2, progress=False, overwrite=True, **geometry)
    assert sorted(os.listdir(out)) == ["manifest.json", "shard-00000-of-00002.tfrecord",
                                       "shard-00001-of-00002.tfrecord"]
    assert sorted(os.listdir(tmp_path)) == ["pack"]


def test_pack_refuses_bad_input_by_name(list_source, npz_file, tmp_path):
    geometry = {"num_frames": 4, "height": 8, "width": 8, "channels": 3}
    with pytest.raises(ValueError, match=r"shards=9 but dataset 'test_list' .* has only 5 clips"):
        data.pack("test_list", "x", tmp_path / "p", shards=9, progress=False, **geometry)
    assert not (tmp_path / "p").exists()
    with pytest.raises(ValueError, match="cannot be packed into TFRecords"):
        data.pack("moving_square", "x", tmp_path / "p", progress=False, **GEOMETRY)
    with pytest.raises(ValueError, match=r"clip 0 of dataset 'test_list'.*shape \(4, 8, 8, 3\).*\(4, 8, 8, 1\)"):
        data.pack("test_list", "x", tmp_path / "p", progress=False, **{**geometry, "channels": 1})
    with pytest.raises(ValueError, match="image_format"):
        data.pack("npz", npz_file, tmp_path / "p", image_format="gif", progress=False, **GEOMETRY)
    with pytest.raises(ValueError, match="writes to a local directory"):
        data.pack("npz", npz_file, "gs://bucket/pack", progress=False, **GEOMETRY)
    with pytest.raises(ValueError, match="frames are 16x16"):
        data.pack("npz", npz_file, tmp_path / "p", progress=False, **{**GEOMETRY, "height": 8})


def test_the_progress_line_shows_a_bar_and_is_off_without_a_terminal(packed, npz_file, tmp_path, capsys):
    stream = io.StringIO()
    bar = tfrecord._Progress(total=10, stream=stream, enabled=True)
    bar.update(5, 2_000_000, force=True)
    bar.close(10, 4_000_000)
    assert "[###############...............] 5/10 clips, 2.0 MB" in stream.getvalue()
    assert stream.getvalue().endswith("10/10 clips, 4.0 MB, 0.0 s\n")
    assert tfrecord._Progress(stream=io.StringIO()).enabled is False  # not a terminal
    data.pack("npz", npz_file, tmp_path / "p", shards=1, progress=True, **GEOMETRY)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ reading
def test_endless_reading_is_shuffled_deterministically_and_reshuffled_each_epoch(packed):
    out, _, records = packed
    everything = sorted(_key(r.clip) for r in records)
    first, _ = _clips(_load(out, shuffle_buffer=64), 3 * NUM_VIDEOS)
    again, _ = _clips(_load(out, shuffle_buffer=64), 3 * NUM_VIDEOS)
    keys = [_key(c) for c in first]
    assert keys == [_key(c) for c in again]  # the same seed, the same order
    epochs = [keys[i * NUM_VIDEOS:(i + 1) * NUM_VIDEOS] for i in range(3)]
    assert all(sorted(epoch) == everything for epoch in epochs)  # each pass is every clip once
    assert epochs[0] != epochs[1] and epochs[0] != [_key(r.clip) for r in records]
    other, _ = _clips(_load(out, shuffle_buffer=64, seed=1), NUM_VIDEOS)
    assert [_key(c) for c in other] != epochs[0]
    unshuffled, _ = _clips(_load(out, shuffle=False), NUM_VIDEOS)
    assert [_key(c) for c in unshuffled] == [_key(r.clip) for r in records]


def test_epochs_ends_the_stream_after_k_passes(packed):
    out, _, records = packed
    dataset = _load(out, epochs=2, batch_size=2, drop_remainder=False)
    clips, _ = _clips(dataset)
    assert len(clips) == 2 * NUM_VIDEOS
    assert collections.Counter(_key(c) for c in clips) == collections.Counter(
        2 * [_key(r.clip) for r in records])
    with pytest.raises(ValueError, match="`epochs` must be >= 1"):
        _load(out, epochs=0)


def test_start_batch_skips_to_the_same_batches(packed):
    out, _, _ = packed
    full, _ = _clips(_load(out, batch_size=2), 8)
    resumed, _ = _clips(_load(out, batch_size=2, start_batch=3), 5)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(full[6:16]))


def _shard_keys(dataset):
    return [_key(e["clip"]) for e in dataset.as_numpy_iterator()]


def test_two_input_pipelines_get_disjoint_shards_that_cover_the_pack(packed):
    out, _, records = packed
    everything = sorted(_key(r.clip) for r in records)
    for make in (lambda i: (2, i), lambda i: tf.distribute.InputContext(2, i, 2)):
        parts = []
        for index in range(2):
            clips, _ = _clips(_load(out, num_videos=4 if index else 7, shard=make(index)))
            parts.append([_key(c) for c in clips])
        assert not set(parts[0]) & set(parts[1])
        assert sorted(parts[0] + parts[1]) == everything
    # tf.distribute's own file-level auto-sharding of the reader (what a multi-worker strategy applies).
    from tensorflow.python.distribute import input_ops

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    parts = []
    for index in range(2):
        dataset = tfrecord.read_examples(out).with_options(options)
        parts.append(_shard_keys(input_ops.auto_shard_dataset(dataset, 2, index, 2)))
    assert len(parts[0]) == 7 and len(parts[1]) == 4  # shards 0 and 2, and shard 1
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == everything
    with pytest.raises(ValueError, match=r"3 shard files between 4 input pipelines"):
        _load(out, shard=(4, 0))
    with pytest.raises(ValueError, match=r"`shard\[1\] \(index\)` must be in \[0, 1\]"):
        _load(out, shard=(2, 2))


def test_geometry_that_differs_from_the_pack_is_named_with_both(packed):
    out, _, _ = packed
    with pytest.raises(ValueError, match=r"holds clips of .* = \(4, 16, 16, 1\), but \(8, 16, 16, 1\) was asked"):
        _load(out, num_frames=8)


def test_missing_or_corrupt_manifest_and_changed_shards_are_named(packed, tmp_path):
    import shutil

    source, manifest, _ = packed
    with pytest.raises(FileNotFoundError, match=r"has no manifest.json"):
        _load(str(tmp_path))
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest '.*copy/manifest.json' is not valid JSON"):
        _load(str(out))
    (out / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="is not a vidgen-tfrecord manifest"):
        _load(str(out))
    (out / "manifest.json").write_text(json.dumps(manifest))
    shard = out / manifest["shards"][1]["file"]
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(content))
    _load(str(out))  # sizes match: without verify the change is not seen
    with pytest.raises(ValueError, match=rf"shard '.*{shard.name}' has sha256 .* but the manifest says"):
        _load(str(out), verify=True)
    shard.write_bytes(bytes(content[:-10]))
    with pytest.raises(ValueError, match=rf"shard '.*{shard.name}' has {len(content) - 10} bytes, but the "
                                         rf"manifest says {len(content)}"):
        _load(str(out))
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=rf"shard '.*{shard.name}' listed in the manifest does not exist"):
        _load(str(out))


def test_a_corrupt_record_is_an_error_naming_its_shard(packed, tmp_path):
    import shutil

    source, manifest, _ = packed
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    shard = out / manifest["shards"][1]["file"]
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size: a record fails its CRC (TensorFlow's DataLossError names no file)
    shard.write_bytes(bytes(content))
    for dataset in (_load(str(out), num_videos=NUM_VIDEOS), _load(str(out)),
                    _load(str(out), with_labels=True, shuffle=False, epochs=1)):
        with pytest.raises(tf.errors.OpError) as raised:
            _clips(dataset, count=4 * NUM_VIDEOS)
        assert f"TFRecord shard {shard} is corrupt: it gave 2 of its 4 records" in raised.value.message, \
            raised.value.message
        assert "verify=True" in raised.value.message
    with pytest.raises(tf.errors.OpError, match=f"TFRecord shard {shard} is corrupt"):
        data.make_videos("tfrecord", None, path=str(out), **GEOMETRY)


def test_a_pack_can_be_repacked_with_other_shards(packed, tmp_path):
    out, _, records = packed
    manifest = data.pack("tfrecord", out, tmp_path / "again", shards=2, progress=False, **GEOMETRY)
    assert manifest["num_clips"] == NUM_VIDEOS
    clips, _ = _clips(_load(str(tmp_path / "again"), num_videos=NUM_VIDEOS))
    np.testing.assert_array_equal(np.stack(clips), np.stack([r.clip for r in records]))


# ---------------------------------------------------------------------- CLI
def test_cli_pack_infers_npz_and_prints_the_summary(npz_file, tmp_path, capsys):
    out = tmp_path / "packs" / "new" / "pack"  # missing parents are made
    code = cli.main(["data", "pack", npz_file, "--out", str(out), "--shards", "2", "--num-frames", "4", "--quiet"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "packed npz" in text and "11 clips of 4x16x16x1 (png)" in text and "2 shards" in text
    assert "3 classes" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_shards"] == 2 and manifest["num_frames"] == 4  # height/width/channels from the file



def test_cli_pack_of_an_npz_without_flags_keeps_its_shape_and_says_so(tmp_path, capsys):
    videos = np.random.default_rng(3).integers(0, 256, (3, 20, 12, 10, 3), dtype=np.uint8)  # longer than 16 frames
    path = tmp_path / "colour.npz"
    np.savez(path, videos=videos)
    code = cli.main(["data", "pack", str(path), "--out", str(tmp_path / "pack"), "--shards", "1", "--quiet"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert text.splitlines()[0] == "geometry from the source: 20 frames (every frame of each video), 12x10, 3 channels"
    manifest = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert [manifest[key] for key in ("num_frames", "height", "width", "channels")] == [20, 12, 10, 3]
    clips, _ = _clips(_load(str(tmp_path / "pack"), num_frames=20, height=12, width=10, channels=3, num_videos=3))
    np.testing.assert_array_equal(np.stack(clips), videos)
    # Fewer frames only when asked, and said; the Python pack and channels=None take the file's own too.
    code = cli.main(["data", "pack", str(path), "--out", str(tmp_path / "cut"), "--shards", "1", "--num-frames", "8",
                     "--quiet"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert text.splitlines()[:2] == [
        "geometry: 8 frames from the flags, 12x10 from the source, 3 channels from the source",
        "cutting clips of 8 of the 20 frames of each video (--num-frames 8; a window per video)"]
    manifest = data.pack("npz", str(path), tmp_path / "python", shards=1, progress=False)
    assert [manifest[key] for key in ("num_frames", "height", "width", "channels")] == [20, 12, 10, 3]
    assert data.make_videos("npz", None, path=str(path), num_frames=20, height=12, width=10,
                            channels=None).shape == videos.shape
    code = cli.main(["data", "pack", str(tmp_path / "pack"), "--out", str(tmp_path / "again"), "--shards", "1",
                     "--quiet"])
    assert code == 0 and "geometry from the source: 20 frames, 12x10, 3 channels" in capsys.readouterr().out


def test_cli_pack_replaces_only_a_pack_and_only_with_overwrite(npz_file, tmp_path, capsys):
    def pack(*argv):
        code = cli.main(["data", "pack", *argv, "--shards", "2", "--num-frames", "4", "--quiet"])
        return code, capsys.readouterr().err

    def contents(folder):
        return {p.name: p.read_bytes() for p in folder.iterdir()}

    # A folder holding the source (and a thesis): refused, whatever the flags; nothing is deleted.
    home = tmp_path / "home"
    home.mkdir()
    source = home / "clips.npz"
    source.write_bytes(open(npz_file, "rb").read())
    (home / "thesis.txt").write_text("four years")
    before = contents(home)
    code, err = pack(str(source), "--out", str(home))
    assert code == 2 and f"--out {home} is (or holds) the source {source}" in err
    assert contents(home) == before
    code, err = pack(str(source), "--out", str(home), "--overwrite")
    assert code == 2 and contents(home) == before
    # A folder that is not a pack, away from the source.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("four years")
    code, err = pack(npz_file, "--out", str(notes), "--overwrite")
    assert code == 2 and f"--out {notes} exists and is not a pack (no valid manifest.json); it holds thesis.txt" in err
    assert contents(notes) == {"thesis.txt": b"four years"}
    # A pack: replaced only with --overwrite, and never over itself as the source.
    out = tmp_path / "pack"
    assert pack(npz_file, "--out", str(out)) == (0, "")
    packed = contents(out)
    code, err = pack(npz_file, "--out", str(out))
    assert code == 2 and f"--out {out} holds a pack already; pass --overwrite to replace it." in err
    code, err = pack(str(out), "--out", str(out), "--overwrite")
    assert code == 2 and "is (or holds) the source" in err
    assert contents(out) == packed
    (out / "thesis.txt").write_text("mine")
    code, err = pack(npz_file, "--out", str(out), "--overwrite")
    assert code == 2 and "files that are not the pack's (thesis.txt)" in err
    (out / "thesis.txt").unlink()
    assert pack(npz_file, "--out", str(out), "--overwrite", "--seed", "1")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "notes", "pack"]  # no staging left


def test_cli_pack_names_the_current_directory_and_an_input_error_leaves_no_folder(npz_file, tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inside").mkdir()
    for out in (".", "./", "..", str(tmp_path)):
        code = cli.main(["data", "pack", npz_file, "--out", out, "--quiet"])
        assert code == 2 and "is (or holds) the current directory" in capsys.readouterr().err, out
    code = cli.main(["data", "pack", npz_file, "--out", "new/packs/p", "--shards", "99", "--num-frames", "4",
                     "--quiet"])
    assert code == 2 and "--shards 99 but dataset" in capsys.readouterr().err  # the CLI's flag, not pack's argument
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inside"]  # the missing parents were taken away again

def test_cli_pack_names_the_dataset_it_cannot_infer(tmp_path, capsys):
    (tmp_path / "videos" / "cats").mkdir(parents=True)
    (tmp_path / "videos" / "cats" / "a.mp4").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    code = cli.main(["data", "pack", str(tmp_path / "empty"), "--out", str(tmp_path / "p")])
    assert code == 2 and "holds no video files" in capsys.readouterr().err
    code = cli.main(["data", "pack", str(tmp_path / "videos" / "cats" / "a.mp4"), "--out", str(tmp_path / "p"),
                     "--data", "npz"])
    assert code == 2 and "not an .npz archive" in capsys.readouterr().err


def test_cli_pack_infers_folders_with_the_folder_datasets_extensions(tmp_path):
    """Every extension `video_folder` reads makes a folder one (the CLI once kept its own shorter list)."""
    from vidgen_tf.cli.data_pack import infer_dataset
    from vidgen_tf.data import index

    for extension in index.VIDEO_EXTENSIONS:
        folder = tmp_path / extension.strip(".") / "class"
        folder.mkdir(parents=True)
        (folder / f"clip{extension}").write_bytes(b"")
        assert infer_dataset(str(folder.parent)) == "video_folder", extension
    (tmp_path / "frames" / "v1").mkdir(parents=True)
    (tmp_path / "frames" / "v1" / "frame_1.png").write_bytes(b"")
    assert infer_dataset(str(tmp_path / "frames")) == "frame_folder"


def test_cli_frame_step_is_passed_to_the_source_as_an_option(npz_file, tmp_path, capsys):
    code = cli.main(["data", "pack", npz_file, "--out", str(tmp_path / "p"), "--frame-step", "2"])
    assert code == 2 and "Dataset 'npz' takes no options, got ['frame_step']" in capsys.readouterr().err


def test_train_reads_a_pack(packed, tmp_path, capsys):
    out, _, _ = packed
    code = cli.main(["train", "hmm", "--data", "tfrecord", "--path", out, "--num-frames", "4", "--height", "16",
                     "--width", "16", "--channels", "1", "--batch-size", "4", "--steps", "2", "--quiet",
                     "--set", "num_states=3", "--out", str(tmp_path / "run")])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metadata.json").read_text())["training_steps"] == 2


def test_train_on_a_corrupt_pack_names_the_shard_in_one_line(packed, tmp_path, capsys):
    import shutil

    source, manifest, _ = packed
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    shard = out / manifest["shards"][1]["file"]
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF
    shard.write_bytes(bytes(content))
    code = cli.main(["train", "hmm", "--data", "tfrecord", "--path", str(out), "--num-frames", "4", "--height", "16",
                     "--width", "16", "--channels", "1", "--batch-size", "4", "--steps", "6", "--quiet",
                     "--set", "num_states=3", "--no-report", "--out", str(tmp_path / "run")])
    _, err = capsys.readouterr()
    assert code == 1, err
    assert err.splitlines()[0].startswith("vidgen: error: InvalidArgumentError")
    assert err.splitlines()[0].endswith(f"assertion failed: TFRecord shard {shard} is corrupt: it gave 2 of its 4 "
                                        "records (the TFRecord reader found a corrupted record); pack it again, or "
                                        "find such files before training with the tfrecord option verify=True "
                                        "(sha256).")
    assert len(err.splitlines()) == 2 and "--verbose" in err.splitlines()[1]


# ------------------------------------------------------------------- remote
@pytest.mark.oldest
@pytest.mark.skipif(TFIO_INSTALLED, reason="tensorflow-io is installed (oldest lane): the s3 test reads from moto")
def test_s3_packs_without_tensorflow_io_name_the_extra_and_the_lane():
    with pytest.raises(MissingExtraError, match=r"(?s)'s3://' scheme.*vidgen-tf\[io\].*TensorFlow <= 2\.17\.1"):
        _load("s3://bucket/pack")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """A moto S3 server on 127.0.0.1, with tensorflow-io's and boto3's clients pointed at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "S3_ENDPOINT": endpoint, "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        yield endpoint
    finally:
        server.stop()


# Run in a child process: tensorflow-io 0.37.1 aborts the process at exit ("pure virtual method
# called", exit code 134) once its S3 client has been used (tensorflow/io#2039, fixed after its
# last release), so the child prints its findings and leaves with os._exit before that.
_S3_READER = """
import hashlib, json, os, sys
import numpy as np
from vidgen_tf import data

url = sys.argv[1]
geometry = dict(num_frames=4, height=16, width=16, channels=1)
out = {"num_classes": data.num_classes("tfrecord", path=url)}
clips, labels = [], []
for videos, batch_labels in data.load("tfrecord", path=url, batch_size=1, num_videos=int(sys.argv[2]),
                                      with_labels=True, verify=True, **geometry):
    clips.append(np.round((videos.numpy()[0] + 1.0) * 127.5).astype(np.uint8))
    labels.append(int(batch_labels.numpy()[0]))
out["clips"] = [hashlib.sha256(clip.tobytes()).hexdigest() for clip in clips]
out["labels"] = labels
shuffled = data.load("tfrecord", path=url, batch_size=1, shuffle_buffer=8, **geometry).take(int(sys.argv[2]))
out["shuffled"] = [hashlib.sha256(np.round((v.numpy()[0] + 1.0) * 127.5).astype(np.uint8).tobytes()).hexdigest()
                   for v in shuffled]
print("RESULT" + json.dumps(out), flush=True)
os._exit(0)
"""


@pytest.mark.oldest
@pytest.mark.io
@pytest.mark.skipif(not (TFIO_INSTALLED and MOTO_INSTALLED), reason="needs the io and iotest extras (oldest lane)")
def test_a_pack_on_s3_reads_back_the_same_clips_through_tensorflow_io(packed, s3_server):
    import subprocess
    import sys

    import boto3

    out, manifest, records = packed
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket="videos")
    for name in os.listdir(out):
        client.upload_file(os.path.join(out, name), "videos", f"packs/clips/{name}")
    done = subprocess.run([sys.executable, "-c", _S3_READER, "s3://videos/packs/clips", str(NUM_VIDEOS)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("RESULT")][-1][6:])
    local, local_labels = _clips(_load(out, num_videos=NUM_VIDEOS, with_labels=True))
    assert result["num_classes"] == 3
    assert result["clips"] == [_key(clip) for clip in local] == [_key(r.clip) for r in records]
    assert result["labels"] == local_labels == [r.label for r in records]
    assert sorted(result["shuffled"]) == sorted(result["clips"]) and result["shuffled"] != result["clips"]
