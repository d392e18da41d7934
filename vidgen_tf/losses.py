"""GAN losses and penalties: pure functions of discriminator outputs.

Every loss takes discriminator outputs ("logits": the raw, pre-sigmoid output)
of any rank with a leading batch axis: one score per video `(B,)` or `(B, 1)`,
one per frame `(B, T)`, or one per space-time patch `(B, T, h, w)`. Inputs of
any float dtype (float16 and bfloat16 included) are cast to float32 first.

Each function returns a PER-EXAMPLE loss shaped `(B,)` float32: the loss of
every score, averaged over the non-batch axes (a patch discriminator's loss is
the mean of its patches' losses, not the loss of its mean score). Nothing is
averaged over the batch, because under `tf.distribute` the caller must divide
by the GLOBAL batch size itself:

    per_example = losses.hinge_discriminator_loss(real_logits, fake_logits)
    d_loss = tf.nn.compute_average_loss(per_example, global_batch_size=B)

Every player minimises its loss. Sigmoid-based losses are written with
`softplus` on logits, which is exact and stable where `log(sigmoid(l))`
underflows: `log D = log sigmoid(l) = -softplus(-l)` and
`log(1 - D) = log sigmoid(-l) = -softplus(l)`.

Families (use `get_loss(name)` to get one by name):
    minimax: Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661
    non_saturating: the same paper, Section 3 (generator maximises log D(G(z))).
    lsgan: Mao et al. 2017, https://arxiv.org/abs/1611.04076
    wasserstein: Arjovsky et al. 2017, https://arxiv.org/abs/1701.07875
    wgan_gp: Wasserstein + gradient penalty, Gulrajani et al. 2017,
        https://arxiv.org/abs/1704.00028
    hinge: Lim & Ye 2017, https://arxiv.org/abs/1705.02894; Miyato et al. 2018,
        https://arxiv.org/abs/1802.05957

Penalties `gradient_penalty` (WGAN-GP) and `r1_penalty` (Mescheder et al. 2018,
https://arxiv.org/abs/1801.04406) take the critic as a callable and return
`(B,)` too; the caller multiplies them by their weights.
"""

import collections

import tensorflow as tf

from vidgen_tf.registry import unknown_name_error


def _as_float32(tensor, name):
    """`tensor` as a float32 tensor with a batch axis; `name` is for errors."""
    tensor = tf.convert_to_tensor(tensor)
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(f"`{name}` must be a real-valued tensor; got dtype {tensor.dtype.name}.")
    if tensor.shape.rank == 0:
        raise ValueError(
            f"`{name}` must have a leading batch axis, e.g. shape (B,) or (B, T); got a scalar."
        )
    return tf.cast(tensor, tf.float32)


def _non_batch_axes(tensor):
    """Axes 1..rank-1 (an empty list for `(B,)`), dynamic when the rank is unknown."""
    if tensor.shape.rank is None:
        return tf.range(1, tf.rank(tensor))
    return list(range(1, tensor.shape.rank))


def _per_example_mean(tensor):
    # (B, ...) -> (B,)
    return tf.reduce_mean(tensor, axis=_non_batch_axes(tensor))


def _check_same_batch(real_logits, fake_logits):
    real_batch, fake_batch = real_logits.shape[0], fake_logits.shape[0]
    if real_batch is not None and fake_batch is not None and real_batch != fake_batch:
        raise ValueError(
            "`real_logits` and `fake_logits` must have the same batch size; got shapes "
            f"{tuple(real_logits.shape)} and {tuple(fake_logits.shape)}."
        )


def mean_logit(logits):
    """Mean discriminator output per example, for reporting mean D(real) / D(fake).

    Args:
        logits: tensor. Discriminator outputs `(B, ...)` of any float dtype.

    Returns:
        `(B,)` float32: the mean over the non-batch axes.
    """
    return _per_example_mean(_as_float32(logits, "logits"))


# --- minimax (Goodfellow et al. 2014) -------------------------------------------


def minimax_generator_loss(fake_logits):
    """Generator loss of the original min-max game (Goodfellow et al. 2014).

    The generator minimises `log(1 - D(G(z)))` with `D = sigmoid(logits)`,
    computed as `-softplus(fake_logits)`. It saturates (vanishing gradient)
    when the discriminator confidently rejects the fakes; see
    `non_saturating_generator_loss`. https://arxiv.org/abs/1406.2661

    Args:
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss (mean over the non-batch axes).
    """
    fake_logits = _as_float32(fake_logits, "fake_logits")
    return _per_example_mean(-tf.math.softplus(fake_logits))


