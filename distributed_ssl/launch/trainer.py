"""Build and run a TorchTrainer from a config: the one function `dssl train`, jobs and sweeps call."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import ray.train
from ray.train.torch import TorchTrainer

from distributed_ssl.config.flatten import flat_params
from distributed_ssl.config.loader import ConfigError, save_config
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.bad_records import create_ledger, ledger_name
from distributed_ssl.data.manifest import DatasetError, Manifest
from distributed_ssl.data.pipeline import build_train_dataset, open_train_manifest, train_record_count
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.engine.atomic_files import atomic_write_text
from distributed_ssl.engine.checkpointing import remove_torn_checkpoints
from distributed_ssl.engine.train_loop import train_worker
from distributed_ssl.launch.ray_runtime import ensure_ray
from distributed_ssl.launch.run_state import CONFIG_FILE, RAY_RUN_NAME, SUMMARY_FILE, RunState
from distributed_ssl.launch.summary import collapse_summary, write_summary
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.tracking.mlflow_tracking import (
    RunLogger,
    create_run,
    logger_retry_kwargs,
    tracking_uri_for,
)

log = logging.getLogger("distributed_ssl")


def plan_steps(cfg: SSLConfig, manifest: Manifest) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps); every rank runs exactly these."""
    num_records = train_record_count(cfg, manifest)  # only the kept records when data.keep_ids is set
    per_worker = num_records // cfg.scaling.num_workers
    micro = per_worker // cfg.train.batch_size
    steps_per_epoch = micro // cfg.train.grad_accum
    if steps_per_epoch < 1:
        raise DatasetError(
            f"data.train={cfg.data.train} has {num_records} records: too few for "
            f"scaling.num_workers={cfg.scaling.num_workers} × train.batch_size={cfg.train.batch_size} × "
            f"train.grad_accum={cfg.train.grad_accum}")
    total = steps_per_epoch * cfg.train.epochs
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    return steps_per_epoch, total


def validate_inputs(cfg: SSLConfig) -> Manifest:
    """Fail before any worker starts: missing shards, wrong modality, unlabeled eval set, a model that cannot be
    built for this method and modality."""
    manifest = open_train_manifest(cfg)
    if cfg.data.eval:
        from distributed_ssl.data.manifest import load_manifest

        for name, path in split_dirs(cfg.data.eval).items():
            eval_manifest = load_manifest(path)
            if not eval_manifest.has_labels:
                raise DatasetError(f"data.eval={cfg.data.eval}: split {name} has no labels")
    if cfg.method.name == "simclr" and cfg.train.batch_size < 2:
        raise ConfigError("train.batch_size must be >= 2 for SimCLR negatives")
    if cfg.model.init_from and "://" not in cfg.model.init_from and not Path(cfg.model.init_from).is_file():
        raise ConfigError(f"model.init_from={cfg.model.init_from}: no such file (expected an encoder.pt)")
    try:  # the workers build exactly this; a misfit (e.g. a point encoder on images) fails here instead
        build_method(cfg)
    except ValueError as exc:
        raise ConfigError(f"method.name={cfg.method.name}, model.encoder={cfg.model.encoder}, "
                          f"modality.name={cfg.modality.name}: {exc}") from None
    return manifest


def _prepare_run_dir(cfg: SSLConfig, resume: bool, overwrite: bool) -> Path:
    run_dir = Path(cfg.run.dir).expanduser().resolve()
    exists = (run_dir / RAY_RUN_NAME).exists() or (run_dir / "run.json").exists()
    if exists and not resume:
        if not overwrite:
            raise ConfigError(f"run.dir={run_dir} already holds a run: resume it with `dssl train --resume "
                              f"{cfg.run.dir}`, or pass --overwrite, or choose another run.dir")
        shutil.rmtree(run_dir)
    if resume and not exists:
        raise ConfigError(f"nothing to resume in {run_dir}: no earlier run found there")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def absolute_paths(cfg: SSLConfig) -> SSLConfig:
    """Local paths made absolute: workers run in other directories (and on other nodes)."""
    def fix(path: str | None) -> str | None:
        return path if path is None or "://" in path else str(Path(path).expanduser().resolve())

    return cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"train": fix(cfg.data.train), "eval": fix(cfg.data.eval),
                                            "keep_ids": fix(cfg.data.keep_ids)}),
        "run": cfg.run.model_copy(update={"dir": fix(cfg.run.dir)}),
        "model": cfg.model.model_copy(update={"init_from": fix(cfg.model.init_from)}),
    })


