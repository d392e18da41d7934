"""`vidgen data pack`: a dataset's clips written to TFRecord shards with a manifest."""

import os

from vidgen_tf.cli.common import UsageError, _geometry, _parse_pairs

# Geometry when neither the flags nor the file say otherwise (as `vidgen data preview`).
DEFAULT_GEOMETRY = {"num_frames": 16, "height": 64, "width": 64, "channels": 1}


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


def _npz_geometry(path):
    from vidgen_tf.data import npz

    _, videos, _ = npz._read_arrays(path)
    if videos.ndim != 5:
        return {}
    _, length, height, width, channels = videos.shape
    return {"num_frames": min(length, DEFAULT_GEOMETRY["num_frames"]), "height": height, "width": width,
            "channels": channels}


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
    geometry = dict(DEFAULT_GEOMETRY)
    if name == "npz":
        geometry.update(_npz_geometry(args.source))
    elif name == "tfrecord":
        manifest = tfrecord.read_manifest(args.source)
        geometry.update({key: manifest[key] for key in DEFAULT_GEOMETRY})
    geometry.update(_geometry(args))
    manifest = data.pack(name, args.source, args.out, shards=args.shards, seed=args.seed, image_format=args.format,
                         jpeg_quality=args.jpeg_quality, progress=not args.quiet, overwrite=args.overwrite,
                         **geometry, **options)
    print(f"packed {name} {args.source} into {args.out}")
    print(tfrecord.summary(manifest))
    print(f"read it with: vidgen train MODEL --data tfrecord --path {args.out}")
    return 0
