"""Shared helpers of the benchmarks: which models, at which settings, and JSON output."""

import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import vidgen_tf  # noqa: E402
from vidgen_tf import presets  # noqa: E402

# MoCoGAN at the paper's setting: 64x64 RGB, 16 frames, widths 64, content 50, motion 10.
PAPER_SETTINGS = {
    "mocogan": dict(num_frames=16, height=64, width=64, channels=3, content_dim=50, motion_dim=10,
                    generator_width=64, discriminator_width=64),
}


def small_config(name):
    """The zoo preset's configuration of a model (`<name>_moving_digits` or the first one found), else defaults."""
    candidates = [p for p in presets.list_presets() if presets.load_preset_config(p)[0] == name]
    preferred = [p for p in candidates if p == f"{name}_moving_digits"] or candidates
    if preferred:
        return presets.load_preset_config(preferred[0])[1]
    return {}


def settings(names, include_paper=True):
    """`[(label, model_name, config)]` to measure."""
    rows = []
    for name in names:
        if include_paper and name in PAPER_SETTINGS:
            rows.append((f"{name} paper 64x64x16 RGB", name, PAPER_SETTINGS[name]))
        config = small_config(name)
        shape = "x".join(str(config.get(k, "?")) for k in ("height", "width", "num_frames"))
        rows.append((f"{name} preset {shape}", name, config))
    return rows


def model_names(requested):
    known = vidgen_tf.list_models()
    if not requested:
        return known
    for name in requested:
        if name not in known:
            raise SystemExit(f"unknown model {name!r}; known: {', '.join(known)}")
    return requested


def write_json(path, rows, **extra):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        **extra,
        "rows": rows,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
