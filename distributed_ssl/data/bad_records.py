"""Count and skip records that cannot be decoded, and stop the job once there are too many.

Ray Data preprocessing runs in many tasks; they report bad records to one named actor per run (the ledger),
which answers with the running count so a task can fail the pipeline the moment `data.max_bad_fraction` of the
dataset is exceeded. Bad records are never trained on: they are dropped from the batch.

The ledger is made by the first task that meets a bad record, not by the run: most runs meet none, and an actor
is a process of its own that imports Ray (about 3 s of CPU per run for nothing). The tasks carry a `LedgerAddress`
(plain data); the driver reads and removes the ledger when the run ends (`collect_bad_records`).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class LedgerAddress:
    """Where a run's bad records go, and what the ledger needs to be made there by whichever task needs it first."""

    name: str
    num_records: int
    max_bad_fraction: float


def ledger_name(run_id: str) -> str:
    return f"dssl-bad-records-{run_id}"


def ledger_for_run(run_id: str, num_records: int, max_bad_fraction: float) -> LedgerAddress:
    """The run's ledger address; a ledger left by an earlier attempt of the run is removed, so counts start at 0."""
    address = LedgerAddress(ledger_name(run_id), num_records, max_bad_fraction)
    _remove(address)
    return address


def _ledger(address: LedgerAddress) -> Any:
    # Detached: the task that makes it runs in a pooled Ray worker that may exit before the run ends; the driver
    # removes it (collect_bad_records). get_if_exists makes concurrent first reports share one actor.
    return BadRecordLedger.options(name=address.name, get_if_exists=True, lifetime="detached").remote(
        address.num_records, address.max_bad_fraction)


def _remove(address: LedgerAddress) -> None:
    try:
        ray.kill(ray.get_actor(address.name))
    except ValueError:  # no ledger: no bad record was met
        pass


def report_bad(ledger: LedgerAddress | None, items: list[dict[str, str]]) -> None:
    """Tell the ledger; without one (e.g. a bare pipeline) a bad record is an error, never silently dropped."""
    if not items:
        return
    first = items[0]
    where = f"record {first['id']!r} in {first.get('source', '?')}: {first['reason']}"
    if ledger is None:
        raise BadDataError(f"cannot decode {where}")
    count, limit = ray.get(_ledger(ledger).record.remote(items))
    if count > limit:
        raise BadDataError(f"{count} records could not be decoded, more than data.max_bad_fraction allows "
                           f"({limit}); latest: {where}")


def collect_bad_records(address: LedgerAddress) -> list[dict[str, str]]:
    """The run's bad records (none when no task made a ledger), and the ledger removed."""
    try:
        actor = ray.get_actor(address.name)
    except ValueError:
        return []
    try:
        return ray.get(actor.report.remote())
    finally:
        ray.kill(actor)


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
