"""Shared Keras layers: spectral normalisation, batch normalisation, convolutional GRU, sampling blocks."""

from vidgen_tf.layers.conditioning import LabelEmbedding, ProjectionHead
from vidgen_tf.layers.conv3d import Conv3D, Conv3DTranspose
from vidgen_tf.layers.activations import LeakyReLU, leaky_relu
from vidgen_tf.layers.blocks import Down2D, Down3D, Up2D, Up3D
from vidgen_tf.layers.conv_gru import ConvGRU2D, ConvGRU2DCell
from vidgen_tf.layers.geometry import doubling_stages
from vidgen_tf.layers.normalization import BatchNormalization
from vidgen_tf.layers.padding import ZeroPadding3D
from vidgen_tf.layers.spectral_norm import SpectralNorm
from vidgen_tf.layers.video_discriminator import Conv3DDiscriminator

__all__ = [
    "BatchNormalization",
    "Conv3D",
    "Conv3DDiscriminator",
    "Conv3DTranspose",
    "ConvGRU2D",
    "ConvGRU2DCell",
    "Down2D",
    "Down3D",
    "LabelEmbedding",
    "LeakyReLU",
    "ProjectionHead",
    "SpectralNorm",
    "Up2D",
    "Up3D",
    "ZeroPadding3D",
    "doubling_stages",
    "leaky_relu",
]
