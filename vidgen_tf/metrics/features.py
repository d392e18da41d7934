"""Feature networks for the video metrics, and the clip preprocessing of the reference FVD recipe.

A `FeatureNetwork` is a function from preprocessed clips to feature vectors
with a declared input: its frame size, the number of consecutive frames it
reads (None for a per-frame network, as for FID), its value range and its
channels. `load_feature_network` makes one from a Keras model, a callable or
the path of a SavedModel directory that the user brings (for example the I3D
Kinetics-400 network that the FVD papers use: 224x224 clips in [-1, 1], 400
logits). Nothing is downloaded: a path must hold the model.

`prepare_clips` follows the reference FVD recipe (Unterthiner et al. 2018,
google-research `frechet_video_distance`): uint8 clips, grey repeated to three
channels, `num_frames` consecutive frames from a random offset, each frame
resized bilinearly to the network's input size, values scaled from [0, 255]
to the network's range (`2x/255 - 1` for [-1, 1]).
"""

import os
from pathlib import Path

import numpy as np
import tensorflow as tf


class FeatureNetwork:
    """A feature extractor with its declared input.

    Args:
        fn: callable. Takes a float32 tensor of preprocessed clips
            `(B, num_frames, height, width, channels)` (or frames
            `(B, height, width, channels)` when `num_frames` is None) and
            returns features `(B, D)`, or a dict of them (see `output`).
        name: str. Says which network made a figure (printed beside it).
        input_size: (int, int). Frame height and width the network reads.
        num_frames: int or None. Consecutive frames per clip; None for a
            per-frame (image) network.
        value_range: (float, float). The input range, e.g. (-1, 1).
        channels: int. Input channels (grey clips are repeated to 3).
        output: str or None. Key of the features when `fn` returns a dict.
        kind: str. "features" or "probabilities" (class probabilities, for
            the Inception Score) or "logits" (softmaxed for the Inception Score).
    """

    def __init__(self, fn, name, input_size, num_frames=None, value_range=(-1.0, 1.0), channels=3, output=None,
                 kind="features"):
        if not callable(fn):
            raise TypeError(f"A feature network must be callable, got {type(fn).__name__}.")
        height, width = (int(s) for s in input_size)
        if height < 1 or width < 1:
            raise ValueError(f"`input_size` must be two positive ints, got {input_size!r}.")
        if num_frames is not None and int(num_frames) < 1:
            raise ValueError(f"`num_frames` must be a positive int or None, got {num_frames!r}.")
        low, high = (float(v) for v in value_range)
        if not low < high:
            raise ValueError(f"`value_range` must be (low, high) with low < high, got {value_range!r}.")
        if kind not in ("features", "probabilities", "logits"):
            raise ValueError(f"`kind` must be 'features', 'probabilities' or 'logits', got {kind!r}.")
        self.fn = fn
        self.name = str(name)
        self.input_size = (height, width)
        self.num_frames = None if num_frames is None else int(num_frames)
        self.value_range = (low, high)
        self.channels = int(channels)
        self.output = output
        self.kind = kind

    @property
    def per_frame(self):
        return self.num_frames is None

    def describe(self):
        """A short description for reports, e.g. `i3d (16x224x224x3 in [-1, 1])`."""
        frames = "frames " if self.per_frame else f"{self.num_frames}x"
        low, high = self.value_range
        return (f"{self.name} ({frames}{self.input_size[0]}x{self.input_size[1]}x{self.channels} "
                f"in [{low:g}, {high:g}])")

    def cache_key(self):
        """What identifies this network's features in a statistics cache."""
        return {"name": self.name, "input_size": list(self.input_size), "num_frames": self.num_frames,
                "value_range": list(self.value_range), "channels": self.channels, "output": self.output}

    def __call__(self, inputs):
        """Features `(B, D)` float64 of preprocessed inputs."""
        out = self.fn(tf.convert_to_tensor(inputs, tf.float32))
        if isinstance(out, dict):
            if self.output is None:
                if len(out) != 1:
                    raise ValueError(
                        f"Feature network '{self.name}' returns several outputs {sorted(out)}; "
                        "name the one to use with `output=`."
                    )
                out = next(iter(out.values()))
            else:
                if self.output not in out:
                    raise ValueError(f"Feature network '{self.name}' has no output '{self.output}'; "
                                     f"it returns {sorted(out)}.")
                out = out[self.output]
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float64)
        if out.ndim != 2 or out.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"Feature network '{self.name}' must return features shaped (batch, feature_dim) = "
                f"({inputs.shape[0]}, D); it returned shape {out.shape}."
            )
        return out


def _saved_model_fn(path):
    loaded = tf.saved_model.load(str(path))
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" in signatures:
        signature = signatures["serving_default"]
        (input_name,) = signature.structured_input_signature[1].keys() or ("",)

        def call(x):
            return signature(**{input_name: x})

        return loaded, call
    if callable(loaded):
        return loaded, loaded
    raise ValueError(f"The SavedModel at '{path}' has no 'serving_default' signature and is not callable.")


