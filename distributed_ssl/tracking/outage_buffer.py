"""`RUN_DIR/mlflow_buffer/`: tracking records that could not reach MLflow, kept in order until they can.

Training must not stop because the tracking server is down. A record (metrics with their timestamps, tags, an
artifact, the run's end status) that still fails after the logger's retries is written here as one file; the next
successful call, or `dssl sync RUN_DIR`, replays the files in order and removes each one once delivered.

One file a record (named by time, host, process and a counter) rather than one appended file, because the run
dir may be on object storage, which has neither appends nor locks; the driver and the rank-0 worker (perhaps on
another node) then never rewrite each other's records. An artifact is copied into the buffer with its record, so
a temporary file that is gone by replay time (the views preview) is still delivered. Replays are idempotent: a
metric keeps its original timestamp and MLflow stores an identical (key, step, timestamp, value) once, an
artifact is uploaded to the same path again, so a record whose delivery was in doubt is not duplicated.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed_ssl.util.run_dir import RunDir

BUFFER_DIR = "mlflow_buffer"
log = logging.getLogger("distributed_ssl.tracking")
_counter = itertools.count()


class OutageBuffer:
    def __init__(self, run_dir: str | Path | RunDir):
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.location = self.run_dir.child_uri(BUFFER_DIR)

    def _names(self) -> list[str]:
        return [n for n in self.run_dir.list(BUFFER_DIR) if n.endswith(".json")]

    def pending(self) -> int:
        """Records waiting for delivery."""
        return len(self._names())

    def append(self, record: dict[str, Any]) -> None:
        """Keep `record`; an artifact's file is copied in beside it."""
        stem = f"{time.time_ns():020d}-{socket.gethostname()}-{os.getpid()}-{next(_counter):06d}"
        if "artifact" in record:
            source = Path(record["artifact"])
            copy = f"{BUFFER_DIR}/{stem}.{source.name}.artifact"  # never `.json`: not taken for a record
            self.run_dir.upload(source, copy)
            record = {**record, "artifact_copy": copy, "artifact_name": source.name}
        self.run_dir.write_text(f"{BUFFER_DIR}/{stem}.json", json.dumps(record))

    def replay(self, send: Callable[[dict[str, Any]], None]) -> int:
        """Send records in order until one fails (it and the rest stay, and the error propagates); returns sent.

        A buffered artifact whose copy is missing (deleted by hand, a crash between the two writes) is reported
        and dropped: it can never be delivered, and must not block the records behind it.
        """
        sent = 0
        for name in self._names():
            try:
                record = json.loads(self.run_dir.read_text(f"{BUFFER_DIR}/{name}"))
            except FileNotFoundError:  # delivered meanwhile by another process replaying the same buffer
                continue
            if "artifact_copy" in record:
                if not self.run_dir.exists(record["artifact_copy"]):
                    log.warning("dropped buffered artifact %s: its copy %s is missing", record["artifact_name"],
                                self.run_dir.child_uri(record["artifact_copy"]))
                    self.run_dir.delete(f"{BUFFER_DIR}/{name}")
                    continue
                self._send_artifact(record, send)
                self.run_dir.delete(record["artifact_copy"])
            else:
                send(record)
            self.run_dir.delete(f"{BUFFER_DIR}/{name}")
            sent += 1
        return sent

    def _send_artifact(self, record: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
        """Deliver a buffered artifact under its original file name."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dssl-artifact-") as tmp:
            local = Path(tmp) / record["artifact_name"]
            with self.run_dir.local_file(record["artifact_copy"]) as copy:
                local.write_bytes(copy.read_bytes())
            send({"artifact": str(local), "subdir": record.get("subdir")})
