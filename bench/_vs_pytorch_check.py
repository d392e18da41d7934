"""`bench/vs_pytorch.py --check`: the zoo model and its torch twin compute the same function.

First each part's forward multiply-adds per clip, counted on both sides (they
must be equal). Then the zoo's weights are copied into the twin, both get the
same noise, clips and image-discriminator frames, and the largest absolute
differences are printed and held to tolerances: the generated clips and each
discriminator's logits in inference and in training mode (batch statistics),
then one whole training step (the zoo's `train_on_batch` against the twin's
two updates, with the noise and frames the zoo's step draws from its seed):
the two losses, the gradients of each update (Adam's first moments) against
a float64 copy of the twin, the updated weights against Keras's Adam rule,
and the batch-norm statistics.

Kernel layouts: Keras `Conv2D` (kh, kw, in, out) and `Conv3D` (kt, kh, kw, in,
out) -> torch (out, in, k...); Keras `Conv*DTranspose` (k..., out, in) ->
torch (in, out, k...), with no flip (both are the adjoint of the same
correlation); a bias-free `Dense` from a code to a `(k..., F)` grid -> a
transposed convolution `(D, F, k...)` of a 1x1 input; the VGAN critic's
`Dense(1)` on the flattened `(t, h, w, F)` map -> a full-extent `Conv3d`
`(1, F, t, h, w)`; Keras GRU gates (z, r, h) with bias rows (input,
recurrent) -> `GRUCell` (r, z, n) `weight_ih`, `weight_hh`, `bias_ih`,
`bias_hh`; batch norm gamma, beta, moving mean and variance -> weight, bias,
running mean and variance.
"""

import copy
import math

import keras
import numpy as np
import tensorflow as tf
import torch
from torch import nn

import vidgen_tf
from vidgen_tf.layers import cost
from vidgen_tf.distribute import fold_seed, global_uniform_ints
from vs_pytorch import real_clips, twin_spec, zoo_counts, twin_counts, print_counts
from _torch_twins import GANTwin, weighted_leaves

# Float32 through a dozen layers with different summation orders, relative to the largest magnitude.
FORWARD_RTOL = 1e-4
# The gradients of one update (Adam's first moments) against float64, relative to each tensor's largest.
# Eager float32 in either framework gets within ~1e-5. The zoo's compiled step on TensorFlow's oneDNN CPU
# kernels (the default on x86) was measured up to 3.4e-3 off for VGAN's generator with some initial weights
# (seeds 1 and 3 of --setting small), and within 1e-5 with TF_ENABLE_ONEDNN_OPTS=0; a layer that differed
# in kind (a transposed kernel, a missing term) is off by O(1).
GRADIENT_RTOL = 1e-2
GRADIENT_ERROR_RATIO = 10.0
# After one update, the fraction of weights that may end more than 1% of the learning rate from Keras's Adam
# rule applied to the twin's moments (a gradient that is zero up to rounding can take either sign).
# Measured: up to 1.1e-3 (VGAN) and 7.5e-4 (MoCoGAN) at the paper settings, where float32 gradients are
# up to 1e-2 from float64 in both
# frameworks; a layer that differed in kind moves about half of its weights differently.
MOVED_DIFFERENTLY_FRACTION = 1e-2


def zoo_leaves(model, name):
    """The zoo's weighted layers `(part, [layers])` in the twin's module order."""
    def seq(sequential):
        out = []
        for layer in sequential.layers:
            if isinstance(layer, (vidgen_tf.layers.Up3D, vidgen_tf.layers.Up2D)):
                out += [layer.conv, layer.norm]
            elif layer.weights:
                out.append(layer)
        return out

    g = model.generator
    if name == "mocogan":
        return [("generator", [g.rnn] + seq(g.frame_generator)),
                ("image", seq(model.discriminators["image"])), ("video", seq(model.discriminators["video"]))]
    critic = model.discriminators["video"]
    critic_layers = []
    for block in critic.blocks:
        critic_layers += [block.conv] + ([block.norm] if block.norm is not None else [])
    return [("generator", seq(g.foreground_stream) + [g.output_head] + seq(g.background_stream)),
            ("video", critic_layers + [critic.head.linear])]