def minimax_discriminator_loss(real_logits, fake_logits):
    """Discriminator loss of the min-max game: binary cross-entropy.

    `-[log D(x) + log(1 - D(G(z)))] = softplus(-real_logits) + softplus(fake_logits)`.
    https://arxiv.org/abs/1406.2661

    Args:
        real_logits: tensor. Discriminator outputs on real videos, `(B, ...)`.
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss: the mean over the non-batch axes of each
        term, summed.
    """
    real_logits = _as_float32(real_logits, "real_logits")
    fake_logits = _as_float32(fake_logits, "fake_logits")
    _check_same_batch(real_logits, fake_logits)
    return _per_example_mean(tf.math.softplus(-real_logits)) + _per_example_mean(
        tf.math.softplus(fake_logits)
    )


# --- non-saturating (Goodfellow et al. 2014, Section 3) ------------------------


def non_saturating_generator_loss(fake_logits):
    """Non-saturating generator loss: `-log D(G(z)) = softplus(-fake_logits)`.

    Same fixed point as the min-max game but strong gradients early in training
    (Goodfellow et al. 2014, Section 3). https://arxiv.org/abs/1406.2661

    Args:
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    fake_logits = _as_float32(fake_logits, "fake_logits")
    return _per_example_mean(tf.math.softplus(-fake_logits))


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """Discriminator loss of the non-saturating GAN: the same cross-entropy as minimax.

    `softplus(-real_logits) + softplus(fake_logits)`. https://arxiv.org/abs/1406.2661

    Args:
        real_logits: tensor. Discriminator outputs on real videos, `(B, ...)`.
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    return minimax_discriminator_loss(real_logits, fake_logits)


# --- least squares (Mao et al. 2017) ---------------------------------------------


def lsgan_generator_loss(fake_logits):
    """Least-squares generator loss: `1/2 (D(G(z)) - c)^2` with `c = 1`.

    `D` is the raw (linear) discriminator output, no sigmoid. Mao et al. 2017,
    equation (2) with the 0-1 coding a=0 (fake), b=1 (real), c=1.
    https://arxiv.org/abs/1611.04076

    Args:
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    fake_logits = _as_float32(fake_logits, "fake_logits")
    return _per_example_mean(0.5 * tf.square(fake_logits - 1.0))


def lsgan_discriminator_loss(real_logits, fake_logits):
    """Least-squares discriminator loss: `1/2 (D(x) - b)^2 + 1/2 (D(G(z)) - a)^2`.

    With a=0 (fake target) and b=1 (real target). https://arxiv.org/abs/1611.04076

    Args:
        real_logits: tensor. Discriminator outputs on real videos, `(B, ...)`.
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    real_logits = _as_float32(real_logits, "real_logits")
    fake_logits = _as_float32(fake_logits, "fake_logits")
    _check_same_batch(real_logits, fake_logits)
    return _per_example_mean(0.5 * tf.square(real_logits - 1.0)) + _per_example_mean(
        0.5 * tf.square(fake_logits)
    )


# --- Wasserstein (Arjovsky et al. 2017) ------------------------------------------


def wasserstein_generator_loss(fake_logits):
    """Wasserstein generator loss: `-D(G(z))`.

    Arjovsky et al. 2017. The critic must be kept Lipschitz (weight clipping,
    `gradient_penalty`, or spectral normalisation). https://arxiv.org/abs/1701.07875

    Args:
        fake_logits: tensor. Critic outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    fake_logits = _as_float32(fake_logits, "fake_logits")
    return _per_example_mean(-fake_logits)


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """Wasserstein critic loss: `D(G(z)) - D(x)`.

    Minimising it maximises the critic's estimate of the Wasserstein-1 distance,
    `E[D(x)] - E[D(G(z))]`. https://arxiv.org/abs/1701.07875

    Args:
        real_logits: tensor. Critic outputs on real videos, `(B, ...)`.
        fake_logits: tensor. Critic outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    real_logits = _as_float32(real_logits, "real_logits")
    fake_logits = _as_float32(fake_logits, "fake_logits")
    _check_same_batch(real_logits, fake_logits)
    return _per_example_mean(fake_logits) - _per_example_mean(real_logits)


