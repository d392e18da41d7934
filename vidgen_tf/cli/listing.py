"""`vidgen list`: the models, presets and datasets.

Each preset's line says whether it has weights ("untrained" when it has none) and,
when its metadata.json records one, its headline score (see `presets.headline_score`).
"""

import inspect


def cmd_list(args):
    import vidgen_tf
    from vidgen_tf import data, presets

    print("models:")
    models = vidgen_tf.list_models()
    width = max([12, *(len(name) for name in models)])  # the summaries line up however long a name is
    for name in models:
        cls = vidgen_tf.registry.get_model_class(name)
        summary = (inspect.getdoc(cls) or "").splitlines()[0]
        print(f"  {name:<{width}} {summary}")
    print("presets:")
    names = presets.list_presets()
    if not names:
        print("  (none)")
    rows = []
    for name in names:
        model_name, config, metadata = presets.load_preset_config(name)
        directory = presets.resolve_preset(name)
        shape = "x".join(str(config.get(k, "?")) for k in ("num_frames", "height", "width", "channels"))
        steps = presets.recorded_training_steps(metadata)
        weights = directory / presets.WEIGHTS_FILE
        if weights.is_file():
            status = f"trained {steps} steps" if steps else "trained"
        elif steps:  # trained, but its weights are gone: from_preset refuses it (presets.weights_file)
            status = f"weights missing (trained {steps} steps; no {presets.WEIGHTS_FILE})"
        else:
            status = "untrained"
        headline = presets.headline_score(metadata, directory / presets.METADATA_FILE)
        if headline is not None:
            status += ", " + presets.describe_score(*headline)
        rows.append((name, model_name, shape, status))
    name_width = max([28, *(len(row[0]) for row in rows)])
    model_width = max([10, *(len(row[1]) for row in rows)])
    for name, model_name, shape, status in rows:
        print(f"  {name:<{name_width}} {model_name:<{model_width}} {shape:<12} {status}")
    print("datasets:")
    for name, description in data.describe_datasets().items():
        print(f"  {name:<16} {description}")
    return 0
