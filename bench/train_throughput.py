"""Training throughput of every model: clips per second, with and without XLA, and GFLOP/s.

    python bench/train_throughput.py [--models mocogan vgan ...] [--steps 3] [--no-paper]
                                     [--paper-batch-sizes]

For each model: its zoo preset's small setting and, where `_common.PAPER_SETTINGS`
has one, its paper's setting (MoCoGAN, VGAN, TGAN and DCGAN; DVD-GAN-style);
e.g. MoCoGAN at 64x64x16 RGB, whose image discriminator sees one frame of
each clip. Every setting trains on `--batch-size` clips per step (16), or,
with `--paper-batch-sizes`, the paper settings on the papers' batches where
`_common.PAPER_BATCH_SIZES` gives one (VGAN 64, DCGAN 128). Each setting runs
`fit` for two warm-up steps, then one `fit` of at least `--steps` steps and
`--min-seconds` seconds, timed between batch ends (tracing and `fit`'s own set-up
are not counted), with
`jit_compile=False` for every setting first, then with `True`, in this one
process. Prints clips/s and the XLA/plain ratio; beside them the achieved
GFLOP/s (2 x `vidgen_tf.cost` multiply-adds per training clip x clips/s) and
its percentage of the float32 matrix-multiply peak measured at the start of
this run (`_common.matmul_peak_gflops`; measured again at the end, and
recorded, since the peak moves with the machine's load). Rewrites the JSON
after every measurement.
"""

import argparse

import numpy as np
import tensorflow as tf

from _common import PAPER_BATCH_SIZES, achieved, matmul_peak_gflops, model_names, settings, timed_fit, write_json

import vidgen_tf  # noqa: E402
from vidgen_tf.cost import model_multiply_adds  # noqa: E402
from vidgen_tf.likelihood import LikelihoodModel  # noqa: E402


def compiled_model(name, config, jit_compile):
    model = vidgen_tf.build(name, **config)
    if hasattr(model, "gan_loss") or isinstance(model, vidgen_tf.adversarial.AdversarialModel):
        model.compile(seed=0, jit_compile=jit_compile)
    else:
        model.compile(jit_compile=jit_compile)
    return model


def training_multiply_adds(name, config):
    """Multiply-adds per training clip of the model as this benchmark compiles it."""
    return model_multiply_adds(compiled_model(name, config, False)).per_training_clip


def clips_per_second(name, config, batch_size, steps, jit_compile, min_seconds=0.0):
    model = compiled_model(name, config, jit_compile)
    rng = np.random.default_rng(0)
    videos = rng.uniform(-1, 1, (batch_size,) + model.video_shape).astype("float32")
    if isinstance(model, LikelihoodModel):
        videos = np.where(videos > 0, 1.0, -1.0).astype("float32")  # binary: valid for every likelihood
    data = tf.data.Dataset.from_tensors(videos)
    if model.num_classes:
        data = tf.data.Dataset.from_tensors((videos, np.zeros(batch_size, "int32")))
    data = data.repeat()
    return timed_fit(model, data, batch_size, steps, min_seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--steps", type=int, default=3, help="timed steps, at least (default 3)")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time at least this long per setting: more steps for fast ones (default 3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-paper", action="store_true", help="skip the paper-size settings")
    parser.add_argument("--paper-batch-sizes", action="store_true",
                        help="train the paper settings on the papers' batch sizes where known")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True runs")
    parser.add_argument("--json", default="bench/results/train_throughput.json")
    args = parser.parse_args()
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak: TensorFlow {peak['tensorflow']:.1f} GFLOP/s, numpy {peak['numpy']:.1f} GFLOP/s "
          f"({peak['size']}x{peak['size']}, best of {peak['repeats']})", flush=True)
    rows = []
    measured = settings(model_names(args.models), include_paper=not args.no_paper)

    def batch_for(label, name):
        if args.paper_batch_sizes and " paper " in label and name in PAPER_BATCH_SIZES:
            return PAPER_BATCH_SIZES[name]
        return args.batch_size

    def rate(row, clips_per_s):
        return achieved(row["multiply_adds_per_clip"], clips_per_s, peak["tensorflow"])

    # Plain TensorFlow first for every setting, then XLA: XLA can be far slower
    # on CPU, and a run stopped early still has the plain figures (JSON is
    # rewritten after every measurement).
    print(f"{'setting':<36} {'clips/s':>9} {'GFLOP/s':>9} {'% of peak':>9}", flush=True)
    for label, name, config in measured:
        batch = batch_for(label, name)
        plain = clips_per_second(name, config, batch, args.steps, False, args.min_seconds)
        row = {"setting": label, "model": name, "config": config, "batch_size": batch,
               "clips_per_s": plain, "clips_per_s_xla": None, "xla_ratio": None,
               "multiply_adds_per_clip": training_multiply_adds(name, config)}
        gflops, percent = rate(row, plain)
        row.update(gflops=gflops, percent_of_peak=percent, gflops_xla=None, percent_of_peak_xla=None)
        rows.append(row)
        print(f"{label:<36} {plain:>9.2f} {gflops:>9.2f} {percent:>8.1f}%", flush=True)
        write_json(args.json, rows, steps=args.steps, matmul_peak_gflops=peak)
    if not args.no_xla:
        print(f"\n{'setting':<36} {'clips/s':>9} {'clips/s XLA':>12} {'XLA / plain':>12} {'GFLOP/s XLA':>12} "
              f"{'% of peak':>9}", flush=True)
        # The big paper settings last: XLA on them takes longest.
        for row, (label, name, config) in sorted(zip(rows, measured), key=lambda pair: "paper" in pair[1][0]):
            xla = clips_per_second(name, config, row["batch_size"], args.steps, True, args.min_seconds)
            gflops, percent = rate(row, xla)
            row.update(clips_per_s_xla=xla, xla_ratio=xla / row["clips_per_s"], gflops_xla=gflops,
                       percent_of_peak_xla=percent)
            print(f"{label:<36} {row['clips_per_s']:>9.2f} {xla:>12.2f} {xla / row['clips_per_s']:>11.2f}x "
                  f"{gflops:>12.2f} {percent:>8.1f}%", flush=True)
            write_json(args.json, rows, steps=args.steps, matmul_peak_gflops=peak)

    # Measured again at the end: on a shared machine the peak moves with the load.
    end = matmul_peak_gflops()
    print(f"float32 matmul peak at the end: TensorFlow {end['tensorflow']:.1f} GFLOP/s, numpy {end['numpy']:.1f} "
          "GFLOP/s (percentages use the start's)", flush=True)
    write_json(args.json, rows, steps=args.steps, matmul_peak_gflops=peak, matmul_peak_gflops_end=end)

if __name__ == "__main__":
    main()
