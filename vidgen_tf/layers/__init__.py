"""Shared Keras layers: spectral normalisation, convolutional GRU, sampling blocks."""

from vidgen_tf.layers.blocks import Down2D, Down3D, Up2D, Up3D
from vidgen_tf.layers.conv_gru import ConvGRU2D, ConvGRU2DCell
from vidgen_tf.layers.spectral_norm import SpectralNorm

__all__ = [
    "ConvGRU2D",
    "ConvGRU2DCell",
    "Down2D",
    "Down3D",
    "SpectralNorm",
    "Up2D",
    "Up3D",
]
