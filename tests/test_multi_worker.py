"""`vidgen train --strategy multi_worker` for real: two worker processes on 127.0.0.1.

Each worker is a `python -m vidgen_tf.cli train` subprocess with its own
`TF_CONFIG`; they train a tiny MoCoGAN for a few steps through
MultiWorkerMirroredStrategy's collective all-reduce over gRPC.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from vidgen_tf import cli

TIMEOUT_S = 420  # both workers together; a tiny run takes ~1 minute on a shared 2-core machine
TRAIN = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
         "--channels", "1", "--batch-size", "4", "--steps", "3", "--checkpoint-every", "2", "--sample-every", "2",
         "--seed", "5", "--deterministic", "--quiet",
         "--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
         "--set", "discriminator_width=8"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def h5_arrays(path):
    """`{dataset path: array}` of every dataset in a Keras weights file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def stop(process):
    """Kills a worker and the process group it leads, if still running."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


@pytest.mark.large
def test_two_workers_train_in_step_and_only_the_chief_writes(tmp_path, capsys):
    out = tmp_path / "run"
    worker_tmp = tmp_path / "worker_tmp"  # the workers' TMPDIR: non-chief files must not stay there
    worker_tmp.mkdir()
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, logs = [], []
    try:
        for index in range(2):
            env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                       TMPDIR=str(worker_tmp), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
            log = open(tmp_path / f"worker{index}.log", "w")
            logs.append(log)
            command = [sys.executable, "-m", "vidgen_tf.cli", *TRAIN, "--strategy", "multi_worker",
                       "--out", str(out), "--final-weights", str(tmp_path / f"final{index}.weights.h5")]
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + TIMEOUT_S
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        for index, process in enumerate(processes):
            text = (tmp_path / f"worker{index}.log").read_text()
            assert process.returncode == 0, f"worker {index} failed:\n{text[-4000:]}"
    finally:
        for process in processes:
            stop(process)
        for log in logs:
            log.close()

    chief_log = (tmp_path / "worker0.log").read_text()
    assert "on 2 replicas (multi_worker)" in chief_log and "preset:" in chief_log
    assert "preset:" not in (tmp_path / "worker1.log").read_text()
    # The chief wrote checkpoints, samples and the preset; the other worker left nothing behind.
    assert sorted(p.name for p in (out / "checkpoints").glob("ckpt-*")) == ["ckpt-2.weights.h5", "ckpt-3.weights.h5"]
    assert (out / "samples" / "step_000002.gif").is_file() and (out / "samples" / "final.gif").is_file()
    assert json.loads((out / "metadata.json").read_text())["training_steps"] == 3
    assert list(worker_tmp.iterdir()) == []

    # Both workers end with the same training state, bit for bit (one all-reduce result).
    chief, other = h5_arrays(tmp_path / "final0.weights.h5"), h5_arrays(tmp_path / "final1.weights.h5")
    assert chief.keys() == other.keys() and len(chief) > 10
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)

    # And the same weights as one device with the whole global batch (in this
    # process, no strategy): 2 workers x 2 clips == 1 device x 4 clips. Only the
    # order of floating-point sums differs: tolerance 1e-5.
    single = tmp_path / "single"
    assert cli.main([*TRAIN, "--out", str(single)]) == 0
    capsys.readouterr()
    preset_multi, preset_single = h5_arrays(out / "model.weights.h5"), h5_arrays(single / "model.weights.h5")
    assert preset_multi.keys() == preset_single.keys()
    for name in preset_multi:
        np.testing.assert_allclose(preset_multi[name], preset_single[name], atol=1e-5, rtol=1e-4, err_msg=name)
    shutil.rmtree(single)
