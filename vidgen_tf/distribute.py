"""A `tf.distribute` strategy from a name, and the data and file rules that go with it.

`get_strategy(name)` gives one of:

- `default`: no distribution (TensorFlow's default strategy, one device).
- `mirrored`: synchronous data parallelism over the local devices: every GPU,
  or the `devices` given. On a machine without GPUs it uses every logical CPU
  when more than one is configured (`tf.config.set_logical_device_configuration`
  before TensorFlow starts, as the tests and `bench/scaling.py` do); with a
  single CPU it falls back to a one-replica `MirroredStrategy` on that CPU and
  logs a warning: the run is correct, only not parallel.
- `multi_worker`: `MultiWorkerMirroredStrategy` over the cluster described by
  the `TF_CONFIG` environment variable; a missing or malformed `TF_CONFIG` is
  an error that names it (TensorFlow itself would silently train alone).
  Create it before any other TensorFlow op runs (collective ops are configured
  at start-up).
- `tpu`: `TPUStrategy` on the TPU found by `TPUClusterResolver` (`tpu` names
  one; by default the environment's); no TPU found is an error.

Under every strategy one step with global batch B gives the update one device
makes with batch B (see `vidgen_tf.adversarial`): the models draw their noise
for the global batch and average losses over it.

Data sharding. `shard_dataset` sets `AutoShardPolicy.DATA` on a dataset: each
worker runs the same pipeline (same seed) and keeps its own slice of every
global batch. The datasets here are generated from a seed (or read from one
small file), so producing a batch on every worker costs little next to a
training step, and in exchange the N workers together train on exactly the
batches one device would: results do not depend on the number of workers,
and no per-worker seed can repeat another's, because there is one stream and
the workers take disjoint slices of it. (`OFF` with seeds derived from the task
index would save the generation work but make an N-worker run differ from a
one-device run.) Batches must drop their remainder and the global batch must
divide evenly among the replicas; `check_global_batch` says so.
"""

import json
import logging
import os
import shutil
import tempfile

import tensorflow as tf

from vidgen_tf.registry import unknown_name_error

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


# ------------------------------------------------------- per-replica noise
# Every replica draws the noise of the whole global batch from the same
# stateless seed and keeps its own rows, so N replicas see exactly the noise
# one device would (a SeedGenerator gives every replica the same draws).


def replica_slice(tensor, local_batch):
    """This replica's rows of a tensor drawn for the global batch."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensor
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * local_batch
    return tensor[start : start + local_batch]


def num_replicas():
    """Replicas in sync in the current replica context (1 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def global_uniform_ints(seed, local_batch, maxval):
    """Per-example random ints in [0, maxval) `(B,)`, drawn for the global batch.

    Every replica draws the same global vector and keeps its rows, so N
    replicas make the same choices as one device with the whole batch.
    """
    global_batch = local_batch * num_replicas()
    draws = tf.random.stateless_uniform(
        [global_batch], tf.cast(seed, tf.int64), maxval=tf.cast(maxval, tf.int32), dtype=tf.int32
    )
    return replica_slice(draws, local_batch)


def fold_seed(seed, *values):
    """A new stateless seed (shape [2], int64) from `seed` and integers."""
    seed = tf.cast(seed, tf.int64)
    for value in values:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))
    return seed


