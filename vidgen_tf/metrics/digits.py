"""The digit reader: which handwritten digit each frame shows, for judging moving-digits videos.

FVD and recall say how close a set of clips is to the data; they do not say
whether a clip keeps drawing the same digit, or whether a generator draws all
ten. This reader answers that, frame by frame. It is a small 2-D classifier,
`vidgen-digits-v1`, trained on single frames of the built-in `moving_digits`
data (one digit per frame, at any position; `python -m
vidgen_tf.metrics.train_digits`, see `weights/README.md` for the data, the
command and its held-out accuracy), never on a zoo model's samples or metrics.

`read_digits(videos)` gives every frame's 10 class probabilities;
`digit_consistency(videos)` summarises a set of clips:

- `consistency`: the mean, over clips, of the fraction of frames whose digit
  is the clip's most common one (1 when every frame reads the same digit).
  A clip of 2 or 3 digits reads as whichever is most legible in each frame, so
  real clips score below 1: read a generator against held-out real clips;
- `class_bits`: the entropy, in bits, of the clips' most common digits (log2 10
  = 3.32 when all ten are drawn equally; a generator that collapses onto a
  few digits scores low);
- `classes`: how many digits are the most common one of at least 1 % of the clips;
- `confidence`: the mean of each frame's highest probability (blobs that are no
  digit read with low confidence);
- `class_fractions`: the share of clips whose most common digit is each of 0-9.

The reader sees frames of 32x32 grey in [-1, 1]: `prepare_frames` takes uint8
or float videos of any size and channels (colour is averaged to grey, frames
are resized bilinearly with half-pixel centres).
"""

import threading
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vidgen_tf.metrics.features import load_shipped_weights, weights_fingerprint

NAME = "vidgen-digits-v1"
SIDE = 32
NUM_DIGITS = 10
WEIGHTS_PATH = Path(__file__).parent / "weights" / "digit_reader_v1.weights.h5"
# A digit counts as drawn when it is the most common digit of at least this share of the clips.
DRAWN_SHARE = 0.01


def build_reader(seed=0):
    """The reader as a Keras functional model (random weights): frames `(B, 32, 32, 1)` in [-1, 1] -> 10 logits.

    Convolutions 3x3 (32, 32 stride 2, 64, 64 stride 2, 128; ReLU), then a
    global max over positions, so a digit reads the same wherever it is, and a
    dense layer of 10 logits.
    """
    init = lambda k: keras.initializers.HeNormal(seed=seed * 100 + k)  # noqa: E731
    frames = keras.Input((SIDE, SIDE, 1), name="frames")
    x = frames
    for k, (filters, stride) in enumerate(((32, 1), (32, 2), (64, 1), (64, 2), (128, 1))):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu",
                                kernel_initializer=init(k), name=f"conv{k + 1}")(x)
    x = keras.layers.GlobalMaxPooling2D(name="max_over_positions")(x)
    logits = keras.layers.Dense(NUM_DIGITS, kernel_initializer=init(9), name="digit")(x)
    return keras.Model(frames, logits, name=NAME)


_CACHE = {}
_LOCK = threading.Lock()


def load_reader(weights_path=None):
    """`(predict, fingerprint)`: a cached graph function frames -> logits and the weights' fingerprint."""
    path = Path(WEIGHTS_PATH if weights_path is None else weights_path)
    key = str(path.resolve())
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        model = build_reader()
        load_shipped_weights(model, path, f"the digit reader {NAME}", "vidgen_tf.metrics.train_digits")
        predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        _CACHE[key] = (predict, weights_fingerprint(model))
        return _CACHE[key]


