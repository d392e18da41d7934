"""The wheel built from the repository ships the zoo and the metric weights, and finds them once installed."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vidgen_tf import presets

ROOT = Path(__file__).resolve().parent.parent
# What a build reads: the packaging files, the README (the long description) and the two trees it ships.
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "vidgen_tf", "zoo")
# Files of kinds the repository's presets do not hold yet, added to a copied preset to check the patterns.
EXTRA_PRESET_FILES = ("sample.gif", "frame.png", "model.keras")
STRAY_PRESET_FILES = ("__pycache__/card.cpython-311.pyc", "notes.txt", "run.log")


def _files(root):
    return {p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`(source, wheel)`: a copy of the repository's build inputs, with extra files in one preset, and its wheel."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    preset = source / "zoo" / "mocogan_moving_digits"
    for name in EXTRA_PRESET_FILES + STRAY_PRESET_FILES:
        (preset / name).parent.mkdir(exist_ok=True)
        (preset / name).write_bytes(b"not a real " + name.encode())
    out = work / "dist"
    # The build backend of this environment, offline: nothing is downloaded.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(source)],
        capture_output=True, text=True, cwd=work,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = out.glob("vidgen_tf-*.whl")
    return source, wheel


def test_setup_cfg_ships_exactly_the_zoo_file_types():
    from configparser import ConfigParser

    parser = ConfigParser()
    parser.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in parser["options.package_data"]["vidgen_tf.zoo"].split(",")]
    assert sorted(p.removeprefix("*/*") for p in patterns) == sorted(presets.ZOO_FILE_TYPES)


def test_every_zoo_file_is_of_a_shipped_type():
    unshipped = sorted(name for name in _files(ROOT / "zoo")
                       if "__pycache__" not in name and Path(name).suffix not in presets.ZOO_FILE_TYPES)
    assert not unshipped, (f"zoo/ holds {unshipped}, of types the wheel does not ship: add them to "
                           "presets.ZOO_FILE_TYPES and to [options.package_data] vidgen_tf.zoo in setup.cfg")


def test_wheel_holds_the_zoo_and_the_metric_weights(built):
    source, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    zoo = {n.removeprefix("vidgen_tf/zoo/") for n in names if n.startswith("vidgen_tf/zoo/")}
    expected = {n for n in _files(source / "zoo") if n.split("/")[1] not in STRAY_PRESET_FILES
                and not n.split("/")[1].startswith("__pycache__")}
    assert zoo == expected
    assert {f"mocogan_moving_digits/{n}" for n in EXTRA_PRESET_FILES} <= zoo
    assert {"hmm_moving_square/model.weights.h5", "kvae_bouncing_balls/model.weights.h5"} <= zoo
    weights = {f"vidgen_tf/metrics/weights/{n}" for n in _files(ROOT / "vidgen_tf" / "metrics" / "weights")}
    assert weights and weights <= names
    # The presets are data inside the package, never a top-level `zoo` package beside it.
    assert not any(n.startswith("zoo/") for n in names)
    modules = {n for n in names if n.endswith(".py")}
    assert modules == {f"vidgen_tf/{n}" for n in _files(source / "vidgen_tf") if n.endswith(".py")}


# Imports TensorFlow in a fresh process.
def test_installed_wheel_finds_its_presets(built, tmp_path):
    source, wheel = built
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = (
        "import json, vidgen_tf\n"
        "from vidgen_tf import presets\n"
        "print(json.dumps({'module': vidgen_tf.__file__, 'zoo': str(presets.zoo_dir()),\n"
        "                  'presets': vidgen_tf.list_presets(),\n"
        "                  'model': presets.load_preset_config('mocogan_moving_digits')[0]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VIDGEN_ZOO", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["module"]).resolve().is_relative_to(site.resolve())
    assert Path(found["zoo"]).resolve() == (site / "vidgen_tf" / "zoo").resolve()
    assert found["presets"] == sorted(p.name for p in (source / "zoo").iterdir())
    assert found["model"] == "mocogan"
