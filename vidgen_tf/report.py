"""An HTML report of a preset or a `vidgen train` run: samples, curves, scores, configuration.

`write_report(source, out)` writes `out` (e.g. `report.html`) and its assets in
a folder beside it named after it (`report_files/`): sample videos from fixed
noise as GIF and MP4 (H.264, yuv420p), enlarged by nearest neighbour, one row
per class with the class names for conditional models; the training curves
(PNG, matplotlib's Agg backend) from the run's `metrics.jsonl` and TensorBoard
event files; the scores (the preset's metadata and model card, a run's
`eval.json` from `vidgen eval --json` and the last sample metrics); the
configuration and metadata. The page has no network references: no scripts,
fonts or styles from elsewhere; everything it shows is in its folder.

Both are staged and moved into place at the end (the folder, then the page),
so a failed report leaves the previous one. An existing report is replaced only
when told (`overwrite=True`, `vidgen report --overwrite`), and a page or folder
that is not a report's is never (see `check_report_target`).

Example:

```python
from vidgen_tf import report
report.write_report("runs/mocogan", "runs/mocogan/report.html", tensorboard_dir="runs/mocogan/tb")
report.write_report("hmm_moving_square", "hmm.html")   # a zoo preset: no curves, its card's scores
```
"""

import html
import json
import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from vidgen_tf import atomic, presets

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"  # `vidgen train --metrics`: one JSON line per evaluation
LOSSES_FILE = "losses.jsonl"  # `vidgen train`: the losses every --log-every steps (callbacks.LossLog)
EVAL_FILE = "eval.json"  # `vidgen eval RUN --json RUN/eval.json`
CARD_FILE = "README.md"
# Sample cells are enlarged to at least this height (nearest neighbour), at most 8 times.
_TARGET_CELL_HEIGHT = 96
_MAX_SCALE = 8
# Keys of a metrics.jsonl record that are bookkeeping, not figures.
_RECORD_KEYS = {"step", "num_videos", "num_real", "feature_network", "motion"}

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; background: #fff; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } code, pre { font-family: monospace; background: #f6f6f6; }
pre { padding: .6em; overflow-x: auto; } .note { color: #555; } figure { display: inline-block; margin: 0 2em 1em 0; }
img, video { border: 1px solid #ccc; box-sizing: border-box; max-width: 100%; height: auto; }
figure img, video { image-rendering: pixelated; }
"""


def default_assets_dir(out):
    """The assets folder of the page `out`: `<stem>_files` beside it (`report.html` -> `report_files/`)."""
    out = Path(out)
    return out.parent / f"{out.stem}_files"


ASSET_FILES = ("samples.gif", "samples.mp4", "curves.png", "real.gif")  # what a report's assets folder holds


def check_report_target(out, overwrite=False, overwrite_flag="overwrite=True"):
    """Refuses to write the page `out` and its assets folder over anything but a report, or unless told.

    A page is a report's when it shows its assets folder's samples, and the folder is
    a report's when it holds only `ASSET_FILES`; anything else there is someone's own
    and is never replaced.

    Args:
        out: str or Path. The page.
        overwrite: bool. Whether an existing report may be replaced. Defaults to False.
        overwrite_flag: str. How the message names `overwrite` (the CLI: `--overwrite`).

    Raises:
        FileExistsError: the page or the folder exists and is not a report's, or is one
            and `overwrite` is False.
    """
    out = Path(out)
    assets = default_assets_dir(out)
    if os.path.lexists(out):
        try:
            ours = out.is_file() and f'{_e(assets.name)}/samples.gif"'.encode() in out.read_bytes()
        except OSError:
            ours = False
        if not ours:
            raise FileExistsError(f"{out} exists and is not a vidgen report (it does not show {assets.name}/"
                                  "samples.gif); a report never replaces it: give another page or move it away.")
    if os.path.lexists(assets):
        foreign = sorted(p.name for p in assets.iterdir() if p.name not in ASSET_FILES) if assets.is_dir() else [""]
        if foreign:
            what = f"holds files that are not a report's ({', '.join(foreign[:5])})" if foreign != [""] else \
                "is not a folder"
            raise FileExistsError(f"{assets} {what}; the report's assets folder is replaced whole, so it leaves "
                                  "this one alone: give another page or move them away.")
    if not overwrite and (os.path.lexists(out) or os.path.lexists(assets)):
        raise FileExistsError(f"The report {out} exists already; pass {overwrite_flag} to replace it.")


def auto_scale(height):
    """The nearest-neighbour factor that makes a `height`-pixel cell at least 96 pixels tall (1 to 8)."""
    return int(max(1, min(_MAX_SCALE, math.ceil(_TARGET_CELL_HEIGHT / max(int(height), 1)))))


# ---------------------------------------------------------------------------
# What a preset or run directory holds
# ---------------------------------------------------------------------------


def read_metrics_jsonl(path):
    """The records of a `metrics.jsonl` file, in order; a torn last line (a killed run) is skipped.

    Raises:
        ValueError: a line other than the last is not a JSON object; the message names the file and line.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            if number == len(lines):
                logger.warning("%s: skipping its unfinished last line %d", path, number)
                continue
            raise ValueError(f"{path}, line {number}: not a JSON object ({error}).") from error
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}, line {number}: expected a JSON object with a 'step', got {line[:80]!r}.")
        records.append(record)
    return records


def metric_series(records):
    """`{name: (steps, values)}` of the figures in `metrics.jsonl` records (motion's total as `motion`)."""
    series = {}
    for record in records:
        for name, value in record.items():
            if name in _RECORD_KEYS or name.endswith("_std") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                # `motion_total` is what TensorBoard calls metrics/motion.
                name = "motion" if name == "motion_total" else name
                steps, values = series.setdefault(name, ([], []))
                steps.append(int(record["step"]))
                values.append(float(value))
    return series


def _last_per_step(series):
    """`series` with each step once, keeping its last value (a resumed run logs its steps again)."""
    result = {}
    for name, (steps, values) in series.items():
        last = dict(zip(steps, values))
        ordered = sorted(last)
        result[name] = (ordered, [last[step] for step in ordered])
    return result


def event_files(*directories):
    """The TensorBoard event files under each existing directory (recursively), sorted, without repeats."""
    found = set()
    for directory in directories:
        if directory is not None and Path(directory).is_dir():
            found.update(p.resolve() for p in Path(directory).rglob("events.out.tfevents.*") if p.is_file())
    return sorted(found)


def tensorboard_series(files):
    """`{tag: (steps, values)}` of the scalar summaries in TensorBoard event files (sorted by step).

    A step logged twice (a resumed run) keeps its last value.
    """
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    scalars = {}
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = event_pb2.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        number = float(value.simple_value)
                    elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                        number = float(tf.make_ndarray(value.tensor))
                    else:
                        continue
                    if math.isfinite(number):
                        scalars.setdefault(value.tag, {})[int(event.step)] = number
        except tf.errors.DataLossError:  # a file a running writer has not finished: keep what was read
            logger.warning("%s: truncated TensorBoard event file, read up to the damage", path)
    return {tag: (sorted(points), [points[s] for s in sorted(points)]) for tag, points in scalars.items()}


def _card_tables(card):
    """The Markdown tables of a model card: a list of `(heading, rows)`, each row a list of cell texts."""
    tables, heading, rows = [], "", []
    for line in card.splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [cell.strip() for cell in stripped[1:-1].split("|")]
            if not all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):
                rows.append([re.sub(r"(\*\*|`)", "", cell) for cell in cells])
            continue
        if rows:
            tables.append((heading, rows))
            rows = []
        if stripped.startswith("#"):
            heading = stripped.lstrip("#").strip()
    return tables


