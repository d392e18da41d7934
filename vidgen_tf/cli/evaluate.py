"""`vidgen eval`: held-out NLL and bits/dim of a likelihood model; sample metrics (`--metrics`) of any model."""

import sys
import time
from pathlib import Path

from vidgen_tf.cli.common import (
    UsageError,
    _check_motion_dataset,
    _data_options,
    _feature_network,
    _metric_names,
    _quiet_tensorflow,
)


class _Stages:
    """Prints one line per stage with the seconds elapsed since the start, to stderr; records each stage's time."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.seconds = {}
        self._current = None

    def begin(self, key, text):
        self.end()
        self._current = (key, time.perf_counter())
        print(f"[{time.perf_counter() - self.start:7.1f}s] {text} ...", file=self.stream, flush=True)

    def end(self):
        if self._current is not None:
            key, began = self._current
            self.seconds[key] = round(time.perf_counter() - began, 3)
            self._current = None

    def finish(self):
        self.end()
        self.seconds["total"] = round(time.perf_counter() - self.start, 3)
        print(f"[{self.seconds['total']:7.1f}s] done", file=self.stream, flush=True)
        return self.seconds


def cmd_eval(args):
    """Held-out NLL and bits/dim of a likelihood model, and the sample metrics of `--metrics` for any model."""
    _quiet_tensorflow()
    import numpy as np

    import vidgen_tf
    from vidgen_tf import callbacks as vcallbacks
    from vidgen_tf import data, presets
    from vidgen_tf.likelihood import LikelihoodModel

    if args.num_videos < 1 or args.batch_size < 1:
        raise UsageError("--num-videos and --batch-size must be >= 1.")
    metric_names, eval_names = _eval_metric_names(args)
    _check_protocol_options(args, metric_names + eval_names)
    if (metric_names or eval_names) and args.num_videos < 2:
        raise UsageError(f"--metrics need --num-videos >= 2, got {args.num_videos}.")
    stages = _Stages()
    model = vidgen_tf.from_preset(args.preset)
    likelihood = isinstance(model, LikelihoodModel)
    if not likelihood and not metric_names and not eval_names:
        raise UsageError(
            f"{model.registered_name} is a GAN and has no likelihood: pass --metrics to score its samples "
            "(e.g. --metrics motion, or --metrics fvd,kvd --feature-net DIR --feature-input-size HxW "
            "--feature-frames N)."
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
    scorer_network = None
    if metric_names:
        _check_motion_dataset(metric_names, name)
        scorer_network = vcallbacks.sample_networks(metric_names, _feature_network(args))
    if "digits" in eval_names and name != "moving_digits":
        raise UsageError(f"--metrics digits reads handwritten digits: it scores moving_digits models only, "
                         f"not {name}; leave digits out.")
    feature_eval_names = [n for n in eval_names if n not in _READERLESS]
    clip_network = _clip_network(args, feature_eval_names, scorer_network)
    report = {"model": model.registered_name, "dataset": name, "data_options": options,
              "num_videos": args.num_videos, "seed": args.seed}
    geometry = f"{model.height}x{model.width}x{model.channels}"
    if likelihood:
        stages.begin("likelihood", f"held-out likelihood of {args.num_videos} videos")
        _likelihood(args, model, name, options, report)
    results = {}
    if metric_names or eval_names:
        total = args.num_videos * args.num_trials
        stages.begin("real_videos", f"loading {total} real clips of {name}"
                     + (f" and {args.num_videos} held-out ones" if args.baselines else ""))
        real, held_out = _real_clips(args, model, name, options, total)
        report["real_clips"] = _real_clips_record(args, name, len(real), held_out)
        stages.begin("generating", f"generating {total} videos")
        fake = vcallbacks.generate_videos(model, total, args.seed, batch_size=args.batch_size)
    if metric_names:
        scorer = vcallbacks.SampleScorer(
            real, metric_names, dataset=name, dataset_options={k: v for k, v in options.items() if k != "path"},
            feature_net=scorer_network, batch_size=args.batch_size, seed=args.seed, num_trials=args.num_trials,
            window=args.window, stride=args.stride)
        if scorer.networks:
            stages.begin("real_features", f"features of {len(real)} real clips")
            scorer.real_features()
        fake_features = None
        if scorer.networks:
            stages.begin("fake_features", f"features of {len(fake)} generated clips")
            fake_features = scorer.fake_features(fake)
        stages.begin("scoring", "scoring " + ", ".join(metric_names))
        results = scorer.score(fake, fake_features)
    if feature_eval_names:
        stages.begin("diversity", "scoring " + ", ".join(feature_eval_names))
        results.update(_diversity(args, clip_network, feature_eval_names, real, fake, name, model, options, report))
    if "digits" in eval_names:
        stages.begin("digits", "reading the digit in every frame (generated and real clips)")
        results["digits"] = _digits(args, real, fake, model)
    if args.baselines:
        stages.begin("baselines", f"replay ladder (held-out real clips, replayers of {REPLAY_KS_TEXT} clips)")
        report["baselines"] = _baselines(args, clip_network, metric_names + eval_names, real, held_out)
    report["timings_seconds"] = stages.finish()

    if likelihood:
        _print_likelihood(args, model, name, report)
    if metric_names or eval_names:
        trials = "" if args.num_trials == 1 else f" x {args.num_trials} trials"
        print(f"sample metrics: {args.num_videos}{trials} generated videos (noise seeds {args.seed}.., batches of "
              f"{args.batch_size}) against {args.num_videos}{trials} real clips of {name} "
              f"({report['real_clips']['draw']}, seed {args.seed}), {model.num_frames}x{geometry}")
        report["sample_metrics"] = {}
        report["seeds"] = {"real_videos": args.seed, "noise": args.seed, "frame_offsets": args.seed}
        report["num_generated"], report["num_real"] = len(fake), len(real)
        report["num_trials"] = args.num_trials
        for metric in metric_names + eval_names:
            if metric == "memorisation":
                _print_memorisation(results[metric], report)
                continue
            if metric == "digits":
                _print_digits(results[metric], report)
                continue
            value = results[metric]
            if metric == "motion":
                report["motion"] = {k: float(v) for k, v in value.items()}
                details = ", ".join(f"{k} {float(v):.3g}" for k, v in value.items() if k != "total")
                print(f"motion {value['total']:.4g} ({len(real)} real, {len(fake)} generated; "
                      f"{name} ground truth): {details}")
            else:
                report["sample_metrics"][metric] = value.to_dict()
                print(value.describe())
        protocol = _protocol_line(report)
        if protocol:
            print(protocol)
    if args.baselines:
        _print_baselines(report["baselines"])
    print(f"time: {report['timings_seconds']['total']:.1f}s")
    if args.json:
        presets._write_json(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0


def _likelihood(args, model, name, options, report):
    """Adds the held-out NLL and bits/dim of `model` on `args.num_videos` videos of `name` to `report`."""
    from vidgen_tf import data

    # Continuous densities on 8-bit data are scored on dequantised videos, so
    # their bits/dim bound the 8-bit data's (see vidgen_tf.likelihood).
    dequantize = args.dequantize and not model.likelihood_is_discrete
    model.compile(dequantize=dequantize, seed=args.seed)
    videos = data.load(
        name, num_frames=args.num_frames or model.num_frames, height=model.height, width=model.width,
        channels=model.channels, batch_size=args.batch_size, seed=args.seed, num_videos=args.num_videos,
        drop_remainder=False, **options,
    )
    results = model.evaluate(videos, verbose=0, return_dict=True)
    report.update(
        nll_nats_per_video=float(results["nll"]), bits_per_dim=float(results["bits_per_dim"]),
        bits_per_dim_kind=model.bits_per_dim_kind, bound=bool(model.log_prob_is_bound), dequantized=dequantize,
    )


def _print_likelihood(args, model, name, report):
    kind = "negative ELBO, an upper bound on the NLL" if model.log_prob_is_bound else "exact"
    print(f"held-out: {args.num_videos} videos of {name} (seed {args.seed}), "
          f"{args.num_frames or model.num_frames}x{model.height}x{model.width}x{model.channels}")
    print(f"nll: {report['nll_nats_per_video']:.3f} nats per video ({kind})")
    print(f"bits/dim: {report['bits_per_dim']:.4f}" + (" (upper bound)" if model.log_prob_is_bound else "")
          + f" ({model.bits_per_dim_kind})")


# ------------------------------------------------ protocol, diversity, memorisation and the replay ladder
# Metrics only `vidgen eval` computes: they read more sets than a training callback holds (held-out and
# training clips), and precision / recall are not distances (no --keep-best).
EVAL_METRICS = ("precision", "recall", "density", "coverage", "memorisation", "digits")
# Eval metrics that read no clip features: `digits` reads each frame with the digit reader.
_READERLESS = ("digits",)
REPLAY_KS_TEXT = "64, 16, 4, 1"
# Seed offset of the held-out real clips of a synthetic dataset (another draw than the reference clips').
HELD_OUT_SEED_OFFSET = 7919


def add_protocol_options(parser):
    """`vidgen eval`'s protocol options: trials, windows, the replay ladder, memorisation's training clips."""
    parser.add_argument("--num-trials", type=int, default=1, metavar="N",
                        help="independent draws of --num-videos real and generated clips each; every feature "
                             "metric is then their mean with the standard deviation over them (default 1)")
    parser.add_argument("--window", choices=("random", "start"), default="random",
                        help="frames of each generated clip the feature network reads: from a random offset (the "
                             "reference FVD recipe) or from t = 0 (StyleGAN-V's choice); real clips always take "
                             "a random offset (default random)")
    parser.add_argument("--stride", type=int, default=1, metavar="N",
                        help="read every N-th frame (8 with 128-frame clips: fvd2048_128f_subsample8f; default 1)")
    parser.add_argument("--baselines", action="store_true",
                        help="also score the replay ladder under the same recipe: held-out real clips, and "
                             f"'generators' replaying k = {REPLAY_KS_TEXT} of them (the figures every model's "
                             "should be read against)")
    parser.add_argument("--num-train", type=int, metavar="N",
                        help="training clips memorisation compares against (default: --num-videos)")
    parser.add_argument("--train-seed", type=int, default=0, metavar="SEED",
                        help="seed of the training stream memorisation reads (default 0, training's default)")


def _eval_metric_names(args):
    """`(SampleScorer metrics, eval-only metrics)` of --metrics; an unknown name is named."""
    from vidgen_tf.callbacks import SAMPLE_METRICS
    from vidgen_tf.registry import unknown_name_error

    if not getattr(args, "metrics", None):
        return _metric_names(args), ()
    names = [n.strip().lower() for n in args.metrics.split(",") if n.strip()]
    for n in names:
        if n not in SAMPLE_METRICS and n not in EVAL_METRICS:
            raise unknown_name_error("metric (--metrics)", n, sorted([*SAMPLE_METRICS, *EVAL_METRICS]))
    extra = tuple(dict.fromkeys(n for n in names if n in EVAL_METRICS))
    if extra and not [n for n in names if n not in EVAL_METRICS]:
        return (), extra
    return _metric_names(_Without(args, EVAL_METRICS)), extra


class _Without:
    """`args` whose --metrics lack `names` (for the shared parser of the others)."""

    def __init__(self, args, names):
        self.__dict__.update(vars(args))
        self.metrics = ",".join(n for n in args.metrics.split(",") if n.strip().lower() not in names)


def _check_protocol_options(args, names):
    if args.num_trials < 1:
        raise UsageError(f"--num-trials must be >= 1, got {args.num_trials}.")
    if args.stride < 1:
        raise UsageError(f"--stride must be >= 1, got {args.stride}.")
    if args.num_train is not None and args.num_train < 4:
        raise UsageError(f"--num-train must be >= 4, got {args.num_train}.")
    if args.num_train is not None and "memorisation" not in names:
        raise UsageError("--num-train is the training clips of --metrics memorisation; add memorisation to --metrics.")
    if args.baselines and args.num_trials > 1:
        raise UsageError("--baselines scores one draw; leave out --num-trials (or score the ladder separately).")
    if args.baselines and args.num_videos < 4:
        raise UsageError(f"--baselines needs --num-videos >= 4 (a replayer of 4 clips), got {args.num_videos}.")
    unknown_net = [n for n in names if n in ("precision", "recall", "density", "coverage")]
    if unknown_net and args.num_videos <= 3:
        raise UsageError(f"--metrics {','.join(unknown_net)} need --num-videos > 3 (k = 3 neighbours).")


def _clip_network(args, eval_names, scorer_network):
    """The video `FeatureNetwork` precision / recall / memorisation and the ladder read (FVD's), or None."""
    if not eval_names and not args.baselines:
        return None
    if scorer_network and "fvd" in scorer_network:
        return scorer_network["fvd"]
    from vidgen_tf.callbacks import feature_network_for

    return feature_network_for("fvd", _feature_network(args))


def _real_clips(args, model, name, options, total):
    """`(real, held_out)` uint8 clips: `total` reference clips and, with --baselines, --num-videos others.

    Clips are drawn with the seed: a dataset read from files is shuffled (seeded) before the first
    `total` are taken, so a folder sorted by class gives every class; a synthetic dataset's clips are
    made from the seed. The held-out clips of a file dataset are the next --num-videos of the same
    draw (disjoint from the reference); a synthetic set's are another draw (seed + 7919).
    """
    import numpy as np

    from vidgen_tf import data
    from vidgen_tf.data.registry import get_source
    from vidgen_tf.metrics.features import to_uint8

    from_files = get_source(name).needs_path

    # A conditional model learnt the labelled clips (on moving_digits every digit of a clip is of its
    # label's class), so it is scored against clips drawn the same way.
    labelled = bool(getattr(model, "num_classes", 0))

    def load(seed, count):
        clips = data.load(name, num_frames=model.num_frames, height=model.height, width=model.width,
                          channels=model.channels, batch_size=args.batch_size, seed=seed, num_videos=count,
                          drop_remainder=False, shuffle=True if from_files else None, with_labels=labelled,
                          **options)
        return to_uint8(np.concatenate([np.asarray(batch[0] if labelled else batch) for batch in clips]))

    if not args.baselines:
        return load(args.seed, total), None
    if from_files:
        both = load(args.seed, total + args.num_videos)
        return both[:total], both[total:]
    return load(args.seed, total), load(args.seed + HELD_OUT_SEED_OFFSET, args.num_videos)


def _real_clips_record(args, name, count, held_out):
    from vidgen_tf.data.registry import get_source

    from_files = get_source(name).needs_path
    record = {"count": count, "seed": args.seed,
              "draw": "a seeded shuffle of every clip" if from_files else "made from the seed"}
    if held_out is not None:
        record["held_out"] = {"count": len(held_out),
                              "draw": "the next clips of the same draw" if from_files else
                              f"made from seed {args.seed + HELD_OUT_SEED_OFFSET}"}
    return record


def _diversity(args, network, names, real, fake, name, model, options, report):
    """`{metric: Score}` of precision / recall / density / coverage and `{"memorisation": dict}`."""
    import numpy as np

    from vidgen_tf import data
    from vidgen_tf.metrics import extract_features
    from vidgen_tf.metrics.features import to_uint8
    from vidgen_tf.metrics.video import memorisation_features, precision_recall_features

    found = {}
    real_features = extract_features(real, network, None, args.batch_size, args.seed, stride=args.stride)
    fake_features = extract_features(fake, network, None, args.batch_size, args.seed + 1, window=args.window,
                                     stride=args.stride)
    wanted = [n for n in names if n != "memorisation"]
    if wanted:
        scores = precision_recall_features(network, real_features, fake_features, 3, args.seed, args.num_trials,
                                           args.window, args.stride)
        found.update({n: scores[n] for n in wanted})
    if "memorisation" in names:
        count = args.num_train or args.num_videos
        stream = data.load(name, num_frames=model.num_frames, height=model.height, width=model.width,
                           channels=model.channels, batch_size=args.batch_size, seed=args.train_seed, **options)
        train = []
        for batch in stream:
            train.append(to_uint8(np.asarray(batch)))
            if sum(len(b) for b in train) >= count:
                break
        train = np.concatenate(train)[:count]
        train_features = extract_features(train, network, None, args.batch_size, args.seed + 2, stride=args.stride)
        n = args.num_videos  # the first draw's clips: generated against held-out (the reference, never trained on)
        result = memorisation_features(network, train_features, fake_features[:n], real_features[:n], args.seed,
                                       args.window, args.stride)
        result["protocol"]["train_seed"] = args.train_seed
        found["memorisation"] = result
    return found


def _digits(args, real, fake, model):
    """The digit reader's figures of the generated clips, with the real clips' beside them (the floor).

    A conditional model's clips were generated with labels cycling 0, 1, 2, ... (`generate_videos`);
    for it `label_match` says, per class, how often its clips read as their label: by the digit
    reader (a clip's most common digit) and by the built-in feature network's class head (the clip's
    highest logit among the ten digits)."""
    import numpy as np

    from vidgen_tf.callbacks._common import sample_labels
    from vidgen_tf.metrics import builtin, builtin_feature_network, digits, extract_features

    n = args.num_videos  # the first draw: as many real clips as generated
    readings = digits.read_digits(fake[:n])
    result = {**digits.summarise_readings(readings), "reader": digits.reader_label()}
    result["real"] = {k: v for k, v in digits.digit_consistency(real[:n]).items() if k != "reader"}
    labels = sample_labels(model, n, None)
    if labels is not None:
        labels = np.asarray(labels)
        read = digits.modal_digits(readings)
        first, end = builtin.CLASS_BLOCKS["moving_digits"]
        logits = extract_features(fake[:n], builtin_feature_network("logits"), None, args.batch_size, args.seed)
        head = np.asarray(logits)[:, first:end].argmax(axis=1)
        classes = sorted(set(labels.tolist()))
        result["label_match"] = {
            "classes": classes,
            "reader": [float(np.mean(read[labels == c] == c)) for c in classes],
            "builtin_head": [float(np.mean(head[labels == c] == c)) for c in classes],
        }
    return result


def _print_digits(result, report):
    report["digits"] = result
    real = result["real"]
    print(f"digits: the same digit in {result['consistency']:.1%} of a clip's frames (real clips "
          f"{real['consistency']:.1%}); {result['classes']} of 10 digits drawn, {result['class_bits']:.3g} bits "
          f"(real {real['classes']}, {real['class_bits']:.3g}); confidence {result['confidence']:.3g} (real "
          f"{real['confidence']:.3g}); {result['num_videos']} generated, {real['num_videos']} real; {result['reader']}")
    match = result.get("label_match")
    if match:
        for key, what in (("reader", "the digit reader"), ("builtin_head", "the built-in network's class head")):
            values = match[key]
            print(f"digits read as their label by {what}: lowest {min(values):.1%}, mean "
                  f"{sum(values) / len(values):.1%}; per class " + " ".join(f"{c}:{v:.0%}" for c, v in
                                                                           zip(match["classes"], values)))


def memorisation_record(result):
    """The JSON-able part of a `memorisation` result (medians, ratio, copied fraction, quantiles, protocol)."""
    import numpy as np

    quantiles = (0.05, 0.25, 0.5, 0.75, 0.95)
    return {
        "ratio": float(result["ratio"]), "fake_median": result["fake_median"],
        "held_out_median": result["held_out_median"], "copied_fraction": result["copied_fraction"],
        "fake_repeats": result["fake_repeats"], "held_out_repeats": result["held_out_repeats"],
        "fake_quantiles": [float(q) for q in np.quantile(result["fake_distances"], quantiles)],
        "held_out_quantiles": [float(q) for q in np.quantile(result["held_out_distances"], quantiles)],
        "quantiles": list(quantiles), "protocol": dict(result["protocol"]),
    }


def _print_memorisation(result, report):
    record = memorisation_record(result)
    report["memorisation"] = record
    print(f"memorisation: nearest-training-clip distance, generated median {record['fake_median']:.4g} vs held-out "
          f"real {record['held_out_median']:.4g} (ratio {record['ratio']:.3g}; a copier sits far below 1); "
          f"{record['copied_fraction']:.1%} of generated clips nearer than the held-out 5th percentile, "
          f"{record['fake_repeats']:.1%} equal to a training clip "
          f"({record['protocol']['num_train']} training clips, stream seed {record['protocol']['train_seed']})")


def _baselines(args, network, names, real, held_out):
    """The replay ladder's rows, as JSON-able dicts `{"name", "k", metric: Score.to_dict()}`."""
    from vidgen_tf.metrics import replay_ladder
    from vidgen_tf.metrics.video import REPLAY_KS

    ladder = [n for n in names if n in ("fvd", "kvd", "precision", "recall", "density", "coverage")]
    rows = replay_ladder(real[: args.num_videos], held_out, feature_net=network,
                         metrics=ladder or ("fvd", "precision", "recall"), num_videos=args.num_videos,
                         ks=tuple(k for k in REPLAY_KS if k <= args.num_videos),
                         batch_size=args.batch_size, seed=args.seed, window=args.window, stride=args.stride)
    return [{key: (value.to_dict() if hasattr(value, "to_dict") else value) for key, value in row.items()}
            for row in rows]


def _print_baselines(rows):
    metrics = [key for key in rows[0] if key not in ("name", "k")]
    first = rows[0][metrics[0]]
    print(f"replay ladder ({first['num_real']} real clips; the same recipe; features: {first['feature_network']}):")
    print(f"  {'':14s}" + "".join(f"{m:>12s}" for m in metrics))
    for row in rows:
        print(f"  {row['name']:14s}" + "".join(f"{row[m]['value']:12.4g}" for m in metrics))


def _protocol_line(report):
    """One line of the protocol shared by the figures (counts, frames, window, stride, resize, trials, network)."""
    records = [entry["protocol"] for entry in report.get("sample_metrics", {}).values() if "protocol" in entry]
    if not records:
        return None
    p = records[0]
    frames = "every frame" if p["num_frames"] is None else f"{p['num_frames']} frames"
    report["protocol"] = {k: v for k, v in p.items() if k != "k"}
    return (f"protocol: {p['num_real']} real, {p['num_fake']} generated, {frames} ({p['window']} window, stride "
            f"{p['stride']}), {p['resize']}, seed {p['seed']}, {p['num_trials']} trial(s), {p['network']}, "
            f"fingerprint {p['fingerprint']}")
