"""The adversarial training core, exercised through a tiny MoCoGAN (and a toy GAN that shows what the critic sees)."""

import contextlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from tests import model_harness as harness
from vidgen_tf.adversarial import AdversarialModel

TINY = dict(num_frames=4, height=16, width=16, channels=1, content_dim=8, motion_dim=4,
            generator_width=8, discriminator_width=8)


def tiny(**overrides):
    return vidgen_tf.build("mocogan", **{**TINY, **overrides})


def weights_of(model):
    return [w.numpy() for w in model.generator.weights + model.discriminator_trainable_variables]


def test_compile_alone_works_and_defaults_follow_the_loss():
    model = tiny()
    model.compile()
    assert model.gan_loss.name == "non_saturating" and model.n_critic == 1
    model.compile(loss="wgan_gp")
    assert model.n_critic == 5 and model.gan_loss.penalty == "gradient_penalty"


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "lsgan", "wasserstein", "hinge", "wgan_gp"])
def test_every_loss_trains_and_reports_its_metrics(loss):
    model = tiny()
    expected = ["d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_grad_norm", "g_grad_norm"] + (["gradient_penalty"] if loss == "wgan_gp" else [])
    # MoCoGAN's critics have no Lipschitz constraint of their own.
    with pytest.warns(UserWarning, match="Lipschitz") if loss == "wasserstein" else contextlib.nullcontext():
        harness.check_fit(model, expected, steps=1, loss=loss, n_critic=1)


def test_discriminator_accuracy_reads_each_loss_s_side_of_its_threshold():
    real = tf.constant([[2.0, -1.0], [0.3, 0.6]])  # two clips, two patch scores each
    fake = tf.constant([[-3.0, 0.2], [-0.1, -0.4]])
    for loss in ("minimax", "non_saturating", "hinge"):
        acc_real, acc_fake = vidgen_tf.losses.discriminator_accuracy(loss, real, fake)
        np.testing.assert_allclose(acc_real, [0.5, 1.0])
        np.testing.assert_allclose(acc_fake, [0.5, 1.0])
    # LSGAN's targets are 0 and 1: its threshold is 0.5.
    acc_real, acc_fake = vidgen_tf.losses.discriminator_accuracy("lsgan", real, fake)
    np.testing.assert_allclose(acc_real, [0.5, 0.5])
    np.testing.assert_allclose(acc_fake, [1.0, 1.0])
    # A Wasserstein critic's offset means nothing: scores shifted by 100 read the same.
    shifted = [vidgen_tf.losses.discriminator_accuracy("wgan", real + c, fake + c) for c in (0.0, 100.0)]
    np.testing.assert_allclose(shifted[0][0], shifted[1][0])
    np.testing.assert_allclose(shifted[0][1], shifted[1][1])
    # The midpoint of the means 0.475 and -0.825 is -0.175, above the fake -0.1.
    np.testing.assert_allclose(shifted[0][0], [0.5, 1.0])
    np.testing.assert_allclose(shifted[0][1], [0.5, 0.5])


@pytest.mark.parametrize("mixed", [False, True])
def test_a_step_logs_discriminator_accuracy_and_each_player_s_gradient_norm(mixed):
    # With plain SGD a player's weights move by lr x its gradient: the logged
    # norm must be that move's norm over lr (the loss scale divided out).
    lr = 1e-3
    model = tiny()

    def sgd():
        opt = keras.optimizers.SGD(lr)
        return keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**10) if mixed else opt

    model.compile(g_optimizer=sgd(), d_optimizer=sgd(), seed=0)
    g_before = [v.numpy().copy() for v in model.generator.trainable_variables]
    d_before = [v.numpy().copy() for v in model.discriminator_trainable_variables]
    logs = model.fit(harness.video_dataset(model, num_batches=1), epochs=1, verbose=0).history
    for name in ("d_acc_real", "d_acc_fake"):
        assert 0.0 <= logs[name][-1] <= 1.0, (name, logs[name])

    def moved(variables, before):
        return np.sqrt(sum(np.sum((v.numpy() - b) ** 2) for v, b in zip(variables, before))) / lr

    g_move = moved(model.generator.trainable_variables, g_before)
    d_move = moved(model.discriminator_trainable_variables, d_before)
    assert g_move > 0 and d_move > 0
    np.testing.assert_allclose(logs["g_grad_norm"][-1], g_move, rtol=2e-3)
    np.testing.assert_allclose(logs["d_grad_norm"][-1], d_move, rtol=2e-3)


def test_r1_penalty_is_reported_when_weighted():
    harness.check_fit(tiny(), ["r1_penalty"], steps=1, r1_weight=1.0)


