"""vidgen-tf: a TensorFlow/Keras model zoo for video generation."""

__version__ = "0.1.0"

import importlib

# The public names, imported on first use (PEP 562): `import vidgen_tf` loads no TensorFlow, so
# the `vidgen` command can silence TensorFlow's start-up log lines before it is loaded.
_LAZY = {
    "from_preset": "vidgen_tf.presets",
    "list_presets": "vidgen_tf.presets",
    "load_model": "vidgen_tf.presets",
    "save_preset": "vidgen_tf.presets",
    "build": "vidgen_tf.registry",
    "list_models": "vidgen_tf.registry",
    "register": "vidgen_tf.registry",
}
# Subpackages and modules reachable as attributes (`vidgen_tf.data.load(...)`) without an import.
_SUBMODULES = ("adversarial", "atomic", "base", "callbacks", "cost", "data", "distribute", "exporting", "layers", "likelihood",
               "losses", "metrics", "models", "presets", "registry", "report", "video_io")


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"vidgen_tf.{name}")
    else:
        raise AttributeError(f"module 'vidgen_tf' has no attribute '{name}'")
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


def export_savedmodel(model, directory, version=1, **kwargs):
    """Writes `<directory>/<model name>/<version>/` for TF Serving; see `vidgen_tf.exporting`."""
    from vidgen_tf.exporting import export_savedmodel as _export

    return _export(model, directory, version=version, **kwargs)


def export_onnx(model, path, **kwargs):
    """Writes an ONNX file checked against the SavedModel; see `vidgen_tf.exporting`."""
    from vidgen_tf.exporting import export_onnx as _export

    return _export(model, path, **kwargs)


__all__ = [
    "build",
    "export_onnx",
    "export_savedmodel",
    "from_preset",
    "list_models",
    "list_presets",
    "load_model",
    "register",
    "save_preset",
]
