"""Mixed float16 training: each player's loss is scaled by its own loss-scale
optimizer, so an overflowing scale skips that player's step (and halves its
scale) while the other player trains; the scales survive a `.keras` round trip."""

import keras
import numpy as np
import pytest

import vidgen_tf
from tests import model_harness as harness

TINY = dict(num_frames=4, height=16, width=16, channels=1, content_dim=8, motion_dim=4,
            generator_width=8, discriminator_width=8)
# float16 overflows past 65504: a loss scaled by 2**40 has infinite float16
# gradients, while 2**4 leaves them finite.
HUGE, MODEST = 2.0**40, 2.0**4


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def moved(before, variables):
    return any(not np.array_equal(old, v.numpy()) for old, v in zip(before, variables))


def test_each_player_s_loss_is_scaled_by_its_own_optimizer(mixed_float16, tmp_path):
    keras.utils.set_random_seed(0)
    model = vidgen_tf.build("mocogan", **TINY)
    model.compile(seed=0)
    assert model.generator.frame_generator.layers[0].compute_dtype == "float16"
    g, d = model.g_optimizer, model.d_optimizer
    assert isinstance(g, keras.optimizers.LossScaleOptimizer) and isinstance(d, keras.optimizers.LossScaleOptimizer)
    data = harness.video_dataset(model, num_batches=1)
    g_vars, d_vars = model.generator.trainable_variables, model.discriminator_trainable_variables

    def step(g_scale, d_scale):
        g.dynamic_scale.assign(g_scale)
        d.dynamic_scale.assign(d_scale)
        g_before, d_before = snapshot(g_vars), snapshot(d_vars)
        history = model.fit(data, epochs=1, verbose=0)
        return moved(g_before, g_vars), moved(d_before, d_vars), history.history

    # The generator's scale overflows: its step is skipped and its scale
    # halved; the discriminator's step goes through, its scale unchanged.
    g_moved, d_moved, logs = step(HUGE, MODEST)
    assert (g_moved, d_moved) == (False, True)
    assert (float(g.dynamic_scale), float(d.dynamic_scale)) == (HUGE / 2, MODEST)
    assert (int(g.iterations), int(d.iterations)) == (0, 1)
    # The logs hold the unscaled losses (scaled by 2**40 they would be ~1e12).
    assert abs(logs["g_loss"][-1]) < 100 and abs(logs["d_loss"][-1]) < 100

    # And the other way round.
    g_moved, d_moved, _ = step(MODEST, HUGE)
    assert (g_moved, d_moved) == (True, False)
    assert (float(g.dynamic_scale), float(d.dynamic_scale)) == (MODEST, HUGE / 2)
    assert (int(g.iterations), int(d.iterations)) == (1, 1)
    assert (int(g.step_counter), int(d.step_counter)) == (1, 0)

    # The loss scales are optimizer state: a `.keras` file keeps them.
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert (float(loaded.g_optimizer.dynamic_scale), float(loaded.d_optimizer.dynamic_scale)) == (MODEST, HUGE / 2)
    assert (int(loaded.g_optimizer.step_counter), int(loaded.d_optimizer.step_counter)) == (1, 0)
    assert (int(loaded.g_optimizer.iterations), int(loaded.d_optimizer.iterations)) == (1, 1)


def test_a_likelihood_model_s_loss_is_scaled(mixed_float16):
    keras.utils.set_random_seed(0)
    model = vidgen_tf.build("video_vae", num_frames=4, height=8, width=8, channels=1, latent_dim=4, base_filters=4)
    model.compile(seed=0, jit_compile=False)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    data = harness.video_dataset(model, num_batches=1)
    variables = model.trainable_variables

    optimizer.dynamic_scale.assign(HUGE)
    before = snapshot(variables)
    logs = model.fit(data, epochs=1, verbose=0).history
    assert not moved(before, variables)
    assert float(optimizer.dynamic_scale) == HUGE / 2 and int(optimizer.iterations) == 0
    assert np.isfinite(logs["nll"][-1]) and abs(logs["nll"][-1]) < 1e6  # unscaled

    optimizer.dynamic_scale.assign(MODEST)
    model.fit(data, epochs=1, verbose=0)
    assert moved(before, variables)
    assert float(optimizer.dynamic_scale) == MODEST and int(optimizer.iterations) == 1
