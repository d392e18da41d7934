"""The zoo's MoCoGAN and VGAN against PyTorch twins: training clips/s and peak memory.

    python bench/vs_pytorch.py [--models mocogan vgan] [--steps 10] [--warmup 2] [--threads N]
                               [--setting paper|small] [--block 1] [--json PATH] [--check]

PyTorch is a bench-only extra (`pip install vidgen-tf[bench]`; the CPU wheel
is enough); nothing in `vidgen_tf` or the tests imports it.

What is compared. `bench/_torch_twins.py` holds a PyTorch implementation of
each zoo model, layer for layer (the same parameter counts, asserted at start
and printed), with the zoo's loss ("non_saturating"), the zoo's optimizer
(Adam with the model's `make_optimizer` rate, betas and epsilon, no weight
decay), the zoo's update order (`AdversarialModel.train_step` with
`n_critic = 1`: one discriminator update on real clips and fresh noise, then
one generator update on new noise) and the same batch (`--batch-size` clips,
16 by default; MoCoGAN's image discriminator sees one frame of each, i.e. 16
images). The zoo model is built with `vidgen_tf.build` and compiled as
`bench/train_throughput.py` does (`compile(seed=0)`, the zoo's default
`jit_compile=False`); a zoo step is `model.train_on_batch` on a batch held in
memory, a torch step is the twin's `train_step` on the same clips (eager
PyTorch, as the authors' code runs). Settings: "paper" is
`_common.PAPER_SETTINGS` for MoCoGAN (64x64x16 RGB) and the model's defaults
for VGAN (the paper's 64x64x32 RGB); "small" is the zoo preset's config
(`_common.small_config`).

Where the twins follow PyTorch's conventions instead (none changes the
arithmetic of a step): `torch.optim.Adam` adds epsilon to the bias-corrected
`sqrt(v)`, Keras's to the uncorrected one (a different step only for
gradients below ~1e-6); torch's running variance takes the unbiased batch
variance, Keras's the biased one; the timed twins start from PyTorch's default
initialisers. The discriminator update generates under `torch.no_grad()` and
the generator update freezes the discriminators' weights
(`requires_grad_(False)`), the idiomatic ways to skip gradients that
TensorFlow's tape does not compute either.

How it is measured, in one command run. Each framework runs in its own child
process (multiprocessing "spawn": a fresh interpreter that imports only its
own framework), so the two share neither thread pools nor a memory high-water
mark. Both children use `--threads` threads (default: every core):
`torch.set_num_threads(n)`; TensorFlow intra-op threads n and inter-op
threads `--tf-inter-op` (default n, which with n = all cores is TensorFlow's
own default), set before TensorFlow initialises. Each child builds its model
and runs `--warmup` untimed steps (the zoo's first traces the graph). Memory:
each child then resets its peak resident set (`/proc/self/clear_refs`, "5"),
runs one more step and reads `VmHWM`: the peak resident memory of the process
during one steady-state training step, the framework, model, optimizer state
and batch included (`peak_rss_before_step_mib` is the peak over building and
warm-up, the first trace included). Timing: the `--steps` timed steps run in
blocks of `--block` steps, the two children taking turns (zoo, torch, torch,
zoo, ...) while the other waits idle, so that a change in machine load falls
on both; clips/s = batch x steps / total step time of each. Measure on an
idle machine: with other jobs on the cores, PyTorch's OpenMP threads stall
at their barriers far worse than TensorFlow's thread pool (steps 20-40x
slower than alone were seen on a shared 2-core machine).

`--check` instead builds both models in this process, compares each part's
forward multiply-adds per clip (`vidgen_tf.layers.cost` on the zoo's layers,
the same rules on the shapes the twin's modules see), copies the zoo's
weights into the twin (kernels HWIO / DHWIO -> OIHW / OIDHW, transposed
kernels (k, out, in) -> (in, out, k), Dense-from-a-code -> transposed
convolution of a 1x1 input, GRU gates z, r, h -> r, z, n), feeds both the same
noise, clips and image-discriminator frames, and prints the largest absolute
difference of the generated clips and of every discriminator's logits (in
inference and in training mode), then of one whole training step: its two
losses, each update's gradients (Adam's first moments) against a float64 copy
of the twin, the updated weights and the batch-norm statistics; it fails if
any exceeds its tolerance (`bench/_vs_pytorch_check.py` says why each is what
it is). It takes about 20 s at `--setting small` and 2.5 minutes at "paper".
"""

