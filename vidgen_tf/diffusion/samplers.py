"""Samplers: from noise at t = 1 to a video at t = 0 in `num_steps` steps, as pure functions.

Every sampler walks the grid `schedules.time_grid(num_steps)` (`t_i = 1 -
i / N`), one step from `t` to `s < t` at a time, and takes the network as
a callable `predict(x_t, t) -> prediction` (what `objective` says the
network predicts). A step is a pure function of `x_t`, the two times and,
for the stochastic samplers, an explicit `noise` draw: the loop that chains
them (`sample_loop`) is a `tf.while_loop` whose trip count may be a tensor,
so an exported graph holds the whole loop (as keras-hub's SD3 `generate_step`
does with `fori_loop`).

- `"ddim"` (`eps`, `v`): Song, Meng and Ermon, "Denoising diffusion implicit
  models", ICLR 2021 (https://arxiv.org/abs/2010.02502), eq. 12 with
  `alpha_bar = alpha^2`:

      x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z,
      c = eta (sigma_s / sigma_t) sqrt(1 - alpha_t^2 / alpha_s^2),

  deterministic for `eta = 0`; `eta = 1` is the DDPM sampler.
- `"ancestral"` (`eps`, `v`): a draw from the DDPM posterior `q(x_s | x_t,
  x0 = x0_hat)` (Ho et al. 2020; in continuous time Kingma et al.,
  "Variational diffusion models", NeurIPS 2021, eq. 28): with `a = alpha_t /
  alpha_s` and `b^2 = sigma_t^2 - a^2 sigma_s^2`,

      x_s = (a sigma_s^2 / sigma_t^2) x_t + (alpha_s b^2 / sigma_t^2) x0 + (sigma_s b / sigma_t) z,

  the same distribution as DDIM with `eta = 1` (the tests check it).
- `"euler"` (`flow`): `x_s = x_t + (s - t) u(x_t, t)`, the ODE `dx/dt = u`
  of rectified flow; along a straight path with its exact velocity it lands
  on the path's end in one step.
- `"heun"` (`flow`): Heun's second-order method, the Euler step corrected by
  the velocity at its end (Karras et al., "Elucidating the design space of
  diffusion-based generative models", NeurIPS 2022, Algorithm 1), Euler on
  the last step to `s = 0`. Two network calls per step.

The DDIM and ancestral steps clip the predicted clean video to [-1, 1] and
read the noise back from it (diffusers' `clip_sample`), and their last step,
to `s = 0`, returns the predicted clean video (keras-io's `ddim.py` returns
its `pred_images` likewise): the cosine schedule's `alpha(0) < 1`.
"""

import tensorflow as tf

from vidgen_tf.diffusion import schedules

SAMPLERS = {"eps": ("ddim", "ancestral"), "v": ("ddim", "ancestral"), "flow": ("euler", "heun")}
STOCHASTIC = ("ancestral",)


def default_sampler(objective):
    """`"ddim"` for `eps` and `v`, `"euler"` for `flow`."""
    return SAMPLERS[objective][0]


def check_sampler(objective, sampler, eta=0.0):
    """Raises ValueError naming `sampler` (or `eta`) unless it samples `objective`'s model."""
    if objective not in SAMPLERS:
        raise ValueError(f"`objective` must be one of {tuple(SAMPLERS)}, got {objective!r}.")
    if sampler not in SAMPLERS[objective]:
        raise ValueError(f"`sampler` must be one of {SAMPLERS[objective]} for objective={objective!r}, "
                         f"got {sampler!r}.")
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"`eta` must be in [0, 1], got {eta!r}.")
    if eta and sampler != "ddim":
        raise ValueError(f"`eta` is DDIM's; sampler={sampler!r} takes eta=0, got {eta!r}.")
    return sampler


def is_stochastic(sampler, eta=0.0):
    """Whether a step of `sampler` draws noise: ancestral, or DDIM with `eta > 0`."""
    return sampler in STOCHASTIC or (sampler == "ddim" and float(eta) > 0.0)


def _clipped(x_t, x0, alpha, sigma):
    x0 = tf.clip_by_value(x0, -1.0, 1.0)
    return x0, (x_t - alpha * x0) / sigma


def ddim_step(x0, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta=0.0, noise=None):
    """One DDIM step (Song et al. 2021, eq. 12) to time `s`, given the predictions at time `t`.

    Args:
        x0, eps: float `(B, ...)`. The predicted clean video and noise.
        alpha_t, sigma_t, alpha_s, sigma_s: float tensors broadcastable to `x_t`.
        eta: float or scalar tensor in [0, 1]. 0 deterministic, 1 DDPM. Defaults to 0.
        noise: float `(B, ...)` N(0, 1) draw, or None (only for `eta = 0`).

    Returns:
        float `(B, ...)`: `x_s`.
    """
    c = eta * (sigma_s / sigma_t) * tf.sqrt(tf.maximum(1.0 - tf.square(alpha_t / alpha_s), 0.0))
    x_s = alpha_s * x0 + tf.sqrt(tf.maximum(tf.square(sigma_s) - tf.square(c), 0.0)) * eps
    return x_s if noise is None else x_s + c * noise


