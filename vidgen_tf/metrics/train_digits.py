"""Trains the digit reader `vidgen-digits-v1` on single frames of the built-in moving digits.

    python -m vidgen_tf.metrics.train_digits [--steps N] [--seed S] [--batch-size B] [--out PATH]

Training frames come from labelled `moving_digits` clips with one digit each
(8 frames of 32x32 grey, the data's own digit sizes and speeds), drawn afresh
for every chunk from `[seed, 0, chunk]`; every frame of a clip is an example of
its digit. Held-out accuracy is measured on frames of clips from another seed
(`[seed + 1, 1]`), per digit. The weights are written atomically to `--out`
(by default the file shipped with the package) and a JSON summary (steps,
time, accuracies) is printed.
"""

import argparse
import json
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from vidgen_tf import atomic, data
from vidgen_tf.metrics import digits

NUM_FRAMES = 8


def make_frames(num_clips, seed):
    """Frames `(num_clips * 8, 32, 32, 1)` in [-1, 1] of one-digit clips, and their digits `(num_clips * 8,)`."""
    videos, labels = data.make_videos("moving_digits", num_clips, num_frames=NUM_FRAMES, height=digits.SIDE,
                                      width=digits.SIDE, channels=1, seed=seed, with_labels=True, num_digits=1)
    frames, _ = digits.prepare_frames(videos)
    return frames, np.repeat(labels.astype(np.int32), NUM_FRAMES)


def evaluate(model, num_clips, seed, batch_size=512):
    """Held-out accuracy on the frames of `num_clips` one-digit clips from `seed`: overall and per digit."""
    frames, labels = make_frames(num_clips, seed)
    predicted = np.concatenate([np.argmax(model(frames[start : start + batch_size], training=False), axis=1)
                                for start in range(0, len(frames), batch_size)])
    result = {"num_frames": int(len(frames)), "accuracy": float(np.mean(predicted == labels))}
    for digit in range(digits.NUM_DIGITS):
        result[f"digit/{digit}"] = float(np.mean(predicted[labels == digit] == digit))
    return result


def train(steps=3000, seed=0, out=None, batch_size=64, chunk_clips=256, learning_rate=2e-3, eval_clips=1024):
    """Trains the reader and writes its weights atomically.

    Args:
        steps: int. Optimizer steps. Defaults to 3000.
        seed: int. Seed of the initial weights and of the training clips. Defaults to 0.
        out: str, Path or None. The weights file (`*.weights.h5`). Defaults to the shipped file.
        batch_size: int. Frames per step. Defaults to 64.
        chunk_clips: int. Fresh one-digit clips generated at a time (8 frames each, each frame used once).
            Defaults to 256.
        learning_rate: float. Adam's peak rate (cosine decay to 0). Defaults to 2e-3.
        eval_clips: int. Held-out clips (8 frames each). Defaults to 1024.

    Returns:
        dict: the settings, the training time in seconds and the held-out accuracies.
    """
    if steps < 1 or batch_size < 1 or chunk_clips * NUM_FRAMES < batch_size:
        raise ValueError(f"Need steps >= 1 and chunk_clips x 8 >= batch_size >= 1; got steps={steps}, "
                         f"batch_size={batch_size}, chunk_clips={chunk_clips}.")
    out = digits.WEIGHTS_PATH if out is None else out
    if not str(out).endswith(".weights.h5"):
        raise ValueError(f"The weights file must end in '.weights.h5' (Keras's rule), got '{out}'.")
    keras.utils.set_random_seed(seed)
    model = digits.build_reader(seed=seed)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps))
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = cross_entropy(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    start = time.time()
    chunk, frames, labels, order, position, losses = 0, None, None, np.zeros(0, int), 0, []
    for i in range(steps):
        if position + batch_size > len(order):
            frames, labels = make_frames(chunk_clips, [seed, 0, chunk])
            order, position = np.random.default_rng([seed, 2, chunk]).permutation(len(frames)), 0
            chunk += 1
        picks = order[position : position + batch_size]
        position += batch_size
        losses.append(float(step(tf.constant(frames[picks]), tf.constant(labels[picks]))))
        if (i + 1) % 250 == 0 or i + 1 == steps:
            logging.info("step %d/%d: loss %.4f (%.0f s)", i + 1, steps, np.mean(losses[-250:]), time.time() - start)
    seconds = time.time() - start
    atomic.save_weights(model, out)
    return {"network": digits.NAME, "steps": steps, "seed": seed, "batch_size": batch_size,
            "chunk_clips": chunk_clips, "learning_rate": learning_rate, "train_seconds": round(seconds, 1),
            "final_loss": round(float(np.mean(losses[-100:])), 4),
            "held_out": evaluate(model, eval_clips, [seed + 1, 1]), "out": str(out)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vidgen_tf.metrics.train_digits", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and training clips (default 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="frames per step (default 64)")
    parser.add_argument("--eval-clips", type=int, default=1024, help="held-out clips, 8 frames each (default 1024)")
    parser.add_argument("--out", default=None, help="weights file (default: the one shipped in the package)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = train(steps=args.steps, seed=args.seed, out=args.out, batch_size=args.batch_size,
                    eval_clips=args.eval_clips)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
