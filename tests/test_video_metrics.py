"""FVD / KVD / FID / KID / IS over videos: preprocessing, pluggable feature networks, cache, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import model_harness as harness
from vidgen_tf import data, metrics

FRAMES, SIDE = 4, 16


def _video_network():
    return harness.tiny_video_feature_network(FRAMES, SIDE)


def _frame_network():
    init = keras.initializers.RandomNormal(stddev=0.3, seed=2)
    return keras.Sequential(
        [keras.Input((SIDE, SIDE, 3)), keras.layers.Conv2D(6, 3, kernel_initializer=init, activation="tanh"),
         keras.layers.GlobalAveragePooling2D()],
        name="tiny_frame_net",
    )


def _digits(num, seed, frames=FRAMES, side=SIDE):
    return data.make_videos("moving_digits", num, num_frames=frames, height=side, width=side, seed=seed)


def test_prepare_clips_follows_the_reference_recipe():
    network = metrics.load_feature_network(_video_network())
    assert (network.num_frames, network.input_size, network.channels) == (FRAMES, (SIDE, SIDE), 3)
    videos = np.zeros((2, 10, 8, 8, 1), np.uint8)
    videos[:, :, :, :, 0] = (np.arange(10) * 25)[None, :, None, None]  # frame t has value 25 t
    clips = metrics.prepare_clips(videos, network, np.random.default_rng(0)).numpy()
    assert clips.shape == (2, FRAMES, SIDE, SIDE, 3)  # grey repeated, 8x8 resized to 16x16
    first = clips[:, 0, 0, 0, 0]
    # Consecutive frames from an offset in [0, 10 - 4]: values 2 * 25 t / 255 - 1 step by 50/255.
    np.testing.assert_allclose(np.diff(clips[:, :, 0, 0, 0], axis=1), 50 / 255, atol=1e-5)
    offsets = np.rint((first + 1) * 255 / 2 / 25)
    assert np.all((offsets >= 0) & (offsets <= 6))
    # Float input in [-1, 1] is the same clip as its uint8 counterpart.
    again = metrics.prepare_clips(videos.astype(np.float32) / 127.5 - 1, network, np.random.default_rng(0)).numpy()
    np.testing.assert_allclose(again, clips, atol=1e-5)


def test_fvd_is_zero_for_identical_sets_and_ranks_noise_worst():
    network = _video_network()
    real = _digits(64, seed=0)
    held_out = _digits(64, seed=1)
    noise = np.random.default_rng(2).integers(0, 256, real.shape, dtype=np.uint8)
    same = metrics.fvd(real, real, feature_net=network, num_videos=64)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    close = metrics.fvd(real, held_out, feature_net=network, num_videos=64)
    far = metrics.fvd(real, noise, feature_net=network, num_videos=64)
    assert far > 5 * close
    assert (far.num_real, far.num_fake, far.name) == (64, 64, "FVD")
    assert "tiny_video_net (4x16x16x3 in [-1, 1])" in far.describe()
    mean = metrics.kvd(real, noise, feature_net=network, num_videos=64, num_subsets=5, subset_size=32)
    assert mean > 0 and mean.std is not None


def test_a_savedmodel_feature_network_loaded_by_path(tmp_path):
    keras_net = _video_network()

    class Exported(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = keras_net

        @tf.function(input_signature=[tf.TensorSpec([None, FRAMES, SIDE, SIDE, 3], tf.float32)])
        def serve(self, clips):
            return {"features": self.net(clips)}

    module = Exported()
    tf.saved_model.save(module, str(tmp_path / "net"), signatures={"serving_default": module.serve})
    loaded = metrics.load_feature_network(tmp_path / "net", input_size=(SIDE, SIDE), num_frames=FRAMES)
    videos = _digits(8, seed=3)
    from_path = metrics.extract_features(videos, loaded, seed=5)
    from_keras = metrics.extract_features(videos, keras_net, seed=5)
    np.testing.assert_allclose(from_path, from_keras, atol=1e-5)
    assert loaded.name == "net"


def test_real_features_are_cached_by_key(tmp_path):
    calls = []
    net = _video_network()

    def counting(x):
        calls.append(int(x.shape[0]))
        return net(x)

    network = metrics.FeatureNetwork(counting, "counting", (SIDE, SIDE), num_frames=FRAMES, fingerprint="counting-1")
    real, fake = _digits(32, seed=0), _digits(32, seed=1)
    first = metrics.fvd(real, fake, feature_net=network, num_videos=32, cache_dir=tmp_path, cache_key="digits")
    assert sum(calls) == 64
    second = metrics.fvd(real, fake, feature_net=network, num_videos=32, cache_dir=tmp_path, cache_key="digits")
    assert sum(calls) == 96  # only the generated set ran again
    assert float(second) == pytest.approx(float(first))
    metrics.fvd(real, fake, feature_net=network, num_videos=32, cache_dir=tmp_path, cache_key="other data")
    assert sum(calls) == 160  # another key is another cache entry
    assert len(list(tmp_path.glob("real_features_*.npz"))) == 2


def test_frame_metrics_and_inception_score():
    real, fake = _digits(16, seed=0), _digits(16, seed=1)
    frame_net = _frame_network()
    fid = metrics.fid(real, fake, feature_net=frame_net, num_videos=16)
    assert fid.num_real == 16 * FRAMES  # every frame counts
    kid = metrics.kid(real, fake, feature_net=frame_net, num_videos=16, num_subsets=3, subset_size=32)
    assert np.isfinite(float(kid))
    # A "classifier" whose logits say which of 4 brightness bins a clip falls into.
    def logits(clips):
        level = tf.reduce_mean(clips, axis=[1, 2, 3, 4])  # (B,)
        return -100.0 * tf.square(level[:, None] - tf.constant([-0.9, -0.5, 0.0, 0.5]))

    network = metrics.FeatureNetwork(logits, "bins", (SIDE, SIDE), num_frames=FRAMES, kind="logits")
    constant = np.zeros((40, FRAMES, SIDE, SIDE, 1), np.uint8)
    assert float(metrics.video_inception_score(constant, network, num_videos=40, splits=4)) == pytest.approx(1.0)
    levels = np.array([13, 64, 128, 191], np.uint8)[np.arange(40) % 4]
    spread = np.broadcast_to(levels[:, None, None, None, None], constant.shape).copy()
    assert float(metrics.video_inception_score(spread, network, num_videos=40, splits=2)) == pytest.approx(4.0, rel=1e-3)


def test_bad_inputs_are_named(tmp_path):
    network = _video_network()
    real = _digits(8, seed=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.fvd(real[:1], real[:1], feature_net=network, num_videos=None)
    with pytest.raises(ValueError, match="reads 4 consecutive frames, but the videos have 3"):
        metrics.fvd(real[:, :3], real[:, :3], feature_net=network, num_videos=8)
    with pytest.raises(TypeError, match="uint8 in \\[0, 255\\] or float in \\[-1, 1\\]"):
        metrics.fvd(real.astype(np.int32), real, feature_net=network, num_videos=8)
    with pytest.raises(ValueError, match="must be in \\[-1, 1\\]"):
        metrics.fvd(real.astype(np.float32), real, feature_net=network, num_videos=8)
    with pytest.raises(ValueError, match="batch, time, height, width, channels"):
        metrics.fvd(real[0], real, feature_net=network, num_videos=8)
    with pytest.raises(FileNotFoundError, match="not a SavedModel directory"):
        metrics.load_feature_network(tmp_path, input_size=(16, 16))
    with pytest.raises(ValueError, match="must return features shaped"):
        flat = metrics.FeatureNetwork(lambda x: tf.reduce_mean(x, axis=[1, 2, 3, 4]), "flat", (SIDE, SIDE), FRAMES)
        metrics.fvd(real, real, feature_net=flat, num_videos=8)
    with pytest.raises(ValueError, match="holds only 8"):
        metrics.fvd(real, real, feature_net=network, num_videos=20)
    with pytest.raises(ValueError, match="vidgen-synthetic-v1 .* reads 8 consecutive frames"):
        metrics.fvd(real, real)  # no network: the built-in one, which reads 8 frames
    with pytest.raises(ValueError, match="FVD needs a video feature network"):
        metrics.fvd(real, real, feature_net=_frame_network(), num_videos=8)


def _builtin_clips(dataset, num, seed):
    return data.make_videos(dataset, num, num_frames=8, height=32, width=32, seed=seed)


def test_inception_score_of_the_builtin_network_reads_only_the_datasets_classes():
    digits = _builtin_clips("moving_digits", 40, seed=3)
    squares = _builtin_clips("moving_square", 40, seed=3)
    mixed = np.concatenate([digits[:20], squares[:20]])
    # Restricted to the square's 4 direction classes, clips of other datasets' classes can never score above 4.
    drifted = metrics.video_inception_score(mixed, num_videos=40, dataset="moving_square")
    assert float(drifted) <= 4.0 + 1e-6
    real = metrics.video_inception_score(squares, num_videos=40, dataset="moving_square")
    assert float(real) > 2.0 and "IS over the 4 classes of moving_square" in real.describe()
    assert float(metrics.video_inception_score(digits, num_videos=40, dataset="moving_digits")) <= 10.0
    with pytest.raises(ValueError, match="bouncing_balls has a single class .* Inception Score is 1"):
        metrics.video_inception_score(digits, num_videos=40, dataset="bouncing_balls")
    with pytest.raises(ValueError, match="classifies the clips of 4 datasets .* pass `dataset=`"):
        metrics.video_inception_score(digits, num_videos=40)
    with pytest.raises(ValueError, match="has no classes of 'npz'"):
        metrics.video_inception_score(digits, num_videos=40, dataset="npz")


def test_every_metric_refuses_a_network_of_the_wrong_kind_on_every_path():
    from vidgen_tf import callbacks

    real = _digits(8, seed=0)
    with pytest.raises(ValueError, match="KVD needs a video feature network; .* reads single frames"):
        metrics.kvd(real, real, feature_net=_frame_network(), num_videos=8)
    with pytest.raises(ValueError, match="KID needs a per-frame feature network; .* reads clips"):
        metrics.kid(real, real, feature_net=_video_network(), num_videos=8)
    with pytest.raises(ValueError, match="FID needs a per-frame feature network"):
        metrics.fid(real, real, feature_net=_video_network(), num_videos=8)
    # A network declared to give features is refused by IS alike by the function and by the training callbacks.
    with pytest.raises(ValueError, match="is declared to give features"):
        metrics.video_inception_score(real, _video_network(), num_videos=8)
    with pytest.raises(ValueError, match="is declared to give features"):
        callbacks.sample_networks(["fvd", "is"], _video_network())
    with pytest.raises(ValueError, match="is declared to give features"):
        callbacks.SampleScorer(real, ["is"], feature_net=_video_network())
    with pytest.raises(ValueError, match="KVD needs a video feature network"):
        callbacks.SampleScorer(real, ["kvd"], feature_net=_frame_network())
    logits = metrics.load_feature_network(_video_network(), kind="logits")
    assert set(callbacks.sample_networks(["fvd", "is"], logits).values()) == {logits}


def test_the_cache_key_carries_the_weights_and_the_real_datas_fingerprints(tmp_path):
    real, fake = _digits(16, seed=0), _digits(16, seed=1)
    first = harness.tiny_video_feature_network(FRAMES, SIDE, name="same_name")
    other = keras.Sequential(
        [keras.Input((FRAMES, SIDE, SIDE, 3)),
         keras.layers.Conv3D(8, 3, kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=7),
                             activation="tanh"), keras.layers.GlobalAveragePooling3D()], name="same_name")
    kwargs = dict(num_videos=16, cache_dir=tmp_path, cache_key="digits")
    metrics.fvd(real, real, feature_net=first, **kwargs)
    # Another network of the same name and shapes, other weights: its own real features, so FVD(real, real) = 0.
    assert float(metrics.fvd(real, real, feature_net=other, **kwargs)) == pytest.approx(0.0, abs=1e-2)
    # Other real data under the same caller's key (here other frames) is another entry.
    longer = _digits(16, seed=0, frames=FRAMES + 2)
    assert float(metrics.fvd(longer, longer, feature_net=first, **kwargs)) == pytest.approx(0.0, abs=1e-2)
    assert len(list(tmp_path.glob("real_features_*.npz"))) == 3
    fingerprint = metrics.load_feature_network(first).fingerprint
    assert fingerprint and fingerprint != metrics.load_feature_network(other).fingerprint
    assert f"weights {fingerprint}" in metrics.fvd(real, fake, feature_net=first, **kwargs).describe()
    plain = metrics.FeatureNetwork(lambda x: first(x), "plain", (SIDE, SIDE), FRAMES)
    with pytest.raises(ValueError, match="no fingerprint of its weights .* pass `fingerprint=`"):
        metrics.fvd(real, fake, feature_net=plain, **kwargs)


def test_resize_rules_half_pixel_by_default_and_tf1_as_google_researchs_fvd():
    row = tf.constant([[[[0.0], [100.0]]]])  # (1, 1, 2, 1)
    np.testing.assert_allclose(metrics.resize_frames(row, (1, 4))[0, 0, :, 0], [0, 25, 75, 100], atol=1e-4)
    np.testing.assert_allclose(metrics.resize_frames(row, (1, 4), "tf1")[0, 0, :, 0], [0, 50, 100, 100], atol=1e-4)
    frames = tf.cast(_digits(2, seed=4, frames=2, side=64).reshape(4, 64, 64, 1), tf.float32)
    frames = tf.repeat(frames, 3, axis=-1)
    reference = tf.compat.v1.image.resize_bilinear(frames, (224, 224))
    ours = metrics.resize_frames(frames, (224, 224), "tf1")
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-3)
    # The two rules differ by a shift of (224 / 64 - 1) / 2 output pixels: much, on the digits' strokes.
    strokes = reference > 0
    gap = tf.abs(metrics.resize_frames(frames, (224, 224)) - reference)
    assert float(tf.reduce_mean(gap[strokes])) > 8.0 and float(tf.reduce_max(gap)) > 50.0
    # The network's rule is the one prepare_clips applies, and the label says so.
    net = metrics.load_feature_network(_video_network(), resize="tf1")
    videos = _digits(2, seed=4, side=8)
    clips = metrics.prepare_clips(videos, net, np.random.default_rng(0)).numpy()
    expected = tf.compat.v1.image.resize_bilinear(
        tf.repeat(tf.cast(videos.reshape(-1, 8, 8, 1), tf.float32), 3, axis=-1), (SIDE, SIDE)).numpy() / 127.5 - 1
    np.testing.assert_allclose(clips.reshape(expected.shape), expected, atol=1e-5)
    assert "tf1 resize" in net.describe()


def _one_hot_classifier():
    """A perfect 10-class video classifier: the class is the clip's brightness level (probabilities)."""
    def probabilities(clips):
        level = tf.reduce_mean(clips, axis=[1, 2, 3, 4])  # in [-1, 1]
        index = tf.cast(tf.round((level + 1.0) / 2.0 * 9.0), tf.int32)
        return tf.one_hot(index, 10)

    return metrics.FeatureNetwork(probabilities, "levels", (SIDE, SIDE), FRAMES, kind="probabilities")