# --- hinge (Lim & Ye 2017; Miyato et al. 2018) -----------------------------------


def hinge_generator_loss(fake_logits):
    """Hinge generator loss: `-D(G(z))`.

    Lim & Ye 2017 (https://arxiv.org/abs/1705.02894); Miyato et al. 2018
    (https://arxiv.org/abs/1802.05957).

    Args:
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    fake_logits = _as_float32(fake_logits, "fake_logits")
    return _per_example_mean(-fake_logits)


def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge discriminator loss: `max(0, 1 - D(x)) + max(0, 1 + D(G(z)))`.

    https://arxiv.org/abs/1705.02894, https://arxiv.org/abs/1802.05957

    Args:
        real_logits: tensor. Discriminator outputs on real videos, `(B, ...)`.
        fake_logits: tensor. Discriminator outputs on generated videos, `(B, ...)`.

    Returns:
        `(B,)` float32 per-example loss.
    """
    real_logits = _as_float32(real_logits, "real_logits")
    fake_logits = _as_float32(fake_logits, "fake_logits")
    _check_same_batch(real_logits, fake_logits)
    return _per_example_mean(tf.nn.relu(1.0 - real_logits)) + _per_example_mean(
        tf.nn.relu(1.0 + fake_logits)
    )


# --- diagnostics -----------------------------------------------------------------

# Score above which each loss's discriminator calls an input real. Sigmoid and
# hinge discriminators are trained around 0; LSGAN's targets are 0 (fake) and 1
# (real). A Wasserstein critic has no fixed scale or offset (its loss is
# unchanged by adding a constant), so it gets the batch's own threshold below.
_REAL_THRESHOLDS = {"minimax": 0.0, "non_saturating": 0.0, "hinge": 0.0, "lsgan": 0.5}


def discriminator_accuracy(loss_name, real_logits, fake_logits):
    """How often a discriminator tells real from fake: `(acc_real, acc_fake)`, each `(B,)`.

    A diagnostic of the GAN's state, not a loss: a discriminator near 100 % on
    both has won (the generator's gradient fades), one near 50 % is confused or
    beaten, and a generator that collapses shows as the fake accuracy jumping.
    `acc_real` is the fraction of each real example's scores (one per clip,
    frame or patch) on the real side of the threshold, `acc_fake` of each
    generated example's scores on the fake side.

    The threshold is 0 for minimax, non-saturating and hinge discriminators
    (logits), 0.5 for LSGAN (targets 0 and 1). A Wasserstein critic's scores
    have no absolute meaning, so its threshold is the midpoint of the batch's
    mean real and mean fake scores: the accuracy then says how well the two
    score distributions separate, whatever their offset (under `tf.distribute`
    each replica takes its own batch's midpoint).

    Args:
        loss_name: str. A name of `LOSS_NAMES`.
        real_logits: tensor. Scores of real videos, `(B, ...)`.
        fake_logits: tensor. Scores of generated videos, `(B, ...)`.

    Returns:
        `(acc_real, acc_fake)`: `(B,)` float32 each, in [0, 1].
    """
    real_logits = _as_float32(real_logits, "real_logits")
    fake_logits = _as_float32(fake_logits, "fake_logits")
    name = get_loss(loss_name).name
    if name in _REAL_THRESHOLDS:
        threshold = _REAL_THRESHOLDS[name]
    else:
        threshold = 0.5 * (tf.reduce_mean(real_logits) + tf.reduce_mean(fake_logits))
    acc_real = _per_example_mean(tf.cast(real_logits > threshold, tf.float32))
    acc_fake = _per_example_mean(tf.cast(fake_logits <= threshold, tf.float32))
    return acc_real, acc_fake


# --- penalties -------------------------------------------------------------------


