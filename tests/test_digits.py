"""The digit reader `vidgen-digits-v1`: reads real digits, and its summary falls when clips change digit or collapse."""

import json

import numpy as np
import pytest

from vidgen_tf import cli, data
from vidgen_tf.metrics import digits


def one_digit_clips(num, seed, **options):
    return data.make_videos("moving_digits", num, num_frames=8, height=32, width=32, channels=1, seed=seed,
                            with_labels=True, num_digits=1, **options)


def test_the_reader_reads_every_digit_of_held_out_frames():
    videos, labels = one_digit_clips(300, [123, 4])  # a seed neither training nor its held-out set used
    read = digits.read_digits(videos).argmax(axis=-1)  # (N, 8)
    for digit in range(10):
        frames = read[labels == digit]
        assert frames.size and np.mean(frames == digit) >= 0.97, (digit, np.mean(frames == digit))
    summary = digits.digit_consistency(videos)
    assert summary["consistency"] >= 0.98 and summary["classes"] == 10
    assert summary["class_bits"] > 3.2 and summary["confidence"] > 0.95
    assert summary["reader"].startswith("vidgen-digits-v1, weights ")


def test_the_reader_takes_float_colour_and_larger_videos_as_it_takes_uint8_grey():
    videos, _ = one_digit_clips(16, [7, 7])
    as_float = videos.astype(np.float32) / 127.5 - 1.0
    colour = np.repeat(as_float, 3, axis=-1)
    np.testing.assert_allclose(digits.read_digits(colour), digits.read_digits(videos), atol=1e-5)
    larger = np.repeat(np.repeat(videos, 2, axis=2), 2, axis=3)  # 64x64, each pixel doubled
    agree = digits.read_digits(larger).argmax(-1) == digits.read_digits(videos).argmax(-1)
    assert agree.mean() > 0.95
    with pytest.raises(ValueError, match="NaN"):
        digits.read_digits(np.full((1, 2, 32, 32, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\(N, T, H, W, C\)"):
        digits.read_digits(np.zeros((2, 32, 32, 1), np.uint8))


def test_a_clip_that_changes_digit_halfway_reads_half_consistent_and_one_digit_reads_zero_bits():
    videos, labels = one_digit_clips(400, [9, 1])
    threes, sevens = videos[labels == 3][:20], videos[labels == 7][:20]
    spliced = np.concatenate([threes[:, :4], sevens[:, 4:]], axis=1)  # 3 for 4 frames, then 7
    assert digits.digit_consistency(spliced)["consistency"] == pytest.approx(0.5, abs=0.05)
    collapsed = digits.digit_consistency(threes)
    assert collapsed["classes"] == 1 and collapsed["class_bits"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["class_fractions"][3] == 1.0


def test_the_summary_of_hand_made_readings():
    eye = np.eye(10)
    readings = np.stack([
        eye[[1, 1, 1, 2]],  # mostly 1: 3 of 4
        eye[[4, 4, 4, 4]],  # all 4
        eye[[5, 6, 5, 6]] * 0.5 + 0.05,  # a tie goes to the smaller digit; every frame 0.55 sure
        eye[[4, 4, 0, 0]],
    ])
    summary = digits.summarise_readings(readings)
    assert summary["consistency"] == pytest.approx((0.75 + 1 + 0.5 + 0.5) / 4)
    # Modal digits 1, 4, 5, 0 -> 0, 1, 4 and 5 a quarter each: 2 bits.
    assert summary["class_fractions"] == [0.25, 0.25, 0, 0, 0.25, 0.25, 0, 0, 0, 0]
    assert summary["class_bits"] == pytest.approx(2.0) and summary["classes"] == 4
    assert summary["confidence"] == pytest.approx((1 + 1 + 0.55 + 1) / 4)


def test_missing_reader_weights_name_the_file_and_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.weights\.h5.*train_digits"):
        digits.read_digits(np.zeros((1, 1, 32, 32, 1), np.uint8), weights_path=tmp_path / "missing.weights.h5")


@pytest.mark.large
def test_vidgen_eval_reads_the_digits_of_a_preset_beside_real_clips_and_refuses_other_data(capsys, tmp_path):
    report = tmp_path / "eval.json"
    assert cli.main(["eval", "mocogan_moving_digits", "--num-videos", "32", "--seed", "1", "--metrics", "digits",
                     "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "digits: the same digit in " in out and "(real clips " in out and "vidgen-digits-v1" in out
    found = json.loads(report.read_text())["digits"]
    assert found["num_videos"] == 32 and found["real"]["num_videos"] == 32
    # Real clips of 1-3 digits keep their digit in most frames; the figures are those of the reader.
    assert found["real"]["consistency"] > 0.7
    assert cli.main(["eval", "hmm_moving_square", "--num-videos", "8", "--metrics", "digits"]) == 2
    assert "scores moving_digits models only" in capsys.readouterr().err


def test_training_the_reader_briefly_learns_and_writes_its_weights(tmp_path):
    out = tmp_path / "reader.weights.h5"
    summary = digits_training().train(steps=100, out=out, eval_clips=32, chunk_clips=64)
    assert out.is_file() and summary["network"] == "vidgen-digits-v1"
    assert summary["held_out"]["accuracy"] > 0.5  # chance is 0.1
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        digits_training().train(steps=1, out=tmp_path / "reader.h5")


def digits_training():
    from vidgen_tf.metrics import train_digits

    return train_digits


@pytest.mark.large
def test_vidgen_eval_says_per_class_how_often_a_conditional_model_s_clips_read_as_their_label(capsys, tmp_path):
    run = tmp_path / "conditional"
    assert cli.main(["train", "mocogan", "--data", "moving_digits", "--num-frames", "8", "--height", "32", "--width",
                     "32", "--channels", "1", "--batch-size", "4", "--steps", "2", "--quiet", "--no-report",
                     "--set", "num_classes=10", "--set", "content_dim=8", "--set", "motion_dim=4",
                     "--set", "generator_width=8", "--set", "discriminator_width=8", "--out", str(run)]) == 0
    report = tmp_path / "eval.json"
    assert cli.main(["eval", str(run), "--num-videos", "40", "--seed", "1", "--batch-size", "8", "--metrics",
                     "digits", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "digits read as their label by the digit reader: lowest " in out
    assert "digits read as their label by the built-in network's class head: lowest " in out
    match = json.loads(report.read_text())["digits"]["label_match"]
    assert match["classes"] == list(range(10))  # labels cycle 0-9: four clips of each
    for key in ("reader", "builtin_head"):
        assert len(match[key]) == 10 and all(v in (0, 0.25, 0.5, 0.75, 1) for v in match[key])


def test_clips_drawn_as_their_labels_read_as_their_labels_per_class():
    import types

    from vidgen_tf.cli import evaluate

    pool, pool_labels = one_digit_clips(600, [31, 2])
    labels = np.arange(50) % 10  # as generate_videos gives a conditional model's clips
    fake = pool[[np.flatnonzero(pool_labels == c)[i] for i, c in enumerate(labels)]]
    wrong = pool[[np.flatnonzero(pool_labels == (c + 1) % 10)[i] for i, c in enumerate(labels)]]
    args = types.SimpleNamespace(num_videos=50, batch_size=16, seed=0)
    model = types.SimpleNamespace(num_classes=10)
    right = evaluate._digits(args, pool[:50], fake, model)["label_match"]
    assert min(right["reader"]) == 1.0 and np.mean(right["builtin_head"]) > 0.8
    shifted = evaluate._digits(args, pool[:50], wrong, model)["label_match"]
    assert max(shifted["reader"]) == 0.0
    assert "label_match" not in evaluate._digits(args, pool[:50], fake, types.SimpleNamespace(num_classes=0))


def test_a_conditional_model_is_scored_against_labelled_clips_as_it_learnt_them():
    import types

    from vidgen_tf.cli import evaluate

    args = types.SimpleNamespace(batch_size=8, baselines=False, seed=3)

    def model(num_classes):
        return types.SimpleNamespace(num_classes=num_classes, num_frames=4, height=32, width=32, channels=1)

    conditional, _ = evaluate._real_clips(args, model(10), "moving_digits", {}, 16)
    unconditional, _ = evaluate._real_clips(args, model(0), "moving_digits", {}, 16)
    labelled = data.load("moving_digits", num_frames=4, height=32, width=32, channels=1, batch_size=8, seed=3,
                         num_videos=16, drop_remainder=False, with_labels=True)
    from vidgen_tf.metrics.features import to_uint8

    np.testing.assert_array_equal(conditional, to_uint8(np.concatenate([np.asarray(b[0]) for b in labelled])))
    assert not np.array_equal(conditional, unconditional)
