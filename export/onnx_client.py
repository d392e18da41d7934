"""Generate videos from an exported ONNX file with onnxruntime alone (no TensorFlow).

    python export/onnx_client.py exported/mocogan.onnx --num 4 --frames 16 --out clip.npz

Draws the noise inputs the graph declares (standard normal; labels from --label) and writes the
uint8 `video` output as an .npz (`videos` [N, T, H, W, C]) that `vidgen_tf.video_io` and the
`npz` dataset read.
"""

import argparse

import numpy as np
import onnxruntime


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--num", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16, help="used where the frame axis is dynamic")
    parser.add_argument("--label", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="onnx_videos.npz")
    args = parser.parse_args()
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(args.seed)
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "label":
            feeds["label"] = np.full([args.num], args.label, np.int32)
            continue
        shape = [args.num] + [d if isinstance(d, int) else args.frames for d in spec.shape[1:]]
        feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
    (video,) = session.run(["video"], feeds)
    np.savez_compressed(args.out, videos=video)
    print(f"wrote {args.out}: videos {video.shape} {video.dtype}")


if __name__ == "__main__":
    main()
