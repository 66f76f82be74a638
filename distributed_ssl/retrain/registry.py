"""The MLflow model registry as scheduled retraining uses it: versions with their data, an alias for production.

Every trained encoder becomes a model version (promoted or not), tagged with its metric, the data snapshot it
saw and the decision taken; only the alias says which one is in production. The data snapshot itself is the run
artifact `data_manifest.json`, so a later pass can tell which shards are new.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from distributed_ssl.retrain.data_fingerprint import DataSnapshot
from distributed_ssl.util.redaction import redact, redact_text

TAG = "dssl."  # prefix of every tag this module writes
DATA_ARTIFACT = "data_manifest.json"
ENCODER_ARTIFACT = "encoder.pt"
MODEL_ARTIFACT = "encoder_model"  # see export/mlflow_model.py
PENDING = "pending"


@dataclass(frozen=True)
class VersionInfo:
    version: int
    run_id: str
    source: str
    metric: float | None
    decision: str
    tags: dict[str, str]


class EncoderRegistry:
    """One registered model in one tracking store (which must be database-backed: SQLite or a server)."""

    def __init__(self, tracking_uri: str, model_name: str, metric: str):
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri = tracking_uri
        self.name = model_name
        self.metric = metric

    def ensure_model(self) -> None:
        try:
            self.client.create_registered_model(
                self.name, description="Self-supervised encoders from `dssl retrain`; the alias marks production.")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _info(self, mv) -> VersionInfo:
        tags = dict(mv.tags or {})
        raw = tags.get(TAG + self.metric)
        return VersionInfo(int(mv.version), mv.run_id, mv.source, float(raw) if raw is not None else None,
                           tags.get(TAG + "decision", PENDING), tags)

    def versions(self) -> list[VersionInfo]:
        """All versions, oldest first."""
        found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted((self._info(mv) for mv in found), key=lambda v: v.version)

    def champion(self, alias: str) -> VersionInfo | None:
        """The version the alias points at, or None before the first promotion."""
        try:
            return self._info(self.client.get_model_version_by_alias(self.name, alias))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def last_trained(self) -> VersionInfo | None:
        """The newest version whose pass reached a decision (a pass that died mid-way does not count)."""
        decided = [v for v in self.versions() if v.decision != PENDING]
        return decided[-1] if decided else None

    def data_snapshot(self, version: VersionInfo) -> DataSnapshot:
        """The shards a version was trained on, from its run's `data_manifest.json`."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(version.run_id, DATA_ARTIFACT, tmp)
            return DataSnapshot.from_json(Path(path).read_text())

    def download_encoder(self, version: VersionInfo, dst_dir: Path) -> Path:
        """The version's `encoder.pt`, copied into dst_dir."""
        import mlflow.artifacts

        dst_dir.mkdir(parents=True, exist_ok=True)
        run_uri = self.client.get_run(version.run_id).info.artifact_uri
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{run_uri}/{ENCODER_ARTIFACT}",
                                                        dst_path=str(dst_dir), tracking_uri=self.tracking_uri))

    def register(self, run_id: str, metric_value: float, data: DataSnapshot, new_shards: list[str],
                 extra_tags: dict[str, str]) -> VersionInfo:
        """A new version from the run's `encoder.pt`, marked pending until `record_decision`."""
        run = self.client.get_run(run_id)
        self.client.log_text(run_id, redact_text(data.to_json()), DATA_ARTIFACT)
        tags = {TAG + self.metric: f"{metric_value:.6f}", TAG + "data_fingerprint": data.fingerprint,
                TAG + "data_records": str(data.num_records), TAG + "data_shards": str(len(data.shards)),
                TAG + "new_shards": str(len(new_shards)), TAG + "decision": PENDING,
                **{TAG + k: v for k, v in extra_tags.items()}}
        # The MLflow model when the run logged one (`models:/NAME@champion` then loads and embeds), else encoder.pt;
        # warm starts always read the run's encoder.pt (download_encoder).
        logged = {a.path for a in self.client.list_artifacts(run_id)}
        artifact = MODEL_ARTIFACT if MODEL_ARTIFACT in logged else ENCODER_ARTIFACT
        mv = self.client.create_model_version(self.name, source=f"{run.info.artifact_uri}/{artifact}",
                                              run_id=run_id, tags=redact(tags),
                                              description=f"{self.metric}={metric_value:.4f} on {data.num_records} "
                                                          f"records ({data.fingerprint})")
        return self._info(mv)

    def record_decision(self, version: VersionInfo, alias: str, promote: bool, reason: str) -> None:
        """Move the alias (if promoted) first, then tag the version: a crash in between leaves it pending."""
        if promote:
            self.client.set_registered_model_alias(self.name, alias, str(version.version))
        decision = "promoted" if promote else "rejected"
        self.client.set_model_version_tag(self.name, str(version.version), TAG + "reason",
                                          redact_text(reason)[:5000])
        self.client.set_model_version_tag(self.name, str(version.version), TAG + "decision", decision)