def _balanced(num):
    levels = np.rint(np.arange(10) / 9 * 255).astype(np.uint8)[np.arange(num) % 10]
    return np.broadcast_to(levels[:, None, None, None, None], (num, FRAMES, SIDE, SIDE, 1)).copy()


@pytest.mark.parametrize("num", [64, 256])
def test_a_perfect_balanced_generator_scores_at_least_9_at_the_default_clip_counts(num):
    from vidgen_tf import callbacks

    videos = _balanced(num)
    score = metrics.video_inception_score(videos, _one_hot_classifier(), num_videos=num)
    assert float(score) >= 9.0
    assert score.splits == metrics.default_splits(num) and score.to_dict()["splits"] == score.splits
    assert f"in {score.splits} split" in score.describe()
    scorer = callbacks.SampleScorer(videos, ["is"], feature_net=_one_hot_classifier())
    assert float(scorer.score(videos)["is"]) >= 9.0
    if num == 64:  # the callback's default count, its JSON line records the splits
        class Balanced(keras.Model):
            def generate(self, count, seed=None, labels=None):
                return _balanced(count)

        callback = callbacks.MetricsCallback(videos, metrics=("is",), every_steps=1,
                                             feature_net=_one_hot_classifier())
        callback.set_model(Balanced())
        record = callback.evaluate()
        assert record["is"] >= 9.0 and record["is_splits"] == 1
    assert metrics.video_inception_score(videos, _one_hot_classifier(), num_videos=num, splits=4).splits == 4


