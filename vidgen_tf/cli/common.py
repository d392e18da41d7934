"""What the subcommands share: the usage error, exit codes, argument helpers, TensorFlow's quieting (the parser
and `main` are `vidgen_tf.cli.main`'s)."""

import json
import logging
import os
import sys
import warnings
from pathlib import Path

EXIT_USAGE = 2  # the user's input is wrong: see `vidgen_tf.cli.main.is_input_error`
EXIT_FAILURE = 1  # the run failed: training diverged, a full disk, or an error inside a library
# The vidgen_tf package: errors raised by its own checks are input errors.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """Bad command-line input: printed as `vidgen: error: ...`, exit code 2."""


def _import_tensorflow(verbose):
    """Imports TensorFlow (and Keras) for a command; without `--verbose`, with none of its log lines.

    TensorFlow's C++ start-up lines (oneDNN, CUDA, "All log messages before absl::InitializeLog()")
    are written to file descriptor 2 while its libraries load, before any log level applies, so
    they are caught there: stderr points at a temporary file during the import and is put back
    after; if the import fails, what was caught is printed with the error. `TF_CPP_MIN_LOG_LEVEL=3`
    keeps later C++ lines (Grappler, device set-up) away, and the Python loggers of TensorFlow,
    absl and tf2onnx are set to errors only. With `--verbose` nothing is hidden.
    """
    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel(logging.ERROR)
    for name in ("absl", "tensorflow", "tf2onnx", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _quiet_tensorflow():
    # tf.data pipelines are shuffled by the dataset itself; Keras's note about it is noise here.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")


def _parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_pairs(pairs, flag):
    """`{key: value}` from repeated `flag key=value` arguments (values parsed as JSON when they can be)."""
    parsed = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"{flag} expects key=value, got '{pair}'.")
        key, value = pair.split("=", 1)
        parsed[key.strip().replace("-", "_")] = _parse_value(value)
    return parsed


def _data_options(args):
    """Dataset options from `--data-option key=value` (e.g. num_balls=1) and `--path`."""
    options = _parse_pairs(getattr(args, "data_option", None), "--data-option")
    if getattr(args, "path", None):
        options["path"] = args.path
    return options


def _add_geometry(parser, defaults_note="the model's defaults"):
    group = parser.add_argument_group("video shape (defaults: " + defaults_note + ")")
    group.add_argument("--num-frames", type=int, help="frames per video")
    group.add_argument("--height", type=int, help="frame height in pixels")
    group.add_argument("--width", type=int, help="frame width in pixels")
    group.add_argument("--channels", type=int, choices=(1, 3), help="1 (grey) or 3 (RGB)")


def _geometry(args):
    return {
        key: value
        for key, value in (
            ("num_frames", args.num_frames), ("height", args.height),
            ("width", args.width), ("channels", args.channels),
        )
        if value is not None
    }


METRICS_HELP = ("comma-separated sample metrics: fvd, kvd (a video feature network), fid, kid (a per-frame one), "
                "is (class outputs: of a --feature-net declared with --feature-kind logits or probabilities, or the "
                "built-in network's classes of the scored dataset), motion (distances of motion statistics to the real "
                "clips; synthetic datasets only)")
FEATURE_NET_HELP = ("SavedModel directory of the feature network for fvd/kvd/fid/kid/is (e.g. an I3D Kinetics-400 "
                    "export; nothing is downloaded): TF2 (serving_default) or TF1-Hub format (tags [], signature "
                    "default, output default, as i3d-kinetics-400/1), called on float32 clips (B, F, H, W, 3) in "
                    "[-1, 1], or frames (B, H, W, 3) without --feature-frames; needs --feature-input-size or "
                    "--feature-spec. METRIC=DIR gives one metric its own network (repeat the flag: --feature-net "
                    "fvd=I3D --feature-net fid=INCEPTION); metrics without one use the built-in network")
