"""Synthetic video datasets, generated with vectorised numpy from a random generator.

Every generator here has the signature
`generator(rng, num_videos, num_frames, height, width, channels, with_labels, **options)`
and returns `(videos, labels)`: `videos` uint8 `(N, T, H, W, C)` in [0, 255] on a black
background, `labels` int32 `(N,)` or None when `with_labels=False`. Work is vectorised over
videos and pixels; Python loops run only over time steps (the ball simulator) and objects.

Positions are continuous and measured in pixels; speeds are in pixels per frame. Objects
move on straight lines and bounce elastically off the walls: the reflected path is the
"triangle wave" of the free path (see `bounce`), so no object ever leaves the frame.

Datasets:
- `moving_digits`: scikit-learn's 8x8 handwritten digits (`sklearn.datasets.load_digits`,
  bundled with scikit-learn, nothing is downloaded), upscaled bilinearly to `digit_size`
  (default `round(min(height, width) / 2.5)`) and composed with a pixel-wise maximum, as in
  Moving MNIST. Labels are the digit class (0-9); with labels every digit of a video is of
  that class.
- `bouncing_balls`: balls of equal radius and mass with elastic collisions against the walls
  and each other (`simulate_balls`), rendered as discs with a soft edge.
- `moving_shapes`: squares, circles and triangles (classes 0, 1, 2), anti-aliased, each in a
  random saturated colour (or a random grey level when `channels=1`), later shapes drawn over
  earlier ones. With labels every shape of a video is of the labelled class.
- `moving_square`: the simplest distribution, for "the model learns" tests: one white square
  on black moving diagonally at a fixed integer speed and bouncing, from a random start
  position. Its label is the direction class (see `moving_square`).
"""

import functools
import inspect

import numpy as np

from vidgen_tf.data import registry


_check_int = registry.check_int


def _speed_range(speed, height, width):
    """`speed` (None, a number or a (low, high) pair) as a (low, high) pair of pixels/frame.

    The default, `low = max(1, min(height, width) / 32)` and `high = 2 * low`, gives
    2-4 pixels per frame at 64x64 and at least one pixel per frame on small frames, so
    that consecutive frames differ.
    """
    if speed is None:
        low = max(1.0, min(height, width) / 32)
        return low, 2 * low
    pair = np.asarray(speed, dtype=np.float64).reshape(-1)
    if pair.size == 1:
        pair = np.repeat(pair, 2)
    if pair.size != 2 or not np.all(np.isfinite(pair)) or pair[0] < 0 or pair[0] > pair[1]:
        raise ValueError(
            f"`speed` must be a number >= 0 or a pair (low, high) with 0 <= low <= high "
            f"(pixels per frame), got {speed!r}."
        )
    return float(pair[0]), float(pair[1])


def _random_velocities(rng, shape, speed_range):
    """Velocities `shape + (2,)` as (dy, dx): uniform direction, uniform speed in the range."""
    angle = rng.uniform(0.0, 2 * np.pi, size=shape)
    speed = rng.uniform(speed_range[0], speed_range[1], size=shape)
    return np.stack([speed * np.sin(angle), speed * np.cos(angle)], axis=-1)


def _random_counts(rng, num_videos, count, name, maximum=3):
    """Objects per video: `count` for every video, or uniform in 1..maximum when None."""
    if count is None:
        return rng.integers(1, maximum + 1, size=num_videos)
    return np.full(num_videos, _check_int(name, count, 1), dtype=np.int64)


def _hue_to_rgb(hue):
    """Fully saturated, full-value colours `(..., 3)` in [0, 1] from hues in [0, 1)."""
    h6 = hue[..., None] * 6.0
    rgb = np.abs(h6 - np.array([3.0, 2.0, 4.0])) * np.array([1.0, -1.0, -1.0])
    rgb += np.array([-1.0, 2.0, 2.0])
    return np.clip(rgb, 0.0, 1.0)


def _random_colours(rng, shape, channels):
    """Object colours `shape + (channels,)`: saturated hues for RGB, grey levels in [0.5, 1]."""
    if channels == 3:
        return _hue_to_rgb(rng.uniform(0.0, 1.0, size=shape)).astype(np.float32)
    return rng.uniform(0.5, 1.0, size=shape + (1,)).astype(np.float32)


