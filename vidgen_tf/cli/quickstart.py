"""`vidgen quickstart`: the trained MoCoGAN preset's samples, a short fine-tune that resumes, exports, a report."""

import json
from pathlib import Path

from vidgen_tf.cli.common import UsageError


def _commands(args, out, dataset, model_name):
    steps, half = args.steps, args.steps // 2
    tuned = out / "finetuned"
    quiet = ["--quiet"] if args.quiet else []
    generate = ["generate", args.preset, "--num", "8", "--frames", "24", "--seed", "1", "--scale", "3"]
    train = ["train", args.preset, "--data", dataset, "--checkpoint-every", str(half), "--seed", "0",
             "--log-every", str(max(1, steps // 20)),
             "--out", str(tuned)]
    return [
        # 1. The trained preset: 24 frames from a model trained on 8-frame clips (the motion GRU runs on).
        [*generate, "--out", str(out / "pretrained_24_frames.gif")],
        [*generate, "--out", str(out / "pretrained_24_frames.mp4")],
        # 2. Training: half the steps, then a second run that resumes from the first one's checkpoint.
        [*train, "--steps", str(half), "--no-report", *quiet],
        [*train, "--steps", str(steps), *quiet],  # writes OUT/finetuned/report.html at the end
        # 3. Deployment: SavedModel (TF Serving) and ONNX, checked against each other.
        ["export", str(tuned), "--format", "savedmodel,onnx", "--out", str(out / "export"), "--overwrite"],
    ], [
        ("samples of the trained preset", out / "pretrained_24_frames.gif"),
        ("", out / "pretrained_24_frames.mp4"),
        ("fine-tuned preset", tuned),
        ("its samples", tuned / "samples" / "final.gif"),
        ("its losses", tuned / "losses.jsonl"),
        ("its report", tuned / "report.html"),
        ("SavedModel", out / "export" / model_name / "1"),
        ("ONNX", out / "export" / f"{model_name}.onnx"),
        ("TF Serving config", out / "export" / "models.config"),
    ]


def cmd_quickstart(args):
    """Samples of the trained preset, a fine-tune in two runs (the second resumes), exports, a report."""
    from vidgen_tf import presets

    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2 (two runs of --steps // 2), got {args.steps}.")
    directory = presets.resolve_preset(args.preset)
    metadata = json.loads((directory / "metadata.json").read_text())
    if not (directory / presets.WEIGHTS_FILE).is_file():
        print(f"warning: the preset {args.preset} ships no trained weights: its samples are noise", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_name = presets.load_preset_config(directory)[0]
    commands, files = _commands(args, out, metadata.get("dataset", "moving_digits"), model_name)
    for command in commands:
        if args.verbose:
            command.append("--verbose")
        print("$ vidgen " + " ".join(command), flush=True)
        code = args.vidgen_main(command)  # `vidgen` itself, handed over by `main`
        if code:
            return code
    print("\nwhere everything went:")
    width = max(len(label) for label, _ in files)
    for label, path in files:
        if path.exists():
            print(f"  {label:<{width}}  {path}")
    return 0
