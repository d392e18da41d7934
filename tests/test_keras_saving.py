"""A `.keras` file resumes training: `load_model` gives a compiled model whose
`fit` continues exactly as a run that never stopped, for every model of the zoo."""

import json
import logging
import zipfile

import keras
import numpy as np
import pytest

import vidgen_tf
from tests import model_harness as harness

# The tiny configurations of the models' own test files.
TINY = {
    "dcgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, label_dim=4,
                  generator_width=8, discriminator_width=8),
    "dvdgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, frame_noise_dim=4, label_dim=4,
                   spatial_frames=2, generator_width=8, discriminator_width=8),
    "hmm": dict(num_frames=5, height=2, width=2, channels=1, num_states=3),
    "kvae": dict(num_frames=6, height=8, width=8, channels=1, base_filters=4, dynamics_units=8),
    "mocogan": dict(num_frames=4, height=16, width=16, channels=1, content_dim=8, motion_dim=4,
                    generator_width=8, discriminator_width=8),
    "tgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, frame_code_dim=6,
                 generator_width=8, temporal_width=16, discriminator_width=8),
    "vgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, generator_width=8,
                 discriminator_width=8),
    "video_diffusion": dict(num_frames=4, height=8, width=8, channels=1, base_filters=8, channel_multipliers=(1, 2),
                            attention_resolutions=(4,), sampling_steps=4),
    "video_vae": dict(num_frames=4, height=8, width=8, channels=1, latent_dim=4, base_filters=4),
}


def optimizers_of(model):
    if hasattr(model, "g_optimizer"):
        return {"g_optimizer": model.g_optimizer, "d_optimizer": model.d_optimizer}
    return {"optimizer": model.optimizer}


def state_of(model):
    """Every variable that decides how training goes on: the model's (weights,
    EMA generator, `noise_step`) and the optimizers' (iterations, moments)."""
    state = {f"weights[{i}] {v.path}": v.numpy() for i, v in enumerate(model.weights)}
    for name, optimizer in optimizers_of(model).items():
        state.update({f"{name}[{i}] {v.path}": v.numpy() for i, v in enumerate(optimizer.variables)})
    return state


def assert_same_state(actual, expected, atol=1e-6):
    actual, expected = state_of(actual), state_of(expected)
    assert len(actual) == len(expected)
    # Paths carry layer-name counters that differ between two builds: compare in order.
    for (name, a), (_, b) in zip(actual.items(), expected.items()):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, atol=atol, rtol=0, err_msg=name)


def resume_matches_an_uninterrupted_run(name, tmp_path, config=None, optimizers=dict, **compile_kwargs):
    """Trains two steps straight; and one step with a full `ModelCheckpoint`,
    `load_model`, one more step: the two end in the same state (1e-6).
    `optimizers()` gives each run its own optimizer instances."""
    config = TINY[name] if config is None else config

    def fresh():
        keras.utils.set_random_seed(0)  # the same initial weights for both runs
        model = vidgen_tf.build(name, **config)
        model.compile(seed=3, **optimizers(), **compile_kwargs)
        return model

    straight = fresh()
    data = harness.video_dataset(straight, num_batches=2)
    straight.fit(data, epochs=1, verbose=0)

    first = fresh()
    path = tmp_path / "checkpoint.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(str(path), save_weights_only=False)
    first.fit(data.take(1), epochs=1, verbose=0, callbacks=[checkpoint])
    assert path.is_file()
    resumed = keras.models.load_model(path)
    assert type(resumed) is type(first)
    assert resumed.get_compile_config() == first.get_compile_config()
    assert int(resumed.noise_step) == 1
    assert_same_state(resumed, first, atol=0.0)  # the file holds the whole training state

    resumed.fit(data.skip(1), epochs=1, verbose=0)
    assert int(resumed.noise_step) == 2
    assert_same_state(resumed, straight)
    # The second step changed the weights (the comparison above is not of a stalled run).
    assert any(not np.array_equal(v.numpy(), w.numpy())
               for v, w in zip(straight.trainable_weights, first.trainable_weights))
    return resumed