def _converted(layer, module, value_of=np.asarray):
    """`{torch name: array}` for one zoo layer and its twin module.

    `value_of` maps each zoo variable to the array to convert: its value, or
    (for the gradient check) its Adam moment; a None from it leaves the name out.
    """
    def get(variable):
        value = value_of(variable)
        return None if value is None else np.asarray(value)

    out = {}
    if isinstance(layer, keras.layers.GRU):
        cell = layer.cell
        kernel, recurrent, bias = get(cell.kernel), get(cell.recurrent_kernel), get(cell.bias)
        if kernel is None:
            return out

        def order(m):  # Keras's gates (z, r, h) -> torch's (r, z, n)
            z, r, h = np.split(m, 3, axis=-1)
            return np.concatenate([r, z, h], axis=-1)

        return {"weight_ih": order(kernel).T, "weight_hh": order(recurrent).T,
                "bias_ih": order(bias[0]), "bias_hh": order(bias[1])}
    if isinstance(layer, keras.layers.BatchNormalization):
        out = {"weight": get(layer.gamma), "bias": get(layer.beta),
               "running_mean": get(layer.moving_mean), "running_var": get(layer.moving_variance)}
        return {k: v for k, v in out.items() if v is not None}
    kernel = get(layer.kernel)
    if kernel is None:
        return out
    if isinstance(layer, keras.layers.Dense):
        if isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose3d)):  # code -> grid
            grid = kernel.reshape((kernel.shape[0],) + tuple(module.kernel_size) + (module.out_channels,))
            out["weight"] = np.moveaxis(grid, -1, 1)
        else:  # Dense(1) on the flattened (t, h, w, F) map -> Conv3d(F, 1, (t, h, w))
            grid = kernel[:, 0].reshape(tuple(module.kernel_size) + (module.in_channels,))
            out["weight"] = np.moveaxis(grid, -1, 0)[None]
    else:
        rank = kernel.ndim - 2
        # (k..., a, b) -> (b, a, k...): Conv (in, out) -> (out, in); transposed (out, in) -> (in, out).
        out["weight"] = np.transpose(kernel, (rank + 1, rank) + tuple(range(rank)))
    if getattr(layer, "use_bias", False):
        out["bias"] = get(layer.bias)
    return out


def copy_weights(model, twin, name, parts=None, trainable_only=False):
    """Copies the zoo's weights (of `parts`, default all; with `trainable_only`, no batch-norm statistics)."""
    modules = {"generator": twin.generator, **dict(twin.discriminators.items())}
    for part, layers in zoo_leaves(model, name):
        if parts is not None and part not in parts:
            continue
        leaves = weighted_leaves(modules[part])
        if len(layers) != len(leaves):
            raise AssertionError(f"{part}: {len(layers)} weighted zoo layers against {len(leaves)} torch modules")
        for layer, module in zip(layers, leaves):
            tensors = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
            tensors.pop("num_batches_tracked", None)
            values = _converted(layer, module)
            if set(values) != set(tensors):
                raise AssertionError(f"{part}: {layer.name} gives {sorted(values)}, {module} holds {sorted(tensors)}")
            for key, value in values.items():
                if trainable_only and key.startswith("running"):
                    continue
                value = np.asarray(value, "float32")
                if tuple(value.shape) != tuple(tensors[key].shape):
                    raise AssertionError(f"{part}: {layer.name} {key} {value.shape} -> {tuple(tensors[key].shape)}")
                with torch.no_grad():
                    tensors[key].copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _to_torch_video(x):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, "float32").transpose(0, 4, 1, 2, 3)))


def _noise_to_torch(noise):
    return {k: torch.from_numpy(np.array(v)) for k, v in noise.items()}


