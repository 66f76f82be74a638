"""Thin helpers over MlflowClient so the driver and the rank-0 worker write to the same run.

The default store is SQLite inside the run dir: nothing to start, and the model registry works on it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from distributed_ssl.tracking.redaction import redact  # noqa: E402

MAX_PARAM_LEN = 6000


def tracking_uri_for(uri: str | None, run_dir: str) -> str:
    if uri:
        return uri
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def _artifact_root(uri: str, run_dir: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(run_dir).resolve() / "mlartifacts").as_uri()
    return None


def create_run(uri: str, experiment: str, run_dir: str, run_name: str, params: dict[str, Any],
               tags: dict[str, str] | None = None) -> str:
    """Create (or reuse) the experiment and start a run with params; returns the run id."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        experiment, artifact_location=_artifact_root(uri, run_dir))
    run = client.create_run(exp_id, run_name=run_name, tags=redact(tags or {}))
    items = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in sorted(redact(params).items())]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


class RunLogger:
    """Logs metrics, tags and artifacts into one existing run (usable from any process)."""

    def __init__(self, uri: str, run_id: str):
        self.client = MlflowClient(uri)
        self.run_id = run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def tags(self, values: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in redact(values).items()])

    def artifact(self, path: str | Path, subdir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), subdir)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)