def _to_uint8(canvas):
    return np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)


def bounce(start, velocity, length, num_frames):
    """Positions of points moving at constant velocity between walls at 0 and `length`.

    An elastic bounce mirrors the free path `start + velocity * t` at the walls, so the
    bounced position is the free position folded into [0, length] by a triangle wave of
    period `2 * length`. This gives every frame at once, with no time loop.

    Args:
        start: array. Start positions in [0, length], any shape `S`.
        velocity: array. Velocities in units per frame, broadcastable to `S`.
        length: float or array broadcastable to `S`. Distance between the walls; positions
            are 0 where it is 0.
        num_frames: int. Number of frames.

    Returns:
        Array `S + (num_frames,)` of positions in [0, length].
    """
    t = np.arange(num_frames)
    free = np.asarray(start, np.float64)[..., None] + np.asarray(velocity)[..., None] * t
    length = np.asarray(length, np.float64)
    if length.ndim:
        length = length[..., None]
    folded = np.mod(free, np.maximum(2 * length, 1e-12))  # (..., T)
    return np.where(length > 0, length - np.abs(folded - length), 0.0)


def simulate_balls(positions, velocities, radius, height, width, num_frames, substeps=4):
    """Simulates equal balls bouncing elastically off the walls and each other.

    Each frame is split into `substeps` Euler steps. A ball that crosses a wall is mirrored
    back inside and its velocity component normal to the wall reversed. Two balls that
    overlap while approaching each other collide: with equal masses an elastic collision
    exchanges their velocity components along the line of centres and keeps the tangential
    ones, so momentum and kinetic energy are conserved exactly (up to rounding).

    Args:
        positions: array `(N, K, 2)`. Ball centres as (y, x) in pixels, inside
            `[radius, height - radius] x [radius, width - radius]`.
        velocities: array `(N, K, 2)`. Velocities (dy, dx) in pixels per frame.
        radius: float. Radius of every ball, in pixels.
        height: int. Frame height in pixels.
        width: int. Frame width in pixels.
        num_frames: int. Number of frames to return.
        substeps: int. Integration steps per frame. Defaults to 4.

    Returns:
        `(positions, velocities)`, each `(N, num_frames, K, 2)` float64: the state at every
        frame, frame 0 being the initial state.
    """
    pos = np.array(positions, dtype=np.float64)
    vel = np.array(velocities, dtype=np.float64)
    num_balls = pos.shape[1]
    low = np.array([radius, radius], dtype=np.float64)
    high = np.array([height - radius, width - radius], dtype=np.float64)
    dt = 1.0 / substeps
    min_dist2 = (2.0 * radius) ** 2
    pos_out = np.empty((pos.shape[0], num_frames, num_balls, 2))
    vel_out = np.empty_like(pos_out)
    for t in range(num_frames):
        pos_out[:, t], vel_out[:, t] = pos, vel
        if t == num_frames - 1:
            break
        for _ in range(substeps):
            pos += vel * dt
            under = pos < low
            pos = np.where(under, 2 * low - pos, pos)
            vel = np.where(under, np.abs(vel), vel)
            over = pos > high
            pos = np.where(over, 2 * high - pos, pos)
            vel = np.where(over, -np.abs(vel), vel)
            for i in range(num_balls):
                for j in range(i + 1, num_balls):
                    offset = pos[:, j] - pos[:, i]  # (N, 2)
                    dist2 = np.sum(offset**2, axis=-1)
                    closing = np.sum((vel[:, j] - vel[:, i]) * offset, axis=-1) < 0
                    hit = (dist2 < min_dist2) & closing & (dist2 > 0)
                    # Unit normal along the line of centres (any value where no hit).
                    normal = offset / np.sqrt(np.where(hit, dist2, 1.0))[:, None]
                    normal_i = np.sum(vel[:, i] * normal, axis=-1)
                    normal_j = np.sum(vel[:, j] * normal, axis=-1)
                    exchange = np.where(hit, normal_j - normal_i, 0.0)[:, None] * normal
                    vel[:, i] += exchange
                    vel[:, j] -= exchange
    return pos_out, vel_out


