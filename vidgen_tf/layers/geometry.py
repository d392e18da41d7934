"""Frame-size arithmetic shared by the convolutional generators and discriminators.

DCGAN-style networks start from a small grid (4 pixels on the shorter side)
and double it with stride-2 blocks until it reaches the frame size; their
discriminators halve the frames back down to that grid. Both need the number
of stride-2 stages, and a frame size that allows an exact round trip.
"""


def doubling_stages(height, width, base=4, model="This model"):
    """Number `k` of stride-2 stages between a `base`-pixel grid and the frames.

    The shorter side must be `base * 2**k` with `k >= 1`, and both sides must
    be divisible by `2**k`, so that the grid is `(height / 2**k, width / 2**k)`
    exactly: e.g. 8, 16, 32, 64 or 32x64 with the default base.

    Args:
        height: int. Frame height in pixels.
        width: int. Frame width in pixels.
        base: int. Shorter side of the grid. Defaults to 4.
        model: str. Name used in the error message. Defaults to "This model".

    Returns:
        The int `k`.

    Example:

    ```python
    doubling_stages(64, 64)  # 4: 4 -> 8 -> 16 -> 32 -> 64
    doubling_stages(32, 64)  # 3: grid (4, 8)
    ```
    """
    for name, value in (("height", height), ("width", width), ("base", base)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    side = min(height, width)
    stages = 0
    while base << (stages + 1) <= side:
        stages += 1
    scale = 1 << stages
    if stages < 1 or side != base * scale or height % scale or width % scale:
        raise ValueError(
            f"{model} needs frames whose shorter side is {base} * 2**k (k >= 1, e.g. "
            f"{base * 4} or {base * 16}) and whose other side is a multiple of 2**k; "
            f"got height={height}, width={width}."
        )
    return stages
