"""Atomic writes: a file or a directory appears complete under its name, or not at all.

The package's one way of writing results (video files, checkpoints, presets, exports):
the content goes to a temporary sibling (same directory, so the same file system), is
flushed to disk with `fsync`, and is renamed over the final name. Readers see either the
old content or the complete new one; a crash or an exception in the writer leaves the
old content in place and no temporary file behind (a hard kill may leave a hidden
`.<name>.*.tmp*` sibling, never a partial file under the real name).

Example:

```python
with atomic_file("model.weights.h5") as temporary:
    model.save_weights(temporary)
with atomic_directory("exports/mocogan/1") as temporary:
    archive.write_out(str(temporary))
```
"""

import contextlib
import os
import secrets
import shutil
from pathlib import Path


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
    finally:
        for leftover in (temporary, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    fsync(path.parent, directory=True)
