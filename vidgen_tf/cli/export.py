"""`vidgen export`: a preset to SavedModel (TF Serving layout) and ONNX."""

import json
from pathlib import Path

from vidgen_tf.cli.common import UsageError, _quiet_tensorflow


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
        savedmodel_dir = vidgen_tf.export_savedmodel(
            model, out, version=args.version, overwrite=args.overwrite, preset=Path(str(args.preset)).name
        )
        print(f"savedmodel: {savedmodel_dir}")
    if "onnx" in formats:
        path = out / f"{model.registered_name}.onnx"
        vidgen_tf.export_onnx(model, path, savedmodel_dir=savedmodel_dir, preset=Path(str(args.preset)).name)
        parity = json.loads(Path(f"{path}.parity.json").read_text())
        print(f"onnx: {path} (max |diff| vs SavedModel: float {parity['max_abs_diff_float']:.2e}, "
              f"uint8 {parity['max_abs_diff_uint8']}; {path}.parity.json)")
    return 0
