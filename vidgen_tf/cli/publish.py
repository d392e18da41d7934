"""`vidgen publish`: a trained run becomes a zoo preset with its scores, a sample GIF and its card's tables.

    vidgen publish RUN_DIR --name PRESET [--zoo DIR] [--weights best|final] [--metrics fvd,kvd,motion]
                   [--num-videos 512] [--seed 1] [--recipe "vidgen train ..."] [--description TEXT]

The preset folder `ZOO/PRESET` is made and scored in a scratch folder, then
moved into the zoo whole in one atomic step (an existing preset is replaced
only with `--overwrite`, and a folder holding other files never): its
`config.json`, `model.weights.h5` (the run's best checkpoint by the metric of
`--keep-best`, or its final weights), `metadata.json` with `scores` (every
figure `vidgen eval` printed, with its recipe) and a `headline`,
`sample.gif` (fixed noise, enlarged) and `real.gif` (real clips of its
dataset, the same frames and enlargement), the replay ladder of
`vidgen eval --baselines` beside its scores, and `README.md`: the card's
hand-written text is kept and the part between the two `vidgen publish`
markers (training, scores, sample) is rewritten.
"""

import json
import shutil
import tempfile
from pathlib import Path

from vidgen_tf.cli.common import UsageError

BEGIN = "<!-- vidgen publish: begin (this part is written by `vidgen publish`) -->"
END = "<!-- vidgen publish: end -->"
SAMPLE_FILE = "sample.gif"
REAL_FILE = "real.gif"
# Figures scored by `vidgen eval` and kept in a preset: GANs by their samples, likelihood models also by NLL;
# precision / recall (diversity) and memorisation beside the distribution distances.
DEFAULT_METRICS = "fvd,kvd,motion,precision,recall,memorisation"
# ... and on moving digits the digit reader's figures (vidgen_tf.metrics.digits).
DIGITS_METRICS = DEFAULT_METRICS + ",digits"


def default_metrics(dataset):
    """The metrics a preset of `dataset` is scored by when `--metrics` is not given."""
    return DIGITS_METRICS if dataset == "moving_digits" else DEFAULT_METRICS
# The metrics of the replay ladder shown on a card (those the preset was scored by).
LADDER_METRICS = ("fvd", "kvd", "precision", "recall", "density", "coverage")


