"""Diffusion exports: the sampling loop inside the SavedModel, the network and one step in ONNX.

A diffusion model (`model.is_diffusion`) exports five SavedModel signatures:

- `serving_default` and `sample`: `noise` `(B, T, H, W, C)` N(0, 1) (the
  videos at t = 1), `num_steps` int32 (and `label` int32 `(B,)`,
  `guidance_scale` float32 for conditional models) -> `video` uint8. The
  whole loop of the deterministic sampler (`model.deterministic_sampler()`)
  is one `tf.while_loop` whose trip count is the `num_steps` input, so TF
  Serving makes a video in one call.
- `generate`: `batch_size`, `seed`, `num_steps` (and `label`,
  `guidance_scale`) -> `video`, as `model.generate(batch_size, seed,
  num_steps=...)`.
- `denoise`: `x_t` float32 `(B, T, H, W, C)`, `t` float32 `(B,)` in [0, 1]
  (and `label`, where `num_classes` is "no label") -> `prediction`, the
  network's output (what `model.objective` predicts).
- `step`: `x_t`, `t` and `t_next` float32 scalars (`1 >= t > t_next >= 0`),
  `noise` N(0, 1) like `x_t` (used by a stochastic sampler, else ignored)
  (and `label`, `guidance_scale`) -> `x_next`: one step of the model's
  sampler.

`export_onnx` writes `step` to the given `.onnx` path and `denoise` beside
it (`<stem>.denoise.onnx`), not the loop (tf2onnx's while-loop conversion is
fragile: onnx/tensorflow-onnx#1987, #1229): a client runs the loop itself,
over the time grid `1 - i / num_steps`, as Optimum keeps diffusers'
scheduler in Python (`export/onnx_client.py`). Each file is checked by
onnxruntime against the SavedModel's signature on random inputs, and the
loop of ONNX steps against the SavedModel's `sample`; the differences go to
`<path>.parity.json` and into each file's description.
"""

import json
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidgen_tf.atomic import write_bytes
from vidgen_tf.exporting import description, validation

logger = logging.getLogger(__name__)

SIGNATURES = ("serving_default", "sample", "generate", "denoise", "step")
ONNX_SIGNATURES = ("step", "denoise")


def is_diffusion(model):
    """Whether `model` is a diffusion model (exported with these signatures)."""
    return bool(getattr(model, "is_diffusion", False))


def time_range():
    """`{"kind": "time", ...}`: a diffusion time in [0, 1] (1 is noise, 0 the data)."""
    return {"kind": "time", "low": 0.0, "high": 1.0}


def guidance():
    """`{"kind": "guidance", ...}`: a classifier-free guidance scale >= 0 (1: no guidance)."""
    return {"kind": "guidance", "min": 0.0, "default": 1.0}


def _video_spec(model, name, dtype=tf.float32):
    return tf.TensorSpec([None, *model.video_shape], dtype, name=name)


def _scalar(name, dtype=tf.float32):
    return tf.TensorSpec([], dtype, name=name)


def input_specs(model):
    """Signature name -> `(dict name -> TensorSpec, dict name -> distribution)` of its inputs."""
    conditional = bool(model.num_classes)
    label_spec = tf.TensorSpec([None], tf.int32, name="label")
    steps = dict(description.count(1), default=model.sampling_steps)
    sample = ({"noise": _video_spec(model, "noise"), "num_steps": _scalar("num_steps", tf.int32)},
              {"noise": description.normal(), "num_steps": steps})
    generate = ({"batch_size": _scalar("batch_size", tf.int32), "seed": _scalar("seed", tf.int64),
                 "num_steps": _scalar("num_steps", tf.int32)},
                {"batch_size": description.count(1), "seed": description.seed(), "num_steps": steps})
    denoise = ({"x_t": _video_spec(model, "x_t"), "t": tf.TensorSpec([None], tf.float32, name="t")},
               {"x_t": {"kind": "noisy_video"}, "t": time_range()})
    step = ({"x_t": _video_spec(model, "x_t"), "t": _scalar("t"), "t_next": _scalar("t_next"),
             "noise": _video_spec(model, "noise")},
            {"x_t": {"kind": "noisy_video"}, "t": time_range(), "t_next": time_range(), "noise": description.normal()})
    result = {"serving_default": sample, "sample": sample, "generate": generate, "denoise": denoise, "step": step}
    if conditional:
        for name, (specs, kinds) in result.items():
            specs, kinds = dict(specs), dict(kinds)
            # The network takes the "no label" class num_classes; the samplers only real ones.
            specs["label"] = label_spec
            kinds["label"] = description.label(model.num_classes + (name == "denoise"))
            if name != "denoise":
                specs["guidance_scale"] = _scalar("guidance_scale")
                kinds["guidance_scale"] = dict(guidance(), default=model.guidance_scale)
            result[name] = (specs, kinds)
    return result


