"""Streaming exports: videos of any length, chunk by chunk, with memory bounded by the chunk.

A model that streams (`model.streaming_unavailable is None`; see
`VideoModel.generate_stream`) gets two more SavedModel signatures:

- `initial_state`: the per-clip noise (and `label` for conditional models;
  `batch_size` for models without either) -> the state before the first
  frame, one output per state tensor. Left out when the state is empty
  (an unconditional DCGAN: its frames are independent).
- `generate_chunk`: the state and the per-frame noise of `K` frames (`K`
  dynamic, >= 1) -> `video` uint8 `(B, K, H, W, C)` and `next_<name>` for
  every state tensor. Feed the `next_` outputs back as the state of the next
  call. No input grows with the total length: the state has a fixed size per
  video, and the noise is the chunk's own.

Frame `t`'s noise is drawn from the seed and `t` alone (`vidgen_tf.base.
frame_noise`), so chunks whose noise a client draws itself are one video
only if the client keeps drawing from one stream; with `model.sample_noise(
..., start_frame=s)` the chunks equal one long `generate` call.

`export_onnx` writes the same two functions next to the main file,
`<name>.initial_state.onnx` and `<name>.chunk.onnx`, each checked by
onnxruntime against the SavedModel's signature (chained over two chunks)
before anything is written. `streaming_description(model)` describes the
signatures in the export description's format (`EXPORT_DESCRIPTION.md`).
"""

import json
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf.atomic import write_bytes
from vidgen_tf.exporting import description

logger = logging.getLogger(__name__)

INITIAL_STATE = "initial_state"
GENERATE_CHUNK = "generate_chunk"
NEXT_PREFIX = "next_"


def is_streaming(model):
    """Whether `model` generates chunk by chunk (its `streaming_unavailable` is None)."""
    return getattr(model, "streaming_unavailable", "no streaming API") is None


def _clip_noise_specs(model):
    """Named specs of `initial_state`'s inputs: per-clip noise, `label`, or `batch_size` alone."""
    specs = {
        name: spec for name, spec in model.noise_spec(num_frames=None).items()
        if name not in model.frame_noise_names
    }
    if model.num_classes:
        specs["label"] = tf.TensorSpec([None], tf.int32, name="label")
    if not specs:
        specs["batch_size"] = tf.TensorSpec([], tf.int32, name="batch_size")
    return specs


def _frame_noise_specs(model):
    """Named specs of the chunk's per-frame noise `(B, K, ...)`, K dynamic."""
    specs = model.noise_spec(num_frames=None)
    return {name: specs[name] for name in model.frame_noise_names}


def state_specs(model):
    """dict name -> `tf.TensorSpec` of the streaming state (batch axis None), traced on one video."""
    noise = model.sample_noise(1, tf.constant([0, 0], tf.int64), num_frames=1)
    labels = tf.zeros([1], tf.int32) if model.num_classes else None
    state = model.initial_state(1, noise, labels)
    return {
        name: tf.TensorSpec([None] + list(value.shape[1:]), value.dtype, name=name)
        for name, value in state.items()
    }


def _initial_state_fn(model):
    def initial_state(inputs):
        inputs = dict(inputs)
        labels = inputs.pop("label", None)
        if "batch_size" in inputs:
            batch = inputs.pop("batch_size")
        else:
            batch = tf.shape(next(iter(inputs.values())) if inputs else labels)[0]
        return dict(model.initial_state(batch, inputs, labels))

    return initial_state


def _chunk_fn(model, states):
    def generate_chunk(inputs):
        from vidgen_tf.exporting import to_uint8_video

        state = {name: inputs[name] for name in states}
        noise = {name: inputs[name] for name in model.frame_noise_names}
        frames, next_state = model.generate_chunk(state, noise)
        outputs = {"video": to_uint8_video(frames)}
        outputs.update({NEXT_PREFIX + name: tf.cast(next_state[name], states[name].dtype) for name in states})
        return outputs, frames

    return generate_chunk


