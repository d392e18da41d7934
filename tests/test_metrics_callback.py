"""Sample metrics during training: MetricsCallback's JSON lines and TensorBoard scalars, the best checkpoint."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness
from vidgen_tf import callbacks, data, metrics

FRAMES, SIDE = 4, 16


def _video_network():
    return harness.tiny_video_feature_network(FRAMES, SIDE)


def _squares(num, seed):
    return data.make_videos("moving_square", num, num_frames=FRAMES, height=SIDE, width=SIDE, seed=seed)


class HeldOutGenerator(keras.Model):
    """A stand-in model: `generate` gives held-out moving squares (its seed picks them), plus a weight to save."""

    def __init__(self):
        super().__init__()
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        self.seeds = []
        self.built = True

    def generate(self, num, seed=None, num_frames=None, labels=None):
        self.seeds.append(seed)
        return _squares(num, seed=1000 + seed).astype(np.float32) / 127.5 - 1.0


def _run_steps(callback_list, model, steps):
    for callback in callback_list:
        callback.set_model(model)
        callback.on_train_begin()
    for step in range(steps):
        for callback in callback_list:
            callback.on_train_batch_end(step)
    for callback in callback_list:
        callback.on_train_end()


def test_the_callback_writes_a_json_line_and_scalars_every_n_steps(tmp_path):
    real = _squares(12, seed=0)
    callback = callbacks.MetricsCallback(
        real, metrics=("fvd", "motion"), every_steps=2, num_videos=10, seed=3, dataset="moving_square",
        feature_net=_video_network(), jsonl_path=tmp_path / "metrics.jsonl", log_dir=tmp_path / "tb", batch_size=4)
    model = HeldOutGenerator()
    _run_steps([callback], model, 5)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    for line in lines:
        assert np.isfinite(line["fvd"]) and np.isfinite(line["motion_total"]) and line["fvd"] >= 0
        assert line["num_videos"] == 10 and line["num_real"] == 12
        assert line["feature_network"].startswith("tiny_video_net (4x16x16x3")
        assert set(line["motion"]) == set(metrics.motion.STATISTICS) | {"total"}
    # Fixed noise: each evaluation draws the same batches (seeds 3, 4, 5 for 10 videos in batches of 4).
    assert model.seeds == [3, 4, 5, 3, 4, 5]
    assert lines[0]["fvd"] == lines[1]["fvd"]
    # The figure is the library's FVD of the same sets.
    fake = callbacks.generate_videos(model, 10, 3, batch_size=4)
    expected = metrics.fvd(real, fake, feature_net=_video_network(), num_videos=None, batch_size=4, seed=3)
    assert lines[0]["fvd"] == pytest.approx(float(expected), rel=1e-9)
    assert callback.latest == {"fvd": lines[1]["fvd"], "motion": lines[1]["motion_total"]}
    tags = set()
    for path in (tmp_path / "tb" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update((value.tag, event.step) for value in event.summary.value)
    assert {("metrics/fvd", 2), ("metrics/fvd", 4), ("metrics/motion", 2), ("metrics/motion", 4)} <= tags


def test_the_real_features_are_extracted_once(monkeypatch):
    calls = []
    extract = metrics.extract_features

    def counting(source, *args, **kwargs):
        calls.append(len(source))
        return extract(source, *args, **kwargs)

    monkeypatch.setattr(metrics, "extract_features", counting)
    callback = callbacks.MetricsCallback(_squares(12, seed=0), metrics=("fvd", "kvd"), every_steps=1, num_videos=6,
                                         feature_net=_video_network(), batch_size=6)
    _run_steps([callback], HeldOutGenerator(), 3)
    # One extraction of the 12 real clips (FVD and KVD share the network), one of the 6 generated per step.
    assert calls == [12, 6, 6, 6]


def test_bad_metric_settings_are_named():
    real = _squares(4, seed=0)
    with pytest.raises(vidgen_tf.registry.UnknownNameError, match="Unknown metric .fdv."):
        callbacks.MetricsCallback(real, metrics=("fdv",), every_steps=1, feature_net=_video_network())
    with pytest.raises(ValueError, match="motion metric needs a synthetic dataset"):
        callbacks.MetricsCallback(real, metrics=("motion",), every_steps=1, dataset="npz")
    with pytest.raises(ValueError, match="reads clips"):
        callbacks.SampleScorer(real, ("fid",), feature_net=_video_network()).score(_squares(4, seed=1))
    motion = callbacks.MetricsCallback(real, metrics=("motion",), every_steps=1, dataset="moving_square")
    with pytest.raises(ValueError, match="'fvd' is not among the metrics computed"):
        callbacks.StepCheckpoint("unused", best_metric="fvd", metrics=motion)


@pytest.mark.parametrize("metric,values,best_step", [
    ("motion", [3.0, 5.0, 1.0, 2.0], 3),  # lower is better: kept through a worse one, replaced by a better one
    ("is", [3.0, 5.0, 1.0, 2.0], 2),  # higher is better
])
def test_keep_best_keeps_the_checkpoint_of_the_best_figure(tmp_path, monkeypatch, metric, values, best_step):
    figures = iter(values)
    monkeypatch.setattr(callbacks.SampleScorer, "score",
                        lambda self, videos: {metric: {"total": next(figures)} if metric == "motion" else
                                              metrics.Score(next(figures), "IS", None, len(videos), "stub")})
    model = HeldOutGenerator()
    classifier = metrics.load_feature_network(_video_network(), kind="logits")  # IS reads declared logits
    tracker = callbacks.MetricsCallback(_squares(4, seed=0), metrics=(metric,), every_steps=1, num_videos=2,
                                        dataset="moving_square", feature_net=classifier)
    checkpoint = callbacks.StepCheckpoint(tmp_path / "ckpt", keep=2, best_metric=metric, metrics=tracker)

    class SetScale(keras.callbacks.Callback):  # the weights at step s are s
        def on_train_batch_begin(self, batch, logs=None):
            model.scale.assign(float(batch + 1))

    setter = SetScale()
    for callback in (setter, tracker, checkpoint):
        callback.set_model(model)
    for step in range(len(values)):
        setter.on_train_batch_begin(step)
        tracker.on_train_batch_end(step)
        checkpoint.on_train_batch_end(step)
        if step % 2 == 1:
            checkpoint.on_epoch_end(step // 2)
    best = json.loads((tmp_path / "ckpt" / "best.json").read_text())
    assert best == {"metric": metric, "step": best_step, "value": values[best_step - 1],
                    "higher_is_better": metric == "is"}
    restored = HeldOutGenerator()
    restored.load_weights(tmp_path / "ckpt" / "best.weights.h5")
    assert float(restored.scale) == best_step
    # The rolling checkpoints are untouched by the best one, and restore reads the newest of them.
    assert [step for step, _ in checkpoint.checkpoints()] == [2, 4]
    assert callbacks.StepCheckpoint(tmp_path / "ckpt").restore(restored) == 4 and float(restored.scale) == 4.0
    # A resumed run must beat the recorded figure.
    resumed = callbacks.StepCheckpoint(tmp_path / "ckpt", best_metric=metric, metrics=tracker)
    resumed.set_model(model)
    resumed.step = 9
    assert not resumed.consider_best(values[best_step - 1])
    assert resumed.consider_best(values[best_step - 1] + (1.0 if metric == "is" else -1.0))
    assert resumed.best["step"] == 9


def test_without_a_network_the_builtin_one_of_each_kind_is_used(monkeypatch):
    kinds = []

    def builtin_feature_network(kind="video"):
        kinds.append(kind)
        if kind == "logits":  # the built-in network declares its class logits
            return metrics.load_feature_network(_video_network(), kind="logits")
        return _video_network() if kind == "video" else keras.Sequential(
            [keras.Input((SIDE, SIDE, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()],
            name="tiny_frame_net")

    monkeypatch.setattr(metrics, "builtin_feature_network", builtin_feature_network, raising=False)
    scorer = callbacks.SampleScorer(_squares(6, seed=0), ("fvd", "kvd", "fid", "is"), batch_size=6)
    assert kinds == ["video", "frame", "logits"]  # one network per kind, FVD and KVD share theirs
    results = scorer.score(_squares(6, seed=1))
    assert results["fid"].feature_network.startswith("tiny_frame_net (frames 16x16x3")
    assert all(np.isfinite(float(results[name])) for name in ("fvd", "kvd", "fid", "is"))
    monkeypatch.delattr(metrics, "builtin_feature_network")
    with pytest.raises(ValueError, match="No feature network given for fvd"):
        callbacks.SampleScorer(_squares(6, seed=0), ("fvd",))


def test_a_network_that_cannot_serve_a_metric_fails_when_the_callback_is_set_up():
    real = _squares(4, seed=0)
    net = _video_network()
    eight = harness.tiny_video_feature_network(8, SIDE, name="eight_frames")
    with pytest.raises(ValueError, match="FVD: feature network eight_frames .* reads 8 consecutive frames, but the "
                                         "clips have 4"):
        callbacks.MetricsCallback(real, metrics=("fvd",), every_steps=1, feature_net=eight)
    # A network whose real input is 16x16, declared as reading 8x8: the probe call fails at set-up.
    strict = tf.function(lambda x: net(x), input_signature=[tf.TensorSpec([None, FRAMES, SIDE, SIDE, 3], tf.float32)])
    wrong_size = metrics.FeatureNetwork(strict, "wrong_size", (8, 8), FRAMES, fingerprint="w")
    with pytest.raises(ValueError, match="FVD: feature network wrong_size .* fails on clips \\(2, 4, 8, 8, 3\\)"):
        callbacks.MetricsCallback(real, metrics=("fvd",), every_steps=1, feature_net=wrong_size)
    with pytest.raises(ValueError, match="is declared to give features"):
        callbacks.MetricsCallback(real, metrics=("is",), every_steps=1, feature_net=net)
    # The built-in network's IS of a single-class dataset is refused before training, not scored as 1.
    balls = data.make_videos("bouncing_balls", 4, num_frames=8, height=32, width=32, seed=0)
    with pytest.raises(ValueError, match="bouncing_balls has a single class"):
        callbacks.MetricsCallback(balls, metrics=("is",), every_steps=1, dataset="bouncing_balls")


class DigitDrawer(keras.Model):
    """A stand-in generator of one-digit clips: of its labels (conditional), or of `digit` only (collapsed)."""

    def __init__(self, num_classes=0, digit=None):
        super().__init__()
        self.num_classes, self.digit = num_classes, digit
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        self.built = True

    def generate(self, num, seed=None, num_frames=None, labels=None):
        pool, pool_labels = data.make_videos("moving_digits", 400, num_frames=4, height=32, width=32, channels=1,
                                             seed=[50, seed], with_labels=True, num_digits=1)
        wanted = [self.digit] * num if labels is None else list(labels)
        picks = [np.flatnonzero(pool_labels == d)[i] for i, d in enumerate(wanted)]
        return pool[picks].astype(np.float32) / 127.5 - 1.0


@pytest.mark.parametrize("conditional", [True, False])
def test_on_moving_digits_every_record_says_which_digits_the_samples_draw(tmp_path, conditional):
    real = data.make_videos("moving_digits", 12, num_frames=4, height=32, width=32, channels=1, seed=0)
    model = DigitDrawer(num_classes=10) if conditional else DigitDrawer(digit=3)
    callback = callbacks.MetricsCallback(real, metrics=("motion",), every_steps=1, num_videos=20, seed=1,
                                         dataset="moving_digits", jsonl_path=tmp_path / "metrics.jsonl",
                                         log_dir=tmp_path / "tb", batch_size=20)
    _run_steps([callback], model, 1)
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["digit_consistency"] > 0.95
    if conditional:  # labels cycle 0-9: every digit twice, each read as its label
        assert record["digit_label_match"] > 0.95
        assert record["digit_classes"] == pytest.approx([0.1] * 10)
        assert record["digit_class_bits"] == pytest.approx(np.log2(10))
    else:  # collapsed onto 3s
        assert "digit_label_match" not in record
        assert record["digit_classes"][3] == 1.0 and record["digit_class_bits"] == pytest.approx(0.0, abs=1e-9)
    assert callback.latest == {"motion": record["motion_total"]}  # diagnostics are not kept-best figures
    tags = set()
    for path in (tmp_path / "tb" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    assert "diagnostics/digit_consistency" in tags
