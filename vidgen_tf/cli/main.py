"""`vidgen`'s parser and dispatch: `build_parser` names every subcommand and its flags, `main` runs one.

The subcommands live one per module (`vidgen_tf.cli.train`, ...), each importing only the shared
helpers of `vidgen_tf.cli.common`; this module imports them, and nothing imports this module but
the package (`vidgen_tf.cli.main` is the console script's `vidgen_tf.cli:main`).
"""

import argparse
import contextlib
import logging
import shlex
import sys
import traceback
from pathlib import Path

from vidgen_tf.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    PACKAGE_DIR,
    PATH_HELP,
    _add_geometry,
    _add_metric_options,
    _import_tensorflow,
    UsageError,
    _quiet_tensorflow,
)
from vidgen_tf.cli.data_check import cmd_data_check
from vidgen_tf.cli.data_pack import cmd_data_pack
from vidgen_tf.cli.data_preview import cmd_data_preview
from vidgen_tf.cli.evaluate import add_protocol_options, cmd_eval
from vidgen_tf.cli.export import cmd_export
from vidgen_tf.cli.generate import cmd_generate
from vidgen_tf.cli.listing import cmd_list
from vidgen_tf.cli.publish import DEFAULT_METRICS as DEFAULT_PUBLISH_METRICS
from vidgen_tf.cli.publish import cmd_publish
from vidgen_tf.cli.quickstart import cmd_quickstart
from vidgen_tf.cli.report import cmd_report
from vidgen_tf.cli.train import PRECISIONS, cmd_train