def _loop(model):
    """What a client needs to run the sampling loop with `step` (see `export/onnx_client.py`)."""
    sampler, eta = model.deterministic_sampler()
    return {"objective": model.objective, "sampler": model.sampler, "eta": model.eta,
            "sample_sampler": sampler, "stochastic_step": model.sampler != sampler or eta != model.eta,
            "time_grid": "t_i = 1 - i / num_steps, i = 0..num_steps (float32)",
            "start": "x = noise ~ N(0, 1) at t = 1", "end": "video = uint8(round(clip((x + 1) * 127.5, 0, 255)))",
            "num_steps_default": model.sampling_steps}


def signature_descriptions(model):
    """Signature name -> `{doc, inputs, outputs}` of a diffusion model's SavedModel."""
    video = {"video": description._video_output(model)}
    prediction = description._tensor(_video_spec(model, "prediction"), value_range=None, output=True)
    guided = " (and `label`, `guidance_scale`: classifier-free guidance, 1 none)" if model.num_classes else ""
    docs = {
        "serving_default": f"Videos from `noise` at t = 1 in `num_steps` steps of the {model.objective} model's "
                           f"sampler{guided}, the loop inside the graph; returns the uint8 `video`.",
        "generate": "`batch_size` videos from the stateless `seed` (as `model.generate(batch_size, seed, "
                    f"num_steps=...)`){guided}; returns the uint8 `video`.",
        "denoise": f"The network's output ({model.objective} prediction) at noisy videos `x_t` and times `t` "
                   + ("(label num_classes: no label)" if model.num_classes else "") + "; returns `prediction`.",
        "step": f"One step of the {model.sampler} sampler from time `t` to `t_next` (`noise` N(0, 1) serves "
                f"stochastic steps){guided}; returns `x_next`. Loop it over t_i = 1 - i / num_steps.",
    }
    docs["sample"] = docs["serving_default"]
    outputs = {"serving_default": video, "sample": video, "generate": video, "denoise": {"prediction": prediction},
               "step": {"x_next": prediction}}
    result = {}
    for name, (specs, kinds) in input_specs(model).items():
        result[name] = {"doc": docs[name],
                        "inputs": {key: description._tensor(spec, kinds[key]) for key, spec in specs.items()},
                        "outputs": outputs[name]}
        if name in ("serving_default", "sample", "step"):
            result[name]["loop"] = _loop(model)
    return result


def _checked(described, inputs, limits=None):
    """`validation.checked_inputs` (with the export's `limits`: batch, frames, sampling steps), plus the
    checks of the kinds only diffusion has (times, guidance)."""
    inputs = validation.checked_inputs(described, inputs, limits)
    checks = []
    for name, tensor in described["inputs"].items():
        kind = tensor["distribution"]["kind"]
        x = inputs[name]
        if kind == "time":
            ok = tf.reduce_all((x >= 0.0) & (x <= 1.0))
            checks.append(validation._assert(ok, f"{name}: expected times in [0, 1], got {{}}",
                                             validation._offending(x, lambda v: ~(v >= 0.0))))
        elif kind == "guidance":
            checks.append(validation._assert(x >= 0.0, f"{name}: expected a guidance scale >= 0, got {{}}", [x]))
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in inputs.items()}


