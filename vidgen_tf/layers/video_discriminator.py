"""A whole-clip 3-D convolutional discriminator with a linear (projection) head.

VGAN (Vondrick et al. 2016, https://arxiv.org/abs/1609.02612) and TGAN (Saito
et al. 2017, https://arxiv.org/abs/1611.06624) judge a clip with the same
network: 4x4x4 convolutions of stride 2 that halve time, height and width
(no normalisation on the first, batch normalisation on the others, leaky ReLU
0.2) down to small frames, then ONE score from all remaining features. Both
papers write that score as a convolution whose kernel covers the whole
remaining extent, which is a dense layer on the flattened features; here it is
a `ProjectionHead`, so that with `num_classes > 0` the same network becomes a
projection discriminator (Miyato & Koyama 2018): the score plus the inner
product of the flattened features with a learned class embedding.

Differences from the authors' code (cvondrick/videogan `main.lua`,
pfnet-research/tgan `models/video_discriminator.py`). The blocks are theirs:
kernel 4, stride 2 and padding 1 on every axis, which TensorFlow's "same"
padding reproduces exactly for even sizes (one sample before and one after;
`tests/test_layers_video_discriminator.py` checks it against explicit padding);
for an odd size "same" rounds the output up where padding 1 rounds it down.
Convolutions followed by batch norm have no bias (the norm subtracts it; the
authors' have one); the first convolution keeps its bias. Batch norm uses
Keras's epsilon 1e-3, the VGAN code's value (Chainer's default in the TGAN
code is 2e-5), and always has a shift, where TGAN's "no-beta" configurations
drop it. The head is one linear unit on all remaining features, the same
function as VGAN's and TGAN's full-extent last convolution; VGAN's has two
outputs for a softmax over real and fake (see `vidgen_tf.models.vgan`), and
TGAN's reshapes the last map to `(batch * t, channels, 4, 4)` before its 2-D
score convolution, which is one score per clip only when `t = 1`, as at the
paper's 16 frames; here it is one score per clip for any frame count.
"""

import keras
from keras import ops

from vidgen_tf.layers.blocks import Down3D
from vidgen_tf.layers.conditioning import ProjectionHead


@keras.saving.register_keras_serializable(package="vidgen_tf")
class Conv3DDiscriminator(keras.layers.Layer):
    """Videos `(B, T, H, W, C)` (and labels `(B,)`) -> one float32 logit per clip `(B,)`.

    Each entry of `filters` is one `Down3D` block (kernel 4, stride 2 on every
    axis, "same" padding, so an axis of length 1 stays 1). The first block has
    no normalisation (DCGAN's rule, kept by both papers); the others use
    `norm`. The head is linear in the flattened last feature map, so the
    input's frame count and size are fixed once the layer is built.

    Args:
        filters: sequence of int. Output channels of each block, e.g.
            `(64, 128, 256, 512)` for 64x64 frames (down to 4x4).
        num_classes: int. Classes of a projection discriminator; 0 for an
            unconditional one. Defaults to 0.
        norm: str. Normalisation of every block but the first: "batch"
            (synchronised), "layer", "instance" or "none". Defaults to "batch".
        spectral_norm: bool. Spectral normalisation on every convolution and on
            the head. Defaults to False.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Example:

    ```python
    critic = Conv3DDiscriminator((8, 16), num_classes=3)
    critic(np.zeros((2, 4, 16, 16, 1), "float32"), labels=np.array([0, 2])).shape  # (2,)
    ```
    """

    def __init__(self, filters, num_classes=0, norm="batch", spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        filters = tuple(filters)
        if not filters or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters):
            raise ValueError(f"`filters` must be a non-empty sequence of positive integers, got {filters!r}.")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"`num_classes` must be an integer >= 0, got {num_classes!r}.")

        # === Layers ===
        self.blocks = [
            Down3D(
                width,
                norm="none" if index == 0 else norm,
                activation="leaky_relu",
                spectral_norm=spectral_norm,
                dtype=self.dtype_policy,
                name=f"down{index}",
            )
            for index, width in enumerate(filters)
        ]
        # float32 logits under mixed precision: the edge of the model.
        self.head = ProjectionHead(num_classes, spectral_norm=spectral_norm, dtype="float32", name="head")
        # ProjectionHead makes its dense layer with the global policy; under
        # mixed_float16 its float16 score could not be added to the float32
        # projection term, so the dense layer (and a spectral-norm wrapper's
        # inner layer) is pinned to float32 too.
        for layer in (self.head.linear, getattr(self.head.linear, "layer", None)):
            if layer is not None:
                layer.dtype_policy = "float32"

        # === Config ===
        self.filters = filters
        self.num_classes = num_classes
        self.norm = norm
        self.spectral_norm = bool(spectral_norm)

    def build(self, videos_shape, labels_shape=None):
        if len(videos_shape) != 5 or any(d is None for d in videos_shape[1:]):
            raise ValueError(
                "Conv3DDiscriminator expects videos shaped (batch, time, height, width, channels) "
                f"with known time, height, width and channels, got shape {tuple(videos_shape)}."
            )
        shape = tuple(videos_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.feature_shape = tuple(shape[1:])  # (t, h, w, F) of the last block
        features = 1
        for size in self.feature_shape:
            features *= size
        self.head.build((None, features))
        self.built = True

    def features(self, videos, training=None):
        """The flattened last feature map `(B, t * h * w * F)`, float32."""
        x = videos
        for block in self.blocks:
            x = block(x, training=training)  # (B, T', H', W', F)
        return ops.cast(ops.reshape(x, (ops.shape(x)[0], -1)), "float32")

    def call(self, videos, labels=None, training=None):
        logits = self.head(self.features(videos, training=training), labels, training=training)
        # The head's inner dense layer follows the global policy; the logit is float32 regardless.
        return ops.cast(logits, "float32")  # (B,)

    def compute_output_shape(self, videos_shape, labels_shape=None):
        return (videos_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": list(self.filters),
            "num_classes": self.num_classes,
            "norm": self.norm,
            "spectral_norm": self.spectral_norm,
        }
