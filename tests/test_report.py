"""vidgen_tf.report and `vidgen report`: the HTML page, its assets, curves, scores, atomic writing."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import vidgen_tf
from vidgen_tf import cli, report, video_io

TINY = dict(num_frames=4, height=16, width=16, channels=1, content_dim=8, motion_dim=4,
            generator_width=8, discriminator_width=8)


class _References(HTMLParser):
    """Every src / href of a page, and the tags they came from."""

    def __init__(self):
        super().__init__()
        self.references = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "poster", "data"):
                self.references.append((tag, name, value))


def references(page):
    parser = _References()
    parser.feed(Path(page).read_text(encoding="utf-8"))
    return parser.references


def make_run(directory, num_classes=0, dataset="moving_square", metrics=True, tensorboard=True, **metadata):
    """A small `vidgen train`-like run directory: preset files, metrics.jsonl, TensorBoard scalars."""
    model = vidgen_tf.build("mocogan", num_classes=num_classes, **TINY)
    model.generate(1, seed=0, labels=[0] if num_classes else None)  # builds the weights
    vidgen_tf.save_preset(model, directory, dataset=dataset, training_steps=6, description="a tiny test run",
                          training_seconds=75.0, **metadata)
    if metrics:
        lines = [{"step": s, "num_videos": 8, "num_real": 8, "feature_network": None, "motion_total": 10.0 - s,
                  "motion": {"total": 10.0 - s}} for s in (2, 4, 6)]
        (directory / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if tensorboard:
        writer = tf.summary.create_file_writer(str(directory / "tb" / "train"))
        with writer.as_default():
            for step in range(1, 7):
                tf.summary.scalar("d_loss", 3.0 - 0.1 * step, step=step)
                tf.summary.scalar("g_loss", 1.0 + 0.05 * step, step=step)
        writer.close()
    return directory


def check_page(page):
    """The checks every report passes: its assets exist, nothing is fetched from a network."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), "the page names a network address"
    found = references(page)
    assert found, "the page references no assets"
    for tag, attribute, value in found:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", value), f"<{tag} {attribute}={value}> is not a relative path"
        assert (page.parent / value).is_file(), f"<{tag} {attribute}={value}> does not exist"
        assert Path(value).parts[0] == report.default_assets_dir(page).name
    return text, found


