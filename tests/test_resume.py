"""Fault tolerance of `vidgen train`: killed with SIGKILL and started again, it
ends where an uninterrupted run ends; a corrupt newest checkpoint falls back to
the one before."""

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

import vidgen_tf
from vidgen_tf import cli
from vidgen_tf.callbacks import CheckpointMismatchError, StepCheckpoint

TIMEOUT_S = 300  # per run; a tiny run takes ~40 s on the shared 2-core machine
# Long enough that a kill up to 0.3 s after the 1st or 2nd checkpoint lands before the end: a
# fast idle machine trained all 8 steps of an earlier version within that window.
STEPS = 40
TRAIN = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
         "--channels", "1", "--batch-size", "4", "--checkpoint-every", "2", "--seed", "3", "--deterministic",
         "--quiet", "--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
         "--set", "discriminator_width=8"]


def h5_arrays(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def start(out, log_path):
    command = [sys.executable, "-m", "vidgen_tf.cli", *TRAIN, "--steps", str(STEPS), "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    log = open(log_path, "w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log


def stop(process):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def finish(process, log_path):
    process.wait(timeout=TIMEOUT_S)
    assert process.returncode == 0, log_path.read_text()[-4000:]


@pytest.mark.large
def test_killed_and_restarted_run_ends_with_the_uninterrupted_run_s_weights(tmp_path):
    rng = random.Random()  # a different kill point each run; printed on failure
    wanted = rng.choice([1, 2])  # checkpoints to wait for before the kill
    delay = rng.uniform(0.0, 0.3)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    processes, logs = [], []
    try:
        # The uninterrupted run and the one to kill run side by side.
        for out in (straight, killed):
            process, log = start(out, tmp_path / f"{out.name}.log")
            processes.append(process)
            logs.append(log)
        victim = processes[1]
        deadline = time.monotonic() + TIMEOUT_S
        while len(list((killed / "checkpoints").glob("ckpt-*.weights.h5"))) < wanted:
            assert victim.poll() is None, f"the run ended before its kill:\n{(tmp_path / 'killed.log').read_text()}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.05)
        time.sleep(delay)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        done = sorted(int(p.name.split("-")[1].split(".")[0]) for p in (killed / "checkpoints").glob("ckpt-*.weights.h5"))
        assert done and done[-1] < STEPS, f"killed too late (checkpoints {done}); wanted {wanted}, delay {delay:.2f}s"

        # The same command again resumes from the newest checkpoint and finishes.
        process, log = start(killed, tmp_path / "restarted.log")
        processes.append(process)
        logs.append(log)
        finish(process, tmp_path / "restarted.log")
        finish(processes[0], tmp_path / "straight.log")
    finally:
        for process in processes:
            stop(process)
        for log in logs:
            log.close()

    restarted = (tmp_path / "restarted.log").read_text()
    assert f"from step {done[-1]}" in restarted, restarted[-2000:]
    # Exactly equal: op determinism, the seeded noise step and the data stream
    # skipped by the step make the resumed steps the same computation.
    final_straight = h5_arrays(straight / "checkpoints" / f"ckpt-{STEPS}.weights.h5")
    final_killed = h5_arrays(killed / "checkpoints" / f"ckpt-{STEPS}.weights.h5")
    assert final_straight.keys() == final_killed.keys() and len(final_straight) > 10
    for name in final_straight:
        np.testing.assert_array_equal(final_killed[name], final_straight[name],
                                      err_msg=f"{name} (killed after {wanted} checkpoints + {delay:.2f}s)")
    preset_straight, preset_killed = h5_arrays(straight / "model.weights.h5"), h5_arrays(killed / "model.weights.h5")
    for name in preset_straight:
        np.testing.assert_array_equal(preset_killed[name], preset_straight[name], err_msg=name)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, caplog):
    out = tmp_path / "run"
    assert cli.main([*TRAIN, "--steps", "4", "--out", str(out)]) == 0
    newest = out / "checkpoints" / "ckpt-4.weights.h5"
    newest.write_bytes(newest.read_bytes()[:200])  # truncated, as by a full disk
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="vidgen_tf.callbacks"):
        assert cli.main([*TRAIN, "--steps", "5", "--out", str(out)]) == 0
    assert "from step 2" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ckpt-4.weights.h5 could not be read" in m and "previous one" in m for m in warnings), warnings
    # Steps 3-5 were trained again from step 2's state; the newest checkpoint is step 5.
    assert (out / "checkpoints" / "ckpt-5.weights.h5").is_file()


def test_resuming_with_another_configuration_is_refused_and_keeps_the_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TRAIN, "--steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main([*TRAIN, "--set", "generator_width=4", "--steps", "4", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "was written by another configuration" in error and "generator_width: 8 != 4" in error, error
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt-2.weights.h5"]