def _functions(model, limits=None):
    """Signature name -> function of its input dict, returning its output dict."""
    from vidgen_tf.exporting import to_uint8_video

    network = model.inference_generator
    described = signature_descriptions(model)
    sampler, eta = model.deterministic_sampler()

    def sample(inputs):
        inputs = _checked(described["sample"], inputs, limits)
        videos = model.sample(inputs["noise"], inputs["num_steps"], inputs.get("label"),
                              inputs.get("guidance_scale", 1.0), sampler, eta, network=network)
        return {"video": to_uint8_video(videos)}

    def generate(inputs):
        inputs = _checked(described["generate"], inputs, limits)
        batch, seed = inputs["batch_size"], inputs["seed"]
        labels = inputs.get("label")
        if labels is not None:
            labels = validation.check_label_count(labels, batch)
        noise = model.sample_noise(batch, tf.stack([seed, tf.constant(1, tf.int64)]))["noise"]
        videos = model.sample(noise, inputs["num_steps"], labels, inputs.get("guidance_scale", 1.0),
                              seed=tf.stack([seed, tf.constant(2, tf.int64)]), network=network)
        return {"video": to_uint8_video(videos)}

    def denoise(inputs):
        inputs = _checked(described["denoise"], inputs, limits)
        return {"prediction": model.denoise(inputs["x_t"], inputs["t"], inputs.get("label"), network=network)}

    def step(inputs):
        inputs = _checked(described["step"], inputs, limits)
        x_next = model.step(inputs["x_t"], inputs["t"], inputs["t_next"], inputs["noise"], inputs.get("label"),
                            inputs.get("guidance_scale", 1.0), network=network)
        # The noise stays an input of the graph also when the step ignores it.
        return {"x_next": x_next + 0.0 * inputs["noise"]}

    return {"serving_default": sample, "sample": sample, "generate": generate, "denoise": denoise, "step": step}


def add_savedmodel_endpoints(archive, model, limits=None):
    """Adds the five signatures of a diffusion model to a `keras.export.ExportArchive`; each refuses
    requests beyond `limits` (`description.request_limits`)."""
    specs = input_specs(model)
    for name, function in _functions(model, limits).items():
        archive.add_endpoint(name, function, input_signature=[specs[name][0]])
    return archive


# ------------------------------------------------------------------------ ONNX
def onnx_paths(path):
    """`{"step": path, "denoise": <stem>.denoise.onnx}` of an ONNX export to `path`."""
    path = Path(path)
    return {"step": path, "denoise": path.with_suffix("").with_name(path.stem + ".denoise.onnx")}


def _random_inputs(described, rng, batch, model):
    values = {}
    for name, tensor in described["inputs"].items():
        kind = tensor["distribution"]
        shape = [batch if size is None else size for size in tensor["shape"]]
        if kind["kind"] == "label":
            values[name] = rng.integers(0, kind["num_classes"], shape).astype(np.int32)
        elif kind["kind"] == "time":
            values[name] = rng.uniform(0.05, 1.0, shape).astype(np.float32)
        elif kind["kind"] == "guidance":
            values[name] = np.asarray(rng.uniform(0.0, 3.0), np.float32)
        else:  # noisy videos and noise
            values[name] = rng.standard_normal(shape).astype(np.float32)
    if "t_next" in values:
        # The last step (to 0), and an inner one.
        values["t_next"] = np.asarray(values["t"] * rng.choice([0.0, 0.5]), np.float32)
    return values


