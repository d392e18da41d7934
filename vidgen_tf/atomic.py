"""Atomic writes: a file or a directory appears complete under its name, or not at all.

The package's one way of writing results (video files, checkpoints, presets, exports):
the content goes to a temporary sibling (same directory, so the same file system), is
flushed to disk with `fsync`, and is renamed over the final name. Readers see either the
old content or the complete new one; a crash or an exception in the writer leaves the
old content in place and no temporary file behind (a hard kill may leave a hidden
`.<name>.*.tmp*` sibling, never a partial file under the real name). A write that fails
because the file system is full raises `NoSpaceError`, naming the file and its directory.
Keras weights go through `save_weights`, which never lets HDF5 itself meet a full disk.

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
import errno
import io
import os
import secrets
import shutil
from pathlib import Path


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


def _temporary_name(path, kind):
    # The real suffixes stay last (Keras insists on '.weights.h5', and anything
    # guessing a format from the name sees the right one); the leading dot hides
    # the temporary from globs such as 'ckpt-*.weights.h5'.
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.{kind}{''.join(path.suffixes)}"


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
    while True:
        temporary = _temporary_name(path, "tmp")
        try:
            # O_EXCL: never reuse a name another writer holds.
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temporary
        fsync(temporary)
        os.replace(temporary, path)
    except OSError as error:
        named = _name_no_space(error, path)
        if named is None:
            raise
        raise named from error
    finally:
        temporary.unlink(missing_ok=True)  # after a successful rename there is nothing left
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
    temporary = _temporary_name(path, "tmp")
    temporary.mkdir(mode=0o777)  # the umask decides, as for a plain mkdir
    old = None
    try:
        yield temporary
        _fsync_tree(temporary)
        if path.exists():
            old = _temporary_name(path, "old")
            os.replace(path, old)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(old, path)  # put the old directory back
                old = None
                raise
        else:
            os.replace(temporary, path)
    except OSError as error:
        named = _name_no_space(error, path)
        if named is None:
            raise
        raise named from error
    finally:
        for leftover in (temporary, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    fsync(path.parent, directory=True)


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