def test_a_keras_network_with_a_free_time_axis_needs_num_frames():
    free = keras.Sequential([keras.Input((None, SIDE, SIDE, 3)), keras.layers.Conv3D(4, 3),
                             keras.layers.GlobalAveragePooling3D()], name="free_time")
    with pytest.raises(ValueError, match="free time axis .* pass `num_frames`"):
        metrics.load_feature_network(free)
    assert metrics.load_feature_network(free, num_frames=FRAMES).num_frames == FRAMES


def test_a_tf1_hub_format_savedmodel_loads_as_i3d_is_checked_and_labelled(tmp_path):
    path = harness.write_tf1_hub_feature_net(tmp_path / "i3d", classes=400, frames=FRAMES, side=SIDE)
    network = metrics.load_feature_network(path, input_size=(SIDE, SIDE), num_frames=FRAMES, kind="logits",
                                           signature="default", output="default", name="i3d")
    real, fake = _digits(12, seed=0), _digits(12, seed=1)
    score = metrics.fvd(real, fake, feature_net=network, num_videos=12)
    fingerprint = metrics.features.files_fingerprint(path)
    assert f"i3d ({FRAMES}x{SIDE}x{SIDE}x3 in [-1, 1]) -> 400-d logits, weights {fingerprint}" in score.describe()
    assert np.isfinite(float(metrics.video_inception_score(fake, network, num_videos=12)))
    # Auto-detected signature and single output alike; another value range is declared, never guessed.
    auto = metrics.load_feature_network(path, input_size=(SIDE, SIDE), num_frames=FRAMES, value_range=(0, 1))
    assert auto.kind == "features" and auto.value_range == (0.0, 1.0)
    assert metrics.extract_features(real, auto, num_videos=4).shape == (4, 400)
    with pytest.raises(ValueError, match="has no signature 'serving'.*\\['default'\\]"):
        metrics.load_feature_network(path, input_size=(SIDE, SIDE), num_frames=FRAMES, signature="serving")
    # Other weights in the same format: another fingerprint.
    again = harness.write_tf1_hub_feature_net(tmp_path / "i3d_b", classes=400, frames=FRAMES, side=SIDE, seed=1)
    assert metrics.features.files_fingerprint(again) != fingerprint


