"""The zoo's video diffusion against a PyTorch twin: training clips/s, ms per sampler step, peak memory.

    python bench/diffusion_vs_pytorch.py [--runs 3] [--steps 5] [--warmup 2] [--train-batch 16]
                                         [--sample-batches 16 32] [--sample-steps 10 25 50]
                                         [--threads N] [--block 1] [--json PATH] [--check]

PyTorch is a bench-only extra (`pip install vidgen-tf[bench]`; the CPU wheel
is enough); nothing in `vidgen_tf` or the tests imports it.

What is compared. `bench/_torch_unet.py` holds a PyTorch implementation of
`vidgen_tf.layers.space_time.SpaceTimeUNet`, layer for layer (the same
parameter count, asserted at start and printed), with `DiffusionModel`'s
training step (v objective on the cosine schedule, uniform times, the squared
error per clip, Adam at the zoo's `make_optimizer` settings, then the EMA
update of every weight) and its DDIM step with eta 0 on the EMA network. The
setting is `CONFIG`: 8 frames of 32x32 grey, base_filters 16,
channel_multipliers (1, 2, 2), one residual block per level, spatial
attention at 8x8, one head, GroupNorm 8 (the network of the zoo's
`video_diffusion_moving_digits` preset). Workloads: a training step on `--train-batch` clips (16); a sampler
step (one network call of the EMA network and the DDIM update, from t = 0.5
to 0.48) at each of `--sample-batches` (16 and 32). A zoo training step is
`model.train_on_batch` on a batch held in memory after `compile(seed=0)`
(the zoo's default `jit_compile=False`), as `bench/vs_pytorch.py`; a zoo
sampler step is `model.step` with the EMA network in a `tf.function` (the
exported `step` signature's computation, without its input checks); a torch
step is the twin's `train_step` / `step` (eager PyTorch, the sampler step
under `torch.inference_mode()`).

How it is measured (`bench/vs_pytorch.py`'s protocol, repeated). Each run
starts, for every workload, a fresh child process per framework
(multiprocessing "spawn": a fresh interpreter importing only its own
framework), both with `--threads` threads (TensorFlow's inter-op threads
`--tf-inter-op`, default the same). Each child builds its model, runs
`--warmup` untimed steps (the zoo's first traces), then resets its peak
resident set (`/proc/self/clear_refs`) and runs one more step: the peak RSS
column is that step's `VmHWM`. Then the `--steps` timed steps run in blocks
of `--block` steps, the two children taking turns (the first turn
alternating between runs and workloads) while the other waits idle, so that
a change in machine load falls on both. A run's figure is its mean step
time; the tables print the median over `--runs` runs (all runs are in the
JSON). The sampling cost of one video at `--sample-steps` steps (10, 25, 50)
is `steps x median step ms / batch` at each batch size: one network call per
DDIM step (no guidance; the zoo's in-graph `tf.while_loop` adds no call).
Beside each rate, the achieved GFLOP/s (2 x `vidgen_tf.cost` multiply-adds:
3 network passes per training clip, one per clip and sampler step; the same
count for the twin, which does the same arithmetic) as a percentage of the
float32 matrix-multiply peak that `_common.matmul_peak_gflops` measures in
the parent at the start (again at the end, recorded). Measure on an idle
machine (see `bench/vs_pytorch.py` on PyTorch's OpenMP threads under load).

`--check` instead builds both in this process, copies the zoo's weights
into the twin (perturbed off their zero initialisers), and compares the
network's output, one training step (loss, every gradient, the weights
after Adam, the EMA weights) and two DDIM steps; it fails beyond the
tolerances in `bench/_diffusion_check.py` (a few seconds).
"""

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from vs_pytorch import Child, _reset_peak_rss, _set_tf_threads, _status_kib, serve_steps  # noqa: E402

# The network of the video_diffusion_moving_digits preset: a small video diffusion model on 32x32x8 grey clips.
CONFIG = dict(num_frames=8, height=32, width=32, channels=1, base_filters=16, channel_multipliers=(1, 2, 2),
              num_res_blocks=1, attention_resolutions=(8,), attention_heads=1, groups=8)
SAMPLER_TIMES = (0.5, 0.48)  # an interior step: both sides take the x_s branch


