"""SavedModel versions are written through the package's atomic-directory helper."""

import os

import pytest

import vidgen_tf
from vidgen_tf import exporting

TINY_MOCOGAN = dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                    generator_width=4, discriminator_width=4)


class _Archive:
    """Stands in for `keras.export.ExportArchive`: writes a file, then maybe fails."""

    def __init__(self, fail):
        self.fail = fail

    def write_out(self, directory, verbose=False):
        with open(os.path.join(directory, "saved_model.pb"), "w") as f:
            f.write("new")
        if self.fail:
            raise RuntimeError("export crashed midway")


def test_a_crash_while_overwriting_a_version_keeps_the_old_one_and_no_debris(tmp_path, monkeypatch):
    model = vidgen_tf.build("mocogan", **TINY_MOCOGAN)
    base = tmp_path / "serving" / "mocogan"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("old")

    monkeypatch.setattr(exporting, "_build_archive", lambda model, limits: _Archive(fail=True))
    with pytest.raises(RuntimeError, match="export crashed midway"):
        exporting.export_savedmodel(model, tmp_path / "serving", version=1, overwrite=True)
    assert os.listdir(base) == ["1"] and (base / "1" / "saved_model.pb").read_text() == "old"
    with pytest.raises(RuntimeError, match="export crashed midway"):
        exporting.export_savedmodel(model, tmp_path / "serving", version=2)
    assert os.listdir(base) == ["1"]

    monkeypatch.setattr(exporting, "_build_archive", lambda model, limits: _Archive(fail=False))
    target = exporting.export_savedmodel(model, tmp_path / "serving", version=1, overwrite=True)
    assert target == base / "1" and os.listdir(base) == ["1"]
    assert sorted(os.listdir(target)) == ["assets", "saved_model.pb"] and (target / "saved_model.pb").read_text() == "new"
    assert os.listdir(target / "assets") == ["vidgen_export.json"]  # the description, written inside the swap
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        exporting.export_savedmodel(model, tmp_path / "serving", version=1)


TINY_HMM = dict(num_frames=4, height=2, width=2, channels=1, num_states=3)


@pytest.mark.large
def test_a_full_disk_leaves_no_parity_report_for_an_onnx_file_never_written(tmp_path, monkeypatch):
    import errno

    model = vidgen_tf.build("hmm", **TINY_HMM)
    version_dir = exporting.export_savedmodel(model, tmp_path / "serving")
    real = exporting.write_bytes

    def full_disk(path, data):
        if str(path).endswith(".onnx"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(exporting, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        exporting.export_onnx(model, tmp_path / "hmm.onnx", savedmodel_dir=version_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving"]  # no hmm.onnx.parity.json


def _can_mount_tmpfs():
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.large
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -r -m` (user and mount namespaces) for a tmpfs")
def test_a_real_full_disk_leaves_no_parity_report_for_an_onnx_file_never_written(tmp_path):
    import subprocess
    import sys

    disk = tmp_path / "disk"  # a 4 KiB tmpfs: a parity report fits, the ONNX file does not
    disk.mkdir()
    script = f"""
import vidgen_tf
from vidgen_tf import exporting
model = vidgen_tf.build("hmm", **{TINY_HMM!r})
version = exporting.export_savedmodel(model, {str(tmp_path / "serving")!r})
try:
    exporting.export_onnx(model, {str(disk / "hmm.onnx")!r}, savedmodel_dir=version)
except OSError as error:
    print("refused:", error)
"""
    mount = f"mount -t tmpfs -o size=4k tmpfs {disk} && {sys.executable} -c \"$0\" && ls -A {disk}"
    result = subprocess.run(["unshare", "-r", "-m", "sh", "-c", mount, script], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("refused:") and "No space left on device" in line for line in lines), result.stdout
    assert lines[-1].startswith("refused:")  # `ls -A` of the tmpfs printed nothing: no file, no temporary
