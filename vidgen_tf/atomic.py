"""Atomic writes: a file or a directory appears complete under its name, or not at all.

The package's one way of writing results (video files, checkpoints, presets, exports):
the content goes to a temporary sibling (same directory, so the same file system), is
flushed to disk with `fsync`, and is renamed over the final name. Readers see either the
old content or the complete new one; a crash or an exception in the writer leaves the
old content in place and no temporary file behind (a hard kill may leave a hidden
`.<name>.*.tmp*` sibling, never a partial file under the real name). A write that fails
because the file system is full raises `NoSpaceError`, naming the file and its directory.
Keras weights go through `save_weights`, which never lets HDF5 itself meet a full disk.

Every write holds a lock file `.<name>.<token>.lock` beside its temporaries (an `flock`,
which the kernel releases when the process dies, even by `kill -9`). The next write to the
same `<name>` removes the temporaries whose lock is free: those of dead writers (and a
swap a kill interrupted is put back: see `remove_stale`). `directory_lock` is the same
kind of lock on a whole directory (a training run's), for the lifetime of a process.

Example:

```python
save_weights(model, "model.weights.h5")
with atomic_file("samples.npz") as temporary:
    np.savez(temporary, videos=videos)
with atomic_directory("exports/mocogan/1") as temporary:
    archive.write_out(str(temporary))
```
"""

import contextlib
import datetime
import errno
import io
import json
import os
import re
import secrets
import shutil
import socket
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so no stale temporaries are recognised either
    fcntl = None

# The errors of a file system that is full (or of a user over their quota).
_NO_SPACE = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


class NoSpaceError(OSError):
    """A write failed because its file system is full: the message names the file and its directory.

    Raised by `atomic_file`, `atomic_directory` and `save_weights` in place of the
    bare `[Errno 28] No space left on device` of the failed write (which names
    nothing); the old content is kept and the temporary removed, as for any failure.
    """

    def __init__(self, code, path):
        path = Path(path)
        super().__init__(code, os.strerror(code), str(path))

    def __str__(self):
        path = Path(self.filename)
        return (f"{self.strerror}: could not write {path} (the directory {path.parent} is on a full file system; "
                "free some space there or write elsewhere).")


def _name_no_space(error, path):
    """`error` as a `NoSpaceError` naming `path` when it is a full file system's, else None."""
    if isinstance(error, OSError) and not isinstance(error, NoSpaceError) and error.errno in _NO_SPACE:
        return NoSpaceError(error.errno, path)
    return None


LOCK_FILE = ".lock"  # `directory_lock`'s file inside the locked directory
_KINDS = ("tmp", "old", "lock")


@contextlib.contextmanager
def _full_disk_named(path):
    """Turns an `OSError` of a full disk (or quota) inside the block into `NoSpaceError` naming `path`."""
    try:
        yield
    except OSError as error:
        named = _name_no_space(error, path)
        if named is None:
            raise
        raise named from error


def _temporary_name(path, kind, token=None):
    # The real suffixes stay last (Keras insists on '.weights.h5', and anything
    # guessing a format from the name sees the right one); the leading dot hides
    # the temporary from globs such as 'ckpt-*.weights.h5'.
    suffixes = "" if kind == "lock" else "".join(path.suffixes)
    return path.parent / f".{path.name}.{token or secrets.token_hex(4)}.{kind}{suffixes}"


def _try_lock(fd):
    """Takes an exclusive flock on `fd` without waiting; False when another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _open_locked(path, create):
    """An fd of `path` holding its flock, or None when another open file holds it; nobody is waited for.

    The lock counts only while `path` still names the locked file: when it was removed (by
    a cleaner, or by its holder as it ended) between our open and our lock, the lock is
    not one on `path`, and FileNotFoundError is raised (as when `path` is missing).

    Args:
        path: Path. The lock file.
        create: bool. Create it, exclusively (FileExistsError when it exists).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL if create else os.O_RDONLY, 0o666)
    try:
        if not _try_lock(fd):
            os.close(fd)
            return None
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    raise FileNotFoundError(f"The lock file {path} was removed while it was taken.")


def _claim(path):
    """`(token, fd)` of a new write to `path`: its lock file, created and held (fd None without fcntl)."""
    if fcntl is None:
        return secrets.token_hex(4), None
    while True:
        token = secrets.token_hex(4)
        try:
            fd = _open_locked(_temporary_name(path, "lock", token), create=True)
        except (FileExistsError, FileNotFoundError):
            continue  # a token in use, or a cleaner took the file we had just made: another token
        if fd is not None:
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return token, fd


def _release(path, token, fd):
    if fd is None:
        return
    _temporary_name(path, "lock", token).unlink(missing_ok=True)  # the temporaries are gone already
    os.close(fd)