@pytest.mark.large
def test_a_run_from_a_trained_preset_carries_its_commands_steps_and_time_on(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli.main([*TRAIN, "--steps", "2", "--out", str(first)]) == 0
    before = json.loads((first / "metadata.json").read_text())
    # TRAIN names the model; a preset (here the first run's directory) gives its weights and history.
    again = ["train", str(first), *TRAIN[2:]]
    assert cli.main([*again, "--steps", "2", "--out", str(second)]) == 0
    after = json.loads((second / "metadata.json").read_text())
    assert len(after["command"]) == 2 and after["command"][0] == before["command"][0]
    assert after["training_steps"] == 4 and after["continued_from"] == {"preset": str(first), "training_steps": 2}
    assert after["training_seconds"] >= before["training_seconds"]
    # Resumed to more steps, the history is not counted twice.
    assert cli.main([*again, "--steps", "4", "--out", str(second)]) == 0
    resumed = json.loads((second / "metadata.json").read_text())
    assert len(resumed["command"]) == 3 and resumed["command"][:2] == after["command"]
    assert resumed["training_steps"] == 6 and resumed["continued_from"] == after["continued_from"]
    assert resumed["training_seconds"] >= after["training_seconds"]
    # From scratch, the preset's configuration only: no history.
    assert cli.main([*again, "--steps", "2", "--from-scratch", "--out", str(tmp_path / "fresh")]) == 0
    fresh = json.loads((tmp_path / "fresh" / "metadata.json").read_text())
    assert len(fresh["command"]) == 1 and fresh["training_steps"] == 2 and "continued_from" not in fresh
    capsys.readouterr()


# ----------------------------------------------------------------------------- StepCheckpoint.restore

TINY_MOCOGAN = dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                    generator_width=4, discriminator_width=4)


def _save(model, directory, step, keep=2):
    checkpoint = StepCheckpoint(directory, keep=keep)
    checkpoint.set_model(model)
    checkpoint.step = step
    checkpoint.save()
    return checkpoint


def _dense(units=2):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def test_a_checkpoint_of_another_configuration_is_an_error_naming_both(tmp_path):
    _save(vidgen_tf.build("mocogan", **TINY_MOCOGAN), tmp_path, step=6)
    other = vidgen_tf.build("mocogan", **{**TINY_MOCOGAN, "generator_width": 8})
    with pytest.raises(CheckpointMismatchError, match=r"ckpt-6\.weights\.h5 was written by another configuration") as info:
        StepCheckpoint(tmp_path).restore(other)
    message = str(info.value)
    assert "generator_width: 4 != 8" in message
    assert '"generator_width": 4' in message.split("model:")[0] and '"generator_width": 8' in message.split("model:")[1]
    # The same configuration resumes, with the saved weights.
    model = vidgen_tf.build("mocogan", **TINY_MOCOGAN)
    saved = vidgen_tf.build("mocogan", **TINY_MOCOGAN)
    saved.load_weights(tmp_path / "ckpt-6.weights.h5")
    assert StepCheckpoint(tmp_path).restore(model) == 6
    for restored, wanted in zip(model.weights, saved.weights):
        np.testing.assert_array_equal(restored.numpy(), wanted.numpy())


def test_a_checkpoint_that_does_not_load_is_an_error_not_a_fresh_start(tmp_path):
    _save(_dense(2), tmp_path, step=4)
    with pytest.raises(CheckpointMismatchError, match=r"ckpt-4\.weights\.h5 does not load into this model"):
        StepCheckpoint(tmp_path).restore(_dense(5))


def test_an_unreadable_newer_checkpoint_is_set_aside_and_never_outranks_new_ones(tmp_path, caplog):
    model = _dense()
    _save(model, tmp_path, step=2)
    (tmp_path / "ckpt-4.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with caplog.at_level(logging.WARNING, logger="vidgen_tf.callbacks"):
        assert StepCheckpoint(tmp_path).restore(model) == 2
    assert any("ckpt-4.weights.h5 could not be read" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "ckpt-4.weights.h5.unreadable").is_file()
    # Training goes on from step 2: the next checkpoint is the one kept, not the stale step 4.
    assert [step for step, _ in _save(model, tmp_path, step=3, keep=1).checkpoints()] == [3]


def test_checkpoints_none_of_which_can_be_read_are_an_error(tmp_path):
    (tmp_path / "ckpt-4.weights.h5").write_bytes(b"")
    (tmp_path / "ckpt-2.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(OSError, match=r"None of the checkpoints in .* can be read \(ckpt-4\.weights\.h5: .*ckpt-2"):
        StepCheckpoint(tmp_path).restore(_dense())
    assert StepCheckpoint(tmp_path / "empty").restore(_dense()) == 0  # no checkpoint at all: step 0