def test_the_i3d_reference_spec_checks_a_users_network(tmp_path):
    spec = metrics.REFERENCE_NETWORKS["i3d-kinetics-400"]
    assert (spec["input_size"], spec["num_frames"], spec["value_range"], spec["feature_dim"], spec["num_videos"]) == (
        (224, 224), 16, (-1.0, 1.0), 400, 2048)
    good = harness.write_tf1_hub_feature_net(tmp_path / "good", classes=400, frames=16, side=224)
    network = metrics.load_feature_network(good, reference="i3d-kinetics-400")
    assert (network.input_size, network.num_frames, network.kind) == ((224, 224), 16, "logits")
    assert "checked as i3d-kinetics-400" in network.describe() and "400-d logits" in network.describe()
    clips = _digits(2, seed=0, frames=16, side=32)
    few = metrics.fvd(clips, clips, feature_net=network, num_videos=2)
    assert "checked as i3d-kinetics-400; not the i3d-kinetics-400 recipe's 2048 clips per set" in few.describe()
    wrong = harness.write_tf1_hub_feature_net(tmp_path / "wrong", classes=300, frames=16, side=224)
    with pytest.raises(ValueError, match="gives 300-d outputs; i3d-kinetics-400 gives 400 logits"):
        metrics.load_feature_network(wrong, reference="i3d-kinetics-400")
    with pytest.raises(ValueError, match="i3d-kinetics-400 reads num_frames 16; got num_frames=8"):
        metrics.load_feature_network(good, reference="i3d-kinetics-400", num_frames=8)
    small = harness.write_tf1_hub_feature_net(tmp_path / "small", classes=400, frames=16, side=112)
    with pytest.raises(ValueError, match="not a i3d-kinetics-400 network: a probe clip"):
        metrics.load_feature_network(small, reference="i3d-kinetics-400")


