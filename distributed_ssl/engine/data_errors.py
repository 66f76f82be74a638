"""Deterministic data errors: a retry reads the same bytes and fails the same way, so none is retried.

Ray Train's FailureConfig restarts the worker group after any worker error, which is right for a crashed node and
wrong for a bad record: the run would fail `run.max_failures + 1` times over, each after a restart and a restore.
A worker that meets such an error records it in the run dir before raising; the launcher's failure policy
(`launch.data_error_failure_policy`) reads the record and raises instead of restarting, and the driver turns it into a
`DatasetError` (exit 2).
"""

from __future__ import annotations

from distributed_ssl.data.bad_records import BadDataError
from distributed_ssl.data.manifest import DatasetError
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.util.run_dir import RunDir

FATAL_FILE = "fatal_data_error.json"
DETERMINISTIC = (BadDataError, DatasetError, RecordDecodeError)


def deterministic_cause(exc: BaseException) -> BaseException | None:
    """The deterministic data error behind `exc`, else None.

    Ray wraps a Ray Data task's error (RayTaskError → UserCodeException → the error itself), and the chain does not
    always survive the trip between processes; then only its text names the error, and that text is what is kept.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DETERMINISTIC):
            return current
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    for kind in DETERMINISTIC:  # the limit error before the record errors that led to it
        for line in str(exc).splitlines():
            marker = f"{kind.__name__}: "
            if marker in line:
                return kind(line[line.index(marker) + len(marker):].strip())
    return None


def record_fatal(run_dir: RunDir, exc: BaseException) -> None:
    run_dir.write_json(FATAL_FILE, {"error": f"{type(exc).__name__}: {str(exc).strip()[:2000]}"})


def read_fatal(run_dir: RunDir) -> str | None:
    """The recorded error's text, or None."""
    return run_dir.read_json(FATAL_FILE)["error"] if run_dir.exists(FATAL_FILE) else None
