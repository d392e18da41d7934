"""Multiply-adds of a whole model: per generated clip and per training clip.

Counted from the layer shapes by `vidgen_tf.layers.cost` (each network is
traced on a batch of one clip, so networks that see frames folded into the
batch or a few sampled frames are counted as they run), plus, for the
likelihood models whose arithmetic lives outside layers (Kalman filter, HMM
forward algorithm), the closed forms their classes give in
`VideoModel.extra_multiply_adds` (layers such a closed form covers, e.g. a
cell stepped inside `tf.scan`, are named by
`VideoModel.layers_counted_in_closed_form` and left out of the trace). Biases, activations, normalisations and other
elementwise work count 0. One multiply-add is 2 floating-point operations.

Per generated clip: the forward pass that `generate` runs for one clip (the
generator of a GAN; the decoder, or the sampler, of a likelihood model).

Per training clip: the work of one training step divided by the clips the
step consumes, under this convention for a network of forward cost `F`: its
backward pass costs `2F` when the step needs the gradients of its weights
(`F` for the gradients of its inputs, `F` for those of its weights) and `F`
when only its input gradients are needed. For a GAN with generator `F_G` and
discriminators `F_D` (the sum over discriminators, each on the view of a clip
it sees), `n = n_critic` critic updates of `B` real clips each and one
generator update:

- a discriminator update: G forward on `B` noise draws (`F_G`, no backward:
  the fakes are constants of this update), D forward on the `B` real and the
  `B` fake clips (`2 F_D`) and D backward on both (`4 F_D`): `F_G + 6 F_D`
  per clip;
- a gradient penalty (`loss="wgan_gp"`) or an R1 penalty (`r1_weight > 0`)
  on `B` clips (interpolates, or real clips) in that update: D forward
  (`F_D`), the input gradient (`F_D`), then the weight gradient of that
  forward-and-backward graph, estimated as twice its cost (`4 F_D`): `6 F_D`
  per clip and penalty (the double-backward estimate);
- the generator update: G forward (`F_G`), D forward on the fakes (`F_D`),
  backward through D to its inputs only (`F_D`) and through G (`2 F_G`):
  `3 F_G + 2 F_D` per clip.

One step consumes `n B` clips, so per training clip

    F_G + 6 F_D (1 + penalties) + (3 F_G + 2 F_D) / n.

A likelihood model's step runs `log_prob` forward (`F`, its layers plus its
closed forms) and backward (`2F`) on every clip once: `3F` per training clip.
A diffusion model's step runs its network forward and backward once per clip
(`3F`, `F` its layers plus the attention products its class gives in
`extra_multiply_adds`); generating a clip runs the network `sampling_steps`
times (twice per step with classifier-free guidance, `guidance_scale != 1`).
Left out: optimizer updates, the spectral-norm power iteration, TGAN's
singular value clipping (an SVD of each critic matrix every
`clipping_interval`-th critic update, independent of the batch), the
generator EMA and the HMM's Baum-Welch EM (`fit_em` is not a training step).
"""

import dataclasses

import tensorflow as tf

from vidgen_tf import losses as gan_losses
from vidgen_tf.adversarial import AdversarialModel
from vidgen_tf.layers.cost import call_multiply_adds
from vidgen_tf.likelihood import LikelihoodModel

# The discriminator update's cost per clip, in units of F_D, and each penalty's.
_CRITIC_UPDATE_D = 6
_PENALTY_D = 6


@dataclasses.dataclass(frozen=True)
class ModelCost:
    """Multiply-adds of one model, per clip.

    Attributes:
        model: str. The registered model name.
        per_generated_clip: int. Forward pass of generation for one clip.
        per_training_clip: int. One training step's work over the clips it
            consumes (see the module docstring for the convention).
        forward: dict str -> int. Forward multiply-adds per clip of each
            network the training step runs (`"generator"` and one entry per
            discriminator for GANs; `"log_prob"` for likelihood models).
        training: dict. How the step was counted: `loss` (GANs),
            `n_critic`, `penalties` (names), `clips_per_step_per_batch`
            (clips one step consumes per unit of per-update batch:
            `n_critic`, or 1).
    """

    model: str
    per_generated_clip: int
    per_training_clip: int
    forward: dict
    training: dict

    def as_dict(self):
        """A JSON-serialisable dict of the fields."""
        return dataclasses.asdict(self)


def _seed():
    return tf.constant([0, 0], tf.int64)


def _labels(model):
    return tf.zeros([1], tf.int32) if model.num_classes else None


def generation_multiply_adds(model):
    """Multiply-adds of generating one clip of `model.num_frames` frames.

    Args:
        model: a zoo model (`AdversarialModel` or `LikelihoodModel`).

    Returns:
        int.
    """
    def generate():
        noise = model.sample_noise(1, _seed())
        generator = model.inference_generator if isinstance(model, AdversarialModel) else None
        return model.generate_from_noise(noise, _labels(model), training=False, generator=generator)

    extra = _extra(model).get("generation", 0)
    return call_multiply_adds(generate, [model], _counted_elsewhere(model)) + extra


