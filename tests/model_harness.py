"""One harness for every model of the zoo (keras-hub's TestCase idea).

Each model's test file states its tiny configuration and calls these checks;
the checks are the contract of DESIGN.md: config round trip, `.keras` round
trip, a `fit` step on tf.data, generation shapes, mixed precision dtypes, and
exports that agree.
"""

import json

import keras
import numpy as np
import tensorflow as tf

import vidgen_tf


def fixed_noise(model, batch_size=2, num_frames=None, seed=7):
    return model.sample_noise(batch_size, tf.constant([seed, 3], tf.int64), num_frames=num_frames)


def labels_for(model, batch_size=2):
    return tf.range(batch_size, dtype=tf.int32) % max(model.num_classes, 1) if model.num_classes else None


def outputs(model, batch_size=2, num_frames=None):
    noise = fixed_noise(model, batch_size, num_frames)
    return model.generate_from_noise(noise, labels_for(model, batch_size), training=False).numpy()


def video_dataset(model, batch_size=4, num_batches=2, seed=0):
    rng = np.random.default_rng(seed)
    videos = rng.uniform(-1, 1, (batch_size * num_batches,) + model.video_shape).astype("float32")
    if model.num_classes:
        labels = rng.integers(0, model.num_classes, batch_size * num_batches).astype("int32")
        return tf.data.Dataset.from_tensor_slices((videos, labels)).batch(batch_size, drop_remainder=True)
    return tf.data.Dataset.from_tensor_slices(videos).batch(batch_size, drop_remainder=True)


