"""Batch normalisation in training: the zoo's fused path against Keras's two-pass moments.

    python bench/batch_norm.py [--repeats 10]

For MoCoGAN's frame-generator shapes at the paper setting (16 clips x 16 frames = 256
images), one forward and backward pass of a weighted sum through
`vidgen_tf.layers.BatchNormalization` (TensorFlow's `FusedBatchNormV3` on one replica) and
through `keras.layers.BatchNormalization` (`tf.nn.moments`), both in `tf.function`, in this
one process; prints milliseconds of each (mean of `--repeats` after two warm-up calls), the
ratio and the largest gradient difference relative to the largest gradient.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from _common import write_json  # noqa: E402

from vidgen_tf.layers import BatchNormalization  # noqa: E402

SHAPES = [(256, 4, 4, 512), (256, 8, 8, 256), (256, 16, 16, 128), (256, 32, 32, 64)]


def step_function(norm, weights):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(norm(x, training=True) * weights)
        return tape.gradient(loss, [x, *norm.trainable_variables])

    return step


def milliseconds(function, x, repeats):
    function(x)
    function(x)
    start = time.perf_counter()
    for _ in range(repeats):
        function(x)
    return (time.perf_counter() - start) / repeats * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=os.path.join("bench", "results", "batch_norm.json"))
    args = parser.parse_args()
    rows = []
    print(f"{'shape':<22} {'keras ms':>9} {'fused ms':>9} {'keras/fused':>12} {'max grad diff':>14}")
    for shape in SHAPES:
        x = tf.random.normal(shape, seed=0)
        weights = tf.random.normal(shape, seed=1)
        norms = [keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                 BatchNormalization(momentum=0.9, epsilon=1e-5)]
        steps = [step_function(norm, weights) for norm in norms]
        plain, fused = (s(x) for s in steps)
        diff = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))) for a, b in zip(plain, fused))
        keras_ms, fused_ms = (milliseconds(s, x, args.repeats) for s in steps)
        print(f"{'x'.join(map(str, shape)):<22} {keras_ms:9.2f} {fused_ms:9.2f} {keras_ms / fused_ms:11.2f}x "
              f"{diff:14.1e}")
        rows.append(dict(shape=list(shape), keras_ms=round(keras_ms, 3), fused_ms=round(fused_ms, 3),
                         ratio=round(keras_ms / fused_ms, 3), max_relative_gradient_difference=diff))
    write_json(args.json, rows, repeats=args.repeats)


if __name__ == "__main__":
    main()
