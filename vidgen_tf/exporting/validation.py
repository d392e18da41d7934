"""Input checks of the exported signatures, read off the export description.

Each exported signature checks what its description promises: the inputs that
share a "batch" (or "frames") axis agree on its size, noise lies in its
distribution's support (uniform noise in [low, high), normal noise finite),
labels are integers in [0, num_classes), counts are >= their minimum, and float
videos to score lie in [-1, 1]. The signature itself fixes each input's dtype,
rank and fixed axes. A failed check is a `tf.debugging.Assert`, which the
SavedModel keeps: TF Serving and `loaded.signatures[...]` answer
INVALID_ARGUMENT with a message naming the input and what was expected, e.g.
"label: expected integers in [0, 10), got 12".

ONNX has no assert: tf2onnx drops these checks (and the strings they would
print), so an ONNX model runs on any input and its output on invalid input is
undefined. Clients of an `.onnx` file validate against its description.
"""

import tensorflow as tf

# How far float videos to score may leave [-1, 1] (see `LikelihoodModel.as_float_videos`).
from vidgen_tf.likelihood import VIDEO_RANGE_TOLERANCE


def _assert(condition, template, values):
    """An Assert whose message is `template` formatted with `values` (computed only to print)."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, values, summarize=8)])


def _offending(values, too_low):
    """The smallest value when some are below the range, else the largest: what to print as 'got'."""
    return tf.where(tf.reduce_any(too_low), tf.reduce_min(values), tf.reduce_max(values))


def _range_check(name, x, distribution):
    kind = distribution["kind"]
    if kind == "normal":
        finite = tf.reduce_all(tf.math.is_finite(x))
        return _assert(finite, f"{name}: expected finite values (normal noise, mean {distribution['mean']}, "
                               f"stddev {distribution['stddev']}), got NaN or Inf", [])
    if kind == "uniform":
        low, high = distribution["low"], distribution["high"]
        too_low = ~(x >= low)  # NaN counts as out of range
        ok = tf.reduce_all((x >= low) & (x < high))
        return _assert(ok, f"{name}: expected values in [{low}, {high}) (uniform noise), got {{}}",
                       [_offending(x, too_low)])
    if kind == "label":
        n = distribution["num_classes"]
        ok = tf.reduce_all((x >= 0) & (x < n))
        return _assert(ok, f"{name}: expected integers in [0, {n}), got {{}}", [_offending(x, x < 0)])
    if kind == "count":
        minimum = distribution["min"]
        return _assert(x >= minimum, f"{name}: expected an integer >= {minimum}, got {{}}", [x])
    if kind == "video" and x.dtype.is_floating:
        low, high = distribution["low"], distribution["high"]
        low_t, high_t = low - VIDEO_RANGE_TOLERANCE, high + VIDEO_RANGE_TOLERANCE
        too_low = ~(x >= low_t)
        ok = tf.reduce_all((x >= low_t) & (x <= high_t))
        return _assert(ok, f"{name}: expected floats in [{low:g}, {high:g}] (uint8 videos go to the uint8 "
                           "signature), got {}", [_offending(x, too_low)])
    return None  # seeds take any value; uint8 videos cannot leave [0, 255]


def checked_inputs(described, inputs):
    """`inputs` of one signature, each behind the checks its description states.

    Args:
        described: dict. One signature of an export description (`inputs`
            name -> dtype, shape, dynamic_axes, distribution).
        inputs: dict name -> tensor.

    Returns:
        dict name -> tensor: the same values, each depending on every check,
        so no output is computed from unchecked inputs.
    """
    checks = []
    first = {}  # axis role -> (input name, axis, size)
    for name, tensor in described["inputs"].items():
        x = inputs[name]
        for axis, role in tensor["dynamic_axes"].items():
            size = tf.shape(x)[int(axis)]
            if role not in first:
                first[role] = (name, axis, size)
                continue
            other, other_axis, other_size = first[role]
            checks.append(_assert(
                tf.equal(size, other_size),
                f"{name}: expected {{}} along axis {axis} ({role}, as {other} has along axis {other_axis}), got {{}}",
                [other_size, size],
            ))
        check = _range_check(name, x, tensor["distribution"])
        if check is not None:
            checks.append(check)
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in inputs.items()}


def check_label_count(labels, batch_size):
    """`labels` after checking that `generate` got one per video."""
    check = _assert(tf.equal(tf.shape(labels)[0], batch_size),
                    "label: expected batch_size ({}) labels, got {}", [batch_size, tf.shape(labels)[0]])
    with tf.control_dependencies([check]):
        return tf.identity(labels)
