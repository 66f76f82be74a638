"""One retraining pass at a time: an exclusive `flock` on ROOT/retrain.lock.

`flock` rather than a "lock file exists" check: the kernel drops the lock when the holder exits, however it
exits, so a crashed or killed pass never leaves a stale lock that blocks every later pass. The holder writes
its pid, host and start time into the file so that the pass turned away can say who is running.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PassBusy(RuntimeError):
    """Another pass holds the lock; the message says which process and since when."""


@contextmanager
def pass_lock(path: str | Path) -> Iterator[None]:
    """Hold the lock for the `with` body, or raise PassBusy at once (never wait: the next schedule will come)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise PassBusy(f"another retrain pass is running ({holder}; lock {path}): this pass exits "
                           "without training") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        info = {}
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
