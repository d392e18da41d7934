"""Training throughput of every model: clips per second, with and without XLA.

    python bench/train_throughput.py [--models mocogan vgan ...] [--steps 3] [--no-paper]

For each model: its zoo preset's small setting and, for MoCoGAN, the paper's
64x64x16 RGB setting (batch 16 clips; the image discriminator sees one frame
of each, i.e. 16 images). Each setting runs `fit` for a warm-up step, then
`--steps` timed steps, with `jit_compile=False` for every setting first, then
with `True`, in this one process. Prints clips/s and the XLA/plain ratio;
rewrites the JSON after every measurement.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from _common import model_names, settings, write_json

import vidgen_tf  # noqa: E402
from vidgen_tf.likelihood import LikelihoodModel  # noqa: E402


def clips_per_second(name, config, batch_size, steps, jit_compile):
    model = vidgen_tf.build(name, **config)
    if hasattr(model, "gan_loss") or isinstance(model, vidgen_tf.adversarial.AdversarialModel):
        model.compile(seed=0, jit_compile=jit_compile)
    else:
        model.compile(jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    videos = rng.uniform(-1, 1, (batch_size,) + model.video_shape).astype("float32")
    if isinstance(model, LikelihoodModel):
        videos = np.where(videos > 0, 1.0, -1.0).astype("float32")  # binary: valid for every likelihood
    data = tf.data.Dataset.from_tensors(videos)
    if model.num_classes:
        data = tf.data.Dataset.from_tensors((videos, np.zeros(batch_size, "int32")))
    data = data.repeat()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return batch_size * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-paper", action="store_true", help="skip the paper-size settings")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True runs")
    parser.add_argument("--json", default="bench/results/train_throughput.json")
    args = parser.parse_args()
    rows = []
    measured = settings(model_names(args.models), include_paper=not args.no_paper)
    # Plain TensorFlow first for every setting, then XLA: XLA can be far slower
    # on CPU, and a run stopped early still has the plain figures (JSON is
    # rewritten after every measurement).
    print(f"{'setting':<36} {'clips/s':>9}", flush=True)
    for label, name, config in measured:
        plain = clips_per_second(name, config, args.batch_size, args.steps, False)
        rows.append({"setting": label, "model": name, "config": config, "batch_size": args.batch_size,
                     "clips_per_s": plain, "clips_per_s_xla": None, "xla_ratio": None})
        print(f"{label:<36} {plain:>9.2f}", flush=True)
        write_json(args.json, rows, steps=args.steps)
    if args.no_xla:
        return
    print(f"\n{'setting':<36} {'clips/s':>9} {'clips/s XLA':>12} {'XLA / plain':>12}", flush=True)
    # The big paper settings last: XLA on them takes longest.
    for row, (label, name, config) in sorted(zip(rows, measured), key=lambda pair: "paper" in pair[1][0]):
        xla = clips_per_second(name, config, args.batch_size, args.steps, True)
        row.update(clips_per_s_xla=xla, xla_ratio=xla / row["clips_per_s"])
        print(f"{label:<36} {row['clips_per_s']:>9.2f} {xla:>12.2f} {xla / row['clips_per_s']:>11.2f}x", flush=True)
        write_json(args.json, rows, steps=args.steps)


if __name__ == "__main__":
    main()