def run_training(cfg: SSLConfig, resume: bool = False, overwrite: bool = False,
                 extra_tags: dict[str, str] | None = None, callbacks: list | None = None,
                 init_checkpoint: str | None = None, ray_run_name: str = RAY_RUN_NAME,
                 checkpoint_every_epoch: bool = False) -> dict[str, Any]:
    """Train, evaluate and summarise one run; returns the summary written to RUN_DIR/summary.json.

    `init_checkpoint` (a checkpoint directory, e.g. a PBT donor's) starts a fresh Ray Train run named
    `ray_run_name` from that state; the run's own checkpoints take precedence on a worker-group restart.
    `checkpoint_every_epoch` puts a checkpoint on every epoch-end report, so a PBT trial can be restored there.
    """
    cfg = absolute_paths(cfg)
    manifest = validate_inputs(cfg)
    steps_per_epoch, total_steps = plan_steps(cfg, manifest)
    run_dir = _prepare_run_dir(cfg, resume, overwrite)
    save_config(cfg, run_dir / CONFIG_FILE)

    state = RunState.load(run_dir) if resume else None
    if resume:
        for torn in remove_torn_checkpoints(run_dir / ray_run_name):
            log.warning("removed %s: a checkpoint copy cut off by a crash (never registered)", torn)
    if state is None:
        uri = tracking_uri_for(cfg.tracking.uri, str(run_dir))
        tags = {"method": cfg.method.name, "modality": cfg.modality.name, **(extra_tags or {})}
        run_id = create_run(uri, cfg.tracking.experiment, str(run_dir), cfg.run.name or run_dir.name,
                            flat_params(cfg), tags)
        state = RunState(run_id, uri, cfg.tracking.experiment)
        state.save(run_dir)
    logger = RunLogger(state.tracking_uri, state.mlflow_run_id, buffer_dir=run_dir, **logger_retry_kwargs(cfg))
    logger.artifact(run_dir / CONFIG_FILE)

    ensure_ray(cfg)
    ledger = create_ledger(state.mlflow_run_id, manifest.num_records, cfg.data.max_bad_fraction)
    dataset = build_train_dataset(cfg, view_spec_for(cfg), manifest, ledger=ledger_name(state.mlflow_run_id))
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"cfg": cfg.model_dump(mode="json"), "steps_per_epoch": steps_per_epoch,
                           "total_steps": total_steps, "tracking_uri": state.tracking_uri,
                           "mlflow_run_id": state.mlflow_run_id, "run_dir": str(run_dir),
                           "init_checkpoint": init_checkpoint, "checkpoint_every_epoch": checkpoint_every_epoch},
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
                                               resources_per_worker={"CPU": cfg.scaling.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=ray_run_name, storage_path=str(run_dir),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.run.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=cfg.run.max_failures),
            callbacks=callbacks or []),
        datasets={"train": dataset},
    )
    started = time.time()
    try:
        result = trainer.fit()
    except BaseException:
        logger.finish("FAILED")
        raise
    bad = ray.get(ledger.report.remote())
    if bad:
        atomic_write_text(run_dir / "bad_records.jsonl", "".join(json.dumps(item) + "\n" for item in bad))
        logger.artifact(run_dir / "bad_records.jsonl")
        log.warning("%d undecodable records were skipped; see %s", len(bad), run_dir / "bad_records.jsonl")
    logger.metrics({"bad_records": float(len(bad))}, step=0)
    metrics = result.metrics or {}
    summary = {
        "method": cfg.method.name, "modality": cfg.modality.name, "encoder": cfg.model.encoder,
        "steps": metrics.get("global_step"), "epochs": metrics.get("epoch"),
        "knn_top1": metrics.get("knn_top1"), "knn_top1_random_init": metrics.get("knn_top1_random_init"),
        "linear_top1": metrics.get("linear_top1"), "linear_top1_random_init": metrics.get("linear_top1_random_init"),
        **collapse_summary(metrics),
        "samples_per_s": metrics.get("samples_per_s"), "final_loss": metrics.get("loss"),
        "wall_time_s": round(time.time() - started, 1), "num_workers": cfg.scaling.num_workers,
        "zero_stage": cfg.deepspeed.zero_stage, "precision": cfg.deepspeed.precision,
        "train_records": train_record_count(cfg, manifest), "bad_records": len(bad),
        "mlflow_run_id": state.mlflow_run_id,
        "tracking_uri": state.tracking_uri, "run_dir": str(run_dir),
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
    }
    write_summary(summary, run_dir / SUMMARY_FILE)
    logger.artifact(run_dir / SUMMARY_FILE)
    logger.finish("FINISHED")
    return summary
