"""Input checks of the exported signatures, read off the export description.

Each exported signature checks what its description promises, naming the
input that fails:

- its rank and fixed (trailing) sizes, e.g. "content: expected rank 2 (shape
  [batch, 8]), got rank 3" (the SavedModel's signatures take inputs of any
  shape, so that these checks run before anything reads the input: a graph
  trusts a declared shape and folds every check of it away);
- that inputs sharing a "batch" (or "frames", "chunk_frames") axis agree on
  its size, which is at least 1 and at most the export's `max_batch_size`
  (or `max_frames`; the description's `limits`);
- noise in its distribution's support (uniform noise in [low, high), normal
  noise and float states finite), labels integers in [0, num_classes),
  counts scalars in [min, max], float videos to score in [-1, 1].

A failed check is a `tf.debugging.Assert`, which the SavedModel keeps: TF
Serving and `loaded.signatures[...]` answer INVALID_ARGUMENT with the
message, e.g. "label: expected integers in [0, 10), got 12", before the
model allocates anything for the request.

ONNX has no assert: tf2onnx drops these checks. onnxruntime itself refuses
a wrong rank or fixed size; the rest is computed into the graph's
`inputs_valid` output (`valid_inputs`), a bool scalar that is False when any
check fails: clients of an `.onnx` file check it (and its description).
"""

import tensorflow as tf

# How far float videos to score may leave [-1, 1] (see `LikelihoodModel.as_float_videos`).
from vidgen_tf.likelihood import VIDEO_RANGE_TOLERANCE

# The description's limits that bound each dynamic axis role and each count input.
AXIS_LIMITS = {"batch": "max_batch_size", "frames": "max_frames", "chunk_frames": "max_frames"}
COUNT_LIMITS = {"batch_size": "max_batch_size", "num_frames": "max_frames", "num_steps": "max_steps"}


def _assert(condition, template, values):
    """A check of `condition` whose failure message is `template` formatted with `values`.

    `values` is a list of tensors or a function returning one. The message (and
    the values, when given as a function) is computed only when the condition
    fails, inside a `tf.cond`: formatted on every call, the strings and the
    reductions they print cost a small model's signature about a third of its
    latency (HMM, batch 32; `bench/generate_latency.py`). Returns a bool tensor
    to use as a control dependency.
    """
    condition = tf.convert_to_tensor(condition)

    def fail():
        shown = values() if callable(values) else values
        check = tf.debugging.Assert(condition, [tf.strings.format(template, shown, summarize=8)])
        with tf.control_dependencies([check]):
            return tf.identity(condition)

    return tf.cond(condition, lambda: tf.identity(condition), fail)


def _offending(values, too_low):
    """A function giving the smallest of `values` when some are too low (`too_low(values)` a bool
    tensor), else the largest: what a failed check prints as 'got', computed only then (`_assert`)."""
    return lambda: [tf.where(tf.reduce_any(too_low(values)), tf.reduce_min(values), tf.reduce_max(values))]


def _shape_text(tensor):
    roles = tensor["dynamic_axes"]
    return "[" + ", ".join(roles[str(axis)] if size is None else str(size)
                           for axis, size in enumerate(tensor["shape"])) + "]"


def _range_condition(name, x, distribution, limits):
    """`(condition, template, values)` of the value check of one input, or None."""
    kind = distribution["kind"]
    if kind in ("normal", "state") and x.dtype.is_floating:
        what = (f"normal noise, mean {distribution['mean']}, stddev {distribution['stddev']}"
                if kind == "normal" else "a streaming state")
        return (tf.reduce_all(tf.math.is_finite(x)), f"{name}: expected finite values ({what}), got NaN or Inf", [])
    if kind == "uniform":
        low, high = distribution["low"], distribution["high"]
        ok = tf.reduce_all((x >= low) & (x < high))
        return (ok, f"{name}: expected values in [{low}, {high}) (uniform noise), got {{}}",
                _offending(x, lambda v: ~(v >= low)))  # NaN counts as out of range
    if kind == "label":
        n = distribution["num_classes"]
        ok = tf.reduce_all((x >= 0) & (x < n))
        return ok, f"{name}: expected integers in [0, {n}), got {{}}", _offending(x, lambda v: v < 0)
    if kind == "count":
        minimum = distribution["min"]
        limit = COUNT_LIMITS.get(name)
        maximum = (limits or {}).get(limit) if limit else None
        value = tf.concat([tf.reshape(x, [-1]), tf.zeros([1], x.dtype)], 0)[0]  # a scalar whatever the rank
        if maximum is None:
            return value >= minimum, f"{name}: expected an integer >= {minimum}, got {{}}", [value]
        return ((value >= minimum) & (value <= maximum),
                f"{name}: expected an integer in [{minimum}, {maximum}] (limit {limit} = {maximum}), "
                "got {}", [value])
    if kind == "video" and x.dtype.is_floating:
        low, high = distribution["low"], distribution["high"]
        low_t, high_t = low - VIDEO_RANGE_TOLERANCE, high + VIDEO_RANGE_TOLERANCE
        ok = tf.reduce_all((x >= low_t) & (x <= high_t))
        return (ok, f"{name}: expected floats in [{low:g}, {high:g}] (uint8 videos go to the uint8 signature), "
                    "got {}", _offending(x, lambda v: ~(v >= low_t)))
    return None  # seeds take any value; uint8 videos cannot leave [0, 255]