def test_window_from_the_start_and_subsampled_windows():
    network = metrics.load_feature_network(_video_network())
    videos = np.zeros((3, 40, 8, 8, 1), np.uint8)
    videos[:, :, :, :, 0] = (np.arange(40) * 6)[None, :, None, None]  # frame t has value 6 t

    def frame_numbers(clips):
        return np.rint((clips[:, :, 0, 0, 0] + 1) * 255 / 2 / 6).astype(int)

    start = frame_numbers(metrics.prepare_clips(videos, network, np.random.default_rng(0), window="start").numpy())
    np.testing.assert_array_equal(start, np.tile(np.arange(FRAMES), (3, 1)))  # t = 0..3 for every clip
    # Every 8th frame (fvd2048_128f_subsample8f's rule): 4 frames span 25, from an offset in [0, 15].
    strided = frame_numbers(metrics.prepare_clips(videos, network, np.random.default_rng(0), stride=8).numpy())
    np.testing.assert_array_equal(np.diff(strided, axis=1), 8)
    assert np.all((strided[:, 0] >= 0) & (strided[:, 0] <= 15))
    with pytest.raises(ValueError, match="reads 4 frames, every 8th \\(25 in all\\), but the videos have 20"):
        metrics.prepare_clips(videos[:, :20], network, np.random.default_rng(0), stride=8)
    with pytest.raises(ValueError, match="`window` must be 'random' or 'start'"):
        metrics.prepare_clips(videos, network, np.random.default_rng(0), window="middle")
    real = _digits(16, seed=0, frames=12)
    score = metrics.fvd(real, real, feature_net=_video_network(), num_videos=16, window="start", stride=2)
    assert score.protocol["window"] == "start" and score.protocol["stride"] == 2