def _remove(entry):
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def remove_stale(path):
    """Removes the temporaries of writes to `path` whose writer has died; returns their names.

    A temporary (`.<name>.<token>.tmp*`, `.<name>.<token>.old*`) is stale when its lock
    file `.<name>.<token>.lock` is free (the writer's process ended: the kernel released
    its flock) or missing (a writer without locks, such as an older vidgen_tf). A live
    writer's are kept. When `path` itself is missing and a stale `.old` holds it (a kill
    between the two renames of `atomic_directory`'s swap), the `.old` is renamed back.
    Called by every write of this module before it starts, so debris of a killed write
    is gone at the next write of the same name.

    Args:
        path: str or Path. The final file or directory of the writes.
    """
    path = Path(path)
    if fcntl is None or not path.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.([0-9a-f]{{8}})\.({'|'.join(_KINDS)})(.*)$")
    suffixes = "".join(path.suffixes)
    groups = {}
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        match = pattern.match(name)
        if match and match.group(3) == ("" if match.group(2) == "lock" else suffixes):
            groups.setdefault(match.group(1), []).append(match.group(2))
    removed = []
    for token, kinds in sorted(groups.items()):
        lock = _temporary_name(path, "lock", token)
        fd = None
        # Checked again rather than taken from the listing: a listing may miss a lock
        # file created while it ran, beside a temporary it did list.
        if lock.exists():
            try:
                fd = _open_locked(lock, create=False)
            except FileNotFoundError:
                pass  # its writer just ended, or another cleaner: what is left of the token is debris
            except OSError:
                continue  # a lock we cannot read is not ours to judge
            else:
                if fd is None:
                    continue  # a live writer
        try:
            old = _temporary_name(path, "old", token)
            if "old" in kinds and old.is_dir() and not os.path.lexists(path):
                os.replace(old, path)  # the swap a kill interrupted, undone
                removed.append(old.name)
            for kind in ("tmp", "old"):
                entry = _temporary_name(path, kind, token)
                if os.path.lexists(entry):
                    _remove(entry)
                    removed.append(entry.name)
        finally:
            if fd is not None:
                lock.unlink(missing_ok=True)
                os.close(fd)
    return removed


