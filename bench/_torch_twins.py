"""PyTorch twins of the zoo's MoCoGAN and VGAN, for `bench/vs_pytorch.py` only.

Each twin is the zoo model layer for layer (same layers, widths, kernels,
strides, paddings, batch-norm epsilon and momentum, parameter counts), written
as PyTorch code is usually written: NCHW / NCDHW tensors, `nn.Sequential`
stacks, `torch.optim.Adam`. Its training step does what the zoo's
`AdversarialModel.train_step` does with `n_critic = 1`:

1. Discriminator update: fresh noise, generated clips (generator in training
   mode, no gradient), then every discriminator on the real batch and then on
   the generated one (separate calls, so separate batch-norm batches, in the
   zoo's order); loss = sum over discriminators of the per-example loss,
   averaged over the batch; one Adam step on all discriminator weights.
2. Generator update: new noise, generated clips, every discriminator on them
   in training mode; loss = sum of the generator losses (+ VGAN's mask term),
   averaged; one Adam step on the generator. The discriminators' weights do
   not take gradients here (`requires_grad_(False)`), as TensorFlow's tape
   computes only the gradients asked for.

The loss is the zoo's `"non_saturating"` (both models' default): the
discriminator minimises `softplus(-D(x)) + softplus(D(G(z)))`, the generator
`softplus(-D(G(z)))`, each the mean over a discriminator's non-batch outputs
(MoCoGAN's image discriminator gives a grid of patch logits). MoCoGAN's image
discriminator sees one random frame of each clip, the same frame for the real
and the generated batch of an update, as the zoo's `discriminator_views`.

Torch is imported here and nowhere in `vidgen_tf` or the tests. The twins take
a plain `spec` dict (`twin_spec` in `vs_pytorch.py` derives it from the zoo's
own schedule functions), so this module needs no TensorFlow.
"""

import torch
import torch.nn.functional as F
from torch import nn


