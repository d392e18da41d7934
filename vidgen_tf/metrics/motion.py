"""Motion metrics from ground truth: how the objects of generated clips move, against real ones.

FVD barely reacts to temporal corruption (Ge et al., CVPR 2024). On the zoo's synthetic
sets the renderers are known: bright objects on a black background that move on straight
lines and bounce off the walls (see `vidgen_tf.data.synthetic`). So the objects can be found
in every frame of a clip, tracked from frame to frame, and their motion compared directly
with the motion in real clips.

Pipeline, for each video:

1. **Grey.** uint8 videos are scaled to [0, 1], float videos in [-1, 1] by `(x + 1) / 2`.
   RGB frames become grey by the maximum over channels (the HSV value), not by luminance:
   the renderers draw saturated colours, and a pure blue object has a luminance of 0.07,
   which would vanish below the threshold.
2. **Objects.** Pixels at or above `THRESHOLD` (0.25 of full brightness) are object pixels;
   the 8-connected components of a frame are its objects ("blobs"). Each blob has an area
   (pixel count), a bounding box and an intensity-weighted centroid in pixel coordinates
   whose pixel centres are at `i + 0.5` (the renderers' convention), so the centroid of a
   square whose top-left pixel is `(r, c)` and side `s` is `(r + s / 2, c + s / 2)`.
3. **Links.** Blobs of consecutive frames are matched by the Hungarian assignment
   (`scipy.optimize.linear_sum_assignment`) on centroid distances. Overlapping objects
   merge into one blob: a blob that is the nearest blob of two or more blobs of the next
   (or previous) frame is marked *merged*; it is counted (objects per frame, area, position)
   but no link touches it, so tracks break there instead of jumping through the merge.
4. **Tracks.** A link gives a velocity (the centroid step); two links in a row through the
   same blob give an acceleration `c[t+1] - 2 c[t] + c[t-1]`. Such a triple is a *wall
   bounce* on an axis when the velocity component reverses (or stops) there by at least
   `BOUNCE_MIN_CHANGE` pixels per frame and the blob's bounding box lies within
   `|v_in| + |v_out| + slack` pixels of the wall it moved towards (the slack allows for
   parts of an object below the threshold: 1 px for the square, `1 + digit_size / 4` for
   the digits' blank bitmap borders, `1 + max(1, radius / 4)` for the soft balls, 2 px for
   the anti-aliased shapes); consecutive bounce triples on the same track and axis are one
   bounce (a step that ends at the wall, then the step back).

Statistics (`motion_statistics` returns each as a sample pooled over all videos):

- `objects_per_frame`: number of blobs in each frame (per frame). Overlaps lower it.
- `object_area`: pixel count of each blob (per blob). An addition to the issue's list:
  it separates noise (one huge connected blob) and smeared or shrunken objects.
- `speed`: length of each link's step, in pixels per frame (per link).
- `acceleration`: length of the acceleration of each triple that is not a wall bounce, in
  pixels per frame squared (per triple). Straight-line motion gives (nearly) 0; rounding
  to whole pixels (digits) and ball-ball collisions give the real data its spread.
- `wall_bounces`: wall bounces per tracked object in each clip: bounces divided by the
  clip's triples, times `T - 2` (per clip with at least one triple).
- `positions`: centroid rows and columns of every blob (per blob; the distance is the mean
  of the rows' and the columns' distances).
- `coverage`: fraction of the frame's pixels that an object covers in at least one frame
  of the clip (per clip): the positions a clip's motion covers. A static clip covers one
  frame's worth.
- `track_continuity`: 1 if the clip's tracks are continuous, else 0 (per clip): every frame
  has the same number of blobs (at least one), no blob is merged, and every blob is linked
  to the next frame with a step of at most `max_step` pixels. `max_step` is twice the
  dataset's fastest speed plus 2 pixels (rounding, anti-aliasing). The mean over clips is
  the fraction of clips whose tracks never break. (Called `identity` before: it checks
  where the objects go, not what they look like.)
- `appearance`: how much each tracked object's look has changed since the start of its
  track (per linked blob): the blob's grey pixels and those of its track's first blob,
  aligned by the whole-pixel rounding of their centroids' offset, as
  `sum |a - b| / (sum a + sum b)`, 0 for the same pixels, 1 for disjoint ones. A digit
  that turns into another one, or turns over in place, changes here while its track goes
  on; real digits move in whole pixels and keep theirs exactly, soft balls and anti-aliased
  shapes change a little at their edges.

Distances (`motion_distance`): for each statistic, the 1-D Wasserstein distance
(`scipy.stats.wasserstein_distance`, the area between the two empirical CDFs, in the
statistic's own unit) between the real and the fake sample, divided by the statistic's
*scale*: the standard deviation of the real sample, but at least the statistic's floor,
so that a real distribution without spread (the moving square's acceleration is exactly 0,
its area and count constant) does not divide by zero. With `u = max(1, min(H, W) / 32)`
pixels (the datasets' slowest default speed) the floors are: objects per frame 0.5,
object area `4 u^2` pixels, speed and acceleration `0.5 u`, wall bounces 0.25 per object,
positions `u` pixels, coverage 0.02, track continuity 0.1, appearance 0.05. Each distance
is therefore in "real spreads" (or floors), and `total` is their sum (since the
`appearance` term was added, totals are not comparable with earlier ones). For
`track_continuity` (a 0/1 sample) the Wasserstein distance is the difference of the two
fractions. A statistic with no values in one of the
samples (no links at all, e.g. black clips) is scored as if that sample were the single
value 0. Everything is deterministic: no sampling, no randomness.

Measured (`bench/motion_metrics_table.py`, 200 clips of 16 frames at 32x32 per side, real
seed 0 against held-out seed 1): held-out real totals 0.13 (square) to 0.74 (shapes; their
appearance terms 0 to 0.11); single digits turned over in place from frame 8 on score 4.5
against 0.64 for held-out ones (0.82 without the appearance term). Before the appearance
term: the held-out clips frozen on frame 0 scored 8.7 - 19, with shuffled frames 19 - 55,
uniform noise 23 - 186. The sampling noise of held-out real data falls with the number of clips
(about 0.9 with 128 clips of 10 frames).

Example:

```python
from vidgen_tf.data import make_videos
from vidgen_tf.metrics import motion_distance

real = make_videos("moving_digits", 200, num_frames=16, height=32, width=32, seed=0)
fake = model.generate(200)  # float in [-1, 1], (200, 16, 32, 32, 1)
distances = motion_distance(real, fake, dataset="moving_digits")
distances["total"], distances["speed"]
```
"""