import argparse
import math
import multiprocessing
import os
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from _memory import reset_peak_rss, status_kib  # noqa: E402  (standard library only: no framework)

SETTINGS = ("paper", "small")
TWINNED = ("mocogan", "vgan")


# ----------------------------------------------------------------- configs
def zoo_config(name, setting):
    import _common

    if setting == "paper":
        # MoCoGAN's paper setting is the bench's; VGAN's defaults are its paper's (64x64x32 RGB, widths 64).
        return dict(_common.PAPER_SETTINGS.get(name, {}))
    return dict(_common.small_config(name))


def twin_spec(model, name):
    """The plain dict a torch twin is built from, read off a built zoo model."""
    from vidgen_tf.layers import doubling_stages

    optimizer = model.make_optimizer().get_config()
    spec = dict(
        num_frames=model.num_frames, height=model.height, width=model.width, channels=model.channels,
        num_classes=model.num_classes, generator_width=model.generator_width,
        discriminator_width=model.discriminator_width, stages=doubling_stages(model.height, model.width),
        learning_rate=float(optimizer["learning_rate"]), beta_1=float(optimizer["beta_1"]),
        beta_2=float(optimizer["beta_2"]), epsilon=float(optimizer["epsilon"]),
    )
    if optimizer.get("weight_decay"):
        raise ValueError(f"The zoo's {name} optimizer has weight_decay={optimizer['weight_decay']}; the twin has none.")
    if name == "mocogan":
        spec.update(content_dim=model.content_dim, motion_dim=model.motion_dim,
                    video_temporal_kernels=list(model.video_temporal_kernels))
    elif name == "vgan":
        from vidgen_tf.models.vgan import _time_schedule

        start, strides = _time_schedule(model.num_frames, spec["stages"])
        critic = model.discriminators["video"]
        spec.update(latent_dim=model.latent_dim, start_frames=start, time_strides=list(strides),
                    mask_l1_weight=model.mask_l1_weight, discriminator_filters=list(critic.filters),
                    discriminator_feature_shape=list(critic.feature_shape))
    return spec


def zoo_counts(model):
    """`{part: (trainable, non-trainable)}` weights of the generator and each discriminator."""
    parts = {"generator": model.generator, **{f"discriminator/{k}": v for k, v in model.discriminators.items()}}
    return {
        part: (sum(int(math.prod(w.shape)) for w in m.trainable_weights),
               sum(int(math.prod(w.shape)) for w in m.non_trainable_weights))
        for part, m in parts.items()
    }


def twin_counts(twin):
    from _torch_twins import parameter_counts

    parts = {"generator": twin.generator, **{f"discriminator/{k}": v for k, v in twin.discriminators.items()}}
    return {part: parameter_counts(m) for part, m in parts.items()}


def real_clips(batch_size, video_shape):
    """The batch both frameworks train on: uniform in [-1, 1], `(B, T, H, W, C)` float32."""
    import numpy as np

    return np.random.default_rng(0).uniform(-1, 1, (batch_size,) + tuple(video_shape)).astype("float32")


# ----------------------------------------------------------------- workers
def _set_tf_threads(threads, inter_op):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def _zoo_trainer(name, config, options):
    _set_tf_threads(options["threads"], options["tf_inter_op"])
    import tensorflow as tf

    import vidgen_tf

    model = vidgen_tf.build(name, **config)
    model.compile(seed=0)  # as bench/train_throughput.py: the zoo's default jit_compile (False)
    videos = tf.constant(real_clips(options["batch_size"], model.video_shape))
    info = dict(spec=twin_spec(model, name), counts=zoo_counts(model), jit_compile=bool(model.jit_compile),
                tf_threads=(tf.config.threading.get_intra_op_parallelism_threads(),
                            tf.config.threading.get_inter_op_parallelism_threads()))
    return (lambda: model.train_on_batch(videos, return_dict=True)), info


