"""The built-in feature network: a small video classifier trained on the zoo's synthetic sets.

No I3D weights can be had here, so when a metric is given no `feature_net` it
uses this network, `vidgen-synthetic-v1`, whose weights ship with the package
(`weights/synthetic_features_v1.weights.h5`, trained by
`python -m vidgen_tf.metrics.train_builtin`; see `weights/README.md` for the
data, the command and the held-out accuracy). Its figures are labelled
"vidgen synthetic features": they are comparable only between runs that use
this network version, never with the I3D figures of papers.

Architecture (8 consecutive frames of 32x32x3 in [-1, 1]):

- a 2-D conv trunk shared over time: 32x32x3 -> 16x16x32 -> 8x8x64 -> 8x8x64;
  its spatial mean is the per-frame feature (64-d, the `frame` tap, for
  FID / KID);
- temporal convolutions over the trunk's maps of the 8 frames
  (3x3x3 with stride (1, 2, 2) to 8x4x4x128, then 3x1x1), mean over time and
  space, a dense layer: the clip feature (128-d, the `video` tap, for FVD / KVD);
- heads on the clip feature: `class` (18 classes: digits 0-9, shapes square /
  circle / triangle, the four directions of `moving_square`, bouncing balls;
  the `logits` tap, for the video Inception Score), `count` (1, 2 or 3
  objects) and `motion` (the clip as drawn, its first frame held still, or
  its frames shuffled: so that the clip features see time, which FVD's I3D
  features barely do, Ge et al. 2024).
"""

import threading
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vidgen_tf.metrics.features import FeatureNetwork, load_shipped_weights, weights_fingerprint

NAME = "vidgen-synthetic-v1"
LABEL = "vidgen synthetic features; not comparable with I3D figures"
NUM_FRAMES, SIDE, CHANNELS = 8, 32, 3
FRAME_DIM, VIDEO_DIM = 64, 128

# Classes of the `class` head, in label order: (dataset, dataset label).
CLASSES = (
    *[("moving_digits", d) for d in range(10)],
    *[("moving_shapes", s) for s in range(3)],
    *[("moving_square", d) for d in range(4)],
    ("bouncing_balls", None),
)
NUM_CLASSES = len(CLASSES)
# First class index of each dataset in the `class` head.
CLASS_OFFSETS = {"moving_digits": 0, "moving_shapes": 10, "moving_square": 13, "bouncing_balls": 17}
# Each dataset's classes in the `class` head, `(first, end)`: the video Inception Score of a dataset reads its block.
CLASS_BLOCKS = {name: (first, first + sum(1 for dataset, _ in CLASSES if dataset == name))
                for name, first in CLASS_OFFSETS.items()}
MAX_COUNT = 3
# Classes of the `motion` head: the clip as drawn, its first frame held still, its frames shuffled.
MOTIONS = ("natural", "static", "shuffled")

WEIGHTS_PATH = Path(__file__).parent / "weights" / "synthetic_features_v1.weights.h5"
KINDS = ("video", "frame", "logits")