def interpolation_weights(batch_size, seed):
    """Uniform interpolation weights for `gradient_penalty`, one per example.

    Gulrajani et al. 2017 draw `alpha ~ U[0, 1]` (uniform, not normal).

    Args:
        batch_size: int or scalar int tensor. Number of examples `B`.
        seed: shape-[2] int tensor or pair of ints. Stateless seed; pass a new one
            every step (same seed, same weights).

    Returns:
        `(B,)` float32 in [0, 1).
    """
    if isinstance(batch_size, int) and batch_size < 0:
        raise ValueError(f"`batch_size` must be >= 0; got {batch_size}.")
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise TypeError(f"`seed` must be integers, shape [2]; got dtype {seed.dtype.name}.")
    if seed.shape.rank is not None and seed.shape.as_list() != [2]:
        raise ValueError(f"`seed` must have shape [2]; got shape {tuple(seed.shape)}.")
    batch_size = tf.convert_to_tensor(batch_size)
    if not batch_size.dtype.is_integer or batch_size.shape.rank != 0:
        raise TypeError(
            f"`batch_size` must be a scalar integer; got dtype {batch_size.dtype.name}, "
            f"shape {tuple(batch_size.shape)}."
        )
    batch_size = tf.reshape(tf.cast(batch_size, tf.int32), [1])
    return tf.random.stateless_uniform(batch_size, seed=seed, dtype=tf.float32)


