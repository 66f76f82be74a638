"""`RUN_DIR/run.json`: what a run needs to be resumed into the same MLflow run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from distributed_ssl.engine.atomic_files import atomic_write_text
from distributed_ssl.tracking.redaction import redact

RUN_STATE = "run.json"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
RAY_RUN_NAME = "train"


@dataclass
class RunState:
    mlflow_run_id: str
    tracking_uri: str
    experiment: str

    def save(self, run_dir: Path) -> None:
        atomic_write_text(run_dir / RUN_STATE, json.dumps(redact(asdict(self)), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> RunState | None:
        path = run_dir / RUN_STATE
        return cls(**json.loads(path.read_text())) if path.exists() else None
