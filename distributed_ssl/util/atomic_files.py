"""Crash-safe file writes: a reader sees the old file or the whole new one, never a torn one.

Every file a run keeps (encoder.pt, summary.json, config.yaml, run.json, checkpoint meta.json, bad_records.jsonl)
goes through `atomic_write`: the bytes go to a temporary file in the same directory, are flushed and fsync'ed,
and `os.replace` swaps it in (atomic on POSIX within one filesystem). A process killed mid-write leaves at most a
`.NAME.*.tmp` file, which the next write of NAME removes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (the directory entry), so a power loss cannot undo it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory file descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> None:
    """Delete temporaries that an earlier, killed write of `path` left behind."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(f)` on a temporary binary file beside `path`, then atomically move it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` that never leaves a truncated file at `path` (e.g. encoder.pt)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