def test_every_registered_model_is_covered():
    assert sorted(TINY) == sorted(vidgen_tf.list_models())


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_full_checkpoint_resumes_training_exactly(name, tmp_path):
    model = vidgen_tf.build(name, **TINY[name])
    options = {}
    if hasattr(model, "likelihood_is_discrete"):
        # XLA compilation dominates these tiny runs (kvae: 69 s with it, 17 s
        # without, here); the flag's round trip is tested below.
        options["jit_compile"] = False
        if not model.likelihood_is_discrete:
            options["dequantize"] = True  # the dequantisation noise must continue too
    resume_matches_an_uninterrupted_run(name, tmp_path, **options)


def test_a_gan_resumes_with_its_penalties_ema_and_optimizers(tmp_path):
    """A conditional WGAN-GP with EMA, two critic updates a step and two kinds of
    optimizer. 20-40 s on the shared 2-core machine: three traces of a step
    with the gradient penalty's double backward pass."""
    config = dict(TINY["mocogan"], num_classes=2)
    def optimizers():
        return dict(g_optimizer=keras.optimizers.Adam(3e-4, beta_1=0.0, beta_2=0.9),
                    d_optimizer=keras.optimizers.RMSprop(1e-4))

    compile_kwargs = dict(
        optimizers=optimizers, loss="wgan_gp", n_critic=2, gp_weight=5.0, ema_decay=0.9, class_weight=0.25,
    )
    resumed = resume_matches_an_uninterrupted_run("mocogan", tmp_path, config=config, **compile_kwargs)
    assert resumed.gan_loss.name == "wgan_gp" and resumed.gan_loss.penalty == "gradient_penalty"
    assert (resumed.n_critic, resumed.gp_weight, resumed.r1_weight) == (2, 5.0, 0.0)
    assert (resumed.ema_decay, resumed.class_weight, resumed.training_seed) == (0.9, 0.25, 3)
    assert sorted(resumed.trackers) == sorted(
        ["d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_grad_norm", "g_grad_norm",
         "gradient_penalty", "class_loss"])
    g, d = resumed.g_optimizer, resumed.d_optimizer
    assert isinstance(g, keras.optimizers.Adam) and isinstance(d, keras.optimizers.RMSprop)
    assert np.isclose(float(g.learning_rate), 3e-4) and (g.beta_1, g.beta_2) == (0.0, 0.9)
    assert np.isclose(float(d.learning_rate), 1e-4)
    assert (int(g.iterations), int(d.iterations)) == (2, 4)
    # The EMA generator came back with its own weights, and generation uses it.
    assert resumed.ema_generator is not None and resumed.inference_generator is resumed.ema_generator
    assert any(not np.array_equal(a, b) for a, b in
               zip(resumed.ema_generator.get_weights(), resumed.generator.get_weights()))


def test_a_likelihood_model_resumes_with_its_optimizer_and_options(tmp_path):
    resumed = resume_matches_an_uninterrupted_run(
        "video_vae", tmp_path, optimizers=lambda: dict(optimizer=keras.optimizers.SGD(0.01, momentum=0.9)),
        jit_compile=False,
    )
    assert isinstance(resumed.optimizer, keras.optimizers.SGD)
    assert np.isclose(float(resumed.optimizer.learning_rate), 0.01) and resumed.optimizer.momentum == 0.9
    assert int(resumed.optimizer.iterations) == 2
    assert resumed.dequantize is False and resumed.training_seed == 3 and resumed.jit_compile is False
    assert sorted(resumed.trackers) == ["bits_per_dim", "nll"]


@pytest.mark.parametrize("name", ["mocogan", "hmm"])
def test_compile_options_and_a_drawn_seed_are_kept(name, tmp_path):
    model = vidgen_tf.build(name, **TINY[name])
    if name == "hmm":
        options = {"dequantize": True}
    else:
        options = {"ema_decay": 0.5, "r1_weight": 0.5, "gp_weight": 2.0, "n_critic": 3, "class_weight": 0.5}
    model.compile(steps_per_execution=2, jit_compile=True, **options)  # seed=None: drawn at random
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.training_seed == model.training_seed
    assert all(getattr(loaded, key) == value for key, value in options.items())
    assert loaded.steps_per_execution == 2 and loaded.jit_compile is True