def twin_spec(model):
    """The plain dict the torch twin is built from, read off a built zoo model."""
    if model.num_classes or model.objective != "v" or model.time_distribution != "uniform":
        raise ValueError("The torch twin is the unconditional v-objective model with uniform times only.")
    optimizer = model.make_optimizer().get_config()
    if optimizer.get("weight_decay"):
        raise ValueError(f"The zoo's optimizer has weight_decay={optimizer['weight_decay']}; the twin has none.")
    return dict(
        num_frames=model.num_frames, height=model.height, width=model.width, channels=model.channels,
        base_filters=model.base_filters, channel_multipliers=list(model.channel_multipliers),
        num_res_blocks=model.num_res_blocks, attention_resolutions=list(model.attention_resolutions),
        attention_heads=model.attention_heads, groups=model.groups, ema_decay=model.default_ema_decay,
        learning_rate=float(optimizer["learning_rate"]), beta_1=float(optimizer["beta_1"]),
        beta_2=float(optimizer["beta_2"]), epsilon=float(optimizer["epsilon"]),
    )


def clean_clips(batch_size, video_shape, seed=0):
    """`(B, T, H, W, C)` float32 uniform in [-1, 1]: the training batch, and (seed 1) the sampler's x_t."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if seed == 0:
        return rng.uniform(-1, 1, (batch_size,) + tuple(video_shape)).astype("float32")
    return rng.standard_normal((batch_size,) + tuple(video_shape)).astype("float32")


# ----------------------------------------------------------------- workers
def _zoo_step(workload, batch, config, options):
    _set_tf_threads(options["threads"], options["tf_inter_op"])

    import tensorflow as tf

    import vidgen_tf

    model = vidgen_tf.build("video_diffusion", **config)
    model.compile(seed=0)  # the zoo's default jit_compile (False); builds the EMA network
    info = dict(parameters=sum(int(math.prod(w.shape)) for w in model.denoiser.trainable_weights),
                jit_compile=bool(model.jit_compile),
                tf_threads=(tf.config.threading.get_intra_op_parallelism_threads(),
                            tf.config.threading.get_inter_op_parallelism_threads()))
    if workload == "train":
        videos = tf.constant(clean_clips(batch, model.video_shape))
        return (lambda: model.train_on_batch(videos, return_dict=True)), info
    x_t = tf.constant(clean_clips(batch, model.video_shape, seed=1))
    t, s = (tf.constant(v, tf.float32) for v in SAMPLER_TIMES)
    step = tf.function(lambda x, t, s: model.step(x, t, s, network=model.inference_generator))
    return (lambda: step(x_t, t, s).numpy()), info  # .numpy(): wait for the result


def _torch_step(workload, batch, spec, options):
    import torch

    from _torch_unet import DiffusionTwin, parameter_count

    torch.set_num_threads(options["threads"])
    torch.manual_seed(0)
    twin = DiffusionTwin(spec).train()
    shape = (spec["num_frames"], spec["height"], spec["width"], spec["channels"])
    info = dict(parameters=parameter_count(twin.network), torch=torch.__version__, torch_threads=torch.get_num_threads())
    if workload == "train":
        videos = torch.from_numpy(clean_clips(batch, shape)).permute(0, 4, 1, 2, 3).contiguous()  # (B, C, T, H, W)
        return (lambda: twin.train_step(videos)), info
    x_t = torch.from_numpy(clean_clips(batch, shape, seed=1)).permute(0, 4, 1, 2, 3).contiguous()
    return (lambda: twin.step(x_t, *SAMPLER_TIMES)), info


def worker(framework, task, payload, options, conn):
    """A child: build, warm up, one step's peak memory, then timed blocks on request (vs_pytorch's protocol)."""
    sys.path.insert(0, BENCH)
    try:
        workload, batch = task
        step, info = (_zoo_step if framework == "zoo" else _torch_step)(workload, batch, payload, options)
        warmup = []
        for _ in range(options["warmup"]):
            start = time.perf_counter()
            step()
            warmup.append(time.perf_counter() - start)
        peak_before = _status_kib("VmHWM")
        reset = _reset_peak_rss()
        step()
        info.update(warmup_s=warmup, peak_rss_before_step_mib=peak_before / 1024,
                    peak_rss_step_mib=_status_kib("VmHWM") / 1024 if reset else None, peak_reset=reset)
        conn.send(("ready", info))
        serve_steps(conn, step)
    except BaseException as error:  # reported to the parent, which stops the run with it
        import traceback

        conn.send(("error", f"{framework} {task}: {error!r}\n{traceback.format_exc()}"))


def one_run(task, config, spec, options, zoo_first):
    """Both frameworks' step times and memory for one workload, in two fresh processes."""
    zoo = Child("zoo", task, config, options, target=worker)
    zoo_info = zoo.receive("ready")
    twin = Child("torch", task, spec, options, target=worker)
    twin_info = twin.receive("ready")
    if zoo_info["parameters"] != twin_info["parameters"]:
        raise SystemExit(f"parameter counts differ: zoo {zoo_info['parameters']:,}, torch {twin_info['parameters']:,}")
    times = {"zoo": [], "torch": []}
    rounds = math.ceil(options["steps"] / options["block"])
    for r in range(rounds):
        count = min(options["block"], options["steps"] - r * options["block"])
        order = (zoo, twin) if (r % 2 == 0) == zoo_first else (twin, zoo)
        for child in order:
            times[child.framework] += child.run(count)
    zoo_info.update(zoo.stop())
    twin_info.update(twin.stop())
    return {"zoo": {**zoo_info, "step_s": times["zoo"]}, "torch": {**twin_info, "step_s": times["torch"]}}


