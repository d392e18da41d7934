"""The `vidgen` command: list, data preview, train, eval, generate, export, quickstart."""

import argparse
import inspect
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: printed as `vidgen: error: ...`, exit code 2."""


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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


# ---------------------------------------------------------------------- list
def cmd_list(args):
    import vidgen_tf
    from vidgen_tf import data, presets

    print("models:")
    for name in vidgen_tf.list_models():
        cls = vidgen_tf.registry.get_model_class(name)
        summary = (inspect.getdoc(cls) or "").splitlines()[0]
        print(f"  {name:<12} {summary}")
    print("presets:")
    names = presets.list_presets()
    if not names:
        print("  (none)")
    for name in names:
        model_name, config, metadata = presets.load_preset_config(name)
        shape = "x".join(str(config.get(k, "?")) for k in ("num_frames", "height", "width", "channels"))
        trained = f"trained {metadata.get('training_steps', 0)} steps" if metadata.get("training_steps") else "untrained"
        print(f"  {name:<28} {model_name:<10} {shape:<12} {trained}")
    print("datasets:")
    for name in data.list_datasets():
        print(f"  {name}")
    return 0


# ---------------------------------------------------------------------- data
def cmd_data_preview(args):
    from vidgen_tf import data, video_io

    geometry = {"num_frames": 16, "height": 64, "width": 64, "channels": 1, **_geometry(args)}
    options = _data_options(args)
    start = time.time()
    videos = data.make_videos(args.dataset, args.num, seed=args.seed, **geometry, **options)
    if isinstance(videos, tuple):
        videos = videos[0]
    path = video_io.write_video(args.out, videos, fps=args.fps)
    print(f"wrote {path} ({len(videos)} videos of {videos.shape[1]} frames, {videos.shape[2]}x{videos.shape[3]}, "
          f"{time.time() - start:.1f}s)")
    return 0


# --------------------------------------------------------------------- train
def _model_defaults(cls):
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _resolve_model(spec, overrides):
    """`(model_name, config, weights_path_or_None)` from a model or preset name."""
    import vidgen_tf
    from vidgen_tf import presets, registry

    if spec in vidgen_tf.list_models():
        cls = registry.get_model_class(spec)
        config = {k: v for k, v in _model_defaults(cls).items() if k != "kwargs"}
        config.update(overrides)
        return spec, config, None
    try:
        directory = presets.resolve_preset(spec)
    except KeyError:
        known = vidgen_tf.list_models() + presets.list_presets()
        raise registry.unknown_name_error("model or preset", spec, known) from None
    model_name, config, _ = presets.load_preset_config(directory)
    config.update(overrides)
    weights = directory / presets.WEIGHTS_FILE
    return model_name, config, weights if weights.is_file() else None


def _compile(model, args):
    from vidgen_tf.adversarial import AdversarialModel

    if isinstance(model, AdversarialModel):
        model.compile(
            g_optimizer=model.make_optimizer(args.lr),
            d_optimizer=model.make_optimizer(args.lr),
            loss=args.loss,
            seed=args.seed,
        )
    else:
        if args.loss:
            raise UsageError(f"--loss applies to GANs; {model.registered_name} is trained by likelihood.")
        model.compile(optimizer=model.make_optimizer(args.lr))


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _set_determinism(enabled):
    """Turns TensorFlow's op determinism on or off (the off switch is not public API)."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if enabled:
        tf.config.experimental.enable_op_determinism()
    elif hasattr(tf_config, "disable_op_determinism"):
        tf_config.disable_op_determinism()


def cmd_train(args):
    _quiet_tensorflow()
    import keras

    from vidgen_tf import distribute

    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}.")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}.")
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    # The strategy comes before any other TensorFlow work: MultiWorkerMirroredStrategy
    # configures collective ops, which must happen before the runtime starts.
    strategy = distribute.get_strategy(args.strategy, devices=devices or None)
    # Process-wide settings are put back afterwards: `main` also runs in-process (tests, quickstart).
    previous_policy = keras.mixed_precision.global_policy()
    if args.deterministic:
        _set_determinism(True)
    try:
        # Before the model is built: layers read the global policy when they are made.
        keras.mixed_precision.set_global_policy(args.precision)
        return _train(args, strategy)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if args.deterministic:
            _set_determinism(False)


def _train(args, strategy):
    import keras

    import vidgen_tf
    from vidgen_tf import callbacks as vcallbacks
    from vidgen_tf import data, distribute

    if args.data not in data.list_datasets():
        raise vidgen_tf.registry.unknown_name_error("dataset", args.data, data.list_datasets())
    distribute.check_global_batch(args.batch_size, strategy)
    checkpoint_every = args.checkpoint_every or min(args.steps, 100)
    if checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {checkpoint_every}.")
    overrides = {**_geometry(args), **_parse_pairs(args.set, "--set")}
    model_name, config, weights = _resolve_model(args.model, overrides)
    out = Path(args.out or f"runs/{model_name}")
    # Only the chief writes into `out`; other workers of a cluster write the
    # same files into a temporary directory, removed at the end.
    location = distribute.WriteLocation(out, strategy)
    try:
        location.path.mkdir(parents=True, exist_ok=True)
        if args.deterministic:
            keras.utils.set_random_seed(args.seed)  # the same initial weights on every run
        with strategy.scope():
            model = vidgen_tf.build(model_name, **config)
            if weights is not None:
                model.load_weights(weights)
            _compile(model, args)
            # Every worker resumes from the chief's checkpoints (the output
            # directory must be shared by the workers of a cluster).
            start_step = vcallbacks.StepCheckpoint(out / "checkpoints").restore(model)
        distribute.prepare_model(model, strategy)
        checkpoint = vcallbacks.StepCheckpoint(location.path / "checkpoints")
        checkpoint.step = start_step
        # Generated data is addressed by batch index, so starting at the batch
        # after the last one trained on continues the same stream, without
        # generating the skipped batches again. `--batch-size` is the
        # global batch: each replica gets its share of every batch.
        dataset = data.load(
            args.data,
            num_frames=model.num_frames, height=model.height, width=model.width, channels=model.channels,
            batch_size=args.batch_size, seed=args.seed, with_labels=bool(model.num_classes),
            drop_remainder=True, start_batch=start_step, **_data_options(args),
        )
        dataset = distribute.shard_dataset(dataset)
        samples = vcallbacks.SampleWriter(location.path / "samples", args.sample_every, num=args.num_samples,
                                          seed=args.seed, initial_step=start_step)
        # Training callbacks, in order: the divergence guard first, so a NaN
        # step raises before anything else sees it (the checkpoints on disk
        # stay the last good ones); then the checkpoint, so later ones see a
        # saved state.
        callbacks = [vcallbacks.DivergenceGuard(start_step, checkpoint_dir=out / "checkpoints"), checkpoint, samples,
                     vcallbacks.StopAtStep(args.steps, start_step)]
        if args.tensorboard:
            log_dir = Path(args.tensorboard) if location.chief else location.path / "tensorboard"
            callbacks.append(vcallbacks.VideoSummary(log_dir, args.sample_every, num=args.num_samples,
                                                     seed=args.seed, initial_step=start_step))
        if location.chief and not args.quiet:
            callbacks.append(vcallbacks.ProgressPrinter(args.steps, start_step))
        history = None
        replicas = strategy.num_replicas_in_sync
        where = f" on {replicas} replicas ({args.strategy})" if args.strategy != "default" else ""
        if start_step >= args.steps:
            print(f"{out} already holds a checkpoint at step {start_step} >= --steps {args.steps}; nothing to train.")
        else:
            if location.chief:
                print(f"training {model_name} on {args.data} for {args.steps} steps{where} "
                      f"(from step {start_step}; checkpoints every {checkpoint_every} in {out / 'checkpoints'})",
                      flush=True)
            history = model.fit(
                dataset,
                epochs=math.ceil((args.steps - start_step) / checkpoint_every),
                steps_per_epoch=checkpoint_every,
                callbacks=callbacks,
                verbose=0 if args.quiet or not location.chief else 1 if sys.stdout.isatty() else 2,
            )
        data_options = _parse_pairs(args.data_option, "--data-option")
        extra = {"data_options": data_options} if data_options else {}
        if args.precision != "float32":
            extra["precision"] = args.precision
        vidgen_tf.save_preset(model, location.path, dataset=args.data, training_steps=max(start_step, args.steps),
                              description=f"{model_name} trained by `vidgen train` on {args.data}", **extra)
        if args.final_weights:
            Path(args.final_weights).parent.mkdir(parents=True, exist_ok=True)
            model.save_weights(args.final_weights)
    finally:
        location.cleanup()
    if not location.chief:
        return 0
    if history is not None and history.history:
        final = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
        print("final metrics:", json.dumps(final))
    for path in samples.written[-len(samples.formats):]:
        print(f"samples: {path}")
    print(f"preset: {out} (load with vidgen_tf.from_preset('{out}'))")
    return 0


# ------------------------------------------------------------------ generate
def cmd_generate(args):
    _quiet_tensorflow()
    import vidgen_tf
    from vidgen_tf import video_io

    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}.")
    model = vidgen_tf.from_preset(args.preset)
    labels = None
    if args.label is not None:
        labels = [args.label] * args.num
    elif model.num_classes:
        labels = [i % model.num_classes for i in range(args.num)]
    videos = model.generate(args.num, seed=args.seed, num_frames=args.frames, labels=labels)
    path = video_io.write_video(args.out, videos.numpy(), fps=args.fps)
    print(f"wrote {path} ({args.num} videos of {videos.shape[1]} frames)")
    return 0


# ---------------------------------------------------------------------- eval
def cmd_eval(args):
    """Held-out NLL and bits/dim of a likelihood model's preset."""
    _quiet_tensorflow()
    import vidgen_tf
    from vidgen_tf import data, presets
    from vidgen_tf.likelihood import LikelihoodModel

    if args.num_videos < 1 or args.batch_size < 1:
        raise UsageError("--num-videos and --batch-size must be >= 1.")
    model = vidgen_tf.from_preset(args.preset)
    if not isinstance(model, LikelihoodModel):
        raise UsageError(
            f"vidgen eval scores likelihood models; {model.registered_name} is a GAN and has no likelihood."
        )
    metadata = presets.load_preset_config(args.preset)[2]
    name = args.data or metadata.get("dataset")
    if name is None:
        raise UsageError(f"the preset {args.preset} does not say what it was trained on: give --data.")
    if name not in data.list_datasets():
        raise vidgen_tf.registry.unknown_name_error("dataset", name, data.list_datasets())
    # The preset's dataset options (e.g. num_balls=1) hold unless another dataset or options are given.
    same_data = name == metadata.get("dataset") and not args.data_option
    options = {**(metadata.get("data_options", {}) if same_data else {}), **_data_options(args)}
    # Continuous densities on 8-bit data are scored on dequantised videos, so
    # their bits/dim bound the 8-bit data's (see vidgen_tf.likelihood).
    dequantize = not model.likelihood_is_discrete
    model.compile(dequantize=dequantize, seed=args.seed)
    videos = data.load(
        name, num_frames=args.num_frames or model.num_frames, height=model.height, width=model.width,
        channels=model.channels, batch_size=args.batch_size, seed=args.seed, num_videos=args.num_videos,
        drop_remainder=False, **options,
    )
    results = model.evaluate(videos, verbose=0, return_dict=True)
    kind = "negative ELBO, an upper bound on the NLL" if model.log_prob_is_bound else "exact"
    space = "" if model.likelihood_space == "pixels" else f", per dimension of its {model.likelihood_space} space"
    report = {
        "model": model.registered_name, "dataset": name, "data_options": options, "num_videos": args.num_videos,
        "seed": args.seed, "nll_nats_per_video": float(results["nll"]), "bits_per_dim": float(results["bits_per_dim"]),
        "bound": bool(model.log_prob_is_bound), "dequantized": dequantize,
    }
    print(f"held-out: {args.num_videos} videos of {name} (seed {args.seed}), "
          f"{args.num_frames or model.num_frames}x{model.height}x{model.width}x{model.channels}")
    print(f"nll: {report['nll_nats_per_video']:.3f} nats per video ({kind})")
    print(f"bits/dim: {report['bits_per_dim']:.4f}" + (" (upper bound)" if model.log_prob_is_bound else "")
          + (" (dequantised, 8-bit units)" if dequantize else " (probability mass, no correction)") + space)
    if args.json:
        presets._write_json(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0


# -------------------------------------------------------------------- export
def cmd_export(args):
    _quiet_tensorflow()
    import vidgen_tf

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"savedmodel", "onnx"})
    if unknown or not formats:
        raise UsageError(f"--format takes savedmodel and/or onnx, got {args.format!r}.")
    model = vidgen_tf.from_preset(args.preset)
    out = Path(args.out)
    savedmodel_dir = None
    if "savedmodel" in formats:
        savedmodel_dir = vidgen_tf.export_savedmodel(model, out, version=args.version, overwrite=args.overwrite)
        print(f"savedmodel: {savedmodel_dir}")
    if "onnx" in formats:
        path = out / f"{model.registered_name}.onnx"
        vidgen_tf.export_onnx(model, path, savedmodel_dir=savedmodel_dir)
        parity = json.loads(Path(f"{path}.parity.json").read_text())
        print(f"onnx: {path} (max |diff| vs SavedModel: float {parity['max_abs_diff_float']:.2e}, "
              f"uint8 {parity['max_abs_diff_uint8']}; {path}.parity.json)")
    return 0


# ---------------------------------------------------------------- quickstart
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
        print("$ vidgen " + " ".join(command), flush=True)
        code = main(command)
        if code:
            return code
    return 0


# ---------------------------------------------------------------------- main
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
    q.add_argument("--path", help="input file for the npz dataset")
    q.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option num_balls=1")
    _add_geometry(q, "16 frames, 64x64, 1 channel")
    q.set_defaults(func=cmd_data_preview)

    p = sub.add_parser("train", help="train a model with model.fit; ends with a preset in --out")
    p.add_argument("model", help="model name or preset name/directory (see `vidgen list`)")
    p.add_argument("--data", required=True, help="dataset name (see `vidgen list`)")
    p.add_argument("--path", help="input file for the npz dataset")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option num_balls=1")
    _add_geometry(p)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and noise (default 0)")
    p.add_argument("--lr", type=float, help="learning rate (default: the model's paper setting, e.g. "
                   "Adam 2e-4 for most GANs, RMSprop 5e-5 for TGAN, Adam 1e-3 for likelihood models)")
    p.add_argument("--loss", help="GAN loss: minimax, non_saturating, lsgan, wasserstein, wgan_gp, hinge")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default min(steps, 100))")
    p.add_argument("--sample-every", type=int, default=0, help="steps between sample videos (0: only at the end)")
    p.add_argument("--num-samples", type=int, default=8, help="videos per sample grid (default 8)")
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
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="held-out NLL and bits/dim of a likelihood model's preset")
    p.add_argument("preset", help="preset name or directory of a likelihood model (hmm, kvae, video_vae)")
    p.add_argument("--data", help="dataset name (default: the one the preset was trained on)")
    p.add_argument("--path", help="input file for the npz dataset (a held-out file)")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-option num_balls=1 (default: the preset's)")
    p.add_argument("--num-videos", type=int, default=256, help="held-out videos (default 256)")
    p.add_argument("--num-frames", type=int, help="frames per video (default: the model's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=12345,
                   help="seed of the held-out videos and dequantisation noise (default 12345, unlike training's 0)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="generate videos from a preset")
    p.add_argument("preset", help="preset name or directory")
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--frames", type=int, help="frames per video (any length for models that allow it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, help="class label for conditional models")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--out", required=True, help="output file: .mp4, .gif or .npz")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="export a preset to SavedModel (TF Serving) and ONNX")
    p.add_argument("preset", help="preset name or directory")
    p.add_argument("--format", default="savedmodel,onnx", help="savedmodel, onnx or both (default both)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--version", type=int, default=1, help="SavedModel version (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quickstart", help="train the small MoCoGAN preset, write samples, export it")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_quickstart)
    return parser


def main(argv=None):
    _quiet_tensorflow()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    from vidgen_tf.callbacks import TrainingDivergedError

    try:
        return args.func(args) or 0
    except TrainingDivergedError as error:
        print(f"vidgen: error: {error}", file=sys.stderr)
        return 1
    except (UsageError, KeyError, ValueError, FileNotFoundError, FileExistsError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"vidgen: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