def build_parser():

    parser = argparse.ArgumentParser(
        prog="vidgen", description="Train, sample and export the video generation models of vidgen-tf."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list models, presets and datasets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("data", help="look at the datasets")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    q = data_sub.add_parser("preview", help="write a grid of dataset videos to a GIF or MP4")
    q.add_argument("dataset", help="dataset name (see `vidgen list`)")
    q.add_argument("--out", required=True, help="output file: .gif, .mp4 or .npz")
    q.add_argument("--num", type=int, default=8, help="videos in the grid (default 8)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fps", type=int, default=8)
    q.add_argument("--path", help=PATH_HELP)
    q.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option num_balls=1")
    _add_geometry(q, "16 frames, 64x64, 1 channel")
    q.set_defaults(func=cmd_data_preview)
    q = data_sub.add_parser(
        "check", help="list every file of a video or frame folder with its frames, size, channels, fps, duration "
                      "and status",
        description="Probes every file of a dataset folder (through the cached index the video_folder and "
                    "frame_folder datasets use) and lists it with its frame count, size, channels (1 when the file "
                    "stores grey, else 3), fps, duration, class and status, then a summary and the usable files' "
                    "channels and sizes. Exits 0 when at least one file is usable, 1 when none is.")
    q.add_argument("path", help="the folder")
    q.add_argument("--data", choices=("video_folder", "frame_folder"),
                   help="kind of folder (default: video_folder when it holds video files, else frame_folder)")
    q.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="cache_dir=DIR (where the index is cached) or, for frame_folder, source_fps=N (default 25)")
    q.set_defaults(func=cmd_data_check)
    q = data_sub.add_parser(
        "pack", help="write a dataset's clips to TFRecord shards with a manifest (read back with --data tfrecord)",
        description="Reads one pass of clips from SOURCE (a .npz file, a folder of videos or of frame folders, "
                    "or another pack) and writes them, each frame PNG- or JPEG-encoded, to --shards TFRecord files "
                    "(clip i in shard i % N) with manifest.json, atomically: the whole directory appears at the end. "
                    "Geometry the flags do not give is the source's own (printed with where it came from); "
                    "converting to grey, resizing and cutting frames happen only when a flag asks.")
    q.add_argument("source", help="a .npz file, a folder of video files, a folder of frame folders, or a pack")
    q.add_argument("--out", required=True,
                   help="the pack directory to write: a new or empty folder, or a pack to replace with --overwrite "
                        "(a folder holding anything else, or the source, is refused)")
    q.add_argument("--overwrite", action="store_true", help="replace the pack in --out when there is one")
    q.add_argument("--data", help="dataset name (default: inferred from SOURCE: npz, video_folder, frame_folder, "
                                  "tfrecord)")
    q.add_argument("--shards", type=int, default=4, help="number of shard files (default 4)")
    q.add_argument("--frame-step", type=int, help="take every Nth frame (dataset option frame_step)")
    q.add_argument("--fps", type=float, help="resample videos to this frame rate (dataset option fps)")
    q.add_argument("--format", default="png", choices=("png", "jpeg"),
                   help="frame encoding: png (lossless, default) or jpeg")
    q.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 1-100 (default 95)")
    q.add_argument("--seed", type=int, default=0, help="seed of the clip sampling (default 0)")
    q.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option clips_per_video=4")
    q.add_argument("--quiet", action="store_true", help="no progress line")
    _add_geometry(q, "the source's own: a .npz file's videos whole, a pack's geometry, a folder's size and "
                     "channels (refused when its files differ) with every frame of equally long videos, else 16 or "
                     "the shortest video's")
    q.set_defaults(func=cmd_data_pack)

    p = sub.add_parser("train", help="train a model with model.fit; ends with a preset in --out")
    p.add_argument("model", help="model name or preset name/directory (see `vidgen list`)")
    p.add_argument("--data", required=True, help="dataset name (see `vidgen list`)")
    p.add_argument("--path", help=PATH_HELP)
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option num_balls=1")
    _add_geometry(p)
    p.add_argument("--batch-size", type=int, default=16,
                   help="clips per update (default 16); a GAN step with n_critic > 1 loads n_critic times as many, "
                        "one batch for each critic update")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and noise (default 0)")
    p.add_argument("--lr", type=float, help="learning rate (default: the model's paper setting, e.g. "
                   "Adam 2e-4 for most GANs, RMSprop 5e-5 for TGAN, Adam 1e-3 for likelihood models)")
    p.add_argument("--loss", help="GAN loss: minimax, non_saturating, lsgan, wasserstein, wgan_gp, hinge")
    p.add_argument("--r1-weight", type=float, default=0.0,
                   help="GANs: weight of the R1 penalty on real clips (Mescheder et al. 2018; default 0: off)")
    p.add_argument("--class-weight", type=float,
                   help="conditional GANs whose discriminator classifies (e.g. MoCoGAN with num_classes): weight "
                        "of the auxiliary class cross-entropy in both players' losses (default 1)")
    p.add_argument("--ema-decay", type=float,
                   help="GANs: keep an exponential moving average of the generator with this decay (e.g. 0.999); "
                        "samples, presets and exports use it (default: none); video_diffusion: of its network "
                        "(default 0.999)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default min(steps, 100))")
    p.add_argument("--sample-every", type=int, default=0, help="steps between sample videos (0: only at the end)")
    p.add_argument("--num-samples", type=int, default=8, help="videos per sample grid (default 8)")
    p.add_argument("--log-every", type=int, default=10,
                   help="steps between lines of OUT/losses.jsonl, the losses the report plots (default 10)")
    p.add_argument("--out", help="output directory (default runs/MODEL)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model config value, e.g. --set content_dim=32")
    p.add_argument("--strategy", default="default",
                   help="distribution: default, mirrored (local GPUs or logical CPUs), multi_worker "
                        "(cluster from TF_CONFIG), tpu (default: default); --batch-size is the global batch")
    p.add_argument("--devices", help="for --strategy mirrored: comma-separated devices, e.g. /cpu:0,/cpu:1")
    p.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="Keras dtype policy (default float32); mixed_float16 scales every optimizer's loss")
    p.add_argument("--deterministic", action="store_true",
                   help="TensorFlow op determinism and initial weights seeded by --seed: a run repeats exactly")
    p.add_argument("--final-weights", metavar="PATH",
                   help="also write the final training state (model.save_weights) to PATH, on every worker")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write metrics every step and animated sample videos every --sample-every steps "
                        "(and at the end) for TensorBoard")
    p.add_argument("--no-dequantize", dest="dequantize", action="store_false",
                   help="train a continuous density on the 8-bit grid itself, without uniform dequantisation "
                        "(its bits/dim are then not comparable with 8-bit figures)")
    p.add_argument("--from-scratch", action="store_true",
                   help="start from fresh initial weights even when the preset ships trained ones "
                        "(a zoo card's recipe: the preset's own training)")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="do not write OUT/report.html (samples, curves, scores, config; see `vidgen report`)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    group = p.add_argument_group(
        "sample metrics during training",
        "every --metrics-every steps, --metrics-videos videos generated from fixed noise (seed --seed) are scored "
        "against as many real clips of --data (made once, seed 12345: the held-out seed of `vidgen eval`); one JSON "
        "line per evaluation goes to OUT/metrics.jsonl and scalars metrics/NAME to --tensorboard")
    _add_metric_options(group)
    group.add_argument("--metrics-every", type=int, metavar="N",
                       help="steps between sample metrics (default: --checkpoint-every)")
    group.add_argument("--metrics-videos", type=int, default=64, metavar="N",
                       help="generated and real videos per evaluation (default 64)")
    group.add_argument("--keep-best", metavar="METRIC",
                       help="one of --metrics: also keep the checkpoint of its best figure so far (lower is better, "
                            "higher for is) as OUT/checkpoints/best.weights.h5, with best.json (step and value)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval", help="held-out NLL and bits/dim of a likelihood model; sample metrics (--metrics) of any model",
        description="Scores a preset or a `vidgen train` output directory. A likelihood model (hmm, kvae, "
                    "video_vae) gets its held-out NLL and bits/dim; with --metrics, any model (GANs too) also gets "
                    "sample metrics: --num-videos videos generated from fixed noise (batches of --batch-size, batch k "
                    "from seed --seed + k, at the model's frame count) against --num-videos real clips of the "
                    "preset's dataset and options (seed --seed). Besides the distances, --metrics may name "
                    "precision, recall, density and coverage (k = 3 nearest-neighbour balls on FVD's clip features), "
                    "memorisation (each generated clip's distance to its nearest training clip against held-out "
                    "real clips'), and on moving digits `digits` (the digit read in each frame: how steadily each clip "
                    "draws one, and how many digits are drawn, beside real clips'). Progress lines with elapsed "
                    "seconds go to stderr.")
    p.add_argument("preset", help="preset name or directory (e.g. a `vidgen train --out` directory)")
    p.add_argument("--data", help="dataset name (default: the one the preset was trained on)")
    p.add_argument("--path", help=PATH_HELP + " (held-out data)")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option num_balls=1 (default: the preset's)")
    p.add_argument("--num-videos", type=int, default=256,
                   help="held-out videos, and generated and real videos for --metrics (default 256)")
    p.add_argument("--num-frames", type=int,
                   help="frames per held-out video for the NLL (default: the model's; --metrics use the model's)")
    p.add_argument("--batch-size", type=int, default=32, help="videos per evaluation or generation batch (default 32)")
    p.add_argument("--seed", type=int, default=12345,
                   help="seed of the held-out (real) videos, the dequantisation noise and, with --metrics, the "
                        "generation noise and frame offsets (default 12345, unlike training's 0)")
    p.add_argument("--no-dequantize", dest="dequantize", action="store_false",
                   help="score a continuous density on the 8-bit grid itself, without uniform dequantisation "
                        "(its bits/dim are then not comparable with 8-bit figures)")
    p.add_argument("--json", help="also write the figures to this JSON file (every score with its sample counts "
                                  "and feature network, the motion distances, seeds and the timings)")
    _add_metric_options(p)
    add_protocol_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="generate videos from a preset")
    p.add_argument("preset", help="preset name or directory")
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--frames", type=int, help="frames per video (any length for models that allow it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, help="class label for conditional models")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--scale", type=int, default=1, metavar="N",
                   help="enlarge every frame N times, nearest neighbour (default 1)")
    p.add_argument("--out", required=True, help="output file: .mp4, .gif or .npz")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "report", help="write an HTML report of a preset or a training run (samples, curves, scores, config)",
        description="Writes a self-contained HTML page (no network references) with its assets in a folder beside "
                    "it (report.html -> report_files/): sample videos from fixed noise as GIF and MP4, the training "
                    "curves of a run (OUT/losses.jsonl, OUT/metrics.jsonl and TensorBoard event files), the scores (eval.json, the "
                    "last sample metrics, metadata.json, the model card), the configuration and metadata.")
    p.add_argument("source", help="preset name or directory (e.g. a `vidgen train --out` directory)")
    p.add_argument("--out", default="report.html", help="the page to write (default report.html)")
    p.add_argument("--num", type=int, default=8,
                   help="sample videos (conditional models: num // classes per class, at least 1; default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample noise (default 0)")
    p.add_argument("--scale", type=int, metavar="N",
                   help="enlarge samples N times, nearest neighbour (default: to at least 96 pixels tall)")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--tensorboard", metavar="DIR", help="also read curves from this TensorBoard log directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report (page and assets folder) at --out when there is one")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "export", help="export a preset (or every zoo preset) to SavedModel (TF Serving) and ONNX, or for Triton",
        description="Writes OUT/<model>/<version>/ (SavedModel) and OUT/<model>.onnx for a preset, or "
                    "OUT/<preset>/<version>/ and OUT/<preset>.onnx for every zoo preset with --all-presets; adds or "
                    "updates each model's entry in OUT/models.config (TF Serving's model_config_list) and writes "
                    "OUT/batching.config when it is absent. --format triton makes OUT a Triton Inference Server "
                    "model repository instead: OUT/<model>/ (ONNX, onnxruntime_onnx) and OUT/<model>_tf/ "
                    "(SavedModel, tensorflow_savedmodel), each with its config.pbtxt.")
    p.add_argument("preset", nargs="?", help="preset name or directory (or --all-presets)")
    p.add_argument("--all-presets", action="store_true", help="export every preset of the zoo (`vidgen list`)")
    p.add_argument("--format", default="savedmodel,onnx",
                   help="savedmodel, onnx or both (default both), or triton (a Triton model repository at --out)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--version", type=int, default=1, help="SavedModel version (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing version (only one vidgen wrote)")
    p.add_argument("--base-path", metavar="PREFIX",
                   help="base_path prefix in models.config as the server sees OUT, e.g. /models for "
                        "`docker run -v OUT:/models` (default: OUT's absolute path)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "publish", help="make a trained run a zoo preset: its weights, scores, a sample GIF, the card's tables",
        description="Writes ZOO/NAME whole, atomically (an existing preset only with --overwrite): config, "
                    "weights (the run's best checkpoint by its --keep-best metric, or the final ones), metadata.json "
                    "with every score `vidgen eval` prints and a headline, sample.gif (fixed noise, enlarged 3x) and "
                    "README.md, whose text between the `vidgen publish` markers (training, recipe, scores, sample) is "
                    "rewritten.")
    p.add_argument("run", help="a `vidgen train --out` directory")
    p.add_argument("--name", required=True, help="the preset's folder name in the zoo")
    p.add_argument("--zoo", help="the zoo directory (default: the package's, as `vidgen list` shows)")
    p.add_argument("--weights", choices=("best", "final"), default="best",
                   help="the best checkpoint (when the run kept one) or the final weights (default best)")
    p.add_argument("--metrics", help=f"sample metrics to score (default {DEFAULT_PUBLISH_METRICS}, and digits for a moving_digits preset; '' for none)")
    p.add_argument("--num-videos", type=int, default=512, help="held-out videos scored (default 512)")
    p.add_argument("--seed", type=int, default=1, help="seed of the held-out videos and noise (default 1)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="leave out the replay ladder (`vidgen eval --baselines`) the card shows beside the scores")
    p.add_argument("--recipe", action="append", metavar="COMMAND",
                   help="the training command(s) for the card, when the run did not record them")
    p.add_argument("--description", help="the one line `vidgen list` shows (default: the zoo's current one)")
    p.add_argument("--headline", help="the score `vidgen list` shows (default: bits_per_dim, else fvd, else motion)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the zoo's preset NAME when it exists (its card's hand-written text is kept)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "quickstart", help="samples from the trained MoCoGAN preset, a short fine-tune that resumes, exports, a report",
        description="Generates 24-frame videos from the trained mocogan_moving_digits preset (GIF and MP4, "
                    "enlarged), fine-tunes it on moving_digits for --steps steps in two runs (the second resumes "
                    "from the first's checkpoint), exports the result to SavedModel and ONNX (parity checked) "
                    "and writes its report; prints where every file went.")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--preset", default="mocogan_moving_digits", help="the preset to start from")
    p.add_argument("--steps", type=int, default=100, help="fine-tuning steps in all, >= 2 (default 100)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_quickstart)

    # --verbose is taken before or after the subcommand.
    verbose_help = "show TensorFlow's log lines, and on an error its traceback"
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    for command in (*sub.choices.values(), *data_sub.choices.values()):
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    return parser


@contextlib.contextmanager
def _unfiltered_tracebacks():
    """Keeps Keras's and TensorFlow's own frames in tracebacks (both cut them
    by default), so that an error shows where it was raised."""
    import keras
    import tensorflow as tf

    was = keras.config.is_traceback_filtering_enabled(), tf.debugging.is_traceback_filtering_enabled()
    keras.config.disable_traceback_filtering()
    tf.debugging.disable_traceback_filtering()
    try:
        yield
    finally:
        if was[0]:
            keras.config.enable_traceback_filtering()
        if was[1]:
            tf.debugging.enable_traceback_filtering()


def _innermost_frame(error):
    """The frame that raised `error` (the last of its traceback), or None."""
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    return None if trace is None else trace.tb_frame


def _raised_by_vidgen_tf(error):
    frame = _innermost_frame(error)
    return frame is not None and PACKAGE_DIR in Path(frame.f_code.co_filename).resolve().parents


def is_input_error(error):
    """Whether `error` is the user's bad input (exit 2) rather than a failure (exit 1).

    Bad input wherever it is raised: `UsageError`, an unknown model, preset,
    dataset or loss name (`UnknownNameError`), a missing or already existing
    file. A `ValueError`, `TypeError` or `KeyError` is bad input when
    vidgen_tf's own checks raised it (the innermost frame of its traceback is
    in the vidgen_tf package): a `--set` value the model refuses, a data file
    its reader rejects. The same types raised inside TensorFlow, Keras or
    another library are failures.

    Args:
        error: BaseException. The error `main` caught.
    """
    from vidgen_tf.registry import UnknownNameError

    if isinstance(error, (UsageError, UnknownNameError, FileNotFoundError, FileExistsError)):
        return True
    return isinstance(error, (ValueError, TypeError, KeyError)) and _raised_by_vidgen_tf(error)


def _message(error):
    # str() of a KeyError quotes its message.
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    # A failed assertion in a TensorFlow graph (a corrupt TFRecord shard, a label out of range) says what is wrong
    # in its one line; the graph's node, iterator and stack lines around it only name TensorFlow's machinery.
    lines = [line for line in text.splitlines() if "assertion failed: " in line]
    if len(lines) == 1 and type(error).__module__.startswith("tensorflow"):
        assertion = lines[0].split("assertion failed: ", 1)[1].strip()
        if assertion.startswith("[") and assertion.endswith("]") and assertion.count("[") == 1:
            assertion = assertion[1:-1]
        return f"assertion failed: {assertion}"
    return text


# The arguments that name a file or folder a command writes: each gets its missing parent folders.
OUTPUT_ARGUMENTS = ("out", "json")


@contextlib.contextmanager
def _output_parents(args):
    """Makes the missing parent folders of every output argument for the command's run (`report --out
    new/report.html` works as `data pack` always did); when the command fails, the folders it made are
    taken away again as far as they are empty (`atomic.new_directory`)."""
    from vidgen_tf import atomic

    with contextlib.ExitStack() as stack:
        for name in OUTPUT_ARGUMENTS:
            value = getattr(args, name, None)
            if not isinstance(value, str) or not value or "://" in value:
                continue  # unset, or a remote URL: the filesystem there makes its own folders
            parent = Path(value).expanduser().parent
            if not parent.exists():
                stack.enter_context(atomic.new_directory(parent))
        yield


def main(argv=None):
    words = sys.argv[1:] if argv is None else [str(a) for a in argv]
    _import_tensorflow(verbose="--verbose" in words)
    _quiet_tensorflow()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command as typed (`vidgen train` records it in the preset: a card's recipe).
    args.command_line = "vidgen " + shlex.join(sys.argv[1:] if argv is None else [str(a) for a in argv])
    args.vidgen_main = main  # for the commands that run others (quickstart, publish): none imports its caller
    from vidgen_tf.atomic import NoSpaceError
    from vidgen_tf.callbacks import TrainingDivergedError

    try:
        with _unfiltered_tracebacks(), _output_parents(args):
            return args.func(args) or 0
    except Exception as error:  # noqa: BLE001 - every failure gets a message and an exit code
        if args.verbose:
            traceback.print_exception(error, file=sys.stderr)
        # The run failed for a reason its message says whole (a full disk names the file and its directory).
        if isinstance(error, (TrainingDivergedError, NoSpaceError)):
            print(f"vidgen: error: {error}", file=sys.stderr)
            return EXIT_FAILURE
        if is_input_error(error):
            print(f"vidgen: error: {_message(error)}", file=sys.stderr)
            return EXIT_USAGE
        frame = _innermost_frame(error)
        where = f" in {frame.f_globals.get('__name__', frame.f_code.co_filename)}" if frame is not None else ""
        print(f"vidgen: error: {type(error).__name__}{where}: {_message(error)}", file=sys.stderr)
        if not args.verbose:
            print("vidgen: run again with --verbose for the traceback", file=sys.stderr)
        return EXIT_FAILURE
