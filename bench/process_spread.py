"""The same training step in several fresh processes: how far apart do they run?

    python bench/process_spread.py [--model mocogan] [--setting paper|small] [--processes 5]
                                   [--steps 4] [--warmup 2] [--batch-size 16]
                                   [--variant LABEL:KEY=VALUE,KEY=VALUE ...] [--json PATH]

Each process is a fresh interpreter (`python bench/process_spread.py --child
...`) that builds the model (`vidgen_tf.build`, `compile(seed=0)`, the zoo's
default `jit_compile=False`, as `bench/train_throughput.py`), runs `--warmup`
untimed `train_on_batch` steps on one batch held in memory (the first traces
the graph) and then times `--steps` steps one by one: wall time by
`time.perf_counter`, CPU time of the process (user + system, every thread) by
`time.process_time`; resident memory after importing TensorFlow and after
building, and the peak of the timed steps (VmHWM after resetting it, as
`bench/vs_pytorch.py`) and of the process before them. With
`TF_CPU_ALLOCATOR_USE_BFC=1` in a variant's environment, TensorFlow's own
count of its tensors too (after building, and the peak of the timed steps).
A process's figure is the median of its timed steps; the spread of a variant
is its slowest process's figure over its fastest.

A variant is a set of environment variables given to its processes (for
example `inter1:VIDGEN_BENCH_INTER_OP=1`, or a fixed Python hash seed,
`hash0:PYTHONHASHSEED=0`); the variants' processes take turns (A, B, A, B,
...) so that a change in machine load falls on all of them. Without
`--variant` one variant runs, "default", in the environment as it is.
`VIDGEN_BENCH_INTER_OP` / `VIDGEN_BENCH_INTRA_OP` set TensorFlow's inter-op /
intra-op thread counts in the child before TensorFlow initialises (unset: its
defaults).

Measure on an idle machine (check `uptime`): with another job on the cores,
the figures say nothing about the processes themselves.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _memory import reset_peak_rss, status_kib  # noqa: E402


def _child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    rss_after_import = status_kib("VmRSS")
    inter = os.environ.get("VIDGEN_BENCH_INTER_OP")
    intra = os.environ.get("VIDGEN_BENCH_INTRA_OP")
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(int(intra))

    import _common

    import vidgen_tf

    config = _common.PAPER_SETTINGS[args.model] if args.setting == "paper" else _common.small_config(args.model)
    model = vidgen_tf.build(args.model, **config)
    model.compile(seed=0)
    rss_after_build = status_kib("VmRSS")
    # With TF_CPU_ALLOCATOR_USE_BFC=1 TensorFlow's allocator keeps statistics of its tensors.
    tensors = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() in ("1", "true")
    tensors_after_build = tf.config.experimental.get_memory_info("CPU:0")["current"] if tensors else None
    rng = np.random.default_rng(0)
    videos = tf.constant(rng.uniform(-1.0, 1.0, (args.batch_size, *model.video_shape)).astype("float32"))
    for _ in range(args.warmup):
        model.train_on_batch(videos, return_dict=True)
    peak_before = status_kib("VmHWM")
    reset = reset_peak_rss()
    if tensors:
        tf.config.experimental.reset_memory_stats("CPU:0")
    walls, cpus = [], []
    for _ in range(args.steps):
        wall, cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(videos, return_dict=True)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    result = dict(
        pid=os.getpid(),
        peak_rss_mib=status_kib("VmHWM") / 1024 if reset else None,
        peak_rss_before_steps_mib=peak_before / 1024,
        rss_after_import_mib=rss_after_import / 1024,
        rss_after_build_mib=rss_after_build / 1024,
        tensors_after_build_mib=tensors_after_build / 2**20 if tensors else None,
        tensors_peak_of_steps_mib=tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20 if tensors else None,
        wall_seconds=walls,
        cpu_seconds=cpus,
        median_wall=statistics.median(walls),
        median_cpu=statistics.median(cpus),
        threads=(tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads()),
        pythonhashseed=os.environ.get("PYTHONHASHSEED"),
    )
    print("RESULT " + json.dumps(result), flush=True)


def _parse_variant(text):
    label, _, assignments = text.partition(":")
    env = {}
    for item in filter(None, assignments.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {item!r} is not KEY=VALUE")
        env[key] = value
    return label, env


def _run_child(args, env_overrides):
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--model", args.model,
               "--setting", args.setting, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch-size", str(args.batch_size)]
    env = dict(os.environ, **env_overrides)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mocogan")
    parser.add_argument("--setting", choices=("paper", "small"), default="paper")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per variant")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first traces)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL:KEY=VALUE,... environment of one variant's processes (repeatable)")
    parser.add_argument("--json", default="bench/results/process_spread.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    if args.steps < 1 or args.warmup < 1 or args.processes < 2:
        raise SystemExit("--steps and --warmup must be at least 1 and --processes at least 2")
    variants = [_parse_variant(v) for v in args.variant] or [("default", {})]
    results = {label: [] for label, _ in variants}
    start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg()
    for index in range(args.processes):
        for label, env in variants:
            result = _run_child(args, env)
            results[label].append(result)
            print(f"{label:>12} process {index + 1}: {result['median_wall']:.3f} s a step "
                  f"(CPU {result['median_cpu']:.3f} s; steps {', '.join(f'{w:.3f}' for w in result['wall_seconds'])})",
                  flush=True)
    rows = []
    for label, env in variants:
        walls = [r["median_wall"] for r in results[label]]
        cpus = [r["median_cpu"] for r in results[label]]
        peaks = [r["peak_rss_mib"] for r in results[label] if r["peak_rss_mib"] is not None]
        row = dict(variant=label, env=env, model=args.model, setting=args.setting, batch_size=args.batch_size,
                   step_seconds=walls, cpu_seconds=cpus, fastest=min(walls), slowest=max(walls),
                   spread=max(walls) / min(walls), peak_rss_mib=peaks, processes=results[label])
        rows.append(row)
        print(f"{label:>12}: fastest {row['fastest']:.3f} s, slowest {row['slowest']:.3f} s, "
              f"spread {row['spread']:.3f}; CPU {min(cpus):.2f}-{max(cpus):.2f} s a step"
              + (f"; peak RSS of the steps {min(peaks):.0f}-{max(peaks):.0f} MiB" if peaks else ""))
    import _common

    _common.write_json(args.json, rows, started=start, load_before=load_before, load_after=os.getloadavg(),
                       command=" ".join(sys.argv))


if __name__ == "__main__":
    main()
