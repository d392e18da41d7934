"""Pieces shared by the latent-variable likelihood models (`kvae`, `video_vae`, `hmm`).

- `tfd()`: `tensorflow_probability.distributions`, imported on first use.
- `INFERENCE_SEED`: the seed of the posterior sample when a model is not
  training, so that its ELBO (and the exported `log_prob`) is deterministic.
- `posterior_noise`: the standard normal noise of the reparameterised
  posterior sample, one fresh stream per training step, drawn for the
  global batch and sliced so that N replicas see what one device would.
"""

import tensorflow as tf

from vidgen_tf.distribute import fold_seed, num_replicas, replica_slice

# The seed of the posterior sample outside training: deterministic scores.
INFERENCE_SEED = (0, 2)
# Smallest posterior standard deviation, so log(sigma) stays finite.
MIN_POSTERIOR_SCALE = 1e-4


def tfd():
    """`tfp.distributions`. Imported here: tensorflow_probability is heavy and needs tf_keras."""
    import tensorflow_probability as tfp

    return tfp.distributions


def posterior_noise(model, local_batch, event_shape, training, seed=None):
    """N(0, 1) noise `(local_batch, *event_shape)` for the posterior sample of `model`.

    Args:
        model: LikelihoodModel. Gives the training seed (`training_seed`,
            set by `compile`) and the step counter (`noise_step`).
        local_batch: int or scalar int32 tensor. This replica's batch size.
        event_shape: list of ints or scalar int32 tensors. The shape of one
            example's noise, e.g. `[latent_dim]` or `[steps, observation_dim]`.
        training: bool. Without `seed`, draw from the training step's stream
            (fold 2 of the compile seed, never the dequantisation's) when
            True, else from `INFERENCE_SEED`.
        seed: shape-[2] int seed, or None. Overrides the choice above.

    Returns:
        float32 `(local_batch, *event_shape)`: this replica's slice of the
        global batch's noise.
    """
    if seed is None:
        if training:
            start = tf.constant([getattr(model, "training_seed", 0), 2], tf.int64)
            seed = fold_seed(start, model.noise_step)
        else:
            seed = tf.constant(INFERENCE_SEED, tf.int64)
    shape = tf.stack([local_batch * num_replicas(), *event_shape])
    noise = tf.random.stateless_normal(shape, tf.cast(seed, tf.int64))
    return replica_slice(noise, local_batch)