def add_savedmodel_endpoints(archive, model, limits=None):
    """Adds `initial_state` (if the state is not empty) and `generate_chunk` to a
    `keras.export.ExportArchive` of a streaming model; does nothing for others.

    Both check their inputs as every exported signature does (`validation`:
    ranks, sizes, batch agreement, finite noise and states, counts and the
    export's `limits`), naming the input that fails."""
    from vidgen_tf.exporting import validation

    if not is_streaming(model):
        return
    states = state_specs(model)
    described = streaming_description(model)
    if states:
        initial = _initial_state_fn(model)
        archive.add_endpoint(
            INITIAL_STATE,
            lambda inputs: initial(validation.checked_inputs(described[INITIAL_STATE], inputs, limits)),
            input_signature=[validation.relaxed_specs(_clip_noise_specs(model))],
        )
    chunk = _chunk_fn(model, states)
    archive.add_endpoint(
        GENERATE_CHUNK,
        lambda inputs: chunk(validation.checked_inputs(described[GENERATE_CHUNK], inputs, limits))[0],
        input_signature=[validation.relaxed_specs({**states, **_frame_noise_specs(model)})],
    )


def streaming_signature_names(model):
    """The streaming signatures a SavedModel of `model` has (empty for a fixed-length model)."""
    if not is_streaming(model):
        return ()
    return ((INITIAL_STATE,) if state_specs(model) else ()) + (GENERATE_CHUNK,)


# ------------------------------------------------------------------ description
def _distribution(model, name):
    """How a client draws noise input `name`: the model's `noise_distributions()`."""
    return description.noise_distributions(model)[name]


def streaming_description(model):
    """The streaming signatures of `model`'s exports, in the export description's format.

    Returns:
        dict signature name -> `{"doc", "inputs", "outputs"}` (see
        `EXPORT_DESCRIPTION.md`): state inputs have `{"kind": "state"}`, noise
        inputs the model's distributions, `label` `{"kind": "label"}`,
        `batch_size` `{"kind": "count", "min": 1}`. Empty for a model that
        cannot stream.
    """
    if not is_streaming(model):
        return {}
    states = state_specs(model)
    video = {
        "dtype": "uint8", "shape": [None, None, model.height, model.width, model.channels],
        "dynamic_axes": {"0": "batch", "1": "chunk_frames"}, "range": [0, 255],
    }
    result = {}
    if states:
        inputs = {}
        for name, spec in _clip_noise_specs(model).items():
            if name == "label":
                distribution = description.label(model.num_classes)
            elif name == "batch_size":
                distribution = description.count(1)
            else:
                distribution = _distribution(model, name)
            inputs[name] = description._tensor(spec, distribution)
        result[INITIAL_STATE] = {
            "doc": "The streaming state before the first frame; feed it to generate_chunk.",
            "inputs": inputs,
            "outputs": {name: description._tensor(spec, output=True) for name, spec in states.items()},
        }
    inputs = {name: description._tensor(spec, {"kind": "state"}) for name, spec in states.items()}
    inputs.update({
        name: description._tensor(spec, _distribution(model, name), roles={1: "chunk_frames"})
        for name, spec in _frame_noise_specs(model).items()
    })
    outputs = {"video": video}
    outputs.update({NEXT_PREFIX + name: description._tensor(spec, output=True)
                    for name, spec in states.items()})
    result[GENERATE_CHUNK] = {
        "doc": "The next K frames of each video from the state and the chunk's per-frame noise; "
               "feed the next_ outputs back as the state.",
        "inputs": inputs,
        "outputs": outputs,
    }
    return result


# ------------------------------------------------------------------------ ONNX
def onnx_paths(path):
    """`(initial_state path, chunk path)` beside the main ONNX file `path`."""
    path = Path(path)
    stem = path.with_suffix("")
    return Path(f"{stem}.initial_state.onnx"), Path(f"{stem}.chunk.onnx")


def _convert(fn, specs, output_names, opset, described=None, limits=None):
    """ONNX of `fn`; with `described` (its signature's description) it also returns `inputs_valid`,
    the checks the SavedModel's signature asserts (ONNX has no assert)."""
    import onnx
    import tf2onnx

    from vidgen_tf.exporting import _rename_outputs, validation

    names = list(specs)
    output_names = list(output_names) + (["inputs_valid"] if described is not None else [])

    @tf.function(input_signature=[specs[n] for n in names])
    def flat(*args):
        inputs = dict(zip(names, args))
        outputs = fn(inputs)
        result = {name: outputs[name] for name in output_names if name != "inputs_valid"}
        if described is not None:
            result["inputs_valid"] = validation.valid_inputs(described, inputs, limits)
        return result

    proto, _ = tf2onnx.convert.from_function(flat, input_signature=[specs[n] for n in names], opset=opset)
    # A dict's outputs are flattened in the order of its sorted keys.
    proto = _rename_outputs(proto, sorted(output_names))
    onnx.checker.check_model(proto)
    return proto