# Every --feature-* flag but --feature-net describes the network(s): a bare value holds for every network,
# METRIC=VALUE for that metric's.
FEATURE_FLAGS = {
    "feature_input_size": ("--feature-input-size", "[METRIC=]HxW",
                           "frame size the --feature-net reads, e.g. 224x224 (frames are resized bilinearly)"),
    "feature_frames": ("--feature-frames", "[METRIC=]N",
                       "consecutive frames per clip the --feature-net reads (a video network, for fvd/kvd); "
                       "without it the network reads single frames (for fid/kid)"),
    "feature_signature": ("--feature-signature", "[METRIC=]NAME",
                          "SavedModel signature to call (default: serving_default, else default)"),
    "feature_output": ("--feature-output", "[METRIC=]KEY",
                       "output of the signature holding the features (default: its only one)"),
    "feature_range": ("--feature-range", "[METRIC=]LOW,HIGH", "input value range of the network (default -1,1)"),
    "feature_kind": ("--feature-kind", "[METRIC=]KIND",
                     "what the network gives: features (default; fvd/kvd/fid/kid only), logits or probabilities "
                     "(class outputs: also is); declared, never guessed"),
    "feature_resize": ("--feature-resize", "[METRIC=]RULE",
                       "frame resize rule: bilinear (default; half-pixel centres, as StyleGAN-V, cd-FVD, TF-GAN) or "
                       "tf1 (google-research's tf.compat.v1.image.resize_bilinear)"),
    "feature_spec": ("--feature-spec", "[METRIC=]NAME",
                     "a reference network the --feature-net is checked against and that sets its input: "
                     "i3d-kinetics-400 (16x224x224 in [-1, 1], 400 logits; 2048 clips per set)"),
}


def _add_metric_options(parser):
    """--metrics and the feature-network options, shared by `train` and `eval`."""
    parser.add_argument("--metrics", metavar="LIST", help=METRICS_HELP)
    parser.add_argument("--feature-net", metavar="[METRIC=]DIR", action="append", help=FEATURE_NET_HELP)
    for dest, (flag, metavar, text) in FEATURE_FLAGS.items():
        parser.add_argument(flag, dest=dest, metavar=metavar, action="append", help=text)