def _rank_conditions(described, inputs):
    conditions = []
    for name, tensor in described["inputs"].items():
        rank = len(tensor["shape"])
        conditions.append((tf.equal(tf.rank(inputs[name]), rank),
                           f"{name}: expected rank {rank} (shape {_shape_text(tensor)}), got rank {{}}",
                           [tf.rank(inputs[name])]))
    return conditions


def _padded_shape(x, rank):
    """`tf.shape(x)` cut or padded with ones to `rank` entries: reading an axis never fails."""
    return tf.concat([tf.shape(x), tf.ones([rank], tf.int32)], 0)[:rank]


def _value_conditions(described, inputs, limits):
    """Every check but the ranks; each reads any input without failing, whatever its rank."""
    conditions = []
    first = {}  # axis role -> (input name, axis, size)
    for name, tensor in described["inputs"].items():
        x = inputs[name]
        shape = _padded_shape(x, len(tensor["shape"]))
        for axis, size in enumerate(tensor["shape"]):
            if size is not None:
                conditions.append((tf.equal(shape[axis], size),
                                   f"{name}: expected size {size} along axis {axis} (shape "
                                   f"{_shape_text(tensor)}), got {{}}", [shape[axis]]))
        for axis, role in tensor["dynamic_axes"].items():
            size = shape[int(axis)]
            if role not in first:
                first[role] = (name, axis, size)
                limit = AXIS_LIMITS.get(role)
                maximum = (limits or {}).get(limit) if limit else None
                if maximum is None:
                    conditions.append((size >= 1, f"{name}: expected at least 1 along axis {axis} ({role}), "
                                                  "got {}", [size]))
                else:
                    conditions.append(((size >= 1) & (size <= maximum),
                                       f"{name}: expected 1 to {maximum} along axis {axis} ({role}; limit "
                                       f"{limit} = {maximum}), got {{}}", [size]))
                continue
            other, other_axis, other_size = first[role]
            conditions.append((
                tf.equal(size, other_size),
                f"{name}: expected {{}} along axis {axis} ({role}, as {other} has along axis {other_axis}), got {{}}",
                [other_size, size],
            ))
        condition = _range_condition(name, x, tensor["distribution"], limits)
        if condition is not None:
            conditions.append(condition)
    return conditions


def _with_static_shape(value, shape):
    """`value` reshaped to itself, so that the graph knows the described `shape` downstream.

    Not `tf.ensure_shape` or `set_shape`: the graph would take that shape for the input itself and
    fold its rank check away. A reshape says nothing about its input.
    """
    dims = _padded_shape(value, len(shape))
    target = tf.stack([dims[axis] if size is None else tf.constant(size, tf.int32)
                       for axis, size in enumerate(shape)]) if shape else tf.zeros([0], tf.int32)
    return tf.reshape(value, target)


def checked_inputs(described, inputs, limits=None):
    """`inputs` of one signature, each behind the checks its description states.

    The ranks are checked first; the sizes and values after them (so that no
    check of a size reads an axis the input lacks). The returned tensors have
    the described static shapes.

    Args:
        described: dict. One signature of an export description (`inputs`
            name -> dtype, shape, dynamic_axes, distribution).
        inputs: dict name -> tensor, of any shape.
        limits: dict or None. The description's `limits` (`max_batch_size`,
            `max_frames`); None checks no maximum.

    Returns:
        dict name -> tensor: the same values, each depending on every check,
        so no output is computed from unchecked inputs.
    """
    rank_conditions = _rank_conditions(described, inputs)
    rank_checks = [_assert(*condition) for condition in rank_conditions]
    # A wrong rank is reported by its own check alone: every other check passes on it (the executor
    # may run independent checks in any order, so one reading a missing axis would speak first).
    ranks_wrong = ~tf.reduce_all(tf.stack([condition for condition, _, _ in rank_conditions])) \
        if rank_conditions else tf.constant(False)
    with tf.control_dependencies(rank_checks):
        ranked = {name: tf.identity(value) for name, value in inputs.items()}
        checks = [_assert(ranks_wrong | tf.reduce_all(condition), template, values)
                  for condition, template, values in _value_conditions(described, ranked, limits)]
    with tf.control_dependencies(rank_checks + checks):
        result = {}
        for name, value in ranked.items():
            value = tf.identity(value)
            if name in described["inputs"]:
                value = _with_static_shape(value, described["inputs"][name]["shape"])
            result[name] = value
        return result


def valid_inputs(described, inputs, limits=None):
    """A bool scalar: whether `inputs` (of the described ranks) pass every check of `checked_inputs`.

    The ONNX exports return it as `inputs_valid` (ONNX has no assert).
    """
    conditions = [tf.reduce_all(condition) for condition, _, _ in _value_conditions(described, inputs, limits)]
    return tf.reduce_all(tf.stack(conditions)) if conditions else tf.constant(True)


def relaxed_specs(specs):
    """The specs with unknown shapes: a signature's inputs, checked by `checked_inputs` before use."""
    return {name: tf.TensorSpec(None, spec.dtype, name=spec.name or name) for name, spec in specs.items()}


def check_label_count(labels, batch_size):
    """`labels` after checking that `generate` got one per video."""
    check = _assert(tf.equal(tf.shape(labels)[0], batch_size),
                    "label: expected batch_size ({}) labels, got {}", [batch_size, tf.shape(labels)[0]])
    with tf.control_dependencies([check]):
        return tf.identity(labels)
