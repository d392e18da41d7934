"""`vidgen quickstart`: trains the small MoCoGAN preset, writes samples, exports both formats."""

from pathlib import Path

from vidgen_tf.cli.common import main


def cmd_quickstart(args):
    """Trains the small MoCoGAN preset, writes samples, exports both formats."""
    out = Path(args.out)
    steps = args.steps
    commands = [
        ["train", "mocogan_moving_digits", "--data", "moving_digits", "--steps", str(steps),
         "--checkpoint-every", str(max(1, steps // 4)), "--sample-every", str(max(1, steps // 2)),
         "--out", str(out / "mocogan"), "--seed", "0"] + (["--quiet"] if args.quiet else []),
        ["generate", str(out / "mocogan"), "--num", "8", "--frames", "24", "--seed", "1",
         "--out", str(out / "mocogan_24_frames.mp4")],
        ["generate", str(out / "mocogan"), "--num", "8", "--frames", "24", "--seed", "1",
         "--out", str(out / "mocogan_24_frames.gif")],
        ["export", str(out / "mocogan"), "--format", "savedmodel,onnx", "--out", str(out / "export"),
         "--overwrite"],
    ]
    for command in commands:
        if args.verbose:
            command.append("--verbose")
        print("$ vidgen " + " ".join(command), flush=True)
        code = main(command)
        if code:
            return code
    return 0
