"""Remote storage for the data pipeline: `s3://`, `hdfs://` and other URL paths.

TensorFlow's file layer (`tf.io.gfile`, `tf.data.TFRecordDataset`, `tf.saved_model`)
dispatches on a path's URL scheme. TensorFlow serves `gs://` (and local / `ram://`
paths) by itself; `s3://`, `hdfs://`, `viewfs://`, `har://`, `http(s)://`, `az://` and
`oss://` come from tensorflow-io's filesystem plugins, which register themselves when
`tensorflow_io` is imported. tensorflow-io 0.37.1 is its last release and its compiled
plugins load only with TensorFlow <= 2.17.1, so it is the optional `io` extra and is
imported here on demand, never by `import vidgen_tf`.

Example:
    >>> from vidgen_tf.data import remote
    >>> remote.needs_remote_filesystem("s3://bucket/videos/shard-0.tfrecord")
    True
    >>> remote.ensure_filesystem_for("gs://bucket/videos")  # built in, no extra needed
    'gs'
"""

import logging
import os
import re
import warnings

import tensorflow as tf

from vidgen_tf._optional import MissingExtraError, require

logger = logging.getLogger(__name__)

# RFC 3986 scheme followed by "://"; "C:\\data" or "s3:/x" are not URLs.
_SCHEME_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# Schemes that name storage on this machine, so never need a remote filesystem.
LOCAL_SCHEMES = ("file", "ram")
_IO_FEATURE = "Reading s3:// or hdfs:// paths"
_IO_INSTALL = "pip install 'vidgen-tf[io]' (tensorflow-io 0.37.1, TensorFlow <= 2.17.1 only)"


def _as_text(path):
    """`path` as a str, or a TypeError naming the argument."""
    if isinstance(path, bytes):
        return path.decode("utf-8")
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"`path` must be a str, bytes or os.PathLike, got {type(path).__name__}: {path!r}."
        ) from None
    return path.decode("utf-8") if isinstance(path, bytes) else path


def path_scheme(path):
    """The URL scheme of `path` as written ("s3" for "s3://b/k"), or None for a plain path.

    Args:
        path: str, bytes or os.PathLike. A file or directory path or URL.

    Returns:
        The scheme string, or None when `path` has no `scheme://` prefix.
    """
    match = _SCHEME_PATTERN.match(_as_text(path))
    return match.group(1) if match else None


def needs_remote_filesystem(path):
    """Whether `path` is a URL on remote storage (`s3://`, `hdfs://`, `gs://`, ...).

    Plain paths, `file://` and `ram://` URLs are local. A remote path may still be served
    by TensorFlow itself (`gs://`); `ensure_filesystem_for` tells whether it is.

    Args:
        path: str, bytes or os.PathLike. A file or directory path or URL.

    Returns:
        bool. True when `path` has a URL scheme other than `file` and `ram`.
    """
    scheme = path_scheme(path)
    return scheme is not None and scheme not in LOCAL_SCHEMES


def registered_schemes():
    """The URL schemes TensorFlow's file layer serves now, sorted (plain paths excluded)."""
    return sorted(scheme for scheme in tf.io.gfile.get_registered_schemes() if scheme)


def enable_remote_filesystems():
    """Registers tensorflow-io's filesystems (`s3`, `hdfs`, ...) with TensorFlow.

    Importing `tensorflow_io` loads its filesystem plugins; importing it again is cheap.

    Returns:
        The sorted list of schemes TensorFlow serves afterwards, e.g.
        `['az', 'file', 'gs', 'har', 'hdfs', 'http', 'https', 'oss', 'ram', 's3', 'viewfs']`.

    Raises:
        MissingExtraError: tensorflow-io is not installed, fails to import, or imported
            without registering `s3` (its compiled plugins do not load on TensorFlow
            2.18+, which tensorflow-io only reports as a warning).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        require("tensorflow_io", "io", _IO_FEATURE)
    schemes = registered_schemes()
    if "s3" not in schemes:
        reasons = "; ".join(str(w.message) for w in caught) or "no warning was given"
        raise MissingExtraError(
            f"{_IO_FEATURE} needs tensorflow-io's filesystem plugins, but importing "
            f"'tensorflow_io' registered no 's3' filesystem with TensorFlow {tf.__version__} "
            f"(registered schemes: {schemes}; tensorflow-io said: {reasons}). "
            f"Install a working pair with: {_IO_INSTALL}."
        )
    for caught_warning in caught:  # harmless on a working install; kept for debugging
        logger.debug("tensorflow-io warned on import: %s", caught_warning.message)
    logger.info("tensorflow-io filesystems registered: %s", schemes)
    return schemes


def ensure_filesystem_for(path):
    """Makes sure TensorFlow can open `path`, loading tensorflow-io only when needed.

    Args:
        path: str, bytes or os.PathLike. A file or directory path or URL.

    Returns:
        The path's scheme (e.g. "s3"), or None for a plain local path.

    Raises:
        MissingExtraError: the scheme is not built into TensorFlow and the `io` extra is
            missing or broken; the message names the scheme and the extra.
        ValueError: no filesystem serves the scheme, even with tensorflow-io loaded.
    """
    scheme = path_scheme(path)
    if scheme is None or scheme in registered_schemes():
        return scheme
    try:
        schemes = enable_remote_filesystems()
    except MissingExtraError as error:
        raise MissingExtraError(
            f"Path {_as_text(path)!r} uses the '{scheme}://' scheme, which TensorFlow "
            f"{tf.__version__} does not serve by itself (it serves: {registered_schemes()}). "
            f"{error}"
        ) from error
    if scheme not in schemes:
        raise ValueError(
            f"No filesystem serves the '{scheme}://' scheme of path {_as_text(path)!r}, "
            f"even with the `io` extra (tensorflow-io) loaded. Registered schemes: {schemes}."
        )
    return scheme


__all__ = [
    "LOCAL_SCHEMES",
    "enable_remote_filesystems",
    "ensure_filesystem_for",
    "needs_remote_filesystem",
    "path_scheme",
    "registered_schemes",
]