import numpy as np

from vidgen_tf.data import synthetic
from vidgen_tf.registry import unknown_name_error

# Object pixels: at least this fraction of full brightness.
THRESHOLD = 0.25
# A velocity component must change by at least this much (pixels / frame) to be a bounce.
BOUNCE_MIN_CHANGE = 1.0
# Videos converted and labelled at a time, so that memory stays bounded for many clips.
CHUNK_SIZE = 64

STATISTICS = (
    "objects_per_frame",
    "object_area",
    "speed",
    "acceleration",
    "wall_bounces",
    "positions",
    "coverage",
    "track_continuity",
    "appearance",
)


def _datasets():
    return sorted(synthetic.GENERATORS)


def _check_videos(name, videos):
    """`videos` as a numpy array, checked, with errors that name the argument."""
    if hasattr(videos, "numpy"):
        videos = videos.numpy()
    array = np.asarray(videos)
    if array.dtype == object or not (
        array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"`{name}` must be uint8 in [0, 255] or float in [-1, 1], got dtype {array.dtype}."
        )
    if array.ndim != 5:
        raise ValueError(
            f"`{name}` must be 5-D (num_videos, num_frames, height, width, channels), got "
            f"shape {array.shape}."
        )
    num_videos, num_frames, _, _, channels = array.shape
    if channels not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels, got shape {array.shape}.")
    if num_videos < 2:
        raise ValueError(
            f"`{name}` must hold at least 2 videos to form a distribution, got {num_videos}."
        )
    if num_frames < 3:
        raise ValueError(
            f"`{name}` must have at least 3 frames (an acceleration needs 3), got {num_frames}."
        )
    if array.dtype != np.uint8:
        if not np.all(np.isfinite(array)):
            raise ValueError(f"`{name}` contains NaN or Inf.")
        low, high = float(array.min()), float(array.max())
        if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
            raise ValueError(
                f"Float `{name}` must lie in [-1, 1], got values in [{low:.4g}, {high:.4g}]; "
                "pass uint8 videos in [0, 255] as uint8."
            )
    return array


