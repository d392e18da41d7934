"""Generate videos from an exported ONNX file with onnxruntime alone (no TensorFlow).

    python export/onnx_client.py exported/hmm.onnx --num 4 --frames 24 --out clip.gif

Reads the export description from the file's metadata (`vidgen_export`), draws
each input from the distribution it declares (e.g. the HMM's uniform
`state_noise`, a GAN's normal latents, labels in range) from `--seed`, and writes
the uint8 `video` output: `.npz` (`videos` (N, T, H, W, C), every video, as the
`npz` dataset reads it), `.gif` or `.mp4` (one grid of all of them).

A diffusion model's ONNX export holds one sampler `step` (its loop does not
convert well), so for it this client runs the loop itself, as its
description's `loop` entry says: noise N(0, 1) at t = 1, then `step` from
`t_i = 1 - i / num_steps` to `t_{i+1}` for i = 0..num_steps-1 (`--num-steps`,
default the export's), then uint8. From the same noise it gives the
SavedModel's `sample` video within one level.
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: the shared code sits beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _client_common as common  # noqa: E402

SIGNATURE = "serving_default"  # the one function an ONNX export holds


DIFFUSION_STEP = "step"  # what a diffusion model's ONNX export holds


def sample(model_path, noise, num_steps=None, label=None, guidance_scale=None, seed=0):
    """Runs a diffusion model's ONNX `step` over the time grid from `noise` (t = 1) to uint8 videos.

    Args:
        model_path: str. The `.onnx` file holding `step`.
        noise: float32 `(N, T, H, W, C)`. The videos at t = 1.
        num_steps: int or None. Steps. Defaults to the export's `num_steps_default`.
        label: int or sequence of int, for conditional models (default: drawn).
        guidance_scale: float or None. Conditional models (default: the export's).
        seed: int. Seed of the labels and, for a stochastic sampler, the step noise. Defaults to 0.

    Returns:
        `(videos, description)`: uint8 `(N, T, H, W, C)` and the description.
    """
    import numpy as np
    import onnxruntime

    description = common.load_description(model_path)
    spec = common.signature(description, DIFFUSION_STEP)
    loop = spec["loop"]
    num_steps = loop["num_steps_default"] if num_steps is None else num_steps
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise common.ClientError(f"The number of steps must be a positive integer, got {num_steps!r}.")
    x = np.asarray(noise, np.float32)
    rng = np.random.default_rng(seed)
    extra = {}
    if "label" in spec["inputs"]:
        extra["label"] = common._labels("label", spec["inputs"]["label"]["distribution"], label,
                                        [x.shape[0]], rng).astype(np.int32)
        scale = spec["inputs"]["guidance_scale"]["distribution"]["default"] if guidance_scale is None else guidance_scale
        extra["guidance_scale"] = np.asarray(scale, np.float32)
    elif label is not None:
        raise common.ClientError(f"Model {description['model']!r} is unconditional; a label cannot be given.")
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    grid = 1.0 - np.arange(num_steps + 1, dtype=np.float32) / np.float32(num_steps)  # as the SavedModel's loop
    for i in range(num_steps):
        step_noise = rng.standard_normal(x.shape).astype(np.float32) if loop["stochastic_step"] else np.zeros_like(x)
        (x,) = session.run(["x_next"], {"x_t": x, "t": np.asarray(grid[i], np.float32),
                                        "t_next": np.asarray(grid[i + 1], np.float32), "noise": step_noise, **extra})
    video = np.round(np.clip((np.clip(x, -1.0, 1.0) + 1.0) * 127.5, 0.0, 255.0)).astype(np.uint8)
    return video, description


def generate(model_path, num=4, frames=None, label=None, seed=0, signature=SIGNATURE, num_steps=None,
             guidance_scale=None):
    """Runs the ONNX file on inputs drawn as its description says.

    Args:
        model_path: str. The `.onnx` file.
        num, frames, label, seed: see `_client_common.draw_inputs`.
        signature: str. Must be `"serving_default"`, the signature an ONNX
            export holds. Defaults to it.

    Returns:
        `(videos, description)`: uint8 `(N, T, H, W, C)` and the description.
    """
    import numpy as np
    import onnxruntime

    description = common.load_description(model_path)
    if DIFFUSION_STEP in description["signatures"]:  # a diffusion model: the loop runs here
        video = description["video"]
        shape = (num, video["num_frames"], video["height"], video["width"], video["channels"])
        noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        return sample(model_path, noise, num_steps, label, guidance_scale, seed)
    if signature != SIGNATURE:
        raise common.ClientError(f"An ONNX export holds only {SIGNATURE!r}, not {signature!r}; call other "
                                 "signatures through TF Serving (rest_client.py, grpc_client.py).")
    inputs = common.draw_inputs(description, signature, num=num, seed=seed, frames=frames, label=label)
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    graph_inputs = {spec.name for spec in session.get_inputs()}
    if graph_inputs != set(inputs):
        raise common.ClientError(f"{model_path}: the graph's inputs {sorted(graph_inputs)} differ from its "
                                 f"description's {sorted(inputs)}.")
    output = common.video_output(description, signature)
    outputs = {spec.name for spec in session.get_outputs()}
    if "inputs_valid" in outputs:  # ONNX has no assert: the graph reports what the SavedModel would refuse
        video, valid = session.run([output, "inputs_valid"], inputs)
        if not bool(valid):
            raise common.ClientError(f"{model_path} reports its inputs invalid (inputs_valid is False): an input "
                                     "fails a check of its description (shape, batch, finite values, range).")
    else:
        (video,) = session.run([output], inputs)
    return common.check_video(video, description, signature, output), description


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the exported .onnx file")
    common.add_generation_arguments(parser)
    args = parser.parse_args(argv)
    common.check_output_path(args.out)
    videos, description = generate(args.model, num=args.num, frames=args.frames, label=args.label, seed=args.seed,
                                   signature=args.signature, num_steps=args.num_steps,
                                   guidance_scale=args.guidance_scale)
    common.write_videos(args.out, videos, fps=args.fps)
    print(f"{description['model']} ({args.model}, onnxruntime): wrote {args.out}: videos {list(videos.shape)} uint8")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