def summarise(task, runs, multiply_adds, peak):
    """Medians over runs of the mean step time, clips/s, GFLOP/s and % of the matmul peak, per framework."""
    import _common

    workload, batch = task
    per_clip = multiply_adds["per_training_clip"] if workload == "train" else multiply_adds["per_network_call"]
    row = {"workload": workload, "batch_size": batch, "multiply_adds_per_clip": per_clip, "runs": runs}
    for framework in ("zoo", "torch"):
        means = [statistics.fmean(run[framework]["step_s"]) for run in runs]
        step_s = statistics.median(means)
        clips_per_s = batch / step_s
        gflops, percent = _common.achieved(per_clip, clips_per_s, peak["tensorflow"])
        peaks = [run[framework]["peak_rss_step_mib"] for run in runs if run[framework]["peak_rss_step_mib"]]
        row[framework] = dict(step_ms=1000 * step_s, step_ms_runs=[1000 * m for m in means], clips_per_s=clips_per_s,
                              gflops=gflops, percent_of_peak=percent,
                              peak_rss_step_mib=statistics.median(peaks) if peaks else None)
    row["ratio_zoo_over_torch"] = row["torch"]["step_ms"] / row["zoo"]["step_ms"]  # > 1: the zoo is faster
    return row


def _mib(value):
    return "n/a" if value is None else f"{value:.0f}"


