"""Native vs stride-1 3-D convolutions on this CPU, forward + backward, for every strided shape the zoo uses.

    python bench/conv3d_paths.py [--batch 8] [--repeats 3] [--models mocogan,vgan]
                                 [--list] [--json bench/results/conv3d_paths.json]

The cases are not a hand-kept list: every registered model is built at its
paper setting (the class defaults) and at its zoo preset's setting, run once
on a batch of one, and every strided `vidgen_tf.layers.Conv3D` /
`Conv3DTranspose` call is recorded with its input shape, filters, kernel,
strides and padding. Each distinct case is then timed, forward and backward
(gradients of the input and the kernel, as a training step needs them), with
Keras's layer and with the stride-1 path on the same weights, at `--batch`
clips. Prints milliseconds per pass of both, their ratio, which path is
faster, and which path the automatic rule of `vidgen_tf.layers.conv3d` picks;
`tests/test_conv3d.py` holds the rule to the measured cases.

    python bench/conv3d_paths.py --model-steps [--steps 4] [--preset-steps 150]

instead times whole training steps (`train_on_batch`, batch 16) of every
model setting with a strided `Conv3D` twice in one process: once with the
rule's paths and once with the native op everywhere (`choose_path`
replaced while that model traces), the two alternating step by step; prints
clips/s of both and their ratio, the layer paths the rule took, and writes
the rows to `--json` under "model_steps".
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import vidgen_tf  # noqa: E402
from vidgen_tf.layers import conv3d  # noqa: E402

from _common import model_names, small_config, write_json  # noqa: E402


def _exercise(model):
    """Runs every network of a model once on a batch of one."""
    if hasattr(model, "discriminators"):
        noise = model.sample_noise(1, tf.constant([0, 0], tf.int64))
        labels = tf.zeros([1], tf.int32) if model.num_classes else None
        videos = model.generate_from_noise(noise, labels)
        model.discriminate(tf.cast(videos, tf.float32), labels, tf.constant([0, 0], tf.int64))
    elif getattr(model, "is_diffusion", False):  # one network call: sampling repeats it
        labels = tf.zeros([1], tf.int32) if model.num_classes else None
        model.denoise(tf.zeros((1, *model.video_shape)), 0.5, labels)
    else:
        videos = tf.zeros((1, model.num_frames, model.height, model.width, model.channels))
        model.log_prob(videos)
        model.generate(1, seed=0)


def collect_cases(names):
    """`{case: [model settings using it]}` of every strided 3-D convolution the zoo runs."""
    cases = {}
    original = conv3d.layer_path

    def recording(layer, inputs):
        if any(s != 1 for s in layer.strides):
            kind = "transpose" if isinstance(layer, keras.layers.Conv3DTranspose) else "conv"
            case = (kind, tuple(int(d) for d in inputs.shape[1:]), int(layer.filters),
                    tuple(layer.kernel_size), tuple(layer.strides), layer.padding)
            cases.setdefault(case, set()).add(current)
        return original(layer, inputs)

    conv3d.layer_path = recording
    try:
        for name in names:
            for setting, config in (("paper", {}), ("preset", small_config(name))):
                current = f"{name} {setting}"
                _exercise(vidgen_tf.build(name, **config))
    finally:
        conv3d.layer_path = original
    return cases


def time_pass(layer, x, repeats):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x] + layer.trainable_variables)

    step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def describe(case):
    kind, shape, filters, kernel, strides, padding = case
    t, h, w, c = shape
    stride = "x".join(map(str, strides))
    return f"{kind} {t}x{h}x{w}x{c}->{filters} s{stride} k{kernel[0]} {padding}"


def model_steps(names, paper_steps, preset_steps):
    """Training clips/s of each model setting with the rule's paths and with the native op everywhere."""
    import numpy as np

    from _common import PAPER_SETTINGS

    rule = conv3d.choose_path
    rows = []
    settings = [(n, "paper", dict(PAPER_SETTINGS.get(n, {}))) for n in names]
    settings += [(n, "preset", dict(small_config(n))) for n in names]
    for name, setting, config in settings:
        taken = []

        def recording(*args, **kwargs):
            path = rule(*args, **kwargs)
            if not kwargs.get("transpose") and any(s != 1 for s in args[3]):
                taken.append(f"{'x'.join(map(str, args[0]))}:{path}")
            return path

        models = []
        for native in (False, True):
            conv3d.choose_path = (lambda *a, **k: "native") if native else recording
            try:
                model = vidgen_tf.build(name, **config)
                model.compile(seed=0)
                videos = tf.constant(np.random.default_rng(0).uniform(-1, 1, (16, *model.video_shape)).astype("float32"))
                model.train_on_batch(videos)
                model.train_on_batch(videos)
            finally:
                conv3d.choose_path = rule
            models.append((model, videos))
            if all(t.endswith(":native") for t in taken):
                break  # every strided layer (if any) keeps the native op: nothing to compare
        if len(models) < 2:
            continue
        steps = paper_steps if setting == "paper" else preset_steps
        times = [0.0, 0.0]
        for i in range(steps):
            for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                models[j][0].train_on_batch(models[j][1])
                times[j] += time.perf_counter() - start
        rule_rate, native_rate = 16 * steps / times[0], 16 * steps / times[1]
        row = {"model": name, "setting": setting, "config": config, "steps": steps, "rule_clips_per_s": rule_rate,
               "native_clips_per_s": native_rate, "speedup": rule_rate / native_rate,
               "paths": sorted(set(taken), key=taken.index)}
        rows.append(row)
        print(f"{name + ' ' + setting:<16} {rule_rate:>10.2f} {native_rate:>10.2f} {rule_rate / native_rate:>8.3f}x  "
              f"{', '.join(p for p in row['paths'] if not p.endswith(':native'))}", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="clips per pass (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per path; the best counts (default 3)")
    parser.add_argument("--models", default="", help="comma-separated model names (default: every registered model)")
    parser.add_argument("--list", action="store_true", help="only list the cases and the rule's choice, time nothing")
    parser.add_argument("--json", default=None,
                        help="default bench/results/conv3d_paths.json (conv3d_model_steps.json with --model-steps)")
    parser.add_argument("--model-steps", action="store_true",
                        help="time whole training steps with the rule's paths and with the native op instead")
    parser.add_argument("--steps", type=int, default=4, help="--model-steps: timed steps of each side at paper settings")
    parser.add_argument("--preset-steps", type=int, default=150, help="--model-steps: the same at preset settings")
    args = parser.parse_args()
    names = model_names([n for n in args.models.split(",") if n])
    if args.json is None:
        args.json = f"bench/results/conv3d_{'model_steps' if args.model_steps else 'paths'}.json"
    if args.model_steps:
        print("training steps, batch 16, rule's paths vs the native op everywhere, one process, alternating")
        print(f"{'setting':<16} {'rule':>10} {'native':>10} {'speed-up':>9}  layers off the native op (input T x H x W x C)")
        write_json(args.json, model_steps(names, args.steps, args.preset_steps), what="model_steps")
        return
    cases = collect_cases(names)
    if args.list:
        for case in sorted(cases, key=lambda c: (c[0], -c[1][1], c[1])):
            kind, shape, filters, kernel, strides, padding = case
            layer = (conv3d.Conv3D if kind == "conv" else conv3d.Conv3DTranspose)(filters, kernel, strides=strides,
                                                                                   padding=padding)
            picks = conv3d.layer_path(layer, tf.zeros((1, *shape)))
            print(f"{describe(case):<42} {picks:>15}  {', '.join(sorted(cases[case]))}")
        return
    rows = []
    print(f"{len(cases)} strided 3-D convolution shapes in {', '.join(names)}; batch {args.batch}, "
          f"best of {args.repeats}, forward + backward, ms")
    print(f"{'case':<42} {'keras':>8} {'stride-1':>9} {'s2d':>8} {'patches':>8} {'fastest':>15} {'rule':>15}  used by")
    for case in sorted(cases, key=lambda c: (c[0], -c[1][1], c[1])):
        kind, shape, filters, kernel, strides, padding = case
        batch_shape = (args.batch, *shape)
        x = tf.random.normal(batch_shape)
        if kind == "conv":
            native = keras.layers.Conv3D(filters, kernel, strides=strides, padding=padding)
            paths = ["stride1"] + (["space_to_depth", "patches"] if conv3d.space_to_depth_applies(kernel, strides) else [])
            make = lambda path: conv3d.Conv3D(filters, kernel, strides=strides, padding=padding, conv_path=path)  # noqa: E731
        else:
            native = keras.layers.Conv3DTranspose(filters, kernel, strides=strides, padding=padding)
            paths = ["stride1"]
            make = lambda path: conv3d.Conv3DTranspose(filters, kernel, strides=strides, padding=padding,  # noqa: E731
                                                       fast_path=path == "stride1")
        native.build(batch_shape)
        times = {"native": time_pass(native, x, args.repeats)}
        for path in paths:
            layer = make(path)
            layer.build(batch_shape)
            layer.set_weights(native.get_weights())
            assert conv3d.layer_path(layer, x) == path, (case, path)
            times[path] = time_pass(layer, x, args.repeats)
        picks = conv3d.layer_path(make(None), x)
        fastest = min(times, key=times.get)
        users = sorted(cases[case])
        rows.append({"case": describe(case), "kind": kind, "input_shape": list(shape), "filters": filters,
                     "kernel": list(kernel), "strides": list(strides), "padding": padding,
                     "keras_ms": times["native"], "stride1_ms": times["stride1"],
                     "space_to_depth_ms": times.get("space_to_depth"), "patches_ms": times.get("patches"),
                     "fastest": fastest, "rule_picks": picks, "used_by": users})
        cell = lambda path: f"{times[path]:>8.1f}" if path in times else f"{'-':>8}"  # noqa: E731
        print(f"{describe(case):<42} {cell('native')} {cell('stride1'):>9} {cell('space_to_depth')} {cell('patches')} "
              f"{fastest:>15} {picks:>15}  {', '.join(users)}", flush=True)
    write_json(args.json, rows, batch=args.batch, repeats=args.repeats)


if __name__ == "__main__":
    main()
