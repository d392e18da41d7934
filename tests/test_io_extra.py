"""The `io` extra: tensorflow-io's remote filesystems, and the errors when it cannot load.

Which branch runs depends on the lane: the oldest lane (TensorFlow 2.17.x) installs
tensorflow-io 0.37.1 and must load it; the latest lane does not install it and must get
a `MissingExtraError` naming the extra. No test contacts a storage host: only the
registration of schemes with TensorFlow's file layer is checked.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

from vidgen_tf._optional import MissingExtraError
from vidgen_tf.data import remote

pytestmark = pytest.mark.oldest

TF_MINOR = tuple(int(part) for part in tf.__version__.split(".")[:2])
TFIO_INSTALLED = importlib.util.find_spec("tensorflow_io") is not None
# The message must say which extra to install and which TensorFlow it works with.
EXTRA_HINT = r"vidgen-tf\[io\].*TensorFlow <= 2\.17\.1"


class _BrokenOpsFinder:
    """Makes `import tensorflow_io` fail as it does where its compiled ops do not load."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow_io":
            raise OSError("libtensorflow_io.so: undefined symbol: _ZN10tensorflow8OpKernel")
        return None


def _hide_tensorflow_io(monkeypatch):
    """Makes `import tensorflow_io` raise ModuleNotFoundError for this test."""
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("s3://bucket/videos/shard-0.tfrecord", True),
        ("hdfs://namenode:8020/videos", True),
        ("gs://bucket/videos", True),
        ("viewfs://cluster/videos", True),
        (b"s3://bucket/key", True),
        ("/data/videos/clip.mp4", False),
        ("relative/clip.mp4", False),
        (pathlib.Path("/data/clip.mp4"), False),
        ("file:///data/clip.mp4", False),
        ("ram://cache/clip", False),
        ("C:\\data\\clip.mp4", False),
        ("s3:/bucket/key", False),  # one slash: a local name with a colon, not a URL
        ("", False),
    ],
)
def test_needs_remote_filesystem(path, expected):
    assert remote.needs_remote_filesystem(path) is expected


def test_path_scheme_keeps_the_scheme_as_written():
    assert remote.path_scheme("hdfs://namenode:8020/x") == "hdfs"
    assert remote.path_scheme("s3+custom://bucket/x") == "s3+custom"
    assert remote.path_scheme("S3://bucket/x") == "S3"
    assert remote.path_scheme("/local/x") is None


def test_paths_of_the_wrong_type_name_the_argument():
    with pytest.raises(TypeError, match=r"`path` must be a str.*got int: 3"):
        remote.needs_remote_filesystem(3)
    with pytest.raises(TypeError, match=r"`path` must be a str.*got NoneType"):
        remote.ensure_filesystem_for(None)


def test_tensorflow_serves_gs_and_local_paths_without_the_extra():
    assert {"file", "gs", "ram"} <= set(remote.registered_schemes())
    assert "" not in remote.registered_schemes()
    assert remote.ensure_filesystem_for("gs://bucket/clip.tfrecord") == "gs"
    assert remote.ensure_filesystem_for("/tmp/clip.tfrecord") is None
    assert remote.ensure_filesystem_for("file:///tmp/clip.tfrecord") == "file"


def test_tensorflow_io_is_present_and_loads_on_tensorflow_2_17():
    """Guards the oldest lane: a missing or broken tensorflow-io must fail, not skip."""
    if TF_MINOR <= (2, 17):
        assert TFIO_INSTALLED, (
            f"TensorFlow {tf.__version__} lane without tensorflow-io: install it with "
            "pip install -c constraints/oldest.txt -e '.[test,io]'"
        )
        import tensorflow_io

        assert tensorflow_io.__version__ == "0.37.1"
        assert "s3" in remote.enable_remote_filesystems()
    else:
        # TensorFlow 2.18+: tensorflow-io is absent, or present with plugins that do not
        # load; either way enabling must fail and say where it works.
        with pytest.raises(MissingExtraError, match=f"(?s){EXTRA_HINT}"):
            remote.enable_remote_filesystems()


@pytest.mark.io
@pytest.mark.skipif(
    not TFIO_INSTALLED,
    reason="tensorflow-io not installed (latest lane); covered there by "
    "test_enable_without_tensorflow_io_names_the_extra and guarded on TF 2.17 by "
    "test_tensorflow_io_is_present_and_loads_on_tensorflow_2_17",
)
def test_enable_registers_s3_and_hdfs():
    schemes = remote.enable_remote_filesystems()
    assert {"s3", "hdfs", "viewfs", "gs", "file"} <= set(schemes)
    assert schemes == sorted(schemes)
    assert "s3" in tf.io.gfile.get_registered_schemes()
    # Enabling twice is harmless and gives the same answer.
    assert remote.enable_remote_filesystems() == schemes


