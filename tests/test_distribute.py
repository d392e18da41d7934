"""Strategies by name, data sharding, and `vidgen train --strategy / --precision / --deterministic`.

conftest.py gives this process two logical CPUs, so "mirrored" has two replicas.
"""

import json
import types

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

import vidgen_tf
from vidgen_tf import cli, distribute

TINY_TRAIN = ["train", "mocogan", "--data", "moving_square", "--num-frames", "4", "--height", "16", "--width", "16",
              "--channels", "1", "--batch-size", "4", "--seed", "3", "--deterministic", "--quiet",
              "--set", "content_dim=8", "--set", "motion_dim=4", "--set", "generator_width=8",
              "--set", "discriminator_width=8"]


def h5_arrays(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


# ------------------------------------------------------------- get_strategy
def test_default_and_mirrored_over_the_logical_cpus():
    assert distribute.get_strategy("default").num_replicas_in_sync == 1
    assert distribute.get_strategy("mirrored").num_replicas_in_sync == 2  # no GPU: both logical CPUs
    only = distribute.get_strategy("mirrored", devices=["/cpu:1"])
    assert only.num_replicas_in_sync == 1 and only.extended.worker_devices[0].endswith("CPU:1")


def test_unknown_strategy_names_the_closest():
    with pytest.raises(KeyError, match="Unknown strategy 'mirored'.*Did you mean 'mirrored'"):
        distribute.get_strategy("mirored")


def test_devices_are_for_mirrored_only():
    with pytest.raises(ValueError, match="'mirrored' strategy only"):
        distribute.get_strategy("default", devices=["/cpu:0"])


@pytest.mark.parametrize("value,message", [
    (None, "TF_CONFIG environment variable, which is not set"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG needs a 'cluster'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "TF_CONFIG needs a 'task'"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "task index 2"),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    # get_strategy checks TF_CONFIG before TensorFlow would (silently) train alone.
    with pytest.raises(ValueError, match=message):
        distribute.get_strategy("multi_worker")


def test_a_valid_tf_config_is_read():
    config = distribute.read_tf_config(
        {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'})
    assert config["task"]["index"] == 1


def test_no_tpu_is_a_clear_error():
    with pytest.raises(ValueError, match="'tpu' strategy found no TPU"):
        distribute.get_strategy("tpu")


def test_only_the_chief_or_worker_0_writes():
    def fake(task_type, task_id, jobs):
        resolver = types.SimpleNamespace(
            task_type=task_type, task_id=task_id,
            cluster_spec=lambda: tf.train.ClusterSpec({job: ["h:1", "h:2"] for job in jobs}))
        return types.SimpleNamespace(cluster_resolver=resolver,
                                     extended=types.SimpleNamespace(_in_multi_worker_mode=lambda: True))

    assert distribute.is_chief(distribute.get_strategy("default"))
    assert distribute.is_chief(distribute.get_strategy("mirrored"))
    assert distribute.is_chief(fake("worker", 0, ["worker"]))
    assert not distribute.is_chief(fake("worker", 1, ["worker"]))
    assert not distribute.is_chief(fake("worker", 0, ["chief", "worker"]))
    assert distribute.is_chief(fake("chief", 0, ["chief", "worker"]))


def test_write_location_is_temporary_off_the_chief(tmp_path):
    chief = distribute.WriteLocation(tmp_path / "out", distribute.get_strategy("default"))
    assert chief.path == tmp_path / "out"
    chief.cleanup()  # never removes the real directory


# ------------------------------------------------------------------- data
def test_generated_data_shards_by_data_and_batches_are_global():
    dataset = distribute.shard_dataset(
        vidgen_tf.data.load("moving_square", num_frames=2, height=8, width=8, batch_size=4, seed=0))
    assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    strategy = distribute.get_strategy("mirrored")
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    parts = [t.numpy() for t in strategy.experimental_local_results(batch)]
    whole = next(iter(dataset)).numpy()
    # Each of the two replicas gets its half of the global batch of 4, in order.
    assert [p.shape[0] for p in parts] == [2, 2]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    with pytest.raises(ValueError, match="global batch size 5 does not divide among 2 replicas"):
        distribute.check_global_batch(5, strategy)


def test_train_rejects_a_global_batch_the_replicas_cannot_share(capsys):
    code = cli.main([*TINY_TRAIN, "--batch-size", "5", "--strategy", "mirrored", "--steps", "1"])
    assert code == 2 and "does not divide among 2 replicas" in capsys.readouterr().err
    code = cli.main(["train", "mocogan", "--data", "moving_square", "--strategy", "mirorred"])
    assert code == 2 and "Did you mean 'mirrored'" in capsys.readouterr().err


# ---------------------------------------------------------------- training
@pytest.mark.large
def test_train_mirrored_equals_default_after_three_steps(capsys, tmp_path):
    """`vidgen train --strategy mirrored` (2 replicas x 2 clips) makes the same
    3 steps as one device with the global batch of 4: same data (sharded), same
    noise (drawn for the global batch), same seed. Tolerance 1e-5: only the
    order of floating-point sums differs."""
    runs, logs = {}, {}
    for strategy in ("default", "mirrored"):
        out = tmp_path / strategy
        assert cli.main([*TINY_TRAIN, "--steps", "3", "--checkpoint-every", "3", "--strategy", strategy,
                         "--log-every", "1", "--out", str(out)]) == 0
        runs[strategy] = h5_arrays(out / "checkpoints" / "ckpt-3.weights.h5")
        logs[strategy] = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert "on 2 replicas (mirrored)" in capsys.readouterr().out
    # Keras's compile() gives an AdversarialModel an unused default `optimizer`,
    # which fit() builds only under a strategy: its slots are the one difference.
    extra = set(runs["mirrored"]) - set(runs["default"])
    assert set(runs["default"]) <= set(runs["mirrored"]) and all(k.startswith("optimizer/") for k in extra)
    assert len(runs["default"]) > 10
    for name, value in runs["default"].items():
        np.testing.assert_allclose(runs["mirrored"][name], value, atol=1e-5, rtol=1e-4, err_msg=name)
    # The logged gradient norms are of the summed gradient, as one device's.
    assert [r["step"] for r in logs["mirrored"]] == [1, 2, 3]
    for one, two in zip(logs["default"], logs["mirrored"]):
        for name in ("g_grad_norm", "d_grad_norm", "d_acc_real", "d_acc_fake"):
            np.testing.assert_allclose(two[name], one[name], rtol=1e-4, err_msg=name)


def test_mixed_float16_scales_the_loss_of_every_optimizer():
    import argparse

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        for name in ("mocogan", "hmm"):
            model = vidgen_tf.build(name, num_frames=4, height=16, width=16, channels=1)
            cli._compile(model, argparse.Namespace(lr=None, loss=None, seed=0, dequantize=True))
            optimizers = [model.g_optimizer, model.d_optimizer] if hasattr(model, "g_optimizer") else [model.optimizer]
            assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in optimizers), name
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.large
def test_train_mixed_bfloat16_then_export_with_parity(capsys, tmp_path):
    out = tmp_path / "bf16"
    code = cli.main([*TINY_TRAIN, "--steps", "2", "--precision", "mixed_bfloat16", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    metrics = json.loads(text.split("final metrics:")[1].splitlines()[0])
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    # The process-wide settings are back: float32 policy, no op determinism.
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not tf_config.is_op_determinism_enabled()
    assert json.loads((out / "metadata.json").read_text())["precision"] == "mixed_bfloat16"
    # Weights are float32 variables under mixed precision; the preset loads as float32.
    assert vidgen_tf.from_preset(out).generate(1, seed=0).dtype == tf.float32
    # The exporter runs onnxruntime against the SavedModel and raises if they disagree.
    code = cli.main(["export", str(out), "--format", "savedmodel,onnx", "--out", str(tmp_path / "exp")])
    assert code == 0, capsys.readouterr().err
    parity = json.loads((tmp_path / "exp" / "mocogan.onnx.parity.json").read_text())
    assert parity["max_abs_diff_float"] <= 1e-4
