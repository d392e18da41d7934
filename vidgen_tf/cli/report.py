"""`vidgen report`: an HTML page of a preset or a `vidgen train` run, with its assets in a folder beside it."""

from vidgen_tf.cli.common import UsageError, _quiet_tensorflow


def cmd_report(args):
    _quiet_tensorflow()
    from vidgen_tf import report

    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}.")
    if args.scale is not None and args.scale < 1:
        raise UsageError(f"--scale must be an integer >= 1 (each pixel becomes a scale x scale block), "
                         f"got {args.scale}.")
    report.check_report_target(args.out, args.overwrite, overwrite_flag="--overwrite")  # the message names the flag
    path = report.write_report(args.source, args.out, num_samples=args.num, seed=args.seed, scale=args.scale,
                               fps=args.fps, tensorboard_dir=args.tensorboard, overwrite=args.overwrite)
    assets = report.default_assets_dir(path)
    names = ", ".join(sorted(p.name for p in assets.iterdir()))
    print(f"wrote {path} (assets in {assets}/: {names})")
    return 0