class Report:
    def __init__(self):
        self.ok = True

    def bound(self, label, value, tolerance):
        good = value <= tolerance
        self.ok &= good
        print(f"  {label:<46} {value:.3e}  (tolerance {tolerance:.1e}) {'ok' if good else 'FAILED'}")

    def compare(self, label, zoo, twin, atol):
        zoo, twin = np.asarray(zoo, "float64"), np.asarray(twin, "float64")
        if zoo.shape != twin.shape:
            raise AssertionError(f"{label}: zoo shape {zoo.shape}, torch shape {twin.shape}")
        diff = float(np.max(np.abs(zoo - twin))) if zoo.size else 0.0
        good = diff <= atol
        self.ok &= good
        print(f"  {label:<46} max |zoo - torch| = {diff:.3e}  (tolerance {atol:.1e}, |zoo| <= "
              f"{float(np.max(np.abs(zoo))):.3g}) {'ok' if good else 'FAILED'}")


def _forward_tol(values):
    return FORWARD_RTOL * max(1.0, float(np.max(np.abs(np.asarray(values)))))


def _pairs(model, twin, name, parts=None):
    """`(part, zoo layer, twin module, {name: tensor})` for every weighted layer."""
    modules = {"generator": twin.generator, **dict(twin.discriminators.items())}
    for part, layers in zoo_leaves(model, name):
        if parts is None or part in parts:
            for layer, module in zip(layers, weighted_leaves(modules[part])):
                tensors = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
                yield part, layer, module, tensors


def _float64_copy(twin):
    return copy.deepcopy(twin).double()


def _double(draws):
    noise, frames = draws
    return {k: v.double() for k, v in noise.items()}, frames


def compare_update(report, model, twin, reference, name, before, player):
    """The gradients (Adam's first moments, `(1 - beta_1) g` after one step) and weights of one player's update.

    Gradients: the zoo's and the twin's float32 ones are each compared with the twin's float64 gradient of the
    same update (`reference`), since a layer before a training-mode batch norm can have a gradient that
    float32 gives to a few digits only, whatever the framework; the zoo's error may be at most
    `GRADIENT_RTOL` or `GRADIENT_ERROR_RATIO` times the twin's, whichever is larger.

    Keras's Adam adds epsilon to the uncorrected `sqrt(v)` (at step 1 that is epsilon / sqrt(1 - beta_2), 3.2e-7
    for 1e-8), PyTorch's to the bias-corrected one, so a weight whose gradient is below ~1e-6 moves by a different
    amount. The zoo's weights are therefore compared with Keras's rule applied to the twin's own moments.
    """
    parts = ("generator",) if player == "generator" else tuple(twin.discriminators)
    zoo_opt, twin_opt, reference_opt = (
        (model.g_optimizer, twin.g_optimizer, reference.g_optimizer) if player == "generator"
        else (model.d_optimizer, twin.d_optimizer, reference.d_optimizer))
    reference_params = dict(zip((id(p) for p in twin.parameters()), reference.parameters()))
    lr, beta_1, beta_2, eps = (twin.spec[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))

    def first_moment(variable):
        return zoo_opt._momentums[zoo_opt._get_variable_index(variable)] if variable.trainable else None

    zoo_error, twin_error, apart, weight, raw, off, total = (0.0, ""), 0.0, 0.0, (0.0, ""), 0.0, 0, 0
    for part, layer, module, tensors in _pairs(model, twin, name, parts):
        values = _converted(layer, module)
        for key, zoo_m in _converted(layer, module, first_moment).items():
            where = f"{part}/{layer.name}/{key}"
            param, state = tensors[key], twin_opt.state[tensors[key]]
            zoo_m = np.asarray(zoo_m, "float64")
            twin_m = state["exp_avg"].double().numpy()
            exact = reference_opt.state[reference_params[id(param)]]["exp_avg"].numpy()
            scale = max(float(np.max(np.abs(exact))), 1e-30)
            zoo_error = max(zoo_error, (float(np.max(np.abs(zoo_m - exact))) / scale, where))
            twin_error = max(twin_error, float(np.max(np.abs(twin_m - exact))) / scale)
            apart = max(apart, float(np.max(np.abs(zoo_m - twin_m))) / scale)
            keras_rule = before[id(param)].double() - lr * (1 - beta_2) ** 0.5 / (1 - beta_1) * (
                state["exp_avg"].double() / (state["exp_avg_sq"].double().sqrt() + eps))
            zoo_w = np.asarray(values[key], "float64")
            diff = np.abs(zoo_w - keras_rule.numpy())
            weight = max(weight, (float(diff.max()) / lr, where))
            off += int(np.sum(diff > 0.01 * lr))
            total += diff.size
            raw = max(raw, float(np.max(np.abs(zoo_w - param.detach().double().numpy()))) / lr)
    print(f"  {player} gradients against float64, relative to each tensor's largest: zoo {zoo_error[0]:.2e} "
          f"({zoo_error[1]}), torch float32 {twin_error:.2e}; zoo against torch float32 {apart:.2e}")
    report.bound(f"{player} gradients: the zoo's float32 error", zoo_error[0],
                 max(GRADIENT_RTOL, GRADIENT_ERROR_RATIO * twin_error))
    print(f"  {player} weights after the update: zoo against torch's own Adam up to {raw:.2f} lr; against "
          f"Keras's Adam rule on torch's moments up to {weight[0]:.3f} lr ({weight[1]}), {off} of {total:,} "
          "over 0.01 lr")
    report.bound(f"{player} weights: fraction over 0.01 lr from the Keras rule", off / total,
                 MOVED_DIFFERENTLY_FRACTION)


