"""Video diffusion: a factorised space-time U-Net trained by denoising, sampled in a few steps.

Ho, Salimans, Gritsenko, Chan, Norouzi and Fleet, "Video diffusion models",
NeurIPS 2022, https://arxiv.org/abs/2204.03458. A clip is made from noise by
a network that, at any noise level `t`, predicts what separates the noisy clip
from a clean one; samplers (`vidgen_tf.diffusion.samplers`) chain its
predictions from `t = 1` (noise) to `t = 0`. The pieces live apart, as
diffusers keeps them: the network (`vidgen_tf.layers.space_time.SpaceTimeUNet`:
space-only 1x3x3 convolutions, temporal attention with a relative position
bias, spatial attention at low resolutions, GroupNorm, the noise level in
every residual block, a zero output layer), the schedules and targets
(`vidgen_tf.diffusion.schedules`: cosine `eps` and `v` prediction, Salimans
and Ho 2022; rectified flow, Liu et al. 2023), the samplers (DDIM, ancestral,
Euler, Heun) and the training core (`vidgen_tf.denoising.DiffusionModel`:
`fit`, EMA weights, classifier-free guidance).

Differences from Ho et al.: no joint image-video batches, no
conditioning-augmented cascades, and a continuous cosine schedule with
keras-io's signal rates (`ddim.py`) instead of their discrete one; the
default objective is `v` (theirs), `eps` and `flow` are options.
"""

from vidgen_tf.base import check_positive_int
from vidgen_tf.denoising import DiffusionModel
from vidgen_tf.layers.space_time import SpaceTimeUNet
from vidgen_tf.registry import register


@register("video_diffusion")
class VideoDiffusion(DiffusionModel):
    """Denoising diffusion (or flow matching) of fixed-length clips with a factorised space-time U-Net.

    Args:
        num_frames: int. Frames per clip (fixed). Defaults to 16.
        height: int. Frame height, divisible by `2**(len(channel_multipliers) - 1)`. Defaults to 64.
        width: int. Frame width, likewise. Defaults to 64.
        channels: int. Colour channels. Defaults to 1.
        num_classes: int. Classes of a class-conditional model (guided by
            `guidance_scale`); 0 unconditional. Defaults to 0.
        base_filters: int. Channels of the U-Net's first level. Defaults to 32.
        channel_multipliers: tuple of ints. Channels per level in units of
            `base_filters`. Defaults to (1, 2, 2).
        num_res_blocks: int. Residual blocks per level. Defaults to 1.
        attention_resolutions: tuple of ints. Frame sides at which spatial
            attention runs (temporal attention runs at every level). Defaults to (8,).
        attention_heads: int. Heads per attention block. Defaults to 1.
        groups: int. GroupNorm groups. Defaults to 8.
        objective: str. `"v"`, `"eps"` or `"flow"`. Defaults to `"v"`.
        time_distribution: str. `"uniform"` or `"logit_normal"`. Defaults to `"uniform"`.
        label_dropout: float. Probability of the "no label" class in training. Defaults to 0.1.
        sampler: str or None. See `DiffusionModel`. Defaults to None (DDIM; Euler for flow).
        eta: float. DDIM's eta. Defaults to 0.
        sampling_steps: int. Default steps of `generate`. Defaults to 50.
        guidance_scale: float. Default classifier-free guidance. Defaults to 1.0.

    Example:
        >>> model = vidgen_tf.build("video_diffusion", num_frames=4, height=16, width=16,
        ...                         base_filters=8, channel_multipliers=(1, 2))
        >>> videos = vidgen_tf.data.make_videos("moving_square", 64, num_frames=4,
        ...                                     height=16, width=16) / 127.5 - 1
        >>> model.compile(seed=0)
        >>> model.fit(videos.astype("float32"), batch_size=16, epochs=5)
        >>> model.generate(4, seed=0, num_steps=20)  # (4, 4, 16, 16, 1) in [-1, 1]
        >>> model.generate(4, seed=0, sampler="ancestral")
    """

    streaming_unavailable = (
        "it denoises the whole clip of num_frames frames together at every step, so there is no state "
        "to carry into a next chunk"
    )

    def __init__(self, num_frames=16, height=64, width=64, channels=1, num_classes=0, base_filters=32,
                 channel_multipliers=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,), attention_heads=1,
                 groups=8, objective="v", time_distribution="uniform", label_dropout=0.1, sampler=None, eta=0.0,
                 sampling_steps=50, guidance_scale=1.0, **kwargs):
        super().__init__(num_frames=num_frames, height=height, width=width, channels=channels,
                         num_classes=num_classes, objective=objective, time_distribution=time_distribution,
                         label_dropout=label_dropout, sampler=sampler, eta=eta, sampling_steps=sampling_steps,
                         guidance_scale=guidance_scale, **kwargs)
        self.base_filters = check_positive_int("base_filters", base_filters)
        multipliers = tuple(channel_multipliers)
        if not multipliers or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in multipliers):
            raise ValueError(f"`channel_multipliers` must be a non-empty sequence of integers >= 1, "
                             f"got {channel_multipliers!r}.")
        self.channel_multipliers = multipliers
        halvings = 2 ** (len(multipliers) - 1)
        if self.height % halvings or self.width % halvings:
            raise ValueError(f"`height` and `width` must be divisible by 2**(len(channel_multipliers) - 1) = "
                             f"{halvings}, got height={self.height}, width={self.width}.")
        self.num_res_blocks = check_positive_int("num_res_blocks", num_res_blocks)
        self.attention_resolutions = tuple(check_positive_int("attention_resolutions", r)
                                           for r in attention_resolutions)
        self.attention_heads = check_positive_int("attention_heads", attention_heads)
        bad = [self.base_filters * m for m in multipliers if (self.base_filters * m) % self.attention_heads]
        if bad:
            raise ValueError(f"`attention_heads`={self.attention_heads} must divide every level's channels "
                             f"(base_filters x channel_multipliers), got {bad}.")
        self.groups = check_positive_int("groups", groups)
        self.denoiser = self.build_denoiser(self.make_denoiser())
        self.built = True

    def make_denoiser(self):
        return SpaceTimeUNet(
            num_frames=self.num_frames, channels=self.channels, base_filters=self.base_filters,
            channel_multipliers=self.channel_multipliers, num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attention_resolutions, attention_heads=self.attention_heads,
            groups=self.groups, num_classes=self.num_classes, name="denoiser",
        )

    def extra_multiply_adds(self, num_frames):
        """The attention products (matrix products outside layers) of one network call, per clip."""
        per_call = self.denoiser.attention_multiply_adds(self.video_shape)
        return {"denoise": per_call}

    def get_config(self):
        config = super().get_config()
        config.update(base_filters=self.base_filters, channel_multipliers=list(self.channel_multipliers),
                      num_res_blocks=self.num_res_blocks, attention_resolutions=list(self.attention_resolutions),
                      attention_heads=self.attention_heads, groups=self.groups)
        return config
