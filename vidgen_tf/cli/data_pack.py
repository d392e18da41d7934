"""`vidgen data pack`: a dataset's clips written to TFRecord shards with a manifest."""

import os

from vidgen_tf.cli.common import UsageError, _geometry, _parse_pairs

# How the command names each geometry value (in errors and in the line saying what was used).
FLAGS = {"num_frames": "--num-frames", "height": "--height", "width": "--width", "channels": "--channels"}
ORIGINS = {"given": "from the flags", "source": "from the source", "default": "(the default)"}


def infer_dataset(source):
    """The dataset that reads `source`: npz for a .npz file, tfrecord for a pack, else by the files it holds.

    A folder holding video files (at any depth) is `video_folder`; one holding image files
    (folders of frames) is `frame_folder` (`vidgen_tf.data.folders.detect_kind`, with the
    extensions those datasets read).
    """
    if os.path.isfile(source):
        if source.lower().endswith(".npz"):
            return "npz"
        raise UsageError(f"Cannot tell the dataset of file '{source}' (only .npz files are read as files); "
                         "give --data.")
    if not os.path.isdir(source):
        raise FileNotFoundError(f"'{source}' is neither a file nor a directory.")
    if os.path.isfile(os.path.join(source, "manifest.json")):
        name = "tfrecord"
    else:
        from vidgen_tf.data import folders

        try:
            name = folders.detect_kind(source)  # the folder datasets' own rule: video files, else images
        except ValueError as error:
            raise UsageError(f"{error} Give --data.") from None
    return name


def _plural(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


def geometry_line(geometry, origins, own):
    """One line: the geometry used and where each value came from, e.g.
    "geometry from the source: 24 frames (every frame of each video), 32x40, 3 channels"."""
    # A folder's frames are chosen by a rule (every frame, the default, the shortest video's): the note says which.
    note = own.notes.get("num_frames") if origins["num_frames"] == "source" else None
    frames = _plural(geometry["num_frames"], "frame") + (f" ({note})" if note else "")
    size = f"{geometry['height']}x{geometry['width']}"
    channels = _plural(geometry["channels"], "channel")
    if len(set(origins.values())) == 1:
        origin = next(iter(origins.values()))
        where = {"given": "from the flags", "source": "from the source", "default": "(the defaults)"}[origin]
        return f"geometry {where}: {frames}, {size}, {channels}"
    if origins["height"] == origins["width"]:
        size = f"{size} {ORIGINS[origins['height']]}"
    else:
        size = (f"height {geometry['height']} {ORIGINS[origins['height']]}, "
                f"width {geometry['width']} {ORIGINS[origins['width']]}")
    if not note:
        frames = f"{frames} {ORIGINS[origins['num_frames']]}"
    return f"geometry: {frames}, {size}, {channels} {ORIGINS[origins['channels']]}"


def _differ(own, key):
    (first, first_value), (second, second_value) = own.differ[key]
    return f"the files differ: {first} is {first_value}, {second} is {second_value}"


def conversion_lines(geometry, origins, own, options):
    """A line for each change of the source's frames the flags ask for: grey, resizing, fewer frames."""
    lines = []
    channels = geometry["channels"]
    if origins["channels"] == "given" and own.converts:
        if "channels" in own.differ:
            lines.append(f"reading every file with {_plural(channels, 'channel')} (--channels {channels}; "
                         f"{_differ(own, 'channels')})")
        elif own.values.get("channels", channels) != channels:
            change = "converting colour to grey" if channels == 1 else f"repeating grey to {channels} channels"
            lines.append(f"{change} (--channels {channels}; the source has {own.values['channels']})")
    size = (geometry["height"], geometry["width"])
    if "given" in (origins["height"], origins["width"]) and own.converts:
        how = f"resize={options.get('resize', 'crop')}"
        if "height" in own.differ:
            lines.append(f"resizing every file to {size[0]}x{size[1]} ({how}; {_differ(own, 'height')})")
        elif (own.values.get("height"), own.values.get("width")) not in (size, (None, None)):
            lines.append(f"resizing {own.values['height']}x{own.values['width']} frames to {size[0]}x{size[1]} "
                         f"({how})")
    frames = geometry["num_frames"]
    if origins["num_frames"] == "given" and not own.converts and own.values.get("num_frames", frames) > frames:
        lines.append(f"cutting clips of {frames} of the {own.values['num_frames']} frames of each video "
                     f"(--num-frames {frames}; a window per video)")
    return lines


def cmd_data_pack(args):
    from vidgen_tf import data
    from vidgen_tf.data import tfrecord

    name = args.data or infer_dataset(args.source)
    # Before anything is read: the messages name the flags.
    tfrecord.check_pack_target(args.source, args.out, args.overwrite, out_flag="--out", overwrite_flag="--overwrite")
    if args.shards < 1:
        raise UsageError(f"--shards must be >= 1, got {args.shards}.")
    options = _parse_pairs(args.data_option, "--data-option")
    if args.frame_step is not None:
        options["frame_step"] = args.frame_step
    if args.fps is not None:
        options["fps"] = args.fps
    # What the flags do not give is the source's own: nothing is resized, converted or cut unless asked.
    geometry, origins, own = data.source_geometry(name, args.source, _geometry(args), names=FLAGS, **options)
    print(geometry_line(geometry, origins, own))
    for line in conversion_lines(geometry, origins, own, options):
        print(line)
    if own.converts:  # a folder: the files skipped (damaged, too short) are named
        print(data.describe(name, path=args.source, **geometry, **options))
    manifest = data.pack(name, args.source, args.out, shards=args.shards, seed=args.seed, image_format=args.format,
                         jpeg_quality=args.jpeg_quality, progress=not args.quiet, overwrite=args.overwrite,
                         shards_flag="--shards ", **geometry, **options)
    print(f"packed {name} {args.source} into {args.out}")
    print(tfrecord.summary(manifest))
    print(f"read it with: vidgen train MODEL --data tfrecord --path {args.out}")
    return 0
