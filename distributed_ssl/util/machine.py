"""Facts about the machine this process runs on."""

from __future__ import annotations

import os


def machine_cores() -> int:
    """Cores this process may run on: the affinity mask, which a container's CPU set narrows (`os.cpu_count()`
    counts the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity mask
        return os.cpu_count() or 1
