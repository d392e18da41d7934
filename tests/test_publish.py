"""`vidgen publish`: a trained run becomes a zoo preset with its scores, sample GIF and card, atomically."""

import json
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from PIL import Image

import vidgen_tf
from vidgen_tf import cli, presets
from vidgen_tf.cli import publish

TRAIN = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
         "--channels", "1", "--batch-size", "4", "--steps", "4", "--checkpoint-every", "2", "--quiet",
         "--num-samples", "2", "--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
         "--set", "discriminator_width=8", "--metrics", "motion", "--metrics-every", "2", "--metrics-videos", "8",
         "--keep-best", "motion", "--no-report"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert cli.main([*TRAIN, "--out", str(out)]) == 0
    return out


def published(run, zoo, *extra):
    return cli.main(["publish", str(run), "--name", "tiny_preset", "--zoo", str(zoo), "--metrics", "motion",
                     "--num-videos", "8", "--batch-size", "4", *extra])


def test_publish_writes_the_preset_with_eval_scores_sample_and_card(run, tmp_path, capsys):
    zoo = tmp_path / "zoo"
    (zoo / "tiny_preset").mkdir(parents=True)
    (zoo / "tiny_preset" / "README.md").write_text(
        "# tiny_preset\n\nHand-written text.\n\n" + publish.BEGIN + "\nold figures\n" + publish.END + "\n\nLimits.\n")
    (zoo / "tiny_preset" / "metadata.json").write_text(json.dumps({"description": "the zoo's own line"}))
    assert published(run, zoo) == 0
    printed = capsys.readouterr().out
    target = zoo / "tiny_preset"
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["README.md", "config.json", "metadata.json", "model.weights.h5", "real.gif", "sample.gif"])
    metadata = json.loads((target / "metadata.json").read_text())
    assert metadata["description"] == "the zoo's own line"
    assert metadata["headline"] == "motion" and metadata["best_checkpoint"]["metric"] == "motion"
    assert metadata["command"][0].startswith("vidgen train mocogan --data moving_square")

    # The scores are what `vidgen eval` prints for the published preset, with the recorded recipe.
    json_path = tmp_path / "eval.json"
    scored = metadata["scored_by"]
    assert cli.main(["eval", str(target), "--metrics", "motion", "--num-videos", str(scored["num_videos"]),
                     "--seed", str(scored["seed"]), "--batch-size", str(scored["batch_size"]),
                     "--json", str(json_path)]) == 0
    report = json.loads(json_path.read_text())
    assert metadata["scores"]["motion"]["value"] == pytest.approx(report["motion"]["total"], rel=1e-6)
    assert f"published {target}: motion {report['motion']['total']:.4g}" in printed

    # The best checkpoint's model weights (no optimizer slots), loadable as a preset.
    with h5py.File(target / presets.WEIGHTS_FILE) as stored:
        assert not [k for k in stored.keys() if "optimizer" in k], list(stored.keys())
    model = vidgen_tf.from_preset(str(target))
    videos = model.generate(2, seed=0).numpy()
    assert np.isfinite(videos).all() and np.abs(videos).max() <= 1
    best = vidgen_tf.from_preset(str(run))
    best.compile(seed=0)
    best.load_weights(run / "checkpoints" / "best.weights.h5")
    np.testing.assert_array_equal(model.generator.get_weights()[0], best.generator.get_weights()[0])

    # The card keeps its hand-written text; the marked part is rewritten.
    card = (target / "README.md").read_text()
    assert card.startswith("# tiny_preset\n\nHand-written text.") and card.rstrip().endswith("Limits.")
    assert "old figures" not in card and card.count(publish.BEGIN) == 1
    assert f"| motion | {report['motion']['total']:.4g} |" in card
    assert "![8 samples of tiny_preset" in card and metadata["command"][0] in card
    with Image.open(target / "sample.gif") as gif:
        assert gif.n_frames == 4 and gif.size[1] >= 3 * 16  # enlarged 3x
        sample_size = gif.size
    # Real clips beside the samples: the same frames and enlargement.
    with Image.open(target / "real.gif") as gif:
        assert gif.n_frames == 4 and gif.size == sample_size
    assert "![8 real clips of moving_square (seed 0), the same frames, enlarged 3x](real.gif)" in card
    assert "--baselines" not in metadata["scored_by"]["command"]  # motion alone reads no clip features