def print_rows(rows, sample_steps):
    print(f"\n{'workload':<16} {'zoo':>10} {'torch':>10} {'zoo/torch':>10} {'zoo %peak':>10} {'torch %peak':>12} "
          f"{'zoo peak MiB':>13} {'torch peak MiB':>15}")
    for row in rows:
        z, t = row["zoo"], row["torch"]
        if row["workload"] == "train":
            label, zoo_value, torch_value = f"train b{row['batch_size']} clips/s", z["clips_per_s"], t["clips_per_s"]
        else:
            label, zoo_value, torch_value = f"step b{row['batch_size']} ms", z["step_ms"], t["step_ms"]
        print(f"{label:<16} {zoo_value:>10.2f} {torch_value:>10.2f} {row['ratio_zoo_over_torch']:>9.2f}x "
              f"{z['percent_of_peak']:>9.1f}% {t['percent_of_peak']:>11.1f}% {_mib(z['peak_rss_step_mib']):>13} "
              f"{_mib(t['peak_rss_step_mib']):>15}")
    sampled = [row for row in rows if row["workload"] == "step"]
    if sampled:
        print("\nsampling cost per video, ms (DDIM, steps x step ms / batch)")
        print(f"{'batch':<8}" + "".join(f"{f'zoo {n}':>11}{f'torch {n}':>11}" for n in sample_steps))
        for row in sampled:
            print(f"{row['batch_size']:<8}" + "".join(
                f"{n * row['zoo']['step_ms'] / row['batch_size']:>11.1f}"
                f"{n * row['torch']['step_ms'] / row['batch_size']:>11.1f}" for n in sample_steps))
    print("(zoo/torch: the zoo's speed over torch's; above 1 the zoo is faster. %peak: of the float32 matmul peak.)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh process pairs per workload; medians over them")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per framework per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1: the zoo traces)")
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--sample-batches", type=int, nargs="*", default=[16, 32])
    parser.add_argument("--sample-steps", type=int, nargs="*", default=[10, 25, 50],
                        help="sampler steps of the per-video sampling cost")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of each framework")
    parser.add_argument("--tf-inter-op", type=int, default=None, help="TensorFlow inter-op threads (default: --threads)")
    parser.add_argument("--block", type=int, default=1, help="steps per turn of each framework")
    parser.add_argument("--no-train", action="store_true", help="sampler steps only")
    parser.add_argument("--json", default="bench/results/diffusion_vs_pytorch.json")
    parser.add_argument("--check", action="store_true",
                        help="copy the zoo's weights into the twin and compare outputs and one step instead")
    args = parser.parse_args()
    for option in ("runs", "steps", "warmup", "threads", "block", "train_batch"):
        if getattr(args, option) < 1:
            raise SystemExit(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if any(b < 1 for b in args.sample_batches) or any(n < 1 for n in args.sample_steps):
        raise SystemExit("--sample-batches and --sample-steps take integers >= 1")
    if args.check:
        from _diffusion_check import check  # imports torch before TensorFlow

        if not check(CONFIG, twin_spec):
            raise SystemExit("--check failed")
        return
    import _common  # TensorFlow, in this parent only: the matmul peak, the model's cost and the twin's spec
    import vidgen_tf
    from vidgen_tf.cost import model_multiply_adds

    peak = _common.matmul_peak_gflops()
    print(f"float32 matmul peak: TensorFlow {peak['tensorflow']:.1f} GFLOP/s, numpy {peak['numpy']:.1f} GFLOP/s",
          flush=True)
    model = vidgen_tf.build("video_diffusion", **CONFIG)
    cost = model_multiply_adds(model)
    multiply_adds = {"per_training_clip": cost.per_training_clip, "per_network_call": cost.forward["denoise"]}
    spec = twin_spec(model)
    parameters = sum(int(math.prod(w.shape)) for w in model.denoiser.trainable_weights)
    print(f"video_diffusion: {CONFIG}\n  parameters {parameters:,} (the twin's asserted equal in every run); "
          f"{multiply_adds['per_network_call'] / 1e9:.3f} G multiply-adds per clip and network call", flush=True)
    del model
    options = dict(steps=args.steps, warmup=args.warmup, threads=args.threads, block=args.block,
                   tf_inter_op=args.tf_inter_op or args.threads)
    tasks = ([] if args.no_train else [("train", args.train_batch)]) + [("step", b) for b in args.sample_batches]
    runs = {task: [] for task in tasks}
    for r in range(args.runs):
        for i, task in enumerate(tasks):
            result = one_run(task, CONFIG, spec, options, zoo_first=(r + i) % 2 == 0)
            runs[task].append(result)
            z, t = (statistics.fmean(result[f]["step_s"]) * 1000 for f in ("zoo", "torch"))
            print(f"run {r + 1}/{args.runs} {task[0]} batch {task[1]}: zoo {z:.1f} ms/step, torch {t:.1f} ms/step",
                  flush=True)
    rows = [summarise(task, runs[task], multiply_adds, peak) for task in tasks]
    print_rows(rows, args.sample_steps)
    end = _common.matmul_peak_gflops()
    print(f"float32 matmul peak at the end: TensorFlow {end['tensorflow']:.1f} GFLOP/s (percentages use the start's)")
    sample_costs = {str(row["batch_size"]): {fw: {str(n): n * row[fw]["step_ms"] / row["batch_size"]
                                                  for n in args.sample_steps} for fw in ("zoo", "torch")}
                    for row in rows if row["workload"] == "step"}
    _common.write_json(args.json, rows, config={**CONFIG, "channel_multipliers": list(CONFIG["channel_multipliers"]),
                                                "attention_resolutions": list(CONFIG["attention_resolutions"])},
                       parameters=parameters, runs=args.runs, steps=args.steps, warmup=args.warmup,
                       threads=args.threads, tf_inter_op=options["tf_inter_op"], block=args.block,
                       sampler_times=list(SAMPLER_TIMES), sample_cost_ms_per_video=sample_costs,
                       matmul_peak_gflops=peak, matmul_peak_gflops_end=end,
                       memory=("VmHWM of each child process after /proc/self/clear_refs reset, over one step after "
                               "warm-up; median over runs"))


if __name__ == "__main__":
    multiprocessing.freeze_support()
    main()
