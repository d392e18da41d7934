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
    metric_names = _metric_names(args)
    if metric_names and args.num_videos < 2:
        raise UsageError(f"--metrics need --num-videos >= 2, got {args.num_videos}.")
    stages = _Stages()
    model = vidgen_tf.from_preset(args.preset)
    likelihood = isinstance(model, LikelihoodModel)
    if not likelihood and not metric_names:
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
    report = {"model": model.registered_name, "dataset": name, "data_options": options,
              "num_videos": args.num_videos, "seed": args.seed}
    geometry = f"{model.height}x{model.width}x{model.channels}"
    if likelihood:
        stages.begin("likelihood", f"held-out likelihood of {args.num_videos} videos")
        _likelihood(args, model, name, options, report)
    if metric_names:
        stages.begin("real_videos", f"loading {args.num_videos} real clips of {name}")
        real = data.load(
            name, num_frames=model.num_frames, height=model.height, width=model.width, channels=model.channels,
            batch_size=args.batch_size, seed=args.seed, num_videos=args.num_videos, drop_remainder=False, **options,
        )
        real = np.concatenate([np.asarray(batch) for batch in real])
        scorer = vcallbacks.SampleScorer(
            real, metric_names, dataset=name, dataset_options={k: v for k, v in options.items() if k != "path"},
            feature_net=scorer_network, batch_size=args.batch_size, seed=args.seed)
        if scorer.networks:
            stages.begin("real_features", f"features of {len(real)} real clips")
            scorer.real_features()
        stages.begin("generating", f"generating {args.num_videos} videos")
        fake = vcallbacks.generate_videos(model, args.num_videos, args.seed, batch_size=args.batch_size)
        fake_features = None
        if scorer.networks:
            stages.begin("fake_features", f"features of {len(fake)} generated clips")
            fake_features = scorer.fake_features(fake)
        stages.begin("scoring", "scoring " + ", ".join(metric_names))
        results = scorer.score(fake, fake_features)
    report["timings_seconds"] = stages.finish()

    if likelihood:
        _print_likelihood(args, model, name, report)
    if metric_names:
        print(f"sample metrics: {args.num_videos} generated videos (noise seeds {args.seed}.., batches of "
              f"{args.batch_size}) against {args.num_videos} real clips of {name} (seed {args.seed}), "
              f"{model.num_frames}x{geometry}")
        report["sample_metrics"] = {}
        report["seeds"] = {"real_videos": args.seed, "noise": args.seed, "frame_offsets": args.seed}
        report["num_generated"], report["num_real"] = len(fake), len(real)
        for metric in metric_names:
            value = results[metric]
            if metric == "motion":
                report["motion"] = {k: float(v) for k, v in value.items()}
                details = ", ".join(f"{k} {float(v):.3g}" for k, v in value.items() if k != "total")
                print(f"motion {value['total']:.4g} ({len(real)} real, {len(fake)} generated; "
                      f"{name} ground truth): {details}")
            else:
                report["sample_metrics"][metric] = value.to_dict()
                print(value.describe())
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
