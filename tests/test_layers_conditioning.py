"""Projection head and label embedding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidgen_tf.layers import LabelEmbedding, ProjectionHead


def test_projection_adds_the_inner_product_with_the_class_embedding():
    head = ProjectionHead(num_classes=3)
    features = tf.constant([[1.0, 2.0], [0.5, -1.0]])
    labels = tf.constant([0, 2])
    head(features, labels)
    kernel, bias = head.linear.kernel.numpy(), head.linear.bias.numpy()
    embedding = head.embedding.numpy()
    expected = features.numpy() @ kernel[:, 0] + bias[0] + np.sum(embedding[[0, 2]] * features.numpy(), axis=1)
    np.testing.assert_allclose(head(features, labels).numpy(), expected, rtol=1e-6)
    # The class changes the logit only through the embedding.
    assert not np.allclose(head(features, tf.constant([1, 1])).numpy(), head(features, labels).numpy())


def test_label_rules_are_enforced():
    with pytest.raises(ValueError, match="labels are required"):
        ProjectionHead(num_classes=2)(tf.ones((1, 4)))
    with pytest.raises(ValueError, match="unconditional"):
        ProjectionHead()(tf.ones((1, 4)), tf.constant([0]))
    with pytest.raises(ValueError, match="num_classes"):
        ProjectionHead(num_classes=-1)


def test_round_trips_through_keras_files(tmp_path):
    features = keras.Input((4,))
    labels = keras.Input((), dtype="int32")
    logits = ProjectionHead(num_classes=3, spectral_norm=True)(features, labels)
    codes = LabelEmbedding(3, 5)(labels)
    model = keras.Model([features, labels], [logits, codes])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = [np.random.default_rng(0).normal(size=(2, 4)).astype("float32"), np.array([0, 2], "int32")]
    for a, b in zip(loaded(x), model(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert codes.shape == (None, 5)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_a_float32_head_computes_in_float32_under_mixed_precision(spectral_norm):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        head = ProjectionHead(num_classes=2, spectral_norm=spectral_norm, dtype="float32")
        inner = head.linear.layer if spectral_norm else head.linear
        logits = head(tf.ones((2, 4), "float16"), tf.constant([0, 1]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert inner.compute_dtype == "float32"
    assert logits.dtype == tf.float32


def _projection_embedding(head, num_classes, dim):
    """The class embedding the head's output uses, read from its logits: row y, column j is
    head(e_j, y) - psi(e_j), the projection term of the unit feature e_j."""
    basis = tf.eye(dim)
    psi = head.linear(basis, training=False) if head.spectral_norm else head.linear(basis)
    rows = [head(basis, tf.fill([dim], y)).numpy() - psi.numpy()[:, 0] for y in range(num_classes)]
    return np.stack(rows)


def test_spectral_norm_normalises_the_class_embedding():
    keras.utils.set_random_seed(3)
    head = ProjectionHead(num_classes=4, spectral_norm=True)
    features = tf.random.normal((8, 6))
    labels = tf.constant([0, 1, 2, 3, 0, 1, 2, 3])
    for _ in range(30):  # power iteration converges over training calls
        head(features, labels, training=True)
    used = _projection_embedding(head, 4, 6)
    assert np.linalg.svd(used, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(head.embedding_matrix().numpy(), used, atol=1e-5)
    # The plain head projects on its raw embedding.
    plain = ProjectionHead(num_classes=4)
    plain(features, labels)
    np.testing.assert_allclose(_projection_embedding(plain, 4, 6), plain.embedding_matrix().numpy(), atol=1e-5)
