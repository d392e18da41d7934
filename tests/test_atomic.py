"""The package's one atomic-write helper (`vidgen_tf.atomic`, re-exported by `video_io`)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from vidgen_tf import atomic, video_io


def test_video_io_re_exports_the_helper():
    assert video_io.atomic_file is atomic.atomic_file
    assert video_io.atomic_directory is atomic.atomic_directory


def test_file_is_replaced_whole_with_plain_open_permissions(tmp_path):
    path = tmp_path / "ckpt-3.weights.h5"
    path.write_bytes(b"old")
    with atomic.atomic_file(path) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".weights.h5")
        assert temporary.name.startswith(".")  # hidden from globs such as ckpt-*.weights.h5
        temporary.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # nothing visible before the end
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == [path.name]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_crash_in_the_file_writer_keeps_the_old_file_and_leaves_no_debris(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="writer crashed"):
        with atomic.atomic_file(path) as temporary:
            temporary.write_text("half of the new")
            raise RuntimeError("writer crashed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]
    with pytest.raises(RuntimeError, match="writer crashed"):
        with atomic.atomic_file(tmp_path / "fresh.json") as temporary:
            temporary.write_text("half")
            raise RuntimeError("writer crashed")
    assert os.listdir(tmp_path) == ["config.json"]


def test_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "1"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with atomic.atomic_directory(target) as temporary:
        (temporary / "saved_model.pb").write_text("new")
        (temporary / "variables").mkdir()
        (temporary / "variables" / "v.data").write_text("w")
        assert sorted(os.listdir(target)) == ["old.pb"]
    assert sorted(os.listdir(target)) == ["saved_model.pb", "variables"]
    assert os.listdir(tmp_path) == ["1"]


def test_crash_in_the_directory_writer_keeps_the_old_directory_and_leaves_no_debris(tmp_path):
    target = tmp_path / "1"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    with pytest.raises(RuntimeError, match="writer crashed"):
        with atomic.atomic_directory(target) as temporary:
            (temporary / "saved_model.pb").write_text("half")
            raise RuntimeError("writer crashed")
    assert os.listdir(tmp_path) == ["1"] and (target / "saved_model.pb").read_text() == "old"


def test_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    target = tmp_path / "1"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    real_replace = os.replace

    def fail_moving_the_new_one_in(source, destination):
        if str(destination) == str(target) and ".tmp" in str(source):
            raise OSError("rename failed")
        return real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "replace", fail_moving_the_new_one_in)
    with pytest.raises(OSError, match="rename failed"):
        with atomic.atomic_directory(target) as temporary:
            (temporary / "saved_model.pb").write_text("new")
    assert os.listdir(tmp_path) == ["1"] and (target / "saved_model.pb").read_text() == "old"


def test_bad_targets_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"directory '.*missing' does not exist"):
        with atomic.atomic_file(tmp_path / "missing" / "x.json"):
            pass
    with pytest.raises(IsADirectoryError, match="is a directory"):
        with atomic.atomic_file(tmp_path):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="a file of that name exists"):
        with atomic.atomic_directory(tmp_path / "file"):
            pass


def test_a_full_disk_is_an_error_naming_the_file_and_its_directory_and_keeps_the_old_content(tmp_path):
    import errno

    path = tmp_path / "ckpt-2.weights.h5"
    path.write_bytes(b"old")
    with pytest.raises(atomic.NoSpaceError) as raised:
        with atomic.atomic_file(path) as temporary:
            with open(temporary, "wb"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write on a full disk raises
    assert isinstance(raised.value, OSError) and raised.value.errno == errno.ENOSPC
    assert str(raised.value).startswith(f"No space left on device: could not write {path} ")
    assert f"the directory {tmp_path} " in str(raised.value)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == [path.name]
    with pytest.raises(atomic.NoSpaceError, match=f"could not write {tmp_path / 'export'} "):
        with atomic.atomic_directory(tmp_path / "export"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert os.listdir(tmp_path) == [path.name]
    with pytest.raises(PermissionError):  # other errors stay as they are
        with atomic.atomic_file(path):
            raise PermissionError(errno.EACCES, "denied")


def test_save_weights_writes_a_loadable_file_with_its_attributes(tmp_path):
    import h5py
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = atomic.save_weights(model, tmp_path / "model.weights.h5", attributes={"note": '{"a": 1}'})
    assert path == tmp_path / "model.weights.h5" and os.listdir(tmp_path) == [path.name]
    with h5py.File(path, "r") as f:
        assert f.attrs["note"] == '{"a": 1}'
    copy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    copy.load_weights(path)
    for old, new in zip(model.weights, copy.weights):
        np.testing.assert_array_equal(old.numpy(), new.numpy())
    with pytest.raises(ValueError, match="weights.h5"):  # Keras's own check of the name still applies
        atomic.save_weights(model, tmp_path / "model.h5")

# ------------------------------------------------------- killed writers (real SIGKILL of a subprocess)
def hold(tmp_path, code):
    """A Python subprocess that runs `code` (which prints 'ready' and sleeps inside a write); returns it when ready."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                               cwd=tmp_path, env=dict(os.environ))
    assert process.stdout.readline().strip() == "ready", process.communicate()
    return process