def _random_noise(model, specs, rng, batch, frames):
    values = {}
    for name, spec in specs.items():
        if name == "label":
            values[name] = rng.integers(0, model.num_classes, size=[batch]).astype(np.int32)
        elif name == "batch_size":
            values[name] = np.array(batch, np.int32)
        else:
            shape = [batch] + [frames if d is None else d for d in spec.shape[1:]]
            distribution = _distribution(model, name)
            if distribution["kind"] == "uniform":
                values[name] = rng.uniform(distribution["low"], distribution["high"], shape).astype(np.float32)
            else:
                values[name] = rng.standard_normal(shape).astype(np.float32)
    return values


def convert_and_check_onnx(model, opset, num_checks, savedmodel_dir, seed=0, limits=None):
    """Converts `initial_state` and `generate_chunk` to ONNX and checks them against the SavedModel.

    Each of the `num_checks` checks draws a batch (1-4) and a chunk length
    (1-4), runs `initial_state` and then two chained `generate_chunk` calls
    in onnxruntime (feeding back its own state) and in the SavedModel
    `savedmodel_dir`: videos must agree within one level, float states within
    `FLOAT_TOLERANCE`, integer states exactly.

    Returns:
        dict with `initial_state` (ONNX proto or None), `chunk` (proto) and
        `report` (the measured differences), or None for a model that cannot
        stream. Raises `ExportParityError` beyond tolerance.
    """
    if not is_streaming(model):
        return None
    import onnxruntime

    from vidgen_tf.exporting import FLOAT_TOLERANCE, UINT8_TOLERANCE, ExportParityError

    states = state_specs(model)
    clip_specs = _clip_noise_specs(model)
    frame_specs = _frame_noise_specs(model)
    chunk_fn = _chunk_fn(model, states)
    described = streaming_description(model)
    initial_proto = None
    if states:
        initial_proto = _convert(_initial_state_fn(model), clip_specs, list(states), opset,
                                 described[INITIAL_STATE], limits)
    chunk_outputs = ["video"] + [NEXT_PREFIX + n for n in states]
    chunk_proto = _convert(lambda inputs: chunk_fn(inputs)[0], {**states, **frame_specs}, chunk_outputs, opset,
                           described[GENERATE_CHUNK], limits)

    loaded = tf.saved_model.load(str(savedmodel_dir)).signatures
    providers = ["CPUExecutionProvider"]
    chunk_session = onnxruntime.InferenceSession(chunk_proto.SerializeToString(), providers=providers)
    initial_session = initial_proto and onnxruntime.InferenceSession(
        initial_proto.SerializeToString(), providers=providers
    )
    rng = np.random.default_rng(seed)
    worst_state, worst_uint8 = 0.0, 0
    for check in range(num_checks):
        batch, frames = 1 + check % 4, 1 + (check // 2) % 4
        if limits:
            batch, frames = min(batch, limits["max_batch_size"]), min(frames, limits["max_frames"])
        onnx_state, saved_state = {}, {}
        if states:
            clip = _random_noise(model, clip_specs, rng, batch, frames)
            *initial_out, initial_valid = initial_session.run(list(states) + ["inputs_valid"], clip)
            onnx_state = dict(zip(states, initial_out))
            if not bool(initial_valid):
                raise ExportParityError("The ONNX initial_state reports valid check inputs as invalid.")
            saved_state = {
                k: v.numpy() for k, v in loaded[INITIAL_STATE](**{k: tf.constant(v) for k, v in clip.items()}).items()
            }
        for _ in range(2):
            worst_state = max(worst_state, _state_difference(onnx_state, saved_state, states))
            noise = _random_noise(model, frame_specs, rng, batch, frames)
            onnx_out = dict(zip(chunk_outputs + ["inputs_valid"],
                                chunk_session.run(chunk_outputs + ["inputs_valid"], {**onnx_state, **noise})))
            if not bool(onnx_out["inputs_valid"]):
                raise ExportParityError("The ONNX generate_chunk reports valid check inputs as invalid.")
            saved_out = loaded[GENERATE_CHUNK](
                **{k: tf.constant(v) for k, v in {**saved_state, **noise}.items()}
            )
            saved_out = {k: v.numpy() for k, v in saved_out.items()}
            if onnx_out["video"].shape != saved_out["video"].shape:
                raise ExportParityError(
                    f"ONNX generate_chunk's video shape {onnx_out['video'].shape} differs from the "
                    f"SavedModel's {saved_out['video'].shape}."
                )
            worst_uint8 = max(worst_uint8, int(np.max(np.abs(
                onnx_out["video"].astype(np.int16) - saved_out["video"].astype(np.int16)))))
            onnx_state = {n: onnx_out[NEXT_PREFIX + n] for n in states}
            saved_state = {n: saved_out[NEXT_PREFIX + n] for n in states}
        worst_state = max(worst_state, _state_difference(onnx_state, saved_state, states))
    report = {
        "model": model.registered_name, "opset": opset, "num_checks": num_checks, "chained_chunks": 2,
        "max_abs_diff_state": worst_state, "max_abs_diff_uint8": worst_uint8,
        "tolerance_float": FLOAT_TOLERANCE, "tolerance_uint8": UINT8_TOLERANCE,
    }
    if worst_state > FLOAT_TOLERANCE or worst_uint8 > UINT8_TOLERANCE:
        raise ExportParityError(
            f"ONNX streaming export of {model.registered_name} disagrees with the SavedModel: max |state "
            f"diff| {worst_state:.3g} (tolerance {FLOAT_TOLERANCE}), max uint8 diff {worst_uint8} "
            f"(tolerance {UINT8_TOLERANCE}); no ONNX file was written."
        )
    return {"initial_state": initial_proto, "chunk": chunk_proto, "report": report}


def _state_difference(onnx_state, saved_state, states):
    worst = 0.0
    for name, spec in states.items():
        a, b = onnx_state[name], saved_state[name]
        if a.shape != b.shape:
            return float("inf")
        if not spec.dtype.is_floating:
            worst = max(worst, float("inf") if np.any(a != b) else 0.0)
        elif a.size:
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))))
    return worst