# ------------------------------------------------------------ strategies
def get_strategy(name, devices=None, tpu=None):
    """A `tf.distribute.Strategy` from its name.

    Args:
        name: str. One of `STRATEGIES`: "default", "mirrored",
            "multi_worker", "tpu".
        devices: list of str or None. For "mirrored": the devices to mirror
            over (e.g. `["/cpu:0", "/cpu:1"]`). Defaults to every local GPU,
            else every logical CPU.
        tpu: str or None. For "tpu": the TPU's name or address. Defaults to
            the one the environment names.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        KeyError (`UnknownNameError`): an unknown name, with the closest one.
        ValueError: `devices` given for a strategy other than "mirrored", a
            missing or malformed `TF_CONFIG` for "multi_worker", or no TPU.

    Example:
        >>> strategy = get_strategy("default")
        >>> strategy.num_replicas_in_sync
        1
    """
    if name not in STRATEGIES:
        raise unknown_name_error("strategy", name, STRATEGIES)
    if devices and name != "mirrored":
        raise ValueError(f"`devices` applies to the 'mirrored' strategy only, not '{name}'.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) if devices else mirrored_devices())
    if name == "multi_worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


def mirrored_devices():
    """The devices `mirrored` uses by default: every GPU, else every logical CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) == 1:
        logger.warning(
            "The 'mirrored' strategy found no GPU and one CPU device: training on one replica. "
            "Configure logical CPUs (tf.config.set_logical_device_configuration) before TensorFlow "
            "starts to mirror over several."
        )
    return cpus


def read_tf_config(environ=None):
    """The parsed `TF_CONFIG` of a multi-worker run, checked.

    It must be JSON with a `cluster` of at least one job listing `host:port`
    addresses and a `task` whose `type` is one of the cluster's jobs and whose
    `index` is in range, e.g.
    `{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}`.

    Raises:
        ValueError: naming TF_CONFIG and what is wrong with it.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise ValueError(f"The 'multi_worker' strategy reads the cluster from the TF_CONFIG environment "
                         f"variable, which is not set; {example}.")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); {example}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(
        isinstance(addresses, list) and addresses for addresses in cluster.values()
    ):
        raise ValueError(f"TF_CONFIG needs a 'cluster' mapping each job to a list of addresses; {example}.")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(f"TF_CONFIG needs a 'task' whose 'type' is one of the cluster's jobs "
                         f"({', '.join(sorted(cluster))}); got {task!r}.")
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ValueError(f"TF_CONFIG's task index {index!r} is not in range for job '{task['type']}' "
                         f"({len(cluster[task['type']])} addresses).")
    return config


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(f"The 'tpu' strategy found no TPU ({error}).") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run's files: always, except a non-chief worker.

    In a cluster with a `chief` job the chief writes; without one, worker 0 does.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not in_multi_worker_mode(strategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_label(strategy):
    """`"<task type> <index>"` of this process in a cluster, or `""` alone."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return ""
    return f"{resolver.task_type} {resolver.task_id}"


def in_multi_worker_mode(strategy):
    """Whether `strategy` spans several worker processes."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def prepare_model(model, strategy):
    """Adapts a compiled Keras model to `strategy` before `fit`; returns it.

    Keras 3 reduces the logged metrics of a multi-worker step with
    `strategy.reduce("MEAN", value, axis=0)` whatever the model's
    `distribute_reduction_method`, which fails on the scalar metrics every
    `train_step` returns ('Invalid reduction dimension 0 for input with 0
    dimensions', tensorflow/tensorflow#72388). Under a multi-worker strategy
    this model's `train_step` therefore returns each metric as a vector of one
    element, which that reduction averages over every replica of every worker
    into the scalar the logs show. Other strategies are left alone.
    """
    if not in_multi_worker_mode(strategy) or getattr(model, "_vidgen_metrics_as_vectors", False):
        return model
    train_step = model.train_step

    def train_step_with_vector_metrics(data):
        return {name: tf.reshape(value, [1]) for name, value in train_step(data).items()}

    model.train_step = train_step_with_vector_metrics
    model._vidgen_metrics_as_vectors = True
    return model


def check_global_batch(global_batch, strategy):
    """Raises ValueError unless `global_batch` divides evenly among the replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(
            f"The global batch size {global_batch} does not divide among {replicas} replicas; "
            f"use a multiple of {replicas}."
        )


def shard_dataset(dataset):
    """`dataset` with `AutoShardPolicy.DATA`: each worker keeps its slice of every batch.

    See the module docstring for why DATA rather than per-worker seeds.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class WriteLocation:
    """Where this process writes: the real directory on the chief, a temporary one elsewhere.

    Every worker of a `MultiWorkerMirroredStrategy` must take part in saving
    (reading some variables, such as metrics', all-reduces across workers), so
    non-chief workers save too, into a temporary directory removed by `cleanup()`.

    Args:
        directory: str or Path. The run's output directory.
        strategy: the `tf.distribute.Strategy` of the run.
    """

    def __init__(self, directory, strategy):
        from pathlib import Path

        self.target = Path(directory)
        self.chief = is_chief(strategy)
        if self.chief:
            self.path = self.target
        else:
            label = worker_label(strategy).replace(" ", "")
            self.path = Path(tempfile.mkdtemp(prefix=f"vidgen-{label}-"))

    def cleanup(self):
        if not self.chief:
            shutil.rmtree(self.path, ignore_errors=True)


__all__ = [
    "STRATEGIES",
    "WriteLocation",
    "check_global_batch",
    "get_strategy",
    "is_chief",
    "in_multi_worker_mode",
    "mirrored_devices",
    "prepare_model",
    "read_tf_config",
    "shard_dataset",
    "worker_label",
]
