"""`vidgen eval`: held-out NLL and bits/dim of a likelihood model's preset."""

from pathlib import Path

from vidgen_tf.cli.common import UsageError, _data_options, _quiet_tensorflow


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
    dequantize = args.dequantize and not model.likelihood_is_discrete
    model.compile(dequantize=dequantize, seed=args.seed)
    videos = data.load(
        name, num_frames=args.num_frames or model.num_frames, height=model.height, width=model.width,
        channels=model.channels, batch_size=args.batch_size, seed=args.seed, num_videos=args.num_videos,
        drop_remainder=False, **options,
    )
    results = model.evaluate(videos, verbose=0, return_dict=True)
    kind = "negative ELBO, an upper bound on the NLL" if model.log_prob_is_bound else "exact"
    report = {
        "model": model.registered_name, "dataset": name, "data_options": options, "num_videos": args.num_videos,
        "seed": args.seed, "nll_nats_per_video": float(results["nll"]), "bits_per_dim": float(results["bits_per_dim"]),
        "bits_per_dim_kind": model.bits_per_dim_kind, "bound": bool(model.log_prob_is_bound),
        "dequantized": dequantize,
    }
    print(f"held-out: {args.num_videos} videos of {name} (seed {args.seed}), "
          f"{args.num_frames or model.num_frames}x{model.height}x{model.width}x{model.channels}")
    print(f"nll: {report['nll_nats_per_video']:.3f} nats per video ({kind})")
    print(f"bits/dim: {report['bits_per_dim']:.4f}" + (" (upper bound)" if model.log_prob_is_bound else "")
          + f" ({model.bits_per_dim_kind})")
    if args.json:
        presets._write_json(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0
