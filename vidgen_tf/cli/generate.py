"""`vidgen generate`: videos from a preset, written to MP4, GIF or NPZ."""

from vidgen_tf.cli.common import UsageError, _quiet_tensorflow


def cmd_generate(args):
    _quiet_tensorflow()
    import vidgen_tf
    from vidgen_tf import video_io

    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}.")
    if args.scale < 1:
        raise UsageError(f"--scale must be an integer >= 1 (each pixel becomes a scale x scale block), "
                         f"got {args.scale}.")
    model = vidgen_tf.from_preset(args.preset)
    labels = None
    if args.label is not None:
        labels = [args.label] * args.num
    elif model.num_classes:
        labels = [i % model.num_classes for i in range(args.num)]
    videos = model.generate(args.num, seed=args.seed, num_frames=args.frames, labels=labels)
    path = video_io.write_video(args.out, videos.numpy(), fps=args.fps, scale=args.scale)
    print(f"wrote {path} ({args.num} videos of {videos.shape[1]} frames)")
    return 0
