"""Input pipeline speed: decoded clips/s of `data.load` against a plain PyAV loop, and
the share of a MoCoGAN training step spent waiting for input.

    python bench/input_pipeline.py [--videos 24] [--seconds 6] [--batches 12] [--steps 6]

1. Writes `--videos` files with FFmpeg's own test sources (`testsrc2`, `smptehdbars`,
   `mandelbrot`, `rgbtestsrc` through PyAV's filter graph; nothing is downloaded): 320x240
   (UCF-101's size), 25 fps, `--seconds` long, H.264 in mp4 and VP9 in webm, in four class
   folders, under `--workdir` (kept between runs).
2. Times, in this one process: the metadata index (cold: probing every file), then
   clips/s of 16x64x64 RGB clips (`frame_step=2`, random crop) from
     - a plain single-threaded PyAV loop over the same clip plan (open, seek, decode
       the clip's frames scaled by FFmpeg, crop: the loop a user writes), and
     - `data.load("video_folder", ...)`: the same decoding inside `tf.data`'s parallel map;
     - `data.load("tfrecord", ...)`: shards written by `data.tfrecord.pack` (PNG frames).
3. Trains MoCoGAN at the paper setting (64x64x16 RGB, `train_on_batch`), in a fresh
   process per pipeline: `--steps` steps on one batch held in memory, then `--steps` fed by
   the pipeline; prints both step times (their ratio is what decoding on the same cores
   costs the step) and the share of the fed steps spent waiting in `next()`.

Writes bench/results/input_pipeline.json. Run it on an idle machine.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from _common import PAPER_SETTINGS, write_json

import vidgen_tf  # noqa: E402
from vidgen_tf import data  # noqa: E402
from vidgen_tf.data import clips as clip_sampling  # noqa: E402

SOURCES = ("testsrc2", "smptehdbars", "mandelbrot", "rgbtestsrc")
CONTAINERS = ((".mp4", "mp4", "libx264", {"preset": "veryfast", "crf": "23"}),
              (".webm", "webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "b": "400k"}))
CLIP = dict(num_frames=16, height=64, width=64, channels=3)
OPTIONS = dict(frame_step=2, random_crop=True)


def write_test_video(path, source, seconds, container_spec, size=(320, 240), fps=25):
    """One file of an FFmpeg test source, encoded with PyAV."""
    import av
    import av.filter

    _, container_format, codec, options = container_spec
    graph = av.filter.Graph()
    src = graph.add(source, f"size={size[0]}x{size[1]}:rate={fps}")  # endless: cut by count
    to_yuv = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    src.link_to(to_yuv)
    to_yuv.link_to(sink)
    graph.configure()
    partial = path + ".partial"
    with av.open(partial, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = options
        for _ in range(int(seconds * fps)):
            frame = graph.pull()
            frame.pts = None
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(partial, path)


def make_files(workdir, count, seconds):
    folder = os.path.join(workdir, f"videos_{count}x{seconds}s")
    if os.path.isdir(folder):
        return folder
    staging = folder + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        spec = CONTAINERS[(i // len(SOURCES)) % len(CONTAINERS)]
        os.makedirs(os.path.join(staging, source), exist_ok=True)
        write_test_video(os.path.join(staging, source, f"clip_{i:03d}{spec[0]}"), source,
                         seconds + (i % 3), spec)
    os.replace(staging, folder)
    return folder


def plain_pyav_clip(path, plan, clip_options):
    """A user's loop: open, seek to the clip, decode its frames scaled by FFmpeg, crop."""
    import av

    wanted = set(plan.frame_indices)
    last = max(wanted)
    frames = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        start_time = stream.start_time or 0
        first = min(wanted)
        container.seek(start_time + int(first / fps / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            index = round((frame.pts - start_time) * stream.time_base * fps)
            if index in wanted:
                frames[index] = frame.to_ndarray(width=plan.scaled[1], height=plan.scaled[0],
                                                 format="rgb24", interpolation="BILINEAR")
            if index >= last:
                break
    video = np.stack([frames[i] for i in plan.frame_indices])
    return clip_sampling.fit_frames(video, clip_options, plan.offset)


def plain_clips_per_second(folder, num_clips):
    """Clips/s of the plain PyAV loop on epoch 0's clip plan of the source (one thread)."""
    source = data.get_source("video_folder")
    request = data.registry.Request("video_folder", **CLIP, path=folder, options=OPTIONS)
    view = source._folder(request)
    plans = clip_sampling.plan_epoch(view.videos, view.options, 0, 0, shuffle=True)
    plans = (plans * (num_clips // len(plans) + 1))[:num_clips]
    start = time.perf_counter()
    for plan in plans:
        clip = plain_pyav_clip(os.path.join(folder, view.records[plan.video].path), plan, view.options)
    assert clip.shape == tuple(CLIP.values()), clip.shape
    return num_clips / (time.perf_counter() - start)


def pipeline_clips_per_second(dataset, batch_size, batches):
    iterator = iter(dataset)
    next(iterator)  # warm-up: tracing, the first decodes, the prefetch buffers
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def feed(name, folder, pack_dir, batch_size):
    """The dataset of one feed of the MoCoGAN step (`in memory`: one batch, repeated)."""
    load = dict(**CLIP, batch_size=batch_size, seed=0, **OPTIONS)
    if name == "tfrecord":
        return data.load("tfrecord", path=pack_dir, **load_without_options(load))
    dataset = data.load("video_folder", path=folder, **load)
    if name == "in memory":
        dataset = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
    return dataset


def step_seconds(name, folder, pack_dir, batch_size, steps):
    """`(in-memory step s, fed step s, share of the fed steps spent in next())` of MoCoGAN at
    the paper setting, in this one process: TensorFlow's speed differs between processes
    (oneDNN's kernels vary with the memory layout, up to 1.6x here), so both are measured in
    the same one. The in-memory steps run first, before the feed's pipeline exists."""
    model = vidgen_tf.build("mocogan", **PAPER_SETTINGS["mocogan"])
    model.compile(seed=0)
    first = next(iter(feed("in memory", folder, pack_dir, batch_size)))
    model.train_on_batch(first)  # trace and warm up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(first)
    in_memory = (time.perf_counter() - start) / steps
    iterator = iter(feed(name, folder, pack_dir, batch_size))
    model.train_on_batch(next(iterator))
    waiting = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        before = time.perf_counter()
        batch = next(iterator)
        waiting += time.perf_counter() - before
        model.train_on_batch(batch)
    fed = (time.perf_counter() - start) / steps
    return in_memory, fed, waiting / (fed * steps)


def step_seconds_in_child(name, folder, pack_dir, args):
    """`step_seconds` of feed `name`, measured by this script in a fresh process."""
    command = [sys.executable, __file__, "--child-feed", name, "--child-paths", folder, pack_dir,
               "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return [float(x) for x in done.stdout.strip().splitlines()[-1].split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per pipeline")
    parser.add_argument("--steps", type=int, default=6, help="timed MoCoGAN steps per feed (0: skip)")
    parser.add_argument("--workdir", default=os.path.join("bench", "results", "input_pipeline_data"))
    parser.add_argument("--json", default=os.path.join("bench", "results", "input_pipeline.json"))
    parser.add_argument("--child-feed", help=argparse.SUPPRESS)
    parser.add_argument("--child-paths", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_feed:
        print(*step_seconds(args.child_feed, *args.child_paths, args.batch_size, args.steps))
        return 0
    os.makedirs(args.workdir, exist_ok=True)

    start = time.perf_counter()
    folder = make_files(args.workdir, args.videos, args.seconds)
    print(f"files: {folder} ({time.perf_counter() - start:.1f} s)")
    for name in os.listdir(folder):  # a cold index: probe every file
        if name.startswith(".vidgen_index"):
            os.remove(os.path.join(folder, name))
    start = time.perf_counter()
    print(data.describe("video_folder", path=folder, **CLIP, **OPTIONS))
    index_seconds = time.perf_counter() - start
    print(f"metadata index, cold: {index_seconds:.2f} s for {args.videos} files "
          f"({args.videos / index_seconds:.1f} files/s, {os.cpu_count()} cores)")

    pack_dir = os.path.join(args.workdir, f"pack_{args.videos}x{args.seconds}s")
    if not os.path.isdir(pack_dir):
        start = time.perf_counter()
        data.tfrecord.pack("video_folder", folder, pack_dir, shards=4, progress=False, seed=0,
                           **CLIP, **OPTIONS)
        print(f"packed into {pack_dir} ({time.perf_counter() - start:.1f} s)")

    rows = []
    num_clips = args.batches * args.batch_size
    plain = plain_clips_per_second(folder, num_clips)
    print(f"plain PyAV loop, 1 thread:        {plain:7.1f} clips/s")
    rows.append(dict(pipeline="plain PyAV loop", clips_per_second=round(plain, 2)))
    for name in ("video_folder", "tfrecord"):
        rate = pipeline_clips_per_second(feed(name, folder, pack_dir, args.batch_size), args.batch_size,
                                         args.batches)
        print(f"data.load({name!r}):{' ' * (18 - len(name))}{rate:7.1f} clips/s ({rate / plain:.2f}x the plain loop)")
        rows.append(dict(pipeline=f"data.load({name})", clips_per_second=round(rate, 2),
                         vs_plain=round(rate / plain, 3)))

    if args.steps:
        # Each feed trains in a fresh process, against the same batch held in memory in that
        # process: the pipelines timed above keep decoding threads alive in this one.
        for name in ("video_folder", "tfrecord"):
            in_memory, fed, waiting = step_seconds_in_child(name, folder, pack_dir, args)
            print(f"MoCoGAN paper-setting step fed by {name}: {fed:.3f} s against {in_memory:.3f} s "
                  f"in memory ({fed / in_memory:.3f}x); waiting in next(): {100 * waiting:.1f}%")
            rows.append(dict(pipeline=f"MoCoGAN step fed by {name}", step_seconds=round(fed, 4),
                             in_memory_step_seconds=round(in_memory, 4), waiting_share=round(waiting, 4)))
    write_json(args.json, rows, videos=args.videos, seconds=args.seconds, batch_size=args.batch_size,
               clip=CLIP, options=OPTIONS, index_seconds=round(index_seconds, 3))
    return 0


def load_without_options(load):
    """`load`'s arguments for the packed shards: the clips are already sampled and shaped."""
    return {key: value for key, value in load.items() if key not in OPTIONS}


if __name__ == "__main__":
    sys.exit(main())
