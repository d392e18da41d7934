"""Test set-up: quiet TensorFlow, two logical CPU devices for tf.distribute tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPUs let MirroredStrategy tests run on this machine; this must
# happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # already initialised by another plugin
    pass


import pytest  # noqa: E402
from tensorflow.python.distribute import mirrored_strategy  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_collective_keys():
    """Give each test's MirroredStrategy its own collective key range.

    Strategies created in one process share collective group keys from a class
    attribute; a later test's all-reduce can collide with an earlier one's and
    hang or fail. TensorFlow's own strategy tests move the base the same way.
    """
    mirrored_strategy.MirroredStrategy._collective_key_base += 100000
    yield
