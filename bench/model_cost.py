"""Multiply-adds of every model per training clip and per generated clip, at its preset and paper settings.

    python bench/model_cost.py [--models mocogan vgan ...] [--no-paper] [--defaults] [--json PATH]

Counts from the layer shapes (`vidgen_tf.cost.model_multiply_adds`; see its
module docstring for the convention: backward = 2 x forward for networks
whose weights are updated, 1 x for input gradients only, penalties by a
double-backward estimate), with each model compiled as `compile()` would by
default (the paper's loss and `n_critic`). Nothing is timed: the figures are
exact for the code as it is and the same on any machine. `--defaults` adds
each model at its constructor's defaults (the likelihood models have no
paper setting in `_common.PAPER_SETTINGS`; their defaults stand in). Prints a table in
millions of multiply-adds (1 multiply-add = 2 flops) and writes JSON.
"""

import argparse

from _common import PAPER_BATCH_SIZES, model_names, setting_shape, settings, write_json

import vidgen_tf  # noqa: E402
from vidgen_tf.cost import model_multiply_adds  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--no-paper", action="store_true", help="skip the paper settings")
    parser.add_argument("--defaults", action="store_true", help="add every model at its default config")
    parser.add_argument("--json", default="bench/results/model_cost.json")
    args = parser.parse_args()
    names = model_names(args.models)
    measured = settings(names, include_paper=not args.no_paper)
    if args.defaults:
        for name in names:
            defaults = vidgen_tf.build(name).get_config()
            shape = setting_shape({k: defaults[k] for k in ("height", "width", "num_frames", "channels")})
            measured.append((f"{name} defaults {shape}", name, {}))
    rows = []
    header = (f"| {'setting':<36} | {'training step':<22} | {'M per training clip':>19} | "
              f"{'M per generated clip':>20} | forward per clip of each network (M) |")
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for label, name, config in measured:
        cost = model_multiply_adds(vidgen_tf.build(name, **config))
        step = cost.training.get("loss", "log-likelihood")
        if cost.training["n_critic"] > 1:
            step += f", n_critic {cost.training['n_critic']}"
        if cost.training["penalties"]:
            step += ", " + " + ".join(cost.training["penalties"])
        forward = ", ".join(f"{k} {v / 1e6:,.1f}" for k, v in cost.forward.items())
        print(f"| {label:<36} | {step:<22} | {cost.per_training_clip / 1e6:>19,.1f} | "
              f"{cost.per_generated_clip / 1e6:>20,.1f} | {forward} |", flush=True)
        paper_batch = PAPER_BATCH_SIZES.get(name) if " paper " in label else None
        rows.append({"setting": label, "model": name, "config": config, "paper_batch_size": paper_batch,
                     **cost.as_dict()})
    write_json(args.json, rows, unit="multiply-adds per clip (1 multiply-add = 2 flops)")


if __name__ == "__main__":
    main()
