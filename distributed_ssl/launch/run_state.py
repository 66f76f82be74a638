"""`RUN_DIR/run.json`: what a run needs to be resumed into the same MLflow run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from distributed_ssl.util.redaction import redact
from distributed_ssl.util.run_dir import CONFIG_FILE, RAY_RUN_NAME, RUN_STATE, SUMMARY_FILE, RunDir

__all__ = ["CONFIG_FILE", "RAY_RUN_NAME", "RUN_STATE", "SUMMARY_FILE", "RunState"]


@dataclass
class RunState:
    mlflow_run_id: str
    tracking_uri: str
    experiment: str

    def save(self, run_dir: RunDir) -> None:
        run_dir.write_text(RUN_STATE, json.dumps(redact(asdict(self)), indent=2))

    @classmethod
    def load(cls, run_dir: RunDir) -> RunState | None:
        return cls(**run_dir.read_json(RUN_STATE)) if run_dir.exists(RUN_STATE) else None