def kill(process):
    process.kill()  # SIGKILL: no finally block, no atexit
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


DIRECTORY_WRITER = """
    import time
    from vidgen_tf import atomic
    with atomic.atomic_directory("zoo/preset") as staging:
        (staging / "config.json").write_text("half")
        print("ready", flush=True)
        time.sleep(600)
"""


def test_a_killed_directory_write_is_cleaned_up_by_the_next_write_and_a_live_one_is_kept(tmp_path):
    (tmp_path / "zoo").mkdir()
    victim = hold(tmp_path, DIRECTORY_WRITER)
    try:
        live = sorted(os.listdir(tmp_path / "zoo"))
        assert [name.rsplit(".", 1)[-1] for name in live] == ["lock", "tmp"], live
        assert atomic.remove_stale(tmp_path / "zoo" / "preset") == []  # its writer is alive: kept
        assert sorted(os.listdir(tmp_path / "zoo")) == live
    finally:
        kill(victim)
    assert sorted(os.listdir(tmp_path / "zoo")) == live  # the debris a kill leaves
    (tmp_path / "zoo" / ".other.0123abcd.tmp").mkdir()  # another name's: not this write's to judge
    with atomic.atomic_directory(tmp_path / "zoo" / "preset") as staging:
        (staging / "config.json").write_text("whole")
    assert sorted(os.listdir(tmp_path / "zoo")) == [".other.0123abcd.tmp", "preset"]
    assert (tmp_path / "zoo" / "preset" / "config.json").read_text() == "whole"


def test_a_killed_file_write_is_cleaned_up_by_the_next_write(tmp_path):
    victim = hold(tmp_path, """
        import time
        from vidgen_tf import atomic
        with atomic.atomic_file("ckpt-2.weights.h5") as temporary:
            temporary.write_bytes(b"half")
            print("ready", flush=True)
            time.sleep(600)
    """)
    kill(victim)
    debris = sorted(os.listdir(tmp_path))
    assert len(debris) == 2 and debris[1].endswith(".tmp.weights.h5"), debris
    atomic.write_bytes(tmp_path / "ckpt-2.weights.h5", b"whole")
    assert os.listdir(tmp_path) == ["ckpt-2.weights.h5"]


def test_a_swap_killed_between_its_renames_gets_the_old_directory_back(tmp_path):
    # What a kill between `path -> .old` and `.tmp -> path` leaves (a writer without a lock file, too).
    (tmp_path / ".preset.0123abcd.old").mkdir()
    (tmp_path / ".preset.0123abcd.old" / "config.json").write_text("old")
    (tmp_path / ".preset.0123abcd.tmp").mkdir()
    assert sorted(atomic.remove_stale(tmp_path / "preset")) == [".preset.0123abcd.old", ".preset.0123abcd.tmp"]
    assert os.listdir(tmp_path) == ["preset"] and (tmp_path / "preset" / "config.json").read_text() == "old"


def test_a_directory_lock_names_its_holder_and_is_released_by_a_kill(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = hold(tmp_path, """
        import time
        from vidgen_tf import atomic
        with atomic.directory_lock("run", command="vidgen train first"):
            print("ready", flush=True)
            time.sleep(600)
    """)
    try:
        with pytest.raises(atomic.DirectoryLockedError, match=rf"pid {holder.pid} .*: vidgen train first") as caught:
            with atomic.directory_lock(run):
                pass
        assert caught.value.holder["pid"] == holder.pid
    finally:
        kill(holder)
    with atomic.directory_lock(run, command="second") as record:  # the kernel released the dead holder's lock
        assert record["pid"] == os.getpid()
        with pytest.raises(atomic.DirectoryLockedError, match="second"):  # one holder, even in one process
            with atomic.directory_lock(run):
                pass
    assert os.listdir(run) == []  # the lock file goes with the lock
