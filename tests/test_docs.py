"""The documentation cannot drift: its code blocks run here.

Every fenced block of README.md, docs/*.md and export/README.md is one of:

- ```python: run. A page's python blocks run in order in one namespace, in a fresh working
  directory (a page reads top to bottom, so a later block may use an earlier block's names).
  A page that reads files a user brings (a folder of videos, an I3D SavedModel) gets small
  stand-ins made here first (`FIXTURES`), under the names the page uses.
- ```console: a transcript. Each `$ vidgen ...` line is run (as `python -m vidgen_tf.cli`) in a
  fresh working directory; its exit code must be the one shown (`echo "exit $?"`, else 0) and
  every output line shown must appear, in order, in the real output, with numbers masked
  (timings and figures move between machines; the words, flags and layout must not). A line
  `...` stands for any number of lines. Transcripts that cost minutes are named in `TOO_SLOW`
  with the reason; that list is checked too, so it cannot hide a block that no longer exists.
- ```sh: a command to copy that is not a `vidgen` transcript: the README's two commands (the
  test command must be the one `.ci/run` runs; the quick start's transcript is run as a console
  block), and commands of programs this machine lacks (docker, TF Serving), named in
  `NOT_RUNNABLE` with the reason.
- ```yaml: a manifest for a cluster this machine lacks (KServe): not applied. A KServe
  `InferenceService` must serve a vidgen Triton repository as the page says (predictor `triton`,
  `protocolVersion: v2`, a `storageUri`).
- ```text: output shown as-is (a benchmark's table, a usage summary, a tree) — not code. The
  usage summaries and the repository tree are still checked: every flag a usage line names is
  one the parser knows, and every path the tree names exists.

A block with no language is an error: each block says what it is.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / "docs" / "*.md"))),
         "export/README.md"]
KINDS = ("python", "console", "sh", "text", "yaml")

# page, first command of the transcript -> why CI does not run it (each still must exist).
TOO_SLOW = {
    ("docs/metrics.md", "vidgen eval tgan_moving_digits --metrics fvd --num-videos 2048 --window start --feature-net "
                        "fvd=i3d-kinetics-400_1 --feature-spec i3d-kinetics-400 --feature-signature default "
                        "--feature-output default"):
        "reads the user's I3D SavedModel (transcripts get no fixtures) and scores 2 x 2048 clips at 16x224x224 "
        "(a minute with a stand-in, far longer with I3D)",
    ("docs/data.md", "vidgen data check videos"):
        "needs the 31 files bench/input_pipeline.py makes from FFmpeg's test sources",
    ("export/README.md", "vidgen export --all-presets --out /tmp/zoo_export --base-path /models"):
        "exports every preset of the zoo to SavedModel and ONNX (minutes)",
    ("export/README.md", "python export/onnx_client.py /tmp/zoo_export/hmm_moving_square.onnx --num 4 --frames 24 --seed 1 --out hmm_onnx.gif"):
        "reads the export of the whole zoo made by the transcript above",
}

# page, first line of an sh block -> why it cannot run here.
NOT_RUNNABLE = {
    ("export/README.md", "docker run -p 8500:8500 -p 8501:8501 -v DIR:/models tensorflow/serving \\"):
        "no docker engine and no TF Serving binary on this machine (tests/serving_standins.py stands in)",
}


def blocks(page):
    """[(line number, language, text)] of the fenced blocks of `page`."""
    lines = (ROOT / page).read_text().split("\n")
    found, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language, start = lines[i][3:].strip(), i
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            found.append((start + 1, language, "\n".join(lines[start + 1:i])))
        i += 1
    return found


def test_every_block_says_what_it_is():
    unlabelled = [f"{page}:{line} {language!r}" for page in PAGES for line, language, _ in blocks(page)
                  if language not in KINDS]
    assert not unlabelled, f"blocks without a known language ({', '.join(KINDS)}): {unlabelled}"


def test_the_readme_commands_are_the_ones_ci_and_the_tests_run():
    commands = [text.strip() for _, language, text in blocks("README.md") if language == "sh"]
    assert len(commands) == 2, f"the README shows {len(commands)} sh commands, not its two"
    install, tests = commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, f"the README's test command is not the one .ci/run runs: {tests}"
    assert install.endswith("&& .venv/bin/vidgen quickstart") and install.split(" && ")[0] == tests.split(" && ")[0]
    others = {(page, text.split("\n")[0]) for page in PAGES if page != "README.md"
              for _, language, text in blocks(page) if language == "sh"}
    assert others == set(NOT_RUNNABLE), f"sh blocks not run and not explained: {others - set(NOT_RUNNABLE)}"


# --- python blocks -------------------------------------------------------------------------------


def _ucf_folder(directory):
    """`UCF-101/`: two class folders of 32 short videos each (the page packs 64 shards), as UCF-101 is laid out."""
    sys.path.insert(0, str(ROOT / "tests"))
    import video_files

    for label in ("ApplyEyeMakeup", "Basketball"):
        for i in range(32):
            video_files.write_video(directory / "UCF-101" / label / f"v_{label}_g{i:02d}_c01.mp4", num_frames=48,
                                    height=48, width=64)


def _i3d_stand_in(directory):
    """`i3d_savedmodel/`: a stand-in for TF-Hub's i3d-kinetics-400/1 in its format (a TF1-Hub SavedModel: tags [],
    signature `default`, output `default`; 16x224x224x3 in [-1, 1] -> 400 logits), as users have it."""
    from tests import model_harness

    model_harness.write_tf1_hub_feature_net(directory / "i3d_savedmodel", classes=400, frames=16, side=224)


FIXTURES = {"docs/data.md": _ucf_folder, "docs/metrics.md": _i3d_stand_in}
PYTHON_PAGES = [page for page in PAGES if any(language == "python" for _, language, _ in blocks(page))]


@pytest.mark.large
@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if page in FIXTURES:
        FIXTURES[page](tmp_path)
    namespace = {"__name__": "__docs__"}
    for line, language, code in blocks(page):
        if language != "python":
            continue
        try:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)
        except Exception as error:  # the page and line make the failure readable
            raise AssertionError(f"the python block at {page}:{line} failed: {type(error).__name__}: {error}") from error
    capsys.readouterr()


# --- console transcripts --------------------------------------------------------------------------


def transcripts(page):
    """[(line, [(command, expected exit code, [expected lines])])] of a page's console blocks."""
    found = []
    for line, language, text in blocks(page):
        if language != "console":
            continue
        steps = []
        for row in text.split("\n"):
            if row.startswith("$ "):
                command = row[2:]
                code = 0
                if command.endswith('; echo "exit $?"'):
                    command, code = command[: -len('; echo "exit $?"')], None
                steps.append([command, code, []])
            elif steps:
                if steps[-1][1] is None and row.startswith("exit "):
                    steps[-1][1] = int(row.split()[1])
                else:
                    steps[-1][2].append(row)
        found.append((line, [tuple(step) for step in steps]))
    return found