# ------------------------------------------------------------------- MoCoGAN
def _bn2d(channels):
    # The zoo's MoCoGAN batch norm: epsilon 1e-5, momentum 0.1 (PyTorch's defaults).
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class MoCoGANGenerator(nn.Module):
    """Content code + GRU motion codes -> clips `(B, C, T, H, W)` in [-1, 1]."""

    def __init__(self, spec):
        super().__init__()
        stages, width = spec["stages"], spec["generator_width"]
        self.content_dim, self.motion_dim = spec["content_dim"], spec["motion_dim"]
        self.channels = spec["channels"]
        self.recurrent = nn.GRUCell(self.motion_dim, self.motion_dim)
        filters = width * 2 ** (stages - 1)
        grid = (spec["height"] >> stages, spec["width"] >> stages)
        # The zoo's bias-free Dense to the grid is this transposed convolution of a 1x1 input (the authors' form).
        stack = [nn.ConvTranspose2d(self.content_dim + self.motion_dim, filters, grid, 1, 0, bias=False),
                 _bn2d(filters), nn.ReLU(True)]
        for _ in range(stages - 1):
            stack += [nn.ConvTranspose2d(filters, filters // 2, 4, 2, 1, bias=False), _bn2d(filters // 2), nn.ReLU(True)]
            filters //= 2
        stack += [nn.ConvTranspose2d(filters, self.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*stack)

    def forward(self, noise):
        content, motion_noise, h = noise["content"], noise["motion_noise"], noise["motion_init"]
        batch, frames = motion_noise.shape[:2]
        states = []
        for t in range(frames):  # z_M(t) = h_t, t = 1..T
            h = self.recurrent(motion_noise[:, t], h)
            states.append(h)
        motion = torch.stack(states, 1)  # (B, T, Zm)
        codes = torch.cat([content[:, None].expand(batch, frames, self.content_dim), motion], -1)
        images = self.main(codes.reshape(batch * frames, -1, 1, 1))  # (B*T, C, H, W)
        videos = images.view(batch, frames, *images.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
        return {"video": videos}


def mocogan_image_discriminator(spec):
    width, channels = spec["discriminator_width"], spec["channels"]
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), _bn2d(width * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), _bn2d(width * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 4, 1, 4, 2, 1, bias=False),
        nn.Flatten(),  # (B, h * w) patch logits, row-major as the zoo's Reshape
    )


def mocogan_video_discriminator(spec):
    stages, width, kernels = spec["stages"], spec["discriminator_width"], spec["video_temporal_kernels"]
    stack, channels = [], spec["channels"]
    for i in range(stages):
        stack.append(nn.Conv3d(channels, width * 2**i, (kernels[i], 4, 4), stride=(1, 2, 2), padding=(0, 1, 1), bias=False))
        if i:
            stack.append(nn.BatchNorm3d(width * 2**i, eps=1e-5, momentum=0.1))
        stack.append(nn.LeakyReLU(0.2, True))
        channels = width * 2**i
    grid = (spec["height"] >> stages, spec["width"] >> stages)
    stack += [nn.Conv3d(channels, 1, (kernels[-1],) + grid, bias=False), nn.Flatten()]  # (B, t)
    return nn.Sequential(*stack)


# ---------------------------------------------------------------------- VGAN
def _vgan_bn(channels, rank):
    # Keras's defaults, which the zoo's VGAN uses: epsilon 1e-3, momentum 0.99 (0.01 in PyTorch's convention).
    return (nn.BatchNorm2d if rank == 2 else nn.BatchNorm3d)(channels, eps=1e-3, momentum=0.01)


class VGANGenerator(nn.Module):
    """Latent `z` -> dict of `video` `(B, C, T, H, W)`, `mask` `(B, 1, T, H, W)`."""

    def __init__(self, spec):
        super().__init__()
        stages, width, latent = spec["stages"], spec["generator_width"], spec["latent_dim"]
        rows, cols = spec["height"] >> stages, spec["width"] >> stages
        strides = spec["time_strides"]
        if any(s != 2 for s in strides):
            raise ValueError(
                f"The torch VGAN twin implements time strides of 2 only (TensorFlow's 'same' for a stride-1 "
                f"transposed convolution of kernel 4 pads unevenly); this config has time strides {strides}."
            )
        top = width * 2 ** (stages - 1)
        # The zoo's bias-free Dense to (start_frames, rows, cols, top): a transposed convolution of a 1x1x1 input.
        fg = [nn.ConvTranspose3d(latent, top, (spec["start_frames"], rows, cols), bias=False), _vgan_bn(top, 3), nn.ReLU(True)]
        filters = top
        for _ in strides[:-1]:
            fg += [nn.ConvTranspose3d(filters, filters // 2, 4, 2, 1, bias=False), _vgan_bn(filters // 2, 3), nn.ReLU(True)]
            filters //= 2
        self.foreground_stream = nn.Sequential(*fg)
        self.channels = spec["channels"]
        # Foreground (tanh) and mask (sigmoid) from one transposed convolution, as the zoo's `output_head`.
        self.output_head = nn.ConvTranspose3d(filters, self.channels + 1, 4, 2, 1, bias=True)
        bg = [nn.ConvTranspose2d(latent, top, (rows, cols), bias=False), _vgan_bn(top, 2), nn.ReLU(True)]
        filters = top
        for _ in range(stages - 1):
            bg += [nn.ConvTranspose2d(filters, filters // 2, 4, 2, 1, bias=False), _vgan_bn(filters // 2, 2), nn.ReLU(True)]
            filters //= 2
        bg += [nn.ConvTranspose2d(filters, self.channels, 4, 2, 1, bias=True), nn.Tanh()]
        self.background_stream = nn.Sequential(*bg)

    def forward(self, noise):
        z = noise["latent"]  # (B, Z)
        out = self.output_head(self.foreground_stream(z[:, :, None, None, None]))  # (B, C + 1, T, H, W)
        foreground = torch.tanh(out[:, : self.channels])
        mask = torch.sigmoid(out[:, self.channels :])
        background = self.background_stream(z[:, :, None, None])  # (B, C, H, W)
        video = mask * foreground + (1.0 - mask) * background[:, :, None]
        return {"video": video, "mask": mask}


def vgan_discriminator(spec):
    """The zoo's `Conv3DDiscriminator`: kernel-4 stride-2 blocks padded 1, then one linear logit."""
    stack, channels = [], spec["channels"]
    for i, filters in enumerate(spec["discriminator_filters"]):
        stack.append(nn.Conv3d(channels, filters, 4, 2, 1, bias=i == 0))
        if i:
            stack.append(_vgan_bn(filters, 3))
        stack.append(nn.LeakyReLU(0.2, True))
        channels = filters
    # The zoo's Dense(1) on the flattened last map is this full-extent convolution with a bias.
    stack += [nn.Conv3d(channels, 1, tuple(spec["discriminator_feature_shape"][:3]), bias=True), nn.Flatten()]  # (B, 1)
    return nn.Sequential(*stack)


# ------------------------------------------------------------------ training
class GANTwin(nn.Module):
    """Generator, discriminators, two Adams and the zoo's training step."""

    def __init__(self, name, spec):
        super().__init__()
        self.name, self.spec = name, spec
        if spec.get("num_classes", 0):
            raise ValueError(f"The torch twins are unconditional only; got num_classes={spec['num_classes']}.")
        if name == "mocogan":
            self.generator = MoCoGANGenerator(spec)
            self.discriminators = nn.ModuleDict({
                "image": mocogan_image_discriminator(spec),
                "video": mocogan_video_discriminator(spec),
            })
        elif name == "vgan":
            self.generator = VGANGenerator(spec)
            self.discriminators = nn.ModuleDict({"video": vgan_discriminator(spec)})
        else:
            raise ValueError(f"No torch twin of {name!r}; there are twins of 'mocogan' and 'vgan'.")
        adam = dict(lr=spec["learning_rate"], betas=(spec["beta_1"], spec["beta_2"]), eps=spec["epsilon"], weight_decay=0.0)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), **adam)
        self.d_optimizer = torch.optim.Adam(self.discriminators.parameters(), **adam)

    # The draws of one update: noise, and (MoCoGAN) the frame the image discriminator sees of each clip.
    def sample_draws(self, batch):
        spec = self.spec
        if self.name == "mocogan":
            noise = {
                "content": torch.randn(batch, spec["content_dim"]),
                "motion_noise": torch.randn(batch, spec["num_frames"], spec["motion_dim"]),
                "motion_init": torch.randn(batch, spec["motion_dim"]),
            }
            return noise, torch.randint(spec["num_frames"], (batch,))
        return {"latent": torch.randn(batch, spec["latent_dim"])}, None

    def views(self, videos, frames):
        if self.name == "mocogan":
            return {"image": videos[torch.arange(videos.shape[0]), :, frames], "video": videos}
        return {"video": videos}

    def discriminate(self, videos, frames):
        views = self.views(videos, frames)
        return {name: model(views[name]) for name, model in self.discriminators.items()}

    def train_step(self, real, draws=None):
        """One zoo-style step on real clips `(B, C, T, H, W)`; returns `(d_loss, g_loss)` tensors.

        `draws`: None to draw afresh, or `{"d": (noise, frames), "g": (noise, frames)}`.
        """
        batch = real.shape[0]
        d_loss = self.discriminator_update(real, draws["d"] if draws else self.sample_draws(batch))
        g_loss = self.generator_update(draws["g"] if draws else self.sample_draws(batch))
        return d_loss, g_loss

    def discriminator_update(self, real, draws):
        noise, frames = draws
        with torch.no_grad():
            fake = self.generator(noise)["video"]
        real_out = self.discriminate(real, frames)
        fake_out = self.discriminate(fake, frames)
        d_loss = sum(
            (F.softplus(-real_out[n]).mean(1) + F.softplus(fake_out[n]).mean(1)).mean() for n in self.discriminators
        )
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        return d_loss.detach()

    def generator_update(self, draws):
        noise, frames = draws
        self.discriminators.requires_grad_(False)
        parts = self.generator(noise)
        fake_out = self.discriminate(parts["video"], frames)
        per_example = sum(F.softplus(-fake_out[n]).mean(1) for n in self.discriminators)
        if self.name == "vgan" and self.spec["mask_l1_weight"]:
            per_example = per_example + self.spec["mask_l1_weight"] * parts["mask"].mean((1, 2, 3, 4))
        g_loss = per_example.mean()
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminators.requires_grad_(True)
        return g_loss.detach()


def parameter_counts(module):
    """`(trainable, state)`: parameters, and batch-norm running statistics (Keras's non-trainable weights)."""
    trainable = sum(p.numel() for p in module.parameters())
    state = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return trainable, state


def weighted_leaves(module):
    """Modules that hold parameters or buffers themselves, in definition order."""
    return [m for m in module.modules() if any(True for _ in m.parameters(recurse=False)) or
            any(True for _ in m.buffers(recurse=False))]
