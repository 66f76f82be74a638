"""`RUN_DIR/mlflow_buffer.jsonl`: tracking records that could not reach MLflow, kept in order until they can.

Training must not stop because the tracking server is down. A record (metrics with their timestamps, tags, an
artifact path, the run's end status) that still fails after the logger's retries is appended here; the next
successful call, or `dssl sync RUN_DIR`, replays the file in order and removes what was delivered. Replays are
idempotent: a metric keeps its original timestamp, and MLflow stores an identical (key, step, timestamp, value)
once, so a record whose delivery was in doubt is not duplicated.

The driver and the rank-0 worker may share one run dir, so every read-modify-write holds an exclusive `flock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BUFFER_FILE = "mlflow_buffer.jsonl"


class OutageBuffer:
    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / BUFFER_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def pending(self) -> int:
        """Records waiting for delivery."""
        if not self.path.exists():
            return 0
        with open(self.path) as f:
            return sum(1 for line in f if line.strip())

    def append(self, record: dict[str, Any]) -> None:
        with self._locked(), open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def replay(self, send: Callable[[dict[str, Any]], None]) -> int:
        """Send records in order until one fails (it and the rest stay, and the error propagates); returns sent."""
        with self._locked():
            if not self.path.exists():
                return 0
            records = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            sent = 0
            try:
                for record in records:
                    send(record)
                    sent += 1
            finally:
                self._keep(records[sent:])
            return sent

    def _keep(self, records: list[dict[str, Any]]) -> None:
        if not records:
            self.path.unlink(missing_ok=True)
            return
        from distributed_ssl.engine.atomic_files import atomic_write_text

        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))