def _metric_names(args):
    """The metrics of `--metrics` (a tuple, empty without it); an unknown one is named."""
    from vidgen_tf.callbacks import check_metric_names

    if not getattr(args, "metrics", None):
        if getattr(args, "feature_net", None):
            raise UsageError("--feature-net is used by --metrics; give --metrics too (e.g. --metrics fvd).")
        return ()
    names = [name for name in args.metrics.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--metrics expects a comma-separated list of metrics, got '{args.metrics}'.")
    return check_metric_names(names, kind="metric (--metrics)")


def _check_motion_dataset(metric_names, dataset):
    from vidgen_tf.data import synthetic

    if "motion" in metric_names and dataset not in synthetic.GENERATORS:
        raise UsageError(
            f"--metrics motion needs a dataset whose true motion is known ({', '.join(sorted(synthetic.GENERATORS))});"
            f" {dataset} has none: leave motion out, or score with fvd/kvd/fid/kid/is."
        )


def _per_metric(flag, values):
    """`{metric or None: value}` of a repeatable `[METRIC=]VALUE` flag (None: every metric)."""
    from vidgen_tf.callbacks import SAMPLE_METRICS

    found = {}
    for value in values or ():
        key, sep, rest = value.partition("=")
        metric = key.strip().lower() if sep and key.strip().lower() in SAMPLE_METRICS else None
        if metric == "motion":
            raise UsageError(f"{flag} {value}: the motion metric reads no feature network.")
        text = rest if metric else value
        if metric in found:
            raise UsageError(f"{flag} is given twice for {metric or 'every metric'}: '{found[metric]}' and '{text}'.")
        found[metric] = text
    return found


def _feature_network(args):
    """The feature networks of `--feature-net` and its `--feature-*` flags.

    Returns None without `--feature-net` (the built-in networks), else
    `{metric: FeatureNetwork}` for the metrics of `--metrics` given a
    network (a bare DIR: all of them); the others use the built-in one.
    """
    from vidgen_tf.callbacks import SAMPLE_METRICS

    nets = _per_metric("--feature-net", getattr(args, "feature_net", None))
    settings = {dest: _per_metric(flag, getattr(args, dest, None)) for dest, (flag, _, _) in FEATURE_FLAGS.items()}
    if not nets:
        given = [FEATURE_FLAGS[dest][0] for dest, values in settings.items() if values]
        if given:
            raise UsageError(f"{' and '.join(given)} describe a --feature-net; give it too.")
        return None
    metric_names = [m for m in _metric_names(args) if SAMPLE_METRICS.get(m)]
    for metric in nets:
        if metric is not None and metric not in metric_names:
            raise UsageError(f"--feature-net {metric}={nets[metric]}: {metric} is not among --metrics "
                             f"{','.join(_metric_names(args))}.")
    served = [m for m in metric_names if m in nets or None in nets]
    for dest, values in settings.items():
        for metric in values:
            if metric is not None and metric not in served:
                raise UsageError(f"{FEATURE_FLAGS[dest][0]} {metric}=...: {metric} has no --feature-net.")
    loaded, networks = {}, {}
    for metric in served:
        path = nets.get(metric, nets.get(None))
        chosen = {dest: values.get(metric, values.get(None)) for dest, values in settings.items()}
        key = (path, tuple(sorted(chosen.items())))
        if key not in loaded:
            loaded[key] = _load_feature_net(path, chosen)
        networks[metric] = loaded[key]
    return networks


def _load_feature_net(path, chosen):
    """One `FeatureNetwork` of `--feature-net` PATH with its `--feature-*` values (strings or None)."""
    from vidgen_tf.metrics import REFERENCE_NETWORKS, load_feature_network
    from vidgen_tf.metrics.features import KINDS, RESIZE_METHODS

    spec = chosen["feature_spec"]
    if spec is not None and spec not in REFERENCE_NETWORKS:
        raise UsageError(f"--feature-spec expects one of {', '.join(REFERENCE_NETWORKS)}, got '{spec}'.")
    input_size = None
    if chosen["feature_input_size"] is not None:
        parts = chosen["feature_input_size"].lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise UsageError(f"--feature-input-size expects HxW, e.g. 224x224, got '{chosen['feature_input_size']}'.")
        input_size = tuple(int(p) for p in parts)
    elif spec is None:
        raise UsageError(f"--feature-net {path} needs --feature-input-size HxW (e.g. 224x224): the frame "
                         "size the network reads (or --feature-spec i3d-kinetics-400).")
    frames = chosen["feature_frames"]
    if frames is not None:
        if not frames.strip().isdigit() or int(frames) < 1:
            raise UsageError(f"--feature-frames must be >= 1, got {frames}.")
        frames = int(frames)
    value_range = None
    if chosen["feature_range"] is not None:
        try:
            value_range = tuple(float(v) for v in chosen["feature_range"].split(","))
        except ValueError:
            value_range = ()
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise UsageError(f"--feature-range expects LOW,HIGH with LOW < HIGH, e.g. -1,1, got "
                             f"'{chosen['feature_range']}'.")
    kind = chosen["feature_kind"]
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--feature-kind expects one of {', '.join(KINDS)}, got '{kind}'.")
    resize = chosen["feature_resize"] or "bilinear"
    if resize not in RESIZE_METHODS:
        raise UsageError(f"--feature-resize expects one of {', '.join(RESIZE_METHODS)}, got '{resize}'.")
    try:
        return load_feature_network(path, input_size=input_size, num_frames=frames, value_range=value_range,
                                    output=chosen["feature_output"], kind=kind, signature=chosen["feature_signature"],
                                    resize=resize, reference=spec)
    except ValueError as error:
        raise UsageError(f"--feature-net {path}: {error}") from error


PATH_HELP = ("input file (npz) or folder (video_folder, frame_folder, tfrecord) of the dataset; a tfrecord pack may "
             "also be a URL (gs://..., s3://... with the io extra)")