def _extra(model):
    return model.extra_multiply_adds(model.num_frames)


def _counted_elsewhere(model):
    return model.layers_counted_in_closed_form()


def discriminator_multiply_adds(model):
    """Forward multiply-adds per clip of each discriminator of a GAN, on the view it sees.

    Args:
        model: AdversarialModel.

    Returns:
        dict name -> int.
    """
    counts = {}
    for name, network in model.discriminators.items():

        def judge(name=name, network=network):
            videos = tf.zeros((1,) + model.video_shape)
            views = model.discriminator_views(videos, _seed())
            return model.call_discriminator(name, network, views[name], _labels(model), training=True)

        counts[name] = call_multiply_adds(judge, [network])
    return counts


def _training_settings(model, loss, n_critic, r1_weight):
    compiled = hasattr(model, "gan_loss")
    if loss is None:
        loss = model.gan_loss.name if compiled else model.default_loss
    loss = gan_losses.get_loss(loss)
    if n_critic is None:
        n_critic = model.n_critic if compiled else model.default_n_critic(loss.name)
    if r1_weight is None:
        r1_weight = model.r1_weight if compiled else 0.0
    penalties = []
    if loss.penalty == "gradient_penalty":
        penalties.append("gradient_penalty")
    if r1_weight > 0:
        penalties.append("r1_penalty")
    return loss.name, int(n_critic), penalties


def model_multiply_adds(model, loss=None, n_critic=None, r1_weight=None):
    """Multiply-adds per generated clip and per training clip of a zoo model.

    Args:
        model: a zoo model (`vidgen_tf.build(...)`).
        loss: str or None. GANs only: the loss the step uses (a gradient
            penalty adds its cost). Defaults to the compiled loss, else the
            model's `default_loss`.
        n_critic: int or None. GANs only: critic updates per step. Defaults
            to the compiled value, else what `compile` would choose for `loss`.
        r1_weight: float or None. GANs only: > 0 counts the R1 penalty.
            Defaults to the compiled value, else 0.

    Returns:
        `ModelCost`.

    Example:

    ```python
    cost = model_multiply_adds(vidgen_tf.build("mocogan"))
    cost.per_training_clip, cost.per_generated_clip
    ```
    """
    name = model.registered_name or type(model).__name__
    if getattr(model, "is_diffusion", False):
        return _diffusion_multiply_adds(model, name, loss, n_critic, r1_weight)
    generated = generation_multiply_adds(model)
    if isinstance(model, AdversarialModel):
        loss_name, n, penalties = _training_settings(model, loss, n_critic, r1_weight)
        forward = {"generator": generated, **discriminator_multiply_adds(model)}
        f_g, f_d = generated, sum(v for k, v in forward.items() if k != "generator")
        per_step_per_batch = n * (f_g + _CRITIC_UPDATE_D * f_d + _PENALTY_D * f_d * len(penalties)) + (
            3 * f_g + 2 * f_d
        )
        training = {"loss": loss_name, "n_critic": n, "penalties": penalties, "clips_per_step_per_batch": n}
        per_training_clip = per_step_per_batch / n
    elif isinstance(model, LikelihoodModel):
        for argument, value in (("loss", loss), ("n_critic", n_critic), ("r1_weight", r1_weight)):
            if value is not None:
                raise ValueError(f"`{argument}` is for adversarial models; {name} is a likelihood model.")

        def score():
            return model.log_prob(tf.zeros((1,) + model.video_shape), training=True)

        log_prob = call_multiply_adds(score, [model], _counted_elsewhere(model)) + _extra(model).get("log_prob", 0)
        forward = {"log_prob": log_prob}
        training = {"n_critic": 1, "penalties": [], "clips_per_step_per_batch": 1}
        per_training_clip = 3 * log_prob
    else:
        raise ValueError(
            f"`model` must be an AdversarialModel or a LikelihoodModel of the zoo, got {type(model).__name__}."
        )
    return ModelCost(
        model=name,
        per_generated_clip=int(generated),
        per_training_clip=int(round(per_training_clip)),
        forward=forward,
        training=training,
    )


def _diffusion_multiply_adds(model, name, loss, n_critic, r1_weight):
    """`ModelCost` of a diffusion model: one network call `F`; `3F` per training clip (see the module)."""
    for argument, value in (("loss", loss), ("n_critic", n_critic), ("r1_weight", r1_weight)):
        if value is not None:
            raise ValueError(f"`{argument}` is for adversarial models; {name} is a diffusion model.")

    def denoise():
        return model.denoise(tf.zeros((1,) + model.video_shape), tf.fill([1], 0.5), _labels(model))

    network = call_multiply_adds(denoise, [model]) + _extra(model).get("denoise", 0)
    calls = model.sampling_steps * (2 if model.num_classes and model.guidance_scale != 1.0 else 1)
    return ModelCost(
        model=name, per_generated_clip=int(calls * network), per_training_clip=int(3 * network),
        forward={"denoise": int(network)},
        training={"n_critic": 1, "penalties": [], "clips_per_step_per_batch": 1, "sampling_steps": calls},
    )
