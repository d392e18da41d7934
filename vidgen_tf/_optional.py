"""Imports of optional dependencies, with errors that say how to get them."""

import importlib

# Which TF versions each optional package works with, as measured (see README).
_NOTES = {
    "tensorflow_io": "tensorflow-io 0.37.1 is its last release and loads only with TensorFlow <= 2.17.1",
    "hmmlearn": "it is used by the benchmarks only",
}


class MissingExtraError(ImportError):
    """An optional dependency is missing or fails to load."""


def require(module, extra, feature):
    """Imports `module` or raises `MissingExtraError` naming the extra to install.

    Args:
        module: str. The module to import, e.g. "tensorflow_io".
        extra: str. The `vidgen-tf` extra that provides it, e.g. "io".
        feature: str. What the caller wanted to do, for the message.
    """
    try:
        return importlib.import_module(module)
    except Exception as error:  # broken compiled ops raise more than ImportError
        note = _NOTES.get(module, "")
        raise MissingExtraError(
            f"{feature} needs the optional package '{module}', which could not be imported "
            f"({type(error).__name__}: {error}). Install it with: pip install 'vidgen-tf[{extra}]'"
            + (f" ({note})." if note else ".")
        ) from error
