"""Training throughput on 1 vs 2 replicas, with and without XLA: clips per second.

    python bench/scaling.py [--models mocogan hmm ...] [--steps 3] [--batch-size 16] [--no-xla]

For each model at its zoo preset's small setting (see `_common.small_config`):
`fit` with the default strategy (one replica) and with `MirroredStrategy` over
two logical CPU devices (two replicas, each half of the same global batch),
each once with `jit_compile=False` and once with `True`. Every run does two
warm-up steps (tracing), then at least `--steps` steps and 3 s, timed between
batch ends inside one `fit` (`_common.timed_fit`). Prints a table; writes JSON
to bench/results/scaling.json.

The two logical CPUs share this machine's physical cores and TensorFlow's
thread pools, so this measures what mirroring costs (all-reduce, per-replica
ops of half the size), not what a second real device gains: a ratio near 1x
is the expected result on CPU. A run that fails is recorded with its error
instead of a figure. Measured (TF 2.21 / Keras 3.15): `jit_compile=True` under
MirroredStrategy fails for every model, because Keras compiles the whole
`strategy.run` step as one XLA cluster, which cannot reach the second
replica's variables ('Trying to access resource ... located in device CPU:1
from device CPU:0'; XLA's known issue with variables on another device).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, before TensorFlow initialises its devices (as tests/conftest.py does).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import argparse  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from tensorflow.python.distribute import mirrored_strategy  # noqa: E402

from _common import model_names, settings, timed_fit, write_json  # noqa: E402

import vidgen_tf  # noqa: E402
from vidgen_tf import distribute  # noqa: E402


def make_strategy(replicas):
    if replicas == 1:
        return distribute.get_strategy("default")
    # Strategies made in one process share collective keys; a fresh range per
    # strategy avoids clashes between runs (as TensorFlow's own tests do).
    mirrored_strategy.MirroredStrategy._collective_key_base += 100000
    return distribute.get_strategy("mirrored", devices=[f"/cpu:{i}" for i in range(replicas)])


def clips_per_second(name, config, batch_size, steps, replicas, jit_compile):
    strategy = make_strategy(replicas)
    distribute.check_global_batch(batch_size, strategy)
    with strategy.scope():
        model = vidgen_tf.build(name, **config)
        model.compile(seed=0, jit_compile=jit_compile)  # GANs and likelihood models alike
    rng = np.random.default_rng(0)
    videos = rng.uniform(-1, 1, (batch_size,) + model.video_shape).astype("float32")  # the global batch
    data = tf.data.Dataset.from_tensors(videos)
    if model.num_classes:
        data = tf.data.Dataset.from_tensors((videos, np.zeros(batch_size, "int32")))
    data = distribute.shard_dataset(data.repeat())
    return timed_fit(model, data, batch_size, steps, min_seconds=3.0)


def measure(name, config, batch_size, steps, replicas, jit_compile):
    try:
        return clips_per_second(name, config, batch_size, steps, replicas, jit_compile), None
    except Exception as error:  # recorded, not fatal: the other settings still run
        # TensorFlow's messages start with a trace; the cause is its last plain line.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        plain = [line for line in lines if not line.startswith(("[[", "Cf.", "File ", "Detected at node"))]
        cause = plain[-1] if plain else type(error).__name__
        return None, f"{type(error).__name__}: {cause[:300]}"


def _cell(value):
    return f"{value:>9.2f}" if value is not None else f"{'failed':>9}"


def _ratio(two, one):
    return two / one if two is not None and one else None


def main():
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="models to measure (default: every registered model)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (default 3)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch (default 16)")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True runs")
    parser.add_argument("--json", default="bench/results/scaling.json")
    args = parser.parse_args()

    rows = []
    header = (f"{'setting':<32} {'1 rep':>9} {'2 rep':>9} {'2/1':>6}"
              + ("" if args.no_xla else f" {'1 rep XLA':>9} {'2 rep XLA':>9} {'2/1 XLA':>7}"))
    print("clips/s, global batch", args.batch_size)
    print(header)
    for label, name, config in settings(model_names(args.models), include_paper=False):
        row = {"setting": label, "model": name, "config": config, "batch_size": args.batch_size, "errors": {}}
        for jit in (False,) if args.no_xla else (False, True):
            suffix = "_xla" if jit else ""
            for replicas in (1, 2):
                value, error = measure(name, config, args.batch_size, args.steps, replicas, jit)
                row[f"clips_per_s_{replicas}_replica{suffix}"] = value
                if error:
                    row["errors"][f"{replicas}_replica{suffix}"] = error
            row[f"ratio_2_to_1{suffix}"] = _ratio(row[f"clips_per_s_2_replica{suffix}"],
                                                  row[f"clips_per_s_1_replica{suffix}"])
        line = f"{label:<32} {_cell(row['clips_per_s_1_replica'])} {_cell(row['clips_per_s_2_replica'])}"
        ratio = row["ratio_2_to_1"]
        line += f" {ratio:>5.2f}x" if ratio else f" {'-':>6}"
        if not args.no_xla:
            ratio = row["ratio_2_to_1_xla"]
            line += (f" {_cell(row['clips_per_s_1_replica_xla'])} {_cell(row['clips_per_s_2_replica_xla'])}"
                     + (f" {ratio:>6.2f}x" if ratio else f" {'-':>7}"))
        print(line, flush=True)
        for key, error in row["errors"].items():
            print(f"    {key} failed: {error}", flush=True)
        rows.append(row)
    write_json(args.json, rows, steps=args.steps, devices="2 logical CPU devices on one host (shared cores)")


if __name__ == "__main__":
    main()
