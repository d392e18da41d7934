"""Resident memory of this process from /proc (Linux), for the benchmarks' children.

Only the standard library: a child that must not import TensorFlow (bench/vs_pytorch.py's
PyTorch twin) can use it too.
"""

import re


def status_kib(field):
    """A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`, `RssAnon`, ...), or None if it is absent."""
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    return int(match.group(1)) if match else None


def reset_peak_rss():
    """Resets this process's VmHWM to its current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
