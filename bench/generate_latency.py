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

First, the cost of the request and response encodings a TF Serving client
pays for one 16-frame 64x64 RGB clip per video (MoCoGAN's `serving_default`
inputs, drawn as its export description says; the response a uint8 video of
uniform random pixels, the worst case for both encodings): REST JSON in the
columnar (`inputs` / `outputs`) and row (`instances` / `predictions`) formats,
and gRPC protobuf bytes (the messages of export/grpc_client.py; the response
with the video in `int_val`, as TF Serving sends it, and in `tensor_content`).
Bytes on the wire and encode / decode milliseconds, printed as a table and
recorded in the JSON under `encoding`. `--encoding-only` stops after it.

Then the per-frame noise draw alone (`vidgen_tf.base.frame_noise`, 10 numbers
per frame) in a `tf.function`: a frame count known when the graph is built
(drawn side by side) against one given at run time (a `map_fn` over frames),
recorded under `noise_draw`.

Beside `serving_default`, the SavedModel's signatures that draw their own
noise or carry a state are timed too, recorded per row under
`signatures_ms`: `generate` (batch size and seed in, video out; the model's
own frame count) and, for streaming models, `generate_chunk` on one chunk of
the preset's frame count (the state from `initial_state`, the noise drawn as
the description says).

The diffusion family is left out unless named: its `serving_default` runs
the whole sampling loop (`bench/diffusion_vs_pytorch.py` times its step).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from _common import achieved, best_seconds, matmul_peak_gflops, model_names, settings, write_json

import vidgen_tf  # noqa: E402
from vidgen_tf import exporting  # noqa: E402
from vidgen_tf.cost import generation_multiply_adds  # noqa: E402


def best_of(function, repeats):
    return best_seconds(function, repeats) * 1000


