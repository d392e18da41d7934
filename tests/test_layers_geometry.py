"""Frame-size arithmetic of the convolutional generators and discriminators."""

import pytest

from vidgen_tf.layers import doubling_stages


@pytest.mark.parametrize(
    "height,width,base,stages",
    [(8, 8, 4, 1), (16, 16, 4, 2), (64, 64, 4, 4), (32, 64, 4, 3), (64, 32, 4, 3), (32, 40, 4, 3), (48, 96, 3, 4)],
)
def test_counts_the_doublings_from_the_grid_to_the_frames(height, width, base, stages):
    assert doubling_stages(height, width, base=base) == stages
    # The round trip is exact: the grid doubled `stages` times is the frame.
    assert min(height, width) >> stages == base
    assert (height >> stages) << stages == height and (width >> stages) << stages == width


@pytest.mark.parametrize("height,width", [(4, 4), (20, 20), (24, 24), (32, 36), (2, 2)])
def test_sizes_without_an_exact_round_trip_are_named(height, width):
    with pytest.raises(ValueError, match=rf"MyGAN needs frames.*height={height}, width={width}"):
        doubling_stages(height, width, model="MyGAN")


def test_non_integer_sizes_are_named():
    with pytest.raises(ValueError, match="`height` must be a positive integer, got 16.0"):
        doubling_stages(16.0, 16)
    with pytest.raises(ValueError, match="`width` must be a positive integer, got True"):
        doubling_stages(16, True)