def _torch_trainer(name, spec, options):
    import torch

    from _torch_twins import GANTwin

    torch.set_num_threads(options["threads"])
    torch.manual_seed(0)
    twin = GANTwin(name, spec).train()
    videos = real_clips(options["batch_size"], (spec["num_frames"], spec["height"], spec["width"], spec["channels"]))
    real = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).contiguous()  # (B, C, T, H, W)
    info = dict(counts=twin_counts(twin), torch=torch.__version__, torch_threads=torch.get_num_threads())
    return (lambda: twin.train_step(real)), info


def worker(framework, name, config_or_spec, options, conn):
    """A child process: build, warm up, measure one step's peak memory, then run timed blocks on request."""
    sys.path.insert(0, BENCH)
    try:
        make = _zoo_trainer if framework == "zoo" else _torch_trainer
        step, info = make(name, config_or_spec, options)
        warmup = []
        for _ in range(options["warmup"]):
            start = time.perf_counter()
            step()
            warmup.append(time.perf_counter() - start)
        rss_before = status_kib("VmRSS")
        peak_before = status_kib("VmHWM")
        reset = reset_peak_rss()
        step()
        info.update(
            warmup_s=warmup,
            rss_before_step_mib=rss_before / 1024,
            peak_rss_before_step_mib=peak_before / 1024,
            peak_rss_step_mib=status_kib("VmHWM") / 1024 if reset else None,
            peak_reset=reset,
        )
        conn.send(("ready", info))
        serve_steps(conn, step)
    except BaseException as error:  # reported to the parent, which stops the run with it
        import traceback

        conn.send(("error", f"{framework} {name}: {error!r}\n{traceback.format_exc()}"))


def serve_steps(conn, step):
    """A worker's loop once it is ready: times `count` calls of `step` per request, until "stop"."""
    while True:
        command, count = conn.recv()
        if command == "stop":
            conn.send(("stopped", {"peak_rss_process_mib": status_kib("VmHWM") / 1024}))
            return
        times = []
        for _ in range(count):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        conn.send(("times", times))


class Child:
    def __init__(self, framework, name, payload, options, target=None):
        # `target`: the child's function, `worker` by default (bench/diffusion_vs_pytorch.py passes its own).
        context = multiprocessing.get_context("spawn")
        self.framework = framework
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=target or worker, args=(framework, name, payload, options, child_conn), daemon=True)
        self.process.start()

    def receive(self, expected):
        try:
            kind, value = self.conn.recv()
        except EOFError:
            self.process.join(5)
            raise SystemExit(f"the {self.framework} child died (exit code {self.process.exitcode})") from None
        if kind == "error":
            raise SystemExit(f"the {self.framework} child failed: {value}")
        assert kind == expected, (kind, expected)
        return value

    def run(self, steps):
        self.conn.send(("run", steps))
        return self.receive("times")

    def stop(self):
        self.conn.send(("stop", 0))
        value = self.receive("stopped")
        self.process.join(60)
        return value


def print_counts(zoo, twin):
    print(f"  {'parameters':<24} {'zoo trainable':>14} {'torch':>12} {'zoo BN stats':>13} {'torch':>10}")
    for part in zoo:
        (zt, zs), (tt, ts) = zoo[part], twin[part]
        print(f"  {part:<24} {zt:>14,} {tt:>12,} {zs:>13,} {ts:>10,}")
    mismatched = [p for p in zoo if tuple(zoo[p]) != tuple(twin.get(p, ()))] + [p for p in twin if p not in zoo]
    if mismatched:
        raise SystemExit(f"parameter counts differ between the zoo and the torch twin for {mismatched}")