def encoding_costs(batch_sizes, repeats, num_frames=16, height=64, width=64, channels=3):
    """Bytes and encode/decode ms of REST JSON (columnar, row) and gRPC protobuf, request and response."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))
    import _client_common as common
    import grpc_client
    import rest_client

    model = vidgen_tf.build("mocogan", num_frames=num_frames, height=height, width=width, channels=channels)
    description = exporting.describe_model(model)
    messages = grpc_client.messages()
    rows = []
    for batch in batch_sizes:
        inputs = common.draw_inputs(description, num=batch, seed=0)
        video = np.random.default_rng(0).integers(0, 256, [batch, num_frames, height, width, channels]).astype(np.uint8)
        names = ["video"]
        cases = {}
        def rest_request_decode(data):  # what a server does: JSON, then an array per input
            body = json.loads(data)
            if "inputs" in body:
                return {k: np.asarray(v) for k, v in body["inputs"].items()}
            return {k: np.asarray([row[k] for row in body["instances"]]) for k in body["instances"][0]}

        for fmt in rest_client.FORMATS:
            answer = {"outputs" if fmt == "columnar" else "predictions": video.tolist()}
            cases[f"rest_{fmt}"] = {
                "request": (lambda fmt=fmt: json.dumps(rest_client.request_body(inputs, request_format=fmt)).encode(),
                            rest_request_decode),
                "response": (lambda answer=answer: json.dumps(answer).encode(),
                             lambda data, fmt=fmt: rest_client.decode_response(json.loads(data), names, fmt)),
            }
        for content in ("int_val", "tensor_content"):
            def response(content=content):
                message = messages["PredictResponse"]()
                proto = grpc_client.tensor_proto(video)
                if content == "int_val":
                    proto.ClearField("tensor_content")
                    proto.int_val.extend(video.ravel().tolist())
                message.outputs["video"].CopyFrom(proto)
                return message.SerializeToString()

            cases[f"grpc_{content}"] = {
                "request": (lambda: grpc_client.predict_request("mocogan", inputs).SerializeToString(),
                            lambda data: {k: grpc_client.to_numpy(v) for k, v in
                                          messages["PredictRequest"].FromString(data).inputs.items()}),
                "response": (response, lambda data: {k: grpc_client.to_numpy(v) for k, v in
                                                     messages["PredictResponse"].FromString(data).outputs.items()}),
            }
        for name, parts in cases.items():
            row = {"encoding": name, "batch_size": batch, "num_frames": num_frames, "height": height, "width": width,
                   "channels": channels}
            for part, (encode, decode) in parts.items():
                data = encode()
                row[part] = {"bytes": len(data), "encode_ms": best_of(encode, repeats),
                             "decode_ms": best_of(lambda: decode(data), repeats)}
            rows.append(row)
    print(f"\nrequest/response encoding, {num_frames} x {height} x {width} x {channels} uint8 clip per video "
          "(random pixels), best of {repeats}".replace("{repeats}", str(repeats)))
    print(f"{'encoding':<20} {'batch':>5} {'request B':>10} {'enc ms':>8} {'dec ms':>8} "
          f"{'response B':>11} {'enc ms':>8} {'dec ms':>8}")
    for row in rows:
        q, a = row["request"], row["response"]
        print(f"{row['encoding']:<20} {row['batch_size']:>5} {q['bytes']:>10} {q['encode_ms']:>8.2f} "
              f"{q['decode_ms']:>8.2f} {a['bytes']:>11} {a['encode_ms']:>8.2f} {a['decode_ms']:>8.2f}", flush=True)
    return rows


def noise_draw_costs(batch_sizes, repeats, frame_counts=(8, 16), event_size=10):
    """ms of `frame_noise` in a tf.function: frame count static (side by side) against a run-time input (map_fn)."""
    from vidgen_tf.base import frame_noise

    seed = tf.constant([1, 2], tf.int64)
    rows = []
    print(f"\nper-frame noise draw ({event_size} numbers per frame), best of {repeats}")
    print(f"{'batch':>5} {'frames':>6} {'static ms':>10} {'run-time ms':>12}")
    for batch in batch_sizes:
        for frames in frame_counts:
            static = tf.function(lambda s, b=batch, t=frames: frame_noise(s, b, t, [event_size]))
            dynamic = tf.function(lambda s, t, b=batch: frame_noise(s, b, t, [event_size]))
            row = {"batch_size": batch, "num_frames": frames,
                   "static_ms": best_of(lambda: static(seed).numpy(), repeats),
                   "run_time_ms": best_of(lambda: dynamic(seed, tf.constant(frames)).numpy(), repeats)}
            rows.append(row)
            print(f"{batch:>5} {frames:>6} {row['static_ms']:>10.3f} {row['run_time_ms']:>12.3f}", flush=True)
    return rows


def signature_inputs(model, loaded, batch):
    """`{signature: inputs}` of `generate` and, for a streaming model, `generate_chunk` (one chunk of T frames)."""
    from vidgen_tf.exporting import streaming

    generate = {"batch_size": tf.constant(batch, tf.int32), "seed": tf.constant(3, tf.int64)}
    if model.variable_length:
        generate["num_frames"] = tf.constant(model.num_frames, tf.int32)
    labels = tf.zeros([batch], tf.int32) if model.num_classes else None
    if labels is not None:
        generate["label"] = labels
    cases = {"generate": generate}
    if streaming.is_streaming(model):
        noise = model.sample_noise(batch, tf.constant([3, 1], tf.int64), num_frames=model.num_frames)
        state = {}
        if streaming.INITIAL_STATE in loaded.signatures:
            clip = {k: v for k, v in noise.items() if k not in model.frame_noise_names}
            if labels is not None:
                clip["label"] = labels
            if not clip:
                clip["batch_size"] = tf.constant(batch, tf.int32)
            state = loaded.signatures[streaming.INITIAL_STATE](**clip)
        cases[streaming.GENERATE_CHUNK] = {**state, **{k: noise[k] for k in model.frame_noise_names}}
    return cases


def main():
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench/results/generate_latency.json")
    parser.add_argument("--encoding-only", action="store_true",
                        help="only the request/response encoding table (no exports, no latency)")
    args = parser.parse_args()
    encoding = encoding_costs(args.batch_sizes, args.repeats)
    if args.encoding_only:
        write_json(args.json, [], repeats=args.repeats, encoding=encoding)
        return
    noise_draw = noise_draw_costs(args.batch_sizes, max(args.repeats, 20))
    names = model_names(args.models) if args.models else [n for n in model_names(None) if n != "video_diffusion"]
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak: TensorFlow {peak['tensorflow']:.1f} GFLOP/s, numpy {peak['numpy']:.1f} GFLOP/s "
          f"({peak['size']}x{peak['size']}, best of {peak['repeats']})", flush=True)
    rows = []
    print(f"{'setting':<32} {'batch':>5} {'keras ms':>9} {'savedmodel ms':>14} {'onnxruntime ms':>15}   ratios to fastest")
    signature_lines = []
    for label, name, config in settings(names, include_paper=False):
        model = vidgen_tf.build(name, **config)
        per_clip = generation_multiply_adds(model)
        with tempfile.TemporaryDirectory() as scratch:
            version = vidgen_tf.export_savedmodel(model, scratch)
            onnx_path = vidgen_tf.export_onnx(model, f"{scratch}/model.onnx", savedmodel_dir=version)
            loaded = tf.saved_model.load(str(version))
            serving = loaded.signatures["serving_default"]
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
                signatures = {}
                for signature, call_inputs in signature_inputs(model, loaded, batch).items():
                    function = loaded.signatures[signature]
                    signatures[signature] = best_of(lambda: function(**call_inputs)["video"].numpy(), args.repeats)
                signature_lines.append(f"{label:<32} {batch:>5} {times['savedmodel']:>16.1f} "
                                       f"{signatures['generate']:>12.1f} "
                                       f"{signatures.get('generate_chunk', float('nan')):>16.1f}")
                fastest = min(times.values())
                ratios = {k: v / fastest for k, v in times.items()}
                rates = {k: achieved(per_clip, batch / (v / 1000), peak["tensorflow"]) for k, v in times.items()}
                rows.append({"setting": label, "model": name, "batch_size": batch, "ms": times, "ratio_to_fastest": ratios,
                             "signatures_ms": signatures,
                             "multiply_adds_per_clip": per_clip,
                             "gflops": {k: gflops for k, (gflops, _) in rates.items()},
                             "percent_of_peak": {k: percent for k, (_, percent) in rates.items()}})
                print(f"{label:<32} {batch:>5} {times['keras']:>9.1f} {times['savedmodel']:>14.1f} {times['onnxruntime']:>15.1f}   "
                      + " ".join(f"{k} {v:.2f}x" for k, v in ratios.items()), flush=True)
                print(f"{'':<32} {'':>5} GFLOP/s ({per_clip / 1e6:.1f}M multiply-adds per clip): "
                      + ", ".join(f"{k} {g:.2f} ({p:.1f}% of peak)" for k, (g, p) in rates.items()), flush=True)
    print(f"\nSavedModel signatures, ms (best of {args.repeats}; generate_chunk: one chunk of the preset's frames)")
    print(f"{'setting':<32} {'batch':>5} {'serving_default':>16} {'generate':>12} {'generate_chunk':>16}")
    print("\n".join(signature_lines), flush=True)
    # Measured again at the end: on a shared machine the peak moves with the load.
    end = matmul_peak_gflops()
    print(f"float32 matmul peak at the end: TensorFlow {end['tensorflow']:.1f} GFLOP/s, numpy {end['numpy']:.1f} "
          "GFLOP/s (percentages use the start's)", flush=True)
    write_json(args.json, rows, repeats=args.repeats, matmul_peak_gflops=peak, matmul_peak_gflops_end=end,
               encoding=encoding, noise_draw=noise_draw)


if __name__ == "__main__":
    main()
