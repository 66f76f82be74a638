"""The decision log: one JSON object a line, appended by every pass (trained, skipped or failed).

MLflow holds the same decisions as tags on model versions; this file is what a person reads with `tail`, and
what survives if the tracking store is moved or wiped. On a local disk a line is written with a single `write`
on a file opened for appending, so a crash mid-pass cannot leave half a record. Object storage has no append:
there the file is read, extended and written back whole (one object write, so it too is never half written);
the pass lock makes the pass its only writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from distributed_ssl.util import storage
from distributed_ssl.util.redaction import redact


def append_record(location: str | Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line, secrets masked (reasons may quote error messages); `location` may be
    a URI."""
    line = json.dumps(redact(record), sort_keys=True) + "\n"
    if storage.is_uri(str(location)):
        fs, path = storage.resolve(str(location))
        before = storage.read_text(fs, path) if storage.exists(fs, path) else ""
        storage.write_text(fs, path, before + line)
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_records(location: str | Path) -> list[dict[str, Any]]:
    """Every record, oldest first; an absent file is an empty history. `location` may be a URI."""
    fs, path = storage.resolve(str(location))
    if not storage.exists(fs, path):
        return []
    records = []
    for number, line in enumerate(storage.read_text(fs, path).splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{location}:{number} is not a JSON record: {exc}") from None
    return records