def fsync(path, directory=False):
    """Flushes a file (or with `directory=True` a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        if not directory:
            raise
    finally:
        os.close(fd)


def _fsync_tree(root):
    for folder, _, files in os.walk(root):
        for name in files:
            fsync(os.path.join(folder, name))
        fsync(folder, directory=True)


def _check_parent(path):
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Cannot write '{path}': directory '{path.parent}' does not exist.")


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path`; on success it is synced and renamed onto `path`.

    The temporary file exists (empty) when the block starts, with the permissions a
    plain `open()` would give (0666 minus the umask, not `mkstemp`'s 0600). On an
    exception it is removed and `path` keeps its old content.

    Args:
        path: str or Path. The final file; its directory must exist.

    Yields:
        The temporary `Path` to write to (a writer may also replace it, e.g. by renaming).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Cannot write '{path}': it is a directory.")
    _check_parent(path)
    remove_stale(path)
    token, lock = _claim(path)  # the token is ours alone: its lock file was created exclusively
    temporary = _temporary_name(path, "tmp", token)
    try:
        with _full_disk_named(path):
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            yield temporary
            fsync(temporary)
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # after a successful rename there is nothing left
        _release(path, token, lock)
    fsync(path.parent, directory=True)


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically; returns `path` as a `Path`."""
    with atomic_file(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a new temporary directory beside `path`; on success it replaces `path` whole.

    When `path` already exists, the old directory is first renamed aside and then
    removed, so for a moment between the two renames `path` is absent; it is never
    a mixture of old and new files. On an exception the temporary directory is
    removed and `path` is left as it was.

    Args:
        path: str or Path. The final directory; its parent must exist.

    Yields:
        The temporary directory `Path` to fill.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"Cannot write directory '{path}': a file of that name exists.")
    _check_parent(path)
    remove_stale(path)
    token, lock = _claim(path)
    temporary = _temporary_name(path, "tmp", token)
    old = None
    try:
        with _full_disk_named(path):
            temporary.mkdir(mode=0o777)  # the umask decides, as for a plain mkdir
            yield temporary
            _fsync_tree(temporary)
            if path.exists():
                old = _temporary_name(path, "old", token)
                os.replace(path, old)
                try:
                    os.replace(temporary, path)
                except BaseException:
                    os.replace(old, path)  # put the old directory back
                    old = None
                    raise
            else:
                os.replace(temporary, path)
    finally:
        for leftover in (temporary, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
        _release(path, token, lock)
    fsync(path.parent, directory=True)


@contextlib.contextmanager
def staging_directory(path):
    """Yields a new, locked scratch directory beside `path` (`.<name>.<token>.tmp<suffixes>`), removed
    at the end of the block whatever happens.

    For writes that move several finished entries out of one scratch folder (an export's SavedModel,
    ONNX file and parity report): the scratch folder is the lock-tracked temporary of `path`, so a
    killed writer's is removed by `remove_stale(path)`, which this call runs first.

    Args:
        path: str or Path. The name the staging belongs to (need not exist); its parent must.
    """
    path = Path(path)
    _check_parent(path)
    remove_stale(path)
    token, lock = _claim(path)
    temporary = _temporary_name(path, "tmp", token)
    try:
        with _full_disk_named(path):
            temporary.mkdir(mode=0o777)
            yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        _release(path, token, lock)


class _WeightsBuffer(io.BytesIO):
    """An in-memory `.weights.h5` for Keras: Keras checks the name's suffix with `str()`."""

    def __init__(self, name):
        super().__init__()
        self.name = str(name)

    def __str__(self):
        return self.name


def save_weights(model, path, attributes=None):
    """Writes `model.save_weights(path)` atomically; `attributes` go on the HDF5 file's root.

    HDF5 (1.14) crashes the process (a segmentation fault when the file is closed,
    after "Exception ignored" tracebacks) when its own writes fail, e.g. on a full
    disk. So the file is made in memory (Keras writes `.weights.h5` into an
    `io.BytesIO`, which cannot run out of space) and written by Python: a full disk
    is then a `NoSpaceError` naming the file, the old file is kept and the temporary
    removed.

    Args:
        model: a Keras model (or anything with its `save_weights`).
        path: str or Path. The file, ending in `.weights.h5`; its directory must exist.
        attributes: dict or None. HDF5 attributes to set on the file's root
            (str, numbers or arrays). Defaults to None.

    Returns:
        `path` as a `Path`.
    """
    import h5py

    path = Path(path)
    buffer = _WeightsBuffer(path)
    model.save_weights(buffer)
    if buffer.getbuffer().nbytes == 0:
        raise RuntimeError(f"Keras wrote no weights into memory for {path}: this Keras does not write "
                           ".weights.h5 files into an io.BytesIO.")
    if attributes:
        with h5py.File(buffer, "a") as f:
            for key, value in attributes.items():
                f.attrs[key] = value
    with atomic_file(path) as temporary:
        with open(temporary, "wb") as f:
            f.write(buffer.getbuffer())
    return path


class DirectoryLockedError(BlockingIOError):
    """`directory_lock` found the directory locked by another process.

    Attributes:
        directory: Path. The locked directory.
        holder: dict. What the holder recorded (`pid`, `host`, `command`, `since`); empty
            when it had not written it yet.
    """

    def __init__(self, directory, holder):
        self.directory, self.holder = Path(directory), holder
        super().__init__(f"{directory} is locked by {describe_holder(holder)}.")


def describe_holder(holder):
    """`pid 123 on host (since ...): command` of a `directory_lock` holder's record."""
    if not holder.get("pid"):
        return "another process (it has not recorded its pid yet)"
    text = f"pid {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else "")
    if holder.get("since"):
        text += f" (since {holder['since']})"
    return text + (f": {holder['command']}" if holder.get("command") else "")


def _read_holder(fd):
    try:
        holder = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def directory_lock(directory, command=None):
    """Holds an exclusive lock on `directory` for the block: `directory/.lock`, flocked.

    The lock file records the holder (pid, host, `command`, start time); a second
    process (or a second lock in this one) raises `DirectoryLockedError` naming it.
    The kernel releases an flock when its process ends, however it ends (`kill -9`
    too), so a dead holder never blocks the next run; the file is removed on exit.

    Args:
        directory: str or Path. An existing directory.
        command: str or None. What holds the lock, for the message of the next one.

    Yields:
        The holder's record, a dict.

    Raises:
        DirectoryLockedError: another process holds the lock.
    """
    directory = Path(directory)
    path = directory / LOCK_FILE
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv),
              "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
    if fcntl is None:
        yield holder
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            recorded = _read_holder(fd)
            os.close(fd)
            raise DirectoryLockedError(directory, recorded)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file as it ended: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        yield holder
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _remove_empty_tree(top):
    """Removes the folders under `top` (and `top`) that hold no files; files are never touched."""
    for folder, _, _ in os.walk(top, topdown=False):
        try:
            os.rmdir(folder)
        except OSError:  # not empty
            pass


@contextlib.contextmanager
def new_directory(path):
    """Makes `path` with its missing parents for the block; when the block raises, takes them away again.

    Only the folders this call made are removed, and only as far as they hold no file
    (a failed run that wrote a checkpoint keeps it): an input error found once the
    output folder exists leaves no empty folder behind.

    Args:
        path: str or Path. The directory.

    Yields:
        `path` as a `Path`.
    """
    path = Path(path)
    made = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if made:
            _remove_empty_tree(made[-1])
        raise
