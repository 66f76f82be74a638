"""One retraining pass at a time: an exclusive `flock` on ROOT/retrain.lock, or a lease when ROOT is a URI.

`flock` rather than a "lock file exists" check: the kernel drops the lock when the holder exits, however it
exits, so a crashed or killed pass never leaves a stale lock that blocks every later pass. The holder writes
its pid, host and start time into the file so that the pass turned away can say who is running. Object storage
has no locks: there the run-dir lease of `launch/run_dir_guard.py` (refreshed while held, taken over once
stale) guards ROOT instead.
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

from distributed_ssl.launch.run_dir_guard import RunLock
from distributed_ssl.util import storage
from distributed_ssl.util.run_dir import RunDir


class PassBusy(RuntimeError):
    """Another pass holds the lock; the message says which process and since when."""


def _busy(holder: str, lock: str) -> PassBusy:
    return PassBusy(f"another retrain pass is running ({holder}; lock {lock}): this pass exits without training")


@contextmanager
def pass_lock(location: str | Path) -> Iterator[None]:
    """Hold the lock for the `with` body, or raise PassBusy at once (never wait: the next schedule will come).

    `location` is the lock file; when it is a URI, its folder is held with a lease instead."""
    if storage.is_uri(str(location)):
        folder = str(location).rsplit("/", 1)[0]
        lease = RunLock(RunDir(folder), busy=lambda holder: _busy(holder, folder))
        lease.acquire()
        try:
            yield
        finally:
            lease.release()
        return
    with _flock(Path(location)):
        yield


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(_read_holder(fd), str(path)) from None
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