def check_samples(folder):
    with Image.open(folder / "samples.gif") as gif:
        assert gif.n_frames > 1 and gif.is_animated
    with av.open(str(folder / "samples.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(frames) == TINY["num_frames"]
    return frames


def test_report_of_a_run_has_samples_curves_scores_config_and_metadata(tmp_path):
    run = make_run(tmp_path / "run")
    page = report.write_report(run, tmp_path / "report.html", num_samples=4, scale=3)
    assert page == tmp_path / "report.html"
    text, found = check_page(page)
    assets = tmp_path / "report_files"
    assert sorted(p.name for p in assets.iterdir()) == ["curves.png", "real.gif", "samples.gif", "samples.mp4"]
    assert {(tag, value) for tag, _, value in found} == {
        ("img", "report_files/samples.gif"), ("video", "report_files/samples.mp4"), ("img", "report_files/curves.png"),
        ("img", "report_files/real.gif")}
    frames = check_samples(assets)
    # 4 videos in a 2x2 grid of 16x16 cells enlarged 3 times, 2 px separators: 98x98.
    assert frames[0].shape == (98, 98, 3)
    # Real clips of the run's dataset beside them: the same frames, grid and enlargement.
    with Image.open(assets / "samples.gif") as samples, Image.open(assets / "real.gif") as real:
        assert (real.n_frames, real.size) == (samples.n_frames, samples.size)
    assert "Real clips for comparison: 4 real clips of moving_square (seed 0)" in text
    with Image.open(assets / "curves.png") as curves:
        assert curves.format == "PNG" and curves.width > 100 and curves.height > 100
    assert "From metrics.jsonl (3 evaluations), 1 TensorBoard event file(s)." in text
    assert "Last sample metrics of <code>metrics.jsonl</code> (step 6, 8 generated, 8 real)" in text
    assert "<td>motion</td><td>4</td>" in text  # the last record's figure
    assert "<td>content_dim</td><td>8</td>" in text
    assert "<td>training steps</td><td>6</td>" in text and "<td>training time</td><td>1m15s</td>" in text
    assert "<td>version of tensorflow</td><td>" + tf.__version__ in text
    assert "<td>dataset</td><td>moving_square</td>" in text
    assert "untrained" not in text  # the run has weights


def test_curves_read_metrics_jsonl_and_tensorboard_scalars(tmp_path):
    run = make_run(tmp_path / "run")
    series = report.tensorboard_series(report.event_files(run))
    assert series["d_loss"][0] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(series["g_loss"][1], [1.05, 1.1, 1.15, 1.2, 1.25, 1.3], rtol=1e-6)
    records = report.read_metrics_jsonl(run / "metrics.jsonl")
    assert report.metric_series(records) == {"motion": ([2, 4, 6], [8.0, 6.0, 4.0])}
    # A torn last line (a killed run) is skipped; a bad line elsewhere is named.
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 8, "mot')
    assert len(report.read_metrics_jsonl(run / "metrics.jsonl")) == 3
    (run / "bad.jsonl").write_text('not json\n{"step": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 1: not a JSON object"):
        report.read_metrics_jsonl(run / "bad.jsonl")


def test_report_without_curves_says_why_and_shows_the_card_scores(tmp_path):
    preset = make_run(tmp_path / "preset", metrics=False, tensorboard=False, held_out_bits_per_dim=0.5)
    (preset / "README.md").write_text("# card\n\n## Held-out likelihood\n\n| measure | value |\n| --- | --- |\n"
                                      "| bits per dimension | **0.5** |\n")
    page = report.write_report(preset, tmp_path / "p.html")
    text, _ = check_page(page)
    assert not (tmp_path / "p_files" / "curves.png").exists()
    assert "No curves:" in text and "no metrics.jsonl and no TensorBoard event files" in text
    assert "<td>held_out_bits_per_dim</td><td>0.5</td>" in text
    assert "From the model card (<code>README.md</code>), Held-out likelihood:" in text
    assert "<td>bits per dimension</td><td>0.5</td>" in text
    assert "not scored" not in text


def test_report_of_a_zoo_preset_has_no_curves_and_shows_its_scores(tmp_path):
    page = report.write_report("mocogan_moving_digits", tmp_path / "zoo.html", num_samples=2)
    text, _ = check_page(page)
    assert "No curves:" in text and "has no model.weights.h5" not in text
    fvd = vidgen_tf.presets.load_preset_config("mocogan_moving_digits")[2]["scores"]["fvd"]["value"]
    assert "not scored" not in text and f"{fvd:.4g}" in text
    with Image.open(tmp_path / "zoo_files" / "samples.gif") as gif:
        assert gif.n_frames == 8  # the preset's frame count
        assert gif.height == 32 * 3  # 32x32 frames enlarged to 96 pixels


def test_report_of_an_untrained_preset_says_so_and_not_scored(tmp_path):
    model = vidgen_tf.build("mocogan", **TINY)
    model.generate(1, seed=0)
    vidgen_tf.save_preset(model, tmp_path / "untrained", dataset="moving_square", weights=False)
    text, _ = check_page(report.write_report(tmp_path / "untrained", tmp_path / "u.html", num_samples=2))
    assert "No curves:" in text and "has no model.weights.h5" in text and "not scored" in text


def test_eval_json_of_a_run_is_shown_in_the_scores(tmp_path):
    run = make_run(tmp_path / "run", metrics=False, tensorboard=False)
    (run / "eval.json").write_text(json.dumps({
        "dataset": "moving_square", "num_videos": 16, "seed": 12345, "motion": {"total": 1.25},
        "sample_metrics": {"fvd": {"value": 42.5, "feature_network": "builtin"}}}))
    text, _ = check_page(report.write_report(run, tmp_path / "r.html"))
    assert "From <code>eval.json</code>" in text and "16 videos of moving_square, seed 12345" in text
    assert "<td>fvd</td><td>42.5</td><td>builtin</td>" in text and "<td>motion</td><td>1.25</td>" in text


def test_the_replay_ladder_of_eval_json_is_shown_beside_the_models_figures(tmp_path):
    run = make_run(tmp_path / "run", metrics=False, tensorboard=False)
    (run / "eval.json").write_text(json.dumps({
        "dataset": "moving_square", "num_videos": 16, "seed": 1,
        "sample_metrics": {"fvd": {"value": 42.5, "feature_network": "builtin"},
                           "recall": {"value": 0.25, "feature_network": "builtin"}},
        "protocol": {"num_real": 16, "window": "start", "stride": 2, "fingerprint": "80532f7b2aa0"},
        "baselines": [{"name": "held-out real", "k": None, "fvd": {"value": 6.5}, "recall": {"value": 0.875}},
                      {"name": "replay k=16", "k": 16, "fvd": {"value": 192.5}, "recall": {"value": 0.0}}]}))
    text, _ = check_page(report.write_report(run, tmp_path / "r.html"))
    assert "The replay ladder (<code>vidgen eval --baselines</code>" in text
    assert "<th>clips scored</th><th>fvd</th><th>recall</th>" in text
    assert "<td>this model</td><td>42.5</td><td>0.25</td>" in text
    assert "<td>held-out real</td><td>6.5</td><td>0.875</td>" in text
    assert "<td>replay k=16</td><td>192.5</td><td>0</td>" in text
    assert "Protocol: num_real 16, window start, stride 2, fingerprint 80532f7b2aa0" in text


def test_conditional_samples_have_one_labelled_row_per_class(tmp_path):
    run = make_run(tmp_path / "run", num_classes=3, dataset="moving_shapes", metrics=False, tensorboard=False)
    page = report.write_report(run, tmp_path / "c.html", num_samples=6, scale=2)
    check_page(page)
    frames = check_samples(tmp_path / "c_files")
    cells = 3 * 32 + 2 * 2  # three rows of 32-pixel cells, 2 px separators
    assert frames[0].shape[0] == cells + (cells % 2)  # H.264 pads odd sizes
    gif = video_io.read_video(tmp_path / "c_files" / "samples.gif")
    expected = video_io.video_grid(np.zeros((6, 1, 16, 16, 1), np.uint8), columns=2, scale=2,
                                   row_labels=["square", "circle", "triangle"])
    strip = expected.shape[2] - (2 * 32 + 2)  # the label strip and its separator
    assert gif.shape[2] == expected.shape[2]
    np.testing.assert_array_equal(gif[0, :, :strip], expected[0, :, :strip])  # the class names, drawn


def test_a_failed_report_keeps_the_previous_one_and_leaves_nothing(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    page = report.write_report(run, tmp_path / "report.html", num_samples=2)
    before = page.read_text()
    gif_before = (tmp_path / "report_files" / "samples.gif").read_bytes()

    def broken(series, path):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(report, "_plot_curves", broken)
    with pytest.raises(RuntimeError, match="plotting failed"):
        report.write_report(run, tmp_path / "report.html", num_samples=4, seed=7, overwrite=True)
    assert page.read_text() == before
    assert (tmp_path / "report_files" / "samples.gif").read_bytes() == gif_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report_files", "run"]


def test_bad_arguments_are_named(tmp_path):
    run = make_run(tmp_path / "run", metrics=False, tensorboard=False)
    with pytest.raises(ValueError, match=r"`scale` must be an integer >= 1"):
        report.write_report(run, tmp_path / "r.html", scale=0)
    with pytest.raises(ValueError, match=r"'.*r\.txt' must be an \.html file"):
        report.write_report(run, tmp_path / "r.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.write_report(run, tmp_path / "missing" / "r.html")
    with pytest.raises(ValueError, match="`num_samples` must be an integer >= 1"):
        report.write_report(run, tmp_path / "r.html", num_samples=0)


def test_vidgen_report_command_prints_what_it_wrote(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    out = tmp_path / "page.html"
    assert cli.main(["report", str(run), "--out", str(out), "--num", "2", "--scale", "2"]) == 0
    printed = capsys.readouterr().out
    assets = tmp_path / "page_files"
    assert printed.strip() == f"wrote {out} (assets in {assets}/: curves.png, real.gif, samples.gif, samples.mp4)"
    check_page(out)
    assert cli.main(["report", str(run), "--out", str(out), "--scale", "0"]) == 2
    assert "--scale must be an integer >= 1" in capsys.readouterr().err



def test_vidgen_report_replaces_a_report_only_with_overwrite_and_never_someone_s_files(tmp_path, capsys):
    run = make_run(tmp_path / "run", metrics=False, tensorboard=False)
    out = tmp_path / "page.html"
    argv = ["report", str(run), "--out", str(out), "--num", "2"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert f"The report {out} exists already; pass --overwrite to replace it." in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0
    (tmp_path / "page_files" / "thesis.txt").write_text("mine")
    page = out.read_text()
    assert cli.main([*argv, "--overwrite"]) == 2
    assert "page_files holds files that are not a report's (thesis.txt)" in capsys.readouterr().err
    assert (tmp_path / "page_files" / "thesis.txt").read_text() == "mine" and out.read_text() == page
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes</p>")
    assert cli.main(["report", str(run), "--out", str(notes), "--overwrite"]) == 2
    assert f"{notes} exists and is not a vidgen report" in capsys.readouterr().err
    assert notes.read_text() == "<p>my notes</p>" and not (tmp_path / "notes_files").exists()

TRAIN = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
         "--channels", "1", "--batch-size", "4", "--steps", "2", "--checkpoint-every", "2", "--quiet",
         "--num-samples", "2", "--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
         "--set", "discriminator_width=8"]


@pytest.mark.large
def test_vidgen_train_writes_a_report_unless_no_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TRAIN, "--out", str(out), "--tensorboard", str(tmp_path / "tb")]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'} (assets in {out / 'report_files'})" in printed
    text, _ = check_page(out / "report.html")
    assert (out / "report_files" / "curves.png").is_file()  # the losses, from --tensorboard outside the run
    assert "1 TensorBoard event file(s)" in text
    assert json.loads((out / "metadata.json").read_text())["training_seconds"] > 0

    other = tmp_path / "quiet_run"
    assert cli.main([*TRAIN, "--out", str(other), "--no-report"]) == 0
    assert "report:" not in capsys.readouterr().out
    assert not (other / "report.html").exists() and not (other / "report_files").exists()


def test_a_resumed_run_adds_its_training_time_to_the_recorded_one(tmp_path):
    from vidgen_tf.cli.train import _recorded_training_seconds

    assert _recorded_training_seconds(tmp_path) == 0.0  # no preset yet
    make_run(tmp_path / "run", metrics=False, tensorboard=False)  # records 75 s
    assert _recorded_training_seconds(tmp_path / "run") == 75.0


def test_a_run_without_tensorboard_plots_its_losses_from_losses_jsonl(tmp_path, capsys):
    def train(steps):
        args = list(TRAIN)
        args[args.index("--steps") + 1] = str(steps)
        return cli.main([*args, "--out", str(out), "--log-every", "2"])

    out = tmp_path / "run"
    assert train(6) == 0
    lines = report.read_metrics_jsonl(out / report.LOSSES_FILE)
    assert [line["step"] for line in lines] == [2, 4, 6]
    assert all(np.isfinite(line["d_loss"]) and np.isfinite(line["g_loss"]) for line in lines)
    text, _ = check_page(out / "report.html")
    assert (out / "report_files" / "curves.png").is_file()
    assert f"{report.LOSSES_FILE} (3 lines)" in text

    # Resumed to step 8 from its step-6 checkpoint: steps are appended, each plotted once.
    capsys.readouterr()
    assert train(8) == 0
    steps = [line["step"] for line in report.read_metrics_jsonl(out / report.LOSSES_FILE)]
    assert steps == [2, 4, 6, 8]
    series = report._last_per_step(report.metric_series(report.read_metrics_jsonl(out / report.LOSSES_FILE)))
    assert series["d_loss"][0] == [2, 4, 6, 8]


def test_last_per_step_keeps_the_last_value_of_a_repeated_step():
    series = {"d_loss": ([2, 4, 4, 6], [1.0, 2.0, 3.0, 4.0])}
    assert report._last_per_step(series) == {"d_loss": ([2, 4, 6], [1.0, 3.0, 4.0])}


def test_log_every_must_be_positive(tmp_path):
    assert cli.main([*TRAIN, "--out", str(tmp_path / "run"), "--log-every", "0"]) == 2