def load_feature_network(spec, name=None, input_size=None, num_frames=None, value_range=(-1.0, 1.0), channels=3,
                         output=None, kind="features"):
    """A `FeatureNetwork` from a Keras model, a callable, a SavedModel path or a `FeatureNetwork`.

    A Keras model's input shape gives `input_size`, `num_frames` and
    `channels` when they are not passed; a callable or a SavedModel needs
    `input_size` (and `num_frames` for a video network).

    Args:
        spec: `FeatureNetwork`, `keras.Model`, callable, or str / Path of a
            SavedModel directory.
        name: str or None. Defaults to the model's name or the directory's name.
        input_size, num_frames, value_range, channels, output, kind: as for
            `FeatureNetwork`.
    """
    if isinstance(spec, FeatureNetwork):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_dir() or not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(
                f"'{spec}' is not a SavedModel directory (no saved_model.pb in it): pass the directory of a "
                "SavedModel feature network (the library never downloads one)."
            )
        keep, fn = _saved_model_fn(path)
        if input_size is None:
            raise ValueError(f"A SavedModel feature network needs `input_size` (and `num_frames` for video): '{spec}'.")
        network = FeatureNetwork(fn, name or path.name, input_size, num_frames, value_range, channels, output, kind)
        network._saved_model = keep  # keeps the loaded object (and its variables) alive
        return network
    shape = getattr(spec, "input_shape", None)
    if shape is not None and input_size is None:
        shape = tuple(shape)
        if len(shape) == 5:
            num_frames = num_frames if num_frames is not None else shape[1]
            input_size, channels = shape[2:4], shape[4] or channels
        elif len(shape) == 4:
            input_size, channels = shape[1:3], shape[3] or channels
        if input_size is None or any(s is None for s in input_size):
            raise ValueError(f"Feature model '{getattr(spec, 'name', spec)}' has no fixed input size {shape}: "
                             "pass `input_size`.")
    if input_size is None:
        raise ValueError("A callable feature network needs `input_size` (and `num_frames` for video).")
    return FeatureNetwork(spec, name or getattr(spec, "name", type(spec).__name__), input_size, num_frames,
                          value_range, channels, output, kind)


def to_uint8(videos):
    """uint8 videos `(B, T, H, W, C)` from uint8 or float videos in [-1, 1]; other input is an error."""
    array = np.asarray(videos.numpy() if hasattr(videos, "numpy") else videos)
    if array.ndim != 5:
        raise ValueError(f"Videos must be shaped (batch, time, height, width, channels), got shape {array.shape}.")
    if array.shape[-1] not in (1, 3):
        raise ValueError(f"Videos must have 1 or 3 channels, got {array.shape[-1]}.")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"Videos must be uint8 in [0, 255] or float in [-1, 1], got dtype {array.dtype}.")
    if array.size and (not np.all(np.isfinite(array)) or array.min() < -1.0 - 1e-3 or array.max() > 1.0 + 1e-3):
        raise ValueError(
            f"Float videos must be in [-1, 1], got values in [{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]"
            " (or NaN / Inf): pass uint8 frames, or scale as x / 127.5 - 1."
        )
    return np.clip(np.rint((array + 1.0) * 127.5), 0, 255).astype(np.uint8)


def prepare_clips(videos, network, rng, window="random", stride=1):
    """Preprocessed network inputs from uint8 videos, following the reference FVD recipe.

    For a video network: `network.num_frames` frames per video
    `(B, F, h, w, 3)`, every `stride`-th one (1: consecutive frames; 8 with
    128-frame clips is StyleGAN-V's `fvd2048_128f_subsample8f`), from a
    random offset per video (`window="random"`, the reference recipe) or from
    frame 0 (`window="start"`, StyleGAN-V's choice for generated clips); for
    a per-frame network every frame of every clip `(B * T, h, w, 3)`. Frames
    are resized bilinearly (no antialiasing, as `tf.image.resize` in the
    reference code) and scaled from [0, 255] to the network's value range.
    """
    if window not in ("random", "start"):
        raise ValueError(f"`window` must be 'random' or 'start', got {window!r}.")
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"`stride` must be an int >= 1, got {stride!r}.")
    stride = int(stride)
    videos = to_uint8(videos)
    batch, frames = videos.shape[:2]
    if not network.per_frame:
        need = network.num_frames
        span = (need - 1) * stride + 1  # frames a window covers
        if frames < span:
            every = "consecutive frames" if stride == 1 else f"frames, every {stride}th ({span} in all)"
            raise ValueError(
                f"Feature network {network.describe()} reads {need} {every}, but the videos have {frames}."
            )
        if window == "start":
            offsets = np.zeros(batch, np.int64)
        else:
            offsets = rng.integers(0, frames - span + 1, size=batch)
        videos = np.stack([v[o : o + span : stride] for v, o in zip(videos, offsets)])
    x = tf.convert_to_tensor(videos, tf.float32)
    if x.shape[-1] == 1 and network.channels == 3:
        x = tf.repeat(x, 3, axis=-1)
    elif x.shape[-1] != network.channels:
        raise ValueError(f"Feature network {network.describe()} reads {network.channels} channels, "
                         f"the videos have {x.shape[-1]}.")
    height, width, channels = x.shape[2:]
    x = tf.reshape(x, [-1, height, width, channels])  # every frame
    if (height, width) != network.input_size:
        x = tf.image.resize(x, network.input_size, method="bilinear")
    low, high = network.value_range
    x = x / 255.0 * (high - low) + low
    if network.per_frame:
        return x  # (B * T, h, w, 3)
    return tf.reshape(x, [batch, network.num_frames, *network.input_size, channels])