def _metadata_scores(metadata):
    """`[(name, value)]` of the numeric figures in metadata.json (not its step count or versions)."""
    return [
        (key, value) for key, value in sorted(metadata.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        and key not in ("training_steps", "training_seconds")
    ]


def _eval_scores(report):
    """`[(name, value, detail)]` of a `vidgen eval --json` file."""
    rows = []
    for key in ("nll_nats_per_video", "bits_per_dim"):
        if key in report:
            rows.append((key, report[key], report.get("bits_per_dim_kind", "") if key == "bits_per_dim" else ""))
    for name, value in (report.get("sample_metrics") or {}).items():
        figure = value.get("value", value) if isinstance(value, dict) else value
        detail = value.get("feature_network", "") if isinstance(value, dict) else ""
        rows.append((name, figure, detail))
    if "motion" in report and isinstance(report["motion"], dict):
        rows.append(("motion", report["motion"].get("total"), "distance to the dataset's true motion"))
    return rows


def _ladder_table(report):
    """The replay ladder of a `vidgen eval --baselines` report, the model's own figures in the first row."""
    ladder = report["baselines"]
    metrics = [key for key in ladder[0] if key not in ("name", "k")]
    own = report.get("sample_metrics") or {}
    rows = [("this model", *[_format(own[m]["value"]) if m in own else "-" for m in metrics])]
    rows += [(row["name"], *[_format(row[m]["value"]) for m in metrics]) for row in ladder]
    return ("<p>The replay ladder (<code>vidgen eval --baselines</code>, the same recipe): held-out real clips, and "
            "'generators' replaying k of them. Read the model's figures against these:</p>"
            + _table(("clips scored", *metrics), rows))


# ---------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------


def _class_names(model, metadata):
    """Names of the model's classes: the dataset's, when it has as many, else `class 0`, `class 1`, ..."""
    names = None
    dataset = metadata.get("dataset")
    if dataset:
        from vidgen_tf import data

        options = dict(metadata.get("data_options") or {})
        try:
            names = data.class_names(dataset, **options)
        except Exception as error:  # noqa: BLE001 - a dataset gone or moved: numbered classes still do
            logger.warning("No class names for %s (%s); numbering the classes", dataset, error)
    if not names or len(names) != model.num_classes:
        names = [f"class {i}" for i in range(model.num_classes)]
    return [str(name) for name in names]


def _write_samples(model, metadata, folder, num_samples, seed, scale, fps):
    """Writes `samples.gif` and `samples.mp4` into `folder`; returns a description of what they show."""
    from vidgen_tf import video_io

    if model.num_classes:
        per_class = max(1, num_samples // model.num_classes) if num_samples >= model.num_classes else 1
        labels = np.repeat(np.arange(model.num_classes), per_class)
        row_labels = _class_names(model, metadata)
        columns = per_class
    else:
        labels, row_labels, columns = None, None, None
    count = len(labels) if labels is not None else num_samples
    videos = np.asarray(model.generate(count, seed=seed, labels=labels))  # (B, T, H, W, C)
    grid = {"scale": scale, "columns": columns, "row_labels": row_labels}
    video_io.write_video(folder / "samples.gif", videos, fps=fps, **grid)
    video_io.write_video(folder / "samples.mp4", videos, fps=fps, **grid)
    what = (f"{count} videos of {videos.shape[1]} frames, {videos.shape[2]}x{videos.shape[3]}, "
            f"generated from seed {seed}")
    if row_labels:
        what += f"; one row per class ({per_class} per class)"
    return what + f"; shown {scale}x (nearest neighbour) at {fps} fps"


def _write_real_clips(model, metadata, folder, num_samples, scale, fps):
    """Writes `real.gif`: real clips of the preset's dataset, the samples' frames and enlargement.

    Returns a description of what it shows, or why there is none.
    """
    from vidgen_tf import data, video_io

    dataset = metadata.get("dataset")
    if not dataset:
        return None, "no real clips: the preset does not record its dataset"
    try:
        videos = data.make_videos(dataset, num_samples, num_frames=model.num_frames, height=model.height,
                                  width=model.width, channels=model.channels, seed=0,
                                  **dict(metadata.get("data_options") or {}))
    except Exception as error:  # noqa: BLE001 - a dataset gone or moved: the page says so
        logger.warning("No real clips of %s (%s)", dataset, error)
        return None, f"no real clips: {dataset} could not be read ({error})"
    video_io.write_video(folder / "real.gif", videos, fps=fps, scale=scale)
    return "real.gif", (f"{len(videos)} real clips of {dataset} (seed 0), the samples' {model.num_frames} frames of "
                        f"{model.height}x{model.width}, shown {scale}x at {fps} fps")


def _plot_curves(series, path):
    """One panel per series (sorted by name) in a PNG at `path`, with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no display
    from matplotlib.ticker import MaxNLocator

    names = sorted(series)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.2 * columns, 2.8 * rows), dpi=100, layout="constrained")
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        steps, values = series[name]
        axes.plot(steps, values, marker="." if len(steps) < 30 else None, linewidth=1.2)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.ticklabel_format(axis="y", useOffset=False)
        axes.grid(alpha=0.3)
    figure.savefig(path, format="png")


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------


def _e(value):
    return html.escape(str(value), quote=True)


def _table(header, rows):
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _format(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s" if minutes \
        else f"{seconds}s"


def write_report(source, out="report.html", num_samples=8, seed=0, scale=None, fps=8, tensorboard_dir=None,
                 overwrite=False):
    """Writes the HTML report of a preset or run directory, with its assets beside it.

    Args:
        source: str or Path. A zoo preset name or a preset directory (a
            `vidgen train --out` directory is one).
        out: str or Path. The page to write; the assets go to `<stem>_files/`
            beside it. Defaults to "report.html".
        num_samples: int. Sample videos (a conditional model shows
            `num_samples // num_classes` per class, at least one). Defaults to 8.
        seed: int. Seed of the sample noise. Defaults to 0.
        scale: int. Nearest-neighbour enlargement of the samples, >= 1.
            Defaults to None: the factor that makes frames at least 96 pixels tall.
        fps: int. Frames per second of the samples. Defaults to 8.
        tensorboard_dir: str or Path. A TensorBoard log directory to read
            curves from besides `source` itself (`vidgen train --tensorboard`).
            Defaults to None.
        overwrite: bool. Replace an existing report at `out`. Defaults to False.

    Returns:
        The `Path` of the page.

    Raises:
        ValueError: `num_samples`, `scale` or `fps` out of range, or a
            preset file that is not valid (named).
        FileExistsError: `out` or its assets folder exists and is not a report's,
            or is one and `overwrite` is False (see `check_report_target`).
    """
    import vidgen_tf

    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be an integer >= 1, got {num_samples!r}.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < math.inf:
        raise ValueError(f"`fps` must be a positive number, got {fps!r}.")
    directory = presets.resolve_preset(source)
    model_name, config, metadata = presets.load_preset_config(directory)
    model = vidgen_tf.from_preset(directory)
    if scale is None:
        scale = auto_scale(model.height)
    from vidgen_tf.video_io import _check_scale

    scale = _check_scale(scale)
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"The report '{out}' must be an .html file.")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"Cannot write the report '{out}': directory '{out.parent}' does not exist.")
    check_report_target(out, overwrite)
    assets = default_assets_dir(out)
    has_weights = (directory / presets.WEIGHTS_FILE).is_file()

    # Curves: the run's sample metrics and the TensorBoard scalars (losses every step).
    series, sources = {}, []
    metrics_path = directory / METRICS_FILE
    records = read_metrics_jsonl(metrics_path) if metrics_path.is_file() else []
    if records:
        series.update({f"metrics/{k}": v for k, v in metric_series(records).items()})
        sources.append(f"{METRICS_FILE} ({len(records)} evaluations)")
    losses_path = directory / LOSSES_FILE
    loss_records = read_metrics_jsonl(losses_path) if losses_path.is_file() else []
    if loss_records:
        series.update(_last_per_step(metric_series(loss_records)))
        sources.append(f"{LOSSES_FILE} ({len(loss_records)} lines)")
    files = event_files(directory, tensorboard_dir)
    if files:
        # The TensorBoard copy of a sample metric is the same figure: keep the metrics.jsonl one.
        series.update({k: v for k, v in tensorboard_series(files).items() if k not in series})
        sources.append(f"{len(files)} TensorBoard event file(s)")

    with atomic.atomic_file(out) as page:
        with atomic.atomic_directory(assets) as staging:
            samples_note = _write_samples(model, metadata, staging, num_samples, seed, scale, fps)
            real = _write_real_clips(model, metadata, staging, num_samples, scale, fps)
            if series:
                _plot_curves(series, staging / "curves.png")
            text = _page(directory, source, model_name, config, metadata, model, has_weights, assets.name,
                         samples_note, series, sources, records, tensorboard_dir, real)
            page.write_text(text, encoding="utf-8")
    logger.info("Wrote report %s (assets in %s)", out, assets)
    return out


def _page(directory, source, model_name, config, metadata, model, has_weights, assets, samples_note, series,
          sources, records, tensorboard_dir, real=(None, None)):
    title = f"{Path(str(source)).name} ({model_name})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>vidgen report: {_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(metadata.get('description') or model_name)}</p>",
        f"<p class=\"note\">Preset directory: <code>{_e(directory)}</code></p>",
    ]

    parts.append("<h2>Samples</h2>")
    if not has_weights:
        parts.append(f'<p class="note">This preset has no {presets.WEIGHTS_FILE}: the samples are of the '
                     "untrained model (its configuration with fresh weights).</p>")
    parts.append(f'<p class="note">{_e(samples_note)}.</p>')
    parts.append(f'<figure><img src="{_e(assets)}/samples.gif" alt="sample videos (animated GIF)">'
                 "<figcaption>GIF</figcaption></figure>")
    parts.append(f'<figure><video src="{_e(assets)}/samples.mp4" controls autoplay muted loop playsinline>'
                 "</video><figcaption>MP4 (H.264)</figcaption></figure>")
    real_file, real_note = real
    if real_file:
        parts.append(f'<figure><img src="{_e(assets)}/{_e(real_file)}" alt="real clips (animated GIF)">'
                     f"<figcaption>Real clips for comparison: {_e(real_note)}</figcaption></figure>")
    elif real_note:
        parts.append(f'<p class="note">{_e(real_note)}.</p>')

    parts.append("<h2>Training curves</h2>")
    if series:
        parts.append(f'<p class="note">From {_e(", ".join(sources))}.</p>')
        parts.append(f'<img src="{_e(assets)}/curves.png" alt="loss and metric curves">')
    else:
        looked = f"<code>{_e(directory)}</code>" + (f" and <code>{_e(tensorboard_dir)}</code>"
                                                     if tensorboard_dir else "")
        parts.append(f'<p class="note">No curves: {looked} hold(s) no {METRICS_FILE} and no TensorBoard event '
                     "files. A zoo preset keeps its recipe and scores, not a training log; a "
                     "<code>vidgen train</code> run has curves with <code>--metrics</code> (sample metrics) or "
                     "<code>--tensorboard DIR</code> (losses every step).</p>")

    parts.append("<h2>Scores</h2>")
    parts.append(_scores(directory, metadata, records))

    parts.append("<h2>Configuration</h2>")
    parts.append(_table(("key", "value"), [(k, _format(v)) for k, v in sorted(config.items())]))
    parts.append("<h2>Metadata</h2>")
    rows = [("model", model_name), ("dataset", metadata.get("dataset", "not recorded")),
            ("training steps", metadata.get("training_steps", "not recorded")),
            ("training time", _duration(metadata["training_seconds"]) if "training_seconds" in metadata
             else "not recorded")]
    rows += [(f"version of {k}", v) for k, v in sorted((metadata.get("versions") or {}).items())]
    shown = {"dataset", "training_steps", "training_seconds", "versions"}
    rows += [(k, _format(v)) for k, v in sorted(metadata.items()) if k not in shown]
    parts.append(_table(("field", "value"), rows))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _scores(directory, metadata, records):
    blocks = []
    eval_path = directory / EVAL_FILE
    if eval_path.is_file():
        report = presets._read_json(eval_path, "evaluation")
        rows = _eval_scores(report) if isinstance(report, dict) else []
        if rows:
            detail = (f"{report.get('num_videos', '?')} videos of {report.get('dataset', '?')}, "
                      f"seed {report.get('seed', '?')}")
            blocks.append(f"<p>From <code>{EVAL_FILE}</code> (<code>vidgen eval --json</code>; {_e(detail)}):</p>"
                          + _table(("score", "value", "detail"), [(n, _format(v), d) for n, v, d in rows]))
        if isinstance(report, dict) and isinstance(report.get("protocol"), dict):
            blocks.append('<p class="note">Protocol: '
                          + _e(", ".join(f"{k} {_format(v)}" for k, v in report["protocol"].items())) + "</p>")
        if isinstance(report, dict) and report.get("baselines"):
            blocks.append(_ladder_table(report))
    if records:
        last = records[-1]
        figures = [(name, _format(values[-1])) for name, (_, values) in sorted(metric_series([last]).items())]
        if figures:
            detail = f"step {last['step']}, {last.get('num_videos', '?')} generated, {last.get('num_real', '?')} real"
            if last.get("feature_network"):
                detail += f", features: {_format(last['feature_network'])}"
            blocks.append(f"<p>Last sample metrics of <code>{METRICS_FILE}</code> ({_e(detail)}):</p>"
                          + _table(("metric", "value"), figures))
    numbers = _metadata_scores(metadata)
    if numbers:
        blocks.append(f"<p>From <code>{presets.METADATA_FILE}</code>:</p>"
                      + _table(("score", "value"), [(k, _format(v)) for k, v in numbers]))
    card = directory / CARD_FILE
    if card.is_file():
        for heading, rows in _card_tables(card.read_text(encoding="utf-8")):
            header, body = rows[0], rows[1:]
            blocks.append(f"<p>From the model card (<code>{CARD_FILE}</code>)"
                          + (f", {_e(heading)}" if heading else "") + ":</p>" + _table(header, body))
    if not blocks:
        return ('<p class="note">not scored: no eval.json, no sample metrics, no figures in metadata.json or the '
                "model card. Score it with <code>vidgen eval PRESET --json DIR/eval.json</code>.</p>")
    return "\n".join(blocks)
