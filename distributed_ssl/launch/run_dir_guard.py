"""What may happen to a run dir: created with a marker, deleted by `--overwrite` only if dssl made it, one writer.

`--overwrite` used to delete any folder that held `train/`, which is also what every converter writes: pointing
run.dir at a data set wiped it. Now a run dir carries `.dssl-run`, written when dssl created it, and only such a
folder is ever deleted; the file system root, the home and working directories, shard folders and the parents of
the run's own data are refused whatever they hold. `RunLock` keeps a second `dssl train` out of a live run dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from distributed_ssl.config.loader import ConfigError
from distributed_ssl.data.manifest import MANIFEST_NAME
from distributed_ssl.util import storage
from distributed_ssl.util.run_dir import RAY_RUN_NAME, RUN_STATE, RunDir

MARKER = ".dssl-run"
LOCK = ".dssl-lock"
LEASE_REFRESH_S = 20.0
LEASE_STALE_S = 90.0


def holds_run(run_dir: RunDir, contents: tuple[str, ...] = (RAY_RUN_NAME, RUN_STATE)) -> bool:
    """Whether the folder holds an earlier run (or sweep) of dssl, or its remains."""
    return run_dir.exists(MARKER) or any(run_dir.exists(name) for name in contents)


def _real(location: str) -> str:
    """A comparable form: symlinks resolved for local paths, URIs as given."""
    location = storage.normalize(location).rstrip("/")
    return location if storage.is_uri(location) else os.path.realpath(location)


def _is_same_or_parent(folder: str, other: str | None) -> bool:
    if not other:
        return False
    folder, other = _real(folder), _real(other)
    return other == folder or other.startswith(folder + "/")


def refuse_data_folder(run_dir: RunDir, protected: list[str | None]) -> None:
    """A run never writes into a shard folder, nor into a folder that holds the run's own data: its `train/`
    checkpoints would land among the shards, and a later `--overwrite` would take the data with them."""
    reason = None
    if run_dir.exists(MANIFEST_NAME):
        reason = f"it holds a {MANIFEST_NAME}: it is a shard folder"
    else:
        data = [p for p in protected if _is_same_or_parent(run_dir.uri, p)]
        if data:
            reason = f"it holds this run's data ({data[0]})"
    if reason:
        raise ConfigError(f"run.dir={run_dir.uri} cannot hold a run: {reason}. Choose another run.dir")


def refuse_unsafe_delete(run_dir: RunDir, protected: list[str | None]) -> None:
    """Raise ConfigError unless `run_dir` is a folder dssl created as a run and may delete."""
    refuse_data_folder(run_dir, protected)
    reason = None
    if run_dir.is_local:
        here = os.path.realpath(run_dir.path)
        if here in ("/", os.path.realpath(Path.home()), os.path.realpath(os.getcwd())):
            reason = "it is the file system root, the home directory or the working directory"
    if reason is None and not run_dir.exists(MARKER):
        reason = (f"it has no {MARKER} marker, so dssl did not create it as a run (runs of earlier versions lack "
                  "it too: delete such a folder yourself)")
    if reason:
        raise ConfigError(f"--overwrite refuses to delete run.dir={run_dir.uri}: {reason}. Choose another run.dir")


def check_run_dir(run_dir: RunDir, resume: bool, overwrite: bool, protected: list[str | None],
                  kind: str = "run", contents: tuple[str, ...] = (RAY_RUN_NAME, RUN_STATE)) -> bool:
    """Raise ConfigError unless `run_dir` fits resume/overwrite (writes nothing); returns whether it holds one."""
    refuse_data_folder(run_dir, protected)
    exists = holds_run(run_dir, contents)
    if exists and not resume:
        if not overwrite:
            verb = "dssl tune" if kind == "sweep" else "dssl train"
            raise ConfigError(f"run.dir={run_dir.uri} already holds a {kind}: resume it with `{verb} --resume "
                              f"{run_dir.uri}`, or pass --overwrite, or choose another run.dir")
        refuse_unsafe_delete(run_dir, protected)
    if resume and not exists:
        raise ConfigError(f"nothing to resume in {run_dir.uri}: no earlier {kind} found there")
    return exists


def prepare_run_dir(run_dir: RunDir, resume: bool, overwrite: bool, protected: list[str | None],
                    kind: str = "run", contents: tuple[str, ...] = (RAY_RUN_NAME, RUN_STATE)) -> None:
    """Check `run_dir` again (see `check_run_dir`), empty it when overwriting, and mark it as dssl's.

    Call while holding its `RunLock`, so a live run is never deleted; the lock file itself stays.
    """
    exists = check_run_dir(run_dir, resume, overwrite, protected, kind, contents)
    if exists and not resume:
        run_dir.delete_contents(keep=(LOCK,))
    run_dir.mkdir()
    if not run_dir.exists(MARKER):
        run_dir.write_json(MARKER, {"kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


class RunLock:
    """An exclusive hold on a run dir for the life of a run.

    On a local disk, an `flock` (released by the kernel if the process dies). On object storage, which has no
    locks, a lease file that the holder refreshes every LEASE_REFRESH_S; one not refreshed for LEASE_STALE_S
    belongs to a dead process and is taken over.
    """

    def __init__(self, run_dir: RunDir, busy: Callable[[str], Exception] | None = None):
        """`busy(holder)` builds the error raised when another process holds the lock (default: a ConfigError
        about run.dir)."""
        self.run_dir = run_dir
        self._busy = busy
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        self.run_dir.mkdir()
        if self.run_dir.is_local:
            self._acquire_flock()
        else:
            self._acquire_lease()

    def _refuse(self, holder: str) -> None:
        if self._busy is not None:
            raise self._busy(holder)
        raise ConfigError(f"run.dir={self.run_dir.uri} is in use by another dssl process ({holder}): wait for it "
                          "to end, or choose another run.dir")

    def _acquire_flock(self) -> None:
        path = storage.join(self.run_dir.path, LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            self._refuse(holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.owner.encode(), 0)
        self._fd = fd

    def _lease(self) -> dict | None:
        try:
            return self.run_dir.read_json(LOCK)
        except (FileNotFoundError, ValueError):
            return None

    def _acquire_lease(self) -> None:
        lease = self._lease()
        if lease and lease.get("owner") != self.owner and time.time() - lease.get("heartbeat", 0) < LEASE_STALE_S:
            self._refuse(lease.get("owner", "unknown"))
        self.run_dir.write_json(LOCK, {"owner": self.owner, "heartbeat": time.time()})
        time.sleep(0.5)  # a racing writer's lease would land now: whoever reads its own lease back wins
        lease = self._lease()
        if not lease or lease.get("owner") != self.owner:
            self._refuse(lease.get("owner", "unknown") if lease else "unknown")
        self._thread = threading.Thread(target=self._refresh, name="dssl-run-lease", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(LEASE_REFRESH_S):
            with contextlib.suppress(OSError):
                self.run_dir.write_json(LOCK, {"owner": self.owner, "heartbeat": time.time()})

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            lease = self._lease()
            if lease and lease.get("owner") == self.owner:
                with contextlib.suppress(OSError):
                    self.run_dir.delete(LOCK)


@contextlib.contextmanager
def locked(run_dir: RunDir) -> Iterator[RunLock]:
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()