def test_publish_final_weights_and_a_new_card(run, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert published(run, zoo, "--weights", "final", "--recipe", "vidgen train my recipe") == 0
    metadata = json.loads((zoo / "tiny_preset" / "metadata.json").read_text())
    assert "best_checkpoint" not in metadata and metadata["command"] == ["vidgen train my recipe"]
    card = (zoo / "tiny_preset" / "README.md").read_text()
    assert card.startswith("# tiny_preset\n\n" + publish.BEGIN)
    assert (zoo / "tiny_preset" / presets.WEIGHTS_FILE).read_bytes() == (run / presets.WEIGHTS_FILE).read_bytes()


def test_a_failed_publish_keeps_the_old_preset(run, tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    (zoo / "tiny_preset").mkdir(parents=True)
    (zoo / "tiny_preset" / "README.md").write_text("old card\n")

    def failing(*args, **kwargs):
        raise RuntimeError("eval failed")

    monkeypatch.setattr(publish, "_eval_report", failing)
    assert published(run, zoo) != 0
    assert [p.name for p in zoo.iterdir()] == ["tiny_preset"]  # no staging left
    assert [p.name for p in (zoo / "tiny_preset").iterdir()] == ["README.md"]
    assert (zoo / "tiny_preset" / "README.md").read_text() == "old card\n"


def test_bad_publish_arguments_are_named(run, tmp_path, capsys):
    assert cli.main(["publish", str(tmp_path), "--name", "x", "--zoo", str(tmp_path)]) == 2
    assert "is not a preset or `vidgen train --out` directory" in capsys.readouterr().err
    assert cli.main(["publish", str(run), "--name", "../x", "--zoo", str(tmp_path)]) == 2
    assert "--name must be a plain folder name" in capsys.readouterr().err
    assert cli.main(["publish", str(run), "--name", "x", "--zoo", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken_run"
    broken.mkdir()
    (broken / presets.CONFIG_FILE).write_text((run / presets.CONFIG_FILE).read_text())
    (broken / presets.WEIGHTS_FILE).write_bytes((run / presets.WEIGHTS_FILE).read_bytes())
    (broken / presets.METADATA_FILE).write_text("{not json")
    assert published(broken, tmp_path) == 2
    assert f"{broken / presets.METADATA_FILE} is not a valid preset metadata file" in capsys.readouterr().err
    assert published(run, tmp_path, "--headline", "fvd") == 2
    assert "--headline fvd is not among the scores: motion" in capsys.readouterr().err
    assert not (tmp_path / "tiny_preset").exists()


def copy_preset(run, target):
    target.mkdir(parents=True)
    for name in (presets.CONFIG_FILE, presets.METADATA_FILE, presets.WEIGHTS_FILE):
        shutil.copy2(run / name, target / name)


def test_publish_replaces_a_preset_only_with_overwrite_and_never_a_folder_of_other_files(run, tmp_path, capsys):
    zoo = tmp_path / "zoo"
    target = zoo / "tiny_preset"
    copy_preset(run, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    assert published(run, zoo) == 2
    assert f"The zoo already holds the preset {target}; pass --overwrite to replace it" in capsys.readouterr().err
    (target / "thesis.txt").write_text("mine")
    assert published(run, zoo, "--overwrite") == 2
    assert "holds files that are not a preset's (thesis.txt)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == {**before, "thesis.txt": b"mine"}
    assert sorted(p.name for p in zoo.iterdir()) == ["tiny_preset"]


STAGING_WRITER = """
    import shutil, sys, time
    from pathlib import Path
    from vidgen_tf import atomic
    run, target = Path(sys.argv[1]), Path(sys.argv[2])
    with atomic.atomic_directory(target) as staging:  # what publish did while it scored the preset
        for name in ("config.json", "metadata.json", "model.weights.h5"):
            shutil.copy2(run / name, staging / name)
        print("ready", flush=True)
        time.sleep(600)
"""


def test_a_killed_publish_s_staging_is_no_preset_and_the_next_publish_removes_it(run, tmp_path, capsys,
                                                                                   monkeypatch):
    zoo = tmp_path / "zoo"
    copy_preset(run, zoo / "tiny_preset")
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(STAGING_WRITER), str(run),
                               str(zoo / "tiny_preset")], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    writer.kill()  # SIGKILL: the staging folder and its lock file stay behind
    writer.wait(timeout=30)
    staging = [p.name for p in zoo.iterdir() if p.name.endswith(".tmp")]
    assert len(staging) == 1 and (zoo / staging[0] / presets.CONFIG_FILE).is_file()

    monkeypatch.setenv("VIDGEN_ZOO", str(zoo))
    assert presets.list_presets() == ["tiny_preset"]
    with pytest.raises(FileNotFoundError, match="hidden folder"):
        vidgen_tf.from_preset(staging[0])
    with pytest.raises(FileNotFoundError, match="hidden folder"):
        vidgen_tf.from_preset(zoo / staging[0])
    capsys.readouterr()
    assert cli.main(["list"]) == 0
    assert ".tiny_preset" not in capsys.readouterr().out
    exports = tmp_path / "exports"
    assert cli.main(["export", "--all-presets", "--format", "savedmodel", "--out", str(exports)]) == 0
    assert sorted(p.name for p in exports.iterdir()) == ["batching.config", "models.config", "tiny_preset"]
    assert ".tiny_preset" not in (exports / "models.config").read_text()

    assert published(run, zoo, "--overwrite") == 0  # replaces the preset, and the dead writer's debris is gone
    assert sorted(p.name for p in zoo.iterdir()) == ["tiny_preset"]
    assert "scores" in json.loads((zoo / "tiny_preset" / presets.METADATA_FILE).read_text())


def test_publish_shows_the_replay_ladder_precision_recall_and_memorisation(tmp_path_factory, tmp_path):
    out = tmp_path_factory.mktemp("runs") / "eight"
    eight = [a if a != "4" or i == 0 or TRAIN[i - 1] != "--num-frames" else "8" for i, a in enumerate(TRAIN)]
    assert cli.main([*eight, "--out", str(out)]) == 0
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert cli.main(["publish", str(out), "--name", "tiny_preset", "--zoo", str(zoo), "--metrics",
                     "fvd,precision,recall,memorisation", "--num-videos", "16", "--batch-size", "8"]) == 0
    target = zoo / "tiny_preset"
    metadata = json.loads((target / "metadata.json").read_text())
    assert set(metadata["scores"]) == {"fvd", "precision", "recall", "memorisation"}
    assert presets.headline_score(metadata)[0] == "fvd"
    assert metadata["scored_by"]["command"].endswith("--metrics fvd,precision,recall,memorisation --baselines")
    ladder = metadata["baselines"]
    assert [row["name"] for row in ladder] == ["held-out real", "replay k=16", "replay k=4", "replay k=1"]
    assert set(ladder[0]) == {"name", "k", "fvd", "precision", "recall"}
    assert metadata["protocol"]["num_real"] == 16 and len(metadata["protocol"]["fingerprint"]) == 12
    card = (target / "README.md").read_text()
    assert "### Against the replay ladder" in card and "| clips scored | fvd | precision | recall |" in card
    assert f"| this model | {metadata['scores']['fvd']['value']:.4g} |" in card
    assert f"| replay k=1 | {ladder[-1]['fvd']:.4g} |" in card
    assert "Memorisation: the generated clips' median distance to their nearest of 16 training clips" in card
    assert "Protocol: 16 real and 16 generated clips, 8 frames from a random window (stride 1)" in card
    for metric, entry in metadata["scores"].items():  # what tests/test_zoo.py checks of every card
        assert f"| {metric} | {entry['value']:.4g}" in card
    # The card is a function of metadata.json: rewriting it without scoring gives the same text.
    (target / "README.md").write_text(card.replace("### Against the replay ladder", "stale"))
    publish.rewrite_card(target)
    assert (target / "README.md").read_text() == card


def test_republishing_a_preset_onto_itself_keeps_its_weights_and_best_checkpoint_line(run, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert published(run, zoo) == 0
    target = zoo / "tiny_preset"
    weights = (target / presets.WEIGHTS_FILE).read_bytes()
    line = "The shipped weights are the run's best checkpoint by motion"
    assert line in (target / "README.md").read_text()
    assert published(target, zoo, "--overwrite") == 0  # re-scored with publish's own machinery
    assert line in (target / "README.md").read_text()
    assert (target / presets.WEIGHTS_FILE).read_bytes() == weights


def test_a_republished_preset_keeps_the_headline_it_was_given():
    scores = {"fid": {"value": 0.03}, "fvd": {"value": 3590.0}, "motion": {"value": 35.9}}
    assert publish._headline(scores) == "fvd"  # a first publish: fvd before motion
    assert publish._headline(scores, "fid") == "fid"  # republished: the card's --headline fid stays
    assert publish._headline({"fvd": {"value": 1.0}}, "fid") == "fvd"  # a headline no longer scored gives way


def test_a_moving_digits_preset_is_scored_by_the_digit_reader_beside_real_clips(tmp_path_factory, tmp_path):
    assert publish.default_metrics("moving_digits") == publish.DEFAULT_METRICS + ",digits"
    assert publish.default_metrics("moving_square") == publish.DEFAULT_METRICS
    out = tmp_path_factory.mktemp("runs") / "digits"
    digits_train = [a if a != "moving_square" else "moving_digits" for a in TRAIN]
    assert cli.main([*digits_train, "--out", str(out)]) == 0
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert cli.main(["publish", str(out), "--name", "tiny_preset", "--zoo", str(zoo), "--metrics", "motion,digits",
                     "--num-videos", "8", "--batch-size", "4"]) == 0
    metadata = json.loads((zoo / "tiny_preset" / "metadata.json").read_text())
    scores = metadata["scores"]
    assert {"digit_consistency", "digit_class_bits"} <= set(scores)
    assert presets.headline_score(metadata)[0] == "motion"  # every score name is one presets know
    for name in ("digit_consistency", "digit_class_bits"):
        assert scores[name]["num_fake"] == 8 and scores[name]["num_real"] == 8
        assert scores[name]["feature_network"].startswith("vidgen-digits-v1, weights ")
    assert 0 < scores["digit_consistency"]["value"] <= 1 and scores["digit_consistency"]["real_value"] > 0.5
    assert len(scores["digit_class_bits"]["class_fractions"]) == 10
    card = (zoo / "tiny_preset" / "README.md").read_text()
    entry = scores["digit_consistency"]
    assert (f"| digit_consistency | {entry['value']:.4g} | 8 real, 8 generated, seed 1, features: vidgen-digits-v1, "
            f"real clips {entry['real_value']:.3g} |") in card


def test_a_conditional_run_is_published_with_a_sample_of_its_classes(tmp_path_factory, tmp_path):
    out = tmp_path_factory.mktemp("runs") / "conditional"
    assert cli.main([*TRAIN, "--set", "num_classes=4", "--out", str(out)]) == 0
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert cli.main(["publish", str(out), "--name", "tiny_preset", "--zoo", str(zoo), "--metrics", "motion",
                     "--num-videos", "8", "--batch-size", "4"]) == 0
    with Image.open(zoo / "tiny_preset" / "sample.gif") as gif:
        assert gif.n_frames == 4
