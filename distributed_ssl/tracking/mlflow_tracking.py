"""Thin helpers over MlflowClient so the driver and the rank-0 worker write to the same run.

On one machine the default store is SQLite inside the run dir: nothing to start, and the model registry works
on it. A run on object storage or on a cluster needs a tracking server (see launch/cluster_checks.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from distributed_ssl.config.loader import ConfigError  # noqa: E402
from distributed_ssl.tracking.outage_buffer import BUFFER_DIR, OutageBuffer  # noqa: E402
from distributed_ssl.util import storage  # noqa: E402
from distributed_ssl.util.redaction import install_log_redaction, redact, redact_text  # noqa: E402
from distributed_ssl.util.run_dir import RunDir  # noqa: E402

log = logging.getLogger("distributed_ssl.tracking")

MAX_PARAM_LEN = 6000
# Artifacts read as text and masked before upload (see `redacted_artifact`); others (weights, images) go as is.
TEXT_ARTIFACT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".txt", ".csv", ".log", ".md"}


def tracking_uri_for(uri: str | None, run_dir: str) -> str:
    """`tracking.uri`, else a SQLite store inside a local run dir."""
    if uri:
        return uri
    if storage.is_uri(run_dir):
        raise ConfigError(
            f"run.dir={run_dir} is on object storage, where no SQLite store can live: set tracking.uri to an MLflow "
            "server, e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db "
            "--serve-artifacts` and tracking.uri=http://127.0.0.1:5000")
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def _artifact_root(uri: str, run_dir: str) -> str | None:
    if uri.startswith("sqlite:///") and not storage.is_uri(run_dir):
        return (Path(run_dir).resolve() / "mlartifacts").as_uri()
    return None


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it; when several processes create it at once, one wins and all use it."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as exc:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        log.debug("experiment %s was created concurrently: %s", name, exc)
        return exp.experiment_id


def create_run(uri: str, experiment: str, run_dir: str, run_name: str, params: dict[str, Any],
               tags: dict[str, str] | None = None) -> str:
    """Create (or reuse) the experiment and start a run with params; returns the run id."""
    client = MlflowClient(uri)
    exp_id = experiment_id(client, experiment, _artifact_root(uri, run_dir))
    run = client.create_run(exp_id, run_name=run_name, tags=redact(tags or {}))
    items = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in sorted(redact(params).items())]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


# Failures that retrying cannot fix: the request itself is wrong, so it is raised, never buffered.
PERMANENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST", "INVALID_STATE",
                    "PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_ALREADY_EXISTS"}


def limit_http_retries(request_timeout_s: float) -> None:
    """MLflow's own HTTP retries default to minutes of back-off; `RunLogger` retries instead, briefly.

    Set only where the user has not chosen values (they are process-wide environment settings).
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(request_timeout_s))))


def logger_retry_kwargs(cfg: Any) -> dict[str, float]:
    """`RunLogger` retry settings from a config's `tracking:` section."""
    t = cfg.tracking
    return {"retries": t.retries, "retry_wait_s": t.retry_wait_s, "request_timeout_s": t.request_timeout_s}


def is_transient(exc: BaseException) -> bool:
    """Connection refused, timeouts, 5xx, a locked SQLite file: worth retrying or buffering."""
    if isinstance(exc, MlflowException):
        return exc.error_code not in PERMANENT_ERRORS
    if isinstance(exc, FileNotFoundError):  # an artifact that is gone will not come back
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


@contextlib.contextmanager
def redacted_artifact(path: str | Path) -> Iterator[str]:
    """The path to upload for `path`: itself, or for a text file holding something secret-looking, a masked copy
    with the same name in a temporary directory (MLflow names the artifact after the file)."""
    path = Path(path)
    if path.suffix.lower() not in TEXT_ARTIFACT_SUFFIXES or not path.is_file():
        yield str(path)
        return
    text = path.read_text(errors="replace")
    masked = redact_text(text)
    if masked == text:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="dssl-artifact-") as tmp:
        copy = Path(tmp, path.name)
        copy.write_text(masked)
        yield str(copy)


class RunLogger:
    """Logs metrics, tags and artifacts into one existing run (usable from any process).

    Every call is tried `retries + 1` times, `retry_wait_s` doubling in between. With a `buffer_dir`, a call that
    still fails is kept in `buffer_dir/mlflow_buffer/` (see outage_buffer.py) and training goes on; the next
    call that reaches MLflow first delivers the backlog, in order. Without one, the error is raised.

    The buffer is listed once at start, then only after this logger buffered something (a listing is a request
    when the run dir is on object storage); `finish` and `flush` always look, so records another process left
    (the rank-0 worker's) go out before the run's end status.
    """

    def __init__(self, uri: str, run_id: str, buffer_dir: str | Path | RunDir | None = None, retries: int = 2,
                 retry_wait_s: float = 0.5, request_timeout_s: float = 10.0):
        limit_http_retries(request_timeout_s)
        install_log_redaction(excepthook=False)  # this process talks to MLflow: its logs may quote URIs, errors
        self.client = MlflowClient(uri)
        self.run_id = run_id
        self.buffer = OutageBuffer(buffer_dir) if buffer_dir is not None else None
        self._maybe_pending = self.buffer is not None and self.buffer.pending() > 0
        self.retries, self.retry_wait_s = retries, retry_wait_s

    def metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        if values:
            self._submit({"metrics": [[k, float(v), now, int(step)] for k, v in values.items()]})

    def tags(self, values: dict[str, str]) -> None:
        self._submit({"tags": {k: str(v) for k, v in redact(values).items()}})

    def artifact(self, path: str | Path, subdir: str | None = None) -> None:
        self._submit({"artifact": str(Path(path).resolve()), "subdir": subdir})

    def finish(self, status: str = "FINISHED") -> None:
        self._maybe_pending = True  # look once more: another process may have buffered records of this run
        self._submit({"status": status})

    def flush(self) -> int:
        """Deliver the buffered backlog (raises the first failure, keeping the rest); returns records sent."""
        if self.buffer is None:
            return 0
        sent = self.buffer.replay(self._send_with_retries)
        self._maybe_pending = False
        return sent

    def _submit(self, record: dict[str, Any]) -> None:
        if self.buffer is None:
            self._send_with_retries(record)
            return
        try:
            if self._maybe_pending:
                self.flush()  # older records first, so MLflow sees them in order
            self._send_with_retries(record)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.buffer.append(record)
            self._maybe_pending = True
            log.warning("MLflow unreachable (%s); kept in %s for `dssl sync`", str(exc).splitlines()[0][:200],
                        self.buffer.location)

    def _send_with_retries(self, record: dict[str, Any]) -> None:
        for attempt in range(self.retries + 1):
            try:
                self._send(record)
                return
            except Exception as exc:
                if attempt == self.retries or not is_transient(exc):
                    raise
                time.sleep(self.retry_wait_s * 2 ** attempt)

    def _send(self, record: dict[str, Any]) -> None:
        if "metrics" in record:
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in record["metrics"]])
        elif "tags" in record:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in record["tags"].items()])
        elif "artifact" in record:
            with redacted_artifact(record["artifact"]) as path:
                self.client.log_artifact(self.run_id, path, record.get("subdir"))
        elif "status" in record:
            self.client.set_terminated(self.run_id, record["status"])
        else:
            raise ValueError(f"unknown tracking record {record!r} in {BUFFER_DIR}/")
