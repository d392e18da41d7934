"""The built-in feature network vidgen-synthetic-v1: shipped weights, taps, accuracy, metric defaults, errors."""

import numpy as np
import pytest

from vidgen_tf import data, metrics
from vidgen_tf.metrics import builtin, train_builtin

SIDE, FRAMES = 32, 8


def _digits(num, seed, frames=FRAMES):
    return data.make_videos("moving_digits", num, num_frames=frames, height=SIDE, width=SIDE, seed=seed)


def test_shipped_weights_load_and_taps_have_the_declared_sizes():
    assert builtin.WEIGHTS_PATH.is_file()
    assert builtin.WEIGHTS_PATH.stat().st_size < 5 * 2**20
    video = metrics.builtin_feature_network("video")
    frame = metrics.builtin_feature_network("frame")
    logits = metrics.builtin_feature_network("logits")
    assert video.fn is logits.fn  # loaded once: one model behind both taps
    assert metrics.builtin_feature_network("video").fn is video.fn
    assert (video.name, video.num_frames, video.input_size, video.channels, video.kind) == (
        "vidgen-synthetic-v1", 8, (32, 32), 3, "features")
    assert (frame.num_frames, frame.input_size, frame.kind) == (None, (32, 32), "features")
    assert logits.kind == "logits"
    videos = _digits(4, seed=3, frames=10)  # grey 10-frame clips: 8 are taken, repeated to RGB
    rng = np.random.default_rng(0)
    assert video(metrics.prepare_clips(videos, video, rng)).shape == (4, builtin.VIDEO_DIM)
    assert frame(metrics.prepare_clips(videos, frame, rng)).shape == (40, builtin.FRAME_DIM)
    assert logits(metrics.prepare_clips(videos, logits, rng)).shape == (4, builtin.NUM_CLASSES)
    # 16x16 clips are resized by `prepare_clips`.
    small = data.make_videos("moving_square", 2, num_frames=8, height=16, width=16, seed=1)
    assert video(metrics.prepare_clips(small, video, rng)).shape == (2, builtin.VIDEO_DIM)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        metrics.builtin_feature_network("i3d")


def test_held_out_clips_are_classified_well_above_chance():
    # Clips from seeds neither training ([0, 0, k]) nor the model card's evaluation ([1, 1]) used.
    clips, classes, counts, names = train_builtin.make_clips(260, [7, 3])
    outputs = builtin._load_models(builtin.WEIGHTS_PATH)[0](train_builtin.to_inputs(clips))
    predicted = np.argmax(outputs["class"], axis=1)
    accuracy = {name: np.mean(predicted[names == name] == classes[names == name]) for name in builtin.CLASS_OFFSETS}
    count_accuracy = np.mean(np.argmax(outputs["count"], axis=1) == counts)
    # Measured on these clips with the shipped weights: digits 0.985, shapes 0.803, square directions 0.954,
    # balls 1.0 (of 18 classes), counts 0.992; chance is 1/10, 1/3, 1/4, 1/18 and 1/3.
    assert accuracy["moving_digits"] > 0.9, accuracy
    assert accuracy["moving_shapes"] > 0.65, accuracy
    assert accuracy["moving_square"] > 0.85, accuracy
    assert accuracy["bouncing_balls"] > 0.9, accuracy
    assert count_accuracy > 0.9, count_accuracy


def test_default_fvd_ranks_held_out_real_far_below_noise_and_static_clips():
    real = _digits(160, seed=0)
    held_out = _digits(160, seed=1)
    noise = np.random.default_rng(2).integers(0, 256, real.shape, dtype=np.uint8)
    static = np.repeat(held_out[:, :1], FRAMES, axis=1)  # the first frame, held still
    close = metrics.fvd(real, held_out, num_videos=160)
    far_noise = metrics.fvd(real, noise, num_videos=160)
    far_static = metrics.fvd(real, static, num_videos=160)
    # Measured: 18.3 (held-out real), 304 (static), 5.8e4 (noise).
    assert close < 0.2 * far_static, (close, far_static)
    assert far_static < far_noise, (far_static, far_noise)
    explicit = metrics.fvd(real, held_out, feature_net=metrics.builtin_feature_network("video"), num_videos=160)
    assert float(explicit) == pytest.approx(float(close), rel=1e-9)


def test_every_default_score_carries_the_synthetic_features_label():
    real, fake = _digits(12, seed=4), _digits(12, seed=5)
    scores = [
        metrics.fvd(real, fake, num_videos=12),
        metrics.kvd(real, fake, num_videos=12, num_subsets=2, subset_size=6),
        metrics.fid(real, fake, num_videos=12),
        metrics.kid(real, fake, num_videos=12, num_subsets=2, subset_size=6),
        metrics.video_inception_score(fake, num_videos=12, splits=2, dataset="moving_digits"),
    ]
    for score in scores:
        text = score.describe()
        assert "vidgen-synthetic-v1" in text and "vidgen synthetic features" in text, text
        assert "not comparable with I3D figures" in text, text
    assert "frames 32x32x3" in scores[2].describe()  # FID / KID read the per-frame tap
    assert "8x32x32x3" in scores[0].describe()
    assert 1.0 <= float(scores[4]) <= 10  # the digits' 10 classes of the 18-way head


def test_static_and_shuffled_clips_are_told_from_natural_ones():
    clips, classes, _, names = train_builtin.make_clips(130, [7, 4])
    corrupted, labels, motions = train_builtin.corrupt(clips, classes, names, 1 / 3, np.random.default_rng(5))
    assert np.all(corrupted[motions == 1] == corrupted[motions == 1][:, :1])  # held still
    assert np.all(labels[(motions > 0) & (names == "moving_square")] == -1)  # direction lost: no class loss
    assert np.all(labels[motions == 0] == classes[motions == 0])
    outputs = builtin._load_models(builtin.WEIGHTS_PATH)[0](train_builtin.to_inputs(corrupted))
    accuracy = np.mean(np.argmax(outputs["motion"], axis=1) == motions)
    assert accuracy > 0.9, accuracy  # measured 1.0 (130 clips, a third static, a third shuffled)


def test_missing_or_corrupt_weights_name_the_file(tmp_path):
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        metrics.builtin_feature_network("video", weights_path=missing)
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"not an h5 file" * 10)
    with pytest.raises(ValueError, match="corrupt.weights.h5.*cannot be loaded"):
        metrics.builtin_feature_network("frame", weights_path=corrupt)


def test_training_entry_point_writes_a_loadable_weights_file(tmp_path, capsys):
    out = tmp_path / "tiny.weights.h5"
    code = train_builtin.main(["--steps", "2", "--batch-size", "4", "--chunk-size", "16", "--eval-clips", "16",
                               "--out", str(out)])
    assert code == 0 and out.is_file()
    summary = capsys.readouterr().out
    assert '"steps": 2' in summary and '"class/moving_digits"' in summary
    network = metrics.builtin_feature_network("video", weights_path=out)
    features = network(metrics.prepare_clips(_digits(2, seed=0), network, np.random.default_rng(0)))
    assert features.shape == (2, builtin.VIDEO_DIM) and np.all(np.isfinite(features))
    # Trained weights differ from the shipped ones.
    shipped = metrics.builtin_feature_network("video")
    assert not np.allclose(features, shipped(metrics.prepare_clips(_digits(2, seed=0), shipped,
                                                                   np.random.default_rng(0))))
    with pytest.raises(ValueError, match="must end in '.weights.h5'"):
        train_builtin.train(steps=1, out=tmp_path / "tiny.h5")
