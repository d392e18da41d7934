"""Trains the built-in feature network `vidgen-synthetic-v1` on the zoo's synthetic datasets.

    python -m vidgen_tf.metrics.train_builtin [--steps N] [--seed S] [--batch-size B] [--out PATH]

Each training chunk is a fresh mixture of the four synthetic sets at 8 frames
of 32x32 (clips of every chunk from `np.random.default_rng([seed, 0, chunk])`):
moving_digits with 1, 2 or 3 digits (grey), moving_shapes with 1, 2 or 3
shapes (RGB), moving_square with four directions (grey) and bouncing_balls
with 1, 2 or 3 balls (half grey, half RGB); 15% of the clips have their first
frame held still and 15% their frames shuffled. Three heads learn: `class`
(digit, shape, direction, or "balls"; 18 classes; no loss for held-still or
shuffled moving_square clips, whose direction is lost), `count` (objects in
the clip) and `motion` (natural, static, shuffled). Held-out accuracy is measured on clips drawn from
other seeds (`[seed, 1, k]`), per dataset. The weights are written atomically
to `--out` (by default the file shipped with the package) and a JSON summary
(steps, time, accuracies) is printed.
"""

import argparse
import json
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from vidgen_tf import data
from vidgen_tf import atomic
from vidgen_tf.metrics import builtin

# (dataset, options, channels, count) of each part of a chunk; `count` is the
# number of objects in its clips.
PARTS = (
    *[("moving_digits", {"num_digits": k}, 1, k) for k in (1, 2, 3)],
    *[("moving_shapes", {"num_shapes": k}, 3, k) for k in (1, 2, 3)],
    ("moving_square", {"num_directions": 4}, 1, 1),
    *[("bouncing_balls", {"num_balls": k}, c, k) for k in (1, 2, 3) for c in (1, 3)],
)
# How many clips of a chunk each part gets, relative to the others: each
# dataset has about a quarter of the clips.
WEIGHTS = (1, 1, 1, 1, 1, 1, 3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)


def corrupt(clips, class_labels, names, fraction, rng):
    """Holds still (first frame repeated) or shuffles the frames of a `fraction` of the clips each.

    Returns:
        `(clips, class_labels, motion_labels)`: the new clips, class labels
        with -1 (no label) for held-still or shuffled `moving_square` clips,
        whose direction is lost, and the `motion` head's labels (0 natural,
        1 static, 2 shuffled).
    """
    clips, class_labels = clips.copy(), class_labels.copy()
    draw = rng.random(len(clips))
    motion = np.where(draw < fraction, 1, np.where(draw < 2 * fraction, 2, 0)).astype(np.int32)
    for i in np.flatnonzero(motion == 1):
        clips[i] = clips[i, :1]
    for i in np.flatnonzero(motion == 2):
        clips[i] = clips[i, rng.permutation(clips.shape[1])]
    class_labels[(motion > 0) & (names == "moving_square")] = -1
    return clips, class_labels, motion


def make_clips(num_clips, seed):
    """A mixture of labelled synthetic clips (as drawn: no corruption).

    Args:
        num_clips: int. Clips in all (split over `PARTS` by `WEIGHTS`, at least one each).
        seed: int or sequence of ints. Base seed; part i draws from `[*seed, i]`.

    Returns:
        `(clips, class_labels, count_labels, datasets)`: uint8 clips
        `(N, 8, 32, 32, 3)`, int32 labels of the `class` and `count` heads
        `(N,)`, and the dataset name of each clip `(N,)`.
    """
    seed = list(seed) if isinstance(seed, (list, tuple)) else [int(seed)]
    shares = np.array(WEIGHTS) / np.sum(WEIGHTS)
    clips, classes, counts, names = [], [], [], []
    for i, ((name, options, channels, count), share) in enumerate(zip(PARTS, shares)):
        n = max(1, int(round(num_clips * share)))
        labelled = name != "bouncing_balls"
        out = data.make_videos(name, n, num_frames=builtin.NUM_FRAMES, height=builtin.SIDE, width=builtin.SIDE,
                               channels=channels, seed=[*seed, i], with_labels=labelled, **options)
        videos, labels = out if labelled else (out, np.zeros(n, np.int32))
        if channels == 1:
            videos = np.repeat(videos, 3, axis=-1)  # as `prepare_clips` does for grey clips
        clips.append(videos)
        classes.append(builtin.CLASS_OFFSETS[name] + labels)
        counts.append(np.full(n, count - 1, np.int32))
        names.append(np.full(n, name))
    return (np.concatenate(clips), np.concatenate(classes).astype(np.int32), np.concatenate(counts),
            np.concatenate(names))


def to_inputs(clips):
    """Network inputs in [-1, 1] from uint8 clips (the scaling of `prepare_clips`)."""
    return tf.convert_to_tensor(clips, tf.float32) / 255.0 * 2.0 - 1.0


