"""Helpers the callbacks share: the labels of a sample set, and JSON lines that a kill never cuts."""

import json
import os
from pathlib import Path


def sample_labels(model, num, labels):
    """The given labels, or classes cycling 0, 1, 2, ... for a conditional model, else None."""
    if labels is None and getattr(model, "num_classes", 0):
        labels = [i % model.num_classes for i in range(num)]
    return labels


def append_line(path, record):
    """Appends one JSON line to `path`, flushed and synced, so a kill never leaves half a line before it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