def measure(name, setting, options):
    config = zoo_config(name, setting)
    zoo = Child("zoo", name, config, options)
    zoo_info = zoo.receive("ready")
    twin = Child("torch", name, zoo_info["spec"], options)
    twin_info = twin.receive("ready")
    print(f"{name} ({setting}): {config}")
    print_counts(zoo_info["counts"], twin_info["counts"])
    times = {"zoo": [], "torch": []}
    rounds = math.ceil(options["steps"] / options["block"])
    for r in range(rounds):
        count = min(options["block"], options["steps"] - r * options["block"])
        order = (zoo, twin) if r % 2 == 0 else (twin, zoo)
        for child in order:
            times[child.framework] += child.run(count)
    zoo_info.update(zoo.stop())
    twin_info.update(twin.stop())
    batch = options["batch_size"]
    row = {"model": name, "setting": setting, "config": config, "batch_size": batch}
    for framework, info in (("zoo", zoo_info), ("torch", twin_info)):
        info.pop("spec", None)
        row[framework] = {**info, "step_s": times[framework],
                          "clips_per_s": batch * len(times[framework]) / sum(times[framework])}
    row["ratio_zoo_over_torch"] = row["zoo"]["clips_per_s"] / row["torch"]["clips_per_s"]
    return row


def _mib(value):
    return "n/a" if value is None else f"{value:.0f}"


def print_rows(rows):
    # zoo/torch is the ratio of clips/s: above 1, the zoo trains faster.
    print(f"\n{'model':<9} {'setting':<7} {'zoo clips/s':>12} {'torch clips/s':>14} {'zoo/torch':>10} "
          f"{'zoo step peak MiB':>18} {'torch step peak MiB':>20}")
    for row in rows:
        print(f"{row['model']:<9} {row['setting']:<7} {row['zoo']['clips_per_s']:>12.3f} "
              f"{row['torch']['clips_per_s']:>14.3f} {row['ratio_zoo_over_torch']:>9.2f}x "
              f"{_mib(row['zoo']['peak_rss_step_mib']):>18} {_mib(row['torch']['peak_rss_step_mib']):>20}")


# ------------------------------------------------------------------ check
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(TWINNED), help=f"any of {TWINNED}")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per framework")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1: the zoo traces)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of each framework")
    parser.add_argument("--tf-inter-op", type=int, default=None, help="TensorFlow inter-op threads (default: --threads)")
    parser.add_argument("--setting", choices=SETTINGS, default="paper")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block", type=int, default=1, help="steps per turn of each framework")
    parser.add_argument("--json", default="bench/results/vs_pytorch.json")
    parser.add_argument("--check", action="store_true",
                        help="copy the zoo's weights into the twin and compare outputs and one step instead")
    parser.add_argument("--seed", type=int, default=0, help="--check: seed of the zoo's initial weights")
    args = parser.parse_args()
    for model in args.models:
        if model not in TWINNED:
            raise SystemExit(f"--models: no torch twin of {model!r}; choose from {', '.join(TWINNED)}")
    for option in ("steps", "warmup", "threads", "batch_size", "block"):
        if getattr(args, option) < 1:
            raise SystemExit(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    sys.path.insert(0, BENCH)
    if args.check:
        from _vs_pytorch_check import check

        failed = [name for name in args.models if not check(name, zoo_config(name, args.setting), args)]
        if failed:
            raise SystemExit(f"--check failed for {failed}")
        return
    options = dict(steps=args.steps, warmup=args.warmup, threads=args.threads, batch_size=args.batch_size,
                   tf_inter_op=args.tf_inter_op or args.threads, block=args.block)
    rows = []
    for name in args.models:
        rows.append(measure(name, args.setting, options))
        print_rows(rows[-1:])
    print_rows(rows)
    import _common

    _common.write_json(args.json, rows, steps=args.steps, warmup=args.warmup, threads=args.threads,
                       tf_inter_op=options["tf_inter_op"], block=args.block, setting=args.setting,
                       memory=("VmHWM of each child process after /proc/self/clear_refs reset, over one "
                               "training step after warm-up"))


if __name__ == "__main__":
    main()
