"""`vidgen data check`: every file of a dataset folder with its frames, size, channels, fps, duration and status."""

import collections
import logging
import warnings

from vidgen_tf.cli.common import EXIT_FAILURE, UsageError, _parse_pairs

CHECKED = ("video_folder", "frame_folder")


def cmd_data_check(args):
    from vidgen_tf.data import folders, index

    kind = args.data or folders.detect_kind(args.path)
    if kind not in CHECKED:
        raise UsageError(f"--data must be one of {', '.join(CHECKED)}, got '{kind}'.")
    options = _parse_pairs(args.data_option, "--data-option")
    unknown = sorted(set(options) - {"cache_dir", "source_fps"})
    if unknown:
        raise UsageError(f"vidgen data check takes --data-option cache_dir=DIR and source_fps=N, got {unknown}.")
    if "source_fps" in options and kind != "frame_folder":
        raise UsageError("--data-option source_fps applies to frame_folder (video files have their own rate).")
    source_fps = options.get("source_fps", 25)
    if kind == "frame_folder":
        from vidgen_tf.data.clips import check_positive

        source_fps = check_positive("source_fps", source_fps)
    root = folders._local_root(args.path)
    # This listing names every damaged file itself: the index's warnings would repeat it.
    index_logger = logging.getLogger(index.__name__)
    level = index_logger.level
    index_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", index.DamagedFileWarning)
            built = index.build_index(root, "video" if kind == "video_folder" else "frames",
                                      cache_dir=options.get("cache_dir"))
    finally:
        index_logger.setLevel(level)
    if not built.records:
        raise ValueError(f"'{root}' holds no {'video files' if kind == 'video_folder' else 'frame folders'}.")
    width = max(len("PATH"), *(len(record.path) for record in built.records))
    print(f"{kind} {root} (index: {built.cache_path or 'not cached'})")
    print(f"{'PATH':<{width}}  {'FRAMES':>6}  {'SIZE':>9}  {'CHANNELS':>8}  {'FPS':>6}  {'SECONDS':>7}  "
          f"{'CLASS':<12}  STATUS")
    for record in built.records:
        fps = record.fps if kind == "video_folder" else source_fps
        if record.ok:
            duration = record.duration if record.duration is not None else record.num_frames / fps
            figures = (f"{record.num_frames:>6}  {f'{record.height}x{record.width}':>9}  {record.channels:>8}  "
                       f"{fps:>6.2f}  {duration:>7.2f}")
        else:
            figures = f"{'-':>6}  {'-':>9}  {'-':>8}  {'-':>6}  {'-':>7}"
        print(f"{record.path:<{width}}  {figures}  {record.label or '-':<12}  {record.status}")
    print(built.summary())
    if built.usable:
        print(geometry_summary(built.usable, built.noun))
    return 0 if built.usable else EXIT_FAILURE


def geometry_summary(records, noun="file"):
    """The channels and sizes of the usable files, most common first, e.g.
    "usable files: channels 3 (all 6); sizes 32x40 (5), 37x53 (1)"."""
    def counted(values):
        common = collections.Counter(values).most_common()
        if len(common) == 1:
            return [(common[0][0], f"all {common[0][1]}")]
        return [(value, str(number)) for value, number in common]

    channels = counted(r.channels for r in records)
    sizes = counted(f"{r.height}x{r.width}" for r in records)
    return (f"usable {noun}s: channels " + ", ".join(f"{value} ({how})" for value, how in channels)
            + f"; size{'s' if len(sizes) > 1 else ''} " + ", ".join(f"{value} ({how})" for value, how in sizes))
