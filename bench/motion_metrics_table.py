"""Motion distances of held-out real, static, shuffled-frame and noise clips, per dataset.

The references the motion metrics must separate (`vidgen_tf.metrics.motion_distance`):
real clips (seed 0) against held-out real clips (seed 1), against the held-out clips frozen
on their first frame, with their frames shuffled, and against uniform uint8 noise. Prints
one table per dataset (each statistic and the total); no timing.

    PYTHONPATH=$PWD python bench/motion_metrics_table.py --num-videos 200 --frames 16 --size 32
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from vidgen_tf.data import make_videos  # noqa: E402
from vidgen_tf.metrics import motion_distance  # noqa: E402
from vidgen_tf.metrics.motion import STATISTICS  # noqa: E402

DATASETS = ("moving_square", "moving_digits", "bouncing_balls", "moving_shapes")


def corrupted(videos, seed=0):
    """`{kind: videos}`: the clips themselves, frozen on frame 0, frame-shuffled, and noise."""
    rng = np.random.default_rng(seed)
    shuffled = np.stack([clip[rng.permutation(len(clip))] for clip in videos])
    return {
        "real": videos,
        "static": np.repeat(videos[:, :1], videos.shape[1], axis=1),
        "shuffled": shuffled,
        "noise": rng.integers(0, 256, size=videos.shape, dtype=np.uint8),
    }


def table(dataset, num_videos, frames, size, channels):
    shape = dict(num_frames=frames, height=size, width=size, channels=channels)
    real = make_videos(dataset, num_videos, seed=0, **shape)
    held_out = make_videos(dataset, num_videos, seed=1, **shape)
    rows = {kind: motion_distance(real, fake, dataset=dataset)
            for kind, fake in corrupted(held_out).items()}
    names = [*STATISTICS, "total"]
    print(f"\n{dataset}: {num_videos} clips of {frames} frames, {size}x{size}x{channels}")
    print(f"{'':10s}" + "".join(f"{name[:12]:>13s}" for name in names))
    for kind, row in rows.items():
        print(f"{kind:10s}" + "".join(f"{row[name]:13.3f}" for name in names))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    for dataset in args.datasets:
        table(dataset, args.num_videos, args.frames, args.size, args.channels)


if __name__ == "__main__":
    main()
