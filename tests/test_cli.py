"""The `vidgen` command, run in-process through `vidgen_tf.cli.main`."""

import json

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from vidgen_tf import cli, video_io

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
    # Trained steps recorded, but no weights file: nothing trained ships.
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
    assert lines["lost"].endswith("untrained")
    assert lines["plain"].endswith("mocogan    8x16x16x1    trained")


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
    code, out, err = run(capsys, "eval", str(gan_run), "--metrics", "fvd,kvd,is", "--num-videos", "12",
                         "--batch-size", "5", "--feature-net", str(tmp_path / "tiny_i3d"),
                         "--feature-input-size", "16x16", "--feature-frames", "4", "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    described = "(12 real, 12 generated; features: tiny_i3d (4x16x16x3 in [-1, 1]))"
    assert "FVD " in out and described in out.split("FVD ", 1)[1].splitlines()[0]
    assert "features of 12 real clips" in err and "features of 12 generated clips" in err
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["sample_metrics"]) == {"fvd", "kvd", "is"}
    assert report["sample_metrics"]["fvd"]["num_real"] == 12 and report["num_generated"] == 12
    assert report["seeds"] == {"real_videos": 12345, "noise": 12345, "frame_offsets": 12345}
    assert {"real_features", "generating", "fake_features", "scoring", "total"} <= set(report["timings_seconds"])
    # The figure is the library's FVD of the same clips with the same network.
    model = vidgen_tf.from_preset(gan_run)
    real = data.load("moving_square", num_frames=4, height=16, width=16, channels=1, batch_size=12, seed=12345,
                     num_videos=12, drop_remainder=False)
    fake = callbacks.generate_videos(model, 12, 12345, batch_size=5)
    expected = metrics.fvd(real, fake, feature_net=keras_net, num_videos=12, seed=12345)
    assert report["sample_metrics"]["fvd"]["value"] == pytest.approx(float(expected), rel=1e-6)


def test_eval_of_a_likelihood_model_adds_the_sample_metrics_to_its_nll(capsys, tmp_path):
    code, out, err = run(capsys, "eval", "hmm_moving_square", "--metrics", "motion", "--num-videos", "16",
                         "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    assert "nll: " in out and "bits/dim: " in out and "(16 real, 16 generated; moving_square ground truth)" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert np.isfinite(report["nll_nats_per_video"]) and np.isfinite(report["motion"]["total"])


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
