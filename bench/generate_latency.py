"""Generation latency of every model: Keras call, SavedModel and onnxruntime.

    python bench/generate_latency.py [--models mocogan ...] [--batch-sizes 1 32] [--repeats 5]

For each model at its zoo preset's setting: the `serving_default` function
(noise in, uint8 video out) timed as a Keras call (a tf.function of the
model), as the exported SavedModel, and as the ONNX file in onnxruntime, at
each batch size, in this one process. Prints milliseconds and ratios to the
fastest of the three; beneath each line, the achieved GFLOP/s of each (2 x
`vidgen_tf.cost` multiply-adds per generated clip x clips/s) and its
percentage of the float32 matrix-multiply peak measured at the start of this
run (`_common.matmul_peak_gflops`; again at the end, recorded beside it);
writes JSON.
"""

import argparse
import tempfile

import numpy as np
import tensorflow as tf

from _common import achieved, best_seconds, matmul_peak_gflops, model_names, settings, write_json

import vidgen_tf  # noqa: E402
from vidgen_tf import exporting  # noqa: E402
from vidgen_tf.cost import generation_multiply_adds  # noqa: E402


def best_of(function, repeats):
    return best_seconds(function, repeats) * 1000


def main():
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench/results/generate_latency.json")
    args = parser.parse_args()
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak: TensorFlow {peak['tensorflow']:.1f} GFLOP/s, numpy {peak['numpy']:.1f} GFLOP/s "
          f"({peak['size']}x{peak['size']}, best of {peak['repeats']})", flush=True)
    rows = []
    print(f"{'setting':<32} {'batch':>5} {'keras ms':>9} {'savedmodel ms':>14} {'onnxruntime ms':>15}   ratios to fastest")
    for label, name, config in settings(model_names(args.models), include_paper=False):
        model = vidgen_tf.build(name, **config)
        per_clip = generation_multiply_adds(model)
        with tempfile.TemporaryDirectory() as scratch:
            version = vidgen_tf.export_savedmodel(model, scratch)
            onnx_path = vidgen_tf.export_onnx(model, f"{scratch}/model.onnx", savedmodel_dir=version)
            serving = tf.saved_model.load(str(version)).signatures["serving_default"]
            session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            video_fn = exporting._float_video_fn(model)
            keras_fn = tf.function(lambda inputs: exporting.to_uint8_video(video_fn(inputs)))
            for batch in args.batch_sizes:
                inputs = exporting._random_inputs(model, np.random.default_rng(0), batch, model.num_frames)
                tensors = {k: tf.constant(v) for k, v in inputs.items()}
                times = {
                    "keras": best_of(lambda: keras_fn(tensors).numpy(), args.repeats),
                    "savedmodel": best_of(lambda: serving(**tensors)["video"].numpy(), args.repeats),
                    "onnxruntime": best_of(lambda: session.run(["video"], inputs), args.repeats),
                }
                fastest = min(times.values())
                ratios = {k: v / fastest for k, v in times.items()}
                rates = {k: achieved(per_clip, batch / (v / 1000), peak["tensorflow"]) for k, v in times.items()}
                rows.append({"setting": label, "model": name, "batch_size": batch, "ms": times, "ratio_to_fastest": ratios,
                             "multiply_adds_per_clip": per_clip,
                             "gflops": {k: gflops for k, (gflops, _) in rates.items()},
                             "percent_of_peak": {k: percent for k, (_, percent) in rates.items()}})
                print(f"{label:<32} {batch:>5} {times['keras']:>9.1f} {times['savedmodel']:>14.1f} {times['onnxruntime']:>15.1f}   "
                      + " ".join(f"{k} {v:.2f}x" for k, v in ratios.items()), flush=True)
                print(f"{'':<32} {'':>5} GFLOP/s ({per_clip / 1e6:.1f}M multiply-adds per clip): "
                      + ", ".join(f"{k} {g:.2f} ({p:.1f}% of peak)" for k, (g, p) in rates.items()), flush=True)
    # Measured again at the end: on a shared machine the peak moves with the load.
    end = matmul_peak_gflops()
    print(f"float32 matmul peak at the end: TensorFlow {end['tensorflow']:.1f} GFLOP/s, numpy {end['numpy']:.1f} "
          "GFLOP/s (percentages use the start's)", flush=True)
    write_json(args.json, rows, repeats=args.repeats, matmul_peak_gflops=peak, matmul_peak_gflops_end=end)


if __name__ == "__main__":
    main()
