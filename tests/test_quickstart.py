"""`vidgen quickstart` (on a tiny stand-in of the zoo's preset) and `vidgen train --from-scratch`."""

import json

import keras
import numpy as np
import pytest

import vidgen_tf
from vidgen_tf import cli, presets
from vidgen_tf.report import read_metrics_jsonl

TINY = dict(num_frames=4, height=16, width=16, channels=1, content_dim=8, motion_dim=4,
            generator_width=8, discriminator_width=8)


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    """A zoo whose mocogan_moving_digits is a tiny trained-looking MoCoGAN on moving_square."""
    zoo = tmp_path / "zoo"
    model = vidgen_tf.build("mocogan", **TINY)
    model.generate(1, seed=0)  # builds the weights
    presets.save_preset(model, zoo / "mocogan_moving_digits", dataset="moving_square", training_steps=10)
    monkeypatch.setenv("VIDGEN_ZOO", str(zoo))
    return zoo


@pytest.mark.large
def test_quickstart_samples_the_preset_fine_tunes_resumes_exports_and_reports(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "qs"
    assert cli.main(["quickstart", "--out", str(out), "--steps", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "ships no trained weights" not in printed
    # The preset's own samples, enlarged three times: 16 -> 48 pixel cells.
    for name in ("pretrained_24_frames.gif", "pretrained_24_frames.mp4"):
        assert (out / name).stat().st_size > 0
    videos = vidgen_tf.video_io.read_video(out / "pretrained_24_frames.gif")
    assert videos.shape[0] == 24 and videos.shape[1] >= 48
    # The second run resumed from the first one's step-2 checkpoint.
    assert "(from step 2;" in printed
    steps = [line["step"] for line in read_metrics_jsonl(out / "finetuned" / "losses.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] <= 4
    metadata = json.loads((out / "finetuned" / "metadata.json").read_text())
    # Fine-tuned from the preset's 10 trained steps: the preset's history is carried on.
    assert metadata["training_steps"] == 14
    assert metadata["continued_from"] == {"preset": "mocogan_moving_digits", "training_steps": 10}
    # The preset records the commands that made it (a card's recipe): the first run's and the resumed one's.
    assert [c.split(" --steps ")[1].split()[0] for c in metadata["command"]] == ["2", "4"]
    assert all(c.startswith("vidgen train mocogan_moving_digits --data moving_square") for c in metadata["command"])
    assert (out / "finetuned" / "report.html").is_file()
    parity = json.loads((out / "export" / "mocogan.onnx.parity.json").read_text())
    assert parity["max_abs_diff_uint8"] <= 1
    assert (out / "export" / "mocogan" / "1" / "saved_model.pb").is_file()
    assert "where everything went:" in printed
    for path in (out / "finetuned" / "report.html", out / "export" / "mocogan.onnx", out / "export" / "models.config"):
        assert str(path) in printed


def test_quickstart_warns_when_the_preset_is_untrained_and_names_bad_steps(tiny_zoo, tmp_path, capsys):
    (tiny_zoo / "mocogan_moving_digits" / presets.WEIGHTS_FILE).unlink()
    assert cli.main(["quickstart", "--out", str(tmp_path / "qs"), "--steps", "1"]) == 2
    assert "--steps must be >= 2" in capsys.readouterr().err


def test_train_from_scratch_ignores_the_presets_weights(tiny_zoo, tmp_path, capsys):
    weights = tiny_zoo / "mocogan_moving_digits" / presets.WEIGHTS_FILE
    weights.write_bytes(b"not an h5 file")  # loading it would fail
    args = ["train", "mocogan_moving_digits", "--data", "moving_square", "--steps", "2", "--batch-size", "4",
            "--checkpoint-every", "2", "--num-samples", "2", "--quiet", "--no-report"]
    assert cli.main([*args, "--out", str(tmp_path / "loaded")]) != 0  # the preset's weights are read ...
    capsys.readouterr()
    assert cli.main([*args, "--out", str(tmp_path / "fresh"), "--from-scratch"]) == 0  # ... unless from scratch
    model = vidgen_tf.from_preset(str(tmp_path / "fresh"))
    assert np.isfinite(model.generate(1, seed=0).numpy()).all()


GAN_TRAIN = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
             "--channels", "1", "--batch-size", "4", "--steps", "4", "--checkpoint-every", "4", "--quiet",
             "--num-samples", "2", "--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
             "--set", "discriminator_width=8", "--no-report", "--log-every", "1"]


def test_train_with_r1_and_an_ema_generator(tmp_path):
    out = tmp_path / "run"
    assert cli.main([*GAN_TRAIN, "--out", str(out), "--r1-weight", "1", "--ema-decay", "0.5"]) == 0
    lines = read_metrics_jsonl(out / "losses.jsonl")
    assert all(line["r1_penalty"] > 0 for line in lines)  # the penalty was computed and tracked
    # The preset holds the moving average, not the raw generator of the last step.
    raw = vidgen_tf.from_preset(str(out))
    raw.compile(ema_decay=0.5, seed=0)
    raw.load_weights(out / "checkpoints" / "ckpt-4.weights.h5")
    preset = vidgen_tf.from_preset(str(out))
    stored = preset.generator.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(stored, raw.generator.get_weights()))
    assert all(np.allclose(a, b) for a, b in zip(stored, raw.inference_generator.get_weights()))


@pytest.mark.parametrize("flags, message", [
    (["--ema-decay", "1.5"], "--ema-decay must be in (0, 1)"),
    (["--r1-weight", "-1"], "--r1-weight must be >= 0"),
])
def test_bad_gan_training_flags_are_named(tmp_path, capsys, flags, message):
    assert cli.main([*GAN_TRAIN, "--out", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_class_weight_scales_the_auxiliary_class_loss_of_a_conditional_gan(tmp_path, capsys):
    clips = np.random.default_rng(0).integers(0, 256, (8, 4, 16, 16, 1), dtype=np.uint8)
    np.savez(tmp_path / "clips.npz", videos=clips, labels=np.arange(8) % 3)
    conditional = ["--data", "npz", "--path", str(tmp_path / "clips.npz"), "--set", "num_classes=3", "--steps", "1",
                   "--checkpoint-every", "1"]
    first = {}
    for weight in ("0", "3"):
        argv = [*GAN_TRAIN, *conditional, "--out", str(tmp_path / weight), "--class-weight", weight]
        keras.utils.set_random_seed(0)  # the same initial weights in both runs
        assert cli.main(_without_data(argv)) == 0
        first[weight] = read_metrics_jsonl(tmp_path / weight / "losses.jsonl")[0]
        metadata = json.loads((tmp_path / weight / "metadata.json").read_text())
        assert f"--class-weight {weight}" in metadata["command"][-1]
    # The same first step (same seed, same weights): only the class term's weight differs.
    assert first["0"]["class_loss"] == pytest.approx(first["3"]["class_loss"], rel=1e-5)
    assert first["3"]["d_loss"] - first["0"]["d_loss"] == pytest.approx(3 * first["3"]["class_loss"], rel=1e-4)
    capsys.readouterr()
    assert cli.main([*GAN_TRAIN, "--out", str(tmp_path / "unconditional"), "--class-weight", "2"]) == 2
    assert "--class-weight applies to conditional GANs whose discriminator classifies" in capsys.readouterr().err


def _without_data(argv):
    """`argv` with its first `--data NAME` pair removed (a later one takes its place)."""
    index = argv.index("--data")
    return argv[:index] + argv[index + 2:]


def test_gan_flags_on_a_likelihood_model_are_named(tmp_path, capsys):
    args = ["train", "hmm", "--data", "moving_square", "--num-frames", "4", "--height", "8", "--width", "8",
            "--steps", "1", "--batch-size", "2", "--quiet", "--out", str(tmp_path / "run"), "--ema-decay", "0.9"]
    assert cli.main(args) == 2
    assert "--ema-decay applies to GANs; hmm is trained by likelihood" in capsys.readouterr().err
