"""Noise schedules, training times and the conversions between what a denoiser predicts.

A noisy video at time `t` in [0, 1] is

    x_t = alpha(t) x_0 + sigma(t) eps,        eps ~ N(0, I),

from the clean video `x_0` (t = 0) to noise (t = 1). Two schedules:

- `"cosine"`: variance preserving, `alpha = cos(phi)`, `sigma = sin(phi)`,
  with the angle `phi` linear in `t` between `arccos(max_signal_rate)` and
  `arccos(min_signal_rate)`: the continuous cosine schedule of Nichol and
  Dhariwal, "Improved denoising diffusion probabilistic models", ICML 2021
  (https://arxiv.org/abs/2102.09672), with the signal rates of keras-io's
  `examples/generative/ddim.py` (0.02 to 0.95), so that `alpha > 0` and the
  clean video can always be read back from a noise prediction.
- `"flow"`: the straight path of rectified flow / flow matching, `alpha = 1 -
  t`, `sigma = t` (Liu et al., "Flow straight and fast", ICLR 2023,
  https://arxiv.org/abs/2209.03003; Lipman et al., "Flow matching for
  generative modeling", ICLR 2023, https://arxiv.org/abs/2210.02747).

Three things a network may predict (`OBJECTIVES`), each a linear function of
`(x_0, eps)` at a given time, so each converts to the others:

- `"eps"`: the noise `eps` (Ho et al., "Denoising diffusion probabilistic
  models", NeurIPS 2020, https://arxiv.org/abs/2006.11239);
- `"v"`: `v = alpha eps - sigma x_0` (Salimans and Ho, "Progressive
  distillation for fast sampling of diffusion models", ICLR 2022,
  https://arxiv.org/abs/2202.00512), for which, when `alpha^2 + sigma^2 = 1`,
  `x_0 = alpha x_t - sigma v` and `eps = sigma x_t + alpha v`;
- `"flow"`: the velocity `dx_t/dt = eps - x_0` of the straight path.

Training times are drawn `"uniform"` in [0, 1) or `"logit_normal"`
(`t = sigmoid(n)`, `n ~ N(0, 1)`: Esser et al., "Scaling rectified flow
transformers for high-resolution image synthesis" (SD3), ICML 2024,
https://arxiv.org/abs/2403.03206, as Open-Sora 1.2 trains).

Everything here is a pure function of tensors (float32), importing no model.
"""

import math

import tensorflow as tf

SCHEDULES = ("cosine", "flow")
OBJECTIVES = ("eps", "v", "flow")
TIME_DISTRIBUTIONS = ("uniform", "logit_normal")
# keras-io ddim.py's signal rates: alpha stays in [0.02, 0.95] on t in [0, 1].
MIN_SIGNAL_RATE = 0.02
MAX_SIGNAL_RATE = 0.95


