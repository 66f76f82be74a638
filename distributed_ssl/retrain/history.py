"""The local decision log: one JSON object a line, appended by every pass (trained, skipped or failed).

MLflow holds the same decisions as tags on model versions; this file is what a person reads with `tail`, and
what survives if the tracking store is moved or wiped. Lines are written with a single `write` on a file opened
for appending, so a crash mid-pass cannot leave half a record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from distributed_ssl.util.redaction import redact


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line, secrets masked (reasons may quote error messages)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(redact(record), sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every record, oldest first; an absent file is an empty history."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number} is not a JSON record: {exc}") from None
    return records
