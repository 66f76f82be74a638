"""Count and skip records that cannot be decoded, and stop the job once there are too many.

Ray Data preprocessing runs in many tasks; they report bad records to one named actor per run (the ledger),
which answers with the running count so a task can fail the pipeline the moment `data.max_bad_fraction` of the
dataset is exceeded. Bad records are never trained on: they are dropped from the batch.
"""

from __future__ import annotations

from typing import Any

import ray


class BadDataError(RuntimeError):
    """More records failed to decode than `data.max_bad_fraction` allows."""


@ray.remote(num_cpus=0)
class BadRecordLedger:
    def __init__(self, num_records: int, max_bad_fraction: float):
        self.limit = int(max_bad_fraction * num_records)
        self.num_records = num_records
        self.max_bad_fraction = max_bad_fraction
        self.bad: dict[str, dict[str, str]] = {}

    def record(self, items: list[dict[str, str]]) -> tuple[int, int]:
        """Add bad records (deduplicated by id across epochs); returns (unique bad records, limit)."""
        for item in items:
            self.bad.setdefault(item["id"], item)
        return len(self.bad), self.limit

    def report(self) -> list[dict[str, str]]:
        return list(self.bad.values())


def ledger_name(run_id: str) -> str:
    return f"dssl-bad-records-{run_id}"


def create_ledger(run_id: str, num_records: int, max_bad_fraction: float):
    """The run's ledger actor (a fresh one replaces a stale one from an earlier attempt)."""
    name = ledger_name(run_id)
    try:
        ray.kill(ray.get_actor(name))
    except ValueError:
        pass
    return BadRecordLedger.options(name=name).remote(num_records, max_bad_fraction)


def report_bad(ledger: str | None, items: list[dict[str, str]]) -> None:
    """Tell the ledger; without one (e.g. a bare pipeline) a bad record is an error, never silently dropped."""
    if not items:
        return
    first = items[0]
    where = f"record {first['id']!r} in {first.get('source', '?')}: {first['reason']}"
    if ledger is None:
        raise BadDataError(f"cannot decode {where}")
    count, limit = ray.get(ray.get_actor(ledger).record.remote(items))
    if count > limit:
        raise BadDataError(f"{count} records could not be decoded, more than data.max_bad_fraction allows "
                           f"({limit}); latest: {where}")


def split_good_bad(decode: Any, batch: dict[str, Any]) -> tuple[list[int], list[dict[str, str]]]:
    """Decode records one by one to find which fail (only used once a whole-batch decode has failed)."""
    good, bad = [], []
    n = len(next(iter(batch.values())))
    for i in range(n):
        single = {k: v[i:i + 1] for k, v in batch.items()}
        try:
            decode(single)
            good.append(i)
        except Exception as exc:  # decoders raise many types on corrupt data; each one is reported
            bad.append({"id": str(batch["id"][i]) if "id" in batch else str(i),
                        "source": str(batch["path"][i]) if "path" in batch else "?",
                        "reason": str(exc).splitlines()[0][:300]})
    return good, bad