def export_onnx(model, path, opset, num_checks, savedmodel_dir, seed=0, preset=None, loop_steps=(1, 3)):
    """Writes `step` to `path` and `denoise` beside it, each checked against the SavedModel `savedmodel_dir`.

    Each of `num_checks` random inputs (batch 1-4) is run by onnxruntime and
    by the SavedModel's signature: outputs must agree within
    `FLOAT_TOLERANCE`. Then the loop of ONNX steps over `loop_steps` step
    counts (deterministic steps, zero step noise) must give the SavedModel's
    `sample` video within `UINT8_TOLERANCE`. Nothing is written unless all do.

    Returns:
        `path`.
    """
    import onnxruntime

    from vidgen_tf.exporting import FLOAT_TOLERANCE, UINT8_TOLERANCE, ExportParityError, to_uint8_video
    from vidgen_tf.exporting.streaming import _convert

    described = signature_descriptions(model)
    specs = input_specs(model)
    functions = _functions(model)
    outputs = {"step": "x_next", "denoise": "prediction"}
    protos = {name: _convert(functions[name], specs[name][0], [outputs[name]], opset) for name in ONNX_SIGNATURES}
    loaded = tf.saved_model.load(str(savedmodel_dir)).signatures
    sessions = {name: onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
                for name, proto in protos.items()}
    rng = np.random.default_rng(seed)
    worst = {name: 0.0 for name in ONNX_SIGNATURES}
    for check in range(num_checks):
        for name in ONNX_SIGNATURES:
            inputs = _random_inputs(described[name], rng, 1 + check % 4, model)
            (onnx_out,) = sessions[name].run([outputs[name]], inputs)
            saved = loaded[name](**{k: tf.constant(v) for k, v in inputs.items()})[outputs[name]].numpy()
            if onnx_out.shape != saved.shape:
                raise ExportParityError(f"ONNX {name} output shape {onnx_out.shape} differs from the SavedModel's "
                                        f"{saved.shape}.")
            worst[name] = max(worst[name], float(np.max(np.abs(onnx_out - saved))))
    worst_loop = 0
    loop = _loop(model)
    for num_steps in loop_steps if not loop["stochastic_step"] else ():
        inputs = _random_inputs(described["sample"], rng, 2, model)
        inputs["num_steps"] = np.asarray(num_steps, np.int32)
        saved = loaded["sample"](**{k: tf.constant(v) for k, v in inputs.items()})["video"].numpy()
        extra = {k: inputs[k] for k in ("label", "guidance_scale") if k in inputs}
        x = inputs["noise"]
        grid = 1.0 - np.arange(num_steps + 1, dtype=np.float32) / np.float32(num_steps)
        for i in range(num_steps):
            times = {"t": np.asarray(grid[i], np.float32), "t_next": np.asarray(grid[i + 1], np.float32)}
            (x,) = sessions["step"].run(["x_next"], {"x_t": x, **times, "noise": np.zeros_like(x), **extra})
        video = to_uint8_video(x).numpy()
        worst_loop = max(worst_loop, int(np.max(np.abs(video.astype(np.int16) - saved.astype(np.int16)))))
    report = {"model": model.registered_name, "opset": opset, "num_checks": num_checks,
              "max_abs_diff_float": max(worst.values()), "max_abs_diff_step": worst["step"],
              "max_abs_diff_denoise": worst["denoise"], "max_abs_diff_uint8": worst_loop,
              "loop_steps": [] if loop["stochastic_step"] else list(loop_steps),
              "tolerance_float": FLOAT_TOLERANCE, "tolerance_uint8": UINT8_TOLERANCE}
    write_bytes(Path(f"{path}.parity.json"), json.dumps(report, indent=2).encode())
    if max(worst.values()) > FLOAT_TOLERANCE or worst_loop > UINT8_TOLERANCE:
        raise ExportParityError(
            f"ONNX export of {model.registered_name} disagrees with the SavedModel: max |float diff| step "
            f"{worst['step']:.3g}, denoise {worst['denoise']:.3g} (tolerance {FLOAT_TOLERANCE}), max uint8 diff of "
            f"the ONNX loop vs sample {worst_loop} (tolerance {UINT8_TOLERANCE}); {path} was not written.")
    _write(model, protos, path, report, opset, preset)
    logger.info("Wrote ONNX %s and %s (max float diff %.3g)", path, onnx_paths(path)["denoise"],
                max(worst.values()))
    return Path(path)


def _write(model, protos, path, report, opset, preset):
    import onnx
    import onnxruntime
    import tf2onnx

    from vidgen_tf.exporting import FLOAT_TOLERANCE, UINT8_TOLERANCE

    for name, target in onnx_paths(path).items():
        described = description.describe_model(model, signature_descriptions(model), preset=preset,
                                                signatures=[name])
        described["versions"] = description.versions(
            {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
             "opset": int(opset)})
        output = "x_next" if name == "step" else "prediction"
        described["parity"] = {"onnx_float": {"checks": report["num_checks"], "output": output,
                                              "max_abs_diff": report[f"max_abs_diff_{name}"],
                                              "tolerance": FLOAT_TOLERANCE}}
        if name == "step" and report["loop_steps"]:
            described["parity"]["onnx"] = {"loop_steps": report["loop_steps"], "output": "video",
                                           "against": "sample", "max_abs_diff": report["max_abs_diff_uint8"],
                                           "tolerance": UINT8_TOLERANCE}
        entry = protos[name].metadata_props.add()
        entry.key, entry.value = description.ONNX_METADATA_KEY, description.to_json(described)
        write_bytes(target, protos[name].SerializeToString())