def test_n_critic_discriminator_updates_per_generator_update():
    model = tiny()
    model.compile(n_critic=3, seed=0)
    assert model.clips_per_step(2) == 6
    model.fit(harness.video_dataset(model, batch_size=6, num_batches=2), epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations) == 6
    assert int(model.g_optimizer.iterations) == 2
    assert int(model.noise_step) == 2


def test_same_seed_repeats_a_run_exactly_and_another_seed_does_not():
    def run(seed):
        keras.utils.set_random_seed(1)  # same initial weights
        model = tiny()
        model.compile(seed=seed)
        model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
        return weights_of(model)

    first, again, other = run(5), run(5), run(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_ema_generator_is_used_for_generation_and_presets(tmp_path):
    model = tiny()
    model.compile(ema_decay=0.5, seed=0)
    model.fit(harness.video_dataset(model, num_batches=2), epochs=1, verbose=0)
    ema, raw = model.ema_generator.get_weights(), model.generator.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(ema, raw))
    noise = harness.fixed_noise(model)
    expected = model.ema_generator(noise).numpy()
    np.testing.assert_allclose(model(noise).numpy(), expected, atol=1e-6)
    vidgen_tf.save_preset(model, tmp_path / "preset")
    restored = vidgen_tf.from_preset(tmp_path / "preset")
    np.testing.assert_allclose(restored.generator(noise).numpy(), expected, atol=1e-6)


def test_bad_compile_arguments_are_named():
    with pytest.raises(KeyError, match="Unknown loss 'hinj'.*Did you mean 'hinge'"):
        tiny().compile(loss="hinj")
    with pytest.raises(ValueError, match="n_critic"):
        tiny().compile(n_critic=0)
    with pytest.raises(ValueError, match="ema_decay"):
        tiny().compile(ema_decay=1.5)


def test_fit_before_compile_says_so():
    model = tiny()
    with pytest.raises(RuntimeError, match="compile"):
        model.train_step(tf.zeros((2,) + model.video_shape))


def test_wrong_video_shape_is_named():
    model = tiny()
    model.compile()
    wrong = tf.data.Dataset.from_tensor_slices(np.zeros((4, 4, 32, 32, 1), "float32")).batch(2)
    with pytest.raises(ValueError, match=r"expects videos shaped \(batch, 4, 16, 16, 1\).*got \(None, 4, 32, 32, 1\)"):
        model.fit(wrong, verbose=0)


def test_labels_and_conditioning_mismatches_are_named():
    model = tiny()
    model.compile()
    labelled = harness.video_dataset(tiny(num_classes=2))
    with pytest.raises(ValueError, match="unconditional"):
        model.fit(labelled, verbose=0)
    with pytest.raises(ValueError, match="unconditional"):
        model.generate(2, labels=[0, 1])
    conditional = tiny(num_classes=2)
    with pytest.raises(ValueError, match="labels are required"):
        conditional.generate(2)
    with pytest.raises(ValueError, match=r"label: expected integers in \[0, 2\)"):
        conditional.generate(2, labels=[0, 5])
    with pytest.raises(ValueError, match="Got 3 labels for 2 videos"):
        conditional.generate(2, labels=[0, 1, 1])


def test_standard_callbacks_work(tmp_path):
    model = tiny()
    model.compile(seed=0)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.h5"), save_weights_only=True),
        keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        # No later epoch beats the first by 1e9: EarlyStopping reads g_loss and stops after epoch 2.
        keras.callbacks.EarlyStopping(monitor="g_loss", patience=1, mode="min", min_delta=1e9),
    ]
    history = model.fit(harness.video_dataset(model, num_batches=1).repeat(), steps_per_epoch=1, epochs=3,
                        callbacks=callbacks, verbose=0)
    assert (tmp_path / "ckpt.weights.h5").is_file()
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert len(history.history["g_loss"]) == 2
    # The weights checkpoint holds the optimizers' state and loads back into a compiled twin.
    twin = tiny()
    twin.compile(seed=0)
    twin.load_weights(tmp_path / "ckpt.weights.h5")
    assert int(twin.noise_step) == int(model.noise_step)


