"""vidgen_tf.cost: whole-model multiply-adds against hand counts, and every model counted."""

import pytest

import vidgen_tf
from vidgen_tf.cost import model_multiply_adds
from vidgen_tf.layers.cost import multiply_adds

# DCGAN on one 8x8 grey frame, latent 4, widths 2: one doubling stage (4x4 -> 8x8).
TINY_DCGAN = dict(num_frames=1, height=8, width=8, channels=1, latent_dim=4, generator_width=2,
                  discriminator_width=2)


def test_dcgan_matches_a_hand_count():
    cost = model_multiply_adds(vidgen_tf.build("dcgan", **TINY_DCGAN))
    # Generator: Dense 4 -> 4 * 4 * 2 (128), then a 4x4 transposed convolution of the
    # (4, 4, 2) grid to one channel: 16 inputs * 2 channels * 16 taps * 1 output (512).
    f_g = 4 * 32 + 16 * 2 * 16
    # Discriminator: a 4x4 stride-2 convolution (8, 8, 1) -> (4, 4, 2): 16 * 2 * 16 * 1
    # (512), then the linear unit on 32 features.
    f_d = 16 * 2 * 16 + 32
    assert cost.forward == {"generator": 640, "frame": 544} == {"generator": f_g, "frame": f_d}
    assert cost.per_generated_clip == f_g
    # One critic update (G forward, D forward and backward on real and fake: F_G + 6 F_D)
    # and one generator update (3 F_G + 2 F_D) per clip.
    assert cost.per_training_clip == (f_g + 6 * f_d) + (3 * f_g + 2 * f_d) == 6912
    assert cost.training == {"loss": "non_saturating", "n_critic": 1, "penalties": [], "clips_per_step_per_batch": 1}


def test_penalties_critic_updates_and_classes_change_the_count_as_the_step_does():
    f_g, f_d = 640, 544
    model = vidgen_tf.build("dcgan", **TINY_DCGAN)
    # WGAN-GP: 5 critic updates per step, each with the penalty (6 F_D more), per clip of 5 B.
    cost = model_multiply_adds(model, loss="wgan_gp")
    assert cost.training["n_critic"] == 5 and cost.training["penalties"] == ["gradient_penalty"]
    assert cost.per_training_clip == round(f_g + 12 * f_d + (3 * f_g + 2 * f_d) / 5) == 7770
    # A compiled model is counted as compiled: R1 on top of the hinge loss, 2 critic updates.
    model.compile(loss="hinge", n_critic=2, r1_weight=1.0, seed=0)
    cost = model_multiply_adds(model)
    assert cost.training["penalties"] == ["r1_penalty"]
    assert cost.per_training_clip == f_g + 12 * f_d + (3 * f_g + 2 * f_d) // 2
    # Conditional: a 2-d class code joins the latent (6 * 32 in the projection) and the
    # projection head adds the inner product with the class embedding (32 more).
    conditional = model_multiply_adds(vidgen_tf.build("dcgan", num_classes=3, label_dim=2, **TINY_DCGAN))
    assert conditional.forward == {"generator": 6 * 32 + 512, "frame": 512 + 2 * 32}
    assert conditional.per_training_clip == 4 * 704 + 8 * 576


def test_networks_are_counted_on_the_views_they_see():
    config = dict(num_frames=8, height=16, width=16, channels=1, generator_width=4, discriminator_width=4)
    mocogan = vidgen_tf.build("mocogan", **config)
    forward = model_multiply_adds(mocogan).forward
    # The image discriminator judges one frame of each clip, the video one the whole clip.
    assert forward["image"] == multiply_adds(mocogan.discriminators["image"], (16, 16, 1))
    assert forward["video"] == multiply_adds(mocogan.discriminators["video"], (8, 16, 16, 1))
    dvdgan = vidgen_tf.build("dvdgan", spatial_frames=3, **config)
    forward = model_multiply_adds(dvdgan).forward
    # DVD-GAN: k = 3 sampled frames at full size; the whole clip at half size.
    spatial = dvdgan.discriminators["spatial"]
    per_frame = multiply_adds(spatial.blocks, (16, 16, 1))
    head = multiply_adds(spatial.head, (spatial.blocks.layers[-1].filters,))
    assert forward["spatial"] == 3 * (per_frame + head)
    temporal = dvdgan.discriminators["temporal"]
    clip = multiply_adds(temporal.blocks, (8, 8, 8, 1))
    assert forward["temporal"] == clip + multiply_adds(temporal.head, (temporal.blocks.layers[-1].filters,))


