"""`vidgen` prints its own lines: TensorFlow's C++ and Python log lines only under `--verbose`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# TensorFlow's C++ log prefix (`I0000 00:00:1796610437.165079   23880 port.cc:153] ...`), absl's
# start-up warning, and the Python loggers of TensorFlow and tf2onnx.
LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.]+:\d+\]|absl::InitializeLog|"
                      r"^(WARNING|INFO|ERROR):(tensorflow|tf2onnx|absl)|tf2onnx\.|rebuild TensorFlow")


def _vidgen(*args, cwd):
    # No TF_CPP_MIN_LOG_LEVEL from the test session: the command must quiet TensorFlow itself.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "vidgen_tf.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    return done.returncode, (done.stdout + done.stderr).splitlines()


@pytest.mark.large
def test_export_prints_only_its_own_lines(tmp_path):
    code, lines = _vidgen("export", "hmm_moving_square", "--out", "ex", "--format", "savedmodel,onnx", cwd=tmp_path)
    assert code == 0, "\n".join(lines)
    assert [line.split(":")[0] for line in lines] == ["savedmodel", "onnx", "models.config", "batching.config"], \
        "\n".join(lines)


def test_generate_prints_one_line_and_verbose_shows_tensorflow_s(tmp_path):
    code, lines = _vidgen("generate", "hmm_moving_square", "--num", "2", "--out", "a.gif", cwd=tmp_path)
    assert code == 0 and lines == ["wrote a.gif (2 videos of 16 frames)"], "\n".join(lines)
    # The same command with --verbose hides nothing: TensorFlow's start-up lines are there.
    code, lines = _vidgen("generate", "hmm_moving_square", "--num", "2", "--out", "b.gif", "--verbose", cwd=tmp_path)
    assert code == 0 and any(LOG_LINE.search(line) for line in lines), "\n".join(lines)


def test_a_failed_tensorflow_import_still_shows_what_it_printed(tmp_path):
    # A TensorFlow that cannot load must not fail silently: its output comes back with the error.
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True)
    (fake / "tensorflow" / "__init__.py").write_text(
        "import os\nos.write(2, b'native loader: libtensorflow.so missing\\n')\nraise ImportError('no tensorflow')\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(ROOT)])
    done = subprocess.run([sys.executable, "-m", "vidgen_tf.cli", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "native loader: libtensorflow.so missing" in done.stderr and "no tensorflow" in done.stderr


def test_import_vidgen_tf_loads_no_tensorflow():
    # What lets the command silence TensorFlow before it loads (the public names load on first use).
    code = "import sys, vidgen_tf; assert 'tensorflow' not in sys.modules; vidgen_tf.build; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr
