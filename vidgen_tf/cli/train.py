"""`vidgen train`: a model or preset trained with `model.fit`; ends with a preset in `--out`."""

import contextlib
import inspect
import json
import math
import sys
import time
from pathlib import Path

from vidgen_tf.cli.common import (
    UsageError,
    _check_motion_dataset,
    _data_options,
    _feature_network,
    _geometry,
    _metric_names,
    _parse_pairs,
    _quiet_tensorflow,
)

# The seed of the real clips the sample metrics compare with: `vidgen eval`'s held-out seed.
METRICS_REAL_SEED = 12345


def _model_defaults(cls):
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _config_keys(cls):
    """The configuration values a model class takes: its constructor's
    arguments and those of its vidgen_tf base classes (reached through `**kwargs`)."""
    from vidgen_tf.base import VideoModel

    keys = set()
    for klass in cls.__mro__:
        if isinstance(klass, type) and issubclass(klass, VideoModel):
            keys.update(
                name for name, p in inspect.signature(klass.__init__).parameters.items()
                if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            )
    return keys


def _check_overrides(model_name, overrides):
    from vidgen_tf import registry

    known = _config_keys(registry.get_model_class(model_name))
    for key in overrides:
        if key not in known:
            raise registry.unknown_name_error(f"{model_name} configuration value (--set)", key, known)


def _resolve_model(spec, overrides, from_scratch=False):
    """`(model_name, config, weights_path_or_None)` from a model or preset name.

    A preset whose metadata records training must have its weights file, unless
    `from_scratch` (`--from-scratch`) asks for fresh initial weights.
    """
    import vidgen_tf
    from vidgen_tf import presets, registry

    if spec in vidgen_tf.list_models():
        _check_overrides(spec, overrides)
        cls = registry.get_model_class(spec)
        config = {k: v for k, v in _model_defaults(cls).items() if k != "kwargs"}
        config.update(overrides)
        return spec, config, None
    try:
        directory = presets.resolve_preset(spec)
    except KeyError:
        known = vidgen_tf.list_models() + presets.list_presets()
        raise registry.unknown_name_error("model or preset", spec, known) from None
    model_name, config, metadata = presets.load_preset_config(directory)
    _check_overrides(model_name, overrides)
    config.update(overrides)
    if from_scratch:
        return model_name, config, None  # the preset's configuration, fresh initial weights
    return model_name, config, presets.weights_file(directory, metadata)


def _compile(model, args):
    from vidgen_tf.adversarial import AdversarialModel

    # Options a caller's own namespace may leave out (tests, scripts) take the parser's defaults.
    r1_weight, ema_decay = getattr(args, "r1_weight", 0.0), getattr(args, "ema_decay", None)
    if isinstance(model, AdversarialModel):
        if not args.dequantize:
            raise UsageError(f"--no-dequantize applies to likelihood models; {model.registered_name} is a GAN.")
        if r1_weight < 0:
            raise UsageError(f"--r1-weight must be >= 0, got {r1_weight}.")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise UsageError(f"--ema-decay must be in (0, 1), got {ema_decay}.")
        class_weight = getattr(args, "class_weight", None)
        if class_weight is not None:
            if not (model.num_classes and model.classifies):
                raise UsageError(f"--class-weight applies to conditional GANs whose discriminator classifies; "
                                 f"{model.registered_name} with num_classes={model.num_classes} has no class loss.")
            if not class_weight >= 0:
                raise UsageError(f"--class-weight must be >= 0, got {class_weight}.")
        model.compile(
            g_optimizer=model.make_optimizer(args.lr),
            d_optimizer=model.make_optimizer(args.lr),
            loss=args.loss,
            r1_weight=r1_weight,
            ema_decay=ema_decay,
            seed=args.seed,
            **({} if class_weight is None else {"class_weight": class_weight}),
        )
    elif getattr(model, "is_diffusion", False):
        for flag, value in (("--loss", args.loss), ("--r1-weight", r1_weight or None),
                            ("--class-weight", getattr(args, "class_weight", None))):
            if value is not None:
                raise UsageError(f"{flag} applies to GANs; {model.registered_name} is a diffusion model.")
        if not args.dequantize:
            raise UsageError(f"--no-dequantize applies to likelihood models; {model.registered_name} is a "
                             "diffusion model.")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise UsageError(f"--ema-decay must be in (0, 1), got {ema_decay}.")
        # The weights' moving average samples: the model's default decay unless --ema-decay is given.
        model.compile(optimizer=model.make_optimizer(args.lr), seed=args.seed,
                      **({} if ema_decay is None else {"ema_decay": ema_decay}))
    else:
        for flag, value in (("--loss", args.loss), ("--r1-weight", r1_weight or None), ("--ema-decay", ema_decay),
                            ("--class-weight", getattr(args, "class_weight", None))):
            if value is not None:
                raise UsageError(f"{flag} applies to GANs; {model.registered_name} is trained by likelihood.")
        # A continuous density is trained on dequantised videos, so its bits/dim
        # bound the 8-bit data's (see vidgen_tf.likelihood); discrete ones need none.
        dequantize = args.dequantize and not model.likelihood_is_discrete
        model.compile(optimizer=model.make_optimizer(args.lr), dequantize=dequantize, seed=args.seed)


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
    # Holds the run directory (its lock, and the removal of an output folder an input error left empty)
    # until the run has written its last file.
    with contextlib.ExitStack() as run_directory:
        return _run(args, strategy, run_directory)


# What `vidgen train` writes into --out (besides hidden temporaries): a folder holding anything else,
# but neither a preset's config nor checkpoints, is not a run's.
RUN_FILES = ("config.json", "metadata.json", "model.weights.h5", "checkpoints", "samples", "losses.jsonl",
             "metrics.jsonl", "report.html", "report_files", ".lock", ".preset-new")


def _check_run_directory(out):
    """Refuses an --out that exists and holds files but no run (nor preset) of `vidgen train`."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory.")
    if (out / "config.json").is_file() or (out / "checkpoints").is_dir():
        return  # a run to resume, or a preset trained further in place
    foreign = sorted(p.name for p in out.iterdir() if not _is_run_file(p.name))
    if foreign:
        names = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UsageError(f"--out {out} holds files that are not a `vidgen train` run's ({names}); a run writes its "
                         "checkpoints, samples and preset there: give a new or empty directory, or a run's to resume.")


def _is_run_file(name):
    """One of `RUN_FILES`, or the temporary of one (`.<name>.<token>.tmp...`, see `vidgen_tf.atomic`)."""
    return name in RUN_FILES or any(name.startswith(f".{own}.") for own in RUN_FILES)


def _run(args, strategy, run_directory):
    import keras

    import vidgen_tf
    from vidgen_tf import atomic, data, distribute, report
    from vidgen_tf import callbacks as vcallbacks
    from vidgen_tf.likelihood import LikelihoodModel

    if args.data not in data.list_datasets():
        raise vidgen_tf.registry.unknown_name_error("dataset", args.data, data.list_datasets())
    distribute.check_global_batch(args.batch_size, strategy)
    checkpoint_every = args.checkpoint_every or min(args.steps, 100)
    if args.log_every < 1:
        raise UsageError(f"--log-every must be >= 1, got {args.log_every}.")
    if checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {checkpoint_every}.")
    metric_names, metrics_every, feature_net = _check_metric_options(args, checkpoint_every)
    overrides = {**_geometry(args), **_parse_pairs(args.set, "--set")}
    model_name, config, weights = _resolve_model(args.model, overrides, from_scratch=args.from_scratch)
    out = Path(args.out or f"runs/{model_name}")
    # Only the chief writes into `out`; other workers of a cluster write the
    # same files into a temporary directory, removed at the end.
    location = distribute.WriteLocation(out, strategy)
    if location.chief:
        _check_run_directory(out)
        run_directory.enter_context(atomic.new_directory(out))
        try:
            run_directory.enter_context(atomic.directory_lock(out, command=getattr(args, "command_line", None)))
        except atomic.DirectoryLockedError as error:
            raise UsageError(f"--out {out} is in use by another run, {atomic.describe_holder(error.holder)}; two runs "
                             "in one directory would mix their checkpoints and logs: wait for it to end, or give "
                             "another --out.") from None
    try:
        location.path.mkdir(parents=True, exist_ok=True)
        if args.deterministic:
            keras.utils.set_random_seed(args.seed)  # the same initial weights on every run
        with strategy.scope():
            model = vidgen_tf.build(model_name, **config)
            if weights is not None:
                vidgen_tf.presets.load_weights_file(model, weights)  # a damaged file is named
            _compile(model, args)
            # Every worker resumes from the chief's checkpoints (the output
            # directory must be shared by the workers of a cluster).
            start_step = vcallbacks.StepCheckpoint(out / "checkpoints").restore(model)
        distribute.prepare_model(model, strategy)
        sample_metrics = None
        if metric_names:
            sample_metrics = _metrics_callback(args, model, metric_names, metrics_every, feature_net, location,
                                               start_step)
        checkpoint = vcallbacks.StepCheckpoint(location.path / "checkpoints", best_metric=args.keep_best,
                                               metrics=sample_metrics)
        checkpoint.step = start_step
        # Generated data is addressed by batch index, so starting at the batch
        # after the last one trained on continues the same stream, without
        # generating the skipped batches again. `--batch-size` is the
        # global batch: each replica gets its share of every batch. A GAN step
        # loads n_critic x B clips, so that each critic update sees its own.
        clips_per_step = model.clips_per_step(args.batch_size) if hasattr(model, "clips_per_step") else args.batch_size
        dataset = data.load(
            args.data,
            num_frames=model.num_frames, height=model.height, width=model.width, channels=model.channels,
            batch_size=clips_per_step, seed=args.seed, with_labels=bool(model.num_classes),
            num_classes=model.num_classes or None, drop_remainder=True, start_batch=start_step,
            **_data_options(args),
        )
        description = data.describe(
            args.data, num_frames=model.num_frames, height=model.height, width=model.width,
            channels=model.channels, with_labels=bool(model.num_classes), **_data_options(args),
        )
        if description and location.chief:
            print(description, flush=True)  # files, clips and the skipped files, named
        dataset = distribute.shard_dataset(dataset)
        samples = vcallbacks.SampleWriter(location.path / "samples", args.sample_every, num=args.num_samples,
                                          seed=args.seed, initial_step=start_step)
        # Training callbacks, in order: the divergence guard first, so a NaN
        # step raises before anything else sees it (the checkpoints on disk
        # stay the last good ones); then the checkpoint, so later ones see a
        # saved state.
        # The sample metrics come before the checkpoint, which keeps the best state by their figures.
        callbacks = [vcallbacks.DivergenceGuard(start_step, checkpoint_dir=out / "checkpoints"),
                     *([sample_metrics] if sample_metrics else []), checkpoint, samples,
                     vcallbacks.StopAtStep(args.steps, start_step)]
        callbacks.append(vcallbacks.LossLog(location.path / report.LOSSES_FILE, every_steps=args.log_every,
                                            initial_step=start_step))
        if args.tensorboard:
            log_dir = Path(args.tensorboard) if location.chief else location.path / "tensorboard"
            callbacks.append(vcallbacks.VideoSummary(log_dir, args.sample_every, num=args.num_samples,
                                                     seed=args.seed, initial_step=start_step))
        if location.chief and not args.quiet:
            callbacks.append(vcallbacks.ProgressPrinter(args.steps, start_step))
        history = None
        # The training time adds up over resumed runs: the previous runs' is in the preset's metadata.
        training_seconds = _recorded_training_seconds(out) if start_step else 0.0
        # A run that continues a trained preset's weights carries the preset's history on (its commands,
        # steps and training time), so the card of what it makes lists every continuation.
        continued = _continued_history(args.model, out, start_step) if weights is not None else None
        if continued is not None and not start_step:
            training_seconds += continued["training_seconds"]
        replicas = strategy.num_replicas_in_sync
        where = f" on {replicas} replicas ({args.strategy})" if args.strategy != "default" else ""
        if start_step >= args.steps:
            print(f"{out} already holds a checkpoint at step {start_step} >= --steps {args.steps}; nothing to train.")
        else:
            if location.chief:
                print(f"training {model_name} on {args.data} for {args.steps} steps{where} "
                      f"(from step {start_step}; checkpoints every {checkpoint_every} in {out / 'checkpoints'})",
                      flush=True)
            fit_start = time.perf_counter()
            history = model.fit(
                dataset,
                epochs=math.ceil((args.steps - start_step) / checkpoint_every),
                steps_per_epoch=checkpoint_every,
                callbacks=callbacks,
                verbose=0 if args.quiet or not location.chief else 1 if sys.stdout.isatty() else 2,
            )
            training_seconds += time.perf_counter() - fit_start
        data_options = _parse_pairs(args.data_option, "--data-option")
        extra = {"data_options": data_options} if data_options else {}
        if args.precision != "float32":
            extra["precision"] = args.precision
        if isinstance(model, LikelihoodModel):
            extra.update(dequantized=model.dequantize, bits_per_dim_kind=model.bits_per_dim_kind)
        steps_done = max(start_step, args.steps)
        commands = _recorded_commands(out, start_step, args.command_line)
        if continued is not None:
            extra["continued_from"] = {k: continued[k] for k in ("preset", "training_steps")}
            steps_done += continued["training_steps"]
            if not start_step:
                commands = continued["command"] + commands
        vidgen_tf.save_preset(model, location.path, dataset=args.data, training_steps=steps_done,
                              description=f"{model_name} trained by `vidgen train` on {args.data}",
                              training_seconds=round(training_seconds, 1), command=commands, **extra)
        if args.final_weights:
            Path(args.final_weights).parent.mkdir(parents=True, exist_ok=True)
            atomic.save_weights(model, args.final_weights)
    finally:
        location.cleanup()
    if not location.chief:
        return 0
    if history is not None and history.history:
        final = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
        print("final metrics:", json.dumps(final))
        if "bits_per_dim" in final:
            print(f"bits_per_dim: {model.bits_per_dim_kind}")
    if sample_metrics is not None and sample_metrics.records:
        last = sample_metrics.records[-1]
        figures = ", ".join(f"{name} {sample_metrics.latest[name]:.4g}" for name in sample_metrics.metrics)
        print(f"sample metrics at step {last['step']} ({last['num_videos']} generated, {last['num_real']} real"
              + (f"; features: {last['feature_network']}" if last["feature_network"] else "") + f"): {figures}")
        print(f"metrics: {out / 'metrics.jsonl'}")
    if args.keep_best and checkpoint.best is not None:
        best = checkpoint.best
        print(f"best {best['metric']}: {best['value']:.4g} at step {best['step']} "
              f"({out / 'checkpoints' / checkpoint.BEST_WEIGHTS})")
    for path in samples.written[-len(samples.formats):]:
        print(f"samples: {path}")
    print(f"preset: {out} (load with vidgen_tf.from_preset('{out}'))")
    if args.report:
        page = report.write_report(out, out / "report.html", num_samples=args.num_samples, seed=args.seed,
                                   tensorboard_dir=args.tensorboard, overwrite=True)  # the run's own
        print(f"report: {page} (assets in {report.default_assets_dir(page)})")
    return 0


def _recorded_commands(out, start_step, command):
    """The `vidgen train` commands that made the preset in `out`: the earlier runs' (a resumed run), then this one."""
    earlier = []
    if start_step:
        try:
            earlier = json.loads((Path(out) / "metadata.json").read_text()).get("command", [])
        except (OSError, ValueError):
            earlier = []
    earlier = [earlier] if isinstance(earlier, str) else list(earlier)
    return earlier + [command]


def _continued_history(spec, out, start_step):
    """What the trained preset `spec` a run starts from had behind it: `{"preset", "training_steps",
    "training_seconds", "command"}`, or None when it records no training. A resumed run (`start_step` > 0)
    reads it from its own metadata, which recorded it when the run began."""
    from vidgen_tf import presets

    if start_step:
        path = Path(out) / presets.METADATA_FILE
        found = presets._read_json(path, "metadata").get("continued_from") if path.is_file() else None
        return None if not found else {**found, "training_seconds": 0.0, "command": []}
    metadata = presets.load_preset_config(presets.resolve_preset(spec))[2]
    steps = metadata.get("training_steps")
    if not isinstance(steps, int) or steps <= 0:
        return None
    command = metadata.get("command", [])
    seconds = metadata.get("training_seconds", 0.0)
    return {"preset": str(spec), "training_steps": steps,
            "training_seconds": float(seconds) if isinstance(seconds, (int, float)) else 0.0,
            "command": [command] if isinstance(command, str) else list(command)}


def _recorded_training_seconds(out):
    """The training time in the metadata of the preset a resumed run continues (0 when not recorded)."""
    from vidgen_tf import presets

    path = Path(out) / presets.METADATA_FILE
    if not path.is_file():
        return 0.0
    seconds = presets._read_json(path, "metadata").get("training_seconds", 0.0)
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


def _check_metric_options(args, checkpoint_every):
    """`(metric names, steps between them, feature network)` of the sample-metric options, checked."""
    metric_names = _metric_names(args)
    if not metric_names:
        for flag, value in (("--keep-best", args.keep_best), ("--metrics-every", args.metrics_every)):
            if value is not None:
                raise UsageError(f"{flag} needs --metrics (e.g. --metrics motion {flag} ...).")
        return (), None, None
    if args.keep_best is not None:
        args.keep_best = args.keep_best.strip().lower()
        if args.keep_best not in metric_names:
            raise UsageError(f"--keep-best {args.keep_best} is not among --metrics {','.join(metric_names)}: "
                             "the best checkpoint is chosen by a metric that is computed.")
    metrics_every = args.metrics_every or checkpoint_every
    if metrics_every < 1:
        raise UsageError(f"--metrics-every must be >= 1, got {metrics_every}.")
    if args.metrics_videos < 2:
        raise UsageError(f"--metrics-videos must be >= 2, got {args.metrics_videos}.")
    _check_motion_dataset(metric_names, args.data)
    from vidgen_tf.callbacks import sample_networks

    return metric_names, metrics_every, sample_networks(metric_names, _feature_network(args))


def _metrics_callback(args, model, metric_names, metrics_every, feature_net, location, start_step):
    """The `MetricsCallback` of `--metrics`: a fixed real set of --data, written into the run's directory."""
    import numpy as np

    from vidgen_tf import callbacks as vcallbacks
    from vidgen_tf import data

    options = _data_options(args)
    # A conditional model learns labelled clips (on moving_digits every digit of a clip is of its label's
    # class): its samples are scored against clips drawn the same way, as `vidgen eval` does.
    labelled = bool(model.num_classes)
    real = data.load(
        args.data, num_frames=model.num_frames, height=model.height, width=model.width, channels=model.channels,
        batch_size=args.batch_size, seed=METRICS_REAL_SEED, num_videos=args.metrics_videos, drop_remainder=False,
        with_labels=labelled, **options,
    )
    real = np.concatenate([np.asarray(batch[0] if labelled else batch) for batch in real])
    log_dir = None
    if args.tensorboard:
        log_dir = Path(args.tensorboard) if location.chief else location.path / "tensorboard"
    # The callback checks (and probes) every network on the real clips now: one that cannot serve its metric
    # (kind, frames, input size) stops the run before its first training step.
    try:
        return vcallbacks.MetricsCallback(
            real, metrics=metric_names, every_steps=metrics_every, num_videos=args.metrics_videos, seed=args.seed,
            dataset=args.data, dataset_options={k: v for k, v in options.items() if k != "path"},
            feature_net=feature_net, jsonl_path=location.path / "metrics.jsonl", log_dir=log_dir,
            initial_step=start_step, batch_size=args.batch_size,
        )
    except ValueError as error:
        flags = "--feature-net" if args.feature_net else "--metrics"
        raise UsageError(f"--metrics {','.join(metric_names)} cannot be scored with this {flags}: {error}") from error