def test_the_hmm_closed_form_matches_a_hand_count():
    model = vidgen_tf.build("hmm", num_frames=3, height=2, width=2, num_states=2)
    cost = model_multiply_adds(model)
    # Gaussian emissions: 2 K E per frame (3 * 2 * 2 * 4), forward algorithm K^2 per transition (2 * 4).
    assert cost.forward == {"log_prob": 48 + 8}
    assert cost.per_training_clip == 3 * 56  # forward and a backward of twice its cost
    assert cost.per_generated_clip == 3 * 4  # loc + scale * noise per dimension
    with pytest.raises(ValueError, match="`n_critic` is for adversarial models; hmm is a likelihood model"):
        model_multiply_adds(model, n_critic=5)


@pytest.mark.parametrize("name", vidgen_tf.list_models())
def test_every_model_is_counted_at_its_default_config(name):
    model = vidgen_tf.build(name)
    cost = model_multiply_adds(model)
    assert cost.per_generated_clip > 0
    if getattr(model, "is_diffusion", False):
        # Sampling runs the network once per step; a training clip once forward and backward.
        assert cost.per_generated_clip == model.sampling_steps * cost.forward["denoise"]
        assert cost.per_training_clip == 3 * cost.forward["denoise"]
    else:
        assert cost.per_training_clip > cost.per_generated_clip
    assert all(count > 0 for count in cost.forward.values())
    assert cost.model == name


def test_the_kalman_vae_counts_its_frame_networks_per_frame_and_its_dynamics_per_step():
    from vidgen_tf.models.kalman import filter_step_multiply_adds

    model = vidgen_tf.build("kvae", num_frames=5, height=8, width=8, base_filters=2, num_dynamics=3,
                            dynamics_units=6, state_dim=4, observation_dim=2)
    frames = 5 * (multiply_adds(model.encoder, (8, 8, 1)) + multiply_adds(model.decoder, (2,)))
    # Per step: LSTM 4 (p + u) u, its output layer u K, the mixed matrices K (n^2 + p n).
    mixture = 4 * (2 + 6) * 6 + 6 * 3 + 3 * (16 + 8)
    cost = model_multiply_adds(model)
    assert cost.forward["log_prob"] == frames + 5 * (mixture + filter_step_multiply_adds(4, 2))
    assert cost.per_generated_clip == 5 * multiply_adds(model.decoder, (2,)) + 5 * (mixture + 16 + 8)
    # n = 4, p = 2: predict 16 + 128 + 8; update 32 + 16 + 8 + 32 + 3 + 32 + 8 + 32 + 128 + 16 + 32 + 4.
    assert filter_step_multiply_adds(4, 2) == 152 + 343


def test_a_kalman_vae_with_one_fixed_dynamics_is_counted_without_an_lstm():
    # num_dynamics=1: TFP's filter, no LSTM; generation is traced with a static batch of one,
    # which the sampler's scan must keep.
    from vidgen_tf.models.kalman import filter_step_multiply_adds

    model = vidgen_tf.build("kvae", num_frames=3, height=8, width=8, base_filters=2, num_dynamics=1)
    cost = model_multiply_adds(model)
    decoder = multiply_adds(model.decoder, (2,))
    assert cost.per_generated_clip == 3 * (decoder + 16 + 8)
    frames = 3 * (multiply_adds(model.encoder, (8, 8, 1)) + decoder)
    assert cost.forward["log_prob"] == frames + 3 * filter_step_multiply_adds(4, 2)


def test_a_diffusion_model_counts_its_network_and_its_attention_products():
    model = vidgen_tf.build("video_diffusion", num_frames=4, height=8, width=8, base_filters=8,
                            channel_multipliers=(1, 2), attention_resolutions=(4,), sampling_steps=3,
                            num_classes=2, guidance_scale=2.0)
    cost = model_multiply_adds(model)
    # Temporal attention, per block on (T, H, W, C): 2 H W T^2 C; spatial at side 4: 2 T (H W)^2 C.
    level0, level1 = 2 * 8 * 8 * 16 * 8, 2 * 4 * 4 * 16 * 16 + 2 * 4 * 16**2 * 16
    assert model.denoiser.attention_multiply_adds(model.video_shape) == 3 * level0 + 4 * level1
    layers = cost.forward["denoise"] - model.denoiser.attention_multiply_adds(model.video_shape)
    stem = 4 * 8 * 8 * 9 * 1 * 8  # the first 1x3x3 convolution: T H W x 9 x C_in x C_out
    assert layers > stem
    assert cost.per_generated_clip == 3 * 2 * cost.forward["denoise"]  # guidance: two calls per step
    with pytest.raises(ValueError, match="`n_critic` is for adversarial models; video_diffusion is a diffusion"):
        model_multiply_adds(model, n_critic=2)