def _grey(videos):
    """Checked videos `(n, T, H, W, C)` as float64 grey `(n, T, H, W)` in [0, 1]."""
    if videos.dtype == np.uint8:
        grey = videos.astype(np.float64) / 255.0
    else:
        grey = np.clip((videos.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
    return grey.max(axis=-1)  # the HSV value


def _dataset_geometry(dataset, height, width, options):
    """`(max_speed, wall_slack)` in pixels for the dataset at this frame size.

    `max_speed` is the fastest per-frame step of the dataset's objects (the track-continuity gate is
    built from it); `wall_slack` is how far an object's drawn pixels may stay from the wall
    when its box touches it: the digits' 8x8 bitmaps leave blank borders, the anti-aliased
    shapes and soft balls lose their faint edges below the threshold.
    """
    if dataset not in synthetic.GENERATORS:
        raise unknown_name_error("dataset", dataset, _datasets())
    known = synthetic.option_names(dataset)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"Unknown option(s) {unknown} for dataset '{dataset}'. Its options: "
            f"{', '.join(known)}."
        )
    size = min(height, width)
    if dataset == "moving_square":
        speed = options.get("speed")
        speed = max(1, round(size / 16)) if speed is None else speed
        return float(np.sqrt(2.0) * speed), 1.0
    high = synthetic._speed_range(options.get("speed"), height, width)[1]
    if dataset == "moving_digits":
        digit_size = options.get("digit_size")
        digit_size = max(2, round(size / 2.5)) if digit_size is None else digit_size
        # The rendered digit moves in whole pixels: up to half a pixel of rounding per axis.
        return high + 1.0, 1.0 + digit_size / 4.0
    if dataset == "bouncing_balls":
        radius = options.get("radius")
        radius = size / 8 if radius is None else float(radius)
        return high, 1.0 + max(1.0, radius / 4)
    return high, 2.0  # moving_shapes


def _floors(height, width):
    """The smallest scale of each statistic, in its unit; grows with the frame size."""
    unit = max(1.0, min(height, width) / 32)  # pixels: the datasets' slowest default speed
    return {
        "objects_per_frame": 0.5,
        "object_area": 4.0 * unit**2,
        "speed": 0.5 * unit,
        "acceleration": 0.5 * unit,
        "wall_bounces": 0.25,
        "positions": unit,
        "coverage": 0.02,
        "track_continuity": 0.1,
        "appearance": 0.05,
    }


def _blobs(grey):
    """Objects of every frame.

    Args:
        grey: float64 `(N, T, H, W)` in [0, 1].

    Returns:
        `(frame, centroids, areas, boxes, mask, patches)`: for every blob, its frame index
        into `N * T` (ascending), centroid `(y, x)`, area and bounding box
        `(y0, x0, y1, x1)` (exclusive ends); `mask` is the object-pixel mask; `patches` are
        the blobs' grey pixels within their boxes (0 outside the blob).
    """
    from scipy import ndimage

    num_videos, num_frames, height, width = grey.shape
    mask = grey >= THRESHOLD
    flat = mask.reshape(num_videos * num_frames, height, width)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True  # 8-connected within a frame, never across frames
    labels, count = ndimage.label(flat, structure=structure)
    if count == 0:
        empty = np.zeros((0,))
        return empty.astype(int), np.zeros((0, 2)), empty, np.zeros((0, 4)), mask, []
    weights = np.where(flat, grey.reshape(flat.shape), 0.0)
    ys = np.broadcast_to((np.arange(height) + 0.5)[None, :, None], flat.shape)
    xs = np.broadcast_to((np.arange(width) + 0.5)[None, None, :], flat.shape)
    index = labels.ravel()
    total = np.bincount(index, weights.ravel(), count + 1)[1:]
    cy = np.bincount(index, (weights * ys).ravel(), count + 1)[1:] / total
    cx = np.bincount(index, (weights * xs).ravel(), count + 1)[1:] / total
    areas = np.bincount(index, minlength=count + 1)[1:].astype(np.float64)
    slices = ndimage.find_objects(labels)
    frame = np.array([s[0].start for s in slices])
    boxes = np.array([[s[1].start, s[2].start, s[1].stop, s[2].stop] for s in slices], float)
    grey_flat = grey.reshape(flat.shape)
    patches = [np.where(labels[s] == k + 1, grey_flat[s], 0.0)[0] for k, s in enumerate(slices)]
    return frame, np.stack([cy, cx], axis=-1), areas, boxes, mask, patches


def _appearance_change(patch_a, box_a, centroid_a, patch_b, box_b, centroid_b):
    """`sum |a - b| / (sum a + sum b)` of two blobs' grey patches, b moved by the rounded centroid offset."""
    shift = np.rint(np.asarray(centroid_b) - np.asarray(centroid_a)).astype(int)
    top_a = np.asarray(box_a[:2], int)
    top_b = np.asarray(box_b[:2], int) - shift
    origin = np.minimum(top_a, top_b)
    end = np.maximum(top_a + patch_a.shape, top_b + patch_b.shape)
    canvas = np.zeros((2, *(end - origin)))
    for index, (patch, top) in enumerate(((patch_a, top_a), (patch_b, top_b))):
        y, x = top - origin
        canvas[index, y:y + patch.shape[0], x:x + patch.shape[1]] = patch
    total = canvas.sum()
    return float(np.abs(canvas[0] - canvas[1]).sum() / total) if total > 0 else 0.0


def _link(previous, current):
    """Links between the blobs of two frames.

    Returns `(pairs, distances, merged_previous, merged_current)`: Hungarian pairs `(i, j)`
    on centroid distance, their distances, and the merge marks of both frames (a blob that
    is the nearest of two or more blobs of the other frame).
    """
    from scipy.optimize import linear_sum_assignment

    distance = np.linalg.norm(previous[:, None, :] - current[None, :, :], axis=-1)
    merged_current = np.bincount(distance.argmin(axis=1), minlength=len(current)) >= 2
    merged_previous = np.bincount(distance.argmin(axis=0), minlength=len(previous)) >= 2
    rows, cols = linear_sum_assignment(distance)
    return np.stack([rows, cols], axis=-1), distance[rows, cols], merged_previous, merged_current


def _clip_motion(centroids, boxes, frames, height, width, max_step, wall_slack, patches=None):
    """Speeds, accelerations, wall bounces, track continuity and appearance changes of one clip.

    Args:
        centroids, boxes: per frame, the blobs' `(k, 2)` centroids and `(k, 4)` boxes.
        frames: int. Number of frames T.
        patches: per frame, the blobs' grey patches (see `_blobs`), or None.

    Returns:
        `(speeds, accelerations, bounces, triples, continuous, appearance)`.
    """
    counts = [len(c) for c in centroids]
    merged = [np.zeros(k, bool) for k in counts]
    links = []  # per transition: pairs and distances
    for t in range(frames - 1):
        if counts[t] == 0 or counts[t + 1] == 0:
            links.append((np.zeros((0, 2), int), np.zeros(0)))
            continue
        pairs, distances, merged_a, merged_b = _link(centroids[t], centroids[t + 1])
        merged[t] |= merged_a
        merged[t + 1] |= merged_b
        links.append((pairs, distances))

    keeps = counts[0] > 0 and all(k == counts[0] for k in counts)
    following = []  # per transition: next[i] = j or -1, over clean links only
    speeds = []
    for t, (pairs, distances) in enumerate(links):
        nxt = np.full(counts[t], -1)
        for (i, j), d in zip(pairs, distances):
            if merged[t][i] or merged[t + 1][j]:
                keeps = False
                continue
            nxt[i] = j
            speeds.append(d)
            keeps = keeps and d <= max_step
        keeps = keeps and bool(np.all(nxt >= 0))
        following.append(nxt)

    # Appearance: each linked blob against the first blob of its track (a track starts where no clean link arrives).
    appearance = []
    if patches is not None:
        start = [(0, i) for i in range(counts[0])]  # per blob of frame t: its track's first (frame, blob)
        for t, nxt in enumerate(following):
            arrived = [None] * counts[t + 1]
            for i, j in enumerate(nxt):
                if j >= 0:
                    arrived[j] = start[i]
                    first_t, first_i = start[i]
                    appearance.append(_appearance_change(
                        patches[first_t][first_i], boxes[first_t][first_i], centroids[first_t][first_i],
                        patches[t + 1][j], boxes[t + 1][j], centroids[t + 1][j]))
            start = [origin if origin is not None else (t + 1, j) for j, origin in enumerate(arrived)]

    accelerations, bounces, triples = [], 0, 0
    size = np.array([height, width], float)
    bounced = {}  # (t, blob) -> per-axis bounce marks of the triple centred there
    for t in range(1, frames - 1):
        for i in range(counts[t - 1]):
            j = following[t - 1][i]
            if j < 0 or following[t][j] < 0:
                continue
            k = following[t][j]
            v_in = centroids[t][j] - centroids[t - 1][i]
            v_out = centroids[t + 1][k] - centroids[t][j]
            triples += 1
            # The wall faced on each axis: low if moving towards it (or away from it after a stop).
            low_side = (v_in < 0) | ((v_in == 0) & (v_out > 0))
            gap = np.where(low_side, boxes[t][j][:2], size - boxes[t][j][2:])
            near = gap <= np.abs(v_in) + np.abs(v_out) + wall_slack
            reverses = (v_in * v_out <= 0) & (np.abs(v_out - v_in) >= BOUNCE_MIN_CHANGE)
            axes = reverses & near
            before = bounced.get((t - 1, i), np.zeros(2, bool))
            bounces += int(np.sum(axes & ~before))
            bounced[(t, j)] = axes
            if not axes.any():
                accelerations.append(float(np.linalg.norm(v_out - v_in)))
    return speeds, accelerations, bounces, triples, keeps, appearance


def motion_statistics(videos, dataset="moving_digits", **options):
    """Per-frame, per-blob and per-clip motion statistics of videos of a synthetic dataset.

    See the module docstring for how objects are found and tracked and what each statistic
    measures.

    Args:
        videos: uint8 `(N, T, H, W, C)` in [0, 255] or float in [-1, 1] (numpy array or
            tensor); C is 1 or 3; N >= 2, T >= 3.
        dataset: str. One of `moving_digits`, `bouncing_balls`, `moving_shapes`,
            `moving_square`. Defaults to "moving_digits".
        **options: the dataset's options as given to `make_videos` (e.g. `speed`,
            `digit_size`, `radius`, `square_size`); the object sizes and speeds set the
            wall slack and the track-continuity gate.

    Returns:
        A dict from each name in `STATISTICS` to its sample, a float64 array: 1-D, except
        `positions`, `(num_blobs, 2)` rows and columns.
    """
    videos = _check_videos("videos", videos)
    return _statistics(videos, dataset, options)


def _statistics(videos, dataset, options):
    """`motion_statistics` of checked videos `(N, T, H, W, C)`, `CHUNK_SIZE` at a time."""
    num_videos, num_frames, height, width, _ = videos.shape
    max_speed, wall_slack = _dataset_geometry(dataset, height, width, options)
    max_step = 2.0 * max_speed + 2.0
    samples = {name: [] for name in STATISTICS}
    for first in range(0, num_videos, CHUNK_SIZE):
        grey = _grey(videos[first:first + CHUNK_SIZE])  # (n, T, H, W)
        frame, centroids, areas, boxes, mask, patches = _blobs(grey)
        bounds = np.searchsorted(frame, np.arange(grey.shape[0] * num_frames + 1))
        samples["objects_per_frame"].append(np.diff(bounds).astype(np.float64))
        samples["object_area"].append(areas)
        samples["positions"].append(centroids)  # (num_blobs, 2): rows and columns
        samples["coverage"].append(mask.any(axis=1).mean(axis=(1, 2)))  # (n,)
        for n in range(grey.shape[0]):
            frames = range(n * num_frames, (n + 1) * num_frames)
            clip_centroids = [centroids[bounds[f]:bounds[f + 1]] for f in frames]
            clip_boxes = [boxes[bounds[f]:bounds[f + 1]] for f in frames]
            clip_patches = [patches[bounds[f]:bounds[f + 1]] for f in frames]
            speeds, accelerations, bounces, triples, keeps, appearance = _clip_motion(
                clip_centroids, clip_boxes, num_frames, height, width, max_step, wall_slack, clip_patches
            )
            samples["speed"].append(speeds)
            samples["acceleration"].append(accelerations)
            if triples:
                samples["wall_bounces"].append([bounces / triples * (num_frames - 2)])
            samples["track_continuity"].append([float(keeps)])
            samples["appearance"].append(appearance)
    return {
        name: np.concatenate([np.asarray(part, np.float64).reshape(-1, 2) for part in parts])
        if name == "positions"
        else np.concatenate([np.asarray(part, np.float64).reshape(-1) for part in parts]
                            or [np.zeros(0)])
        for name, parts in samples.items()
    }


def _distance(real, fake, floor):
    """Wasserstein-1 distance of two 1-D samples over `max(std(real), floor)`."""
    from scipy.stats import wasserstein_distance

    real = real if real.size else np.zeros(1)
    fake = fake if fake.size else np.zeros(1)
    return float(wasserstein_distance(real, fake) / max(float(np.std(real)), floor))


def motion_distance(real_videos, fake_videos, dataset="moving_digits", **options):
    """Distances between the motion statistics of real and generated videos.

    For each statistic of `motion_statistics`, the 1-D Wasserstein distance between the
    real and the fake sample divided by the real sample's standard deviation (at least a
    floor per statistic; see the module docstring). Held-out real clips score near 0;
    frozen, shuffled or noisy clips score several real spreads on the statistics they break.

    Args:
        real_videos: uint8 `(N, T, H, W, C)` in [0, 255] or float in [-1, 1] (numpy array
            or tensor); C is 1 or 3; N >= 2, T >= 3. Clips of the dataset.
        fake_videos: the same kind of array, with the same T, H and W. Generated clips.
        dataset: str. One of `moving_digits`, `bouncing_balls`, `moving_shapes`,
            `moving_square`. Defaults to "moving_digits".
        **options: the dataset's options as given to `make_videos` (e.g. `speed=2`,
            `digit_size=10`, `radius=3`).

    Returns:
        A dict of floats: one entry per name in `STATISTICS` and `total`, their sum.

    Example:
        >>> real = make_videos("moving_square", 64, num_frames=8, height=32, width=32)
        >>> held_out = make_videos("moving_square", 64, num_frames=8, height=32, width=32,
        ...                        seed=1)
        >>> motion_distance(real, held_out, dataset="moving_square")["total"] < 1
        True
    """
    real_videos = _check_videos("real_videos", real_videos)
    fake_videos = _check_videos("fake_videos", fake_videos)
    if real_videos.shape[1:4] != fake_videos.shape[1:4]:
        raise ValueError(
            "`real_videos` and `fake_videos` must have the same frames, height and width, got "
            f"(T, H, W) = {real_videos.shape[1:4]} and {fake_videos.shape[1:4]}."
        )
    real = _statistics(real_videos, dataset, options)
    fake = _statistics(fake_videos, dataset, options)
    floors = _floors(*real_videos.shape[2:4])
    distances = {}
    for name in STATISTICS:
        if name == "positions":
            distances[name] = 0.5 * sum(
                _distance(real[name][:, axis], fake[name][:, axis], floors[name])
                for axis in (0, 1)
            )
        else:
            distances[name] = _distance(real[name], fake[name], floors[name])
    distances["total"] = float(sum(distances.values()))
    return distances
