"""`bench/diffusion_vs_pytorch.py --check`: the zoo's video diffusion and its torch twin compute the same function.

The zoo model is built, every weight of its network moved off its initial
value by N(0, 0.05^2) noise (the zero-initialised output convolution,
attention outputs and relative position tables would otherwise hide whole
paths), and copied into the twin's network and EMA network. Then, on a small
batch, the largest differences are printed and held to tolerances: the
network's output at random `x_t` and times; one training step (the zoo's
`train_on_batch` against `DiffusionTwin.train_step` fed the times and noise
the zoo's step draws from its seed): the loss, every gradient, the weights
after Adam and the EMA weights after the update; and DDIM steps (eta 0) to an
intermediate time and to `t = 0` on the EMA networks.

Layouts: Keras `Conv2D` kernels `(3, 3, in, out)` -> `Conv3d` `(out, in, 1, 3, 3)`;
`Dense` `(in, out)` -> `Linear` `(out, in)`, or a 1x1x1 `Conv3d` for the
residual skips; GroupNorm gamma, beta -> weight, bias; the relative position
`Embedding` table `(2T - 1, heads)` as it is.
"""

import math
import sys

# torch's CUDA wheels bring triton, whose LLVM clashes with TensorFlow's in one process (a segfault on
# `torch.optim` after TensorFlow has run); nothing here needs it, and torch runs without it.
sys.modules.setdefault("triton", None)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tensorflow as tf  # noqa: E402 (after torch: see above)

from _torch_unet import DiffusionTwin  # noqa: E402

# float32 through ~40 layers in different summation orders, relative to the largest magnitude: measured
# 9e-5 on the network's output (TensorFlow's oneDNN kernels); a layer that differed in kind is off by O(1).
FORWARD_RTOL = 5e-4
GRADIENT_RTOL = 2e-3  # each gradient tensor, relative to its largest entry (measured: up to 6.1e-4)
MOVED_DIFFERENTLY_FRACTION = 1e-2  # weights more than 1% of lr from the zoo's after one Adam step (see below)


def _conv(k):
    return np.transpose(k, (3, 2, 0, 1))[:, :, None]


def _dense(k):
    return k.T


def _dense_as_conv(k):
    return k.T[:, :, None, None, None]


def _same(v):
    return v


def pairs(unet, twin_unet):
    """`[(keras variable, torch parameter, convert)]` over the whole network."""
    out = []

    def conv(layer, module):  # FrameConv <-> FrameConv
        out.extend([(layer.conv.kernel, module.conv.weight, _conv), (layer.conv.bias, module.conv.bias, _same)])

    def dense(layer, module, convert=_dense):
        out.append((layer.kernel, module.weight, convert))
        if layer.use_bias:
            out.append((layer.bias, module.bias, _same))

    def norm(layer, module):
        out.extend([(layer.gamma, module.weight, _same), (layer.beta, module.bias, _same)])

    def block(layer, module):
        name = type(layer).__name__
        if name == "FrameConv":
            conv(layer, module)
        elif name == "ResidualBlock":
            norm(layer.norm1, module.norm1)
            conv(layer.conv1, module.conv1)
            dense(layer.embed, module.noise_level)
            norm(layer.norm2, module.norm2)
            conv(layer.conv2, module.conv2)
            if layer.skip is not None:
                dense(layer.skip, module.skip, _dense_as_conv)
        elif name == "VideoAttention":
            norm(layer.norm, module.norm)
            dense(layer.qkv, module.qkv)
            dense(layer.out, module.out)
            if layer.position_bias is not None:
                out.append((layer.position_bias.embeddings, module.relative_position_bias.weight, _same))
        else:
            raise AssertionError(f"no twin rule for {name}")

    def stages(zoo_blocks, twin_blocks):
        assert len(zoo_blocks) == len(twin_blocks), (len(zoo_blocks), len(twin_blocks))
        for zoo_block, twin_block in zip(zoo_blocks, twin_blocks):
            if isinstance(zoo_block, list):
                assert len(zoo_block) == len(twin_block)
                for layer, module in zip(zoo_block, twin_block):
                    block(layer, module)
            else:
                block(zoo_block, twin_block)

    dense(unet.time_mlp[0], twin_unet.time_mlp[0])
    dense(unet.time_mlp[1], twin_unet.time_mlp[2])
    conv(unet.stem, twin_unet.stem)
    stages(unet.down, twin_unet.down)
    stages(unet.middle[:-1], list(twin_unet.middle))
    block(unet.middle[-1], twin_unet.middle_res2)
    stages(unet.up, twin_unet.up)
    norm(unet.out_norm, twin_unet.out_norm)
    conv(unet.out_conv, twin_unet.out)
    assert len(out) == len(unet.weights) == len(list(twin_unet.parameters())), \
        (len(out), len(unet.weights), len(list(twin_unet.parameters())))
    return out


