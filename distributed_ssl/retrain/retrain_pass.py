"""One scheduled-retraining pass: new data? → warm start from the champion → train → probe → register → gate.

Order matters for safety. The alias is the only thing production reads, and it is moved last, after the new
version is registered and measured; anything that fails before that (training, evaluation, the registry)
leaves the champion as it was. Every outcome (trained, skipped, failed) is appended to the history file.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlflow.tracking import MlflowClient

from distributed_ssl.config.loader import ConfigError
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.evaluation.labeled_set import load_labeled
from distributed_ssl.launch.trainer import run_training
from distributed_ssl.retrain.data_fingerprint import DataSnapshot, snapshot
from distributed_ssl.retrain.encoder_metric import probe_weights
from distributed_ssl.retrain.history import append_record
from distributed_ssl.retrain.pass_lock import PassBusy, pass_lock
from distributed_ssl.retrain.promotion import decide
from distributed_ssl.retrain.registry import TAG, EncoderRegistry, VersionInfo
from distributed_ssl.tracking.mlflow_tracking import RunLogger
from distributed_ssl.util import storage
from distributed_ssl.util.redaction import redact_text
from distributed_ssl.util.run_dir import ENCODER_FILE, RunDir

log = logging.getLogger("distributed_ssl.retrain")
Status = Literal["skipped", "promoted", "rejected", "busy", "failed"]
EX_TEMPFAIL = 75  # sysexits.h "try again later": what cron and schedulers understand for a busy pass


@dataclass
class PassResult:
    status: Status
    reason: str
    version: int | None = None
    metric: float | None = None
    champion_version: int | None = None
    champion_metric: float | None = None
    run_dir: str | None = None

    @property
    def exit_code(self) -> int:
        return {"busy": EX_TEMPFAIL, "failed": 1}.get(self.status, 0)


@dataclass(frozen=True)
class RetrainPaths:
    """Where passes keep their state; each a local path or a URI (`retrain.root=s3://...`)."""

    root: str
    history: str
    lock: str
    tracking_uri: str

    @property
    def is_local(self) -> bool:
        return not storage.is_uri(self.root)


def retrain_paths(cfg: SSLConfig) -> RetrainPaths:
    """Where this retraining setup keeps its state; one shared tracking store so versions accumulate."""
    root = storage.normalize(cfg.retrain.root)
    history = storage.normalize(cfg.retrain.history_file) if cfg.retrain.history_file \
        else storage.join(root, "history.jsonl")
    if cfg.tracking.uri is None and storage.is_uri(root):
        raise ConfigError(f"retrain.root={redact_text(root)} is object storage, which cannot hold the default SQLite "
                          "model registry: set tracking.uri to an MLflow server (mlflow server --host 127.0.0.1 "
                          "--serve-artifacts ...) or a database")
    uri = cfg.tracking.uri or f"sqlite:///{storage.join(root, 'mlflow.db')}"
    if uri.startswith(("file:", "./", "/")) or "://" not in uri:
        raise ConfigError(f"tracking.uri={uri}: the model registry needs a database-backed store "
                          "(sqlite:///path.db or http://tracking-server)")
    return RetrainPaths(root, history, storage.join(root, "retrain.lock"), uri)


def run_pass(cfg: SSLConfig) -> PassResult:
    """Run one pass under the lock; a pass that finds the lock held returns `busy` without doing anything."""
    if not cfg.data.eval:
        raise ConfigError("data.eval is required by dssl retrain: it is the fixed labeled set that decides "
                          "promotion")
    paths = retrain_paths(cfg)
    try:
        with pass_lock(paths.lock):
            return _locked_pass(cfg, paths)
    except PassBusy as exc:
        log.warning("%s", exc)
        return PassResult("busy", str(exc))


def _record(paths: RetrainPaths, pass_id: str, result: PassResult, **extra: Any) -> None:
    append_record(paths.history, {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pass_id": pass_id,
                                  "status": result.status, "reason": result.reason, "version": result.version,
                                  "metric": result.metric, "champion_version": result.champion_version,
                                  "champion_metric": result.champion_metric, "run_dir": result.run_dir, **extra})


def _ensure_experiment(uri: str, name: str, paths: RetrainPaths) -> None:
    """Artifacts of every pass under ROOT/mlartifacts (not inside the first pass's run dir, which may go)."""
    client = MlflowClient(uri)
    if client.get_experiment_by_name(name) is None:
        local_store = uri.startswith("sqlite:") and paths.is_local
        location = Path(paths.root, "mlartifacts").as_uri() if local_store else None
        client.create_experiment(name, artifact_location=location)


def _locked_pass(cfg: SSLConfig, paths: RetrainPaths) -> PassResult:
    pass_id = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
    registry = EncoderRegistry(paths.tracking_uri, cfg.retrain.model_name, cfg.retrain.metric)
    registry.ensure_model()
    current = snapshot(cfg.data.train)
    last = registry.last_trained()
    earlier: DataSnapshot | None = registry.data_snapshot(last) if last else None
    new_shards = current.new_since(earlier)
    base = {"data_fingerprint": current.fingerprint, "data_shards": len(current.shards),
            "new_shards": len(new_shards), "tolerance": cfg.retrain.tolerance}
    if not new_shards:
        result = PassResult("skipped", f"no new data: all {len(current.shards)} shards of data.train="
                                       f"{cfg.data.train} were seen by version {last.version if last else '-'}")
        _record(paths, pass_id, result, **base)
        return result

    champion = registry.champion(cfg.retrain.alias)
    pass_dir = storage.join(paths.root, "passes", pass_id)
    run_dir = storage.join(pass_dir, "run")
    try:
        init_from = cfg.model.init_from
        if champion is not None:
            init_from = _champion_weights(registry, champion, pass_dir)
        train_cfg = cfg.model_copy(update={
            "run": cfg.run.model_copy(update={"dir": str(run_dir), "name": f"retrain-{pass_id}"}),
            "tracking": cfg.tracking.model_copy(update={"uri": paths.tracking_uri}),
            "model": cfg.model.model_copy(update={"init_from": init_from}),
        })
        _ensure_experiment(paths.tracking_uri, cfg.tracking.experiment, paths)
        log.info("retrain pass %s: %d new shards, warm start from %s", pass_id, len(new_shards),
                 f"version {champion.version}" if champion else (init_from or "random weights"))
        summary = run_training(train_cfg, extra_tags={
            TAG + "retrain_pass": pass_id, TAG + "warm_start_version": str(champion.version) if champion else "none"})
        splits = load_labeled(cfg.data.eval, cfg)
        metric = probe_weights(storage.join(run_dir, ENCODER_FILE), cfg, splits)
        champion_metric = probe_weights(init_from, cfg, splits) if champion is not None else None
        version = registry.register(summary["mlflow_run_id"], metric, current, new_shards, {
            "retrain_pass": pass_id, "champion_version": str(champion.version) if champion else "none",
            f"champion_{cfg.retrain.metric}": f"{champion_metric:.6f}" if champion_metric is not None else "none",
            "tolerance": str(cfg.retrain.tolerance)})
        decision = decide(cfg.retrain.metric, metric, champion_metric, cfg.retrain.tolerance)
        registry.record_decision(version, cfg.retrain.alias, decision.promote, decision.reason)
    except Exception as exc:
        failed = PassResult("failed", f"{type(exc).__name__}: {exc}; champion untouched",
                            champion_version=champion.version if champion else None, run_dir=str(run_dir))
        _record(paths, pass_id, failed, **base)
        raise
    result = PassResult("promoted" if decision.promote else "rejected", decision.reason, version.version, metric,
                        champion.version if champion else None, champion_metric, str(run_dir))
    _tag_run(paths.tracking_uri, summary["mlflow_run_id"], result, cfg, version)
    _record(paths, pass_id, result, run_id=summary["mlflow_run_id"], **base)
    return result


def _champion_weights(registry: EncoderRegistry, champion: VersionInfo, pass_dir: str) -> str:
    """The champion's encoder.pt under PASS_DIR/champion, where every training worker can read it (on object
    storage when the root is there)."""
    if not storage.is_uri(pass_dir):
        return str(registry.download_encoder(champion, Path(pass_dir, "champion")))
    with tempfile.TemporaryDirectory(prefix="dssl-champion-") as tmp:
        local = registry.download_encoder(champion, Path(tmp))
        return RunDir(storage.join(pass_dir, "champion")).upload(local, ENCODER_FILE)


def _tag_run(uri: str, run_id: str, result: PassResult, cfg: SSLConfig, version: VersionInfo) -> None:
    """The decision on the training run too, so it is visible from the experiment view."""
    logger = RunLogger(uri, run_id)
    logger.tags({TAG + "decision": result.status, TAG + "reason": result.reason[:5000],
                 TAG + "model_name": cfg.retrain.model_name, TAG + "model_version": str(version.version)})
    values = {f"retrain_{cfg.retrain.metric}": float(result.metric or 0.0)}
    if result.champion_metric is not None:
        values[f"retrain_champion_{cfg.retrain.metric}"] = result.champion_metric
    logger.metrics(values, step=0)
