"""The `vidgen` command, run in-process through `vidgen_tf.cli.main`."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from vidgen_tf import atomic, cli, video_io

TINY_SET = ["--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
            "--set", "discriminator_width=8"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_models_presets_and_datasets(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "mocogan" in out and "mocogan_moving_digits" in out and "moving_digits" in out


def _preset(root, name, metadata, weights):
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps(
        {"model": "mocogan", "config": {"num_frames": 8, "height": 16, "width": 16, "channels": 1}}))
    (root / name / "metadata.json").write_text(json.dumps(metadata))
    if weights:
        (root / name / "model.weights.h5").write_bytes(b"listed, never loaded")


def test_list_shows_the_headline_score_and_untrained_presets(capsys, tmp_path, monkeypatch):
    fvd = {"value": 41.25, "num_real": 256, "num_fake": 256, "seed": 0,
           "feature_network": "vidgen-synthetic-v1 (8x32x32x3 in [-1, 1]); vidgen synthetic features"}
    _preset(tmp_path, "scored", {"training_steps": 300, "headline": "fvd",
                                 "scores": {"fvd": fvd, "kvd": {"value": 0.5}}}, weights=True)
    _preset(tmp_path, "baseline", {"training_steps": 0, "headline": "fvd", "scores": {"fvd": {"value": 90.0}}},
            weights=False)
    # Trained steps recorded, but no weights file: named as missing, never shown as an untrained model.
    _preset(tmp_path, "lost", {"training_steps": 300}, weights=False)
    _preset(tmp_path, "plain", {}, weights=True)
    monkeypatch.setenv("VIDGEN_ZOO", str(tmp_path))
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["scored"].endswith(
        "trained 300 steps, fvd 41.25 (256 real, 256 generated, seed 0, features: vidgen-synthetic-v1)")
    assert "kvd" not in lines["scored"]
    assert lines["baseline"].endswith("untrained, fvd 90")
    assert lines["lost"].endswith("weights missing (trained 300 steps; no model.weights.h5)")
    assert lines["plain"].endswith("mocogan    8x16x16x1    trained")


def test_list_lines_up_its_columns_whatever_the_longest_preset_name(capsys, tmp_path, monkeypatch):
    _preset(tmp_path, "short", {}, weights=True)
    _preset(tmp_path, "a_preset_name_longer_than_28_chars", {}, weights=True)
    monkeypatch.setenv("VIDGEN_ZOO", str(tmp_path))
    code, out, _ = run(capsys, "list")
    assert code == 0
    rows = out.split("presets:\n")[1].split("datasets:")[0].splitlines()
    assert len(rows) == 2 and len({row.index("mocogan") for row in rows}) == 1, rows


def test_list_names_a_bad_headline(capsys, tmp_path, monkeypatch):
    _preset(tmp_path, "bad", {"headline": "fvd", "scores": {"kvd": {"value": 0.5}}}, weights=False)
    monkeypatch.setenv("VIDGEN_ZOO", str(tmp_path))
    code, _, err = run(capsys, "list")
    assert code != 0
    assert "bad/metadata.json: \"headline\" is 'fvd', which is not in \"scores\" (recorded: kvd)" in err


def test_data_preview_writes_an_animated_gif(capsys, tmp_path):
    path = tmp_path / "d.gif"
    code, out, _ = run(capsys, "data", "preview", "moving_digits", "--out", str(path), "--num", "4",
                       "--num-frames", "6", "--height", "32", "--width", "32")
    assert code == 0 and str(path) in out
    frames = video_io.read_video(path)
    assert frames.shape[0] == 6 and frames.shape[1] > 32  # a 2x2 grid of 32x32 clips
    assert np.abs(np.diff(frames.astype(int), axis=0)).sum() > 0  # it moves


@pytest.mark.parametrize("argv,named", [
    (["data", "preview", "moving_digit", "--out", "x.gif"], "moving_digit"),
    (["train", "mocogn", "--data", "moving_digits"], "mocogn"),
    (["train", "mocogan", "--data", "moving_digit"], "moving_digit"),
    (["generate", "no_such_preset", "--out", "x.gif"], "no_such_preset"),
    (["train", "mocogan", "--data", "moving_digits", "--steps", "0"], "--steps"),
    (["train", "mocogan", "--data", "moving_digits", "--set", "content_dim"], "key=value"),
    (["export", "mocogan_moving_digits", "--format", "tflite", "--out", "x"], "--format"),
    # vidgen_tf's own checks: a --set key the model does not take, a value it refuses, a missing file.
    (["train", "mocogan", "--data", "moving_digits", "--set", "contnet_dim=8"],
     "Unknown mocogan configuration value (--set) 'contnet_dim'. Known mocogan configuration value (--set) "
     "names: channels, content_dim,"),
    (["train", "mocogan", "--data", "moving_digits", "--set", "content_dim=-1"], "`content_dim` must be"),
    (["train", "hmm", "--data", "npz", "--path", "no_such_file.npz", "--num-frames", "4"], "no_such_file.npz"),
    (["train", "hmm", "--data", "moving_square", "--num-frames", "4", "--height", "8", "--width", "8",
      "--set", "feature_dim=4"], "call fit_projection(videos)"),
    # Sample metrics: unknown names, --keep-best of a metric not computed, motion without ground truth.
    (["train", "mocogan", "--data", "moving_square", "--metrics", "fvd,motoin"],
     "Unknown metric (--metrics) 'motoin'. Known metric (--metrics) names: fid, fvd, is, kid, kvd, motion."),
    (["train", "mocogan", "--data", "moving_square", "--metrics", "motion", "--keep-best", "fvd"],
     "--keep-best fvd is not among --metrics motion"),
    (["train", "mocogan", "--data", "moving_square", "--keep-best", "motion"], "--keep-best needs --metrics"),
    (["train", "hmm", "--data", "npz", "--path", "no_such_file.npz", "--metrics", "motion"],
     "--metrics motion needs a dataset whose true motion is known (bouncing_balls, moving_digits, moving_shapes, "
     "moving_square); npz has none"),
    (["train", "mocogan", "--data", "moving_square", "--metrics", "fvd", "--feature-net", "net"],
     "--feature-net net needs --feature-input-size HxW"),
    (["eval", "mocogan_moving_digits", "--metrics", "fvd", "--feature-net", "no_such_dir",
      "--feature-input-size", "16x16"], "'no_such_dir' is not a SavedModel directory"),
    (["eval", "mocogan_moving_digits", "--metrics", "fvd", "--feature-net", "net", "--feature-input-size", "16"],
     "--feature-input-size expects HxW"),
    (["generate", "mocogan_moving_digits", "--scale", "0", "--out", "x.gif"], "--scale must be an integer >= 1"),
    (["report", "mocogan_moving_digits", "--scale", "-1"], "--scale must be an integer >= 1"),
    (["report", "no_such_preset"], "no_such_preset"),
])
def test_bad_input_is_named_with_exit_code_2(capsys, argv, named):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert named in err and err.startswith("vidgen: error:")


def test_an_error_inside_keras_is_a_failure_with_its_message_and_the_traceback_under_verbose(capsys, tmp_path):
    # The preset's 128-state weights do not fit a 4-state model: Keras's loader raises a ValueError.
    argv = ["train", "hmm_moving_square", "--data", "moving_square", "--set", "num_states=4", "--steps", "1",
            "--out", str(tmp_path / "run"), "--quiet"]
    code, _, err = run(capsys, *argv)
    assert code == 1, err
    assert err.startswith("vidgen: error: ValueError in keras.") and "variable.shape=(4,)" in err
    assert "--verbose" in err and "Traceback" not in err
    code, _, err = run(capsys, *argv, "--verbose")
    assert code == 1 and "Traceback (most recent call last)" in err and "load_weights" in err
    assert "vidgen: error: ValueError in keras." in err


def test_a_key_error_raised_outside_vidgen_tf_is_a_failure_not_a_usage_error(capsys, monkeypatch):
    def from_preset(name):
        return {}["serving_default"]  # a KeyError raised in another package's code

    monkeypatch.setattr(vidgen_tf, "from_preset", from_preset)
    code, _, err = run(capsys, "generate", "mocogan_moving_digits", "--out", "x.gif")
    assert code == 1
    assert err.startswith("vidgen: error: KeyError in tests.test_cli: serving_default")


def test_generate_scale_enlarges_every_frame_by_nearest_neighbour(capsys, tmp_path):
    # A preset with weights, so that both runs generate the same videos; NPZ keeps the pixels exactly.
    common = ["generate", "hmm_moving_square", "--num", "2", "--seed", "3"]
    assert run(capsys, *common, "--out", str(tmp_path / "1.npz"))[0] == 0
    code, out, _ = run(capsys, *common, "--scale", "3", "--out", str(tmp_path / "3.npz"))
    assert code == 0 and str(tmp_path / "3.npz") in out
    with np.load(tmp_path / "1.npz") as small, np.load(tmp_path / "3.npz") as big:
        small, big = small["videos"], big["videos"]
    assert small.shape[2:4] == (16, 16) and big.shape[2:4] == (48, 48)
    np.testing.assert_array_equal(big, np.repeat(np.repeat(small, 3, axis=2), 3, axis=3))
    code, _, _ = run(capsys, *common, "--scale", "2", "--out", str(tmp_path / "2.gif"))
    # One row of two 32x32 cells with a 2 px separator.
    assert code == 0 and video_io.read_video(tmp_path / "2.gif").shape[1:3] == (32, 2 * 32 + 2)


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train"])
    assert info.value.code == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.large
def test_train_generate_export_end_to_end(capsys, tmp_path):
    out = tmp_path / "run"
    code, text, err = run(capsys, "train", "mocogan", "--data", "moving_square", "--num-frames", "4",
                          "--height", "16", "--width", "16", "--channels", "1", "--batch-size", "4",
                          "--steps", "3", "--checkpoint-every", "2", "--sample-every", "2",
                          "--out", str(out), "--quiet", *TINY_SET)
    assert code == 0, err
    assert (out / "samples" / "step_000002.gif").is_file() and (out / "samples" / "final.mp4").is_file()
    # A checkpoint every 2 steps and one at the end (step 3); the two newest are kept.
    assert sorted(p.name for p in (out / "checkpoints").glob("ckpt-*")) == ["ckpt-2.weights.h5", "ckpt-3.weights.h5"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["training_steps"] == 3 and metadata["dataset"] == "moving_square"
    model = vidgen_tf.from_preset(out)
    assert model.generate(1, seed=0).shape == (1, 4, 16, 16, 1)

    # Started again with the same output directory, it resumes instead of starting over.
    code, text, _ = run(capsys, "train", "mocogan", "--data", "moving_square", "--num-frames", "4",
                        "--height", "16", "--width", "16", "--channels", "1", "--batch-size", "4",
                        "--steps", "4", "--checkpoint-every", "2", "--out", str(out), "--quiet", *TINY_SET)
    assert code == 0 and "from step 3" in text
    assert json.loads((out / "metadata.json").read_text())["training_steps"] == 4
    assert (out / "checkpoints" / "ckpt-4.weights.h5").is_file()

    code, text, _ = run(capsys, "generate", str(out), "--num", "2", "--frames", "7", "--out", str(tmp_path / "g.gif"))
    assert code == 0
    assert video_io.read_video(tmp_path / "g.gif").shape[0] == 7

    code, text, err = run(capsys, "export", str(out), "--format", "savedmodel,onnx", "--out", str(tmp_path / "exp"))
    assert code == 0, err
    assert (tmp_path / "exp" / "mocogan" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "exp" / "mocogan.onnx").is_file()
    parity = json.loads((tmp_path / "exp" / "mocogan.onnx.parity.json").read_text())
    assert parity["max_abs_diff_float"] <= 1e-4
    loaded = tf.saved_model.load(str(tmp_path / "exp" / "mocogan" / "1"))
    assert {"serving_default", "generate"} <= set(loaded.signatures)
    for export in (tmp_path / "exp" / "mocogan", tmp_path / "exp" / "mocogan.onnx"):
        assert vidgen_tf.exporting.describe(export)["preset"] == "run"

    # Exporting the same version again refuses to overwrite it.
    code, _, err = run(capsys, "export", str(out), "--format", "savedmodel", "--out", str(tmp_path / "exp"))
    assert code == 2 and "already exists" in err


def test_train_a_gan_with_several_critic_updates_loads_a_batch_for_each(capsys, tmp_path, monkeypatch):
    from vidgen_tf import data

    sizes = []
    load = data.load

    def recording_load(*args, **kwargs):
        sizes.append(kwargs["batch_size"])
        return load(*args, **kwargs)

    monkeypatch.setattr(data, "load", recording_load)
    out = tmp_path / "wgan"
    code, text, err = run(capsys, "train", "mocogan", "--data", "moving_square", "--num-frames", "4",
                          "--height", "16", "--width", "16", "--channels", "1", "--batch-size", "2",
                          "--loss", "wgan_gp", "--steps", "2", "--out", str(out), "--quiet", *TINY_SET)
    assert code == 0, err
    assert sizes == [10]  # wgan_gp's n_critic=5 updates of 2 clips each
    assert json.loads((out / "metadata.json").read_text())["training_steps"] == 2


@pytest.mark.parametrize("name,optimizer,rate", [("tgan", "RMSprop", 5e-5), ("mocogan", "Adam", 2e-4),
                                                 ("video_vae", "Adam", 1e-3)])
def test_train_uses_each_model_s_own_optimizer_unless_lr_is_given(name, optimizer, rate):
    import argparse

    model = vidgen_tf.build(name, num_frames=4, height=16, width=16, channels=1)
    cli._compile(model, argparse.Namespace(lr=None, loss=None, seed=0, dequantize=True))
    used = model.g_optimizer if hasattr(model, "g_optimizer") else model.optimizer
    assert type(used).__name__ == optimizer
    assert float(used.learning_rate) == pytest.approx(rate)
    cli._compile(model, argparse.Namespace(lr=1e-3, loss=None, seed=0, dequantize=True))
    used = model.g_optimizer if hasattr(model, "g_optimizer") else model.optimizer
    assert type(used).__name__ == optimizer and float(used.learning_rate) == pytest.approx(1e-3)


def test_eval_prints_the_held_out_likelihood_of_a_preset(capsys, tmp_path):
    metadata = json.loads((vidgen_tf.presets.resolve_preset("hmm_moving_square") / "metadata.json").read_text())
    code, out, err = run(capsys, "eval", "hmm_moving_square", "--num-videos", "500", "--seed", "1",
                         "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    # The figure recorded in the preset's metadata, on the same held-out videos.
    assert report["nll_nats_per_video"] == pytest.approx(metadata["held_out_nll_nats_per_video"], abs=1e-2)
    assert report["bits_per_dim"] == pytest.approx(metadata["held_out_bits_per_dim"], abs=1e-4)
    assert "exact" in out and "(bits per binary pixel)" in out and report["dataset"] == "moving_square"
    assert report["bits_per_dim_kind"] == "bits per binary pixel" and report["dequantized"] is False


def test_without_a_feature_network_and_without_a_builtin_one_the_error_says_to_pass_one(capsys, monkeypatch):
    from vidgen_tf import metrics

    monkeypatch.delattr(metrics, "builtin_feature_network", raising=False)
    code, _, err = run(capsys, "eval", "mocogan_moving_digits", "--metrics", "motion,kid")
    assert code == 2 and err.startswith("vidgen: error: No feature network given for kid: pass a feature network "
                                        "(--feature-net DIR")


def test_eval_refuses_gans_without_metrics_and_unknown_datasets(capsys):
    code, _, err = run(capsys, "eval", "mocogan_moving_digits")
    assert code == 2 and "mocogan is a GAN and has no likelihood: pass --metrics to score its samples" in err
    code, _, err = run(capsys, "eval", "hmm_moving_square", "--data", "moving_sqare")
    assert code == 2 and "moving_sqare" in err and "moving_square" in err


@pytest.mark.parametrize("name,sets", [
    ("video_vae", ["base_filters=4", "latent_dim=4"]),
    ("kvae", ["base_filters=4", "dynamics_units=8", "likelihood=\"bernoulli\""]),
])
def test_train_then_eval_a_likelihood_model_with_dataset_options(capsys, tmp_path, name, sets):
    out = tmp_path / name
    code, text, err = run(capsys, "train", name, "--data", "bouncing_balls", "--data-option", "num_balls=1",
                          "--num-frames", "4", "--height", "16", "--width", "16", "--channels", "1",
                          "--batch-size", "4", "--steps", "2", "--out", str(out), "--quiet",
                          *[arg for value in sets for arg in ("--set", value)])
    assert code == 0, err
    assert "bits_per_dim" in text and "nll" in text
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["data_options"] == {"num_balls": 1}
    code, text, err = run(capsys, "eval", str(out), "--num-videos", "8", "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["data_options"] == {"num_balls": 1} and report["bound"] is True
    assert np.isfinite(report["bits_per_dim"]) and "upper bound" in text


HMM_TINY = ["--data", "moving_square", "--num-frames", "4", "--height", "8", "--width", "8", "--channels", "1",
            "--batch-size", "8", "--steps", "1", "--set", "num_states=2", "--quiet"]


def test_train_dequantises_a_continuous_density_and_every_figure_names_its_kind(capsys, tmp_path):
    # Gaussian emissions: a continuous density, trained and scored on dequantised videos.
    code, text, err = run(capsys, "train", "hmm", *HMM_TINY, "--out", str(tmp_path / "hmm"))
    assert code == 0, err
    assert "bits_per_dim: bits per 8-bit value, dequantised" in text
    metadata = json.loads((tmp_path / "hmm" / "metadata.json").read_text())
    assert metadata["dequantized"] is True and metadata["bits_per_dim_kind"] == "bits per 8-bit value, dequantised"
    code, text, err = run(capsys, "eval", str(tmp_path / "hmm"), "--num-videos", "8", "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["dequantized"] is True and report["bits_per_dim_kind"] == "bits per 8-bit value, dequantised"
    assert "(bits per 8-bit value, dequantised)" in text

    # Without dequantisation the figure carries no 8-bit correction and says it is not comparable.
    not_comparable = "continuous density, not dequantised: not comparable with 8-bit figures"
    code, text, err = run(capsys, "train", "hmm", *HMM_TINY, "--no-dequantize", "--out", str(tmp_path / "grid"))
    assert code == 0, err
    metadata = json.loads((tmp_path / "grid" / "metadata.json").read_text())
    assert metadata["dequantized"] is False and metadata["bits_per_dim_kind"] == not_comparable
    code, text, err = run(capsys, "eval", str(tmp_path / "grid"), "--num-videos", "8", "--no-dequantize",
                          "--json", str(tmp_path / "g.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["bits_per_dim_kind"] == not_comparable and not_comparable in text
    dims = 4 * 8 * 8
    assert report["bits_per_dim"] == pytest.approx(report["nll_nats_per_video"] / (dims * np.log(2)), rel=1e-4)


def test_no_dequantize_is_refused_for_gans(capsys):
    code, _, err = run(capsys, "train", "mocogan", "--data", "moving_digits", "--no-dequantize", "--steps", "1",
                       "--num-frames", "4", "--height", "16", "--width", "16", "--quiet", *TINY_SET)
    assert code == 2 and "--no-dequantize" in err


def test_train_hmm_on_a_user_npz_file_lowers_its_nll(capsys, tmp_path):
    videos = vidgen_tf.data.make_videos("moving_square", 64, num_frames=6, height=8, width=8, channels=1, seed=3)
    np.savez(tmp_path / "clips.npz", videos=videos)
    held_out = vidgen_tf.data.make_videos("moving_square", 64, num_frames=6, height=8, width=8, channels=1, seed=4)
    np.savez(tmp_path / "held_out.npz", videos=held_out)
    out = tmp_path / "hmm"
    common = ["--data", "npz", "--path", str(tmp_path / "clips.npz"), "--num-frames", "6", "--height", "8",
              "--width", "8", "--channels", "1", "--batch-size", "16", "--out", str(out), "--quiet",
              "--set", "num_states=4", "--lr", "0.05"]
    nll = []
    for steps in ("1", "30"):
        code, text, err = run(capsys, "train", "hmm", *common, "--steps", steps)
        assert code == 0, err
        code, text, err = run(capsys, "eval", str(out), "--path", str(tmp_path / "held_out.npz"),
                              "--num-videos", "64", "--json", str(tmp_path / "e.json"))
        assert code == 0, err
        nll.append(json.loads((tmp_path / "e.json").read_text())["nll_nats_per_video"])
    assert nll[1] < nll[0] - 1.0, nll


def test_a_diverging_run_stops_with_the_step_and_metric_and_writes_no_preset(capsys, tmp_path):
    # A learning rate of 1000 sends the VAE's ELBO to infinity within two steps.
    out = tmp_path / "vae"
    code, text, err = run(capsys, "train", "video_vae", "--data", "moving_digits", "--num-frames", "4",
                          "--height", "16", "--width", "16", "--channels", "1", "--batch-size", "4",
                          "--steps", "6", "--lr", "1e3", "--out", str(out), "--quiet",
                          "--set", "base_filters=4", "--set", "latent_dim=4")
    assert code == 1
    assert err.startswith("vidgen: error: Training diverged at step ") and " = inf" in err
    assert not (out / "config.json").exists()


def test_tensorboard_and_progress_output(capsys, tmp_path):
    code, text, err = run(capsys, "train", "hmm", "--data", "moving_square", "--num-frames", "4", "--height", "8",
                          "--width", "8", "--channels", "1", "--batch-size", "8", "--steps", "4",
                          "--checkpoint-every", "2", "--sample-every", "2", "--set", "num_states=3",
                          "--out", str(tmp_path / "hmm"), "--tensorboard", str(tmp_path / "tb"))
    assert code == 0, err
    assert "step 2/4 (50%)" in text and "steps/s" in text and "trained to step 4 in " in text
    tags = set()
    for path in (tmp_path / "tb" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update((value.tag, event.step) for value in event.summary.value)
    assert {("nll", 1), ("bits_per_dim", 4), ("samples", 2), ("samples", 4)} <= tags
    # --quiet silences the progress lines.
    code, text, _ = run(capsys, "train", "hmm", "--data", "moving_square", "--num-frames", "4", "--height", "8",
                        "--width", "8", "--channels", "1", "--batch-size", "8", "--steps", "2",
                        "--set", "num_states=3", "--out", str(tmp_path / "hmm2"), "--quiet")
    assert code == 0 and "steps/s" not in text


METRIC_RUN = ["mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
              "--channels", "1", "--batch-size", "4", "--checkpoint-every", "2", "--quiet", *TINY_SET,
              "--metrics", "motion", "--metrics-every", "2", "--metrics-videos", "8", "--keep-best", "motion"]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """A tiny MoCoGAN trained for 4 steps with --metrics motion every 2 steps and --keep-best motion."""
    out = tmp_path_factory.mktemp("metric_run") / "run"
    code = cli.main(["train", *METRIC_RUN, "--steps", "4", "--out", str(out),
                     "--tensorboard", str(out.parent / "tb")])
    assert code == 0
    return out


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_with_sample_metrics_logs_them_and_keeps_the_best_checkpoint(capsys, gan_run):
    lines = _lines(gan_run / "metrics.jsonl")
    assert [line["step"] for line in lines] == [2, 4]
    assert all(np.isfinite(line["motion_total"]) and line["num_videos"] == 8 for line in lines)
    assert all(line["motion"]["total"] == line["motion_total"] for line in lines)
    best = json.loads((gan_run / "checkpoints" / "best.json").read_text())
    best_line = min(lines, key=lambda line: line["motion_total"])
    assert best == {"metric": "motion", "step": best_line["step"], "value": best_line["motion_total"],
                    "higher_is_better": False}
    assert sorted(p.name for p in (gan_run / "checkpoints").glob("*.weights.h5")) == [
        "best.weights.h5", "ckpt-2.weights.h5", "ckpt-4.weights.h5"]
    tags = set()
    for path in (gan_run.parent / "tb" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update((value.tag, event.step) for value in event.summary.value)
    assert {("metrics/motion", 2), ("metrics/motion", 4)} <= tags


def test_resumed_training_appends_metrics_and_keeps_the_best_of_all(capsys, gan_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(gan_run, out)
    code, text, err = run(capsys, "train", *METRIC_RUN, "--steps", "6", "--out", str(out))
    assert code == 0, err
    lines = _lines(out / "metrics.jsonl")
    assert [line["step"] for line in lines] == [2, 4, 6]
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["value"] == min(line["motion_total"] for line in lines)
    assert f"best motion: {best['value']:.4g} at step {best['step']}" in text
    assert "sample metrics at step 6 (8 generated, 8 real): motion " in text


def _write_feature_savedmodel(path):
    """A SavedModel feature network: clips (B, 4, 16, 16, 3) in [-1, 1] -> 8 features."""
    import keras

    init = keras.initializers.RandomNormal(stddev=0.3, seed=1)
    net = keras.Sequential([keras.Input((4, 16, 16, 3)),
                            keras.layers.Conv3D(8, 3, kernel_initializer=init, activation="tanh"),
                            keras.layers.GlobalAveragePooling3D()])

    class Exported(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 16, 16, 3], tf.float32)])
        def serve(self, clips):
            return {"features": self.net(clips)}

    module = Exported()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return net


def test_eval_scores_a_gan_run_by_motion_and_by_fvd_of_a_savedmodel(capsys, gan_run, tmp_path):
    from vidgen_tf import callbacks, data, metrics

    code, out, err = run(capsys, "eval", str(gan_run), "--metrics", "motion", "--num-videos", "12",
                         "--batch-size", "5")
    assert code == 0, err
    assert "motion " in out and "(12 real, 12 generated; moving_square ground truth): objects_per_frame " in out
    # One progress line per stage, with the seconds elapsed.
    for stage in ("loading 12 real clips of moving_square", "generating 12 videos", "scoring motion", "done"):
        assert any(line.startswith("[") and "s] " + stage in line for line in err.splitlines()), (stage, err)

    keras_net = _write_feature_savedmodel(tmp_path / "tiny_i3d")
    net_options = ["--feature-net", str(tmp_path / "tiny_i3d"), "--feature-input-size", "16x16",
                   "--feature-frames", "4"]
    # IS reads class outputs: a network is declared to give them (--feature-kind), never taken for them.
    code, _, err = run(capsys, "eval", str(gan_run), "--metrics", "fvd,is", "--num-videos", "12", *net_options)
    assert code == 2 and "is declared to give features" in err and "--feature-kind" in err
    code, out, err = run(capsys, "eval", str(gan_run), "--metrics", "fvd,kvd,is", "--num-videos", "12",
                         "--batch-size", "5", *net_options, "--feature-kind", "logits",
                         "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    from vidgen_tf.metrics.features import files_fingerprint

    described = (f"(12 real, 12 generated; features: tiny_i3d (4x16x16x3 in [-1, 1]) -> 8-d logits, weights "
                 f"{files_fingerprint(tmp_path / 'tiny_i3d')})")
    assert "FVD " in out and described in out.split("FVD ", 1)[1].splitlines()[0]
    assert "features of 12 real clips" in err and "features of 12 generated clips" in err
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["sample_metrics"]) == {"fvd", "kvd", "is"}
    assert report["sample_metrics"]["fvd"]["num_real"] == 12 and report["num_generated"] == 12
    assert report["sample_metrics"]["is"]["splits"] == 1  # 12 clips: one split (recorded)
    assert report["seeds"] == {"real_videos": 12345, "noise": 12345, "frame_offsets": 12345}
    assert {"real_features", "generating", "fake_features", "scoring", "total"} <= set(report["timings_seconds"])
    # The figure is the library's FVD of the same clips with the same network.
    model = vidgen_tf.from_preset(gan_run)
    real = data.load("moving_square", num_frames=4, height=16, width=16, channels=1, batch_size=12, seed=12345,
                     num_videos=12, drop_remainder=False)
    fake = callbacks.generate_videos(model, 12, 12345, batch_size=5)
    expected = metrics.fvd(real, fake, feature_net=keras_net, num_videos=12, seed=12345)
    assert report["sample_metrics"]["fvd"]["value"] == pytest.approx(float(expected), rel=1e-6)


def _write_frame_savedmodel(path):
    """A per-frame SavedModel feature network: frames (B, 16, 16, 3) in [0, 1] -> 5 features."""
    import keras

    init = keras.initializers.RandomNormal(stddev=0.3, seed=3)
    net = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(5, 3, kernel_initializer=init),
                            keras.layers.GlobalAveragePooling2D()])

    class Exported(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
        def frames(self, images):
            return {"pooled": self.net(images), "other": tf.zeros_like(images[:, 0, 0])}

    module = Exported()
    tf.saved_model.save(module, str(path), signatures={"frames": module.frames})
    return net


def test_eval_gives_each_metric_its_own_feature_network(capsys, gan_run, tmp_path):
    from tests import model_harness as harness
    from vidgen_tf.metrics.features import files_fingerprint

    harness.write_tf1_hub_feature_net(tmp_path / "hub", classes=6, frames=4, side=16)
    _write_frame_savedmodel(tmp_path / "frames")
    code, out, err = run(
        capsys, "eval", str(gan_run), "--metrics", "fvd,fid,is", "--num-videos", "12",
        "--json", str(tmp_path / "e.json"),
        "--feature-net", f"fvd={tmp_path / 'hub'}", "--feature-net", f"is={tmp_path / 'hub'}",
        "--feature-net", f"fid={tmp_path / 'frames'}", "--feature-input-size", "16x16",
        "--feature-frames", "fvd=4", "--feature-frames", "is=4", "--feature-kind", "is=logits",
        "--feature-signature", "fid=frames", "--feature-output", "fid=pooled", "--feature-range", "fid=0,1",
        "--feature-resize", "fid=tf1")
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())["sample_metrics"]
    hub = files_fingerprint(tmp_path / "hub")
    assert report["fvd"]["feature_network"] == f"hub (4x16x16x3 in [-1, 1]) -> 6-d features, weights {hub}"
    assert report["is"]["feature_network"] == f"hub (4x16x16x3 in [-1, 1]) -> 6-d logits, weights {hub}"
    assert report["fid"]["feature_network"] == (f"frames (frames 16x16x3 in [0, 1]) -> 5-d features, weights "
                                                f"{files_fingerprint(tmp_path / 'frames')}, tf1 resize")
    assert report["fid"]["num_real"] == 12 * 4
    for argv, named in [
        (["--metrics", "fvd", "--feature-net", f"kid={tmp_path / 'hub'}"], "kid is not among --metrics fvd"),
        (["--metrics", "fvd", "--feature-net", str(tmp_path / "hub"), "--feature-input-size", "16x16",
          "--feature-frames", "4", "--feature-kind", "fid=logits"], "--feature-kind fid=...: fid has no --feature-net"),
        (["--metrics", "fvd", "--feature-net", str(tmp_path / "hub"), "--feature-input-size", "16x16",
          "--feature-frames", "4", "--feature-range", "1,0"], "--feature-range expects LOW,HIGH"),
        (["--metrics", "fvd", "--feature-net", str(tmp_path / "hub"), "--feature-spec", "i3d"],
         "--feature-spec expects one of i3d-kinetics-400"),
        (["--metrics", "fvd", "--feature-net", str(tmp_path / "hub"), "--feature-spec", "i3d-kinetics-400"],
         "not a i3d-kinetics-400 network"),
        (["--metrics", "fvd", "--feature-frames", "4"], "--feature-frames describe a --feature-net"),
    ]:
        code, _, err = run(capsys, "eval", str(gan_run), "--num-videos", "4", *argv)
        assert code == 2 and named in err, (argv, err)


def test_train_refuses_a_network_that_cannot_serve_its_metric_before_the_first_step(capsys, tmp_path):
    _write_feature_savedmodel(tmp_path / "net")  # reads (B, 4, 16, 16, 3)
    out = tmp_path / "run"
    argv = METRIC_RUN[: METRIC_RUN.index("--metrics")] + ["--metrics", "fvd", "--metrics-every", "2",
                                                          "--metrics-videos", "8"]
    code, _, err = run(capsys, "train", *argv, "--steps", "2", "--out", str(out),
                       "--feature-net", str(tmp_path / "net"), "--feature-input-size", "16x16", "--feature-frames", "8")
    assert code == 2, err
    assert "--metrics fvd cannot be scored with this --feature-net" in err
    assert "reads 8 consecutive frames, but the clips have 4" in err
    assert not (out / "checkpoints").exists() or not list((out / "checkpoints").glob("ckpt-*"))
    assert not (out / "losses.jsonl").exists()


def test_eval_of_a_likelihood_model_adds_the_sample_metrics_to_its_nll(capsys, tmp_path):
    code, out, err = run(capsys, "eval", "hmm_moving_square", "--metrics", "motion", "--num-videos", "16",
                         "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    assert "nll: " in out and "bits/dim: " in out and "(16 real, 16 generated; moving_square ground truth)" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert np.isfinite(report["nll_nats_per_video"]) and np.isfinite(report["motion"]["total"])


# ------------------------------------------------------------ a full disk
def _unshare_works():
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(), reason="a small tmpfs needs `unshare -r -m` "
                                   "(unprivileged user and mount namespaces), which this machine refuses")


def run_on_a_small_disk(directory, size, argv, after="true"):
    """Runs `python -m vidgen_tf.cli ARGV` with a `size` tmpfs mounted on `directory` (in a private mount
    namespace, so the mount ends with the process); `after` is a shell command run on it afterwards."""
    import os
    import shlex
    import subprocess
    import sys

    directory.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "vidgen_tf.cli", *argv])
    script = (f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(directory))} || exit 99; "
              f"{command}; code=$?; {after}; exit $code")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=600)


@needs_unshare
def test_a_full_disk_during_a_checkpoint_is_one_error_naming_the_directory_not_a_crash(tmp_path):
    disk = tmp_path / "disk"
    out = disk / "run"
    argv = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
            "--channels", "1", "--batch-size", "4", "--steps", "2", "--checkpoint-every", "2", "--quiet",
            "--no-report", *TINY_SET, "--out", str(out)]
    # 64 KiB holds the run's small files, not a checkpoint (about 300 KB).
    result = run_on_a_small_disk(disk, "64k", argv, after=f"ls -A {out / 'checkpoints'}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Segmentation fault" not in result.stderr and "Exception ignored" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidgen: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "No space left on device" in errors[0] and str(out / "checkpoints") in errors[0]
    assert "Traceback" not in result.stderr and "--verbose" not in result.stderr
    assert result.stdout.split("\n")[-1].strip() == ""  # `ls`: no temporary left in the directory
    assert ".tmp" not in result.stdout and "ckpt-" not in result.stdout


def test_train_refuses_labels_beyond_num_classes_before_training(capsys, tmp_path):
    videos = np.random.default_rng(0).integers(0, 256, (6, 4, 16, 16, 1), dtype=np.uint8)
    path = tmp_path / "clips.npz"
    np.savez(path, videos=videos, labels=np.array([0, 1, 2, 1, 0, 1]))
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "mocogan", "--data", "npz", "--path", str(path), "--num-frames", "4",
                       "--height", "16", "--width", "16", "--channels", "1", "--batch-size", "2", "--steps", "2",
                       "--quiet", *TINY_SET, "--set", "num_classes=2", "--out", str(out))
    assert code == 2, err
    assert f"npz dataset file '{path}'" in err and "label 2 (video 2)" in err and "num_classes=2" in err
    assert not (out / "checkpoints").exists()  # refused before the first step

# ------------------------------------------------------------------ the run directory: lock, refusal, cleanup
def test_a_second_run_into_a_running_run_s_out_exits_2_naming_the_first(capsys, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "vidgen_tf.cli", "train", "hmm", *HMM_TINY, "--steps", "100000", "--seed", "1",
         "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))
    try:
        deadline = time.monotonic() + 300
        while f'"pid": {first.pid}' not in ((out / ".lock").read_text() if (out / ".lock").exists() else ""):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first run never locked its directory"
            time.sleep(0.2)
        code, _, err = run(capsys, "train", "hmm", *HMM_TINY, "--seed", "2", "--out", str(out))
        assert code == 2, err
        assert f"--out {out} is in use by another run, pid {first.pid}" in err
        assert "vidgen train hmm" in err and "--seed 1" in err  # the holder's command
        assert first.poll() is None  # the first run goes on
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    with atomic.directory_lock(out):  # a killed run's lock is released with its process
        pass


def test_train_refuses_an_out_holding_other_files_and_leaves_them_alone(capsys, tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.txt").write_text("four years")
    code, _, err = run(capsys, "train", "hmm", *HMM_TINY, "--out", str(out))
    assert code == 2 and f"--out {out} holds files that are not a `vidgen train` run's (thesis.txt)" in err
    assert [p.name for p in out.iterdir()] == ["thesis.txt"]


def test_an_input_error_found_after_the_out_folder_was_made_leaves_no_folder(capsys, tmp_path):
    out = tmp_path / "runs" / "hmm"
    code, _, err = run(capsys, "train", "hmm", "--data", "npz", "--path", str(tmp_path / "missing.npz"),
                       "--num-frames", "4", "--out", str(out))
    assert code == 2 and "missing.npz" in err
    assert list(tmp_path.iterdir()) == []


def test_eval_scores_precision_recall_memorisation_and_the_replay_ladder(capsys, tmp_path):
    code, out, err = run(capsys, "eval", "mocogan_moving_digits", "--num-videos", "16", "--seed", "1",
                         "--batch-size", "16", "--metrics", "fvd,precision,recall,memorisation", "--baselines",
                         "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    scores = report["sample_metrics"]
    assert set(scores) == {"fvd", "precision", "recall"}
    assert 0.0 <= scores["precision"]["value"] <= 1.0 and scores["recall"]["protocol"]["k"] == 3
    for entry in scores.values():  # every figure carries its protocol
        assert {"num_real", "num_fake", "num_frames", "window", "stride", "resize", "seed", "num_trials", "network",
                "fingerprint"} <= set(entry["protocol"])
    assert report["protocol"]["num_real"] == 16 and report["protocol"]["seed"] == 1
    assert "protocol: 16 real, 16 generated, 8 frames (random window, stride 1), bilinear to 32x32" in out
    memo = report["memorisation"]
    assert memo["protocol"]["num_train"] == 16 and memo["ratio"] > 0.3 and "memorisation:" in out
    ladder = report["baselines"]
    # k = 64 needs 64 held-out clips: at 16 the ladder stops at the replayers it can make.
    assert [row["name"] for row in ladder] == ["held-out real", "replay k=16", "replay k=4", "replay k=1"]
    assert ladder[-1]["fvd"]["value"] > ladder[0]["fvd"]["value"] and ladder[-1]["recall"]["value"] == 0.0
    assert "replay ladder (16 real clips" in out
    assert report["real_clips"]["held_out"]["draw"] == "made from seed 7920"


def test_eval_num_trials_windows_and_their_bad_values(capsys, tmp_path):
    code, out, err = run(capsys, "eval", "mocogan_moving_digits", "--num-videos", "8", "--num-trials", "2",
                         "--window", "start", "--metrics", "fvd", "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    entry = json.loads((tmp_path / "e.json").read_text())["sample_metrics"]["fvd"]
    assert (entry["num_trials"], entry["num_real"], entry["num_fake"]) == (2, 8, 8) and entry["std"] > 0
    assert entry["protocol"]["window"] == "start" and "mean of 2 trials" in out
    for argv, message in [
        (["--num-trials", "0", "--metrics", "fvd"], "--num-trials must be >= 1"),
        (["--stride", "0", "--metrics", "fvd"], "--stride must be >= 1"),
        (["--num-train", "16", "--metrics", "fvd"], "--num-train is the training clips of --metrics memorisation"),
        (["--baselines", "--num-trials", "2", "--metrics", "fvd"], "--baselines scores one draw"),
        (["--metrics", "precison"], "metric (--metrics)"),
    ]:
        code, _, err = run(capsys, "eval", "mocogan_moving_digits", "--num-videos", "8", *argv)
        assert code == 2 and message in err, (argv, err)


def test_eval_draws_real_clips_of_a_file_with_the_seed_not_the_first_n(capsys, tmp_path):
    from vidgen_tf import metrics

    # A file sorted by kind: 32 blank clips, then 32 of moving digits.
    digits = vidgen_tf.data.make_videos("moving_digits", 32, num_frames=8, height=32, width=32, channels=1, seed=3)
    np.savez(tmp_path / "sorted.npz", videos=np.concatenate([np.zeros_like(digits), digits]))
    code, out, err = run(capsys, "eval", "mocogan_moving_digits", "--data", "npz", "--path",
                         str(tmp_path / "sorted.npz"), "--num-videos", "16", "--seed", "1", "--metrics", "fvd",
                         "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["real_clips"]["draw"] == "a seeded shuffle of every clip" and "seeded shuffle" in out
    seeded = np.concatenate(list(vidgen_tf.data.load("npz", path=str(tmp_path / "sorted.npz"), num_frames=8,
                                                     height=32, width=32, channels=1, num_videos=16, seed=1,
                                                     shuffle=True, batch_size=16)))
    assert 0 < int((seeded.reshape(16, -1).max(axis=1) > -1).sum()) < 16  # both kinds, not 16 blank clips
    from vidgen_tf.callbacks import generate_videos

    fake = generate_videos(vidgen_tf.from_preset("mocogan_moving_digits"), 16, 1, batch_size=32)
    assert report["sample_metrics"]["fvd"]["value"] == pytest.approx(float(metrics.fvd(seeded, fake, num_videos=16,
                                                                                        seed=1)), rel=1e-6)


def test_generate_refuses_an_unbounded_request_before_generating(capsys, monkeypatch):
    monkeypatch.setattr(vidgen_tf.models.mocogan.MoCoGAN, "generate_stream", None)  # never reached
    code, _, err = run(capsys, "generate", "mocogan_moving_digits", "--num", "2", "--frames", "1000000000",
                       "--out", "never.npz")
    assert code == 2
    assert ("--num 2 x --frames 1000000000 videos of 32x32x1 would be 1.86 TiB of video, above the 2 GiB "
            "vidgen generate writes; lower --frames or --num.") in err


def test_generate_writes_batches_and_chunks_as_they_come_with_a_progress_line(capsys, tmp_path, monkeypatch):
    from vidgen_tf.cli import generate as cli_generate

    shapes = []
    write = video_io.write_video_chunks

    def spy(path, chunks, **kwargs):
        def recorded():
            for chunk in chunks:
                shapes.append(np.shape(chunk))
                yield chunk

        return write(path, recorded(), **kwargs)

    monkeypatch.setattr(video_io, "write_video_chunks", spy)
    monkeypatch.setattr(cli_generate, "BATCH_SIZE", 3)
    monkeypatch.setattr(cli_generate, "CHUNK_FRAMES", 4)
    monkeypatch.setattr(cli_generate, "_stderr_is_terminal", lambda: True)  # the progress line is a terminal's
    common = ["generate", "mocogan_moving_digits", "--num", "5", "--frames", "10", "--seed", "1"]
    code, out, err = run(capsys, *common, "--out", str(tmp_path / "g.npz"))
    assert code == 0 and "wrote" in out and "(5 videos of 10 frames)" in out
    assert shapes == [(3, 10, 32, 32, 1), (2, 10, 32, 32, 1)]  # whole videos, one batch at a time
    assert "generated 50/50 frames (100%)" in err
    with np.load(tmp_path / "g.npz") as data:
        videos = data["videos"]
    assert videos.shape == (5, 10, 32, 32, 1)
    first_batch = vidgen_tf.from_preset("mocogan_moving_digits").generate(3, seed=1, num_frames=10)
    assert np.max(np.abs(videos[:3].astype(int) - video_io.to_uint8(first_batch.numpy()))) <= 1

    shapes.clear()
    code, _, err = run(capsys, *common, "--out", str(tmp_path / "g.gif"))
    assert code == 0
    assert shapes == [(5, 4, 32, 32, 1), (5, 4, 32, 32, 1), (5, 2, 32, 32, 1)]  # every video's next frames
    assert video_io.read_video(tmp_path / "g.gif").shape[0] == 10


@pytest.mark.large
def test_generate_memory_is_bounded_by_the_batch_not_the_request(tmp_path):
    import subprocess
    import sys

    # Peak RSS of the vidgen process alone: the parent here starts it and reads its children's peak.
    script = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    argv = [sys.executable, "-m", "vidgen_tf.cli", "generate", "mocogan_moving_digits", "--num", "128",
            "--frames", "64", "--out", str(tmp_path / "g.npz")]
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_gib = int(result.stdout.split()[-1]) / 2**20
    # Measured: 2.25 GiB when the request was generated at once, 0.75 GiB in batches of 16 and chunks of 16.
    assert peak_gib < 1.4, peak_gib
    with np.load(tmp_path / "g.npz") as data:
        assert data["videos"].shape == (128, 64, 32, 32, 1)


DIFFUSION_RUN = ["train", "video_diffusion", "--data", "moving_square", "--num-frames", "4", "--height", "8",
                 "--width", "8", "--channels", "1", "--batch-size", "4", "--quiet", "--set", "base_filters=8",
                 "--set", "channel_multipliers=[1, 2]", "--set", "attention_resolutions=[4]",
                 "--set", "sampling_steps=2"]


def test_train_a_diffusion_model_and_its_flags(capsys, tmp_path):
    code, _, err = run(capsys, *DIFFUSION_RUN, "--steps", "1", "--loss", "hinge", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--loss applies to GANs; video_diffusion is a diffusion model" in err
    out = tmp_path / "run"
    code, text, err = run(capsys, *DIFFUSION_RUN, "--steps", "2", "--ema-decay", "0.9", "--log-every", "1",
                          "--out", str(out))
    assert code == 0, err
    model = vidgen_tf.from_preset(out)
    assert model.registered_name == "video_diffusion" and model.channel_multipliers == (1, 2)
    assert model.generate(1, seed=0).shape == (1, 4, 8, 8, 1)
    losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert losses and "loss" in losses[-1]


def test_every_out_makes_its_parent_folders_and_a_failure_takes_them_away(capsys, tmp_path):
    new = tmp_path / "new" / "deeper"
    code, _, err = run(capsys, "generate", "hmm_moving_square", "--num", "1", "--seed", "0",
                       "--out", str(new / "a.gif"))
    assert code == 0 and (new / "a.gif").is_file(), err
    code, _, err = run(capsys, "report", "hmm_moving_square", "--num", "2", "--out", str(tmp_path / "r" / "p.html"))
    assert code == 0 and (tmp_path / "r" / "p.html").is_file(), err
    code, _, err = run(capsys, "data", "preview", "moving_square", "--num", "2", "--out", str(tmp_path / "v" / "g.gif"))
    assert code == 0 and (tmp_path / "v" / "g.gif").is_file(), err
    # A command refused for its input leaves no empty folder behind.
    code, _, err = run(capsys, "generate", "hmm_moving_square", "--num", "0", "--out", str(tmp_path / "x" / "y.gif"))
    assert code == 2 and "--num must be >= 1" in err
    assert not (tmp_path / "x").exists()