def test_num_trials_give_the_mean_and_spread_of_independent_draws():
    network = _video_network()
    real, fake = _digits(48, seed=0), _digits(48, seed=1)
    score = metrics.fvd(real, fake, feature_net=network, num_videos=16, num_trials=3, seed=4)
    # The same as three FVDs on consecutive thirds, their features taken in one pass with the same offsets.
    real_f = metrics.extract_features(real, network, seed=4)
    fake_f = metrics.extract_features(fake, network, seed=5)
    each = [metrics.frechet_distance(real_f[t * 16 : (t + 1) * 16], fake_f[t * 16 : (t + 1) * 16]) for t in range(3)]
    assert float(score) == pytest.approx(np.mean(each))
    assert score.std == pytest.approx(np.std(each, ddof=1)) and score.std > 0
    record = score.to_dict()
    assert (record["num_trials"], record["num_real"], record["num_fake"]) == (3, 16, 16)
    assert record["std"] == pytest.approx(score.std)
    assert record["protocol"] == {
        "num_real": 16, "num_fake": 16, "num_frames": FRAMES, "window": "random", "stride": 1,
        "resize": f"bilinear to {SIDE}x{SIDE}", "seed": 4, "num_trials": 3,
        "network": record["protocol"]["network"], "fingerprint": record["protocol"]["fingerprint"]}
    # The network's label carries its feature size and weights fingerprint (as every figure's does).
    assert record["protocol"]["network"].startswith("tiny_video_net (4x16x16x3 in [-1, 1]) -> 8-d features, weights ")
    assert len(record["protocol"]["fingerprint"]) == 12
    assert "mean of 3 trials" in score.describe()
    kvd = metrics.kvd(real, fake, feature_net=network, num_videos=16, num_trials=3, num_subsets=2, subset_size=8)
    assert kvd.num_trials == 3 and kvd.std is not None
    with pytest.raises(ValueError, match="holds only 48"):
        metrics.fvd(real, fake, feature_net=network, num_videos=16, num_trials=4)
    with pytest.raises(ValueError, match="`num_trials` must be an int >= 1"):
        metrics.fvd(real, fake, feature_net=network, num_videos=16, num_trials=0)