def _per_example_input_gradient(critic, inputs):
    """`d critic(x) / dx` per example, `(B, ...)` float32, differentiable again.

    A critic with several outputs per example (per frame or per patch) is
    reduced to its MEAN over the non-batch axes before differentiating: the
    losses above score an example by the mean over its outputs, so the mean is
    the function whose Lipschitz constant (or slope) the penalty should control,
    and the penalty's scale does not grow with the number of patches. For
    `(B,)` and `(B, 1)` critics mean and sum agree. Summing the per-example
    scores over the batch gives each example's own gradient, provided the
    critic mixes no information across the batch (no batch normalisation in
    training mode, as Gulrajani et al. 2017 advise).
    """
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        scores = _per_example_mean(_as_float32(critic(inputs), "critic(x)"))  # (B,)
        total = tf.reduce_sum(scores)
    # A critic that ignores its input has gradient zero, not None.
    return tape.gradient(total, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def gradient_penalty(critic, real, fake, alpha, epsilon=1e-10, target=1.0):
    """WGAN-GP gradient penalty per example (Gulrajani et al. 2017).

    `(||grad_x D(x_hat)||_2 - target)^2` at `x_hat = alpha * real + (1 - alpha) * fake`,
    with the norm `sqrt(sum of squares over ALL non-batch axes + epsilon)`: the
    whole `(T, H, W, C)` of a video, and the epsilon inside the square root so
    that the penalty's gradient stays finite where the critic's gradient is zero.
    For a critic with several outputs per example, `D` is their mean (see
    `_per_example_input_gradient`). Pass extra critic inputs (labels) through a
    closure. Computing this inside the caller's `GradientTape` gives the
    second-order gradient with respect to the critic's weights.
    https://arxiv.org/abs/1704.00028

    Args:
        critic: callable. `x -> logits` of shape `(B, ...)`.
        real: tensor. Real inputs `(B, ...)`, e.g. videos `(B, T, H, W, C)`.
        fake: tensor. Generated inputs, the same shape as `real`.
        alpha: tensor. Interpolation weights `(B,)`, e.g. from
            `interpolation_weights`; broadcast as `[B] + [1] * (rank - 1)`.
        epsilon: float. Added to the squared norm inside the square root.
            Defaults to 1e-10.
        target: float. The gradient norm the penalty pulls towards. Defaults to 1.0.

    Returns:
        `(B,)` float32 per-example penalty; multiply by the penalty weight
        (10 in the paper) and average over the global batch.
    """
    real = _as_float32(real, "real")
    fake = _as_float32(fake, "fake")
    alpha = _as_float32(alpha, "alpha")
    if not real.shape.is_compatible_with(fake.shape):
        raise ValueError(
            f"`real` and `fake` must have the same shape; got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}."
        )
    if alpha.shape.rank is not None and alpha.shape.rank != 1:
        raise ValueError(f"`alpha` must have shape (B,); got shape {tuple(alpha.shape)}.")
    if alpha.shape[0] is not None and real.shape[0] is not None and alpha.shape[0] != real.shape[0]:
        raise ValueError(
            f"`alpha` must have one weight per example: shape ({real.shape[0]},) for `real` "
            f"of shape {tuple(real.shape)}; got shape {tuple(alpha.shape)}."
        )
    if epsilon < 0:
        raise ValueError(f"`epsilon` must be >= 0; got {epsilon}.")
    # (B,) -> (B, 1, 1, 1, 1) for a video: one weight per example.
    if real.shape.rank is not None:
        broadcast_shape = [-1] + [1] * (real.shape.rank - 1)
    else:
        broadcast_shape = tf.concat([[-1], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
    alpha = tf.reshape(alpha, broadcast_shape)
    interpolated = alpha * real + (1.0 - alpha) * fake  # (B, T, H, W, C)
    gradients = _per_example_input_gradient(critic, interpolated)  # (B, T, H, W, C)
    squared_norm = tf.reduce_sum(tf.square(gradients), axis=_non_batch_axes(gradients))  # (B,)
    norm = tf.sqrt(squared_norm + epsilon)
    return tf.square(norm - target)


def r1_penalty(critic, real):
    """R1 penalty per example: `1/2 ||grad_x D(x)||^2` on real data.

    Mescheder et al. 2018, "Which Training Methods for GANs do actually
    Converge?", https://arxiv.org/abs/1801.04406. The paper's term is
    `gamma / 2 * E[||grad D(x)||^2]`; this function returns the `1/2 ||.||^2`
    part, so the caller's total term is `r1_weight * r1_penalty(...)` with
    `r1_weight = gamma`. `D` is the pre-sigmoid output; a critic with several
    outputs per example is reduced to their mean first, as in `gradient_penalty`.

    Args:
        critic: callable. `x -> logits` of shape `(B, ...)`.
        real: tensor. Real inputs `(B, ...)`, e.g. videos `(B, T, H, W, C)`.

    Returns:
        `(B,)` float32 per-example penalty.
    """
    real = _as_float32(real, "real")
    gradients = _per_example_input_gradient(critic, real)  # (B, T, H, W, C)
    return 0.5 * tf.reduce_sum(tf.square(gradients), axis=_non_batch_axes(gradients))


# --- look-up by name -------------------------------------------------------------

GANLoss = collections.namedtuple(
    "GANLoss", ["name", "generator_loss", "discriminator_loss", "penalty"]
)
GANLoss.__doc__ = """A GAN objective: per-example loss functions and the penalty it needs.

Fields:
    name: str. Canonical name ("wgan" resolves to "wasserstein").
    generator_loss: callable. `fake_logits -> (B,)`.
    discriminator_loss: callable. `(real_logits, fake_logits) -> (B,)`.
    penalty: str or None. "gradient_penalty" when the objective requires
        `gradient_penalty` on the critic, else None.
"""

_LOSSES = {
    "minimax": GANLoss("minimax", minimax_generator_loss, minimax_discriminator_loss, None),
    "non_saturating": GANLoss(
        "non_saturating", non_saturating_generator_loss, non_saturating_discriminator_loss, None
    ),
    "lsgan": GANLoss("lsgan", lsgan_generator_loss, lsgan_discriminator_loss, None),
    "wasserstein": GANLoss(
        "wasserstein", wasserstein_generator_loss, wasserstein_discriminator_loss, None
    ),
    "wgan_gp": GANLoss(
        "wgan_gp", wasserstein_generator_loss, wasserstein_discriminator_loss, "gradient_penalty"
    ),
    "hinge": GANLoss("hinge", hinge_generator_loss, hinge_discriminator_loss, None),
}
_ALIASES = {"wgan": "wasserstein"}

LOSS_NAMES = ("minimax", "non_saturating", "lsgan", "wasserstein", "wgan", "wgan_gp", "hinge")


def get_loss(name):
    """The `GANLoss` called `name`.

    Args:
        name: str or GANLoss. One of `LOSS_NAMES`; a `GANLoss` is returned as is.

    Returns:
        A `GANLoss(name, generator_loss, discriminator_loss, penalty)`.

    Example:
        >>> loss = get_loss("hinge")
        >>> loss.discriminator_loss([1.5, -2.0], [0.0, 0.5])  # (2,)
    """
    if isinstance(name, GANLoss):
        return name
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a loss name (str); got {type(name).__name__}: {name!r}.")
    canonical = _ALIASES.get(name, name)
    if canonical not in _LOSSES:
        raise unknown_name_error("loss", name, LOSS_NAMES)
    return _LOSSES[canonical]
