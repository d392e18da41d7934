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

A network's output kind is declared (`kind=`), never guessed: "features"
serve FVD / KVD / FID / KID only; "logits" or "probabilities" (class outputs)
serve the Inception Score too (the reference I3D's 400 Kinetics logits are
FVD's features and IS's classes alike). Every network carries a fingerprint
of its weights (a Keras model's weight values, or the bytes of a SavedModel's
files), which keys cached features and is printed beside every figure.

`REFERENCE_NETWORKS` names the networks of published recipes; a user's network
loaded with `reference="i3d-kinetics-400"` is checked against it (input size,
frames, range, kind and the feature size of one probe call).
"""

import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

KINDS = ("features", "logits", "probabilities")
# How frames are resized to the network's input size (see `resize_frames`).
RESIZE_METHODS = ("bilinear", "tf1")

# Networks of published recipes that a user's network is checked against (nothing is downloaded).
REFERENCE_NETWORKS = {
    # TF-Hub's deepmind/i3d-kinetics-400/1, as the FVD papers use it (Unterthiner et al. 2018; StyleGAN-V):
    # a TF1-Hub-format SavedModel (tags [], signature "default", output "default"), 16 frames of 224x224 in
    # [-1, 1], 400 Kinetics logits as the features; 2048 real and 2048 generated clips.
    "i3d-kinetics-400": {"input_size": (224, 224), "num_frames": 16, "value_range": (-1.0, 1.0), "channels": 3,
                         "kind": "logits", "feature_dim": 400, "num_videos": 2048},
}


def load_shipped_weights(model, path, what, retrain_module):
    """Loads the weights file `path` into `model`; a missing or unreadable file is an error naming it.

    Args:
        model: a Keras model of the file's architecture.
        path: Path. The weights file.
        what: str. What the weights are, for the messages (e.g. "the digit reader vidgen-digits-v1").
        retrain_module: str. The module that retrains them (`python -m MODULE`).
    """
    if not path.is_file():
        raise FileNotFoundError(f"The weights of {what} are missing: '{path}' does not exist (reinstall vidgen-tf, "
                                f"or retrain them with `python -m {retrain_module}`).")
    try:
        model.load_weights(str(path))
    except Exception as error:  # h5py raises OSError, Keras ValueError for a wrong layout
        raise ValueError(f"The weights file '{path}' of {what} cannot be loaded ({error}); reinstall vidgen-tf or "
                         f"retrain it with `python -m {retrain_module}`.") from error


def weights_fingerprint(model):
    """A short sha1 of a Keras model's (or tf.Module's) weight values, in their order; None without weights."""
    weights = getattr(model, "weights", None)
    if weights is None:
        weights = getattr(model, "variables", None)
    if not weights:
        return None
    digest = hashlib.sha1()
    for weight in weights:
        value = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:12]


def files_fingerprint(path):
    """A short sha1 of every file under the directory `path` (names and bytes), e.g. of a SavedModel."""
    path = Path(path)
    digest = hashlib.sha1()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


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
        kind: str. What the outputs are, as declared by whoever loads the
            network (never guessed): "features" (FVD / KVD / FID / KID only),
            "logits" (softmaxed for the Inception Score; also features) or
            "probabilities" (class probabilities). Defaults to "features".
        fingerprint: str or None. Identifies the weights (keys cached
            features, printed beside figures). None takes it from a Keras
            model's (or tf.Module's) weights; a plain callable has none.
        resize: str. How frames are resized to `input_size`: "bilinear"
            (half-pixel centres, as StyleGAN-V, cd-FVD and TF-GAN) or "tf1"
            (google-research's `tf.compat.v1.image.resize_bilinear`). See
            `resize_frames`. Defaults to "bilinear".
        reference: str or None. The name in `REFERENCE_NETWORKS` this network
            was checked against (printed beside figures).
        class_blocks: dict or None. `{dataset: (first, end)}`: the classes of
            each dataset among the outputs, for a classifier of several
            datasets (the built-in network); the Inception Score of a dataset
            then reads only its block.
    """

    def __init__(self, fn, name, input_size, num_frames=None, value_range=(-1.0, 1.0), channels=3, output=None,
                 kind="features", fingerprint=None, resize="bilinear", reference=None, class_blocks=None):
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
        if kind not in KINDS:
            raise ValueError(f"`kind` must be 'features', 'logits' or 'probabilities', got {kind!r}.")
        if resize not in RESIZE_METHODS:
            raise ValueError(f"`resize` must be one of {', '.join(map(repr, RESIZE_METHODS))}, got {resize!r}.")
        if reference is not None and reference not in REFERENCE_NETWORKS:
            raise ValueError(f"Unknown reference network {reference!r}; known: {', '.join(REFERENCE_NETWORKS)}.")
        self.fn = fn
        self.name = str(name)
        self.input_size = (height, width)
        self.num_frames = None if num_frames is None else int(num_frames)
        self.value_range = (low, high)
        self.channels = int(channels)
        self.output = output
        self.kind = kind
        self.resize = resize
        self.reference = reference
        self.class_blocks = None if class_blocks is None else {k: tuple(v) for k, v in class_blocks.items()}
        self._fingerprint = fingerprint
        self.feature_dim = None  # known after the first call

    @property
    def per_frame(self):
        return self.num_frames is None

    @property
    def fingerprint(self):
        """A short hash of the weights (computed once), or None for a callable without declared weights."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.fn)
        return self._fingerprint

    def describe(self, feature_dim=None):
        """A short description for reports, e.g. `i3d (16x224x224x3 in [-1, 1]) -> 400-d, weights 1a2b3c4d5e6f`.

        Args:
            feature_dim: int or None. The size of the features (defaults to
                the one seen by the last call, when there was one).
        """
        frames = "frames " if self.per_frame else f"{self.num_frames}x"
        low, high = self.value_range
        text = f"{self.name} ({frames}{self.input_size[0]}x{self.input_size[1]}x{self.channels} in [{low:g}, {high:g}])"
        dim = feature_dim if feature_dim is not None else self.feature_dim
        details = ([f"{dim}-d {self.kind}"] if dim is not None else []) + [
            f"weights {self.fingerprint or 'not fingerprinted'}"]
        if self.resize != "bilinear":
            details.append(f"{self.resize} resize")
        if self.reference is not None:
            details.append(f"checked as {self.reference}")
        return f"{text} -> {', '.join(details)}"

    def cache_key(self):
        """What identifies this network's features in a statistics cache (the weights' fingerprint included)."""
        return {"name": self.name, "input_size": list(self.input_size), "num_frames": self.num_frames,
                "value_range": list(self.value_range), "channels": self.channels, "output": self.output,
                "fingerprint": self.fingerprint, "resize": self.resize}

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
        self.feature_dim = out.shape[1]
        return out


def _saved_model_fn(path, signature=None):
    """`(loaded object, call)` of a SavedModel: TF2 (`serving_default`) or TF1-Hub format (tags [], `default`).

    TF-Hub's `i3d-kinetics-400/1` is a TF1-Hub-format SavedModel: one
    meta-graph with the empty tag set and a signature `default` whose one
    input is `default` and whose output `default` holds the logits; this is
    what `hub.load(...).signatures["default"]` calls.
    """
    try:
        loaded = tf.saved_model.load(str(path))
    except (RuntimeError, ValueError) as error:  # a TF1 SavedModel whose meta-graph needs its tags named
        try:
            loaded = tf.saved_model.load(str(path), tags=[])
        except Exception:
            raise ValueError(f"The SavedModel at '{path}' cannot be loaded ({error}).") from error
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if signature is None:
        signature = next((name for name in ("serving_default", "default") if name in signatures), None)
        if signature is None:
            if callable(loaded):
                return loaded, loaded
            raise ValueError(f"The SavedModel at '{path}' has no 'serving_default' or 'default' signature and is "
                             "not callable; name its signature with `signature=` (--feature-signature).")
    if signature not in signatures:
        raise ValueError(f"The SavedModel at '{path}' has no signature '{signature}'; it has "
                         f"{sorted(signatures) or 'none'} (`signature=`, --feature-signature).")
    function = signatures[signature]
    inputs = sorted(function.structured_input_signature[1])
    if len(inputs) != 1:
        raise ValueError(f"Signature '{signature}' of the SavedModel at '{path}' takes {len(inputs)} inputs "
                         f"{inputs}; a feature network takes one (the clips).")

    def call(x):
        return function(**{inputs[0]: x})

    return loaded, call


def load_feature_network(spec, name=None, input_size=None, num_frames=None, value_range=None, channels=3,
                         output=None, kind=None, signature=None, resize="bilinear", reference=None, fingerprint=None):
    """A `FeatureNetwork` from a Keras model, a callable, a SavedModel path or a `FeatureNetwork`.

    A Keras model's input shape gives `input_size`, `num_frames` and
    `channels` when they are not passed (a free time axis, as I3D's, needs
    `num_frames`); a callable or a SavedModel needs `input_size` (and
    `num_frames` for a video network), unless `reference` gives them.
    SavedModels of TF2 (`serving_default`) and of the TF1-Hub format (tags
    `[]`, signature `default`, output `default`, as `i3d-kinetics-400/1`)
    load alike; the fingerprint of a SavedModel is that of its files.

    Args:
        spec: `FeatureNetwork`, `keras.Model`, callable, or str / Path of a
            SavedModel directory.
        name: str or None. Defaults to the model's name or the directory's name.
        input_size, num_frames, channels, output: as for `FeatureNetwork`.
        value_range: (float, float) or None. Defaults to the reference's, else (-1, 1).
        kind: str or None. "features", "logits" or "probabilities" (declared,
            never guessed). Defaults to the reference's, else "features".
        signature: str or None. The SavedModel signature to call. Defaults to
            `serving_default`, else `default`.
        resize: str. "bilinear" or "tf1" (see `resize_frames`). Defaults to "bilinear".
        reference: str or None. A name of `REFERENCE_NETWORKS` (e.g.
            "i3d-kinetics-400"): fills the unset input settings, refuses
            settings that differ from it and checks the feature size with one
            probe call.
        fingerprint: str or None. Of the weights of a plain callable.
    """
    if isinstance(spec, FeatureNetwork):
        return spec
    recipe = {}
    if reference is not None:
        if reference not in REFERENCE_NETWORKS:
            raise ValueError(f"Unknown reference network {reference!r}; known: {', '.join(REFERENCE_NETWORKS)}.")
        recipe = REFERENCE_NETWORKS[reference]
        given = {"input_size": None if input_size is None else tuple(int(v) for v in input_size),
                 "num_frames": num_frames, "kind": kind,
                 "value_range": None if value_range is None else tuple(float(v) for v in value_range)}
        for key, value in given.items():
            if value is not None and value != recipe[key]:
                raise ValueError(f"{reference} reads {key} {recipe[key]!r}; got {key}={value!r}.")
        input_size, num_frames = recipe["input_size"], recipe["num_frames"]
        value_range, kind, channels = recipe["value_range"], recipe["kind"], recipe["channels"]
    value_range = (-1.0, 1.0) if value_range is None else value_range
    kind = "features" if kind is None else kind
    settings = dict(value_range=value_range, channels=channels, output=output, kind=kind, resize=resize,
                    reference=reference)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_dir() or not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(
                f"'{spec}' is not a SavedModel directory (no saved_model.pb in it): pass the directory of a "
                "SavedModel feature network (the library never downloads one)."
            )
        if input_size is None:
            raise ValueError(f"A SavedModel feature network needs `input_size` (and `num_frames` for video): '{spec}'.")
        keep, fn = _saved_model_fn(path, signature)
        network = FeatureNetwork(fn, name or path.name, input_size, num_frames,
                                 fingerprint=fingerprint or files_fingerprint(path), **settings)
        network._saved_model = keep  # keeps the loaded object (and its variables) alive
    else:
        shape = getattr(spec, "input_shape", None)
        label = getattr(spec, "name", type(spec).__name__)
        if shape is not None and input_size is None:
            shape = tuple(shape)
            if len(shape) == 5:
                if num_frames is None and shape[1] is None:
                    raise ValueError(
                        f"Feature model '{label}' has a free time axis {shape} (as I3D has): pass `num_frames`, the "
                        "consecutive frames per clip it reads (16 for I3D); it is never used per frame silently."
                    )
                num_frames = num_frames if num_frames is not None else shape[1]
                input_size, channels = shape[2:4], shape[4] or channels
            elif len(shape) == 4:
                input_size, channels = shape[1:3], shape[3] or channels
            if input_size is None or any(s is None for s in input_size):
                raise ValueError(f"Feature model '{label}' has no fixed input size {shape}: pass `input_size`.")
            settings["channels"] = channels
        if input_size is None:
            raise ValueError("A callable feature network needs `input_size` (and `num_frames` for video).")
        network = FeatureNetwork(spec, name or label, input_size, num_frames, fingerprint=fingerprint, **settings)
    if recipe:
        _check_reference(network, recipe)
    return network


def _check_reference(network, recipe):
    """One probe call: the network's features must have the reference's size."""
    frames = () if network.per_frame else (network.num_frames,)
    probe = tf.zeros((1, *frames, *network.input_size, network.channels), tf.float32)
    try:
        dim = network(probe).shape[1]
    except Exception as error:
        raise ValueError(f"{network.name} is not a {network.reference} network: a probe clip "
                         f"{tuple(probe.shape)} fails ({error}).") from error
    if dim != recipe["feature_dim"]:
        raise ValueError(f"{network.name} gives {dim}-d outputs; {network.reference} gives {recipe['feature_dim']} "
                         f"{recipe['kind']}.")


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


def resize_frames(frames, size, method="bilinear"):
    """Frames `(N, H, W, C)` float32 resized bilinearly to `size`, without antialiasing.

    Two rules are in use, and they differ much on upsampling (64 -> 224 by
    about 30/255 on average on digit frames), so a figure names its rule:

    - "bilinear": half-pixel centres (output pixel `i` samples the input at
      `(i + 0.5) * in / out - 0.5`), as `tf.image.resize` in TF2, PyTorch's
      `interpolate(..., align_corners=False)`, and so StyleGAN-V's, cd-FVD's
      and TF-GAN's FVD code.
    - "tf1": the corner-aligned rule of TF1's default
      `tf.compat.v1.image.resize_bilinear` (`align_corners=False,
      half_pixel_centers=False`: pixel `i` samples `i * in / out`), which
      google-research's reference `frechet_video_distance` calls.

    Args:
        frames: float32 tensor `(N, H, W, C)`.
        size: (int, int). Output height and width.
        method: str. "bilinear" or "tf1". Defaults to "bilinear".
    """
    if method == "bilinear":
        return tf.image.resize(frames, size, method="bilinear")
    if method == "tf1":
        return tf.raw_ops.ResizeBilinear(images=frames, size=tf.constant(size, tf.int32), align_corners=False,
                                         half_pixel_centers=False)
    raise ValueError(f"`resize` must be one of {', '.join(map(repr, RESIZE_METHODS))}, got {method!r}.")


def prepare_clips(videos, network, rng, window="random", stride=1):
    """Preprocessed network inputs from uint8 videos, following the reference FVD recipe.

    For a video network: `network.num_frames` frames per video
    `(B, F, h, w, 3)`, every `stride`-th one (1: consecutive frames; 8 with
    128-frame clips is StyleGAN-V's `fvd2048_128f_subsample8f`), from a
    random offset per video (`window="random"`, the reference recipe) or from
    frame 0 (`window="start"`, StyleGAN-V's choice for generated clips); for
    a per-frame network every frame of every clip `(B * T, h, w, 3)`. Frames
    are resized bilinearly by the network's rule (`resize_frames`: half-pixel
    centres by default, or TF1's rule) and scaled from [0, 255] to the
    network's value range.
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
        x = resize_frames(x, network.input_size, getattr(network, "resize", "bilinear"))
    low, high = network.value_range
    x = x / 255.0 * (high - low) + low
    if network.per_frame:
        return x  # (B * T, h, w, 3)
    return tf.reshape(x, [batch, network.num_frames, *network.input_size, channels])