def test_mirrored_strategy_equals_one_device():
    """Two replicas with the global batch split give the same weights after a
    step as one device with the whole batch (same seed and initial weights).
    Tolerance 1e-5: only the order of floating-point sums differs."""
    # 8 clips = n_critic 2 x B 4: every critic update sees 4 clips, 2 per replica.
    data = harness.video_dataset(tiny(), batch_size=8, num_batches=1)

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            model = tiny()
            model.compile(seed=11, loss="wgan_gp", n_critic=2)
        model.fit(data, epochs=1, verbose=0)
        return weights_of(model)

    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_mixed_bfloat16_step_is_finite_and_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny()
        history = harness.check_fit(model, ["d_loss", "g_loss"], steps=1)
        assert model.generator.frame_generator.layers[0].compute_dtype == "bfloat16"
        assert model.generate(2, seed=0).dtype == tf.float32
        assert all(np.isfinite(v[-1]) for v in history.history.values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_wraps_both_optimizers_for_loss_scaling():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny()
        model.compile()
        assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------ a toy GAN
class RecordingCritic(keras.layers.Layer):
    """A linear critic on the clip mean that records (eagerly) each batch it sees in training mode."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="ones", name="w")

    def call(self, videos, training=False):
        if training and tf.executing_eagerly():
            self.seen.append(videos[:, 0, 0, 0, 0].numpy())
        return self.w * tf.reduce_mean(videos, axis=[1, 2, 3, 4])  # (B,)


class ToyGAN(AdversarialModel):
    """2x2 clips of 2 frames; its generator starts at the constant -1, so fakes are told from the real clips."""

    def __init__(self, **kwargs):
        super().__init__(num_frames=2, height=2, width=2, channels=1, **kwargs)
        self.generator = self.make_generator()
        self.discriminators = {"critic": RecordingCritic(name="critic")}
        self.discriminators["critic"].build((None,) + self.video_shape)
        self.built = True

    def make_generator(self):
        latent = keras.Input((1,), name="z")
        flat = keras.layers.Dense(8, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-1.0))(latent)
        return keras.Model({"z": latent}, keras.layers.Reshape(self.video_shape)(flat))

    def sample_noise(self, batch_size, seed, num_frames=None):
        return {"z": tf.random.stateless_normal([batch_size, 1], tf.cast(seed, tf.int64))}


def marked_clips(num):
    """`num` clips, clip k filled with k / 16 (never the fakes' -1)."""
    return tf.constant(np.arange(num, dtype="float32")[:, None, None, None, None] / 16 * np.ones((1, 2, 2, 2, 1), "float32"))


def test_each_critic_update_sees_its_own_real_clips():
    """Arjovsky et al. 2017, Algorithm 1: a fresh real minibatch for every critic update. With
    n_critic=3 and 12 clips, update i sees clips i, i + 3, i + 6, i + 9 (the strided split)."""
    model = ToyGAN()
    model.compile(n_critic=3, seed=0, g_optimizer="sgd", d_optimizer="sgd")
    model.train_step(marked_clips(12))
    real = [np.round(batch * 16).astype(int).tolist() for batch in model.discriminators["critic"].seen
            if not np.allclose(batch, -1.0)]
    assert real == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    # The generator update's batch is B = 4: its fakes are the last batch the critic saw.
    assert model.discriminators["critic"].seen[-1].shape == (4,)


def test_a_batch_that_n_critic_does_not_divide_is_named():
    model = ToyGAN()
    model.compile(n_critic=3, seed=0)
    with pytest.raises(ValueError, match=r"n_critic=3.*n_critic x B clips.*clips_per_step.*got a batch of 4"):
        model.train_step(marked_clips(4))
    # Unknown until run time: a dataset batched without drop_remainder.
    step = tf.function(model.train_step, input_signature=[tf.TensorSpec((None,) + model.video_shape, tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"n_critic=3.*got a batch of.*\b5\b"):
        step(marked_clips(5))
    with pytest.raises(RuntimeError, match="compile"):
        ToyGAN().clips_per_step(4)
    with pytest.raises(ValueError, match="batch_size"):
        model.clips_per_step(0)


# ------------------------------------------------------------------- EMA
def test_ema_after_one_step_is_decay_times_ema_plus_the_rest_times_the_weights():
    decay = 0.9
    model = ToyGAN()
    model.compile(ema_decay=decay, seed=0, g_optimizer="sgd", d_optimizer="sgd")
    # An average apart from the weights, so that d and 1 - d cannot be swapped unseen.
    ema0 = [np.full(w.shape, 0.25, "float32") for w in model.ema_generator.weights]
    model.ema_generator.set_weights(ema0)
    model.train_step(marked_clips(4))
    weights = model.generator.get_weights()
    assert any(not np.allclose(w, 0.25) for w in weights)
    for ema, e0, w in zip(model.ema_generator.get_weights(), ema0, weights):
        np.testing.assert_allclose(ema, decay * e0 + (1 - decay) * w, rtol=1e-6, atol=1e-7)


def test_compiling_without_ema_drops_the_ema_generator():
    model = tiny()
    plain_weights = len(model.weights)
    model.compile(ema_decay=0.5, seed=0)
    ema = model.ema_generator
    model.compile(ema_decay=0.9, seed=0)
    assert model.ema_generator is ema  # a new decay keeps the average made so far
    model.compile(ema_decay=None, seed=0)
    assert model.ema_generator is None and model.inference_generator is model.generator
    assert len(model.weights) == plain_weights  # nor saved in checkpoints
    model.fit(harness.video_dataset(model, num_batches=1), epochs=1, verbose=0)
    noise = harness.fixed_noise(model)
    np.testing.assert_allclose(model(noise).numpy(), model.generator(noise).numpy(), atol=1e-6)


# ------------------------------------------------------------- penalties
def state_of(model):
    return [w.numpy().copy() for d in model.discriminators.values() for w in d.non_trainable_weights]


def real_and_fake(model, batch=4):
    rng = np.random.default_rng(0)
    shape = (batch,) + model.video_shape
    return tf.constant(rng.uniform(-1, 1, shape).astype("float32")), tf.constant(rng.uniform(-1, 1, shape).astype("float32"))


@pytest.mark.parametrize("name,overrides", [
    ("vgan", dict(latent_dim=8, generator_width=8, discriminator_width=8)),  # batch norm
    ("dvdgan", dict(latent_dim=8, frame_noise_dim=4, spatial_frames=2, generator_width=8, discriminator_width=8)),
])
def test_penalties_leave_moving_statistics_and_spectral_norm_vectors_alone(name, overrides):
    model = vidgen_tf.build(name, num_frames=4, height=16, width=16, channels=1, **overrides)
    model.compile(loss="wgan_gp", r1_weight=1.0, n_critic=1, seed=0)
    kinds = {"vgan": "moving_", "dvdgan": "sn_u"}[name]
    paths = [w.path for d in model.discriminators.values() for w in d.non_trainable_weights]
    assert any(kinds in path for path in paths), paths
    before = state_of(model)
    real, fake = real_and_fake(model)
    terms = model.penalties(real, fake, None, None, tf.constant([1, 2], tf.int64))
    assert set(terms) == {"gradient_penalty", "r1_penalty"}
    for a, b in zip(before, state_of(model)):
        np.testing.assert_array_equal(a, b)


def test_penalties_are_per_example_with_a_batch_normalised_critic():
    """R1 of a batch of 4 equals R1 of each clip alone: the batch-normalised VGAN critic
    runs in inference mode for the penalty, so no clip's gradient depends on another."""
    model = vidgen_tf.build("vgan", num_frames=4, height=16, width=16, channels=1, latent_dim=8,
                            generator_width=8, discriminator_width=8)
    model.compile(r1_weight=1.0, seed=0)
    # Moving statistics away from their initial values, as after some training.
    model.fit(harness.video_dataset(model, num_batches=1), epochs=1, verbose=0)
    real, fake = real_and_fake(model)
    seed = tf.constant([1, 2], tf.int64)
    whole = model.penalties(real, fake, None, None, seed)["r1_penalty"].numpy()
    alone = [model.penalties(real[i:i + 1], fake[i:i + 1], None, None, seed)["r1_penalty"].numpy()[0] for i in range(4)]
    assert np.all(whole > 0)
    np.testing.assert_allclose(whole, alone, rtol=1e-4)


# ------------------------------------------------------ Lipschitz warning
def lipschitz_warnings(build, **compile_kwargs):
    model = build()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(seed=0, **compile_kwargs)
    return [str(w.message) for w in caught if "Lipschitz" in str(w.message)]


def test_a_wasserstein_critic_without_lipschitz_constraint_is_warned_about():
    messages = lipschitz_warnings(tiny, loss="wgan")
    assert len(messages) == 1 and "MoCoGAN" in messages[0] and "'image'" in messages[0] and "wgan_gp" in messages[0]
    assert lipschitz_warnings(tiny, loss="wgan_gp") == []
    assert lipschitz_warnings(tiny, loss="hinge") == []
    tgan = dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, frame_code_dim=6, generator_width=8,
                temporal_width=16, discriminator_width=8)
    assert lipschitz_warnings(lambda: vidgen_tf.build("tgan", **tgan)) == []  # singular value clipping
    assert len(lipschitz_warnings(lambda: vidgen_tf.build("tgan", singular_value_clipping=False, **tgan))) == 1
    dvdgan = dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, frame_noise_dim=4, spatial_frames=2,
                  generator_width=8, discriminator_width=8)
    assert lipschitz_warnings(lambda: vidgen_tf.build("dvdgan", **dvdgan), loss="wgan") == []  # spectral norm