def compare_multiply_adds(report, model, twin, name, noise, real):
    """Multiply-adds per clip of each part's forward pass: `vidgen_tf.layers.cost` on the zoo's layers
    against the same rules applied to the shapes the twin's modules actually see (forward hooks).

    The GRU (a few thousand per clip) is left out on both sides: `cost` has no rule for it.
    """
    records, hooks = {}, []
    for part, layer, module, _ in _pairs(model, twin, name):
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            def hook(mod, inputs, output, key=id(module)):
                records[key] = (inputs[0].shape, output.shape)
            hooks.append(module.register_forward_hook(hook))
    twin.eval()
    with torch.no_grad():
        fake = twin.generator(_noise_to_torch(noise))["video"]
        twin.discriminate(real, torch.zeros(real.shape[0], dtype=torch.long))
    for hook in hooks:
        hook.remove()
    batch = fake.shape[0]
    totals = {}
    for part, layer, module, _ in _pairs(model, twin, name):
        if id(module) not in records:
            continue
        in_shape, out_shape = records[id(module)]
        kernel = math.prod(module.kernel_size)
        if isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            torch_count = math.prod(in_shape[1:]) * module.out_channels * kernel
        else:
            torch_count = math.prod(out_shape[1:]) * kernel * module.in_channels // module.groups
        if isinstance(layer, keras.layers.Dense):
            zoo_shape = (math.prod(in_shape[1:]),)
        else:
            spatial = list(in_shape[2:])
            if getattr(layer, "padding", None) == "valid":  # the zoo pads in a layer of its own before it
                spatial = [size + 2 * pad for size, pad in zip(spatial, module.padding)]
            zoo_shape = tuple(spatial) + (in_shape[1],)
        zoo_count = cost.layer_multiply_adds(layer, zoo_shape)[0]
        per_clip = in_shape[0] / batch  # the frame generator runs on B * T frames, the rest on B inputs
        zoo_total, torch_total = totals.get(part, (0, 0))
        totals[part] = (zoo_total + zoo_count * per_clip, torch_total + torch_count * per_clip)
    for part, (zoo_total, torch_total) in totals.items():
        report.compare(f"{part}: forward multiply-adds per clip ({zoo_total / 1e9:.3f} G)", zoo_total, torch_total, 0)


