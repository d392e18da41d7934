"""Checks an installed vidgen-tf wheel from outside the checkout (run by .ci/run).

Usage: python wheel_check.py ZOO_DIR, where ZOO_DIR is the checkout's zoo/ folder, whose
preset names the installed package must list. Every preset is built with `from_preset`
and generates a short clip; the built-in metric feature network loads from the package
and gives features of those clips. Exits non-zero, naming what is wrong, on any failure.
"""

import sys
import time
from pathlib import Path

import numpy as np


def main(zoo):
    start = time.perf_counter()
    import vidgen_tf
    from vidgen_tf import metrics, presets
    from vidgen_tf.metrics import builtin

    package = Path(vidgen_tf.__file__).resolve().parent
    checkout = zoo.resolve().parent
    if package.is_relative_to(checkout):
        raise SystemExit(f"vidgen_tf was imported from the checkout ({package}), not from the installed wheel.")
    if presets.zoo_dir().resolve() != package / "zoo":
        raise SystemExit(f"The zoo is read from {presets.zoo_dir()}, not from the wheel's {package / 'zoo'}.")
    expected = sorted(p.name for p in zoo.iterdir() if p.is_dir())
    names = vidgen_tf.list_presets()
    if names != expected:
        raise SystemExit(f"The installed package lists the presets {names}, the checkout's zoo/ holds {expected}.")
    clips = []
    for name in names:
        model = vidgen_tf.from_preset(name)
        labels = [0, 1] if model.num_classes else None  # a conditional preset draws the classes it is given
        video = np.asarray(model.generate(2, seed=0, labels=labels))
        shape = (2, model.num_frames, model.height, model.width, model.channels)
        if video.shape != shape or video.dtype != np.float32:
            raise SystemExit(f"{name} generated {video.dtype} {video.shape}, expected float32 {shape}.")
        if not np.all(np.isfinite(video)) or video.min() < -1.0 or video.max() > 1.0:
            raise SystemExit(f"{name} generated values in [{video.min()}, {video.max()}], outside [-1, 1].")
        print(f"  {name:<34} {model.registered_name:<10} {video.shape} in [{video.min():.2f}, {video.max():.2f}]")
        if video.shape[1] >= builtin.NUM_FRAMES:
            clips.append(video)
    if not Path(builtin.WEIGHTS_PATH).resolve().is_relative_to(package):
        raise SystemExit(f"The built-in feature network's weights {builtin.WEIGHTS_PATH} are not in the package.")
    network = metrics.builtin_feature_network("video")
    # Clips of several sizes: each preset's are resized to the network's frames on their own.
    features = np.concatenate([metrics.extract_features(clip, network, batch_size=8) for clip in clips])
    if features.shape != (len(clips) * 2, builtin.VIDEO_DIM) or not np.all(np.isfinite(features)):
        raise SystemExit(f"The built-in feature network gave features {features.shape}, expected "
                         f"({len(clips) * 2}, {builtin.VIDEO_DIM}) finite values.")
    print(f"wheel check: {len(names)} presets generate, {network.describe()} loads and gives features "
          f"{features.shape} ({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        raise SystemExit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]))