def schedule_for(objective):
    """The schedule an objective trains on: `"flow"` for `"flow"`, else `"cosine"`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")
    return "flow" if objective == "flow" else "cosine"


def signal_and_noise_rates(t, schedule="cosine", min_signal_rate=MIN_SIGNAL_RATE, max_signal_rate=MAX_SIGNAL_RATE):
    """`(alpha(t), sigma(t))` of `x_t = alpha x_0 + sigma eps`, elementwise.

    Args:
        t: float tensor of times in [0, 1], any shape.
        schedule: str. `"cosine"` or `"flow"`. Defaults to `"cosine"`.
        min_signal_rate: float. Cosine only: `alpha(1)`. Defaults to 0.02.
        max_signal_rate: float. Cosine only: `alpha(0)`. Defaults to 0.95.

    Returns:
        Two float32 tensors shaped like `t`.
    """
    t = tf.cast(t, tf.float32)
    if schedule == "flow":
        return 1.0 - t, t
    if schedule != "cosine":
        raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")
    start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
    angle = start + t * (end - start)
    return tf.cos(angle), tf.sin(angle)


def broadcast_time(t, x):
    """`t` `(B,)` reshaped to `(B, 1, ..., 1)` to broadcast against `x` `(B, ...)`."""
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, tf.concat([tf.shape(t), tf.ones([tf.rank(x) - 1], tf.int32)], axis=0))


def add_noise(x0, eps, alpha, sigma):
    """`x_t = alpha x_0 + sigma eps`; `alpha`, `sigma` broadcast against `x0`."""
    return alpha * x0 + sigma * eps


def target(objective, x0, eps, alpha, sigma):
    """What the network learns to predict at `(alpha, sigma)`: `eps`, `v` or the flow velocity.

    Args:
        objective: str. One of `OBJECTIVES`.
        x0: float tensor. Clean videos.
        eps: float tensor. The noise, shaped like `x0`.
        alpha, sigma: float tensors broadcastable to `x0` (for `"flow"`,
            `1 - t` and `t`).

    Returns:
        float tensor shaped like `x0`: `eps`, `alpha eps - sigma x0`, or `eps - x0`.
    """
    if objective == "eps":
        return eps
    if objective == "v":
        return alpha * eps - sigma * x0
    if objective == "flow":
        return eps - x0
    raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")


def predicted_x0_and_eps(objective, x_t, prediction, alpha, sigma):
    """`(x0_hat, eps_hat)` read off a prediction at `(alpha, sigma)`, the inverse of `target`.

    - `"eps"`: `x0 = (x_t - sigma eps) / alpha` (alpha > 0 on both schedules' use).
    - `"v"`: `x0 = alpha x_t - sigma v`, `eps = sigma x_t + alpha v` (needs
      `alpha^2 + sigma^2 = 1`, the cosine schedule).
    - `"flow"`: with `x_t = (1 - t) x0 + t eps` and `u = eps - x0`:
      `x0 = x_t - t u`, `eps = x_t + (1 - t) u` (here `sigma = t`).

    Args:
        objective: str. One of `OBJECTIVES`.
        x_t: float tensor. The noisy videos.
        prediction: float tensor shaped like `x_t`. The network's output.
        alpha, sigma: float tensors broadcastable to `x_t`.

    Returns:
        Two float tensors shaped like `x_t`.
    """
    if objective == "eps":
        return (x_t - sigma * prediction) / alpha, prediction
    if objective == "v":
        return alpha * x_t - sigma * prediction, sigma * x_t + alpha * prediction
    if objective == "flow":
        return x_t - sigma * prediction, x_t + (1.0 - sigma) * prediction
    raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")


def sample_times(shape, seed, distribution="uniform"):
    """Training times in (0, 1), drawn with stateless ops from `seed`.

    Args:
        shape: list of ints or 1-D int tensor.
        seed: shape-[2] int seed.
        distribution: str. `"uniform"` (U[0, 1)) or `"logit_normal"`
            (`sigmoid(N(0, 1))`, SD3's `m = 0, s = 1`). Defaults to `"uniform"`.

    Returns:
        float32 tensor of `shape`.
    """
    seed = tf.cast(seed, tf.int64)
    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seed)
    if distribution == "logit_normal":
        return tf.sigmoid(tf.random.stateless_normal(shape, seed))
    raise ValueError(f"`time_distribution` must be one of {TIME_DISTRIBUTIONS}, got {distribution!r}.")


def time_grid(num_steps):
    """The `num_steps + 1` sampling times `1 - i / num_steps`, i = 0..num_steps, from noise to data.

    Args:
        num_steps: int or scalar int32 tensor, >= 1.

    Returns:
        float32 tensor `(num_steps + 1,)`, `[1, ..., 0]`: step `i` goes from
        time `grid[i]` to `grid[i + 1]`.
    """
    steps = tf.cast(num_steps, tf.float32)
    return 1.0 - tf.range(tf.cast(num_steps, tf.int32) + 1, dtype=tf.float32) / steps
