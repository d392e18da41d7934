"""The single place models are found: name -> model class.

Model families register themselves with `@register("name")`; `build(name, **config)`
constructs one from keyword arguments alone.
"""

import difflib
import importlib

import keras

_MODELS = {}
# Family modules, imported on first look-up so that `import vidgen_tf` stays light.
_FAMILY_MODULES = ("vidgen_tf.models",)
_loaded = False


class UnknownNameError(KeyError):
    """A model, preset, dataset or loss name that is not known."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


def unknown_name_error(kind, name, known):
    """An `UnknownNameError` naming `name`, every known name and the closest one."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.0)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UnknownNameError(
        f"Unknown {kind} '{name}'. Known {kind} names: {', '.join(known) or '(none)'}.{hint}"
    )


def register(name):
    """Class decorator: registers a model class under `name`.

    The class is also registered as Keras-serialisable, so `.keras` files that
    contain it load back, and it gets `registered_name = name`.
    """

    def decorator(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"Model name '{name}' is already registered to {_MODELS[name]}.")
        cls.registered_name = name
        _MODELS[name] = keras.saving.register_keras_serializable(package="vidgen_tf")(cls)
        return cls

    return decorator


def _load_families():
    global _loaded
    if not _loaded:
        for module in _FAMILY_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_models():
    """Names of every registered model, sorted."""
    _load_families()
    return sorted(_MODELS)


def get_model_class(name):
    """The class registered under `name`; an unknown name lists the known ones."""
    _load_families()
    if name not in _MODELS:
        raise unknown_name_error("model", name, _MODELS)
    return _MODELS[name]


def build(name, **config):
    """Builds the model registered under `name` from keyword arguments.

    Example:
        >>> model = vidgen_tf.build("mocogan", num_frames=8, height=32, width=32)
    """
    return get_model_class(name)(**config)