def test_an_uncompiled_model_loads_uncompiled(tmp_path):
    model = vidgen_tf.build("mocogan", **TINY["mocogan"])
    assert model.get_compile_config() is None
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert not hasattr(loaded, "gan_loss")


def test_a_gan_file_without_its_compile_arguments_loads_uncompiled_and_says_so(tmp_path, caplog):
    """Files saved before the GANs stored their compile arguments hold Keras's
    generic ones (`optimizer`, `loss`, ...): they load, uncompiled, with a warning."""
    model = vidgen_tf.build("mocogan", **TINY["mocogan"])
    model.compile(seed=0)
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as source, zipfile.ZipFile(tmp_path / "old.keras", "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["compile_config"] = {"optimizer": "rmsprop", "loss": None, "metrics": None,
                                            "jit_compile": False}
                data = json.dumps(config)
            target.writestr(item, data)
    with caplog.at_level(logging.WARNING, logger="vidgen_tf.adversarial"):
        loaded = keras.models.load_model(tmp_path / "old.keras")
    assert not hasattr(loaded, "gan_loss")
    assert any("holds no GAN compile arguments" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(harness.outputs(loaded), harness.outputs(model))


# ------------------------------------------------------------------ safe mode
def _double(x):
    return x * 2.0


def test_zoo_models_load_in_safe_mode_through_load_model_and_from_preset(tmp_path):
    model = vidgen_tf.build("mocogan", **TINY["mocogan"])
    model.compile(seed=0)
    model.save(tmp_path / "model.keras")
    for loaded in (vidgen_tf.load_model(tmp_path / "model.keras"), vidgen_tf.from_preset(tmp_path / "model.keras")):
        assert type(loaded) is type(model) and loaded.get_compile_config() == model.get_compile_config()
        np.testing.assert_array_equal(harness.outputs(loaded), harness.outputs(model))
    with pytest.raises(ValueError, match="Overrides .* apply to preset directories"):
        vidgen_tf.from_preset(tmp_path / "model.keras", num_frames=8)
    with pytest.raises(FileNotFoundError, match="No .keras file at"):
        vidgen_tf.load_model(tmp_path / "missing.keras")


@pytest.mark.parametrize("function", [lambda x: x * 2.0, _double], ids=["lambda", "named_function"])
def test_a_keras_file_with_a_lambda_layer_is_refused_unless_trusted(tmp_path, function):
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(function, name="code")]).save(tmp_path / "code.keras")
    for load in (vidgen_tf.load_model, vidgen_tf.from_preset):
        with pytest.raises(vidgen_tf.presets.UnsafeModelFileError) as raised:
            load(tmp_path / "code.keras")
        message = str(raised.value)
        assert "code.keras was not loaded" in message and "a Lambda layer 'code'" in message
        assert "safe_mode=True" in message and "safe_mode=False" in message and "trust" in message
    if function is _double:
        return  # a named function of a test module loads only where that module is imported
    trusted = vidgen_tf.load_model(tmp_path / "code.keras", safe_mode=False)
    np.testing.assert_allclose(trusted(np.ones((1, 3), np.float32)), 2.0)


def test_code_keras_refuses_while_loading_is_reported_the_same_way(tmp_path, monkeypatch):
    """The scan of config.json finds Lambda layers; anything else Keras's safe mode refuses
    (here: the scan is switched off) gets the same message."""
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x + 1.0)]).save(tmp_path / "code.keras")
    monkeypatch.setattr(vidgen_tf.presets, "_code_in_config", lambda config: [])
    with pytest.raises(vidgen_tf.presets.UnsafeModelFileError, match="code Keras refused in safe mode.*safe_mode=False"):
        vidgen_tf.load_model(tmp_path / "code.keras")
    # Keras's global unsafe switch does not turn the zoo's loader unsafe: only safe_mode=False does.
    from keras.src.backend.common import global_state

    previous = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    try:
        with pytest.raises(vidgen_tf.presets.UnsafeModelFileError):
            vidgen_tf.load_model(tmp_path / "code.keras")
    finally:
        global_state.set_global_attribute("safe_mode_saving", previous)
    assert float(vidgen_tf.load_model(tmp_path / "code.keras", safe_mode=False)(np.ones((1, 3)))[0, 0]) == 2.0
