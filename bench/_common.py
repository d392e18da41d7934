"""Shared helpers of the benchmarks: which models, at which settings, and JSON output."""

import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vidgen_tf  # noqa: E402
from vidgen_tf import presets  # noqa: E402

# Each model at its paper's setting, where the model's docstring gives one (configs for
# `vidgen_tf.build`); PAPER_BATCH_SIZES holds the papers' batch sizes where they give one.
PAPER_SETTINGS = {
    # MoCoGAN: 64x64 RGB, 16 frames, widths 64, content 50, motion 10.
    "mocogan": dict(num_frames=16, height=64, width=64, channels=3, content_dim=50, motion_dim=10,
                    generator_width=64, discriminator_width=64),
    # VGAN: 64x64x32 RGB, z of 100, widths 64 (the model's defaults).
    "vgan": dict(num_frames=32, height=64, width=64, channels=3, latent_dim=100, generator_width=64,
                 discriminator_width=64),
    # TGAN: 64x64x16 RGB, z0 and z1(t) of 100, G0 width 512, 512-channel 4x4 maps, critic widths 64.
    "tgan": dict(num_frames=16, height=64, width=64, channels=3, latent_dim=100, frame_code_dim=100,
                 generator_width=32, temporal_width=512, discriminator_width=64),
    # DVD-GAN-style: the zoo's scaled-down DVD-GAN at 64x64x16 RGB with the paper's z of 120
    # and k = 8 frames for the spatial discriminator (the paper's networks and sizes are larger).
    "dvdgan": dict(num_frames=16, height=64, width=64, channels=3, latent_dim=120, spatial_frames=8,
                   generator_width=64, discriminator_width=64),
    # DCGAN: single 64x64 RGB images, z of 100, widths 64 (dcgan.torch).
    "dcgan": dict(num_frames=1, height=64, width=64, channels=3, latent_dim=100, generator_width=64,
                  discriminator_width=64),
}
# Clips (images for DCGAN) per batch in the papers: VGAN and DCGAN say 64 and 128. MoCoGAN,
# TGAN and DVD-GAN are left out: the zoo's docstrings give no batch for them.
PAPER_BATCH_SIZES = {"vgan": 64, "dcgan": 128}


def setting_shape(config):
    """`HxWxT RGB|grey` of a configuration (model defaults where it gives none)."""
    shape = "x".join(str(config.get(k, "?")) for k in ("height", "width", "num_frames"))
    channels = config.get("channels")
    return shape + ("" if channels is None else " RGB" if channels == 3 else " grey")


def matmul_peak_gflops(size=2048, repeats=5):
    """The machine's float32 matrix-multiply rate now, in GFLOP/s (2 flops per multiply-add).

    Multiplies two `size x size` float32 matrices with TensorFlow (`tf.matmul`)
    and with numpy (`@`), once to warm up and then `repeats` times each; the
    best time gives the rate. Measured in the run that uses it, so that
    achieved rates are compared with what the machine gives at that moment.

    Returns:
        dict: `tensorflow` and `numpy` GFLOP/s, `size`, `repeats`.
    """
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((size, size), dtype=np.float32)
    b_np = rng.standard_normal((size, size), dtype=np.float32)
    a, b = tf.constant(a_np), tf.constant(b_np)

    def best(function):
        return best_seconds(function, repeats)

    flops = 2.0 * size**3
    # Reading one element waits for the product without copying it out.
    tf_time = best(lambda: tf.matmul(a, b)[0, 0].numpy())
    np_time = best(lambda: a_np @ b_np)
    return {"tensorflow": flops / tf_time / 1e9, "numpy": flops / np_time / 1e9, "size": size, "repeats": repeats}


def achieved(multiply_adds_per_clip, clips_per_second, peak):
    """`(GFLOP/s, percent of peak)` of `clips_per_second` clips of `multiply_adds_per_clip` each."""
    gflops = 2.0 * multiply_adds_per_clip * clips_per_second / 1e9
    return gflops, 100.0 * gflops / peak


def best_seconds(function, repeats, warm_up=True):
    """The shortest of `repeats` timed calls of `function`, in seconds (after one untimed call)."""
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


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
            rows.append((f"{name} paper {setting_shape(PAPER_SETTINGS[name])}", name, PAPER_SETTINGS[name]))
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


class _BatchClock(keras.callbacks.Callback):
    """Records the time at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def timed_fit(model, data, batch_size, steps, min_seconds):
    """Clips/s of `fit`'s steps, timed between batch ends inside one `fit` call (so neither
    tracing nor `fit`'s own set-up is counted): at least `steps` steps and `min_seconds`."""
    clock = _BatchClock()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, callbacks=[clock])  # trace, warm up
    estimate = max(clock.ends[1] - clock.ends[0], 1e-4)
    steps = max(steps, int(np.ceil(min_seconds / estimate)))
    clock = _BatchClock()
    model.fit(data, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[clock])
    return batch_size * steps / (clock.ends[-1] - clock.ends[0])
