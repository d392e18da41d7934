"""`vidgen list`: the models, presets and datasets."""

import inspect


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
    for name, description in data.describe_datasets().items():
        print(f"  {name:<16} {description}")
    return 0