def _eval_report(directory, metrics, num_videos, seed, batch_size, baselines=False, run=None):
    """Runs `vidgen eval` on the preset `directory` (through `run`, the `vidgen` entry point `main`
    hands its commands as `args.vidgen_main`) and returns its JSON report."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "eval.json"
        argv = ["eval", str(directory), "--num-videos", str(num_videos), "--seed", str(seed),
                "--batch-size", str(batch_size), "--json", str(path)]
        if metrics:
            argv += ["--metrics", metrics]
        if baselines and metrics:
            argv += ["--baselines"]
        code = run(argv)
        if code:
            raise RuntimeError(f"`vidgen {' '.join(argv)}` failed (exit {code}); nothing was published.")
        return json.loads(path.read_text())


def scores_of(report):
    """`metadata.json` "scores" from a `vidgen eval --json` report (see `presets.headline_score`)."""
    seed = report["seed"]
    scores = {}
    for name, entry in report.get("sample_metrics", {}).items():
        scores[name] = {"value": float(entry["value"]), "num_real": entry["num_real"], "num_fake": entry["num_fake"],
                        "feature_network": entry["feature_network"], "std": entry["std"], "seed": seed}
        if entry.get("num_trials", 1) != 1:
            scores[name]["num_trials"] = entry["num_trials"]
    if "memorisation" in report:
        memo = report["memorisation"]
        scores["memorisation"] = {
            "value": float(memo["ratio"]), "num_real": memo["protocol"]["num_real"],
            "num_fake": memo["protocol"]["num_fake"], "num_train": memo["protocol"]["num_train"],
            "feature_network": memo["protocol"]["network"], "std": None, "seed": seed,
            "fake_median": memo["fake_median"], "held_out_median": memo["held_out_median"],
            "copied_fraction": memo["copied_fraction"], "fake_repeats": memo.get("fake_repeats")}
    if "digits" in report:
        found = report["digits"]
        for key, name in (("consistency", "digit_consistency"), ("class_bits", "digit_class_bits")):
            scores[name] = {"value": float(found[key]), "real_value": float(found["real"][key]),
                            "num_real": found["real"]["num_videos"], "num_fake": found["num_videos"], "seed": seed,
                            "feature_network": found["reader"], "std": None}
        scores["digit_class_bits"]["class_fractions"] = found["class_fractions"]
        match = found.get("label_match")
        if match:  # a conditional model: the lowest per-class share read as its label by the built-in class head
            scores["digit_label_match"] = {
                "value": float(min(match["builtin_head"])), "num_fake": found["num_videos"], "seed": seed,
                "feature_network": "vidgen-synthetic-v1 class head", "std": None, "classes": match["classes"],
                "per_class": match["builtin_head"], "reader_per_class": match["reader"]}
    if "motion" in report:
        scores["motion"] = {"value": float(report["motion"]["total"]), "num_real": report["num_real"],
                            "num_fake": report["num_generated"], "seed": seed,
                            "terms": {k: float(v) for k, v in report["motion"].items() if k != "total"}}
    if "nll_nats_per_video" in report:
        common = {"num_videos": report["num_videos"], "seed": seed, "bound": report["bound"]}
        scores["nll_nats_per_video"] = {"value": float(report["nll_nats_per_video"]), **common}
        scores["bits_per_dim"] = {"value": float(report["bits_per_dim"]), "kind": report["bits_per_dim_kind"],
                                  **common}
    return scores


def _headline(scores, kept=None):
    """The score `vidgen list` shows: `kept` (the preset's headline before it was re-scored) when it is
    still among `scores`, so a republish keeps a headline chosen with --headline; else bits_per_dim,
    fvd or motion, the first there is."""
    if kept in scores:
        return kept
    for name in ("bits_per_dim", "fvd", "motion"):
        if name in scores:
            return name
    return sorted(scores)[0] if scores else None


def _hours(seconds):
    minutes = round(float(seconds) / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def card_section(name, metadata, scores, eval_command, best):
    """The markdown between the card's markers: training, scores, the replay ladder, protocol, sample, real clips.

    A function of the preset's metadata alone (its scores, `baselines`, `protocol`, `real_sample`), so a card
    can be rewritten from `metadata.json` without scoring again (`rewrite_card`).
    """
    lines = [BEGIN, "", "## Trained weights", ""]
    steps = metadata.get("training_steps", 0)
    seconds = metadata.get("training_seconds")
    when = f" in {_hours(seconds)} of training" if seconds else ""
    lines.append(f"Trained on `{metadata.get('dataset')}` for {steps} steps{when} on a 2-core CPU"
                 + (" (wall time of the `fit` calls; the cores were shared with other jobs part of the time)"
                    if seconds else "") + ".")
    if best:
        lines.append(f"The shipped weights are the run's best checkpoint by {best['metric']} "
                     f"({best['value']:.4g} at step {best['step']}, as scored during training by `--keep-best`), "
                     "not necessarily the last step's.")
    commands = metadata.get("command") or []
    commands = [commands] if isinstance(commands, str) else commands
    if commands:
        lines += ["", "Recipe (the exact commands; a resumed run lists each):", "", "```"]
        lines += commands
        lines += ["```"]
    lines += ["", "## Scores", "", f"Held-out, recomputed by `{eval_command}`:", "",
              "| metric | value | recipe |", "|---|---|---|"]
    from vidgen_tf import presets

    order = {name: i for i, name in enumerate(presets.SCORE_NAMES)}  # one order, whatever the JSON's
    for metric, entry in sorted(scores.items(), key=lambda item: order.get(item[0], len(order))):
        value = f"{entry['value']:.4g}" + (f" +- {entry['std']:.3g}" if entry.get("std") is not None else "")
        recipe = presets.describe_score(metric, entry).partition(" (")[2].rstrip(")")
        lines.append(f"| {metric} | {value} | {recipe} |")
    lines += _ladder_lines(metadata, scores)
    motion = scores.get("motion", {}).get("terms")
    if motion:
        lines += ["", "Motion terms (each a distance to the data's ground-truth statistics; lower is closer): "
                  + ", ".join(f"{k} {v:.3g}" for k, v in motion.items()) + "."]
    feature = next((e.get("feature_network") for e in scores.values() if e.get("feature_network")), None)
    if feature:
        lines += ["", f"FVD and KVD use the built-in synthetic feature network ({feature.split(' (')[0]}): "
                  "they rank models on this data, and are not comparable with figures computed with I3D."]
    protocol = metadata.get("protocol")
    if protocol:
        lines += ["", "Protocol: " + protocol_text(protocol) + "."]
    lines += ["", "## Sample", "", f"![8 samples of {name}, fixed noise (seed 0), enlarged 3x]({SAMPLE_FILE})", "",
              f"`vidgen generate {name} --num 8 --seed 0 --scale 3 --out {SAMPLE_FILE}`"]
    if metadata.get("real_sample"):
        lines += ["", f"![8 real clips of {metadata.get('dataset')} (seed 0), the same frames, enlarged 3x]"
                  f"({REAL_FILE})", "", f"Real clips for comparison: {metadata['real_sample']}."]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def protocol_text(protocol):
    """The protocol record of a figure in words (counts, frames, window, stride, resize, seed, trials, network)."""
    frames = "every frame" if protocol.get("num_frames") is None else f"{protocol['num_frames']} frames"
    return (f"{protocol['num_real']} real and {protocol['num_fake']} generated clips, {frames} from a "
            f"{protocol['window']} window (stride {protocol['stride']}), {protocol['resize']}, seed {protocol['seed']}, "
            f"{protocol['num_trials']} trial(s), features {protocol['network'].split(' (')[0]} "
            f"(fingerprint {protocol['fingerprint']})")


def ladder_rows(metadata, scores):
    """`(header, rows)` of the replay ladder beside the model's own figures, or None without a ladder."""
    ladder = metadata.get("baselines")
    if not ladder:
        return None
    metrics = [m for m in LADDER_METRICS if m in ladder[0]]
    header = ["clips scored", *metrics]
    rows = [["this model", *[f"{scores[m]['value']:.4g}" if m in scores else "-" for m in metrics]]]
    rows += [[row["name"], *[f"{row[m]:.4g}" for m in metrics]] for row in ladder]
    return header, rows


def _ladder_lines(metadata, scores):
    table = ladder_rows(metadata, scores)
    if table is None:
        return []
    header, rows = table
    lines = ["", "### Against the replay ladder", "",
             "The same recipe scores held-out real clips (the floor a perfect model reaches) and 'generators' that "
             "replay k of those held-out clips over and over, with no variety beyond those k: a model that scores "
             "no better than a small replayer has not shown that it makes varied clips. Distances (FVD, KVD) "
             "cannot see copying; recall (the share of real clips the generated ones reach) and the memorisation "
             "check below can. Read the model's figures against these:", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    memo = scores.get("memorisation")
    if memo:
        lines += ["", f"Memorisation: the generated clips' median distance to their nearest of {memo['num_train']} "
                  f"training clips is {memo['fake_median']:.4g}, held-out real clips' {memo['held_out_median']:.4g} "
                  f"(ratio {memo['value']:.3g}; a copier sits far below 1); {memo['copied_fraction']:.1%} of "
                  "generated clips are nearer a training clip than the held-out clips' 5th percentile (about 5% "
                  "for novel clips)" + (f", {memo['fake_repeats']:.1%} equal one" if memo.get("fake_repeats") is not None
                                        else "") + "."]
    return lines


def baselines_of(report):
    """`metadata.json` "baselines": the replay ladder's rows `{"name", "k", metric: value}` of a report."""
    return [{"name": row["name"], "k": row["k"],
             **{m: float(row[m]["value"]) for m in LADDER_METRICS if m in row}} for row in report.get("baselines", [])]


def write_real_sample(model, metadata, path, scale=3, fps=8):
    """Writes 8 real clips of the preset's dataset (seed 0) like its sample; returns their description or None."""
    from vidgen_tf import data, video_io

    dataset = metadata.get("dataset")
    if not dataset:
        return None
    options = dict(metadata.get("data_options") or {})
    videos = data.make_videos(dataset, 8, num_frames=model.num_frames, height=model.height, width=model.width,
                              channels=model.channels, seed=0, **options)
    video_io.write_video(path, videos, fps=fps, scale=scale)
    return (f"{len(videos)} clips of `{dataset}` (seed 0) at the model's {model.num_frames} frames of "
            f"{model.height}x{model.width}, enlarged {scale}x like the samples")


def rewrite_card(directory, name=None):
    """Rewrites the marked part of the card of the preset `directory` from its `metadata.json` (no scoring)."""
    from vidgen_tf import atomic, presets

    directory = Path(directory)
    name = name or directory.name
    metadata = presets._read_json(directory / presets.METADATA_FILE, "metadata")
    card = directory / "README.md"
    old = card.read_text(encoding="utf-8") if card.is_file() else ""
    section = card_section(name, metadata, metadata.get("scores", {}), metadata["scored_by"]["command"],
                           metadata.get("best_checkpoint"))
    with atomic.atomic_file(card) as temporary:
        temporary.write_text(_merged_card(old, section, name), encoding="utf-8")
    return card


def _merged_card(old_text, section, name):
    if not old_text:
        return f"# {name}\n\n{section}"
    if BEGIN in old_text and END in old_text:
        before, _, rest = old_text.partition(BEGIN)
        _, _, after = rest.partition(END)
        return before + section.rstrip("\n") + after
    return old_text.rstrip("\n") + "\n\n" + section


def _write_best_weights(run, checkpoint, path):
    """The model weights of a best checkpoint (a compiled model's whole state: weights, optimizer slots,
    step counters) as a preset's weights file, `preset_model()`'s as `save_preset` writes them."""
    import vidgen_tf
    from vidgen_tf import atomic

    model = vidgen_tf.from_preset(str(run))
    model.compile(seed=0)  # the optimizers whose slots the checkpoint holds, as `vidgen train` resumes
    model.load_weights(checkpoint)
    stored = model.preset_model() if hasattr(model, "preset_model") else model
    atomic.save_weights(stored, path)  # a full disk is an error naming the file, not an HDF5 crash


# What a zoo preset folder holds: `vidgen publish` replaces a folder holding nothing else.
PRESET_FOLDER_FILES = ("config.json", "metadata.json", "model.weights.h5", "README.md", SAMPLE_FILE, REAL_FILE, ".preset-new")


def _check_target(target, overwrite):
    """Refuses to replace `target` unless it is a zoo preset folder (or a card waiting for one) and,
    for a preset, `--overwrite` is given."""
    from vidgen_tf import presets

    if not target.exists():
        return
    if not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder; give another --name or move it away.")
    foreign = sorted(p.name for p in target.iterdir() if p.name not in PRESET_FOLDER_FILES)
    if foreign:
        raise UsageError(f"{target} holds files that are not a preset's ({', '.join(foreign)}); publish replaces "
                         "a preset folder whole, so it leaves this one alone: give another --name or move them away.")
    if (target / presets.CONFIG_FILE).is_file() and not overwrite:
        raise UsageError(f"The zoo already holds the preset {target}; pass --overwrite to replace it (its card's "
                         "hand-written text and description are kept).")


def cmd_publish(args):
    """Publishes a trained run as the zoo preset `--name`: weights, scores, sample, card."""
    import vidgen_tf
    from vidgen_tf import atomic, presets, video_io

    run = Path(args.run)
    if not (run / presets.CONFIG_FILE).is_file():
        raise UsageError(f"{run} is not a preset or `vidgen train --out` directory (no {presets.CONFIG_FILE}).")
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise UsageError(f"--name must be a plain folder name, got {args.name!r}.")
    zoo = Path(args.zoo) if args.zoo else presets.zoo_dir()
    if not zoo.is_dir():
        raise UsageError(f"The zoo directory {zoo} does not exist.")
    best_record = None
    if args.weights == "best":
        best_path = run / "checkpoints" / "best.json"
        if best_path.is_file():
            best_record = presets._read_json(best_path, "best-checkpoint record")
            weights = run / "checkpoints" / "best.weights.h5"
        else:
            weights = run / presets.WEIGHTS_FILE
    else:
        weights = run / presets.WEIGHTS_FILE
    if not weights.is_file():
        raise UsageError(f"{weights} does not exist: the run has no trained weights to publish.")
    metadata = presets._read_json(run / presets.METADATA_FILE, "metadata")
    if args.recipe:
        metadata["command"] = list(args.recipe)
    target = zoo / args.name
    _check_target(target, args.overwrite)
    old_card = (target / "README.md").read_text() if (target / "README.md").is_file() else ""
    old_metadata = target / presets.METADATA_FILE
    old_metadata = presets._read_json(old_metadata, "metadata") if old_metadata.is_file() else {}
    old_description = old_metadata.get("description")

    # Made and scored in a scratch folder (a preset of its own name, which `vidgen eval` reads),
    # then moved into the zoo in one atomic step: the zoo never holds a half-made preset.
    with tempfile.TemporaryDirectory(prefix="vidgen-publish-") as scratch:
        staging = Path(scratch) / args.name
        staging.mkdir()
        shutil.copy2(run / presets.CONFIG_FILE, staging / presets.CONFIG_FILE)
        if best_record:
            _write_best_weights(run, weights, staging / presets.WEIGHTS_FILE)
        else:
            shutil.copy2(weights, staging / presets.WEIGHTS_FILE)
        # Only what a preset needs: the run's own bookkeeping (checkpoints, logs) stays in the run.
        # The zoo's one-line description stays unless --description gives another.
        metadata["description"] = args.description or old_description or metadata.get("description", "")
        if best_record:
            metadata["best_checkpoint"] = best_record
        presets._write_json(staging / presets.METADATA_FILE, metadata)
        model = vidgen_tf.from_preset(str(staging))
        metrics = default_metrics(metadata.get("dataset")) if args.metrics is None else args.metrics
        # The ladder reads clip features: only beside metrics that do (not motion alone).
        baselines = args.baselines and any(m.strip() in (*LADDER_METRICS, "memorisation")
                                           for m in (metrics or "").split(","))
        report = _eval_report(staging, metrics, args.num_videos, args.seed, args.batch_size, baselines,
                              run=args.vidgen_main)
        scores = scores_of(report)
        eval_command = (f"vidgen eval {args.name} --num-videos {args.num_videos} --seed {args.seed}"
                        f" --batch-size {args.batch_size}" + (f" --metrics {metrics}" if metrics else "")
                        + (" --baselines" if baselines else ""))
        for key, value in (("baselines", baselines_of(report)), ("protocol", report.get("protocol"))):
            if value:
                metadata[key] = value
            else:
                metadata.pop(key, None)
        if args.headline is not None and args.headline not in scores:
            raise UsageError(f"--headline {args.headline} is not among the scores: {', '.join(sorted(scores))}.")
        metadata["scores"] = scores
        metadata["headline"] = args.headline or _headline(scores, old_metadata.get("headline"))
        # How to score it again: tests/test_zoo.py reruns this and compares.
        metadata["scored_by"] = {"command": eval_command, "num_videos": args.num_videos, "seed": args.seed,
                                 "batch_size": args.batch_size, "metrics": metrics, "baselines": baselines}
        # A conditional model's sample shows its classes in turn (0, 1, 2, ...).
        from vidgen_tf.callbacks._common import sample_labels

        videos = model.generate(8, seed=0, labels=sample_labels(model, 8, None)).numpy()
        video_io.write_video(staging / SAMPLE_FILE, videos, fps=8, scale=3)
        metadata["real_sample"] = write_real_sample(model, metadata, staging / REAL_FILE)
        if metadata["real_sample"] is None:
            del metadata["real_sample"]
        presets._write_json(staging / presets.METADATA_FILE, metadata)
        # Re-scoring a published preset (no checkpoints of its own): the card keeps its recorded best checkpoint.
        best = best_record or metadata.get("best_checkpoint")
        section = card_section(args.name, metadata, scores, eval_command, best)
        (staging / "README.md").write_text(_merged_card(old_card, section, args.name), encoding="utf-8")
        _check_target(target, args.overwrite)  # again: the zoo may have changed while the preset was scored
        with atomic.atomic_directory(target) as final:
            for path in staging.iterdir():
                shutil.copy2(path, final / path.name)
    headline = metadata["headline"]
    print(f"published {target}: {presets.describe_score(headline, scores[headline]) if headline else 'no scores'}")
    return 0

