"""Class conditioning: label embeddings for generators, projection for discriminators.

Projection discriminator (Miyato & Koyama, "cGANs with Projection
Discriminator", ICLR 2018, https://arxiv.org/abs/1802.05637): the logit of a
conditional discriminator is `psi(phi(x)) + <embed(y), phi(x)>`, an
unconditional score of the features plus their inner product with a learned
embedding of the class.
"""

import keras
from keras import ops

from vidgen_tf.layers.spectral_norm import SpectralNorm


@keras.saving.register_keras_serializable(package="vidgen_tf")
class ProjectionHead(keras.layers.Layer):
    """Features `(B, F)` and labels `(B,)` -> logits `(B,)`.

    With `num_classes=0` it is the unconditional linear head `psi` alone and
    labels must be None.

    With `spectral_norm=True` both `psi` and the class embedding, viewed as
    a `(num_classes, F)` matrix, are divided by their largest singular value
    (estimated by power iteration, see `SpectralNorm`), as the authors'
    `SNLinear` and `SNEmbedID` (pfnet-research/sngan_projection). The raw
    embedding is the trainable weight; `embedding_matrix()` gives the one the
    projection uses.

    Args:
        num_classes: int. Number of classes; 0 for an unconditional head.
        spectral_norm: bool. Spectral normalisation on `psi` and the embedding
            (as Miyato & Koyama). Defaults to False.
    """

    def __init__(self, num_classes=0, spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"`num_classes` must be an integer >= 0, got {num_classes!r}.")
        self.num_classes = num_classes
        self.spectral_norm = bool(spectral_norm)
        # The inner layers follow this layer's policy: a head made float32 under
        # mixed precision must compute its logits in float32 too.
        linear = keras.layers.Dense(1, name="psi", dtype=self.dtype_policy)
        self.linear = SpectralNorm(linear, dtype=self.dtype_policy) if spectral_norm else linear

    def build(self, features_shape, labels_shape=None):
        self.linear.build(features_shape)
        if self.num_classes and self.spectral_norm:
            table = ClassEmbedding(self.num_classes, features_shape[-1], dtype=self.dtype_policy, name="embedding")
            self.class_embedding = SpectralNorm(table, name="embedding_sn")
            self.class_embedding.build((None,))
        elif self.num_classes:
            self.embedding = self.add_weight(
                shape=(self.num_classes, features_shape[-1]), initializer="glorot_uniform", name="embedding"
            )

    def embedding_matrix(self):
        """The `(num_classes, F)` class embedding the projection uses (normalised with `spectral_norm`)."""
        if not self.num_classes:
            raise ValueError("This projection head is unconditional (num_classes=0): it has no class embedding.")
        if self.spectral_norm:
            return self.class_embedding.normalized_kernel()
        return ops.convert_to_tensor(self.embedding)

    def _embed(self, labels, dtype, training):
        labels = ops.cast(labels, "int32")
        if self.spectral_norm:
            return ops.cast(self.class_embedding(labels, training=training), dtype)  # (B, F)
        return ops.take(ops.cast(self.embedding, dtype), labels, axis=0)  # (B, F)

    def call(self, features, labels=None, training=False):
        logits = self.linear(features, training=training) if self.spectral_norm else self.linear(features)
        logits = ops.squeeze(logits, -1)  # (B,)
        if not self.num_classes:
            if labels is not None:
                raise ValueError("This projection head is unconditional (num_classes=0) but labels were given.")
            return logits
        if labels is None:
            raise ValueError(f"This projection head is conditional (num_classes={self.num_classes}): labels are required.")
        embedded = self._embed(labels, features.dtype, training)  # (B, F)
        return logits + ops.sum(embedded * features, axis=-1)

    def compute_output_shape(self, features_shape, labels_shape=None):
        return features_shape[:-1]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "spectral_norm": self.spectral_norm}


@keras.saving.register_keras_serializable(package="vidgen_tf")
class ClassEmbedding(keras.layers.Layer):
    """Labels `(B,)` int -> rows `(B, dim)` of a `(num_classes, dim)` table held as `kernel`.

    An embedding whose table is called `kernel`, so that `SpectralNorm` can
    wrap it (a `Dense` kernel of shape `(in, out)` in its terms: the spectral
    norm of the whole table).

    Args:
        num_classes: int. Number of classes (> 0).
        dim: int. Size of each row.
    """

    def __init__(self, num_classes, dim, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_classes", num_classes), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        self.num_classes = num_classes
        self.dim = dim

    def build(self, labels_shape=None):
        self.kernel = self.add_weight(shape=(self.num_classes, self.dim), initializer="glorot_uniform", name="kernel")

    def call(self, labels):
        return ops.take(self.kernel, ops.cast(labels, "int32"), axis=0)

    def compute_output_shape(self, labels_shape):
        return tuple(labels_shape) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dim": self.dim}


@keras.saving.register_keras_serializable(package="vidgen_tf")
class LabelEmbedding(keras.layers.Layer):
    """Labels `(B,)` int -> `(B, dim)` learned class codes, to join a generator's latent.

    Args:
        num_classes: int. Number of classes (> 0).
        dim: int. Size of the code.
    """

    def __init__(self, num_classes, dim, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be an integer >= 1, got {num_classes!r}.")
        self.num_classes = num_classes
        self.dim = dim
        self.embedding = keras.layers.Embedding(num_classes, dim, name="embedding")

    def build(self, labels_shape):
        self.embedding.build(labels_shape)

    def call(self, labels):
        return self.embedding(ops.cast(labels, "int32"))

    def compute_output_shape(self, labels_shape):
        return tuple(labels_shape) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dim": self.dim}