@functools.lru_cache(maxsize=8)
def _digit_bank(size):
    """scikit-learn's 1797 digits upscaled to `(size, size)` in [0, 1], sorted by class.

    Returns `(images, class_offsets, class_counts)`: images `(1797, size, size)` float32;
    class c occupies rows `class_offsets[c] : class_offsets[c] + class_counts[c]`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.argsort(digits.target, kind="stable")
    images = digits.images[order].astype(np.float64) / 16.0  # (1797, 8, 8), values 0..16
    targets = digits.target[order]
    # Bilinear interpolation as a (size, 8) matrix on pixel centres, edges clamped; the
    # upscaled image is A @ image @ A^T for every image at once.
    source = np.clip((np.arange(size) + 0.5) * 8.0 / size - 0.5, 0.0, 7.0)
    below = np.minimum(np.floor(source).astype(int), 6)
    frac = source - below
    interp = np.zeros((size, 8))
    interp[np.arange(size), below] = 1.0 - frac
    interp[np.arange(size), below + 1] += frac
    upscaled = np.einsum("ia,nab,jb->nij", interp, images, interp).astype(np.float32)
    counts = np.bincount(targets, minlength=10)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return upscaled, offsets, counts


def _paste_max(canvas, patches, rows, cols):
    """`canvas[n, t, rows, cols] = max(canvas, patch)` for integer top-left corners.

    Args:
        canvas: float32 `(N, T, H, W)`, updated in place.
        patches: float32 `(N, s, s)`, one patch per video.
        rows, cols: int `(N, T)`. Top-left corners, with the patch inside the frame.
    """
    num_videos, num_frames = rows.shape
    size = patches.shape[-1]
    offsets = np.arange(size)
    r = (rows[..., None] + offsets)[:, :, :, None]  # (N, T, s, 1)
    c = (cols[..., None] + offsets)[:, :, None, :]  # (N, T, 1, s)
    n = np.arange(num_videos)[:, None, None, None]
    t = np.arange(num_frames)[None, :, None, None]
    canvas[n, t, r, c] = np.maximum(canvas[n, t, r, c], patches[:, None])


def moving_digits(
    rng, num_videos, num_frames, height, width, channels, with_labels,
    num_digits=None, digit_size=None, speed=None,
):
    """Handwritten digits bouncing off the walls (a Moving-MNIST-like set).

    Args:
        num_digits: int or None. Digits per video; None draws 1, 2 or 3 uniformly for each
            video. Defaults to None.
        digit_size: int or None. Side of the upscaled digit in pixels. Defaults to
            `round(min(height, width) / 2.5)`.
        speed: float, (low, high) or None. Speed in pixels per frame, uniform in the range;
            see `_speed_range` for the default.
    """
    if digit_size is None:
        digit_size = max(2, round(min(height, width) / 2.5))
    size = _check_int("digit_size", digit_size, 2, min(height, width))
    speeds = _speed_range(speed, height, width)
    counts = _random_counts(rng, num_videos, num_digits, "num_digits")
    slots = int(counts.max())
    bank, offsets, class_counts = _digit_bank(size)

    labels = rng.integers(0, 10, size=num_videos) if with_labels else None
    if with_labels:
        # Every digit of a video is of its class, so the label describes the whole video.
        within = rng.random((num_videos, slots))
        index = offsets[labels][:, None] + (within * class_counts[labels][:, None]).astype(int)
    else:
        index = rng.integers(0, len(bank), size=(num_videos, slots))
    start = rng.random((num_videos, slots, 2)) * np.array([height - size, width - size])
    velocity = _random_velocities(rng, (num_videos, slots), speeds)
    lengths = np.array([height - size, width - size], dtype=np.float64)

    canvas = np.zeros((num_videos, num_frames, height, width), np.float32)  # (N, T, H, W)
    for k in range(slots):
        active = (k < counts).astype(np.float32)[:, None, None]
        rows = np.rint(bounce(start[:, k, 0], velocity[:, k, 0], lengths[0], num_frames))
        cols = np.rint(bounce(start[:, k, 1], velocity[:, k, 1], lengths[1], num_frames))
        _paste_max(canvas, bank[index[:, k]] * active, rows.astype(int), cols.astype(int))
    videos = np.repeat(_to_uint8(canvas)[..., None], channels, axis=-1)  # (N, T, H, W, C)
    return videos, None if labels is None else labels.astype(np.int32)


def bouncing_balls(
    rng, num_videos, num_frames, height, width, channels, with_labels,
    num_balls=2, radius=None, speed=None, softness=None, substeps=4,
):
    """Balls colliding elastically with the walls and each other (see `simulate_balls`).

    Balls start at random non-overlapping positions. With `channels=1` they are white, with
    `channels=3` each gets a random saturated colour; overlapping discs take the maximum.

    Args:
        num_balls: int. Balls per video. Defaults to 2.
        radius: float or None. Ball radius in pixels. Defaults to `min(height, width) / 8`.
        speed: float, (low, high) or None. Speed in pixels per frame; see `_speed_range`.
        softness: float or None. Width in pixels of the edge's ramp from 1 to 0. Defaults
            to `max(1, radius / 4)`.
        substeps: int. Simulation steps per frame. Defaults to 4.
    """
    if with_labels:
        raise ValueError("Dataset 'bouncing_balls' has no classes; use `with_labels=False`.")
    num_balls = _check_int("num_balls", num_balls, 1)
    substeps = _check_int("substeps", substeps, 1)
    radius = float(min(height, width) / 8 if radius is None else radius)
    if not 0 < 2 * radius < min(height, width):
        raise ValueError(
            f"`radius` must be > 0 and < min(height, width) / 2 = {min(height, width) / 2}, "
            f"got {radius}."
        )
    # Random placement succeeds quickly only if the balls cover a small part of the box.
    free_area = (height - 2 * radius) * (width - 2 * radius)
    if num_balls > 1 and num_balls * (2 * radius) ** 2 > 0.5 * free_area:
        raise ValueError(
            f"{num_balls} balls of radius {radius} do not fit in a {height}x{width} frame; "
            "use fewer balls (`num_balls`) or a smaller `radius`."
        )
    softness = max(1.0, radius / 4) if softness is None else float(softness)
    if softness <= 0:
        raise ValueError(f"`softness` must be > 0, got {softness}.")
    speeds = _speed_range(speed, height, width)

    low = np.array([radius, radius])
    span = np.array([height - 2 * radius, width - 2 * radius])
    start = low + rng.random((num_videos, num_balls, 2)) * span
    for _ in range(1000):  # redraw the videos whose balls overlap
        gaps = start[:, :, None] - start[:, None, :]
        dist2 = np.sum(gaps**2, axis=-1) + np.eye(num_balls) * 1e9
        overlapping = np.any(dist2 < (2 * radius) ** 2, axis=(1, 2))
        if not overlapping.any():
            break
        start[overlapping] = low + rng.random((int(overlapping.sum()), num_balls, 2)) * span
    else:
        raise ValueError(f"Could not place {num_balls} non-overlapping balls of radius {radius}.")
    velocity = _random_velocities(rng, (num_videos, num_balls), speeds)
    positions, _ = simulate_balls(start, velocity, radius, height, width, num_frames, substeps)
    positions = positions.astype(np.float32)  # (N, T, K, 2)

    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    colours = _random_colours(rng, (num_videos, num_balls), channels) if channels == 3 else None
    canvas = np.zeros((num_videos, num_frames, height, width, channels), np.float32)
    for k in range(num_balls):
        dy = ys[None, None, :, None] - positions[:, :, k, 0, None, None]
        dx = xs[None, None, None, :] - positions[:, :, k, 1, None, None]
        dist = np.sqrt(dy**2 + dx**2)  # (N, T, H, W)
        disc = np.clip((radius - dist) / softness + 0.5, 0.0, 1.0)[..., None]
        if colours is not None:
            disc = disc * colours[:, k, None, None, None, :]
        np.maximum(canvas, disc, out=canvas)
    return _to_uint8(canvas), None


# Classes of `moving_shapes`, in label order.
SHAPES = ("square", "circle", "triangle")


def _shape_distance(shape, dy, dx, half):
    """Signed distance (negative inside) to a shape of half-size `half` centred at 0."""
    if shape == 0:  # square
        return np.maximum(np.abs(dy), np.abs(dx)) - half
    if shape == 1:  # circle
        return np.sqrt(dy**2 + dx**2) - half
    # Upward triangle with apex (-half, 0) and base y = +half from x = -half to +half;
    # its slanted edges are the lines 2|x| - y = half, whose normals have length sqrt(5).
    return np.maximum(dy - half, (2 * np.abs(dx) - dy - half) / np.sqrt(5.0))


def moving_shapes(
    rng, num_videos, num_frames, height, width, channels, with_labels,
    num_shapes=None, shape_size=None, speed=None,
):
    """Coloured squares, circles and triangles (classes 0, 1, 2) bouncing off the walls.

    Shapes are anti-aliased (pixel coverage from the signed distance to the outline) and
    drawn in order, later ones over earlier ones.

    Args:
        num_shapes: int or None. Shapes per video; None draws 1, 2 or 3 uniformly for each
            video. Defaults to None.
        shape_size: int or None. Side of each shape's bounding box in pixels. Defaults to
            `round(min(height, width) / 4)`.
        speed: float, (low, high) or None. Speed in pixels per frame; see `_speed_range`.
    """
    if shape_size is None:
        shape_size = max(3, round(min(height, width) / 4))
    size = _check_int("shape_size", shape_size, 2, min(height, width))
    speeds = _speed_range(speed, height, width)
    counts = _random_counts(rng, num_videos, num_shapes, "num_shapes")
    slots = int(counts.max())

    labels = rng.integers(0, len(SHAPES), size=num_videos) if with_labels else None
    if with_labels:
        kinds = np.repeat(labels[:, None], slots, axis=1)
    else:
        kinds = rng.integers(0, len(SHAPES), size=(num_videos, slots))
    lengths = np.array([height - size, width - size], dtype=np.float64)
    start = rng.random((num_videos, slots, 2)) * lengths
    velocity = _random_velocities(rng, (num_videos, slots), speeds)
    colours = _random_colours(rng, (num_videos, slots), channels)  # (N, K, C)

    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    half = size / 2.0
    canvas = np.zeros((num_videos, num_frames, height, width, channels), np.float32)
    for k in range(slots):
        centre_y = bounce(start[:, k, 0], velocity[:, k, 0], lengths[0], num_frames) + half
        centre_x = bounce(start[:, k, 1], velocity[:, k, 1], lengths[1], num_frames) + half
        coverage = np.zeros((num_videos, num_frames, height, width), np.float32)
        for kind in range(len(SHAPES)):
            chosen = (kinds[:, k] == kind) & (k < counts)
            if not chosen.any():
                continue
            dy = ys[None, None, :, None] - centre_y[chosen, :, None, None].astype(np.float32)
            dx = xs[None, None, None, :] - centre_x[chosen, :, None, None].astype(np.float32)
            coverage[chosen] = np.clip(0.5 - _shape_distance(kind, dy, dx, half), 0.0, 1.0)
        coverage = coverage[..., None]  # (N, T, H, W, 1)
        canvas = canvas * (1.0 - coverage) + coverage * colours[:, k, None, None, None, :]
    return _to_uint8(canvas), None if labels is None else labels.astype(np.int32)


# Unit directions (dy, dx) of `moving_square`, by `num_directions`, in label order.
_SQUARE_DIRECTIONS = {
    1: ((1, 1),),
    2: ((1, 1), (-1, -1)),
    4: ((1, 1), (1, -1), (-1, -1), (-1, 1)),
}


def moving_square(
    rng, num_videos, num_frames, height, width, channels, with_labels,
    square_size=None, speed=None, num_directions=4,
):
    """One white square on black moving diagonally and bouncing off the walls.

    The square moves `speed` whole pixels per frame along each axis, so its edges stay
    sharp and every frame holds exactly `square_size ** 2` white pixels. Only the start
    position (uniform over the frame) and the direction are random.

    Args:
        square_size: int or None. Side in pixels. Defaults to `round(min(height, width) / 4)`.
        speed: int or None. Pixels per frame along each axis. Defaults to
            `max(1, round(min(height, width) / 16))`.
        num_directions: int. 1 (down-right), 2 (down-right, up-left) or 4 (down-right,
            down-left, up-left, up-right). The label is the index of the direction in this
            list. Defaults to 4.
    """
    if square_size is None:
        square_size = max(2, round(min(height, width) / 4))
    size = _check_int("square_size", square_size, 1, min(height, width))
    if speed is None:
        speed = max(1, round(min(height, width) / 16))
    speed = _check_int("speed", speed, 0)
    if num_directions not in _SQUARE_DIRECTIONS:
        raise ValueError(f"`num_directions` must be 1, 2 or 4, got {num_directions!r}.")
    directions = np.array(_SQUARE_DIRECTIONS[num_directions])

    labels = rng.integers(0, num_directions, size=num_videos)
    start_y = rng.integers(0, height - size + 1, size=num_videos)
    start_x = rng.integers(0, width - size + 1, size=num_videos)
    # Integer starts and speeds keep the folded positions integer (exact in float64).
    rows = bounce(start_y, directions[labels, 0] * speed, height - size, num_frames)
    cols = bounce(start_x, directions[labels, 1] * speed, width - size, num_frames)
    canvas = np.zeros((num_videos, num_frames, height, width), np.float32)
    patch = np.ones((num_videos, size, size), np.float32)
    _paste_max(canvas, patch, np.rint(rows).astype(int), np.rint(cols).astype(int))
    videos = np.repeat(_to_uint8(canvas)[..., None], channels, axis=-1)  # (N, T, H, W, C)
    return videos, labels.astype(np.int32) if with_labels else None


# name -> generator.
GENERATORS = {
    "moving_digits": moving_digits,
    "bouncing_balls": bouncing_balls,
    "moving_shapes": moving_shapes,
    "moving_square": moving_square,
}


def option_names(name):
    """Names of the keyword options of the synthetic dataset `name`."""
    parameters = inspect.signature(GENERATORS[name]).parameters
    return list(parameters)[7:]  # after rng ... with_labels


def num_classes(name, **options):
    """Number of label classes of the synthetic dataset `name`, or None if it has none."""
    if name == "moving_square":
        return options.get("num_directions", 4)
    return {"moving_digits": 10, "moving_shapes": len(SHAPES), "bouncing_balls": None}[name]


class SyntheticSource(registry.Source):
    """A dataset drawn by one of `GENERATORS`: deterministic in the seed, endless, lazy."""

    def __init__(self, name, description):
        self.name = name
        self.description = description

    def options(self):
        parameters = inspect.signature(GENERATORS[self.name]).parameters
        return {key: parameters[key].default for key in list(parameters)[7:]}

    def check(self, request):
        super().check(request)
        self.check_labels(request)

    def num_classes(self, request):
        return num_classes(self.name, **request.options)

    def class_names(self, request):
        if self.name == "moving_shapes":
            return list(SHAPES)
        return super().class_names(request)

    def make_videos(self, request, num_videos, rng):
        return GENERATORS[self.name](rng, num_videos, *request.shape, request.with_labels,
                                     **request.options)

    def stream(self, request, start_video, chunk_size):
        generator = GENERATORS[self.name]
        # A one-video dry run, so that bad options fail here and not inside the pipeline.
        generator(np.random.default_rng(0), 1, *request.shape, request.with_labels,
                  **request.options)

        def chunk(index):
            rng = np.random.default_rng([request.seed, index])
            return generator(rng, chunk_size, *request.shape, request.with_labels,
                             **request.options)

        return registry.chunked_stream(chunk, request, start_video, chunk_size)


for _name, _description in (
    ("moving_digits", "scikit-learn's handwritten digits bouncing in the frame (labels: digit)"),
    ("bouncing_balls", "balls colliding elastically with the walls and each other (no labels)"),
    ("moving_shapes", "coloured squares, circles and triangles (labels: the shape)"),
    ("moving_square", "one white square moving diagonally (labels: its direction)"),
):
    registry.register_source(SyntheticSource(_name, _description))
