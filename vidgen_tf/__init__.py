"""vidgen-tf: a TensorFlow/Keras model zoo for video generation."""

__version__ = "0.1.0"

from vidgen_tf import data, distribute, exporting  # noqa: E402
from vidgen_tf.presets import from_preset, list_presets, load_model, save_preset  # noqa: E402
from vidgen_tf.registry import build, list_models, register  # noqa: E402


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
