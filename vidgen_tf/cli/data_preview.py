"""`vidgen data preview`: a grid of a dataset's videos in a GIF or MP4."""

import time

from vidgen_tf.cli.common import _data_options, _geometry


def cmd_data_preview(args):
    from vidgen_tf import data, video_io

    # Channels default to the source's own: a colour folder previews in colour.
    geometry = {"num_frames": 16, "height": 64, "width": 64, "channels": None, **_geometry(args)}
    options = _data_options(args)
    start = time.time()
    videos = data.make_videos(args.dataset, args.num, seed=args.seed, **geometry, **options)
    if isinstance(videos, tuple):
        videos = videos[0]
    path = video_io.write_video(args.out, videos, fps=args.fps)
    print(f"wrote {path} ({len(videos)} videos of {videos.shape[1]} frames, {videos.shape[2]}x{videos.shape[3]}, "
          f"{time.time() - start:.1f}s)")
    return 0
