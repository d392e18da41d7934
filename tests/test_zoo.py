"""The shipped zoo: every preset loads and generates, and a scored card's figures are what `vidgen eval` prints."""

import json

import numpy as np
import pytest

import vidgen_tf
from vidgen_tf import cli, presets
from vidgen_tf.cli import publish

PRESETS = vidgen_tf.list_presets()
# Rescoring a preset reruns its recorded `vidgen eval` command on the same videos and noise, so the
# figures agree up to float rounding of another CPU's kernels: 2% covers FVD's matrix square root.
RELATIVE_TOLERANCE = 0.02


def metadata_of(name):
    return json.loads((presets.resolve_preset(name) / presets.METADATA_FILE).read_text())


SCORED = [name for name in PRESETS if "scored_by" in metadata_of(name)]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_generates(name):
    model = vidgen_tf.from_preset(name)
    labels = [0, 1] if model.num_classes else None  # a conditional preset draws the classes it is given
    videos = model.generate(2, seed=0, labels=labels).numpy()
    assert videos.shape == (2, model.num_frames, model.height, model.width, model.channels)
    assert np.isfinite(videos).all() and np.abs(videos).max() <= 1.0
    assert (presets.resolve_preset(name) / "README.md").is_file(), f"{name} has no model card"


@pytest.mark.parametrize("name", SCORED)
def test_a_scored_preset_ships_weights_a_sample_and_a_card_with_its_scores(name):
    directory = presets.resolve_preset(name)
    metadata = metadata_of(name)
    assert (directory / presets.WEIGHTS_FILE).is_file() and (directory / publish.SAMPLE_FILE).is_file()
    assert (directory / presets.WEIGHTS_FILE).stat().st_size < 5 * 2**20, "preset weights must stay under 5 MB"
    card = (directory / "README.md").read_text()
    assert publish.BEGIN in card and metadata["scored_by"]["command"] in card
    for metric, entry in metadata["scores"].items():
        assert f"| {metric} | {entry['value']:.4g}" in card, f"the card of {name} does not show its {metric}"
    assert presets.headline_score(metadata) is not None


@pytest.mark.large
@pytest.mark.parametrize("name", SCORED)
def test_a_cards_scores_are_what_vidgen_eval_prints(name, tmp_path):
    """Reruns the card's `vidgen eval` command. A preset whose sampling is too slow for CI (a diffusion model's 512
    clips x 20 network calls: 4-6 minutes of one worker) records `scored_by.ci_check`: the same command on its
    first `num_videos` clips (the same noise and real clips) with the figures it printed when published; CI
    reruns that one."""
    scored = metadata_of(name)["scored_by"]
    check = scored.get("ci_check")
    path = tmp_path / "eval.json"
    num_videos = check["num_videos"] if check else scored["num_videos"]
    argv = ["eval", name, "--num-videos", str(num_videos), "--seed", str(scored["seed"]),
            "--batch-size", str(scored["batch_size"])]
    if scored["metrics"]:
        argv += ["--metrics", scored["metrics"]]
    if check:
        assert num_videos < scored["num_videos"] and " ".join(["vidgen", *argv]) == check["command"]
    assert cli.main([*argv, "--json", str(path)]) == 0
    rescored = publish.scores_of(json.loads(path.read_text()))
    recorded = check["scores"] if check else metadata_of(name)["scores"]
    assert set(rescored) == set(recorded)
    for metric, entry in recorded.items():
        assert rescored[metric]["value"] == pytest.approx(entry["value"], rel=RELATIVE_TOLERANCE), metric


def test_the_zoo_stays_small():
    total = sum(p.stat().st_size for p in presets.zoo_dir().rglob("*") if p.is_file())
    assert total < 30 * 2**20, f"zoo/ holds {total / 2**20:.1f} MB (at most 30)"
