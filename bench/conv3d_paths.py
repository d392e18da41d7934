"""Native vs fast-path 3-D convolutions on this CPU, forward + backward, side by side.

    python bench/conv3d_paths.py [--json bench/results/conv3d_paths.json]

Prints, per case, milliseconds per forward+backward pass of Keras's layer and
of vidgen_tf.layers' stride-1 path (same weights), their ratio, and which path
the automatic rule of `vidgen_tf.layers.conv3d` picks.
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from vidgen_tf.layers import conv3d  # noqa: E402

CASES = [
    # (name, layer kind, input shape, filters, strides)
    ("video D layer 1 (16x64x64x3 -> 64)", "conv", (4, 16, 64, 64, 3), 64, (1, 2, 2)),
    ("video D layer 3 (16x16x16x128 -> 256)", "conv", (4, 16, 16, 16, 128), 256, (1, 2, 2)),
    ("small D (8x16x16x16 -> 32)", "conv", (16, 8, 16, 16, 16), 32, (1, 2, 2)),
    ("VGAN-style up (4x8x8x64 -> 32)", "transpose", (4, 4, 8, 8, 64), 32, (2, 2, 2)),
    ("VGAN-style up (8x16x16x32 -> 16)", "transpose", (4, 8, 16, 16, 32), 16, (2, 2, 2)),
]


def time_pass(layer, x, repeats):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x] + layer.trainable_variables)

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="bench/results/conv3d_paths.json")
    args = parser.parse_args()
    rows = []
    print(f"{'case':<40} {'keras ms':>10} {'stride-1 ms':>12} {'speed-up':>9} {'rule picks':>11}")
    for name, kind, shape, filters, strides in CASES:
        native_cls, fast_cls = (
            (keras.layers.Conv3D, conv3d.Conv3D) if kind == "conv" else (keras.layers.Conv3DTranspose, conv3d.Conv3DTranspose)
        )
        native = native_cls(filters, 4, strides=strides, padding="same")
        fast = fast_cls(filters, 4, strides=strides, padding="same", fast_path=True)
        native.build(shape)
        fast.build(shape)
        fast.set_weights(native.get_weights())
        x = tf.random.normal(shape)
        native_ms, fast_ms = time_pass(native, x, args.repeats), time_pass(fast, x, args.repeats)
        auto = fast_cls(filters, 4, strides=strides, padding="same")
        picks = "stride-1" if conv3d._use_fast_path(auto, x) else "native"
        rows.append({"case": name, "keras_ms": native_ms, "stride1_ms": fast_ms,
                     "speedup": native_ms / fast_ms, "rule_picks": picks})
        print(f"{name:<40} {native_ms:>10.1f} {fast_ms:>12.1f} {native_ms / fast_ms:>8.1f}x {picks:>11}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"tensorflow": tf.__version__, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