def _mask(text):
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", text).strip()


def _check_output(expected, actual):
    """Every expected line, masked, appears in order in `actual`; `...` skips any lines."""
    actual = [_mask(row) for row in actual.split("\n")]
    position = 0
    for row in expected:
        if row.strip() == "...":
            continue
        want = _mask(row)
        while position < len(actual) and actual[position] != want:
            position += 1
        assert position < len(actual), f"line not found in order: {row!r}"
        position += 1


CONSOLE = [(page, line, steps) for page in PAGES for line, steps in transcripts(page)]


def test_too_slow_names_existing_transcripts():
    firsts = {(page, steps[0][0]) for page, _, steps in CONSOLE if steps}
    assert set(TOO_SLOW) <= firsts, f"TOO_SLOW names transcripts no page holds: {set(TOO_SLOW) - firsts}"


@pytest.mark.large
@pytest.mark.parametrize("page,line,steps", [c for c in CONSOLE if (c[0], c[2][0][0]) not in TOO_SLOW],
                         ids=[f"{c[0]}:{c[1]}" for c in CONSOLE if (c[0], c[2][0][0]) not in TOO_SLOW])
def test_console_transcripts_reproduce(page, line, steps, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for command, code, expected in steps:
        words = command.split()
        assert words[0] == "vidgen", f"{page}:{line}: only vidgen commands are run here, got {command!r}"
        done = subprocess.run(f"{sys.executable} -m vidgen_tf.cli {command[len('vidgen '):]}", shell=True,
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        output = done.stdout + done.stderr
        assert done.returncode == code, f"{page}:{line}: {command!r} exited {done.returncode}:\n{output}"
        try:
            _check_output(expected, output)
        except AssertionError as error:
            raise AssertionError(f"{page}:{line}: {command!r}: {error}\nactual output:\n{output}") from None


# --- yaml manifests --------------------------------------------------------------------------------


def test_kserve_manifests_serve_a_triton_repository():
    manifests = [(page, line, text) for page in PAGES for line, language, text in blocks(page)
                 if language == "yaml" and "kind: InferenceService" in text]
    assert manifests, "no page shows a KServe InferenceService"
    for page, line, text in manifests:
        rows = [row.strip() for row in text.split("\n")]
        for wanted in ("apiVersion: serving.kserve.io/v1beta1", "predictor:", "triton:", "protocolVersion: v2"):
            assert wanted in rows, f"{page}:{line}: the InferenceService has no {wanted!r}"
        assert any(row.startswith("storageUri: ") for row in rows), f"{page}:{line}: no storageUri"


# --- text blocks that name things that must exist -----------------------------------------------


def _parser():
    from vidgen_tf.cli import build_parser

    return build_parser()


def _flags_of(parser):
    flags = set()
    for action in parser._actions:
        flags.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _flags_of(sub)
    return flags


def test_usage_summaries_name_real_flags():
    known = _flags_of(_parser())
    named = set()
    for line, language, text in blocks("docs/cli.md"):
        if language == "text":
            named |= set(re.findall(r"(--[a-z][a-z0-9-]*)", text))
    assert named, "docs/cli.md has no usage summary"
    assert named <= known, f"docs/cli.md names flags the parser does not know: {sorted(named - known)}"


def test_layout_tree_names_real_paths():
    for line, language, text in blocks("docs/development.md"):
        if language != "text":
            continue
        names = [row.split()[0] for row in text.split("\n") if row and not row.startswith(" ")]
        missing = [name for name in names if not (ROOT / name.rstrip("/")).exists()]
        assert not missing, f"docs/development.md:{line} names paths that do not exist: {missing}"