def check_config_round_trip(model):
    config = model.get_config()
    rebuilt = type(model).from_config(config)
    assert json.dumps(rebuilt.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    built = vidgen_tf.build(model.registered_name, **{k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")})
    assert built.get_config()["num_frames"] == model.num_frames


def check_keras_round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(outputs(loaded), outputs(model), atol=1e-6)
    # A compiled model comes back compiled as it was (tests/test_keras_saving.py resumes training).
    assert loaded.get_compile_config() == model.get_compile_config()


def players(model):
    """dict player -> its trainable variables: the generator and each discriminator
    of a GAN, or the one player of a likelihood model (all its trainable weights)."""
    if hasattr(model, "discriminators"):
        result = {"generator": model.generator.trainable_variables}
        result.update({f"discriminator {name!r}": d.trainable_variables for name, d in model.discriminators.items()})
        return result
    return {"model": model.trainable_variables}


# Losses that see the logits only up to a common shift: the Wasserstein family
# always, the hinge loss while every logit is inside its margin.
SHIFT_BLIND_LOSSES = ("wasserstein", "wgan_gp", "hinge")


def shifts_every_logit_alike(model, variable, dataset):
    """Whether adding 1 to `variable` adds one same nonzero constant to every
    logit of one discriminator (an output bias), on a batch of `dataset`."""
    batch = next(iter(dataset))
    videos, labels = (batch if isinstance(batch, tuple) else (batch, None))
    seed = tf.constant([0, 0], tf.int64)

    def logits():
        outputs = model.discriminate(videos, labels, seed)
        return {name: out[0].numpy().astype(np.float64) for name, out in outputs.items()}

    before = logits()
    variable.assign_add(tf.ones_like(variable))
    after = logits()
    variable.assign_sub(tf.ones_like(variable))
    shifts = [after[name] - before[name] for name in before if not np.array_equal(after[name], before[name])]
    return len(shifts) == 1 and np.allclose(shifts[0], shifts[0].flat[0], atol=1e-2) and abs(shifts[0].flat[0]) > 0.5


def check_fit(model, expected_metrics, steps=2, **compile_kwargs):
    """Compiles, fits `steps` batches, and checks the metrics are reported and
    finite and that every trainable variable of every player moved.

    One exception: under a loss blind to a common shift of the logits (see
    `SHIFT_BLIND_LOSSES`) a discriminator's output bias gets a zero gradient
    and may stay; any other variable that stays fails the check.
    """
    model.compile(seed=0, **compile_kwargs)
    before = {player: [v.numpy().copy() for v in variables] for player, variables in players(model).items()}
    dataset = video_dataset(model, num_batches=steps)
    history = model.fit(dataset, epochs=1, verbose=0)
    for name in expected_metrics:
        assert name in history.history, f"{name} not reported; got {sorted(history.history)}"
        assert np.isfinite(history.history[name][-1]), f"{name} is not finite"
    for player, variables in players(model).items():
        assert variables, f"{player} has no trainable variables"
        still = [v for v, old in zip(variables, before[player]) if np.array_equal(v.numpy(), old)]
        if player.startswith("discriminator") and model.gan_loss.name in SHIFT_BLIND_LOSSES:
            still = [v for v in still if not shifts_every_logit_alike(model, v, dataset)]
        assert not still, (f"{player}: {len(still)} of {len(variables)} trainable variables never moved: "
                           f"{[v.path for v in still]}")
    return history


def check_generate(model, num_frames_options=()):
    videos = model.generate(3, seed=1)
    assert videos.shape == (3,) + model.video_shape
    assert videos.dtype == tf.float32
    assert float(tf.reduce_min(videos)) >= -1.0 and float(tf.reduce_max(videos)) <= 1.0
    np.testing.assert_array_equal(videos.numpy(), model.generate(3, seed=1).numpy())
    assert not np.array_equal(videos.numpy(), model.generate(3, seed=2).numpy())
    for frames in num_frames_options:
        longer = model.generate(2, seed=1, num_frames=frames)
        assert longer.shape == (2, frames) + model.video_shape[1:]


def check_exports(model, tmp_path):
    version_dir = vidgen_tf.export_savedmodel(model, tmp_path / "serving", version=3)
    assert version_dir == tmp_path / "serving" / model.registered_name / "3"
    loaded = tf.saved_model.load(str(version_dir))
    scoring = {"log_prob", "log_prob_uint8"} if getattr(model, "has_log_prob", False) else set()
    expected_signatures = {"serving_default", "generate"} | scoring
    expected_signatures |= set(vidgen_tf.exporting.streaming.streaming_signature_names(model))
    assert set(loaded.signatures) == expected_signatures
    # The description names every signature and how to draw every input.
    assert set(vidgen_tf.exporting.describe(version_dir)["signatures"]) == set(loaded.signatures)

    # serving_default: named noise inputs -> uint8 video equal to the Keras model's.
    noise = {k: v.numpy() for k, v in fixed_noise(model).items()}
    labels = labels_for(model)
    if labels is not None:
        noise["label"] = labels.numpy()
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in noise.items()})["video"]
    assert served.dtype == tf.uint8
    expected = vidgen_tf.exporting.to_uint8_video(outputs(model)).numpy()
    assert np.max(np.abs(served.numpy().astype(int) - expected.astype(int))) <= 1

    # generate: the same seed gives the same video as model.generate.
    args = {"batch_size": tf.constant(2), "seed": tf.constant(5, tf.int64)}
    if model.variable_length:
        args["num_frames"] = tf.constant(model.num_frames)
    if model.num_classes:
        args["label"] = labels
    generated = loaded.signatures["generate"](**args)["video"].numpy()
    reference = vidgen_tf.exporting.to_uint8_video(model.generate(2, seed=5, labels=labels)).numpy()
    assert np.max(np.abs(generated.astype(int) - reference.astype(int))) <= 1

    onnx_path = vidgen_tf.export_onnx(model, tmp_path / "model.onnx", savedmodel_dir=version_dir)
    report = json.loads((tmp_path / "model.onnx.parity.json").read_text())
    assert onnx_path.is_file()
    assert report["num_checks"] >= 8
    assert report["max_abs_diff_float"] <= 1e-4 and report["max_abs_diff_uint8"] <= 1
    return report


def video_statistics(videos):
    """`(mean intensity, mean frame-difference energy)` of videos `(B, T, H, W, C)`: what the learns tests compare."""
    videos = np.asarray(videos, dtype=np.float64)
    return videos.mean(), np.square(np.diff(videos, axis=1)).mean()


def tiny_video_feature_network(frames=4, side=16, name="tiny_video_net"):
    """A small fixed 3-D conv net for metric tests: clips (B, frames, side, side, 3) in [-1, 1] -> 8 features."""
    init = keras.initializers.RandomNormal(stddev=0.3, seed=1)
    return keras.Sequential(
        [keras.Input((frames, side, side, 3)), keras.layers.Conv3D(8, 3, kernel_initializer=init, activation="tanh"),
         keras.layers.GlobalAveragePooling3D()],
        name=name,
    )


def write_tf1_hub_feature_net(path, classes=400, frames=16, side=224, seed=0):
    """A stand-in for TF-Hub's i3d-kinetics-400/1 in its format: a TF1 SavedModel, tags [], signature `default`
    whose one input is `default` (clips (B, frames, side, side, 3) in [-1, 1]) and whose output `default` holds
    `classes` logits: a fixed linear map of the clip's mean colour and its first and last frames' means."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, frames, side, side, 3], name="input_frames")
        clips = tf.ensure_shape(inputs, [None, frames, side, side, 3])  # other sizes fail, as I3D's convolutions
        rng = np.random.default_rng(seed)
        weights = tf.compat.v1.get_variable("logits/w", initializer=rng.normal(size=(9, classes)).astype(np.float32))
        pooled = tf.concat([tf.reduce_mean(clips, axis=[1, 2, 3]), tf.reduce_mean(clips[:, 0], axis=[1, 2]),
                            tf.reduce_mean(clips[:, -1], axis=[1, 2])], axis=1)  # (B, 9)
        logits = tf.matmul(pooled, weights)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
                {"default": inputs}, {"default": logits})
            builder.add_meta_graph_and_variables(session, [], signature_def_map={"default": signature})
            builder.save()
    return path


def check_diffusion_exports(model, tmp_path, num_steps=2):
    """The exports of a diffusion model (`vidgen_tf.exporting.diffusion`): the SavedModel's `sample` loop,
    `generate`, `denoise` and `step` agree with the Keras model, and the ONNX `step` / `denoise` with parity."""
    version_dir = vidgen_tf.export_savedmodel(model, tmp_path / "serving", version=3)
    loaded = tf.saved_model.load(str(version_dir))
    assert set(loaded.signatures) == {"serving_default", "sample", "generate", "denoise", "step"}
    assert set(vidgen_tf.exporting.describe(version_dir)["signatures"]) == set(loaded.signatures)
    noise = fixed_noise(model)["noise"]
    labels = labels_for(model)
    conditional = {} if labels is None else {"label": labels, "guidance_scale": tf.constant(2.0)}
    guidance = 2.0 if labels is not None else None
    expected = vidgen_tf.exporting.to_uint8_video(
        model.generate_from_noise({"noise": noise}, labels, num_steps=num_steps, guidance_scale=guidance)).numpy()
    for name in ("serving_default", "sample"):
        served = loaded.signatures[name](noise=noise, num_steps=tf.constant(num_steps), **conditional)["video"]
        assert served.dtype == tf.uint8
        assert np.max(np.abs(served.numpy().astype(int) - expected.astype(int))) <= 1, name
    generated = loaded.signatures["generate"](batch_size=tf.constant(2), seed=tf.constant(5, tf.int64),
                                              num_steps=tf.constant(num_steps), **conditional)["video"].numpy()
    reference = model.generate(2, seed=5, labels=labels, num_steps=num_steps, guidance_scale=guidance)
    reference = vidgen_tf.exporting.to_uint8_video(reference).numpy()
    assert np.max(np.abs(generated.astype(int) - reference.astype(int))) <= 1
    t = tf.constant([0.3, 0.9])
    denoised = loaded.signatures["denoise"](x_t=noise, t=t, **({} if labels is None else {"label": labels}))
    np.testing.assert_allclose(denoised["prediction"].numpy(), model.denoise(noise, t, labels).numpy(), atol=1e-5)
    stepped = loaded.signatures["step"](x_t=noise, t=tf.constant(0.9), t_next=tf.constant(0.4), noise=noise,
                                        **conditional)["x_next"].numpy()
    np.testing.assert_allclose(stepped, model.step(noise, 0.9, 0.4, noise, labels, guidance or 1.0).numpy(),
                               atol=1e-5)

    onnx_path = vidgen_tf.export_onnx(model, tmp_path / "model.onnx", savedmodel_dir=version_dir)
    report = json.loads((tmp_path / "model.onnx.parity.json").read_text())
    assert onnx_path.is_file() and (tmp_path / "model.denoise.onnx").is_file()
    assert report["num_checks"] >= 8 and report["loop_steps"]
    assert report["max_abs_diff_float"] <= 1e-4 and report["max_abs_diff_uint8"] <= 1
    return version_dir, report
