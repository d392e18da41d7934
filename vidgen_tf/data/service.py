"""Offloading a pipeline's work to the `tf.data` service: reading and decoding on other machines.

A `tf.data` service is a dispatcher (`tf.data.experimental.service.DispatchServer`) and workers
(`WorkerServer`s) started elsewhere; `distribute_with_service` sends a dataset's graph to them,
and the trainer only receives the finished elements. The graph must be pure TensorFlow (the
`tfrecord` source is: shards read and decoded in the graph); sources that call Python
(`tf.numpy_function`, as the synthetic and npz sources do) cannot run on remote workers.

Processing modes (`tf.data.experimental.service.ShardingPolicy`):
- `parallel_epochs`: every worker runs the whole dataset; with several workers each clip
  arrives once per worker.
- `distributed_epoch`: the shard files are handed out to the workers as they ask for them,
  so one pass visits each clip once in all (the order depends on the workers' timing).

Example:
    >>> dataset = vidgen_tf.data.load("tfrecord", path="packs/clips", num_frames=8, height=32,
    ...                               width=32, service="grpc://dispatcher:5050")
"""

import re

import tensorflow as tf

PROCESSING_MODES = {
    "parallel_epochs": tf.data.experimental.service.ShardingPolicy.OFF,
    "distributed_epoch": tf.data.experimental.service.ShardingPolicy.DYNAMIC,
}
_ADDRESS = re.compile(r"^(grpc\+local|grpc)://[^/\s:]+(:\d+)?$|^[^/\s:]+:\d+$")


def check_service(service, processing_mode="parallel_epochs"):
    """`(address, sharding policy)` of a service address and mode, or a ValueError naming them."""
    if not isinstance(service, str) or not _ADDRESS.match(service):
        raise ValueError(f"`service` must be a tf.data service dispatcher address such as "
                         f"'grpc://host:5050' (or 'host:5050'), got {service!r}.")
    if processing_mode not in PROCESSING_MODES:
        raise ValueError(f"`service_mode` (processing_mode) must be one of {', '.join(PROCESSING_MODES)}, "
                         f"got {processing_mode!r}.")
    if "://" not in service:
        service = "grpc://" + service
    return service, PROCESSING_MODES[processing_mode]


def distribute_with_service(dataset, service, processing_mode="parallel_epochs", job_name=None):
    """`dataset` produced by the workers of a `tf.data` service instead of this process.

    Args:
        dataset: `tf.data.Dataset`. A pipeline of pure TensorFlow ops.
        service: str. The dispatcher's address, e.g. "grpc://127.0.0.1:5050".
        processing_mode: str. "parallel_epochs" (every worker runs the whole dataset) or
            "distributed_epoch" (the source's files are split among the workers). Defaults to
            "parallel_epochs".
        job_name: str or None. Consumers that give the same name share one job (and, with
            "distributed_epoch", one pass). Defaults to None: a job of its own.

    Returns:
        A `tf.data.Dataset` with the same elements (as a multiset; with one worker and
        "parallel_epochs", in the same order).
    """
    service, policy = check_service(service, processing_mode)
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=policy, service=service, job_name=job_name))


__all__ = ["PROCESSING_MODES", "check_service", "distribute_with_service"]