def prepare_frames(videos):
    """Frames `(N * T, 32, 32, 1)` float32 in [-1, 1] of videos `(N, T, H, W, C)`, and `(N, T)`.

    uint8 videos are read as [0, 255], float videos as [-1, 1] (the zoo's
    models' range). Colour is averaged to grey; frames of another size are
    resized bilinearly (half-pixel centres).
    """
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"Videos must be (N, T, H, W, C); got shape {videos.shape}.")
    if videos.shape[-1] not in (1, 3):
        raise ValueError(f"Videos must have 1 or 3 channels; got shape {videos.shape}.")
    n, t = videos.shape[:2]
    if videos.dtype == np.uint8:
        frames = videos.astype(np.float32) / 127.5 - 1.0
    else:
        frames = videos.astype(np.float32)
        if not np.all(np.isfinite(frames)):
            raise ValueError("Videos hold NaN or Inf values.")
    frames = frames.mean(axis=-1, keepdims=True).reshape((n * t,) + videos.shape[2:4] + (1,))
    if frames.shape[1:3] != (SIDE, SIDE):
        frames = tf.image.resize(frames, (SIDE, SIDE), method="bilinear", antialias=False).numpy()
    return frames, (n, t)


def read_digits(videos, batch_size=256, weights_path=None):
    """The probabilities of the ten digits in every frame: `(N, T, 10)` float32.

    Args:
        videos: array `(N, T, H, W, C)`, uint8 in [0, 255] or float in [-1, 1].
        batch_size: int. Frames per call of the network. Defaults to 256.
        weights_path: str, Path or None. Another weights file of the same
            architecture. Defaults to the shipped `vidgen-digits-v1`.
    """
    predict, _ = load_reader(weights_path)
    frames, (n, t) = prepare_frames(videos)
    probabilities = []
    for start in range(0, len(frames), batch_size):
        logits = predict(tf.convert_to_tensor(frames[start : start + batch_size]))
        probabilities.append(tf.nn.softmax(logits).numpy())
    return np.concatenate(probabilities).reshape(n, t, NUM_DIGITS)


def _digit_counts(probabilities):
    """`(N, 10)`: how many frames of each clip read as each digit, from readings `(N, T, 10)`."""
    digits = np.asarray(probabilities).argmax(axis=-1)  # (N, T)
    return np.stack([(digits == d).sum(axis=1) for d in range(NUM_DIGITS)], axis=1)


def modal_digits(probabilities):
    """Each clip's most common digit `(N,)` from readings `(N, T, 10)`; ties go to the smaller digit."""
    return _digit_counts(probabilities).argmax(axis=1)


def reader_label(weights_path=None):
    """The reader's name and weights fingerprint, as its figures are labelled."""
    return f"{NAME}, weights {load_reader(weights_path)[1]}"


def summarise_readings(probabilities):
    """The figures of `digit_consistency` from the readings `(N, T, 10)` of `read_digits`."""
    probabilities = np.asarray(probabilities)
    counts = _digit_counts(probabilities)
    modal = counts.argmax(axis=1)  # ties go to the smaller digit, as in `modal_digits`
    consistency = counts.max(axis=1) / probabilities.shape[1]
    fractions = np.bincount(modal, minlength=NUM_DIGITS) / len(modal)
    present = fractions[fractions > 0]
    return {
        "consistency": float(consistency.mean()),
        "class_bits": float(-(present * np.log2(present)).sum()),
        "classes": int(np.sum(fractions >= DRAWN_SHARE)),
        "confidence": float(probabilities.max(axis=-1).mean()),
        "class_fractions": [float(f) for f in fractions],
        "num_videos": int(len(modal)),
    }


def digit_consistency(videos, batch_size=256, weights_path=None):
    """How steadily each clip draws one digit, and how many digits a set of clips draws.

    Args:
        videos: array `(N, T, H, W, C)`, uint8 in [0, 255] or float in [-1, 1]; N >= 1, T >= 1.
        batch_size: int. Frames per call of the network. Defaults to 256.
        weights_path: str, Path or None. Another weights file. Defaults to the shipped one.

    Returns:
        dict: `consistency`, `class_bits`, `classes`, `confidence`,
        `class_fractions` (see the module's docstring), `num_videos` and
        `reader` (name and weights fingerprint).
    """
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[0] < 1 or videos.shape[1] < 1:
        raise ValueError(f"digit_consistency needs videos (N, T, H, W, C) with N, T >= 1; got shape {videos.shape}.")
    result = summarise_readings(read_digits(videos, batch_size=batch_size, weights_path=weights_path))
    result["reader"] = reader_label(weights_path)
    return result