def ancestral_step(x_t, x0, alpha_t, sigma_t, alpha_s, sigma_s, noise):
    """A draw from the DDPM posterior `q(x_s | x_t, x0)` (Kingma et al. 2021, eq. 28); see the module."""
    a = alpha_t / alpha_s
    b2 = tf.maximum(tf.square(sigma_t) - tf.square(a * sigma_s), 0.0)
    var_t = tf.square(sigma_t)
    mean = (a * tf.square(sigma_s) / var_t) * x_t + (alpha_s * b2 / var_t) * x0
    return mean + (sigma_s * tf.sqrt(b2) / sigma_t) * noise


def euler_step(x_t, velocity, t, s):
    """`x_t + (s - t) u`: one Euler step of `dx/dt = u` from time `t` to `s` (scalars or broadcastable)."""
    return x_t + (s - t) * velocity


def step(predict, objective, sampler, x_t, t, s, noise=None, eta=0.0):
    """One step of `sampler` from time `t` to `s` of a batch `x_t`, calling the network `predict`.

    Args:
        predict: callable `(x, t) -> prediction`, `t` a scalar float32
            tensor, returning what `objective` predicts, shaped like `x`.
        objective: str. `"eps"`, `"v"` or `"flow"`.
        sampler: str. One of `SAMPLERS[objective]`.
        x_t: float32 `(B, T, H, W, C)`.
        t, s: scalar float32 tensors, `1 >= t > s >= 0`.
        noise: float32 N(0, 1) shaped like `x_t`, for stochastic steps; None
            (zeros) otherwise. Defaults to None.
        eta: float or scalar tensor. DDIM's eta. Defaults to 0.

    Returns:
        float32 `(B, T, H, W, C)`: `x_s`.
    """
    schedule = schedules.schedule_for(objective)
    t = tf.cast(t, tf.float32)
    s = tf.cast(s, tf.float32)
    prediction = tf.cast(predict(x_t, t), tf.float32)
    if objective == "flow":
        euler = euler_step(x_t, prediction, t, s)
        if sampler == "euler":
            return euler
        if sampler != "heun":
            raise ValueError(f"`sampler` must be one of {SAMPLERS[objective]} for objective='flow', got {sampler!r}.")
        corrected = x_t + (s - t) * 0.5 * (prediction + tf.cast(predict(euler, s), tf.float32))
        return tf.where(s > 0.0, corrected, euler)
    alpha_t, sigma_t = schedules.signal_and_noise_rates(t, schedule)
    alpha_s, sigma_s = schedules.signal_and_noise_rates(s, schedule)
    x0, eps = schedules.predicted_x0_and_eps(objective, x_t, prediction, alpha_t, sigma_t)
    x0, eps = _clipped(x_t, x0, alpha_t, sigma_t)
    if noise is None:
        noise = tf.zeros_like(x_t)
    if sampler == "ddim":
        x_s = ddim_step(x0, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta, noise)
    elif sampler == "ancestral":
        x_s = ancestral_step(x_t, x0, alpha_t, sigma_t, alpha_s, sigma_s, noise)
    else:
        raise ValueError(f"`sampler` must be one of {SAMPLERS[objective]} for objective={objective!r}, "
                         f"got {sampler!r}.")
    return tf.where(s > 0.0, x_s, x0)  # the last step returns the clean prediction


def sample_loop(step_fn, noise, num_steps):
    """Chains `num_steps` steps from `noise` at t = 1 to t = 0 in one `tf.while_loop`.

    Args:
        step_fn: callable `(x_t, t, s, i) -> x_s`, `i` the step's int32 index
            (for per-step noise), `t` and `s` scalar float32 tensors.
        noise: float32 `(B, T, H, W, C)`. `x_1`.
        num_steps: int or scalar int32 tensor, >= 1.

    Returns:
        float32 `(B, T, H, W, C)`: `x_0`.
    """
    num_steps = tf.cast(num_steps, tf.int32)
    grid = schedules.time_grid(num_steps)
    x = tf.cast(noise, tf.float32)

    def body(i, x):
        return i + 1, tf.ensure_shape(step_fn(x, grid[i], grid[i + 1], i), x.shape)

    _, x = tf.while_loop(lambda i, x: i < num_steps, body, (tf.constant(0, tf.int32), x))
    return x
