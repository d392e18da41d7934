"""The `tf.data` service: a pack read and decoded by service workers on loopback.

TensorFlow's dispatcher and workers listen on every interface (there is no bind-address
option), so they are started in a child process inside a network namespace of its own
(`unshare -n`), whose only interface is its loopback: nothing outside can reach them. The
child runs the pipelines and prints what it read; the test compares with the local read.
"""

import collections
import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vidgen_tf import data
from vidgen_tf.data import registry, service

GEOMETRY = {"num_frames": 4, "height": 8, "width": 8, "channels": 1}
NUM_VIDEOS = 10

_CHILD = r"""
import fcntl, hashlib, json, socket, struct, sys
import numpy as np

# The namespace's loopback starts down: bring it up (SIOCGIFFLAGS / SIOCSIFFLAGS, IFF_UP).
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sh", fcntl.ioctl(probe, 0x8913, struct.pack("16sh", b"lo", 0)))[1]
fcntl.ioctl(probe, 0x8914, struct.pack("16sh", b"lo", flags | 1))
probe.close()

import tensorflow as tf
from vidgen_tf import data
from vidgen_tf.data import registry

path = sys.argv[1]
geometry = dict(num_frames=4, height=8, width=8, channels=1)
service_lib = tf.data.experimental.service


def keys(dataset):
    out = []
    for videos, labels in dataset:
        for clip, label in zip(np.round((videos.numpy() + 1.0) * 127.5).astype(np.uint8), labels.numpy()):
            out.append([hashlib.sha256(clip.tobytes()).hexdigest(), int(label)])
    return out


def with_servers(num_workers, run):
    dispatcher = service_lib.DispatchServer(service_lib.DispatcherConfig(port=0))
    workers = []
    try:
        for _ in range(num_workers):
            workers.append(service_lib.WorkerServer(service_lib.WorkerConfig(
                dispatcher_address=dispatcher.target.split("://", 1)[1], worker_address="127.0.0.1:%port%",
                port=0)))
        return run(dispatcher.target)
    finally:
        for worker in workers:
            worker.stop()
        dispatcher.stop()


def load(address, **options):
    return data.load("tfrecord", path=path, batch_size=2, epochs=1, shuffle=False, with_labels=True,
                     drop_remainder=False, service=address, **options, **geometry)


def in_order(address):
    source = data.get_source("tfrecord")
    request = registry.Request("tfrecord", **geometry, path=path)
    dataset = data.distribute_with_service(source.dataset(request, False, 1), address)
    return [hashlib.sha256(clip.numpy().tobytes()).hexdigest() for clip in dataset]


result = {
    "parallel_epochs": with_servers(2, lambda address: keys(load(address))),
    "distributed_epoch": with_servers(2, lambda address: keys(load(address, service_mode="distributed_epoch"))),
    "one_worker_in_order": with_servers(1, in_order),
}
print("RESULT" + json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    rng = np.random.default_rng(11)
    np.savez(root / "clips.npz", videos=rng.integers(0, 256, (NUM_VIDEOS, 4, 8, 8, 1), dtype=np.uint8),
             labels=np.arange(NUM_VIDEOS) % 3)
    data.pack("npz", root / "clips.npz", root / "pack", shards=4, progress=False, **GEOMETRY)
    request = registry.Request("npz", **GEOMETRY, path=str(root / "clips.npz"))
    return str(root / "pack"), list(data.get_source("npz").clip_records(request))


def _private_network_available():
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _private_network_available(),
                    reason="cannot make a network namespace (unshare -n) here, and the tf.data service's servers "
                           "listen on every interface, so they are only started inside one")
def test_service_workers_yield_the_clips_of_the_local_pipeline(pack):
    path, records = pack
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", _CHILD, path], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("RESULT")][-1][6:])
    expected = collections.Counter((hashlib.sha256(r.clip.tobytes()).hexdigest(), r.label) for r in records)
    # Every worker runs the whole pass: each clip (with its label) once per worker.
    assert collections.Counter(map(tuple, result["parallel_epochs"])) == collections.Counter(
        {key: 2 for key in expected})
    # The shard files split among the two workers: one pass in all.
    assert collections.Counter(map(tuple, result["distributed_epoch"])) == expected
    # One worker, parallel epochs: the local pipeline's clips in its order.
    local = data.get_source("tfrecord").dataset(registry.Request("tfrecord", **GEOMETRY, path=path), False, 1)
    assert result["one_worker_in_order"] == [hashlib.sha256(c.numpy().tobytes()).hexdigest() for c in local]


def test_bad_service_addresses_and_modes_are_named(pack):
    path, _ = pack
    with pytest.raises(ValueError, match=r"`service` must be a tf.data service dispatcher address.*'http://x/y'"):
        data.load("tfrecord", path=path, service="http://x/y", **GEOMETRY)
    with pytest.raises(ValueError, match=r"`service_mode`.*got 'sometimes'"):
        data.load("tfrecord", path=path, service="grpc://127.0.0.1:5050", service_mode="sometimes", **GEOMETRY)
    assert service.check_service("127.0.0.1:5050")[0] == "grpc://127.0.0.1:5050"
