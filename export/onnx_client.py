"""Generate videos from an exported ONNX file with onnxruntime alone (no TensorFlow).

    python export/onnx_client.py exported/hmm.onnx --num 4 --frames 24 --out clip.gif

Reads the export description from the file's metadata (`vidgen_export`), draws
each input from the distribution it declares (e.g. the HMM's uniform
`state_noise`, a GAN's normal latents, labels in range) from `--seed`, and writes
the uint8 `video` output: `.npz` (`videos` (N, T, H, W, C), every video, as the
`npz` dataset reads it), `.gif` or `.mp4` (one grid of all of them).
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: the shared code sits beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _client_common as common  # noqa: E402

SIGNATURE = "serving_default"  # the one function an ONNX export holds


def generate(model_path, num=4, frames=None, label=None, seed=0, signature=SIGNATURE):
    """Runs the ONNX file on inputs drawn as its description says.

    Args:
        model_path: str. The `.onnx` file.
        num, frames, label, seed: see `_client_common.draw_inputs`.
        signature: str. Must be `"serving_default"`, the signature an ONNX
            export holds. Defaults to it.

    Returns:
        `(videos, description)`: uint8 `(N, T, H, W, C)` and the description.
    """
    import onnxruntime

    if signature != SIGNATURE:
        raise common.ClientError(f"An ONNX export holds only {SIGNATURE!r}, not {signature!r}; call other "
                                 "signatures through TF Serving (rest_client.py, grpc_client.py).")
    description = common.load_description(model_path)
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
                                   signature=args.signature)
    common.write_videos(args.out, videos, fps=args.fps)
    print(f"{description['model']} ({args.model}, onnxruntime): wrote {args.out}: videos {list(videos.shape)} uint8")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