def test_precision_recall_of_videos_and_a_replayers_memorisation():
    network = _video_network()
    train, held_out, fresh = _digits(64, seed=0), _digits(32, seed=1), _digits(32, seed=2)
    found = metrics.precision_recall(held_out, fresh, feature_net=network, num_videos=32, k=3)
    assert set(found) == {"precision", "recall", "density", "coverage"}
    assert found["recall"].protocol["k"] == 3 and found["recall"].name == "recall (k=3)"
    # The same figures as the pure function on the features FVD reads (seed for real, seed + 1 for generated).
    direct = metrics.feature_precision_recall(metrics.extract_features(held_out, network, seed=0),
                                              metrics.extract_features(fresh, network, seed=1), k=3)
    assert {k: float(v) for k, v in found.items()} == pytest.approx(direct)
    copied = metrics.memorisation(train, train[:32], held_out, feature_net=network, num_videos=32)
    novel = metrics.memorisation(train, fresh, held_out, feature_net=network, num_videos=32)
    assert float(copied["ratio"]) < 0.05 < 0.5 < float(novel["ratio"])
    assert copied["protocol"]["num_train"] == 64 and copied["fake_distances"].shape == (32,)


def test_the_replay_ladder_ranks_replayers_by_their_variety():
    network = _video_network()
    reference, held_out = _digits(32, seed=0), _digits(32, seed=1)
    rows = metrics.replay_ladder(reference, held_out, feature_net=network, ks=(16, 1),
                                 metrics=("fvd", "precision", "recall"))
    assert [row["name"] for row in rows] == ["held-out real", "replay k=16", "replay k=1"]
    assert float(rows[0]["fvd"]) < float(rows[1]["fvd"]) < float(rows[2]["fvd"])
    assert float(rows[0]["recall"]) > 0.5 and float(rows[2]["recall"]) == 0.0
    # Row 0 is the FVD of the held-out clips as generated ones.
    assert float(rows[0]["fvd"]) == pytest.approx(float(metrics.fvd(reference, held_out, feature_net=network,
                                                                      num_videos=32)))
    np.testing.assert_array_equal(metrics.replay_videos(held_out, 3, 7)[[0, 3, 6]], held_out[[0, 0, 0]])
    with pytest.raises(ValueError, match="must be among"):
        metrics.replay_ladder(reference, held_out, feature_net=network, metrics=("motion",))