@pytest.mark.io
@pytest.mark.skipif(not TFIO_INSTALLED, reason="tensorflow-io not installed (latest lane)")
def test_ensure_filesystem_for_remote_schemes_with_tensorflow_io():
    assert remote.ensure_filesystem_for("s3://bucket/videos/shard-0.tfrecord") == "s3"
    assert remote.ensure_filesystem_for("hdfs://namenode:8020/videos") == "hdfs"
    with pytest.raises(ValueError, match=r"'nosuchfs://' scheme of path 'nosuchfs://x/y'"):
        remote.ensure_filesystem_for("nosuchfs://x/y")


@pytest.mark.skipif(TFIO_INSTALLED, reason="tensorflow-io is installed (oldest lane)")
def test_enable_without_tensorflow_io_names_the_extra():
    with pytest.raises(MissingExtraError, match=f"(?s){EXTRA_HINT}") as info:
        remote.enable_remote_filesystems()
    assert "Reading s3:// or hdfs:// paths" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(MissingExtraError, match=f"(?s)'s3://' scheme.*{EXTRA_HINT}"):
        remote.ensure_filesystem_for("s3://bucket/key")


def test_hidden_tensorflow_io_gives_missing_extra_error(monkeypatch):
    """The latest lane's error, reproduced on every lane."""
    _hide_tensorflow_io(monkeypatch)
    with pytest.raises(MissingExtraError, match=f"(?s){EXTRA_HINT}") as info:
        remote.enable_remote_filesystems()
    assert "'tensorflow_io'" in str(info.value)
    # A scheme TensorFlow does not serve: the message names it and the extra.
    monkeypatch.setattr(remote, "registered_schemes", lambda: ["file", "gs", "ram"])
    with pytest.raises(MissingExtraError, match=f"(?s)'hdfs://' scheme.*{EXTRA_HINT}"):
        remote.ensure_filesystem_for("hdfs://namenode/videos")


def test_broken_tensorflow_io_ops_give_missing_extra_error(monkeypatch):
    """tensorflow-io on TensorFlow 2.18+: its shared libraries fail to load."""
    monkeypatch.delitem(sys.modules, "tensorflow_io", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenOpsFinder(), *sys.meta_path])
    with pytest.raises(MissingExtraError, match=f"(?s)OSError: .*undefined symbol.*{EXTRA_HINT}"):
        remote.enable_remote_filesystems()


def test_tensorflow_io_without_s3_plugin_gives_missing_extra_error(monkeypatch):
    """tensorflow-io only warns when its filesystem plugins fail; that must still fail here."""

    class _SilentModule:
        __name__ = "tensorflow_io"

    monkeypatch.setitem(sys.modules, "tensorflow_io", _SilentModule())
    monkeypatch.setattr(remote, "registered_schemes", lambda: ["file", "gs", "ram"])
    with pytest.raises(MissingExtraError, match=r"(?s)registered no 's3' filesystem.*vidgen-tf\[io\]"):
        remote.enable_remote_filesystems()


def test_fresh_process_loads_tensorflow_io_only_on_demand():
    """`import vidgen_tf` never imports tensorflow_io; s3:// imports it (or fails clearly)."""
    code = "\n".join(
        [
            "import json, sys",
            "import vidgen_tf",
            "from vidgen_tf.data import remote",
            "out = {'after_import': 'tensorflow_io' in sys.modules}",
            "out['before'] = remote.registered_schemes()",
            "remote.ensure_filesystem_for('gs://bucket/clip.tfrecord')",
            "remote.ensure_filesystem_for('/tmp/clip.tfrecord')",
            "out['after_gs'] = 'tensorflow_io' in sys.modules",
            "try:",
            "    out['s3'] = remote.ensure_filesystem_for('s3://bucket/clip.tfrecord')",
            "except Exception as error:",
            "    out['s3'] = type(error).__name__ + ': ' + str(error)",
            "out['after_s3'] = remote.registered_schemes()",
            "print('RESULT' + json.dumps(out))",
        ]
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    assert out["after_import"] is False
    assert out["after_gs"] is False
    assert "s3" not in out["before"] and "gs" in out["before"]
    if TFIO_INSTALLED and TF_MINOR <= (2, 17):
        assert out["s3"] == "s3"
        assert {"s3", "hdfs"} <= set(out["after_s3"])
    else:
        assert out["s3"].startswith("MissingExtraError: Path 's3://bucket/clip.tfrecord'")
        assert "vidgen-tf[io]" in out["s3"] and "TensorFlow <= 2.17.1" in out["s3"]
        assert "s3" not in out["after_s3"]
