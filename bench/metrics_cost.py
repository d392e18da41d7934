"""What the video metrics cost: feature-extraction throughput, statistics time, and memory.

    python bench/metrics_cost.py [--num-videos 512] [--batch-size 32] [--feature-dim 400]
                                 [--stream-samples 20000] [--json bench/results/metrics_cost.json]

Prints, side by side in one run:
- clips/s of feature extraction (clip preparation by the reference recipe + the network) with the
  built-in network (`vidgen_tf.metrics.builtin_feature_network`) on moving_digits clips of the
  network's own size, and of the motion statistics on the same clips;
- seconds of the Frechet distance and of the polynomial MMD (100 subsets of 1000) on
  `--feature-dim`-d features;
- peak memory (tracemalloc, numpy's allocations) of accumulating `--stream-samples` feature
  vectors in `GaussianStatistics` batch by batch against holding them all and computing the
  statistics at once.
"""

import argparse
import os
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import vidgen_tf  # noqa: E402
from vidgen_tf import metrics  # noqa: E402

from _common import write_json  # noqa: E402


def timed(function, repeats=3):
    function()  # warm-up (tracing, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def peak_bytes(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-videos", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--feature-dim", type=int, default=400)
    parser.add_argument("--stream-samples", type=int, default=20000)
    parser.add_argument("--json", default="bench/results/metrics_cost.json")
    args = parser.parse_args()
    rows = {}

    network = metrics.builtin_feature_network(kind="video")
    frames = network.num_frames
    height, width = network.input_size
    clips = vidgen_tf.data.make_videos("moving_digits", args.num_videos, num_frames=frames, height=height,
                                       width=width, seed=0)
    seconds = timed(lambda: metrics.extract_features(clips, network, batch_size=args.batch_size), repeats=2)
    rows["feature_clips_per_s"] = args.num_videos / seconds
    print(f"features ({network.describe()}): {rows['feature_clips_per_s']:.1f} clips/s "
          f"({args.num_videos} clips of {frames}x{height}x{width}, batch {args.batch_size})", flush=True)
    seconds = timed(lambda: metrics.motion_statistics(clips, dataset="moving_digits"), repeats=2)
    rows["motion_clips_per_s"] = args.num_videos / seconds
    print(f"motion statistics: {rows['motion_clips_per_s']:.1f} clips/s", flush=True)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(2048, args.feature_dim))
    b = rng.normal(size=(2048, args.feature_dim)) + 0.1
    rows["frechet_s"] = timed(lambda: metrics.frechet_distance(a, b))
    rows["mmd_s"] = timed(lambda: metrics.polynomial_mmd(a, b), repeats=1)
    print(f"Frechet distance, 2048 x {args.feature_dim}-d each: {rows['frechet_s'] * 1000:.1f} ms; "
          f"polynomial MMD (100 subsets of 1000): {rows['mmd_s'] * 1000:.1f} ms", flush=True)

    batch = 256

    def streaming():
        stats = metrics.GaussianStatistics()
        for start in range(0, args.stream_samples, batch):
            stats.update(np.random.default_rng(start).normal(size=(min(batch, args.stream_samples - start),
                                                                     args.feature_dim)))
        return stats.covariance

    def holding():
        parts = [np.random.default_rng(start).normal(size=(min(batch, args.stream_samples - start), args.feature_dim))
                 for start in range(0, args.stream_samples, batch)]
        return metrics.GaussianStatistics.from_features(np.concatenate(parts)).covariance

    np.testing.assert_allclose(streaming(), holding(), rtol=1e-9, atol=1e-12)
    rows["stream_peak_mb"] = peak_bytes(streaming) / 2**20
    rows["hold_peak_mb"] = peak_bytes(holding) / 2**20
    print(f"statistics of {args.stream_samples} x {args.feature_dim}-d features: peak "
          f"{rows['stream_peak_mb']:.1f} MiB streaming (batches of {batch}) against "
          f"{rows['hold_peak_mb']:.1f} MiB holding them all ({rows['hold_peak_mb'] / rows['stream_peak_mb']:.1f}x)",
          flush=True)
    write_json(args.json, [rows], args=vars(args), feature_network=network.describe())


if __name__ == "__main__":
    main()