def copy_weights(unet, twin_unet):
    with torch.no_grad():
        for variable, param, convert in pairs(unet, twin_unet):
            value = np.ascontiguousarray(convert(np.asarray(variable)), "float32")
            assert value.shape == tuple(param.shape), (variable.path, value.shape, tuple(param.shape))
            param.copy_(torch.from_numpy(value))


def _video_to_torch(x):
    return torch.from_numpy(np.ascontiguousarray(np.array(x, "float32").transpose(0, 4, 1, 2, 3)))


class Report:
    def __init__(self):
        self.ok = True

    def line(self, label, value, bound):
        passed = bool(value <= bound)
        self.ok &= passed
        print(f"  {'ok  ' if passed else 'FAIL'} {label}: {value:.3g} (bound {bound:.3g})")


def _relative(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


def check(config, twin_spec, batch=2, seed=0):
    """Prints each comparison; True when all are within their bounds."""
    import keras

    import vidgen_tf
    from vidgen_tf.diffusion import schedules
    from vidgen_tf.distribute import fold_seed

    keras.utils.set_random_seed(seed)
    torch.manual_seed(seed)
    model = vidgen_tf.build("video_diffusion", **config)
    training_seed = 11
    model.compile(seed=training_seed)
    rng = np.random.default_rng(seed)
    for weight in model.denoiser.weights:
        weight.assign(np.asarray(weight) + rng.normal(0, 0.05, weight.shape).astype("float32"))
    model.ema_denoiser.set_weights(model.denoiser.get_weights())
    twin = DiffusionTwin(twin_spec(model))
    copy_weights(model.denoiser, twin.network)
    copy_weights(model.denoiser, twin.ema_network)
    report = Report()
    print(f"video_diffusion --check: {config}, batch {batch}")

    # The network's output.
    x_t = rng.standard_normal((batch,) + model.video_shape).astype("float32")
    t = rng.uniform(0, 1, batch).astype("float32")
    zoo_out = np.asarray(model.denoise(x_t, t, network=model.denoiser))
    with torch.no_grad():
        twin_out = twin.network(_video_to_torch(x_t), torch.from_numpy(t)).numpy().transpose(0, 2, 3, 4, 1)
    report.line("network output, max |zoo - torch| / max |zoo|", _relative(zoo_out, twin_out), FORWARD_RTOL)

    # One training step, the twin fed the zoo's draws of step 0 (DiffusionModel.train_step).
    videos = rng.uniform(-1, 1, (batch,) + model.video_shape).astype("float32")
    step_seed = fold_seed(tf.constant([training_seed, 0], tf.int64), model.noise_step)
    t_draw = schedules.sample_times([batch], fold_seed(step_seed, 0), model.time_distribution)
    eps = tf.random.stateless_normal((batch,) + model.video_shape, fold_seed(step_seed, 1))
    variables = model.denoiser.trainable_variables
    with tf.GradientTape() as tape:
        zoo_loss = tf.reduce_mean(model.per_example_loss(tf.constant(videos), None, t_draw, eps, training=True))
    zoo_grads = dict(zip([v.path for v in variables], tape.gradient(zoo_loss, variables)))
    logs = model.train_on_batch(videos, return_dict=True)
    report.line("training loss, |zoo train_on_batch - its own tape| (the draws are the step's)",
                abs(float(logs["loss"]) - float(zoo_loss)), 1e-6 * max(1.0, abs(float(zoo_loss))))
    loss = twin.loss(_video_to_torch(videos), torch.from_numpy(np.array(t_draw)), _video_to_torch(eps))
    twin.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    report.line("training loss, |zoo - torch| / zoo", abs(float(logs["loss"]) - float(loss.detach())) / float(logs["loss"]),
                FORWARD_RTOL)
    worst = (0.0, "")
    for variable, param, convert in pairs(model.denoiser, twin.network):
        zoo_grad = convert(np.asarray(tf.convert_to_tensor(zoo_grads[variable.path])))  # the table's: IndexedSlices
        worst = max(worst, (_relative(zoo_grad, param.grad.numpy()), variable.path))
    report.line(f"gradients, worst tensor's max |zoo - torch| / its max |zoo| ({worst[1]})", worst[0], GRADIENT_RTOL)
    lr, beta_1, beta_2, epsilon = (twin_spec(model)[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
    start = {id(p): (p.detach().clone(), p.grad.clone()) for p in twin.network.parameters()}
    twin.optimizer.step()
    twin.update_ema()
    # Adam's first step moves each weight by about lr * sign(gradient), but Keras adds epsilon to the
    # uncorrected sqrt(v), torch to the corrected one: Keras moves a weight whose gradient is below ~3e-4 by
    # over 1% less. So the zoo's weights are held against Keras's rule applied to torch's gradients (which
    # leaves the gradients' own float32 differences: a gradient that is zero up to rounding moves either way).
    alpha = lr * math.sqrt(1 - beta_2) / (1 - beta_1)
    off = total = 0
    raw = ema_worst = 0.0
    twin_ema = dict(zip([id(p) for p in twin.network.parameters()], twin.ema_network.parameters()))
    for (variable, param, convert), ema_variable in zip(pairs(model.denoiser, twin.network), model.ema_denoiser.weights):
        w0, g = (x.double().numpy() for x in start[id(param)])
        keras_rule = w0 - alpha * ((1 - beta_1) * g) / (np.sqrt((1 - beta_2) * g * g) + epsilon)
        zoo = convert(np.asarray(variable)).astype("float64")
        moved = np.abs(zoo - keras_rule) / lr
        off += int(np.sum(moved > 0.01))
        total += moved.size
        raw = max(raw, float(np.max(np.abs(zoo - param.detach().double().numpy()))) / lr)
        ema_worst = max(ema_worst, float(np.max(np.abs(convert(np.asarray(ema_variable))
                                                       - twin_ema[id(param)].numpy()))) / lr)
    print(f"  weights after Adam: zoo against torch's own Adam up to {raw:.2f} lr (the epsilon conventions)")
    report.line(f"weights after Adam: fraction more than 0.01 lr from Keras's rule on torch's gradients "
                f"({off} of {total:,})", off / total, MOVED_DIFFERENTLY_FRACTION)
    report.line("EMA weights after the update (decay min(0.999, 1/10)), max |zoo - torch| in units of lr",
                ema_worst, 2.0)

    # DDIM steps (eta 0) on the EMA networks, to an intermediate time and to t = 0.
    for t_from, t_to in ((0.6, 0.4), (0.1, 0.0)):
        zoo_next = np.asarray(model.step(x_t, t_from, t_to, network=model.ema_denoiser))
        twin_next = twin.step(_video_to_torch(x_t), t_from, t_to).numpy().transpose(0, 2, 3, 4, 1)
        # x_s mixes x_t and the prediction (coefficients <= 1) and clips: errors relative to their scale.
        scale = max(float(np.max(np.abs(x_t))),
                    float(np.max(np.abs(model.denoise(x_t, t_from, network=model.ema_denoiser)))))
        error = float(np.max(np.abs(zoo_next - twin_next))) / scale
        report.line(f"DDIM step {t_from} -> {t_to}, max |zoo - torch| / max(|x_t|, |prediction|)", error, FORWARD_RTOL)
    print(f"video_diffusion: {'the same function' if report.ok else 'MISMATCH'}")
    return report.ok