def check(name, config, args):
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    model = vidgen_tf.build(name, **config)
    spec = twin_spec(model, name)
    twin = GANTwin(name, spec)
    print(f"{name}: {config}")
    print_counts(zoo_counts(model), twin_counts(twin))
    report = Report()
    batch = args.batch_size
    videos = real_clips(batch, model.video_shape)
    real = _to_torch_video(videos)
    noise = model.sample_noise(batch, tf.constant([7, 1], tf.int64))
    frames = global_uniform_ints(tf.constant([7, 2], tf.int64), batch, model.num_frames)

    compare_multiply_adds(report, model, twin, name, noise, real)

    def zoo_views(x):
        return model.discriminator_views(x, tf.constant([7, 2], tf.int64))  # the same frames as `frames`

    for training in (False, True):
        mode = "training" if training else "inference"
        copy_weights(model, twin, name)  # fresh: a training-mode call moves the moving statistics
        twin.train(training)
        with torch.no_grad():
            fake_twin = twin.generator(_noise_to_torch(noise))["video"]
        fake_zoo = model.generate_from_noise(noise, training=training)
        zoo_np = np.asarray(fake_zoo).transpose(0, 4, 1, 2, 3)
        report.compare(f"generated clips, {mode}", zoo_np, fake_twin, _forward_tol(zoo_np))
        for source, zoo_clips, twin_clips in (("real", videos, real), ("generated", fake_zoo, fake_twin)):
            zoo_clips = tf.convert_to_tensor(zoo_clips)
            views = zoo_views(zoo_clips)
            with torch.no_grad():
                twin_out = twin.discriminate(twin_clips, torch.from_numpy(np.array(frames)).long())
            for d_name, critic in model.discriminators.items():
                zoo_logits = np.asarray(model.call_discriminator(d_name, critic, views[d_name], None, training)[0])
                zoo_logits = zoo_logits.reshape(batch, -1)
                report.compare(f"{d_name} discriminator logits, {source}, {mode}", zoo_logits, twin_out[d_name],
                               _forward_tol(zoo_logits))

    # One whole training step on both, the twin fed the draws of the zoo's step 0.
    copy_weights(model, twin, name)
    twin.train(True)
    before = {id(p): p.detach().clone() for p in twin.parameters()}
    seed = 11
    model.compile(seed=seed)
    step_seed = fold_seed(tf.constant([seed, 0], tf.int64), 0)
    draws = {}
    for key, index in (("d", 1), ("g", 0)):
        update_seed = fold_seed(step_seed, index)  # the zoo's: critic update i uses i + 1, the generator 0
        update_noise, _ = model._global_draws(batch, update_seed)
        update_frames = global_uniform_ints(fold_seed(update_seed, 2), batch, model.num_frames)
        draws[key] = (_noise_to_torch(update_noise), torch.from_numpy(np.array(update_frames)).long())
    logs = model.train_on_batch(tf.constant(videos), return_dict=True)
    reference = _float64_copy(twin)
    reference.discriminator_update(real.double(), _double(draws["d"]))
    d_loss = twin.discriminator_update(real, draws["d"])
    report.compare("d_loss of the step", logs["d_loss"], d_loss, _forward_tol(logs["d_loss"]))
    compare_update(report, model, twin, reference, name, before, "discriminator")
    # Adam's first step moves every weight by about +-lr, so a gradient that is zero up to rounding moves its
    # weight either way in the two frameworks, and the generator's gradient through slightly different
    # discriminators would differ by far more than rounding. The generator update therefore runs against the
    # zoo's updated discriminators (their trainable weights; the batch-norm statistics stay the twin's own).
    copy_weights(model, twin, name, parts=tuple(twin.discriminators), trainable_only=True)
    reference = _float64_copy(twin)
    reference.generator_update(_double(draws["g"]))
    g_loss = twin.generator_update(draws["g"])
    report.compare("g_loss of the step", logs["g_loss"], g_loss, _forward_tol(logs["g_loss"]))
    compare_update(report, model, twin, reference, name, before, "generator")
    statistic = (0.0, "")
    for part, layer, module, tensors in _pairs(model, twin, name):
        for key, value in _converted(layer, module).items():
            if key.startswith("running"):
                diff = float(np.max(np.abs(np.asarray(value, "float64") - tensors[key].double().numpy())))
                statistic = max(statistic, (diff, f"{part}/{layer.name}/{key}"))
    # Keras's moving variance takes the biased batch variance, torch's the unbiased one (n / (n - 1)).
    report.bound(f"batch-norm statistics after the step, max |zoo - torch| ({statistic[1]})", statistic[0], 1e-3)
    print(f"{name}: {'the same function' if report.ok else 'MISMATCH'}")
    return report.ok
