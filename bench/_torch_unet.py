"""A PyTorch twin of the zoo's video diffusion (`SpaceTimeUNet` + `DiffusionModel`), for
`bench/diffusion_vs_pytorch.py` only.

The network is `vidgen_tf.layers.space_time.SpaceTimeUNet` layer for layer
(the same layers, widths, group counts, GroupNorm epsilon 1e-3 (Keras's),
parameter count and order of computation), written as PyTorch video
diffusion code is usually written (lucidrains' `video-diffusion-pytorch`):
NCDHW tensors `(B, C, T, H, W)`, space-only convolutions as `Conv3d` with a
1x3x3 kernel (the zoo's `Conv2D` of the frames folded into the batch does
the same arithmetic), `GroupNorm` over `(C / G, T, H, W)` as Keras's
`GroupNormalization` on `(B, T, H, W, C)`, and `F.scaled_dot_product_attention`
(the temporal blocks pass their relative position bias `(heads, T, T)` as
the additive mask). Where the arithmetic would otherwise differ it follows
TensorFlow: the stride-2 convolution pads one row and column at the end only
(TensorFlow's "same"; PyTorch's `padding=1` would shift the window), and
nearest-neighbour upsampling repeats each pixel (`F.interpolate(mode="nearest")`,
the zoo's `tf.repeat`). The zero-initialised layers are the zoo's: the output
convolution, every attention block's output projection and the relative
position tables; the other layers start from PyTorch's default initialisers.

`DiffusionTwin.train_step` is `DiffusionModel.train_step` with the zoo's
defaults: times `t ~ U[0, 1)`, noise `eps ~ N(0, I)`, the cosine schedule
with signal rates in [0.02, 0.95] (`alpha = cos(phi)`, `sigma = sin(phi)`,
`phi` linear in `t`), `x_t = alpha x_0 + sigma eps`, the v objective
(`v = alpha eps - sigma x_0`), the squared error averaged per clip and over
the batch, one Adam step (the zoo's `make_optimizer`: rate 2e-4, betas and
epsilon from its config), then the EMA update of every weight with decay
`min(0.999, (1 + n) / (10 + n))` after `n` updates. `DiffusionTwin.step` is
the zoo's DDIM step with eta 0 on the EMA network: `x0 = alpha_t x_t -
sigma_t v` clipped to [-1, 1], `eps = (x_t - alpha_t x0) / sigma_t`, `x_s =
alpha_s x0 + sigma_s eps` (`x0` itself on the last step, to `s = 0`).

Torch is imported here and nowhere in `vidgen_tf` or the tests; the twin takes
a plain `spec` dict (`twin_spec` in `diffusion_vs_pytorch.py`), so this module
needs no TensorFlow.
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

# The zoo's `vidgen_tf.diffusion.schedules` signal rates (keras-io ddim.py's).
MIN_SIGNAL_RATE = 0.02
MAX_SIGNAL_RATE = 0.95
GROUP_NORM_EPSILON = 1e-3  # keras.layers.GroupNormalization's default


def group_norm(channels, groups):
    # The zoo's `_groups`: the largest count <= groups that divides the channels.
    return nn.GroupNorm(math.gcd(channels, groups), channels, eps=GROUP_NORM_EPSILON)


def sinusoidal_embedding(t, dim, max_frequency=1000.0):
    """`(B, dim)` `[sin(2 pi f t), cos(2 pi f t)]`, f log-spaced in [1, max_frequency] (the zoo's)."""
    frequencies = torch.exp(torch.linspace(0.0, math.log(max_frequency), dim // 2))
    angles = 2.0 * math.pi * frequencies[None, :] * t.float()[:, None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def signal_and_noise_rates(t):
    """The cosine schedule's `(alpha(t), sigma(t))`, elementwise."""
    start, end = math.acos(MAX_SIGNAL_RATE), math.acos(MIN_SIGNAL_RATE)
    angle = start + t * (end - start)
    return torch.cos(angle), torch.sin(angle)


class FrameConv(nn.Module):
    """A 1 x 3 x 3 convolution of `(B, C, T, H, W)`; stride 2 halves H and W with TensorFlow's "same" padding."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv3d(in_channels, out_channels, (1, 3, 3), stride=(1, stride, stride),
                              padding=(0, 1, 1) if stride == 1 else 0)

    def forward(self, x):
        if self.stride != 1:  # TensorFlow's "same" for stride 2 on an even side: the extra row/column at the end
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class ResidualBlock(nn.Module):
    """GroupNorm, SiLU, conv, GroupNorm scaled and shifted by the noise level, SiLU, conv, + skip."""

    def __init__(self, in_channels, filters, embedding_dim, groups):
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = FrameConv(in_channels, filters)
        self.noise_level = nn.Linear(embedding_dim, 2 * filters)
        self.norm2 = group_norm(filters, groups)
        self.conv2 = FrameConv(filters, filters)
        # The zoo's Dense on the channels: a 1x1x1 convolution.
        self.skip = nn.Conv3d(in_channels, filters, 1) if in_channels != filters else None

    def forward(self, x, embedding):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.noise_level(F.silu(embedding))[:, :, None, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1.0 + scale) + shift))
        return h + (x if self.skip is None else self.skip(x))


class VideoAttention(nn.Module):
    """`x + W_o attention(GroupNorm(x))` over the frames at each position ("time") or within each frame ("space")."""

    def __init__(self, axis, channels, heads, num_frames, groups):
        super().__init__()
        self.axis, self.heads, self.num_frames = axis, heads, num_frames
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.relative_position_bias = None
        if axis == "time":  # one learned number per head and frame offset i - j, from zero
            self.relative_position_bias = nn.Embedding(2 * num_frames - 1, heads)
            nn.init.zeros_(self.relative_position_bias.weight)

    def forward(self, x):
        b, c, frames, height, width = x.shape
        h = self.norm(x)
        bias = None
        if self.axis == "time":
            h = h.permute(0, 3, 4, 2, 1).reshape(b * height * width, frames, c)  # (B H W, T, C)
            steps = torch.arange(frames)
            offsets = steps[:, None] - steps[None, :] + self.num_frames - 1
            bias = self.relative_position_bias(offsets).permute(2, 0, 1)  # (heads, T, T)
        else:
            h = h.permute(0, 2, 3, 4, 1).reshape(b * frames, height * width, c)  # (B T, H W, C)
        n, length = h.shape[:2]
        q, k, v = self.qkv(h).view(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (N, heads, L, d)
        h = self.out(h.transpose(1, 2).reshape(n, length, c))
        if self.axis == "time":
            h = h.view(b, height, width, frames, c).permute(0, 4, 3, 1, 2)
        else:
            h = h.view(b, frames, height, width, c).permute(0, 4, 1, 2, 3)
        return x + h


class Stage(nn.ModuleList):
    """A residual block, spatial attention at the listed sides, temporal attention."""

    def forward(self, h, embedding):
        for block in self:
            h = block(h, embedding) if isinstance(block, ResidualBlock) else block(h)
        return h


class SpaceTimeUNet(nn.Module):
    """`(x_t (B, C, T, H, W), t (B,))` -> `(B, C, T, H, W)`: the zoo's `SpaceTimeUNet` (unconditional)."""

    def __init__(self, spec):
        super().__init__()
        frames, channels, base = spec["num_frames"], spec["channels"], spec["base_filters"]
        multipliers, blocks = spec["channel_multipliers"], spec["num_res_blocks"]
        heads, groups, resolutions = spec["attention_heads"], spec["groups"], spec["attention_resolutions"]
        side = min(spec["height"], spec["width"])
        self.embedding_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(self.embedding_dim // 4 * 2, self.embedding_dim), nn.SiLU(),
                                      nn.Linear(self.embedding_dim, self.embedding_dim))

        def stage(in_channels, filters, level_side):
            modules = [ResidualBlock(in_channels, filters, self.embedding_dim, groups)]
            if level_side in resolutions:
                modules.append(VideoAttention("space", filters, heads, frames, groups))
            modules.append(VideoAttention("time", filters, heads, frames, groups))
            return Stage(modules)

        self.stem = FrameConv(channels, base)
        width, skips = base, [base]
        self.down = nn.ModuleList()
        for level, multiplier in enumerate(multipliers):
            filters = base * multiplier
            for _ in range(blocks):
                self.down.append(stage(width, filters, side >> level))
                width = filters
                skips.append(width)
            if level < len(multipliers) - 1:
                self.down.append(FrameConv(width, width, stride=2))
                skips.append(width)
        self.middle = stage(width, width, side >> (len(multipliers) - 1))
        self.middle_res2 = ResidualBlock(width, width, self.embedding_dim, groups)
        self.up = nn.ModuleList()
        for level in reversed(range(len(multipliers))):
            filters = base * multipliers[level]
            for _ in range(blocks + 1):
                self.up.append(stage(width + skips.pop(), filters, side >> level))
                width = filters
            if level > 0:
                self.up.append(FrameConv(width, filters))
        self.out_norm = group_norm(base, groups)
        self.out = FrameConv(base, channels)
        nn.init.zeros_(self.out.conv.weight)  # the prediction starts at 0
        nn.init.zeros_(self.out.conv.bias)

    def forward(self, x_t, t):
        embedding = self.time_mlp(sinusoidal_embedding(t, self.embedding_dim // 4 * 2))  # (B, E)
        h = self.stem(x_t)
        skips = [h]
        for block in self.down:
            h = block(h) if isinstance(block, FrameConv) else block(h, embedding)
            skips.append(h)
        h = self.middle_res2(self.middle(h, embedding), embedding)
        for block in self.up:
            if isinstance(block, FrameConv):  # nearest-neighbour x2 in H and W, then a 1x3x3 convolution
                h = block(F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest"))
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
        return self.out(F.silu(self.out_norm(h)))


class DiffusionTwin(nn.Module):
    """The network, its EMA copy, Adam, the zoo's v-objective training step and its DDIM (eta 0) step."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.network = SpaceTimeUNet(spec)
        self.ema_network = copy.deepcopy(self.network).requires_grad_(False).eval()
        self.ema_decay = spec["ema_decay"]
        self.updates = 0
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=spec["learning_rate"],
                                          betas=(spec["beta_1"], spec["beta_2"]), eps=spec["epsilon"])

    def loss(self, x0, t, eps):
        """The mean over the batch of each clip's mean squared error on `v`; `x0`, `eps` `(B, C, T, H, W)`."""
        alpha, sigma = (r.view(-1, 1, 1, 1, 1) for r in signal_and_noise_rates(t))
        x_t = alpha * x0 + sigma * eps
        target = alpha * eps - sigma * x0
        return (self.network(x_t, t) - target).square().mean((1, 2, 3, 4)).mean()

    def train_step(self, x0, t=None, eps=None):
        """One update on clean clips `x0` `(B, C, T, H, W)` (times and noise drawn unless given); the loss."""
        t = torch.rand(x0.shape[0]) if t is None else t
        eps = torch.randn_like(x0) if eps is None else eps
        loss = self.loss(x0, t, eps)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.update_ema()
        return loss.detach()

    @torch.no_grad()
    def update_ema(self):
        decay = min(self.ema_decay, (1.0 + self.updates) / (10.0 + self.updates))
        ema = list(self.ema_network.parameters())
        torch._foreach_lerp_(ema, list(self.network.parameters()), 1.0 - decay)  # ema = d ema + (1 - d) w
        self.updates += 1

    @torch.inference_mode()
    def step(self, x_t, t, s, network=None):
        """One DDIM step (eta 0) from time `t` to `s` (floats) of `x_t` `(B, C, T, H, W)` on the EMA network."""
        network = self.ema_network if network is None else network
        t, s = torch.tensor(float(t)), torch.tensor(float(s))
        prediction = network(x_t, t.expand(x_t.shape[0]))
        alpha_t, sigma_t = signal_and_noise_rates(t)
        x0 = (alpha_t * x_t - sigma_t * prediction).clamp(-1.0, 1.0)
        if float(s) <= 0.0:
            return x0
        eps = (x_t - alpha_t * x0) / sigma_t
        alpha_s, sigma_s = signal_and_noise_rates(s)
        return alpha_s * x0 + sigma_s * eps


def parameter_count(module):
    return sum(p.numel() for p in module.parameters())