def _describe_onnx(proto, described, signature, report):
    """Adds the export description of the one `signature` a streaming ONNX file holds to its metadata."""
    report = dict(report)
    parity = {"onnx": {"checks": report["num_checks"], "chained_chunks": report["chained_chunks"],
                       "max_abs_diff": report["max_abs_diff_uint8"], "tolerance": report["tolerance_uint8"],
                       "output": "video"},
              "state": {"max_abs_diff": report["max_abs_diff_state"], "tolerance": report["tolerance_float"]}}
    entry = dict(_signature_entry(described, signature))
    entry["outputs"] = dict(entry["outputs"], inputs_valid={"dtype": "bool", "shape": [], "dynamic_axes": {},
                                                             "range": [False, True]})
    one = dict(described, signatures={signature: entry}, parity=parity)
    entry = proto.metadata_props.add()
    entry.key, entry.value = description.ONNX_METADATA_KEY, description.to_json(one)


def _signature_entry(described, signature):
    """The `signature` entry of an export description `described` (KeyError naming what it has)."""
    try:
        return described["signatures"][signature]
    except KeyError:
        raise KeyError(f"The export description has no signature '{signature}': it has "
                       f"{sorted(described.get('signatures', {}))}.") from None


def write_onnx(path, converted, described=None):
    """Writes the checked streaming ONNX files beside `path` (see `onnx_paths`) and
    `<chunk path>.parity.json`; returns the written paths.

    `described`: the model's export description holding its streaming
    signatures (`catalog.describe_model`); each file then carries its
    own signature's entry and parity in `metadata_props`, as the main file does.
    """
    if converted is None:
        return []
    initial_path, chunk_path = onnx_paths(path)
    written = []
    if described is not None:
        if converted["initial_state"] is not None:
            _describe_onnx(converted["initial_state"], described, INITIAL_STATE, converted["report"])
        _describe_onnx(converted["chunk"], described, GENERATE_CHUNK, converted["report"])
    if converted["initial_state"] is not None:
        write_bytes(initial_path, converted["initial_state"].SerializeToString())
        written.append(initial_path)
    write_bytes(chunk_path, converted["chunk"].SerializeToString())
    write_bytes(Path(f"{chunk_path}.parity.json"), json.dumps(converted["report"], indent=2).encode())
    written.append(chunk_path)
    logger.info("Wrote streaming ONNX %s", ", ".join(str(p) for p in written))
    return written