def evaluate(model, num_clips, seed, batch_size=64):
    """Held-out accuracy per head and dataset on `make_clips(num_clips, seed)`.

    Returns:
        dict: on the clips as drawn, `class/<dataset>` (the right class among
        all 18), `count/<dataset>` (bouncing balls, digits, shapes),
        `dataset` (the class falls in the clip's dataset) and `class/all`,
        `count/all`; on the same clips, a third of them held still and a
        third shuffled, `motion/<natural|static|shuffled>`; and `num_clips`.
    """
    clips, classes, counts, names = make_clips(num_clips, seed)
    seed = list(seed) if isinstance(seed, (list, tuple)) else [int(seed)]
    corrupted, _, motions = corrupt(clips, classes, names, 1 / 3, np.random.default_rng([*seed, 99]))
    predicted_class, predicted_count, predicted_motion = [], [], []
    for start in range(0, len(clips), batch_size):
        out = model(to_inputs(clips[start : start + batch_size]), training=False)
        predicted_class.append(np.argmax(out["class"], axis=1))
        predicted_count.append(np.argmax(out["count"], axis=1))
        out = model(to_inputs(corrupted[start : start + batch_size]), training=False)
        predicted_motion.append(np.argmax(out["motion"], axis=1))
    predicted_class, predicted_count = np.concatenate(predicted_class), np.concatenate(predicted_count)
    predicted_motion = np.concatenate(predicted_motion)
    dataset_of = np.array([builtin.CLASSES[c][0] for c in range(builtin.NUM_CLASSES)])
    result = {"num_clips": int(len(clips)), "class/all": float(np.mean(predicted_class == classes)),
              "count/all": float(np.mean(predicted_count == counts)),
              "dataset": float(np.mean(dataset_of[predicted_class] == names))}
    for index, motion in enumerate(builtin.MOTIONS):
        result[f"motion/{motion}"] = float(np.mean(predicted_motion[motions == index] == index))
    for name in builtin.CLASS_OFFSETS:
        chosen = names == name
        result[f"class/{name}"] = float(np.mean(predicted_class[chosen] == classes[chosen]))
        if name != "moving_square":  # one square in every clip
            result[f"count/{name}"] = float(np.mean(predicted_count[chosen] == counts[chosen]))
    return result


def train(steps=5000, seed=0, out=None, batch_size=32, chunk_size=512, learning_rate=2e-3, eval_clips=2048,
          corrupt_fraction=0.15):
    """Trains the network and writes its weights atomically.

    Args:
        steps: int. Optimizer steps. Defaults to 5000.
        seed: int. Seed of the initial weights and of the training clips
            (held-out clips use other seeds). Defaults to 0.
        out: str, Path or None. The weights file (`*.weights.h5`). Defaults
            to the file shipped with the package (`builtin.WEIGHTS_PATH`).
        batch_size: int. Clips per step. Defaults to 32.
        chunk_size: int. Fresh clips generated at a time (each used once).
            Defaults to 512.
        learning_rate: float. Adam's peak rate (cosine decay to 0). Defaults to 2e-3.
        eval_clips: int. Held-out clips for the accuracies. Defaults to 2048.
        corrupt_fraction: float. Share of training clips held still, and
            share shuffled, for the `motion` head. Defaults to 0.15.

    Returns:
        dict: the settings, the training time in seconds and the held-out accuracies.
    """
    if steps < 1 or batch_size < 1 or chunk_size < batch_size:
        raise ValueError(f"Need steps >= 1 and chunk_size >= batch_size >= 1; got steps={steps}, "
                         f"batch_size={batch_size}, chunk_size={chunk_size}.")
    out = builtin.WEIGHTS_PATH if out is None else out
    if not str(out).endswith(".weights.h5"):
        raise ValueError(f"The weights file must end in '.weights.h5' (Keras's rule), got '{out}'.")
    keras.utils.set_random_seed(seed)
    model, _ = builtin.build_model(seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    optimizer = keras.optimizers.Adam(schedule)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, classes, counts, motions):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            # Clips without a class label (-1) add nothing to the class loss.
            known = tf.cast(classes >= 0, tf.float32)
            class_loss = cross_entropy(tf.maximum(classes, 0), outputs["class"], sample_weight=known)
            count_loss = cross_entropy(counts, outputs["count"])
            motion_loss = cross_entropy(motions, outputs["motion"])
            loss = class_loss + count_loss + motion_loss
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return class_loss, count_loss, motion_loss

    start = time.time()
    chunk, order, position, losses = 0, None, chunk_size, []
    for i in range(steps):
        if position + batch_size > len(order if order is not None else []):
            clips, classes, counts, names = make_clips(chunk_size, [seed, 0, chunk])
            clips, classes, motions = corrupt(clips, classes, names, corrupt_fraction,
                                              np.random.default_rng([seed, 3, chunk]))
            order, position, chunk = np.random.default_rng([seed, 2, chunk]).permutation(len(clips)), 0, chunk + 1
        picks = order[position : position + batch_size]
        position += batch_size
        step_losses = step(to_inputs(clips[picks]), classes[picks], counts[picks], motions[picks])
        losses.append([float(v) for v in step_losses])
        if (i + 1) % 250 == 0 or i + 1 == steps:
            recent = np.mean(losses[-250:], axis=0)
            logging.info("step %d/%d: class loss %.4f, count loss %.4f, motion loss %.4f (%.0f s)", i + 1, steps,
                         *recent, time.time() - start)
    seconds = time.time() - start
    atomic.save_weights(model, out)
    accuracy = evaluate(model, eval_clips, [seed + 1, 1])
    return {"network": builtin.NAME, "steps": steps, "seed": seed, "batch_size": batch_size,
            "learning_rate": learning_rate, "corrupt_fraction": corrupt_fraction, "train_seconds": round(seconds, 1),
            "final_losses": [round(float(v), 4) for v in np.mean(losses[-100:], axis=0)],
            "held_out": accuracy, "out": str(out)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vidgen_tf.metrics.train_builtin", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="optimizer steps (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and training clips (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per step (default 32)")
    parser.add_argument("--chunk-size", type=int, default=512, help="fresh clips generated at a time (default 512)")
    parser.add_argument("--eval-clips", type=int, default=2048, help="held-out clips (default 2048)")
    parser.add_argument("--out", default=None, help="weights file (default: the one shipped in the package)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = train(steps=args.steps, seed=args.seed, out=args.out, batch_size=args.batch_size,
                    chunk_size=args.chunk_size, eval_clips=args.eval_clips)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