def build_model(seed=0):
    """The classifier as a Keras functional model (random weights).

    Args:
        seed: int. Seed of the weight initialisers. Defaults to 0.

    Returns:
        `(model, frame_model)`: `model` maps clips `(B, 8, 32, 32, 3)` in
        [-1, 1] to a dict `video` `(B, 128)`, `class` `(B, 18)` logits and
        `count` `(B, 3)` logits, `motion` `(B, 3)` logits; `frame_model` maps frames `(B, 32, 32, 3)` to
        `{"frame": (B, 64)}` through the same trunk layers (its weights are
        the model's).
    """
    init = lambda k: keras.initializers.HeNormal(seed=seed * 100 + k)  # noqa: E731
    trunk = [
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(1),
                            name="trunk_conv1"),
        keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(2),
                            name="trunk_conv2"),
        keras.layers.Conv2D(FRAME_DIM, 3, padding="same", activation="relu", kernel_initializer=init(3),
                            name="trunk_conv3"),
    ]

    def run_trunk(x):
        for layer in trunk:
            x = layer(x)
        return x

    # Per-frame features.
    frames = keras.Input((SIDE, SIDE, CHANNELS), name="frames")
    frame_features = keras.layers.GlobalAveragePooling2D(name="frame")(run_trunk(frames))  # (B, 64)
    frame_model = keras.Model(frames, {"frame": frame_features}, name=f"{NAME}-frame")

    # Clip features: the trunk on every frame, then temporal convolutions.
    clips = keras.Input((NUM_FRAMES, SIDE, SIDE, CHANNELS), name="clips")
    x = keras.ops.reshape(clips, (-1, SIDE, SIDE, CHANNELS))  # (B * 8, 32, 32, 3)
    x = run_trunk(x)  # (B * 8, 8, 8, 64)
    x = keras.ops.reshape(x, (-1, NUM_FRAMES, SIDE // 4, SIDE // 4, FRAME_DIM))  # (B, 8, 8, 8, 64)
    x = keras.layers.Conv3D(128, 3, strides=(1, 2, 2), padding="same", activation="relu", kernel_initializer=init(4),
                            name="temporal_conv1")(x)  # (B, 8, 4, 4, 128)
    x = keras.layers.Conv3D(128, (3, 1, 1), padding="same", activation="relu", kernel_initializer=init(5),
                            name="temporal_conv2")(x)  # (B, 8, 4, 4, 128)
    x = keras.layers.GlobalAveragePooling3D()(x)  # (B, 128)
    video = keras.layers.Dense(VIDEO_DIM, activation="relu", kernel_initializer=init(6), name="video")(x)
    logits = keras.layers.Dense(NUM_CLASSES, kernel_initializer=init(7), name="class")(video)
    count = keras.layers.Dense(MAX_COUNT, kernel_initializer=init(8), name="count")(video)
    motion = keras.layers.Dense(len(MOTIONS), kernel_initializer=init(9), name="motion")(video)
    model = keras.Model(clips, {"video": video, "class": logits, "count": count, "motion": motion}, name=NAME)
    return model, frame_model


class BuiltinFeatureNetwork(FeatureNetwork):
    """A `FeatureNetwork` of the built-in network whose description carries its label."""

    def describe(self, feature_dim=None):
        return f"{super().describe(feature_dim)}; {LABEL}"


_CACHE = {}
_LOCK = threading.Lock()


def _load_models(path):
    """The two models with the weights of `path`, loaded once per path (cached)."""
    path = Path(path)
    key = str(path.resolve())
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        model, frame_model = build_model()
        load_shipped_weights(model, path, f"the built-in feature network {NAME}", "vidgen_tf.metrics.train_builtin")
        video_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        frame_fn = tf.function(lambda x: frame_model(x, training=False), reduce_retracing=True)
        _CACHE[key] = (video_fn, frame_fn, weights_fingerprint(model))
        return _CACHE[key]


def builtin_feature_network(kind="video", weights_path=None):
    """The built-in feature network `vidgen-synthetic-v1` (weights shipped with the package).

    A small video classifier trained on the zoo's synthetic datasets (see the
    module docstring and `weights/README.md`). Its figures are labelled
    "vidgen synthetic features" and are comparable only between runs using
    this network version, never with I3D figures.

    Args:
        kind: str. "video": 128-d clip features of 8 consecutive frames (FVD,
            KVD); "frame": 64-d per-frame features of the 2-D trunk (FID,
            KID); "logits": the 18 class logits of the clip (video Inception
            Score, which reads only the scored dataset's block of classes,
            `CLASS_BLOCKS`). Defaults to "video".
        weights_path: str, Path or None. A weights file of this architecture.
            Defaults to the shipped `weights/synthetic_features_v1.weights.h5`.

    Returns:
        `FeatureNetwork` reading clips of 8x32x32x3 (or frames of 32x32x3 for
        "frame") in [-1, 1].

    Example:

    ```python
    network = builtin_feature_network("video")
    score = fvd(real_videos, fake_videos, feature_net=network)  # as with feature_net=None
    print(score.describe())
    ```
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(map(repr, KINDS))}, got {kind!r}.")
    video_fn, frame_fn, fingerprint = _load_models(WEIGHTS_PATH if weights_path is None else weights_path)
    if kind == "frame":
        return BuiltinFeatureNetwork(frame_fn, NAME, (SIDE, SIDE), None, (-1.0, 1.0), CHANNELS, output="frame",
                                     fingerprint=fingerprint)
    if kind == "video":
        return BuiltinFeatureNetwork(video_fn, NAME, (SIDE, SIDE), NUM_FRAMES, (-1.0, 1.0), CHANNELS, output="video",
                                     fingerprint=fingerprint)
    # The 18 class logits span four datasets: the Inception Score of a dataset reads only its own block.
    return BuiltinFeatureNetwork(video_fn, NAME, (SIDE, SIDE), NUM_FRAMES, (-1.0, 1.0), CHANNELS, output="class",
                                 kind="logits", fingerprint=fingerprint, class_blocks=CLASS_BLOCKS)
